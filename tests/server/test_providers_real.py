"""Credential providers through login()/refresh() against a real server: every bad input
names the provider, never the token, and keeps what was in force."""

from __future__ import annotations

import textwrap

import pytest
from constants import AUTH_STRING

pytestmark = pytest.mark.server


def test_every_provider_kind_logs_in_and_bad_ones_change_nothing(auth_server, run_scenario, tmp_path):
    token_file = tmp_path / "auth-string"
    token_file.write_text(AUTH_STRING + "\n")
    result = run_scenario(
        f"""
        import os, sys, pathlib
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit, read_flows_sync
        url = {auth_server.api_url!r}
        os.environ["NBAUTH_AUTH"] = {AUTH_STRING!r}
        out = {{}}
        good = {{
            "env": nb.EnvToken("NBAUTH_AUTH"),
            "file": nb.FileToken({str(token_file)!r}),
            "command": nb.CommandToken([sys.executable, "-c", "import os; print(os.environ['NBAUTH_AUTH'])"]),
            "callable": lambda: os.environ["NBAUTH_AUTH"],
        }}
        for name, provider in good.items():
            s = nb.login(url, auth_string=provider)
            out[name] = [s.mode.value, s.identity, read_flows_sync()]
        nb.login(url, auth_string={AUTH_STRING!r})   # the login that must survive what follows

        async def async_bad():
            raise RuntimeError("vault sealed")
        bad = {{
            "raises": lambda: 1 / 0,
            "async raises": async_bad,
            "hangs": nb.CallableToken(lambda: __import__("time").sleep(60), timeout=0.5),
            "empty": lambda: "   ",
            "malformed": lambda: '"nbuser:quoted"',  # (no ':' is fine: Prefect compares it whole)
            "exits non-zero": nb.CommandToken([sys.executable, "-c",
                "import sys; print('x', file=sys.stderr); sys.exit(2)"]),
            "missing env": nb.EnvToken("NBAUTH_NOT_SET"),
            "missing file": nb.FileToken("/nonexistent/token"),
            "endpoint down": nb.OAuth2ClientCredentials("http://127.0.0.1:9/token", "id", "secret", timeout=2),
        }}
        for name, provider in bad.items():
            try:
                nb.login(url, auth_string=provider)
                out[name] = ["no error"]
            except nb.PrefectAuthError as exc:
                out[name] = [type(exc).__name__, str(exc)]
            s = nb.status(check_server=False)
            out[name] += [s.mode.value, read_flows_sync()]
        emit(out)
        """
    )
    for name in ("env", "file", "command", "callable"):
        assert result[name] == ["basic", "admin@corp", 200], (name, result[name])
    expected = {
        "raises": ("CredentialProviderError", "raised ZeroDivisionError"),
        "async raises": ("CredentialProviderError", "vault sealed"),
        "hangs": ("CredentialProviderError", "did not return within 0.5 s"),
        "empty": ("CredentialProviderError", "empty token"),
        "malformed": ("ConfigurationError", "wrapped in quotes"),
        "exits non-zero": ("CredentialProviderError", "exited with status 2"),
        "missing env": ("CredentialProviderError", "NBAUTH_NOT_SET is not set"),
        "missing file": ("CredentialProviderError", "does not exist"),
        "endpoint down": ("CredentialProviderError", "could not be reached"),
    }
    for name, (kind, fragment) in expected.items():
        error, message, mode, flows = result[name]
        assert error == kind and fragment in message, (name, result[name])
        assert "p@ss" not in message
        assert (mode, flows) == ("basic", 200), (name, result[name])


