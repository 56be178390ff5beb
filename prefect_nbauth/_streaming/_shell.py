"""The public shell of a stream: iterate it (``async for``, ``for``) or run it in the background.

:class:`Stream` drives a :class:`~._engine.StreamEngine` on the current event
loop (``async for``) or on a daemon thread with its own loop (``for``,
:meth:`Stream.run_in_background`). :class:`~prefect_nbauth.EventStream` and
:class:`~prefect_nbauth.LogStream` are this shell over their own engines; they
differ only in what they deliver and what their state and stats are.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any, Callable, Generic, Iterator, TypeVar

from .._boundary import contain
from .._exceptions import ConfigurationError
from ._engine import StreamEngine
from ._outbox import END

__all__ = ["BackgroundStream", "Stream"]

logger = logging.getLogger("prefect_nbauth")

ItemT = TypeVar("ItemT")  # what the stream delivers (ReceivedEvent, Log)
StateT = TypeVar("StateT")
StatsT = TypeVar("StatsT")
SelfT = TypeVar("SelfT", bound="Stream[Any, Any, Any]")


class Stream(Generic[ItemT, StateT, StatsT]):
    """A running (or not yet started) subscription; see :func:`stream_events`, :func:`stream_logs`.

    Iterate it with ``async for`` (on the current event loop) or ``for`` (on a
    background thread), or hand it callbacks with :meth:`run_in_background`.
    A stream runs once; close it with :meth:`close`/:meth:`aclose` or a
    ``with``/``async with`` block.
    """

    _starter = "prefect_nbauth.stream_events(...)"  # named when a stream is started twice
    _thread_name = "prefect-nbauth-events"

    def __init__(self, engine: StreamEngine) -> None:
        self._engine = engine
        self._mode: str | None = None  # "async" | "thread"
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._finalizer = weakref.finalize(self, engine.request_stop)

    # ------------------------------------------------------------ observing
    @property
    def state(self) -> StateT:
        state: StateT = self._engine.state
        return state

    @property
    def stats(self) -> StatsT:
        stats: StatsT = self._engine.stats()
        return stats

    @property
    def error(self) -> BaseException | None:
        """The error that ended the stream (AuthenticationError, NotPrefectServerError…), if any.

        As every error that leaves the package: no frames of ours, every text scrubbed.
        """
        error = self._engine.error
        return contain(error) if error is not None else None

    @property
    def api_url(self) -> str:
        return self._engine.api_url

    def __repr__(self) -> str:
        stats = self._engine.stats()
        return (f"<{type(self).__name__} {self.api_url} {self._engine.state.value} live={stats.live} "
                f"reconciled={stats.reconciled}>")

    # ------------------------------------------------------------- starting
    def _claim(self, mode: str) -> None:
        if self._mode is not None:
            raise RuntimeError(
                f"This {type(self).__name__} was already started; a stream runs once. Create a new "
                f"one with {self._starter}."
            )
        self._mode = mode

    def _start_async(self) -> None:
        self._claim("async")
        self._task = asyncio.get_running_loop().create_task(self._engine.run())

    def _start_thread(self) -> None:
        self._claim("thread")
        engine = self._engine

        def main() -> None:
            try:
                asyncio.run(engine.run())
            except BaseException:  # noqa: BLE001 - already recorded on the engine
                logger.exception("%s thread failed", engine.label)
            finally:
                engine.outbox.close()
                engine._finished.set()

        self._thread = threading.Thread(target=main, name=self._thread_name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ iterating
    def __aiter__(self: SelfT) -> SelfT:
        return self

    async def __anext__(self) -> ItemT:
        if self._mode is None:
            self._start_async()
        elif self._mode != "async":
            raise RuntimeError("This stream runs on a background thread; iterate it with `for`.")
        item = await self._engine.outbox.aget()
        if item is END:
            if self._task is not None:
                await asyncio.shield(self._task)
            if self._engine.error is not None:
                raise contain(self._engine.error)  # iteration is a door of the public API too
            raise StopAsyncIteration
        result: ItemT = item
        return result

    def __iter__(self) -> Iterator[ItemT]:
        self._start_thread()
        try:
            while True:
                item = self._engine.outbox.get()
                if item is END:
                    break
                yield item
            self._engine.wait_finished(10)
            if self._engine.error is not None:
                raise contain(self._engine.error)  # iteration is a door of the public API too
        finally:
            self.close()

    def run_in_background(self: SelfT, on_event: Callable[[Any], None],
                          on_change: Callable[[SelfT], None] | None = None) -> "BackgroundStream":
        """Deliver each event (or log) to ``on_event`` on a daemon thread with its own event loop.

        ``on_event(event)`` and ``on_change(stream)`` run on that thread, in order;
        ``on_change`` follows every state change at once and counter changes at
        most four times a second. An exception in either is logged and shown in
        ``stats.last_error``; the stream goes on. Returns a handle whose
        ``stop()`` closes the stream and waits for the thread.
        """
        if not callable(on_event):
            raise ConfigurationError("on_event must be a callable taking one event.")
        if on_change is not None and not callable(on_change):
            raise ConfigurationError("on_change must be a callable taking the stream, or None.")
        self._engine.consumer = on_event
        # A background stream runs until stop() (or the process ends), even if nobody
        # keeps a reference to its handle: no stop on garbage collection here.
        self._finalizer.detach()
        if on_change is not None:
            self._engine.listeners.append(lambda: on_change(self))
        self._start_thread()
        return BackgroundStream(self)

    # -------------------------------------------------------------- closing
    def close(self, timeout: float = 10.0) -> None:
        """Stop the stream and (when it runs on a thread) wait for that thread."""
        self._engine.request_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    async def aclose(self) -> None:
        self._engine.request_stop()
        if self._task is not None:
            await asyncio.shield(self._task)
        elif self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream has stopped (by close() or an error); False on timeout."""
        return self._engine.wait_finished(timeout)

    async def __aenter__(self: SelfT) -> SelfT:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self: SelfT) -> SelfT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackgroundStream:
    """Handle of :meth:`Stream.run_in_background`: ``stop()``, ``stream``, ``error``."""

    def __init__(self, stream: Stream[Any, Any, Any]) -> None:
        self.stream = stream

    @property
    def running(self) -> bool:
        return self.stream._thread is not None and self.stream._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        return self.stream.error

    def stop(self, timeout: float = 10.0) -> None:
        """Close the stream and join its thread (idempotent)."""
        self.stream.close(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        return self.stream.wait(timeout)

    def __repr__(self) -> str:
        return f"<BackgroundStream {'running' if self.running else 'stopped'} {self.stream!r}>"
