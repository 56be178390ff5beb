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
    CredentialProvider,
    CredentialProviderError,
    EnvToken,
    FileToken,
    OAuth2ClientCredentials,
    StaticToken,
    Token,
)
from prefect_nbauth._secrets import Secret

CANARY = "tok-CANARY-5d1e7a"


def make_jwt(exp: float | None, sub: str = "svc") -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": sub} | ({"exp": exp} if exp is not None else {})
    return f"{b64({'alg': 'none'})}.{b64(claims)}.sig"


def test_static_token_and_ttl() -> None:
    token = StaticToken("abc", ttl=60).obtain()
    assert token.value.reveal() == "abc"
    assert token.expires_at is not None and 55 < token.remaining() <= 60
    assert not StaticToken("abc").refreshable


def test_jwt_exp_is_read_without_verifying() -> None:
    exp = time.time() + 120
    token = StaticToken(make_jwt(exp)).obtain()
    assert token.expires_at == datetime.fromtimestamp(exp, tz=timezone.utc)
    assert StaticToken(make_jwt(None)).obtain().expires_at is None  # no exp, no ttl: unknown


def test_env_token_rereads(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = EnvToken("NBAUTH_TEST_TOKEN")
    monkeypatch.setenv("NBAUTH_TEST_TOKEN", "one")
    assert provider.obtain().value.reveal() == "one"
    monkeypatch.setenv("NBAUTH_TEST_TOKEN", "two")
    assert provider.obtain().value.reveal() == "two"
    monkeypatch.delenv("NBAUTH_TEST_TOKEN")
    with pytest.raises(CredentialProviderError, match="NBAUTH_TEST_TOKEN is not set"):
        provider.obtain()


def test_file_token_gives_the_same_token_until_the_file_changes(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    provider = FileToken(path, ttl=60)
    first = provider.obtain()
    assert first.value.reveal() == "first"
    # Unchanged file: the same token, whose expiry does not move for having been read again.
    assert provider.obtain(previous=first) is first
    path.write_text("second-longer\n")
    assert provider.obtain(previous=first).value.reveal() == "second-longer"
    path.unlink()
    with pytest.raises(CredentialProviderError, match="does not exist"):
        provider.obtain()


def test_command_token(tmp_path) -> None:
    token = CommandToken([sys.executable, "-c", "print('from-command')"]).obtain()
    assert token.value.reveal() == "from-command"
    with pytest.raises(CredentialProviderError, match="exited with status 3: not logged in"):
        CommandToken([sys.executable, "-c",
                      "import sys; print('not logged in', file=sys.stderr); sys.exit(3)"]).obtain()
    with pytest.raises(CredentialProviderError, match="was not found"):
        CommandToken("definitely-not-a-command-nbauth").obtain()
    with pytest.raises(CredentialProviderError, match="did not finish within 0.5 s"):
        CommandToken([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5).obtain()
    with pytest.raises(CredentialProviderError, match="empty token"):
        CommandToken([sys.executable, "-c", "pass"]).obtain()
    with pytest.raises(CredentialProviderError, match="printed no token, only on stderr: please run login"):
        CommandToken([sys.executable, "-c", "import sys; print('please run login', file=sys.stderr)"]).obtain()
    # A warning on stderr beside a token on stdout is normal (gcloud does it).
    token = CommandToken([sys.executable, "-c",
                          "import sys; print('WARNING: old sdk', file=sys.stderr); print('tok')"]).obtain()
    assert token.value.reveal() == "tok"


def test_command_failure_never_prints_the_token() -> None:
    code = f"import sys; print('{CANARY}'); print('{CANARY} rejected', file=sys.stderr); sys.exit(1)"
    with pytest.raises(CredentialProviderError) as info:
        CommandToken([sys.executable, "-c", code]).obtain()
    assert CANARY not in str(info.value)


def test_callable_token_sync_async_tuple_and_failures() -> None:
    assert CallableToken(lambda: "tok-Sync-6").obtain().value.reveal() == "tok-Sync-6"

    async def produce() -> str:
        await asyncio.sleep(0)
        return "tok-Async-7"

    assert CallableToken(produce).obtain().value.reveal() == "tok-Async-7"
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert CallableToken(lambda: ("t", later)).obtain().expires_at == later
    assert 25 < CallableToken(lambda: ("t", 30)).obtain().remaining() <= 30

    def boom() -> str:
        raise RuntimeError("vault sealed")

    with pytest.raises(CredentialProviderError, match="raised RuntimeError: vault sealed"):
        CallableToken(boom).obtain()
    release = threading.Event()
    with pytest.raises(CredentialProviderError, match="did not return within 0.2 s"):
        CallableToken(lambda: release.wait(30), timeout=0.2).obtain()
    release.set()
    for bad, fragment in [("", "empty"), ("a\nb", "several lines"), (42, "returned int"),
                          ("x" * 70000, "not a token")]:
        with pytest.raises(CredentialProviderError, match=fragment):
            CallableToken(lambda bad=bad: bad).obtain()
    with pytest.raises(CredentialProviderError, match="naive"):
        CallableToken(lambda: ("t", datetime.now())).obtain()


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
        token = provider.obtain()
        assert token.value.reveal() == CANARY and 0.5 < token.remaining() <= 1  # less the rounding
        body = seen[0].content.decode()
        assert "grant_type=client_credentials" in body and "scope=prefect" in body
        assert seen[0].headers["authorization"].startswith("Basic ")
    else:
        with pytest.raises(CredentialProviderError, match=fragment) as info:
            provider.obtain()
        assert "client-secret" not in str(info.value) and CANARY not in str(info.value)
    assert real_post is not post


def test_oauth2_endpoint_unreachable() -> None:
    with pytest.raises(CredentialProviderError, match="could not be reached"):
        OAuth2ClientCredentials("http://127.0.0.1:9/token", "id", "secret", timeout=2).obtain()


def test_expiry_comes_from_the_token_and_allows_for_whole_second_rounding() -> None:
    import jwt as pyjwt

    from prefect_nbauth.session.providers._oauth2 import expiry_from_response

    sent = 1_800_000_000.0
    # An opaque token: expires_in counted from the request, less the issuer's rounding.
    assert expiry_from_response("opaque", 5, sent).timestamp() == sent + 4
    assert expiry_from_response("opaque", 1, sent).timestamp() == sent + 0.5
    assert expiry_from_response("opaque", 2.5, sent).timestamp() == sent + 2.5  # not whole seconds
    assert expiry_from_response("opaque", None, sent) is None
    # A JWT says itself when it ends (its exp already holds the issuer's rounding).
    token = pyjwt.encode({"exp": int(sent) + 7, "iat": int(sent) + 2}, "k" * 32, algorithm="HS256")
    assert expiry_from_response(token, 5, sent).timestamp() == sent + 7


# ------------------------------------------------------------ the provider protocol


class _Returns(CredentialProvider):
    """A user's provider: overrides fetch() only, returning whatever it was given."""

    def __init__(self, result: object) -> None:
        self.result = result

    def fetch(self):
        return self.result


def test_a_provider_overrides_fetch_and_may_return_a_string_a_pair_or_a_token() -> None:
    assert _Returns("tok-Plain-1").obtain().value.reveal() == "tok-Plain-1"
    assert _Returns(b"tok-Bytes-2\n").obtain().value.reveal() == "tok-Bytes-2"
    pair = _Returns(("tok-Paired-3", 2.0)).obtain()
    assert pair.value.reveal() == "tok-Paired-3" and 1.0 < pair.remaining() <= 2.0
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert _Returns(("tok-Dated-4", later)).obtain().expires_at == later
    assert _Returns(("tok-NoExpiry-5", None)).obtain().expires_at is None
    given = Token(Secret("as-token"), later)
    assert _Returns(given).obtain() is given


def test_an_async_fetch_is_awaited_even_from_a_running_event_loop() -> None:
    class AsyncProvider(CredentialProvider):
        async def fetch(self):
            await asyncio.sleep(0)
            return "from-async", 30

    async def inside_a_loop() -> Token:  # a notebook cell runs on a loop: asyncio.run would fail
        return AsyncProvider().obtain()

    token = asyncio.run(inside_a_loop())
    assert token.value.reveal() == "from-async" and token.remaining() > 25


@pytest.mark.parametrize("result, fragment", [
    (("t", "soon"), "seconds to live or a timezone-aware datetime"),
    (("t", True), "seconds to live"),
    (("t", 1, 2), "tuple of 3"),
    (None, "returned NoneType"),
    ("", "empty token"),
    ("two\nlines", "several lines"),
])
def test_what_fetch_returns_is_checked_outside_the_override(result: object, fragment: str) -> None:
    with pytest.raises(CredentialProviderError, match=fragment):
        _Returns(result).obtain()


def test_a_provider_bug_becomes_an_error_naming_the_provider_never_the_token() -> None:
    class Leaky(CredentialProvider):
        def describe(self) -> str:
            return "leaky vault"

        def fetch(self):
            raise KeyError(f"lease for token {CANARY} revoked")

    remember = _Returns(CANARY)
    remember.obtain()  # the token was seen: from now on the egress knows it
    with pytest.raises(CredentialProviderError) as info:
        Leaky().obtain()
    message = str(info.value)
    assert message.startswith("leaky vault failed: KeyError:") and CANARY not in message
    assert info.value.__cause__ is None and info.value.__context__ is None or CANARY not in repr(
        info.value.__context__)


def test_a_provider_without_fetch_and_old_style_overrides_are_refused_clearly() -> None:
    class Forgot(CredentialProvider):
        pass

    with pytest.raises(CredentialProviderError, match="does not implement fetch"):
        Forgot().obtain()
    with pytest.raises(TypeError, match="the method to override is fetch"):
        class OldStyle(CredentialProvider):  # noqa: F841 - the class statement is the test
            def _fetch(self):
                return "x"
    with pytest.raises(TypeError, match="override fetch\\(\\) instead"):
        class SkipsChecks(CredentialProvider):  # noqa: F841
            def obtain(self, previous=None):
                return Token(Secret("x"))


def test_the_built_in_providers_use_the_same_protocol() -> None:
    import prefect_nbauth

    for name in ("StaticToken", "EnvToken", "FileToken", "CommandToken", "CallableToken",
                 "OAuth2ClientCredentials"):
        cls = getattr(prefect_nbauth, name)
        assert "fetch" in cls.__dict__ and "obtain" not in cls.__dict__, name
    assert StaticToken("x").refreshable is False and EnvToken("X").refreshable is True
    assert repr(StaticToken(CANARY)) == "<the given value>"