def test_a_provider_failing_at_refresh_keeps_the_valid_token(auth_server, run_scenario, tmp_path):
    token_file = tmp_path / "auth-string"
    token_file.write_text(AUTH_STRING + "\n")
    result = run_scenario(
        f"""
        import pathlib
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit, read_flows_sync
        path = pathlib.Path({str(token_file)!r})
        nb.login({auth_server.api_url!r}, auth_string=nb.FileToken(path))
        path.unlink()                               # the file disappears
        s = nb.refresh()                            # keeps the token it has
        out = {{"after_unlink": [read_flows_sync(), s.warnings]}}
        path.write_text("admin@corp:rotated-but-wrong\\n")
        try:
            nb.refresh()
            out["wrong"] = "no error"
        except nb.AuthenticationError as exc:
            out["wrong"] = str(exc)
        path.write_text({AUTH_STRING!r} + "\\n")
        out["fixed"] = [nb.refresh().warnings, read_flows_sync()]
        emit(out)
        """
    )
    flows, warnings = result["after_unlink"]
    assert flows == 200
    assert any("does not exist" in w and "previous token stays in use" in w for w in warnings), warnings
    assert "rejected the auth string" in result["wrong"] and "rotated-but-wrong" not in result["wrong"]
    assert result["fixed"] == [[], 200]


def _docs_provider_example() -> str:
    """The provider example of docs/token-rotation.md, exactly as a reader copies it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "token-rotation.md").read_text()
    after_marker = text.split("<!-- provider-example:", 1)[1]
    return after_marker.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_provider_rotates_a_gateway_header(auth_server, run_scenario):
    """Issue 20's protocol: subclass, override fetch(), return (token, 2.0) — as the docs show."""
    from prefect_nbauth.testing import RotatingGateway

    example = _docs_provider_example()
    assert "def fetch(self)" in example and ", 2.0" in example and "_fetch" not in example
    with RotatingGateway(auth_server.api_url, upstream_auth_string=AUTH_STRING, token_lifetime=2.0,
                         header="X-Gateway-Token") as gateway:
        setup = f"""
            import time
            from prefect_nbauth.testing.probes import emit, read_flows_sync
            GATEWAY_API_URL, TOKEN_URL = {gateway.api_url!r}, {gateway.token_url!r}
            CLIENT_ID, CLIENT_SECRET = {gateway.client_id!r}, {gateway.client_secret!r}
            """
        check = """
            import prefect_nbauth as nb
            first = status().expires_at
            codes = []
            deadline = time.monotonic() + 7  # three and a half token lifetimes
            while time.monotonic() < deadline:
                codes.append(read_flows_sync())
                time.sleep(0.2)
            s = nb.status(check_server=False)
            emit({"codes": sorted(set(codes)), "calls": len(codes), "mode": s.mode.value,
                  "credential": s.credential, "later_expiry": bool(s.expires_at and first and s.expires_at > first)})
            nb.logout()
            """
        result = run_scenario("\n".join(textwrap.dedent(part) for part in (setup, example, check)))
        issued = gateway.issued
        rejected = dict(gateway.rejected)
    assert result["codes"] == [200], result  # no call failed across the expiries
    assert result["mode"] == "headers" and "X-Gateway-Token=" in result["credential"], result
    assert result["later_expiry"], result  # the token in force was replaced by a later one
    assert issued >= 4, issued  # refetched as each 2 s token expired (first + at least 3)
    assert rejected.get("expired", 0) == 0, rejected  # proactively, before the gateway refused one


def test_identity_and_close_hooks_are_used_by_login_status_and_logout(auth_server):
    import prefect_nbauth as nb

    closed: list[str] = []

    class PersonToken(nb.CredentialProvider):
        def fetch(self):
            return AUTH_STRING

        def identity(self):
            return "alice@example.com"

        def close(self):
            closed.append("closed")
            return "revoked alice's refresh token at the test IdP"

    person = PersonToken()
    try:
        assert nb.login(auth_server.api_url, auth_string=person).identity == "alice@example.com"
        nb.login(auth_server.api_url, auth_string=person)  # the same provider, kept: not closed
        assert closed == []
        nb.login(auth_server.api_url, auth_string=AUTH_STRING)  # replaced: closed once
        assert closed == ["closed"]
        nb.login(auth_server.api_url, auth_string=PersonToken())
    finally:
        nb.logout()
    assert closed == ["closed", "closed"]
