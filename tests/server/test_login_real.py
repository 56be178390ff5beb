"""login() / status() / logout() against real Prefect servers.

Every check of Prefect's process-global state runs in a fresh interpreter
(``run_scenario``), so one test's login can never leak into another.
"""

from __future__ import annotations

import pytest
from constants import AUTH_STRING

pytestmark = pytest.mark.server


def test_login_switches_everything_prefect_does_and_logout_switches_back(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import *
        r = {{}}
        r["before"] = [read_flows_sync(), read_flows_async(), run_flow(), events_roundtrip(10)]
        r["login"] = nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r}).to_dict()
        r["after"] = [read_flows_sync(), read_flows_async(), run_flow(), events_roundtrip()]
        r["logout"] = nb.logout().to_dict()
        r["again"] = [read_flows_sync(), read_flows_async(), run_flow()]
        emit(r)
        """,
        env={"PREFECT_API_URL": auth_server.api_url},
    )
    assert result["before"][:3] == [401, 401, 401]
    assert result["before"][3] != "received"
    assert result["after"] == [200, 200, 200, "received"]
    assert result["again"] == [401, 401, 401]
    assert result["login"]["mode"] == "basic"
    assert result["login"]["identity"] == "admin@corp"
    assert result["login"]["sources"]["PREFECT_API_AUTH_STRING"] == "login()"
    assert result["logout"]["mode"] == "none"
    assert result["logout"]["sources"] == {"PREFECT_API_URL": "environment variable"}


def test_wrong_password_raises_and_keeps_the_previous_login(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import *
        nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
        errors = []
        for bad in ["admin@corp:wrong", "someone:p@ss:w#rd%&!"]:
            try:
                nb.login({auth_server.api_url!r}, auth_string=bad)
                errors.append("no error")
            except nb.AuthenticationError as exc:
                errors.append(str(exc))
        emit({{"errors": errors, "status": status_dict(check_server=False), "flows": read_flows_sync()}})
        """
    )
    assert all("rejected the auth string" in e for e in result["errors"]), result["errors"]
    assert "'someone'" in result["errors"][1]
    assert all("p@ss" not in e for e in result["errors"])
    assert result["status"]["mode"] == "basic"
    assert result["status"]["identity"] == "admin@corp"
    assert result["flows"] == 200


def test_non_ascii_auth_string_is_refused_before_any_request(run_scenario):
    # A listening socket that counts connections: a request would show up here.
    result = run_scenario(
        """
        import socket, threading
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit
        listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
        port = listener.getsockname()[1]
        connections = []
        def accept():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                connections.append(1); conn.close()
        threading.Thread(target=accept, daemon=True).start()
        try:
            nb.login(f"http://127.0.0.1:{port}/api", auth_string="admin:pässwört")
            error = None
        except nb.ConfigurationError as exc:
            error = str(exc)
        emit({"error": error, "connections": len(connections),
              "mode": nb.status(check_server=False).mode.value})
        """
    )
    assert result["error"] and "non-ASCII" in result["error"]
    assert result["connections"] == 0
    assert result["mode"] == "none"


