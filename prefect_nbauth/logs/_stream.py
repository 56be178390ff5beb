"""stream_logs(): every matching Prefect log exactly once, in order per run, authenticated.

Measured on a real Prefect 3.9.1 server (see docs/logs.md):

- ``/api/logs/out`` is off by default (``PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED``
  and ``..._PUBLISHING_ENABLED``); the socket then still answers the handshake
  and sends nothing, so Prefect's own subscriber gets 0 of 3,000 lines.
- With it on, each subscriber has a queue of 256 and new logs are dropped when
  it is full: a flow logging 3,000 lines at full speed reached Prefect's
  subscriber as 512 (two client batches, 256 each), and its final lines too
  were lost.
- The socket ignores ``text`` filters; REST applies them.
- ``POST /logs/filter`` has every log at once (the request that publishes a
  log also commits it), sorted by timestamp, 200 a page, with no count.

So this stream treats REST as the ordered truth and the websocket as a
doorbell: a live frame says "new logs up to this time", and a keyset read from
the delivery watermark (minus ``settle`` seconds, for other processes whose
client batches arrive a little later) fetches everything new in timestamp
order. Logs are deduplicated by id. A frame REST does not show yet (published
just before its commit) holds the read back until it does. Where the server has
no live logs, the stream polls every ``poll_interval`` seconds and says so
(``state == "polling"``). A slower pass re-reads the last ``lookback`` seconds
for logs persisted long after their timestamp (a client with a clock behind, a
client that retried); those arrive with ``late=True``.

Reused from the event stream: the outbox, the credential keeper, the socket
handshake, backoff, and the public iterator/background shell (:class:`LogStream`
is an :class:`~prefect_nbauth.events._stream.EventStream` driven by this engine).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from uuid import UUID

from .._exceptions import ConfigurationError, PrefectAuthError
from ..events._engine import exponential_backoff
from ..events._filter import check_seconds, from_us
from ..events._outbox import _END, _Outbox
from ..events._stream import EventStream
from ..events._transport import (
    AuthRejected,
    CredentialKeeper,
    Retryable,
    classify_closed,
    describe,
    open_socket,
    scrub,
    socket_url,
    tls_settings,
    wait_for,
)
from ._filter import LogStreamFilter, build_log_filter
from ._reconcile import PAGE, RestLogs, read_range, timestamp_us

__all__ = ["LogStream", "LogStreamState", "LogStreamStats", "stream_logs"]

logger = logging.getLogger("prefect_nbauth.logs")

_NOTIFY_INTERVAL = 0.25  # on_change at most this often for counter-only changes
_HEALTHY_AFTER = 10.0  # a connection that lasted this long resets the backoff
_HOLD_RETRY = 0.05  # first re-read when a live frame is not visible over REST yet
_HOLD_TIMEOUT = 10.0  # after this, a live frame REST never showed is delivered as it came


class LogStreamState(str, enum.Enum):
    """What a :class:`LogStream` is doing now (a ``str``, for widgets)."""

    CONNECTING = "connecting"  # before the first websocket connection / first read
    CONNECTED = "connected"  # live logs flow; nothing is being caught up
    POLLING = "polling"  # the server has no live logs websocket: REST every poll_interval
    RECONNECTING = "reconnecting"  # the websocket is down; retrying (REST reads go on)
    RECONCILING = "reconciling"  # reading a backlog (start, reconnect, a burst)
    STOPPED = "stopped"  # closed, or ended by an error (see LogStream.error)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LogStreamStats:
    """Counters of one log stream; a snapshot, safe to read from any thread."""

    live: int = 0  # delivered logs the websocket announced first
    reconciled: int = 0  # delivered logs only REST had (dropped by the socket, or no socket)
    duplicates: int = 0  # websocket frames for a log already delivered
    malformed: int = 0  # frames or logs that were not a valid Prefect log, skipped
    reconnects: int = 0  # websocket connections after the first
    reads: int = 0  # completed REST read rounds
    late: int = 0  # delivered after a later log of the same flow run
    tracked: int = 0  # log ids held in memory for deduplication
    requests: int = 0  # REST requests made
    live_socket: bool | None = None  # does the server stream logs live? None: not known (yet)
    last_error: str | None = None  # the latest problem, without secrets
    last_error_at: datetime | None = None
    connected_since: datetime | None = None
    watermark: datetime | None = None  # timestamp of the newest log delivered

    @property
    def delivered(self) -> int:
        return self.live + self.reconciled

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["delivered"] = self.delivered
        for key in ("last_error_at", "connected_since", "watermark"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


_streamed_log_class: Any = None


def _log_class() -> Any:
    """Prefect's client ``Log`` plus ``delivery`` and ``late`` (built on first use)."""
    global _streamed_log_class
    if _streamed_log_class is None:
        from typing import Literal

        from prefect.client.schemas.objects import Log
        from pydantic import Field

        class StreamedLog(Log):
            """A Prefect ``Log`` as delivered by :func:`stream_logs`.

            ``delivery`` is ``"live"`` (the websocket announced it) or
            ``"reconciled"`` (only the REST API had it); ``late`` is True when a
            later log of the same flow run was delivered before this one. Both
            are left out of ``model_dump()``/JSON, which stay Prefect's own.
            """

            delivery: Literal["live", "reconciled"] = Field(default="reconciled", exclude=True, repr=False)
            late: bool = Field(default=False, exclude=True, repr=False)

        StreamedLog.__module__ = __name__
        _streamed_log_class = StreamedLog
    return _streamed_log_class


