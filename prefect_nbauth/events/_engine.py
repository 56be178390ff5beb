"""The engine of one event stream: a websocket for latency, REST reconciliation for completeness.

Prefect's server gives each websocket subscriber a queue of 256 events and drops
new ones when it is full; a burst of 1,000 reached Prefect's own subscriber as
260 events. The engine takes the websocket for latency and the REST API for
completeness: it counts what the server has persisted against what it has
delivered, and reads only what is missing (:mod:`._reconcile`). Everything runs
on one event loop; :mod:`._stream` gives it its public faces.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence
from uuid import UUID

from .._exceptions import PrefectAuthError
from ._filter import StreamFilter, from_us, to_us
from ._ledger import Ledger
from ._outbox import _END, _Outbox
from ._reconcile import Reconciler
from ._transport import (
    AuthRejected,
    CredentialKeeper,
    RestEvents,
    Retryable,
    classify_closed,
    describe,
    open_socket,
    tls_settings,
    wait_for,
)

__all__ = ["StreamState", "StreamStats", "exponential_backoff"]

logger = logging.getLogger("prefect_nbauth.events")

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

        from prefect.events.schemas.events import ReceivedEvent
        from pydantic import Field

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
        if type(data) is not dict:
            self._malformed()
            return
        try:
            event_id = UUID(data["id"])
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

