"""Prefect clients opened while logged in, and what the end of that login does to them.

Prefect gives a client its credential once, when the client is created: ``PrefectClient``
fixes ``Authorization`` in its httpx client's headers, the events and logs clients keep the
raw token and their websocket upgrade headers. Swapping the settings back at ``logout()``
therefore left ``c = get_client(); logout(); c.read_flows()`` authenticated, and every
stopped background client (the events worker's) holding the raw secret.

So each Prefect HTTP, events and logs client created while a login is in force, for that
login's API, carrying the credential that login's settings give, is remembered here:
weakly (no client is kept alive by this) and without any of its secret. When the login
ends (``logout()``, or a new ``login()``), each is pointed at the settings in force then:
a new login's credential when it is for the same API, otherwise whatever the settings
from before the first login give (usually nothing); after a logout, the next login takes
them over the same way. A client opened while no login was in force is never touched. A
websocket already connected stays connected (the server authenticated it once); it
presents the new credential, or none, when it reconnects.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Iterable

from .. import _prefect_seam as seam
from .. import _prefect_seam_clients as clients_seam
from .._urls import is_under

__all__ = ["Ended", "opened_count", "switch"]

_lock = threading.Lock()
_numbers = itertools.count(1)
_opened: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # client -> login number
_LOGGED_OUT = 0  # the "login" of clients opened under one that ended with logout()
_in_force: list[tuple[int, str] | None] = [None]  # (number, API URL) of the login in force


def _presents_settings(client: Any, settings: Any) -> bool:
    """Whether ``client`` carries the credential ``settings`` give (not one set by hand)."""
    if hasattr(client, "_auth_token"):  # an events or logs client: the raw token
        api = settings.api
        expected = {s.get_secret_value() for s in (api.auth_string, api.key) if s is not None}
        return clients_seam.client_authorization(client) in (expected or {None})
    return clients_seam.client_authorization(client) == clients_seam.settings_authorization(settings)


def _opened_now(client: Any) -> None:
    """The open-client hook: remember ``client`` if the login in force gave it its credential."""
    login = _in_force[0]
    if login is None:
        return
    number, api_url = login
    url = clients_seam.client_api_url(client)
    if url is None or not is_under(url, api_url):
        return
    if not _presents_settings(client, seam.active_settings_context().settings):
        return
    with _lock:
        _opened[client] = number


class Ended:
    """The clients of a login that has just ended, to point at the settings that follow it."""

    def __init__(self, clients: list[Any]) -> None:
        self._clients = [weakref.ref(c) for c in clients]

    def finish(self, gateway_headers: Iterable[str] = ()) -> int:
        """Point them at the settings in force now; returns how many were changed.

        ``gateway_headers``: the ended login's header names (websocket upgrade headers
        carried them). Call it after Prefect's background services were drained: events
        queued before the switch still go out with the credential they were queued under.
        """
        settings = seam.global_settings_context().settings
        names = list(gateway_headers)
        changed = 0
        for ref in self._clients:
            client = ref()
            if client is None:
                continue
            clients_seam.point_client_at(client, settings, drop=names)
            if _in_force[0] is None:  # logged out: the next login takes it over
                with _lock:
                    _opened[client] = _LOGGED_OUT
            else:
                _opened_now(client)  # the next login's, when it gave it its credential
            changed += 1
        self._clients = []
        return changed


def switch(api_url: str | None) -> Ended:
    """Another login (for ``api_url``), or none, is in force from now on.

    Clients opened from now on are remembered for it; the ones the ended login gave its
    credential are returned, for :meth:`Ended.finish`.
    """
    if api_url is not None:
        clients_seam.install_open_client_hook(_opened_now)
    with _lock:
        ended = _in_force[0]
        _in_force[0] = (next(_numbers), api_url.rstrip("/")) if api_url is not None else None
        ended_number = ended[0] if ended is not None else _LOGGED_OUT
        clients = [c for c, n in list(_opened.items()) if n == ended_number]
        for client in clients:
            _opened.pop(client, None)
    return Ended(clients)


def opened_count() -> int:
    """How many live clients the login in force has given its credential to (for tests)."""
    login = _in_force[0]
    with _lock:
        return sum(1 for n in list(_opened.values()) if login is not None and n == login[0])
