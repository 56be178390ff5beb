"""Refresh machinery and the httpx Auth, with fake providers and httpx's MockTransport.

The end-to-end proof (real Prefect, a real gateway rotating real JWTs) is in
test_rotation_real.py; these pin the concurrency rules precisely.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from prefect_nbauth import AuthenticationError, CredentialProvider, CredentialProviderError, Token
from prefect_nbauth._secrets import Secret
from prefect_nbauth.session._http_auth import NbAuth
from prefect_nbauth.session._refreshing import RefreshingToken


class CountingProvider(CredentialProvider):
    """Issues token-1, token-2, …; can be made slow (gate) or failing."""

    def __init__(self, lifetime: float | None = 3600) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.fail = False
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "counting provider"

    def fetch(self) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise CredentialProviderError("counting provider is down")
        expires = (datetime.now(timezone.utc) + timedelta(seconds=self.lifetime)
                   if self.lifetime is not None else None)
        return Token(Secret(f"token-{n}"), expires)


def test_concurrent_refreshes_of_the_same_stale_token_run_once() -> None:
    provider = CountingProvider()
    token = RefreshingToken(provider, slot="header X")
    stale = token.fetch_initial()
    provider.gate = threading.Event()
    provider.entered.clear()
    results: list[str] = []

    def worker() -> None:
        results.append(token.refresh(stale=stale, reason="HTTP 401").value.reveal())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    assert provider.entered.wait(5)
    provider.gate.set()
    for t in threads:
        t.join(5)
    assert provider.calls == 2  # the initial fetch and ONE refresh
    assert results == ["token-2"] * 8


def test_async_callers_on_several_loops_share_one_refresh() -> None:
    provider = CountingProvider()
    token = RefreshingToken(provider, slot="auth string")
    stale = token.fetch_initial()
    import anyio.to_thread

    async def many() -> list[str]:
        async def one() -> str:
            new = await anyio.to_thread.run_sync(lambda: token.refresh(stale=stale))
            return new.value.reveal()
        return list(await asyncio.gather(*(one() for _ in range(5))))

    outcomes: list[list[str]] = []
    loops = [threading.Thread(target=lambda: outcomes.append(asyncio.run(many()))) for _ in range(3)]
    for t in loops:
        t.start()
    for t in loops:
        t.join(10)
    assert provider.calls == 2
    assert outcomes == [["token-2"] * 5] * 3


def test_failed_refresh_keeps_a_valid_token_and_reports() -> None:
    provider = CountingProvider()
    token = RefreshingToken(provider, slot="API key")
    first = token.fetch_initial()
    provider.fail = True
    assert token.refresh(reason="forced") is first
    assert token.failures == 1 and "down" in (token.last_error or "")
    provider.fail = False
    assert token.refresh().value.reveal() == "token-3"
    assert token.last_error is None


def test_failed_refresh_of_an_expired_token_raises() -> None:
    provider = CountingProvider(lifetime=-1)  # born expired
    token = RefreshingToken(provider, slot="API key")
    token.fetch_initial()
    provider.fail = True
    with pytest.raises(CredentialProviderError, match="down"):
        token.refresh()


def test_proactive_refresh_happens_before_expiry() -> None:
    provider = CountingProvider(lifetime=0.6)
    refreshed = threading.Event()
    token = RefreshingToken(provider, slot="header X", margin=0.3,
                            on_refresh=lambda *_: refreshed.set())
    first = token.fetch_initial()
    token.start()
    try:
        assert refreshed.wait(5)
        assert first.expires_at is not None
        refreshed_at = token.last_refresh_at
        assert refreshed_at is not None and refreshed_at < first.expires_at
    finally:
        token.stop()


class FakeRotation:
    """What NbAuth asks of the session: apply the token, refresh after a 401."""

    def __init__(self, token: RefreshingToken) -> None:
        self.token = token
        self.fresh: set[int] = set()  # ids of tokens obtained because of a refusal

    def covers(self, request: httpx.Request) -> bool:
        return request.url.host == "prefect.test"

    def needs_refresh(self) -> bool:
        return self.token.token.expired()

    def ensure_fresh(self) -> None:
        self.token.current()

    def apply(self, request: httpx.Request) -> dict[str, Token]:
        current = self.token.token
        request.headers["Authorization"] = f"Bearer {current.value.reveal()}"
        return {"t": current}

    def refresh_after_rejection(self, used: dict[str, Token]) -> bool:
        new = self.token.refresh(stale=used["t"])
        self.fresh.add(id(new))
        return new is not used["t"]

    def rejected_twice_message(self) -> str:
        return "rejected twice"

    def succeeded(self, used: object) -> None:
        pass

    def refused_again(self, used: dict[str, Token]) -> bool:
        # The rule itself (its expiry exception included) is the real Rotation's: test_socket_auth.py.
        return id(used["t"]) in self.fresh


def _server(accepted: set[str], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        return httpx.Response(200 if auth.removeprefix("Bearer ") in accepted else 401)

    return httpx.MockTransport(handler)


def test_auth_refreshes_once_on_401_and_retries() -> None:
    token = RefreshingToken(CountingProvider(), slot="header Authorization")
    token.fetch_initial()
    seen: list[str] = []
    auth = NbAuth(lambda: FakeRotation(token))
    with httpx.Client(transport=_server({"token-2"}, seen), auth=auth) as client:
        assert client.get("https://prefect.test/api/flows").status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_auth_second_401_raises_authentication_error() -> None:
    token = RefreshingToken(CountingProvider(), slot="header Authorization")
    token.fetch_initial()
    auth = NbAuth(lambda: FakeRotation(token))
    with httpx.Client(transport=_server(set(), []), auth=auth) as client:
        with pytest.raises(AuthenticationError, match="rejected twice"):
            client.get("https://prefect.test/api/flows")


def test_async_auth_refreshes_off_the_event_loop() -> None:
    token = RefreshingToken(CountingProvider(), slot="header Authorization")
    token.fetch_initial()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        return httpx.Response(200 if auth == "Bearer token-2" else 401)

    async def go() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                     auth=NbAuth(lambda: FakeRotation(token))) as client:
            return (await client.get("https://prefect.test/api/flows")).status_code

    assert asyncio.run(go()) == 200
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_auth_leaves_other_hosts_and_inactive_logins_alone() -> None:
    token = RefreshingToken(CountingProvider(), slot="header Authorization")
    token.fetch_initial()
    seen: list[str] = []
    with httpx.Client(transport=_server(set(), seen), auth=NbAuth(lambda: FakeRotation(token))) as c:
        c.get("https://elsewhere.test/")
    with httpx.Client(transport=_server(set(), seen), auth=NbAuth(lambda: None)) as c:
        c.get("https://prefect.test/api")
    assert seen == ["", ""]


def test_the_default_margin_covers_a_second_of_clock_skew() -> None:
    from prefect_nbauth.session._refreshing import CLOCK_SKEW
    from prefect_nbauth.session.providers import StaticToken

    now = datetime.now(timezone.utc)
    refreshing = RefreshingToken(StaticToken("x"), slot="header X")

    def margin(lifetime: float) -> float:
        return refreshing.margin_for(Token(Secret("x"), now + timedelta(seconds=lifetime), now))

    assert CLOCK_SKEW >= 1.0
    assert margin(4) >= CLOCK_SKEW  # a "5 s" token counted as 4 s: refreshed >= 1 s early
    assert margin(3600) == 60.0  # capped at a minute
    assert margin(1) == 0.5  # never more than half the lifetime