@dataclass
class _Options:
    poll_interval: float
    reconcile_interval: float
    lookback: float
    settle: float
    credential_wait: float
    buffer: int
    backoff: Callable[[], Iterator[float]]


class _LogEngine:
    """All of one log stream's moving parts; runs on one event loop.

    Exposes what :class:`EventStream` drives: ``run()``, ``outbox``,
    ``request_stop()``, ``wait_finished()``, ``state``, ``stats()``, ``error``,
    ``consumer`` and ``listeners``.
    """

    def __init__(self, sfilter: LogStreamFilter, api_url: str, options: _Options) -> None:
        self.sfilter = sfilter
        self.api_url = api_url
        self.opt = options
        self.outbox = _Outbox(options.buffer)
        self.error: BaseException | None = None
        self.listeners: list[Callable[[], None]] = []
        self.consumer: Callable[[Any], None] | None = None
        self._finished = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._stop_requested = False

        self._stopped = False
        self._ws_up = False
        self._ever_connected = False
        self._catching_up = False
        self._live_socket: bool | None = None
        self._first_read_done = False
        self._last_state: LogStreamState | None = None
        self._last_notify = 0.0
        self._notify_handle: asyncio.TimerHandle | None = None

        self.c_live = self.c_reconciled = self.c_duplicates = self.c_malformed = 0
        self.c_reconnects = self.c_reads = self.c_late = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.connected_since: datetime | None = None

        # Delivery state: ids delivered (-> timestamp µs), live frames REST has not shown
        # yet (id -> (timestamp, raw, arrived)), the newest delivered timestamp overall
        # and per flow run (for `late`).
        self._seen: dict[UUID, int] = {}
        self._held: dict[UUID, tuple[int, dict[str, Any], float]] = {}
        self._watermark = sfilter.since_us
        self._newest_by_run: dict[Any, int] = {}
        self._next_lookback = 0.0

        self.keeper: CredentialKeeper | None = None
        self.rest: RestLogs | None = None
        self._socket: Any = None
        self._log_cls = _log_class()
        try:
            import orjson

            self._loads: Callable[[Any], Any] = orjson.loads
        except ImportError:  # pragma: no cover - orjson comes with prefect
            import json

            self._loads = json.loads

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> LogStreamState:
        if self._stopped:
            return LogStreamState.STOPPED
        if self._catching_up:
            return LogStreamState.RECONCILING
        if self._live_socket is False:
            return LogStreamState.POLLING if self._first_read_done else LogStreamState.CONNECTING
        if not self._ws_up:
            return LogStreamState.RECONNECTING if self._ever_connected else LogStreamState.CONNECTING
        return LogStreamState.CONNECTED if self._first_read_done else LogStreamState.RECONCILING

    def stats(self) -> LogStreamStats:
        return LogStreamStats(
            live=self.c_live, reconciled=self.c_reconciled, duplicates=self.c_duplicates,
            malformed=self.c_malformed, reconnects=self.c_reconnects, reads=self.c_reads,
            late=self.c_late, tracked=len(self._seen),
            requests=self.rest.requests if self.rest is not None else 0,
            live_socket=self._live_socket, last_error=self.last_error,
            last_error_at=self.last_error_at, connected_since=self.connected_since,
            watermark=from_us(self._watermark) if self._seen else None,
        )

    def _record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = datetime.now(timezone.utc)
        logger.info("log stream: %s", message)
        self._changed()

    def _changed(self, force: bool = False) -> None:
        if not self.listeners or self._loop is None:
            return
        now = time.monotonic()
        if force or self.state != self._last_state or now - self._last_notify >= _NOTIFY_INTERVAL:
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
        loop = self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._wake.set()  # the first read runs at once
        self.outbox.bind(loop)
        verify, self._ssl = tls_settings()
        self.keeper = CredentialKeeper(self.api_url, wait=self.opt.credential_wait,
                                       on_wait=self._record_error, what="log stream",
                                       restart="stream_logs(...)")
        self.rest = RestLogs(self.api_url, self.keeper, verify=verify)
        tasks = [loop.create_task(self._guard(self._socket_loop())),
                 loop.create_task(self._guard(self._read_loop()))]
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
            logger.exception("log stream failed")
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

        assert self.keeper is not None and self.rest is not None
        backoff = self.opt.backoff()
        # Prefect 3.9 accepts /logs/out even with log streaming off and then sends
        # nothing; its settings say which. Unknown (Cloud, old servers): try the socket.
        while self._live_socket is None:
            try:
                await self.keeper.get()
                enabled = await self.rest.live_logs_enabled()
            except Retryable as exc:
                delay = next(backoff)
                self._record_error(f"settings: {describe(exc)} (retrying in {delay:.1f} s)")
                await self._sleep(delay)
                continue
            if enabled is False:
                self._live_socket = False
                self._record_error(
                    "the server does not stream logs live (PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED and "
                    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED are off): polling the REST API "
                    f"every {self.opt.poll_interval:g} s")
                self._changed(force=True)
                return
            break
        while True:
            credential = None
            try:
                credential = await self.keeper.get()
                self._socket = await open_socket(self.api_url, credential, self.sfilter.socket_filter(),
                                                 ssl_context=self._ssl, path="/logs/out")
            except AuthRejected as exc:
                if exc.status_code in (403, 404) and self._live_socket is None and self._first_read_done:
                    # REST accepted this credential: the upgrade is refused because this
                    # server has no /logs/out (older Prefect), not because of the credential.
                    self._live_socket = False
                    self._record_error(f"no live logs websocket ({exc.how}): polling the REST API")
                    return
                await self._rejected(credential, exc)
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
                async for raw in self._socket.connection:
                    self._on_frame(raw)
                error = Retryable("websocket closed by the server")
            except ConnectionClosed as exc:
                error = classify_closed(exc, credential)
            except OSError as exc:
                error = Retryable(f"websocket failed: {describe(exc, credential)}")
            finally:
                socket, self._socket = self._socket, None
                self._ws_up = False
                self.connected_since = None
                self._changed()
                await socket.close()
            if isinstance(error, AuthRejected):
                await self._rejected(credential, error)
                continue
            if time.monotonic() - opened >= _HEALTHY_AFTER:
                backoff = self.opt.backoff()
            delay = next(backoff)
            self._record_error(f"{describe(error, credential)} (reconnecting in {delay:.1f} s)")
            await self._sleep(delay)

    async def _rejected(self, credential: Any, exc: AuthRejected) -> None:
        assert self.keeper is not None
        if not self.keeper._lock.locked():
            # Else the REST side is already on it (perhaps waiting for a login, which is
            # the note to keep showing).
            self._record_error(f"websocket: {exc.how}; refreshing the credential")
        await self.keeper.rejected(credential, exc.how, exc.status_code)

    def _connected(self) -> None:
        if self._ever_connected:
            self.c_reconnects += 1
        self._ever_connected = True
        if self._live_socket is None:
            self._live_socket = True
        self._ws_up = True
        self.connected_since = datetime.now(timezone.utc)
        self._ring()  # whatever came while the socket was down is read now
        self._changed()

    def _on_frame(self, raw: Any) -> None:
        try:
            message = self._loads(raw)
            data = message["log"] if message.get("type") == "log" else None
            if not isinstance(data, dict):
                raise TypeError("not a log frame")
            log_id = UUID(data["id"])
        except (ValueError, TypeError, KeyError, AttributeError):
            self.c_malformed += 1
            self._changed()
            return
        if log_id in self._seen:
            self.c_duplicates += 1
            self._changed()
            return
        stamp = timestamp_us(data)
        if self.sfilter.live_exact and stamp is not None and stamp >= self.sfilter.since_us:
            self._held.setdefault(log_id, (stamp, data, time.monotonic()))
        self._ring()

    def _ring(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ---------------------------------------------------------------- reads
    def _interval(self) -> float:
        if self._held:
            return _HOLD_RETRY
        if self._live_socket is True and self._ws_up:
            return self.opt.reconcile_interval  # the doorbell rings for anything new
        return self.opt.poll_interval

    async def _read_loop(self) -> None:
        assert self.keeper is not None and self._wake is not None
        backoff: Iterator[float] | None = None
        hold_delay = _HOLD_RETRY
        while True:
            interval = self._interval()
            if self._held:
                interval, hold_delay = hold_delay, min(hold_delay * 2, 0.5)
            else:
                hold_delay = _HOLD_RETRY
            try:
                await wait_for(self._wake.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.keeper.get()
                await self._advance()
                if time.monotonic() >= self._next_lookback:
                    await self._lookback_pass()
                    self._next_lookback = time.monotonic() + self.opt.reconcile_interval
                await self._release_stale()
                self.c_reads += 1
                if not self._first_read_done:
                    self._first_read_done = True
                    self._changed(force=True)
                backoff = None
            except Retryable as exc:
                backoff = backoff or self.opt.backoff()
                delay = max(next(backoff), 0.0)
                self._record_error(f"reading logs: {describe(exc, self.keeper.current)} "
                                   f"(retrying in {delay:.1f} s)")
                await self._sleep(delay)
            finally:
                if self._catching_up:
                    self._catching_up = False
                    self._changed()

    async def _advance(self) -> None:
        """Everything new from the watermark (less `settle`) upward, in timestamp order."""
        assert self.rest is not None
        lo = max(self.sfilter.since_us, self._watermark - int(self.opt.settle * 1e6))
        await read_range(self.rest, self.sfilter, lo, None, self._take)

    async def _lookback_pass(self) -> None:
        """Logs persisted long after their timestamp, below the advance window."""
        assert self.rest is not None
        hi = self._watermark - int(self.opt.settle * 1e6) - 1
        lo = max(self.sfilter.since_us, self._watermark - int(self.opt.lookback * 1e6))
        if hi >= lo and self._seen:
            await read_range(self.rest, self.sfilter, lo, hi, self._take)
        floor = lo - int(self.opt.settle * 1e6)
        for log_id in [i for i, ts in self._seen.items() if ts < floor]:
            del self._seen[log_id]

    async def _take(self, page: list[dict[str, Any]]) -> None:
        """A REST page: deliver the logs not delivered yet, oldest first."""
        if len(page) >= PAGE and not self._catching_up:
            self._catching_up = True  # a backlog: say so while it is read
            self._changed()
        fresh: list[tuple[int, str, UUID, dict[str, Any]]] = []
        for raw in page:
            try:
                log_id = UUID(raw["id"])
            except (TypeError, KeyError, ValueError):
                self.c_malformed += 1
                continue
            if log_id in self._seen:
                continue
            stamp = timestamp_us(raw)
            if stamp is None:
                self.c_malformed += 1
                continue
            fresh.append((stamp, str(log_id), log_id, raw))
        fresh.sort(key=lambda item: (item[0], item[1]))
        for stamp, _, log_id, raw in fresh:
            held = self._held.pop(log_id, None)
            await self._deliver(log_id, stamp, raw, "live" if held is not None else "reconciled")

    async def _release_stale(self) -> None:
        """Live frames REST has not shown for _HOLD_TIMEOUT: deliver them as they came."""
        if not self._held:
            return
        horizon = time.monotonic() - _HOLD_TIMEOUT
        stale = sorted((v[0], str(k), k, v[1]) for k, v in self._held.items() if v[2] < horizon)
        for stamp, _, log_id, raw in stale:
            del self._held[log_id]
            if log_id not in self._seen:
                await self._deliver(log_id, stamp, raw, "live")

    async def _deliver(self, log_id: UUID, stamp: int, raw: dict[str, Any], how: str) -> None:
        try:
            log = self._log_cls.model_validate(raw)
        except ValueError:
            self.c_malformed += 1
            self._changed()
            return
        self._seen[log_id] = stamp
        credential = self.keeper.current if self.keeper is not None else None
        if credential is not None:
            # A flow that logs the credential must not show it in a notebook.
            log.message = scrub(log.message, credential)
        log.delivery = how
        run = log.flow_run_id
        newest = self._newest_by_run.get(run)
        if newest is not None and stamp < newest:
            log.late = True
            self.c_late += 1
        else:
            self._newest_by_run[run] = stamp
        if stamp > self._watermark:
            self._watermark = stamp
        if how == "live":
            self.c_live += 1
        else:
            self.c_reconciled += 1
        self._changed()
        await self.outbox.put(log)

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
                logger.exception("on_log callback raised")
                self._record_error(f"on_log raised {type(exc).__name__}: {str(exc)[:200]}")


class LogStream(EventStream):
    """A running (or not yet started) log subscription; see :func:`stream_logs`.

    Iterate it with ``async for`` or ``for``, or hand it callbacks with
    :meth:`run_in_background` (``on_event`` receives each log). ``state`` is a
    :class:`LogStreamState`, ``stats`` a :class:`LogStreamStats`.
    """

    _engine: _LogEngine  # type: ignore[assignment]  # same shape as _Engine (duck-typed shell)

    @property
    def state(self) -> LogStreamState:  # type: ignore[override]
        return self._engine.state

    @property
    def stats(self) -> LogStreamStats:  # type: ignore[override]
        return self._engine.stats()

    def __repr__(self) -> str:
        stats = self.stats
        return (f"<LogStream {self.api_url} {self.state.value} live={stats.live} "
                f"reconciled={stats.reconciled}>")

    def _claim(self, mode: str) -> None:
        if self._mode is not None:
            raise RuntimeError(
                "This LogStream was already started; a stream runs once. Create a new one "
                "with prefect_nbauth.stream_logs(...)."
            )
        self._mode = mode


def stream_logs(
    flow_run_id: Any = None,
    task_run_id: Any = None,
    level: str | int | None = None,
    since: datetime | timedelta | str | None = None,
    *,
    text: str | None = None,
    poll_interval: float = 1.0,
    reconcile_interval: float = 5.0,
    lookback: float = 120.0,
    settle: float = 3.0,
    credential_wait: float = 60.0,
    buffer: int = 10_000,
    backoff: Callable[[], Iterator[float]] | None = None,
) -> LogStream:
    """Stream Prefect logs: every matching log exactly once, in order per run, authenticated.

    ::

        async for log in prefect_nbauth.stream_logs(flow_run_id=run.id):
            print(log.timestamp, log.level, log.message)

        for log in prefect_nbauth.stream_logs(level="WARNING", since="10m"):  # sync code
            ...

        handle = prefect_nbauth.stream_logs(flow_run_id=run.id).run_in_background(print)
        handle.stop()

    Filters (combined with AND): ``flow_run_id`` / ``task_run_id`` one run id or
    a list; ``level`` a minimum level (``"INFO"``, ``"warning"``, ``20``);
    ``text`` Prefect's log search (``"error -debug"``); ``since`` an aware
    datetime, a timedelta or ``"10m"``/``"2h"`` (default: the run's whole
    history when a run id is given, else now).

    **Delivery contract.** While the stream runs, every log the server
    persists that matches the filter, with a timestamp at or after ``since``, is
    delivered exactly once (deduplicated by id), provided it is persisted within
    ``lookback`` seconds (default 120) of its timestamp. This holds across the
    logs Prefect's websocket drops (a queue of 256 per subscriber), websocket
    cuts, server restarts and token rotation, and on servers without live
    logs (Prefect's default), where the stream polls.

    - *Order.* Logs are delivered in timestamp order as the server has them. A
      log persisted more than ``settle`` seconds (default 3) after a later one
      of the same flow run (a task in another process with a clock behind)
      comes later, with ``log.late == True``. ``log.delivery`` is ``"live"``
      (the websocket announced it) or ``"reconciled"``.
    - *Latency.* A live frame triggers one REST read at once; without live logs
      the delay is up to ``poll_interval`` seconds (default 1).
    - *Secrets.* The credential in force is masked in every message delivered.

    ``stream.state`` is a :class:`LogStreamState` (connecting, connected,
    polling, reconnecting, reconciling, stopped); ``stream.stats`` a
    :class:`LogStreamStats`. Authentication is as in :func:`stream_events`:
    the credential in force, taken anew on every (re)connect and read; on a
    rejection one refresh, then up to ``credential_wait`` seconds for a new
    login, then ``AuthenticationError``. Raises ``ConfigurationError`` at once
    for bad input or no Prefect API URL in force.
    """
    poll_interval = check_seconds("poll_interval", poll_interval, minimum=0.05)
    reconcile_interval = check_seconds("reconcile_interval", reconcile_interval, minimum=0.05)
    lookback = check_seconds("lookback", lookback, minimum=1.0)
    settle = check_seconds("settle", settle, allow_zero=True)
    if lookback <= settle:
        raise ConfigurationError(f"lookback ({lookback:g} s) must be longer than settle ({settle:g} s).")
    credential_wait = check_seconds("credential_wait", credential_wait, allow_zero=True)
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ConfigurationError("buffer must be an integer of at least 1.")
    if backoff is not None and not callable(backoff):
        raise ConfigurationError("backoff must be a callable returning an iterator of delays in seconds.")
    sfilter = build_log_filter(flow_run_id=flow_run_id, task_run_id=task_run_id, level=level,
                               text=text, since=since)

    from .._session import socket_credential

    credential = socket_credential()
    if not credential.api_url:
        raise ConfigurationError(
            "No Prefect API URL is in force, so there are no logs to stream. Log in first: "
            "prefect_nbauth.login('http://HOST:4200/api', auth_string=...) or set PREFECT_API_URL."
        )
    socket_url(credential.api_url)  # an http(s) URL, or ConfigurationError
    options = _Options(
        poll_interval=poll_interval, reconcile_interval=reconcile_interval, lookback=lookback,
        settle=settle, credential_wait=credential_wait, buffer=buffer,
        backoff=backoff or (lambda: exponential_backoff()),
    )
    return LogStream(_LogEngine(sfilter, credential.api_url.rstrip("/"), options))  # type: ignore[arg-type]
