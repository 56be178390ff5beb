"""stream_events(): every matching Prefect event exactly once, live, authenticated.

Prefect's server gives each websocket subscriber a queue of 256 events and drops
new ones when it is full; a burst of 1,000 reached Prefect's own subscriber as
260 events. This stream takes the websocket for latency and the REST API for
completeness: it counts what the server has persisted against what it has
delivered, and reads only what is missing (see ``_events_reconcile``).

Module map: ``_events_filter`` (input checks, the EventFilter), ``_events_ledger``
(bounded memory of what was delivered), ``_events_transport`` (websocket, REST,
credential refresh), ``_events_reconcile`` (the counting passes), this module
(the public API and the loop that ties them together).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence
from uuid import UUID

from ._boundary import public
from ._events_filter import StreamFilter, build_filter, check_seconds, from_us, to_us
from ._events_ledger import Ledger
from ._events_reconcile import Reconciler
from ._events_transport import (
    AuthRejected,
    CredentialKeeper,
    RestEvents,
    Retryable,
    classify_closed,
    describe,
    open_socket,
    socket_url,
    tls_settings,
    wait_for,
)
from ._exceptions import ConfigurationError, PrefectAuthError

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

_END = object()  # end of the stream in an outbox

# Prefect's server queue per subscriber (server/events/stream.py SUBSCRIPTION_BACKLOG):
# this many live events within a second means it may have overflowed.
_BURST = 256
_QUICK_INTERVAL = 0.5  # seconds between passes while a burst is being recovered...
_HOT_FOR = 5.0  # ...that is, for this long after a (re)connect, a burst or a pass that found events
_NOTIFY_INTERVAL = 0.25  # on_change at most this often for counter-only changes
_HEALTHY_AFTER = 10.0  # a connection that lasted this long resets the backoff


class StreamState(str, enum.Enum):
    """What an :class:`EventStream` is doing now (a ``str``, for widgets)."""

    CONNECTING = "connecting"  # before the first websocket connection
    CONNECTED = "connected"  # live events flow; nothing is being recovered
    RECONNECTING = "reconnecting"  # the websocket is down; retrying with backoff
    RECONCILING = "reconciling"  # catching up after a (re)connect, or reading missed events
    STOPPED = "stopped"  # closed, or ended by an error (see EventStream.error)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StreamStats:
    """Counters of one stream; a snapshot, safe to read from any thread."""

    live: int = 0  # delivered from the websocket
    reconciled: int = 0  # delivered from REST reconciliation (missed by the websocket)
    duplicates: int = 0  # websocket frames for an event already delivered, dropped
    malformed: int = 0  # frames or events that were not a valid Prefect event, skipped
    reconnects: int = 0  # websocket connections after the first
    passes: int = 0  # completed reconciliation passes
    late: int = 0  # delivered after an event that occurred later
    tracked: int = 0  # event ids held in memory for deduplication
    requests: int = 0  # REST requests made
    last_error: str | None = None  # the latest problem, without secrets
    last_error_at: datetime | None = None
    connected_since: datetime | None = None
    window_start: datetime | None = None  # oldest `occurred` reconciliation still checks

    @property
    def delivered(self) -> int:
        return self.live + self.reconciled

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["delivered"] = self.delivered
        for key in ("last_error_at", "connected_since", "window_start"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def exponential_backoff(initial: float = 0.1, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Delays before reconnecting: exponential, capped, with "equal jitter" (½–1× the step).

    A fresh iterator is taken after a connection stayed up for 10 s, which
    resets the delay; a server that accepts and drops at once is not hammered.
    """
    delay = initial
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(cap, delay * factor)


_streamed_event_class: Any = None


def _event_class() -> Any:
    """``ReceivedEvent`` plus ``delivery`` and ``late`` (built on first use: prefect imports slowly)."""
    global _streamed_event_class
    if _streamed_event_class is None:
        from typing import Literal

        from pydantic import Field

        from prefect.events.schemas.events import ReceivedEvent

        class StreamedEvent(ReceivedEvent):
            """A Prefect ``ReceivedEvent`` as delivered by :func:`stream_events`.

            ``delivery`` is ``"live"`` (websocket) or ``"reconciled"`` (read back
            from the REST API because the websocket missed it); ``late`` is True
            when an event that occurred later was delivered before this one. Both
            are left out of ``model_dump()``/JSON, which stay Prefect's own.
            """

            delivery: Literal["live", "reconciled"] = Field(default="live", exclude=True, repr=False)
            late: bool = Field(default=False, exclude=True, repr=False)

        StreamedEvent.__module__ = __name__
        _streamed_event_class = StreamedEvent
    return _streamed_event_class


