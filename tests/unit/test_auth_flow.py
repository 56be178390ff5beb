"""NbAuth: one auth flow, driven by httpx's sync and async clients (MockTransport)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from prefect_nbauth import AuthenticationError
from prefect_nbauth.session._http_auth import NbAuth

API = "http://prefect.test/api"


class FakeRotation:
    """The part of session._rotation.Rotation that NbAuth uses; tokens are 't0', 't1', ..."""

    def __init__(self, accepted: set[str], expired: bool = False, forgets: bool = False) -> None:
        self.token = "t0"
        self.accepted = accepted
        self.expired = expired
        self.forgets = forgets  # never says "refused again" (as if its memory lost every entry)
        self.fresh: set[str] = set()  # tokens obtained because of a refusal
        self.refresh_threads: list[str] = []

    def covers(self, request: httpx.Request) -> bool:
        return str(request.url).startswith(API + "/")

    def needs_refresh(self) -> bool:
        return self.expired

    def ensure_fresh(self) -> None:
        self.refresh_threads.append(threading.current_thread().name)
        self.expired = False
        self.token = f"t{int(self.token[1:]) + 1}"

    def apply(self, request: httpx.Request) -> str:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def succeeded(self, used: object) -> None:
        pass

    def refused_again(self, used: object) -> bool:
        # The rule itself (its expiry exception included) is the real Rotation's: test_socket_auth.py.
        return not self.forgets and used in self.fresh

    def refresh_after_rejection(self, used: str) -> bool:
        self.refresh_threads.append(threading.current_thread().name)
        if used == self.token:
            self.token = f"t{int(self.token[1:]) + 1}"
        self.fresh.add(self.token)
        return True

    def rejected_twice_message(self) -> str:
        return "rejected twice"


def transport(accepted: set[str], seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen.append(token)
        return httpx.Response(200 if token in accepted else 401)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("accepted, expected_status, expected_seen", [
    ({"t0"}, 200, ["t0"]),           # accepted at once
    ({"t1"}, 200, ["t0", "t1"]),     # one 401, one refresh, one retry
])
def test_sync_flow_refreshes_once_on_401(accepted: set[str], expected_status: int,
                                         expected_seen: list[str]) -> None:
    rotation, seen = FakeRotation(accepted), []
    with httpx.Client(transport=transport(accepted, seen), auth=NbAuth(lambda: rotation)) as client:
        assert client.get(f"{API}/flows").status_code == expected_status
    assert seen == expected_seen


def test_a_second_401_raises_authentication_error_sync_and_async() -> None:
    rotation, seen = FakeRotation(set()), []
    with httpx.Client(transport=transport(set(), seen), auth=NbAuth(lambda: rotation)) as client:
        with pytest.raises(AuthenticationError, match="rejected twice"):
            client.get(f"{API}/flows")
    assert seen == ["t0", "t1"]

    async def go() -> None:
        rotation2, seen2 = FakeRotation(set()), []
        async with httpx.AsyncClient(transport=transport(set(), seen2), auth=NbAuth(lambda: rotation2)) as c:
            with pytest.raises(AuthenticationError):
                await c.get(f"{API}/flows")
        assert seen2 == ["t0", "t1"]

    asyncio.run(go())


def test_one_request_is_retried_a_bounded_number_of_times_whatever_the_rotation_says() -> None:
    from prefect_nbauth.session._http_auth import MAX_RETRIES

    rotation, seen = FakeRotation(set(), forgets=True), []
    with httpx.Client(transport=transport(set(), seen), auth=NbAuth(lambda: rotation)) as client:
        with pytest.raises(AuthenticationError, match="rejected twice"):
            client.get(f"{API}/flows")
    assert len(seen) == 1 + MAX_RETRIES


def test_async_flow_refreshes_on_a_worker_thread_never_on_the_loop() -> None:
    rotation, seen = FakeRotation({"t2"}, expired=True), []

    async def go() -> int:
        async with httpx.AsyncClient(transport=transport({"t2"}, seen), auth=NbAuth(lambda: rotation)) as c:
            return (await c.get(f"{API}/flows")).status_code

    loop_thread = threading.current_thread().name
    assert asyncio.run(go()) == 200
    assert seen == ["t1", "t2"]  # refreshed before sending (expired), then once more on the 401
    assert len(rotation.refresh_threads) == 2 and loop_thread not in rotation.refresh_threads


def test_requests_elsewhere_and_no_login_pass_through_untouched() -> None:
    rotation, seen = FakeRotation({"t0"}), []
    with httpx.Client(transport=transport({"t0"}, seen), auth=NbAuth(lambda: rotation)) as client:
        assert client.get("http://elsewhere.test/api/flows").status_code == 401  # no token for it
        assert client.get(f"{API}/flows").status_code == 200
    with httpx.Client(transport=transport({"t0"}, seen), auth=NbAuth(lambda: None)) as client:
        assert client.get(f"{API}/flows").status_code == 401  # no login: Prefect's own 401
    assert seen == ["", "t0", ""]
    assert rotation.refresh_threads == []


def test_both_drivers_run_the_one_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync and async drivers run the same generator: change it, and both change."""
    calls: list[object] = []

    def flow(self: NbAuth, request: httpx.Request) -> Any:
        calls.append(request.url.path)
        request.headers["X-Flow"] = "the one flow"
        response = yield request
        calls.append(response.status_code)

    monkeypatch.setattr(NbAuth, "_flow", flow)
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200 if r.headers.get("X-Flow") == "the one flow" else 500))
    auth = NbAuth(lambda: None)
    with httpx.Client(transport=transport, auth=auth) as client:
        assert client.get(API + "/sync").status_code == 200

    async def run() -> int:
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            return (await client.get(API + "/async")).status_code

    assert asyncio.run(run()) == 200
    assert calls == ["/api/sync", 200, "/api/async", 200]
