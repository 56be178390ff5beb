"""stream_events(): every matching Prefect event exactly once, live, authenticated.

This module is the public face of the stream: :class:`EventStream` (async and
sync iteration, background delivery) and :func:`stream_events`, which checks
its input and builds an engine (:mod:`._engine`). The package docstring maps the
other modules.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .._boundary import public
from .._exceptions import ConfigurationError
from ._engine import StreamState, StreamStats, _Engine, _Options, exponential_backoff
from ._filter import build_filter, check_seconds
from ._outbox import _END
from ._transport import socket_url

if TYPE_CHECKING:
    from prefect.events.schemas.events import ReceivedEvent

__all__ = [
    "BackgroundStream",
    "EventStream",
    "StreamState",
    "StreamStats",
    "exponential_backoff",
    "stream_events",
]

logger = logging.getLogger("prefect_nbauth.events")


class EventStream:
    """A running (or not yet started) subscription; see :func:`stream_events`.

    Iterate it with ``async for`` (on the current event loop) or ``for`` (on a
    background thread), or hand it callbacks with :meth:`run_in_background`.
    A stream runs once; close it with :meth:`close`/:meth:`aclose` or a
    ``with``/``async with`` block.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._mode: str | None = None  # "async" | "thread"
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._finalizer = weakref.finalize(self, engine.request_stop)

    # ------------------------------------------------------------ observing
    @property
    def state(self) -> StreamState:
        return self._engine.state

    @property
    def stats(self) -> StreamStats:
        return self._engine.stats()

    @property
    def error(self) -> BaseException | None:
        """The error that ended the stream (AuthenticationError, NotPrefectServerError…), if any."""
        return self._engine.error

    @property
    def api_url(self) -> str:
        return self._engine.api_url

    def __repr__(self) -> str:
        stats = self.stats
        return (f"<EventStream {self.api_url} {self.state.value} live={stats.live} "
                f"reconciled={stats.reconciled}>")

    # ------------------------------------------------------------- starting
    def _claim(self, mode: str) -> None:
        if self._mode is not None:
            raise RuntimeError(
                "This EventStream was already started; a stream runs once. Create a new one "
                "with prefect_nbauth.stream_events(...)."
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
                logger.exception("event stream thread failed")
            finally:
                engine.outbox.close()
                engine._finished.set()

        self._thread = threading.Thread(target=main, name="prefect-nbauth-events", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ iterating
    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> "ReceivedEvent":
        if self._mode is None:
            self._start_async()
        elif self._mode != "async":
            raise RuntimeError("This stream runs on a background thread; iterate it with `for`.")
        item = await self._engine.outbox.aget()
        if item is _END:
            if self._task is not None:
                await asyncio.shield(self._task)
            if self._engine.error is not None:
                raise self._engine.error
            raise StopAsyncIteration
        event: ReceivedEvent = item
        return event

    def __iter__(self) -> Iterator["ReceivedEvent"]:
        self._start_thread()
        try:
            while True:
                item = self._engine.outbox.get()
                if item is _END:
                    break
                yield item
            self._engine.wait_finished(10)
            if self._engine.error is not None:
                raise self._engine.error
        finally:
            self.close()

    def run_in_background(self, on_event: Callable[[Any], None],
                          on_change: Callable[["EventStream"], None] | None = None) -> "BackgroundStream":
        """Deliver events to ``on_event`` on a daemon thread with its own event loop.

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

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackgroundStream:
    """Handle of :meth:`EventStream.run_in_background`: ``stop()``, ``stream``, ``error``."""

    def __init__(self, stream: EventStream) -> None:
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


@public()
def stream_events(
    *,
    prefix: str | Sequence[str] | None = None,
    resource: str | Sequence[str] | None = None,
    labels: Mapping[str, str | Sequence[str]] | None = None,
    related: str | Sequence[str] | None = None,
    since: datetime | None = None,
    reconcile_interval: float = 5.0,
    lookback: float = 300.0,
    filter: Any = None,
    credential_wait: float = 60.0,
    buffer: int = 10_000,
    max_tracked: int = 200_000,
    backoff: Callable[[], Iterator[float]] | None = None,
) -> EventStream:
    """Stream Prefect events: every matching event exactly once, live, authenticated.

    ::

        async for event in prefect_nbauth.stream_events(prefix="prefect.flow-run."):
            print(event.occurred, event.event, event.resource.id)

        for event in prefect_nbauth.stream_events(resource="prefect.flow-run.*"):  # sync code
            ...

        handle = prefect_nbauth.stream_events().run_in_background(print)  # widgets
        handle.stop()

    Filters (all optional, combined with AND; a list inside one means any of):
    ``prefix`` event-name prefixes; ``resource`` resource ids (``*`` and ``?``
    are wildcards, ``!`` negates); ``labels`` resource labels, e.g.
    ``{"prefect.resource.name": ["etl*"]}``; ``related`` ids of related
    resources; ``since`` an aware datetime to start from (default: now; the
    past is read back first); ``filter`` any other ``EventFilter`` field (a
    ``prefect.events.filters.EventFilter`` or a dict: ``any_resource``,
    ``text``, ``event.exclude_prefix``...).

    The credential is the one in force (``login()``, token rotation, or
    Prefect's settings), taken anew on every (re)connect: the websocket carries
    every header (Basic or Bearer ``Authorization``, gateway headers) and
    Prefect's auth message. On an auth rejection (close 1008, HTTP 401/403) the
    stream refreshes the credential once; when that gives nothing new, it waits
    up to ``credential_wait`` seconds for one (``login()`` with the new value);
    a refreshed credential that is rejected too ends the stream with
    ``AuthenticationError``, as does the wait running out.

    **Delivery contract.** While the stream runs, every event that the Prefect
    server persists, that matches the filter and whose ``occurred`` is at or
    after ``since``, is delivered exactly once, provided it is persisted within
    ``lookback`` seconds (default 300) of its ``occurred`` time, or the server
    was unreachable in between (then the window reaches back to before the
    outage). This holds across events Prefect's server drops for a slow
    subscriber (its queue holds 256), websocket reconnects, a server restart
    and token rotation. Events are deduplicated by id.

    - *How.* Live events come over the websocket with Prefect's own latency.
      Completeness comes from reconciliation against the REST API
      (``POST /events/filter``, pages of 50): right after every (re)connect,
      every ``reconcile_interval`` seconds (default 5), and at once when a
      burst may have overflowed the server's queue. A pass compares the
      server's count of matching events in the window with what was delivered
      and reads only what is missing, so a quiet pass costs two or three small
      requests.
    - *How late.* An event the websocket missed arrives at most
      ``reconcile_interval`` seconds, plus the time to read it, after the
      server has persisted it (every 0.5 s while a burst is being recovered).
      Prefect persists in batches (``PREFECT_SERVER_SERVICES_EVENT_PERSISTER_
      FLUSH_INTERVAL``, 5 s by default; a 10,000-event burst takes it several
      more seconds), and the REST API shows only persisted events.
    - *Order.* Live events arrive in the order the server receives them
      (which is ``occurred`` order for one emitter); each recovered batch is
      delivered in ``occurred`` order. An event delivered after one that
      occurred later has ``event.late == True``; ``event.delivery`` is
      ``"live"`` or ``"reconciled"``. Sort by ``(occurred, id)`` for a total
      order.
    - *Not covered.* Events delivered live but never persisted (a server
      killed before its persister flushed) may be delivered yet absent from
      the server; an event persisted more than ``lookback`` seconds after it
      occurred, without an outage, is delivered only if the websocket saw it.
      Events already in the consumer's buffer when the stream is closed are
      not delivered.
    - *Memory.* Ids of delivered events are kept while their ``occurred`` is
      inside the window (``lookback``) and for ``lookback`` seconds after
      arrival, at most ``max_tracked`` (past it the window shrinks, oldest
      first); at most ``buffer`` events wait for a slow consumer (then the
      stream stops reading the socket and recovers the rest via REST).

    Observe ``stream.state`` (a :class:`StreamState`: connecting, connected,
    reconnecting, reconciling, stopped) and ``stream.stats`` (a
    :class:`StreamStats`: live, reconciled, duplicates, malformed, reconnects,
    last_error, ...). Frames that are not JSON or not events are counted in
    ``malformed`` and skipped. The stream reconnects for ever, with jittered
    exponential backoff capped at 5 s (``backoff`` takes a zero-argument
    callable returning an iterator of delays), and ends only when closed, on a
    rejected credential (``AuthenticationError``), when the URL is not a
    Prefect API (``NotPrefectServerError``), or when the server refuses the
    filter or the API URL in force changes (``ConfigurationError``); the error
    is raised by the iterator after the events already received, and kept in
    ``stream.error``.

    Raises ``ConfigurationError`` at once for a malformed filter (unknown
    fields, a naive or future ``since``, empty lists), bad options, or no
    Prefect API URL in force.
    """
    reconcile_interval = check_seconds("reconcile_interval", reconcile_interval, minimum=0.01)
    lookback = check_seconds("lookback", lookback, minimum=1.0)
    if lookback <= reconcile_interval:
        raise ConfigurationError(
            f"lookback ({lookback:g} s) must be longer than reconcile_interval "
            f"({reconcile_interval:g} s): each pass re-checks the last `lookback` seconds."
        )
    credential_wait = check_seconds("credential_wait", credential_wait, allow_zero=True)
    for name, value, minimum in (("buffer", buffer, 1), ("max_tracked", max_tracked, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer of at least {minimum}.")
    if backoff is not None and not callable(backoff):
        raise ConfigurationError("backoff must be a callable returning an iterator of delays in seconds.")
    sfilter = build_filter(prefix=prefix, resource=resource, labels=labels, related=related,
                           since=since, filter=filter)

    from .._session import socket_credential

    credential = socket_credential()
    if not credential.api_url:
        raise ConfigurationError(
            "No Prefect API URL is in force, so there is nothing to stream from. Log in first: "
            "prefect_nbauth.login('http://HOST:4200/api', auth_string=...) or set PREFECT_API_URL."
        )
    socket_url(credential.api_url)  # an http(s) URL, or ConfigurationError
    options = _Options(
        reconcile_interval=reconcile_interval, lookback=lookback, credential_wait=credential_wait,
        buffer=buffer, max_tracked=max_tracked,
        backoff=backoff or (lambda: exponential_backoff()),
        ghost_after=max(60.0, 4 * reconcile_interval),
    )
    return EventStream(_Engine(sfilter, credential.api_url.rstrip("/"), options))
