"""Which websocket failures earn a refresh, and that the seam retries once with the new credential.

Unit tests: real ``websockets`` exception objects, Prefect's own events client
class with its connection swapped for a stub (the real-server version of this is
``tests/server/test_rotation_idp.py``).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from prefect_nbauth import AuthenticationError
from prefect_nbauth import _prefect_seam as seam
from prefect_nbauth._secrets import Secret
from prefect_nbauth.session._socket_credential import auth_rejection
from prefect_nbauth.session.providers import Token
from prefect_nbauth.testing import wait_until

API = "http://127.0.0.1:9/api"


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", {}))  # type: ignore[arg-type]


def _handshake_failure(code: int) -> Exception:
    """What Prefect's _auth_handshake raises when the server closes the socket."""
    try:
        try:
            raise ConnectionClosedError(Close(code, "Invalid token"), None)
        except ConnectionClosedError as closed:
            raise Exception("Unable to authenticate to the event stream.") from closed  # noqa: TRY002 - as Prefect does
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (_status(401), "HTTP 401"),
    (_status(403), "HTTP 403"),
    (_handshake_failure(1008), "close 1008"),
    (_status(502), None),
    (_handshake_failure(1011), None),
    (ConnectionRefusedError(), None),
    (TimeoutError(), None),
])
def test_only_auth_refusals_count(exc: BaseException, expected: str | None) -> None:
    assert auth_rejection(exc) == expected


class _StubConnect:
    """Stands for websockets' connect(): refuses the first upgrade with 401."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0

    async def __aenter__(self) -> Any:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise _status(401)
        raise RuntimeError("connected")  # stop here: the retry reached the server


@pytest.fixture
def unwrapped_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's own ``_reconnect`` on every class the seam wraps, and empty slots (undone after)."""
    for cls in seam.socket_client_classes():
        # Prefect's own _reconnect, even if an earlier test's login() already wrapped it.
        monkeypatch.setattr(cls, "_reconnect", inspect.unwrap(cls._reconnect))
    monkeypatch.setattr(seam, "_ON_REJECTED", [None])
    monkeypatch.setattr(seam, "_REFRESH", [lambda client: None])


def _events_client(connect: _StubConnect) -> Any:
    from prefect.events.clients import PrefectEventsClient

    client = PrefectEventsClient.__new__(PrefectEventsClient)
    client._websocket = None
    client._events_socket_url = "ws://127.0.0.1:9/api/events/in"
    client._connect = connect
    return client


def test_the_seam_retries_once_after_a_refresh(unwrapped_seam: None) -> None:
    presented: list[int] = []
    decisions: list[tuple[str | None, int]] = []

    def refresh(client: Any) -> int:
        presented.append(len(presented))
        return presented[-1]

    async def on_rejected(exc: BaseException, used: int) -> bool:
        decisions.append((auth_rejection(exc), used))
        return auth_rejection(exc) is not None

    seam.install_socket_refresh(refresh, on_rejected=on_rejected)
    client = _events_client(_StubConnect(refusals=1))
    with pytest.raises(RuntimeError, match="connected"):
        asyncio.run(client._reconnect())
    assert client._connect.attempts == 2 and decisions == [("HTTP 401", 0)] and presented == [0, 1]

    # Refused again after the refresh: the error goes to Prefect (no loop of refreshes).
    decisions.clear()
    client._connect = _StubConnect(refusals=5)
    with pytest.raises(InvalidStatus):
        asyncio.run(client._reconnect())
    assert client._connect.attempts == 2 and len(decisions) == 1


def test_the_latest_socket_refresh_is_the_one_in_force(unwrapped_seam: None) -> None:
    """A class wrapped under one refresh follows a later install (a login after a test, a second login).

    Found in CI: a unit test's stand-in refresh, installed first, stayed in force for Prefect's
    logs subscriber when a later login() installed the real one, and a reconnect failed.
    """
    calls: list[str] = []
    seam.install_socket_refresh(lambda client: calls.append("first"))
    seam.install_socket_refresh(lambda client: calls.append("second"))
    with pytest.raises(RuntimeError, match="connected"):
        asyncio.run(_events_client(_StubConnect(refusals=0))._reconnect())
    assert calls == ["second"]
    assert all(getattr(cls._reconnect, "__wrapped__", None) for cls in seam.socket_client_classes())


# ---------------------------------------------- the login's rules, with a real Rotation


class _Counting:
    """A provider issuing gateway-token-1, gateway-token-2, …, each living ``lifetime`` seconds:
    counts how often the login asked it."""

    def __new__(cls) -> Any:
        from prefect_nbauth import CredentialProvider

        class Counting(CredentialProvider):
            calls = 0
            lifetime = 3600.0

            def fetch(self) -> Any:
                type(self).calls += 1
                return f"gateway-token-{type(self).calls}", type(self).lifetime

        return Counting()


