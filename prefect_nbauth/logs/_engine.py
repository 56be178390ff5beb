"""The engine of one log stream: live lines at the socket's speed, REST as the ordered truth.

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

With the logs socket on, a live line is delivered as it comes when the socket
is known to be in order (:mod:`._live`: in sync with REST, and no possible
overflow of the server's queue before it); otherwise it waits for a keyset
read from the delivery watermark (minus ``settle`` seconds, for other
processes whose client batches arrive a little later), which delivers
everything new in timestamp order. Logs are deduplicated by id. REST confirms
and fills behind the live lines every ``reconcile_interval`` while logs flow
and every ``idle_interval`` otherwise (:mod:`prefect_nbauth._streaming._cadence`).

Without it (Prefect's default) the stream polls, but only where there is
something to read (:mod:`._runs`): it listens to Prefect's events websocket for
state changes of the runs it follows and reads every ``poll_interval`` while
one is active, else at the same cadence as above (``state == "polling"``).

A slower pass re-reads the last ``lookback`` seconds for logs persisted long
after their timestamp (a client with a clock behind, a client that retried);
those arrive with ``late=True``.

The socket loop, the reader loop, the credential keeper, backoff and the
outbox are the shared stream engine's (:mod:`prefect_nbauth._streaming`); this
module says what a frame means and how logs are read, keyed and ordered.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from .._streaming import (
    AuthRejected,
    Cadence,
    DeliveredModel,
    EngineOptions,
    Retryable,
    StateName,
    StatsSnapshot,
    StreamEngine,
    describe,
    from_us,
    scrub,
)
from ._filter import LogStreamFilter
from ._live import LiveGate
from ._reconcile import PAGE, RestLogs, read_range, timestamp_us
from ._runs import RunActivity, read_run_states, signal_filter, state_of_event

__all__ = ["LogStreamState", "LogStreamStats"]

_HOLD_RETRY = 0.05  # first re-read when a live frame is not visible over REST yet
_HOLD_TIMEOUT = 10.0  # after this, a live frame REST never showed is delivered as it came
_LOGS_SOCKET = "/logs/out"
_EVENTS_SOCKET = "/events/out"  # run state changes, where the server has no live logs


class LogStreamState(StateName):
    """What a :class:`LogStream` is doing now (a ``str``, for widgets)."""

    CONNECTING = "connecting"  # before the first websocket connection / first read
    CONNECTED = "connected"  # live logs flow; nothing is being caught up
    POLLING = "polling"  # the server has no live logs websocket: REST reads, fast while a run is active
    RECONNECTING = "reconnecting"  # the websocket is down; retrying (REST reads go on)
    RECONCILING = "reconciling"  # reading a backlog (start, reconnect, a burst)
    STOPPED = "stopped"  # closed, or ended by an error (see LogStream.error)


@dataclass(frozen=True)
class LogStreamStats(StatsSnapshot):
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
    # Seconds within which a log the websocket never carries is delivered once REST has it (the
    # bound in force now: poll_interval, reconcile_interval or idle_interval; docs/logs.md).
    late_bound: float | None = None
    active_runs: int = 0  # runs followed that are active now (servers without live logs)

    _times = ("last_error_at", "connected_since", "watermark")


_STREAMED_LOG_DOC = """A Prefect ``Log`` as delivered by :func:`stream_logs`.