def test_status_explains_where_each_setting_comes_from(auth_server, run_scenario, tmp_path):
    url = auth_server.api_url
    code = """
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit, status_dict
        emit(status_dict(check_server=False))
    """
    env_case = run_scenario(code, env={"PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": AUTH_STRING})
    assert env_case["mode"] == "basic"
    assert env_case["sources"] == {"PREFECT_API_URL": "environment variable",
                                   "PREFECT_API_AUTH_STRING": "environment variable"}

    for filename, content, label in [
        (".env", f"PREFECT_API_URL={url}\nPREFECT_API_AUTH_STRING='{AUTH_STRING}'\n", ".env"),
        ("prefect.toml", f'[api]\nurl = "{url}"\nauth_string = "{AUTH_STRING}"\n', "prefect.toml"),
        ("pyproject.toml", f'[tool.prefect.api]\nurl = "{url}"\nauth_string = "{AUTH_STRING}"\n',
         "pyproject.toml"),
    ]:
        cwd = tmp_path / label.strip(".").replace(".", "_")
        cwd.mkdir()
        (cwd / filename).write_text(content)
        case = run_scenario(code, cwd=cwd)
        assert case["mode"] == "basic", (label, case)
        assert case["sources"] == {"PREFECT_API_URL": label, "PREFECT_API_AUTH_STRING": label}, case

    profile_case = run_scenario(
        f"""
        import os, pathlib, subprocess, sys
        home = pathlib.Path(os.environ["PREFECT_HOME"])
        (home / "profiles.toml").write_text(
            'active = "work"\\n[profiles.work]\\nPREFECT_API_URL = "{url}"\\n'
            'PREFECT_API_AUTH_STRING = "{AUTH_STRING}"\\n')
        out = subprocess.run([sys.executable, "-c", "import prefect_nbauth as nb, json; "
                              "s = nb.status(); print(json.dumps(s.to_dict()))"],
                             capture_output=True, text=True, check=True).stdout
        print(out.strip().splitlines()[-1])
        """
    )
    assert profile_case["mode"] == "basic"
    assert profile_case["sources"]["PREFECT_API_AUTH_STRING"] == "profile work"
    assert profile_case["server_version"], profile_case  # checked against the real server
    assert profile_case["warnings"] == [], profile_case


def test_status_warns_about_conflicts_prefect_resolves_silently(auth_server, run_scenario):
    result = run_scenario(
        """
        import os
        import prefect, prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit
        late = nb.status(check_server=False)
        os.environ["PREFECT_API_KEY"] = "pnu_set_after_import_0123456789"
        after = nb.status(check_server=False)
        emit({"both": late.warnings, "late_env": after.warnings, "mode": after.mode.value})
        """,
        env={"PREFECT_API_URL": auth_server.api_url, "PREFECT_API_AUTH_STRING": AUTH_STRING,
             "PREFECT_API_KEY": "pnu_0123456789abcdefghijkl", "PREFECT_SERVER_API_AUTH_STRING": "x:y"},
    )
    both = " ".join(result["both"])
    assert "Prefect sends only the auth string" in both and "ignores the API key" in both
    assert "PREFECT_SERVER_API_AUTH_STRING" not in both  # the client setting is set too
    late = " ".join(result["late_env"])
    assert "after `import prefect`" in late
    assert result["mode"] == "basic"
    assert "pnu_set_after_import" not in late and "0123456789abcdefghijkl" not in late

    result = run_scenario(
        """
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit
        emit(nb.status(check_server=False).warnings)
        """,
        env={"PREFECT_API_URL": auth_server.api_url, "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
             "PREFECT_CLIENT_CUSTOM_HEADERS": '{"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz"}'},
    )
    text = " ".join(result)
    assert "PREFECT_SERVER_API_AUTH_STRING is set in this environment" in text
    assert "abcdefghijklmnopqrstuvwxyz" not in text

    result = run_scenario(
        """
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit
        emit(nb.status().to_dict())
        """,
        env={"PREFECT_API_URL": auth_server.api_url},
    )
    assert any("requires an auth string" in w for w in result["warnings"]), result
    assert result["server_auth"] == "BASIC"
    assert result["server_version"] is None  # /admin/version needs the credential


