"""Coalesce many "something changed" signals into few, budgeted front-end updates.

A widget that follows a stream must not send one comm message per event: at
1,000 events/s that floods IOPub (Jupyter's default rate limit is 1,000
messages/s) and the browser. :class:`Throttle` runs the widget's ``flush`` on
its own daemon thread, at most ``max_per_second`` times a second, and spaces
flushes further apart when they are large, so that the bytes sent stay under
``max_bytes_per_second``. Pokes that arrive while it waits are merged into the
next flush: the front end always ends up showing the latest state.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

__all__ = ["Throttle"]

logger = logging.getLogger("prefect_nbauth")


class Throttle:
    """Call ``flush()`` after :meth:`poke`, within a message-rate and byte-rate budget.

    ``flush`` returns how many bytes it sent (0 when it sent nothing); it runs on
    the throttle's thread, never concurrently with itself.
    """

    def __init__(
        self,
        flush: Callable[[], int],
        *,
        max_per_second: float = 10.0,
        max_bytes_per_second: float = 50_000.0,
        name: str = "prefect-nbauth-throttle",
    ) -> None:
        if max_per_second <= 0 or max_bytes_per_second <= 0:
            raise ValueError("max_per_second and max_bytes_per_second must be positive")
        self._flush = flush
        self.min_interval = 1.0 / max_per_second
        self.max_bytes_per_second = float(max_bytes_per_second)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._next_allowed = 0.0
        self.flushes = 0
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Something changed: flush as soon as the budget allows (cheap, any thread)."""
        self._wake.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; pending pokes are dropped. Idempotent."""
        self._closed.set()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closed.is_set():
                return
            delay = self._next_allowed - time.monotonic()
            if delay > 0 and self._closed.wait(delay):  # the budget, cut short by close()
                return
            # Clear before flushing: a poke during the flush schedules another one.
            self._wake.clear()
            sent = 0
            try:
                sent = int(self._flush() or 0)
            except Exception:  # noqa: BLE001 - a rendering bug must not kill the thread
                logger.exception("a widget update failed")
            self.flushes += 1
            self.bytes_sent += sent
            self._next_allowed = time.monotonic() + max(
                self.min_interval, sent / self.max_bytes_per_second)