``delivery`` is ``"live"`` (the websocket announced it) or
``"reconciled"`` (only the REST API had it); ``late`` is True when a
later log of the same flow run was delivered before this one. Both
are left out of ``model_dump()``/JSON, which stay Prefect's own.
"""


# The delivered model, built on first use (prefect imports slowly).
_log_class = DeliveredModel(
    "prefect.client.schemas.objects.Log", "StreamedLog", _STREAMED_LOG_DOC,
    default="reconciled", module=__name__)


@dataclass
class _Options(EngineOptions):
    poll_interval: float
    settle: float
    idle_interval: float = 30.0


class _LogEngine(StreamEngine):
    """The log stream's engine: ids seen, live frames held until REST shows them, a watermark."""

    label = "log stream"
    restart = "stream_logs(...)"
    callback = "on_log"
    socket_path = "/logs/out"
    read_label = "reading logs"
    logger = logging.getLogger("prefect_nbauth.logs")
    opt: _Options
    rest: RestLogs | None

    def __init__(self, sfilter: LogStreamFilter, api_url: str, options: _Options) -> None:
        super().__init__(sfilter, api_url, options)
        self.sfilter: LogStreamFilter = sfilter
        self._live_socket: bool | None = None
        # Run state changes over the events socket (servers without live logs); None: not tried,
        # False: that socket is refused too, so the stream polls every poll_interval.
        self._signals: bool | None = None
        self._runs = RunActivity(sfilter, recheck=options.idle_interval)
        self._gate = LiveGate()
        self._cadence = Cadence(flowing=options.reconcile_interval, idle=options.idle_interval)
        self._outbox_waits = 0
        self._reading_states = False
        self._read_token: tuple[int, int] | None = None
        self._unannounced = 0  # logs a read delivered that the socket had not announced
        self._first_read_done = False
        self.c_reads = 0

        # Delivery state: ids delivered (-> timestamp µs), live frames REST has not shown
        # yet (id -> (timestamp, raw, arrived)), the newest delivered timestamp overall
        # and per flow run (for `late`).
        self._seen: dict[UUID, int] = {}
        self._held: dict[UUID, tuple[int, dict[str, Any], float]] = {}
        self._watermark = sfilter.since_us
        self._newest_by_run: dict[Any, int] = {}
        self._next_lookback = 0.0
        self._held_reads = 0  # reads in a row that ended with live frames still held
        self._log_cls = _log_class()

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
            late_bound=self.late_bound(), active_runs=self._runs.active_count,
        )

    def _fast(self) -> bool:
        """Read every poll_interval: no socket tells of new logs or runs, or a followed run is active."""
        if self._signals is False:
            return True  # neither the logs nor the events socket: poll
        if self._socket_lost():
            return True
        return self.socket_path == _EVENTS_SOCKET and self._runs.active()

    def late_bound(self) -> float:
        """The late-delivery bound in force now (see :class:`LogStreamStats`)."""
        bound = self._cadence.bound()
        return min(bound, self.opt.poll_interval) if self._fast() else bound

    # ------------------------------------------------------------ websocket
    def _make_rest(self, verify: Any) -> RestLogs:
        assert self.keeper is not None
        return RestLogs(self.api_url, self.keeper, verify=verify)

    def _socket_filter(self) -> dict[str, Any]:
        if self.socket_path == _EVENTS_SOCKET:
            return signal_filter(self.sfilter, datetime.now(timezone.utc))
        return self.sfilter.socket_filter()

    async def _before_socket(self, backoff: Any) -> bool:
        """Which socket: ``/logs/out`` where the server streams logs, else ``/events/out`` for run states.

        Prefect 3.9 accepts /logs/out even with log streaming off and then sends
        nothing; its settings say which. Unknown (Cloud, old servers): try /logs/out.
        """
        assert self.keeper is not None and self.rest is not None
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
                    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED are off): reading the REST API every "
                    f"{self.opt.poll_interval:g} s while a run it follows is active (Prefect's events "
                    f"websocket announces them), else every {self.opt.idle_interval:g} s")
                self._changed(force=True)
            break
        if self._live_socket is False:
            if self._signals is False:
                return False  # no events socket either: REST alone, every poll_interval
            self.socket_path = _EVENTS_SOCKET
        return True

    def _upgrade_refused(self, exc: AuthRejected) -> bool:
        if exc.status_code not in (403, 404) or not self._first_read_done:
            return False
        # REST accepted this credential: the upgrade is refused because this server has no
        # such socket (older Prefect), not because of the credential.
        if self.socket_path == _LOGS_SOCKET and self._live_socket is None:
            self._live_socket = False
            self._record_error(f"no live logs websocket ({exc.how}): reading the REST API, fast while "
                               "a run it follows is active")
            return True
        if self.socket_path == _EVENTS_SOCKET:
            self._signals = False
            self._record_error(f"no events websocket either ({exc.how}): polling the REST API every "
                               f"{self.opt.poll_interval:g} s")
            return True
        return False

    def _on_connected(self) -> None:
        if self.socket_path == _EVENTS_SOCKET:
            self._signals = True
            if self._runs.named is not None:
                self._runs.states_due = True  # state changes before this connection went unheard
            elif self.c_reconnects:
                self._runs.gap()  # runs may have started or ended unheard: read fast a little while
            return
        if self._live_socket is None:
            self._live_socket = True
        self._gate.connected()

    def _on_disconnected(self) -> None:
        self._gate.disconnected()
        self._pass_within(self.opt.poll_interval)  # REST alone until it is back

    async def _after_connect(self) -> None:
        """On the events socket: the followed runs' states, read now that no change can go unheard."""
        if self.socket_path == _EVENTS_SOCKET:
            await self._read_states()

    async def _read_states(self) -> None:
        """The states of the runs :class:`RunActivity` asks about (at connect, and re-checks)."""
        ids = self._runs.ids_to_read()
        if ids is None or self._reading_states:  # (the socket loop and a pass may both ask)
            return
        assert self.rest is not None
        self._reading_states = True
        self._runs.reading()
        try:
            states = await read_run_states(self.rest, ids)
        except Retryable as exc:
            self._record_error(f"reading run states: {describe(exc, self.keeper.current if self.keeper else None)}"
                               " (polling fast meanwhile)")
            self._runs.unknown()
            self._pass_within(self.opt.poll_interval)
            return
        finally:
            self._reading_states = False
        if self._runs.from_rest(states):
            self._pass_within(self.opt.poll_interval)
        self._changed()

    async def _on_frame(self, raw: Any) -> None:
        if self.socket_path == _EVENTS_SOCKET:
            self._on_signal(raw)
            return
        try:
            message = self._loads(raw)
            data = message["log"] if message.get("type") == "log" else None
            if not isinstance(data, dict):
                raise TypeError("not a log frame")
            log_id = UUID(data["id"])
        except (ValueError, TypeError, KeyError, AttributeError):
            self._malformed()
            return
        self._gate.arrived()  # every frame took a place in the server's queue
        if log_id in self._seen:
            self.c_duplicates += 1
            self._changed()
            return
        stamp = timestamp_us(data)
        if self.sfilter.live_exact and stamp is not None and stamp >= self.sfilter.since_us:
            if self._gate.synced and not self._held:
                await self._deliver(log_id, stamp, data, "live")  # in order: at the socket's speed
                return
            self._held.setdefault(log_id, (stamp, data, time.monotonic()))
        self._wake_reader()

    def _on_signal(self, raw: Any) -> None:
        try:
            told = state_of_event(self._loads(raw))
        except ValueError:
            told = None
        if told is None:
            self._malformed()
            return
        if self._runs.from_event(*told):
            self._pass_within(self.opt.poll_interval)
        self._changed()

    # ---------------------------------------------------------------- reads
    def _read_interval(self) -> float:
        if self._held:  # re-read soon, then less soon: 0.05, 0.1, 0.2, 0.4, 0.5 s
            return min(_HOLD_RETRY * 2.0 ** max(0, self._held_reads - 1), 0.5)
        interval = self._cadence.interval()
        return min(interval, self.opt.poll_interval) if self._fast() else interval

    def _before_pass(self) -> None:
        self._read_token = self._gate.read_begins(self._ws_up and self.socket_path == _LOGS_SOCKET)
        self._unannounced = 0

    async def _read_pass(self) -> None:
        if self.socket_path == _EVENTS_SOCKET and self._ws_up:
            await self._read_states()  # a periodic re-check of runs believed active
        await self._advance()
        if time.monotonic() >= self._next_lookback:
            await self._lookback_pass()
            self._next_lookback = time.monotonic() + self.opt.reconcile_interval
        await self._release_stale()
        self.c_reads += 1
        self._held_reads = self._held_reads + 1 if self._held else 0
        self._gate.read_ends(self._read_token, up=self._ws_up and self.socket_path == _LOGS_SOCKET,
                             held=bool(self._held), unannounced=self._unannounced)
        if not self._first_read_done:
            self._first_read_done = True
            self._changed(force=True)

    async def _advance(self) -> None:
        """Everything new from the watermark (less `settle`) upward, in timestamp order."""
        assert self.rest is not None
        lo = max(self.sfilter.since_us, self._watermark - int(self.opt.settle * 1e6))
        await read_range(self.rest, self.sfilter, lo, None, self._take)

    async def _lookback_pass(self) -> None:
        """Logs persisted long after their timestamp, below the advance window.

        Only while that window still holds timestamps young enough to be persisted
        late within the contract (``lookback`` seconds): an idle stream stops asking.
        """
        assert self.rest is not None
        lookback = int(self.opt.lookback * 1e6)
        hi = self._watermark - int(self.opt.settle * 1e6) - 1
        lo = max(self.sfilter.since_us, self._watermark - lookback)
        if hi >= lo and self._seen and hi >= time.time_ns() // 1000 - lookback:
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
            if held is None:
                self._unannounced += 1
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
            self._malformed()
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
        # Logs flow (a live one, or a recent one read back; not history): read at the flowing pace.
        if (how == "live" or time.time_ns() // 1000 - stamp < self.opt.idle_interval * 1e6) and self._cadence.note():
            self._pass_within(self.opt.reconcile_interval)
        self._changed()
        await self.outbox.put(log)
        if self.outbox.waits != self._outbox_waits:
            # The consumer held us back: the socket was not read meanwhile, and Prefect's
            # server drops for a subscriber whose queue is full.
            self._outbox_waits = self.outbox.waits
            self._gate.distrust()
