"""The bounded hand-over of events (or logs) from a stream's event loop to its consumer.

The producer waits (asynchronously) when the consumer falls ``maxsize`` events
behind: the websocket reader then stops reading, Prefect's server drops for the
stream, and reconciliation reads those events back later. The consumer is a
coroutine on the same loop or another thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

__all__ = ["END", "Outbox"]

END = object()  # end of the stream in an outbox


class Outbox:
    """Bounded hand-over from the stream's event loop to its consumer.

    The producer side runs on the stream's loop and waits (asynchronously) when
    the consumer is ``maxsize`` events behind: the websocket reader then stops
    reading, Prefect's server drops for us, and reconciliation reads those
    events back later. The consumer is a coroutine on the same loop
    (:meth:`aget`) or another thread (:meth:`get`).
    """

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._maxsize = maxsize
        self._closed = False
        self.waits = 0  # puts that found it full: the producer stopped reading meanwhile
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: asyncio.Event | None = None
        self._waiter: asyncio.Future[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._space = asyncio.Event()

    def _wake_consumer(self, on_loop: bool = False) -> None:
        self._cond.notify_all()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if on_loop and waiter.get_loop() is self._loop:
                # A consumer on the producer's own loop (async iteration, run_in_background):
                # wake it directly, one loop turn sooner than through call_soon_threadsafe.
                waiter.set_result(None)
            else:
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def put(self, item: Any) -> bool:
        assert self._space is not None
        while True:
            with self._cond:
                if self._closed:
                    return False
                if len(self._items) < self._maxsize:
                    self._items.append(item)
                    self._wake_consumer(on_loop=True)
                    return True
                self._space.clear()
            self.waits += 1
            await self._space.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._wake_consumer()
        if self._space is not None:
            self._space.set()

    def _took(self) -> None:
        # Called with the lock held, after a pop.
        if len(self._items) == self._maxsize - 1 and self._space is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._space.set)
            except RuntimeError:  # the stream's loop is closed: nothing waits any more
                pass

    async def aget(self) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._items:
                    item = self._items.popleft()
                    self._took()
                    return item
                if self._closed:
                    return END
                waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def get(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                # Short waits keep Ctrl-C (KeyboardInterrupt) responsive.
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)
            if self._items:
                item = self._items.popleft()
                self._took()
                return item
            return END


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


