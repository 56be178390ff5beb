"""``login(persist=True)`` writes only what ``prefect config view`` masks (issue 21, case 10).

Real ``prefect server start`` with an auth string and Prefect's real ``prefect config view``
CLI, run as a user would, on the profile ``persist=True`` wrote.
"""

from __future__ import annotations

from constants import AUTH_STRING

from prefect_nbauth.testing.canaries import leaks, make_canary


def test_persist_refuses_gateway_headers_and_prefect_config_view_shows_no_secret(auth_server, run_scenario):
    header_token = make_canary(None)
    result = run_scenario(
        f"""
        import os, pathlib, subprocess, sys
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit

        home = pathlib.Path(os.environ["PREFECT_HOME"])
        def config_view():
            return subprocess.run([sys.executable, "-m", "prefect", "config", "view"],
                                  capture_output=True, text=True, check=True).stdout

        out = {{}}
        try:  # the gateway wants its own header besides Prefect's auth string
            nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r},
                     headers={{"X-Gateway-Token": {header_token!r}}}, persist=True)
            out["refused"] = None
        except nb.ConfigurationError as exc:
            out["refused"] = str(exc)
        out["changed"] = [nb.status(check_server=False).mode.value,
                          (home / "profiles.toml").exists()]
        out["view after refusal"] = config_view()
        nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r}, persist=True)
        out["view"] = config_view()
        out["saved"] = {AUTH_STRING!r} in (home / "profiles.toml").read_text()
        nb.logout(forget=True)
        emit(out)
        """
    )
    assert result["refused"] and "prefect config view" in result["refused"]
    assert "Nothing was changed" in result["refused"] and "EnvToken" in result["refused"]
    assert leaks(result["refused"], header_token, AUTH_STRING) == []
    assert result["changed"] == ["none", False]  # not logged in, no profile written
    for shown in (result["view after refusal"], result["view"]):
        assert leaks(shown, header_token, AUTH_STRING) == []
    assert result["saved"]  # the auth string is in the profile (owner-only) ...
    assert "PREFECT_API_AUTH_STRING='********' (from profile)" in result["view"]  # ... and masked