@pytest.fixture
def gateway_login(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A login in force with one rotating gateway header, without a server (the state, as login() leaves it)."""
    from prefect_nbauth import _prefect_seam
    from prefect_nbauth._inputs import Credential
    from prefect_nbauth._secrets import Secret
    from prefect_nbauth.session import _rotation, _state
    from prefect_nbauth.session._refreshing import RefreshingToken

    monkeypatch.setattr(_rotation, "_REFUSALS", _rotation.RefusalMemory())
    provider = _Counting()
    token = RefreshingToken(provider, slot="header X-Gateway")
    first = token.fetch_initial()
    context = _prefect_seam.global_settings_context()
    login = _state.Login(original=context, installed=context,
                         credential=Credential(api_url="http://127.0.0.1:9/api",
                                               headers={"X-Gateway": Secret(first.value.reveal())}),
                         identity=None, workspace=None, server_version=None, server_auth=None,
                         persisted_to=None, tokens={"header X-Gateway": token})
    with _state.lock:
        _state.replace(login)
    try:
        yield provider, token
    finally:
        with _state.lock:
            _state.replace(None)


def test_a_socket_refused_again_after_its_refresh_is_not_refreshed_again(gateway_login: Any) -> None:
    """The "refreshed and refused again" rule: one refresh per refusal, none for the fresh token's."""
    from prefect_nbauth.session._socket_credential import refresh_after_rejection

    provider, token = gateway_login
    used = {"header X-Gateway": token.token}
    assert asyncio.run(refresh_after_rejection(_status(401), used)) is True  # refused: one refresh
    assert type(provider).calls == 2
    fresh = {"header X-Gateway": token.token}
    assert asyncio.run(refresh_after_rejection(_status(403), fresh)) is False  # the fresh one refused too
    assert type(provider).calls == 2  # …is not refreshed a second time
    # A socket still on the old token: the newer one is already there, so retry, without a fetch.
    assert asyncio.run(refresh_after_rejection(_status(401), used)) is True
    assert type(provider).calls == 2


def test_logout_puts_back_exactly_the_settings_in_force_before_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """logout() restores Prefect's global settings (the object, and so every value), without a server."""
    from prefect.settings import get_current_settings

    import prefect_nbauth as nb
    from prefect_nbauth import _prefect_seam
    from prefect_nbauth.session import _login

    def validate(credential: Any, tokens: Any, settings: Any, cloud: str, timeout: float) -> tuple[Any, ...]:
        return "nbuser", None, "3.9.1", "BASIC", credential  # what a real server would have said

    monkeypatch.setattr(_login, "_validate", validate)
    before = _prefect_seam.global_settings_context()
    url_before = get_current_settings().api.url
    nb.login("http://127.0.0.1:9/api", auth_string="nbuser:logout-restore-CANARY")
    assert _prefect_seam.global_settings_context() is not before
    assert str(get_current_settings().api.url) == "http://127.0.0.1:9/api"
    nb.logout()
    assert _prefect_seam.global_settings_context() is before
    assert get_current_settings().api.url == url_before
    assert get_current_settings().api.auth_string is None or \
        get_current_settings().api.auth_string.get_secret_value() != "nbuser:logout-restore-CANARY"


# ------------------------------- refused again: its age explains it, or it does not (one rule)


def _gateway(token: Any, refuse: Any, starved: Any = lambda value: False) -> tuple[httpx.MockTransport, list[str]]:
    """A gateway in front of the login's API URL: ``refuse(value)`` says which tokens it refuses.

    ``starved(value)``: the request carrying this token reaches the gateway only once the
    token has expired, as a request from a kernel starved of CPU between the refresh and
    the send does (the gateway's introspection then says "inactive": refused).
    """
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        value = request.headers.get("X-Gateway", "")
        seen.append(value)
        if starved(value):
            presented = token.token
            assert presented.value.reveal() == value
            wait_until(presented.expired, timeout=30, what="the presented token to expire")
            return httpx.Response(401)
        return httpx.Response(401 if refuse(value) else 200)

    return httpx.MockTransport(handle), seen


def test_a_fresh_token_refused_once_it_expired_earns_another_refresh(gateway_login: Any) -> None:
    """The starved kernel (issue: "401 twice" under load with 5 s tokens): token-1 is refused,
    token-2 is fetched for it but reaches the gateway only after it expired. Refused for its
    age, not because the provider hands out bad tokens: one more refresh, and the call works."""
    from prefect_nbauth.session._rotation import NB_AUTH

    provider, token = gateway_login
    type(provider).lifetime = 0.5  # the tokens fetched from now on
    transport, seen = _gateway(token, refuse=lambda v: v == "gateway-token-1",
                               starved=lambda v: v == "gateway-token-2")
    with httpx.Client(transport=transport, auth=NB_AUTH) as client:
        assert client.get(f"{API}/flows").status_code == 200
    assert seen == ["gateway-token-1", "gateway-token-2", "gateway-token-3"]
    assert type(provider).calls == 3


def test_a_provider_handing_out_rejected_unexpired_tokens_is_given_up_on_at_once(gateway_login: Any) -> None:
    from prefect_nbauth.session._rotation import NB_AUTH

    provider, token = gateway_login
    transport, seen = _gateway(token, refuse=lambda v: True)
    with httpx.Client(transport=transport, auth=NB_AUTH) as client:
        with pytest.raises(AuthenticationError, match="401 twice"):
            client.get(f"{API}/flows")
        for _ in range(5):  # more requests: the refused fresh token is not refreshed again
            with pytest.raises(AuthenticationError):
                client.get(f"{API}/flows")
    assert type(provider).calls == 2  # the login's fetch and one refresh: no storm
    assert seen == ["gateway-token-1", "gateway-token-2"] + ["gateway-token-2"] * 5


def test_tokens_that_always_expire_before_use_are_given_up_on_after_a_few(gateway_login: Any) -> None:
    """Age explains a refusal only so many times in a row: a provider whose every token
    expires before it can be used (or arrives expired) costs a handful of fetches, not a storm."""
    from prefect_nbauth.session._rotation import NB_AUTH, RefusalMemory

    provider, token = gateway_login
    type(provider).lifetime = 0.2
    transport, seen = _gateway(token, refuse=lambda v: True, starved=lambda v: v != "gateway-token-1")
    with httpx.Client(transport=transport, auth=NB_AUTH) as client:
        with pytest.raises(AuthenticationError, match="401 twice"):
            client.get(f"{API}/flows")
    assert type(provider).calls == 2 + RefusalMemory.MAX_AGED  # the login's, the first refresh, the aged ones
    assert len(seen) == type(provider).calls


def test_an_accepted_token_ends_the_chain_of_aged_refusals() -> None:
    from datetime import datetime, timedelta, timezone

    from prefect_nbauth.session._rotation import RefusalMemory

    now = datetime.now(timezone.utc)
    never = RefusalMemory()
    never.refreshed_after_refusal("a")  # no token that expires: its age never explains a refusal
    assert never.refused_again("a", now + timedelta(days=365))
    memory = RefusalMemory()
    aged = Token(Secret("x"), expires_at=now + timedelta(seconds=10), obtained_at=now)
    previous: Any = None
    for n in range(RefusalMemory.MAX_AGED + 1):
        memory.refreshed_after_refusal(n, {"s": aged}, refused=previous)
        assert memory.refused_again(n, now)  # refused long before it expires: give up
        # Refused after it expired: one more refresh, MAX_AGED times in a row.
        assert memory.refused_again(n, now + timedelta(seconds=11)) == (n == RefusalMemory.MAX_AGED)
        previous = n
    memory.accepted(previous)  # it worked: the chain starts again
    memory.refreshed_after_refusal("again", {"s": aged}, refused=previous)
    assert not memory.refused_again("again", now + timedelta(seconds=11))


def test_a_socket_refused_after_its_fresh_token_expired_is_refreshed(gateway_login: Any) -> None:
    """Prefect's sockets follow the same rule (the existing test above: unexpired, given up)."""
    from prefect_nbauth.session._socket_credential import refresh_after_rejection

    provider, token = gateway_login
    type(provider).lifetime = 0.5
    used = {"header X-Gateway": token.token}
    assert asyncio.run(refresh_after_rejection(_status(401), used)) is True
    fresh = {"header X-Gateway": token.token}
    wait_until(fresh["header X-Gateway"].expired, timeout=30, what="the fresh token to expire")
    assert asyncio.run(refresh_after_rejection(_status(401), fresh)) is True  # its age: one more
    assert type(provider).calls == 3


def test_a_stream_whose_fresh_credential_expired_before_it_was_refused_goes_on(gateway_login: Any) -> None:
    """Our streams' keeper: "rejected … right after it was refreshed" only for an unexpired one."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_nbauth._exceptions import AuthenticationError as StreamAuthError
    from prefect_nbauth._streaming._credential import CredentialKeeper

    provider, token = gateway_login

    async def scenario() -> list[str]:
        keeper = CredentialKeeper(API, wait=0, on_wait=lambda text: None)
        said = []
        first = await keeper.get()
        type(provider).lifetime = 0.5
        fresh = await keeper.rejected(first, "HTTP 401")  # refused: refreshed once
        wait_until(token.token.expired, timeout=30, what="the fresh token to expire")
        type(provider).lifetime = 3600
        again = await keeper.rejected(fresh, "HTTP 401 from /events/filter")  # its age: refreshed again
        said.append(again.raw_headers()["X-Gateway"])
        try:
            await keeper.rejected(again, "HTTP 401")  # refused long before it ages: the stream ends
        except StreamAuthError as exc:
            said.append(str(exc))
        return said

    with temporary_settings(updates={PREFECT_API_URL: API}):
        said = asyncio.run(scenario())
    assert said[0] == "gateway-token-3"
    assert "right after it was refreshed" in said[1]
    assert type(provider).calls == 3
