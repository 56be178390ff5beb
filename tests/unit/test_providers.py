"""Credential providers: each source, its expiry, and every way it can fail (no server)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from prefect_nbauth import (
    CallableToken,
    CommandToken,
    CredentialProviderError,
    EnvToken,
    FileToken,
    OAuth2ClientCredentials,
    StaticToken,
)

CANARY = "tok-CANARY-5d1e7a"


def make_jwt(exp: float | None, sub: str = "svc") -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": sub} | ({"exp": exp} if exp is not None else {})
    return f"{b64({'alg': 'none'})}.{b64(claims)}.sig"


def test_static_token_and_ttl() -> None:
    token = StaticToken("abc", ttl=60).fetch()
    assert token.value.reveal() == "abc"
    assert token.expires_at is not None and 55 < token.remaining() <= 60
    assert not StaticToken("abc").refreshable


def test_jwt_exp_is_read_without_verifying() -> None:
    exp = time.time() + 120
    token = StaticToken(make_jwt(exp)).fetch()
    assert token.expires_at == datetime.fromtimestamp(exp, tz=timezone.utc)
    assert StaticToken(make_jwt(None)).fetch().expires_at is None  # no exp, no ttl: unknown


def test_env_token_rereads(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = EnvToken("NBAUTH_TEST_TOKEN")
    monkeypatch.setenv("NBAUTH_TEST_TOKEN", "one")
    assert provider.fetch().value.reveal() == "one"
    monkeypatch.setenv("NBAUTH_TEST_TOKEN", "two")
    assert provider.fetch().value.reveal() == "two"
    monkeypatch.delenv("NBAUTH_TEST_TOKEN")
    with pytest.raises(CredentialProviderError, match="NBAUTH_TEST_TOKEN is not set"):
        provider.fetch()


def test_file_token_rereads_only_when_the_file_changes(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    provider = FileToken(path)
    first = provider.fetch()
    assert first.value.reveal() == "first"
    assert provider.fetch() is first  # unchanged file: the same token, no re-read
    path.write_text("second-longer\n")
    assert provider.fetch().value.reveal() == "second-longer"
    path.unlink()
    with pytest.raises(CredentialProviderError, match="does not exist"):
        provider.fetch()


def test_command_token(tmp_path) -> None:
    token = CommandToken([sys.executable, "-c", "print('from-command')"]).fetch()
    assert token.value.reveal() == "from-command"
    with pytest.raises(CredentialProviderError, match="exited with status 3: not logged in"):
        CommandToken([sys.executable, "-c",
                      "import sys; print('not logged in', file=sys.stderr); sys.exit(3)"]).fetch()
    with pytest.raises(CredentialProviderError, match="was not found"):
        CommandToken("definitely-not-a-command-nbauth").fetch()
    with pytest.raises(CredentialProviderError, match="did not finish within 0.5 s"):
        CommandToken([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5).fetch()
    with pytest.raises(CredentialProviderError, match="empty token"):
        CommandToken([sys.executable, "-c", "pass"]).fetch()
    with pytest.raises(CredentialProviderError, match="printed no token, only on stderr: please run login"):
        CommandToken([sys.executable, "-c", "import sys; print('please run login', file=sys.stderr)"]).fetch()
    # A warning on stderr beside a token on stdout is normal (gcloud does it).
    token = CommandToken([sys.executable, "-c",
                          "import sys; print('WARNING: old sdk', file=sys.stderr); print('tok')"]).fetch()
    assert token.value.reveal() == "tok"


def test_command_failure_never_prints_the_token() -> None:
    code = f"import sys; print('{CANARY}'); print('{CANARY} rejected', file=sys.stderr); sys.exit(1)"
    with pytest.raises(CredentialProviderError) as info:
        CommandToken([sys.executable, "-c", code]).fetch()
    assert CANARY not in str(info.value)


def test_callable_token_sync_async_tuple_and_failures() -> None:
    assert CallableToken(lambda: "sync").fetch().value.reveal() == "sync"

    async def produce() -> str:
        await asyncio.sleep(0)
        return "async"

    assert CallableToken(produce).fetch().value.reveal() == "async"
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert CallableToken(lambda: ("t", later)).fetch().expires_at == later
    assert 25 < CallableToken(lambda: ("t", 30)).fetch().remaining() <= 30

    def boom() -> str:
        raise RuntimeError("vault sealed")

    with pytest.raises(CredentialProviderError, match="raised RuntimeError: vault sealed"):
        CallableToken(boom).fetch()
    release = threading.Event()
    with pytest.raises(CredentialProviderError, match="did not return within 0.2 s"):
        CallableToken(lambda: release.wait(30), timeout=0.2).fetch()
    release.set()
    for bad, fragment in [("", "empty"), ("a\nb", "several lines"), (42, "returned int"),
                          ("x" * 70000, "not a token")]:
        with pytest.raises(CredentialProviderError, match=fragment):
            CallableToken(lambda bad=bad: bad).fetch()
    with pytest.raises(CredentialProviderError, match="naive"):
        CallableToken(lambda: ("t", datetime.now())).fetch()


def _token_endpoint(mode: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if mode == "down":
            return httpx.Response(503, text="maintenance")
        if mode == "400":
            return httpx.Response(400, json={"error": "invalid_scope", "error_description": "no such scope"})
        if mode == "401":
            return httpx.Response(401, json={"error": "invalid_client"})
        if mode == "html":
            return httpx.Response(200, text="<html>login</html>")
        return httpx.Response(200, json={"access_token": CANARY, "token_type": "Bearer", "expires_in": 2})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [("ok", None), ("down", "is failing \\(HTTP 503\\)"), ("400", "invalid_scope: no such scope"),
     ("401", "invalid_client"), ("html", "not an OAuth2 token response")],
)
def test_oauth2_client_credentials(monkeypatch: pytest.MonkeyPatch, mode: str, fragment: str | None) -> None:
    seen: list[httpx.Request] = []
    transport = _token_endpoint(mode, seen)
    real_post = httpx.post

    def post(url, **kwargs):  # route the provider's request through the mock transport
        kwargs.pop("verify", None)
        with httpx.Client(transport=transport) as client:
            return client.post(url, **{k: v for k, v in kwargs.items() if k != "follow_redirects"})

    monkeypatch.setattr(httpx, "post", post)
    provider = OAuth2ClientCredentials("https://idp.example/token", "nbauth", "client-secret", scope="prefect")
    if fragment is None:
        token = provider.fetch()
        assert token.value.reveal() == CANARY and 1 < token.remaining() <= 2
        body = seen[0].content.decode()
        assert "grant_type=client_credentials" in body and "scope=prefect" in body
        assert seen[0].headers["authorization"].startswith("Basic ")
    else:
        with pytest.raises(CredentialProviderError, match=fragment) as info:
            provider.fetch()
        assert "client-secret" not in str(info.value) and CANARY not in str(info.value)
    assert real_post is not post


def test_oauth2_endpoint_unreachable() -> None:
    with pytest.raises(CredentialProviderError, match="could not be reached"):
        OAuth2ClientCredentials("http://127.0.0.1:9/token", "id", "secret", timeout=2).fetch()
