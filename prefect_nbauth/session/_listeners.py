"""Who wants to know when the credential in force changes (the status widget, mostly).

``login()`` (:mod:`._login`) calls :func:`notify` after a login, a logout, a forced refresh and a
background rotation; anything may :func:`subscribe`. The core stays free of
IPython: a subscriber is any callable taking the event name.

Callbacks run on the thread that made the change (a cell, a widget's worker
thread, a token's refresh timer), after the change is complete and with no lock
of :mod:`._state` held. They must return quickly and must not call ``login()``,
``logout()`` or ``refresh()`` themselves: a widget sets a flag and re-reads
``status()`` on its own thread. An exception in a callback is logged and
swallowed, so a broken subscriber can never break a login.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["EVENTS", "notify", "subscribe"]

logger = logging.getLogger("prefect_nbauth")

#: What :func:`notify` is called with.
EVENTS = ("login", "logout", "refresh", "rotation")

Listener = Callable[[str], None]

_lock = threading.Lock()
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(event)`` after every change; returns a function that unsubscribes.

    Unsubscribing twice is harmless.
    """
    if not callable(listener):
        raise TypeError("listener must be callable")
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            try:
                _listeners.remove(listener)
            except ValueError:
                pass

    return unsubscribe


def notify(event: str) -> None:
    """Tell every subscriber that the credential in force changed (``event`` in :data:`EVENTS`)."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - a subscriber must never break a login
            logger.debug("a credential-change listener failed", exc_info=True)