def _loads() -> Callable[[Any], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with prefect
        import json

        return json.loads


# ---------------------------------------------------------------------- outbox


class _Outbox:
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: asyncio.Event | None = None
        self._waiter: asyncio.Future[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._space = asyncio.Event()

    def _wake_consumer(self) -> None:
        self._cond.notify_all()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def put(self, item: Any) -> bool:
        assert self._space is not None
        while True:
            with self._cond:
                if self._closed:
                    return False
                if len(self._items) < self._maxsize:
                    self._items.append(item)
                    self._wake_consumer()
                    return True
                self._space.clear()
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
                    return _END
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
            return _END


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# ---------------------------------------------------------------------- engine


@dataclass
class _Options:
    reconcile_interval: float
    lookback: float
    credential_wait: float
    buffer: int
    max_tracked: int
    backoff: Callable[[], Iterator[float]]
    ghost_after: float


class _Engine:
    """All of one stream's moving parts; runs on one event loop."""

    def __init__(self, sfilter: StreamFilter, api_url: str, options: _Options) -> None:
        self.sfilter = sfilter
        self.api_url = api_url
        self.opt = options
        self.ledger = Ledger(options.max_tracked)
        self.outbox = _Outbox(options.buffer)
        self.error: BaseException | None = None
        self.listeners: list[Callable[[], None]] = []
        self.consumer: Callable[[Any], None] | None = None  # run_in_background's on_event

        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._stop_requested = False
        self._finished = threading.Event()

        # state
        self._stopped = False
        self._ws_up = False
        self._ever_connected = False
        self._catching_up = False
        self._recovering = False
        self._last_state: StreamState | None = None
        self._last_notify = 0.0
        self._notify_handle: asyncio.TimerHandle | None = None

        # counters
        self.c_live = self.c_reconciled = self.c_duplicates = self.c_malformed = 0
        self.c_reconnects = self.c_passes = self.c_late = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.connected_since: datetime | None = None

        # reconciliation window
        self._floor_us = sfilter.since_us
        self._pins: list[tuple[int, float]] = []  # (floor, until monotonic): hold after an outage
        self._outage_since: int | None = None
        self._last_contact_us = sfilter.since_us
        self._newest_us: int | None = None
        self._catch_up_pending = True
        self._hot_until = 0.0  # passes every _QUICK_INTERVAL until then (a recovery is under way)
        self._burst_window = (0.0, 0)

        self._socket: Any = None
        self.keeper: CredentialKeeper | None = None
        self.rest: RestEvents | None = None
        self._loads = _loads()
        self._event_cls = _event_class()

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> StreamState:
        if self._stopped:
            return StreamState.STOPPED
        if not self._ws_up:
            return StreamState.RECONNECTING if self._ever_connected else StreamState.CONNECTING
        if self._catching_up or self._recovering:
            return StreamState.RECONCILING
        return StreamState.CONNECTED

    def stats(self) -> StreamStats:
        return StreamStats(
            live=self.c_live, reconciled=self.c_reconciled, duplicates=self.c_duplicates,
            malformed=self.c_malformed, reconnects=self.c_reconnects, passes=self.c_passes,
            late=self.c_late, tracked=len(self.ledger),
            requests=self.rest.requests if self.rest is not None else 0,
            last_error=self.last_error, last_error_at=self.last_error_at,
            connected_since=self.connected_since, window_start=from_us(self._floor_us),
        )

    def _record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = datetime.now(timezone.utc)
        logger.info("event stream: %s", message)
        self._changed()

    def _changed(self, force: bool = False) -> None:
        if not self.listeners or self._loop is None:
            return
        state = self.state
        now = time.monotonic()
        if force or state != self._last_state or now - self._last_notify >= _NOTIFY_INTERVAL:
            if self._notify_handle is not None:
                self._notify_handle.cancel()
                self._notify_handle = None
            self._notify()
        elif self._notify_handle is None:
            self._notify_handle = self._loop.call_later(
                _NOTIFY_INTERVAL - (now - self._last_notify), self._notify)

    def _notify(self) -> None:
        self._notify_handle = None
        self._last_state = self.state
        self._last_notify = time.monotonic()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a widget callback must not end the stream
                logger.exception("on_change callback raised")

    # ------------------------------------------------------------ lifecycle
    def request_stop(self) -> None:
        """Ask the stream to stop; safe from any thread, and from a finalizer."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def wait_finished(self, timeout: float | None) -> bool:
        return self._finished.wait(timeout)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self._record_error(describe(exc))
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self) -> None:
        """Run until stopped (request_stop) or ended by an error."""
        loop = self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._wake.set()  # the first pass runs at once: it also tells whether this is Prefect
        self.outbox.bind(loop)
        verify, self._ssl = tls_settings()
        self.keeper = CredentialKeeper(self.api_url.rstrip("/"), wait=self.opt.credential_wait,
                                       on_wait=self._record_error)
        self.rest = RestEvents(self.api_url, self.keeper, verify=verify)
        tasks = [loop.create_task(self._guard(self._socket_loop())),
                 loop.create_task(self._guard(self._reconcile_loop()))]
        if self.consumer is not None:
            tasks.append(loop.create_task(self._guard(self._consume())))
        if self._stop_requested:
            self._stop_event.set()
        try:
            await self._stop_event.wait()
        finally:
            pending = set(tasks)
            while pending:  # re-cancel: third-party code may swallow one cancellation
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=1.0)
            if self._socket is not None:
                await self._socket.close()
            await self.rest.aclose()
            self._stopped = True
            self._ws_up = False
            self.outbox.close()
            if self._notify_handle is not None:
                self._notify_handle.cancel()
            self._notify()
            self._finished.set()

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except PrefectAuthError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must end the stream visibly
            logger.exception("event stream failed")
            self._fail(exc)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_event is not None
        try:
            await wait_for(self._stop_event.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # ------------------------------------------------------------ websocket
    async def _socket_loop(self) -> None:
        from websockets.exceptions import ConnectionClosed

        assert self.keeper is not None
        backoff = self.opt.backoff()
        while True:
            credential = None
            try:
                credential = await self.keeper.get()
                self._socket = await open_socket(
                    self.api_url, credential, self.sfilter.socket_filter(datetime.now(timezone.utc)),
                    ssl_context=self._ssl)
            except AuthRejected as exc:
                self._record_error(f"websocket: {exc.how}; refreshing the credential")
                await self.keeper.rejected(credential, exc.how, exc.status_code)
                continue
            except Retryable as exc:
                delay = next(backoff)
                self._record_error(f"websocket: {describe(exc, credential)} (retrying in {delay:.1f} s)")
                await self._sleep(delay)
                continue
            self.keeper.accepted(credential)
            opened = time.monotonic()
            self._connected()
            error: Exception
            try:
                await self._read(self._socket)
                error = Retryable("websocket closed by the server")
            except ConnectionClosed as exc:
                error = classify_closed(exc, credential)
            except OSError as exc:
                error = Retryable(f"websocket failed: {describe(exc, credential)}")
            finally:
                socket, self._socket = self._socket, None
                self._disconnected()
                await socket.close()
            if isinstance(error, AuthRejected):
                self._record_error(f"websocket: {error.how}; refreshing the credential")
                await self.keeper.rejected(credential, error.how, error.status_code)
                continue
            if time.monotonic() - opened >= _HEALTHY_AFTER:
                backoff = self.opt.backoff()
            delay = next(backoff)
            self._record_error(f"{describe(error, credential)} (reconnecting in {delay:.1f} s)")
            await self._sleep(delay)

    def _connected(self) -> None:
        if self._ever_connected:
            self.c_reconnects += 1
        self._ever_connected = True
        self._ws_up = True
        self.connected_since = datetime.now(timezone.utc)
        self._last_contact_us = _now_us()
        if self._outage_since is not None:
            # Events sent while the server was down may be persisted late with their
            # original `occurred`: keep checking back to before the outage for a while.
            lookback = int(self.opt.lookback * 1e6)
            self._pins.append((self._outage_since - lookback, time.monotonic() + self.opt.lookback))
            self._outage_since = None
        self._catch_up_pending = True
        self._heat()
        self._wake_reconciler()
        self._changed()

    def _disconnected(self) -> None:
        if self._ws_up:
            self._outage_since = self._last_contact_us
        self._ws_up = False
        self.connected_since = None
        self._changed()

    async def _read(self, socket: Any) -> None:
        async for raw in socket.connection:
            self._last_contact_us = _now_us()
            await self._on_frame(raw)

    async def _on_frame(self, raw: Any) -> None:
        try:
            message = self._loads(raw)
        except ValueError:
            self._malformed()
            return
        if type(message) is not dict or message.get("type") != "event":
            self._malformed()
            return
        data = message.get("event")
        try:
            event_id = UUID(data["id"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError, AttributeError):
            self._malformed()
            return
        if event_id in self.ledger:
            self.c_duplicates += 1
            self._changed()
            return
        if "received" not in data:
            data["received"] = datetime.now(timezone.utc).isoformat()
        try:
            event = self._event_cls.model_validate(data)
        except ValueError:
            self._malformed()
            return
        occurred = to_us(event.occurred)
        if occurred < self.sfilter.since_us or not self.sfilter.accepts_live(event):
            return
        self.ledger.add(event_id, occurred, time.monotonic(), confirmed=False)
        self.c_live += 1
        self._note_burst()
        await self._deliver(event, occurred, "live")

    def _malformed(self) -> None:
        self.c_malformed += 1
        self._changed()

    def _note_burst(self) -> None:
        now = time.monotonic()
        start, count = self._burst_window
        if now - start > 1.0:
            self._burst_window = (now, 1)
            return
        count += 1
        self._burst_window = (start, count)
        if count == _BURST:
            # Prefect's server may be dropping for us: look now, and keep looking often
            # while it persists the rest, rather than every reconcile_interval.
            self._heat()
            self._wake_reconciler()

    async def _deliver(self, event: Any, occurred: int, how: str) -> None:
        event.delivery = how
        if self._newest_us is not None and occurred < self._newest_us:
            event.late = True
            self.c_late += 1
        else:
            self._newest_us = occurred
        self._changed()
        await self.outbox.put(event)

    # ------------------------------------------------------- reconciliation
    def _heat(self) -> None:
        self._hot_until = time.monotonic() + _HOT_FOR

    def _wake_reconciler(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _set_recovering(self, value: bool) -> None:
        self._recovering = value
        self._changed()

    async def _take(self, events: Sequence[dict[str, Any]]) -> int:
        """A REST page: confirm the events already delivered, deliver the others."""
        delivered = 0
        for data in events:
            try:
                event_id = UUID(data["id"])
            except (TypeError, KeyError, ValueError):
                self._malformed()
                continue
            if event_id in self.ledger:
                self.ledger.confirm(event_id)
                continue
            try:
                event = self._event_cls.model_validate(data)
            except ValueError:
                self._malformed()
                continue
            occurred = to_us(event.occurred)
            self.ledger.add(event_id, occurred, time.monotonic(), confirmed=True)
            self.c_reconciled += 1
            delivered += 1
            await self._deliver(event, occurred, "reconciled")
        return delivered

    async def _reconcile_loop(self) -> None:
        assert self.keeper is not None and self.rest is not None and self._wake is not None
        reconciler = Reconciler(rest=self.rest, ledger=self.ledger, sfilter=self.sfilter, take=self._take,
                                ghost_after=self.opt.ghost_after, on_recovering=self._set_recovering)
        backoff: Iterator[float] | None = None
        while True:
            quick = time.monotonic() < self._hot_until
            timeout = min(_QUICK_INTERVAL, self.opt.reconcile_interval) if quick else self.opt.reconcile_interval
            try:
                await wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            catch_up, self._catch_up_pending = self._catch_up_pending, False
            if catch_up and self._ws_up:
                self._catching_up = True
                self._changed()
            try:
                await self.keeper.get()
                started = _now_us()
                recovered = await reconciler.run_pass(self._floor_us, started)
                self._pass_done(started)
                if recovered:
                    self._heat()
                backoff = None
            except Retryable as exc:
                self._catch_up_pending = self._catch_up_pending or catch_up
                backoff = backoff or self.opt.backoff()
                delay = max(next(backoff), 0.0)
                self._record_error(f"reconciliation: {describe(exc, self.keeper.current)} "
                                   f"(retrying in {delay:.1f} s)")
                await self._sleep(delay)
            finally:
                if self._catching_up:
                    self._catching_up = False
                    self._changed()

    def _pass_done(self, started_us: int) -> None:
        """A pass over [floor, started] succeeded: move the floor and forget what is below it."""
        self.c_passes += 1
        lookback = int(self.opt.lookback * 1e6)
        now = time.monotonic()
        self._pins = [(pin, until) for pin, until in self._pins if until > now]
        floor = started_us - lookback
        for pin, _ in self._pins:
            floor = min(floor, pin)
        if self._outage_since is not None:
            floor = min(floor, self._outage_since - lookback)
        floor = max(floor, self._floor_us)  # never backwards
        self._floor_us = self.ledger.evict(floor, now - self.opt.lookback)
        self._changed()

    # ------------------------------------------------------------- consumer
    async def _consume(self) -> None:
        assert self.consumer is not None
        while True:
            item = await self.outbox.aget()
            if item is _END:
                return
            try:
                self.consumer(item)
            except Exception as exc:  # noqa: BLE001 - report, keep streaming
                logger.exception("on_event callback raised")
                self._record_error(f"on_event raised {type(exc).__name__}: {str(exc)[:200]}")


def _now_us() -> int:
    return time.time_ns() // 1000


# ---------------------------------------------------------------------- public


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
        return item

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

    from ._session import socket_credential

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
