"""Which websocket failures earn a refresh, and that the seam retries once with the new credential.

Unit tests: real ``websockets`` exception objects, Prefect's own events client
class with its connection swapped for a stub (the real-server version of this is
``tests/server/test_rotation_idp.py``).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from prefect_nbauth import _prefect_seam as seam
from prefect_nbauth.session._socket_credential import auth_rejection


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
    """A provider issuing token-1, token-2, …: counts how often the login asked it."""

    def __new__(cls) -> Any:
        from prefect_nbauth import CredentialProvider

        class Counting(CredentialProvider):
            calls = 0

            def fetch(self) -> Any:
                type(self).calls += 1
                return f"gateway-token-{type(self).calls}", 3600

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