def test_persist_writes_an_owner_only_profile_and_default_writes_nothing(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import os, pathlib, stat, subprocess, sys, json
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit
        home = pathlib.Path(os.environ["PREFECT_HOME"])
        def files():
            return sorted(str(p) for p in home.rglob("*") if p.is_file())
        def leaks():
            return [p for p in files() if {AUTH_STRING!r} in pathlib.Path(p).read_text(errors="ignore")]
        nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
        leaked_without_persist = leaks()
        nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r}, persist=True)
        profile = home / "profiles.toml"
        mode = stat.S_IMODE(profile.stat().st_mode)
        child = subprocess.run([sys.executable, "-c",
            "import prefect_nbauth as nb, json; from prefect_nbauth.testing.probes import read_flows_sync;"
            "s = nb.status(check_server=False); print(json.dumps([s.mode.value, s.sources, read_flows_sync()]))"],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        nb.logout(forget=True)
        emit({{"leaked": leaked_without_persist, "mode": oct(mode), "child": json.loads(child),
              "after_forget": {AUTH_STRING!r} in profile.read_text()}})
        """
    )
    assert result["leaked"] == []
    assert result["mode"] == "0o600"
    mode, sources, flows = result["child"]
    assert mode == "basic" and flows == 200
    assert sources["PREFECT_API_AUTH_STRING"].startswith("profile ")
    assert result["after_forget"] is False


def test_bad_input_never_changes_the_credential_in_force(auth_server, open_server, run_scenario):
    result = run_scenario(
        f"""
        import http.server, socket, threading
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit, read_flows_sync

        class Html(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<html><body>Jupyter</body></html>"
                self.send_response(200); self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body))); self.end_headers()
                self.wfile.write(body)
            def log_message(self, *a): pass
        html = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
        threading.Thread(target=html.serve_forever, daemon=True).start()
        s = socket.socket(); s.bind(("127.0.0.1", 0)); free_port = s.getsockname()[1]; s.close()

        good = {auth_server.api_url!r}
        nb.login(good, auth_string={AUTH_STRING!r})
        cases = {{
            "wrong password": dict(api_url=good, auth_string="admin@corp:nope"),
            "unknown user": dict(api_url=good, auth_string="nobody:p@ss:w#rd%&!"),
            "html page": dict(api_url=f"http://127.0.0.1:{{html.server_port}}/api", auth_string="a:b"),
            "404": dict(api_url=good.replace("/api", "/nothing-here"), auth_string={AUTH_STRING!r}),
            "server down": dict(api_url=f"http://127.0.0.1:{{free_port}}/api", auth_string="a:b"),
            "tls failure": dict(api_url=good.replace("http://", "https://"), auth_string={AUTH_STRING!r}),
            "non-ascii": dict(api_url=good, auth_string="admin:pässwört"),
            "quoted": dict(api_url=good, auth_string='"admin@corp:x"'),
            "empty auth string": dict(api_url=good, auth_string=""),
            "empty url": dict(api_url="", auth_string="a:b"),
            "api key to self-hosted": dict(api_url=good, api_key="pnu_0123456789abcdefghij"),
            "key and auth string": dict(api_url=good, auth_string="a:b", api_key="pnu_x"),
            "open server wrong kind": dict(api_url={open_server.api_url!r}, api_key="pnu_0123456789abcdefghij"),
        }}
        out = {{}}
        for name, kwargs in cases.items():
            try:
                nb.login(**kwargs)
                out[name] = ["no error"]
            except nb.PrefectAuthError as exc:
                out[name] = [type(exc).__name__, str(exc)]
            s = nb.status(check_server=False)
            out[name] += [s.mode.value, s.api_url, read_flows_sync()]
        emit(out)
        """
    )
    expected = {
        "wrong password": "AuthenticationError", "unknown user": "AuthenticationError",
        "html page": "NotPrefectServerError", "404": "NotPrefectServerError",
        "server down": "ServerUnreachableError", "tls failure": "ServerUnreachableError",
        "non-ascii": "ConfigurationError", "quoted": "ConfigurationError",
        "empty auth string": "ConfigurationError", "empty url": "ConfigurationError",
        "api key to self-hosted": "ConfigurationError", "key and auth string": "ConfigurationError",
        "open server wrong kind": "ConfigurationError",
    }
    for name, kind in expected.items():
        error, message, mode, url, flows = result[name]
        assert error == kind, (name, result[name])
        assert len(message) > 40 and "p@ss" not in message, (name, message)
        assert (mode, url, flows) == ("basic", auth_server.api_url, 200), (name, result[name])
    assert "TLS" in result["tls failure"][1]
    assert "Is the server running" in result["server down"][1]
