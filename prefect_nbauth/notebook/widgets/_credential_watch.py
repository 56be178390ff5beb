"""One daemon thread that tells widgets when the credential in force changes.

Two signals, neither on the kernel's main thread:

* ``prefect_nbauth.session`` notifications (``subscribe``), immediate, once the core sends them;
* a check, once a second, of which settings object Prefect uses: ``login()``,
  ``logout()`` and every rotation install a new one, so this sees every change
  even without notifications (and a ``refresh_global_settings_context()`` too).

Each registered widget gets ``_state_changed()`` after a change and ``_tick()``
every second (countdowns). Widgets are held weakly; the thread ends when none is
left and starts again with the next one.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Protocol

from ...session import settings_in_force, subscribe

__all__ = ["WATCHER", "Watched"]

WATCH_INTERVAL = 1.0  # seconds between checks of the settings in force (and ticks)


class Watched(Protocol):
    def _state_changed(self) -> None: ...

    def _tick(self) -> None: ...


class _Watcher:
    """See the module docstring."""

    def __init__(self) -> None:
        self._widgets: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._notified = False
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def add(self, widget: "Watched") -> None:
        with self._lock:
            self._widgets.add(widget)
            if self._unsubscribe is None:
                self._unsubscribe = subscribe(self._on_notify)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="prefect-nbauth-watch",
                                                daemon=True)
                self._thread.start()

    def remove(self, widget: "Watched") -> None:
        with self._lock:
            self._widgets.discard(widget)
        self._wake.set()

    def _on_notify(self, event: str) -> None:
        self._notified = True
        self._wake.set()

    def _run(self) -> None:
        last = settings_in_force()
        while True:
            self._wake.wait(WATCH_INTERVAL)
            self._wake.clear()
            with self._lock:
                targets = list(self._widgets)
                if not targets:
                    self._thread = None
                    if self._unsubscribe is not None:
                        self._unsubscribe()
                        self._unsubscribe = None
                    return
            current = settings_in_force()
            changed = self._notified or current is not last
            self._notified = False
            last = current
            for widget in targets:
                try:
                    if changed:
                        widget._state_changed()
                    widget._tick()
                except Exception:  # noqa: BLE001 - one broken widget must not stop the others
                    pass


WATCHER = _Watcher()
