"""The engine of one event stream: a websocket for latency, REST reconciliation for completeness.

Prefect's server gives each websocket subscriber a queue of 256 events and drops
new ones when it is full; a burst of 1,000 reached Prefect's own subscriber as
260 events. The engine takes the websocket for latency and the REST API for
completeness: it counts what the server has persisted against what it has
delivered, and reads only what is missing (:mod:`._reconcile`). Everything runs
on one event loop; :mod:`._stream` gives it its public faces.

A counting pass is cheap (one ``limit=1`` read when nothing is missing), but
an idle stream should not ask at all most of the time. Passes follow the
stream's cadence (:mod:`prefect_nbauth._streaming._cadence`): at a (re)connect,
every 0.5 s while a recovery is under way (a reconnect, a burst that may have
overflowed the server's queue, the consumer holding the socket back, a pass
that found missed events), every ``reconcile_interval`` while events flow, and
every ``idle_interval`` otherwise: the late-delivery bound, in ``stats.late_bound``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence
from uuid import UUID

from .._streaming import (
    Cadence,
    DeliveredModel,
    EngineOptions,
    StateName,
    StatsSnapshot,
    StreamEngine,
    from_us,
    to_us,
)
from ._filter import StreamFilter
from ._ledger import Ledger
from ._pages import RestEvents
from ._reconcile import Reconciler

__all__ = ["EventStreamState", "EventStreamStats"]

# Prefect's server queue per subscriber (server/events/stream.py SUBSCRIPTION_BACKLOG):
# this many live events within a second means it may have overflowed.
_BURST = 256
_HOT_FOR = 5.0  # quick passes for this long after a reconnect, a burst or a pass that found events


class EventStreamState(StateName):
    """What an :class:`EventStream` is doing now (a ``str``, for widgets)."""

    CONNECTING = "connecting"  # before the first websocket connection
    CONNECTED = "connected"  # live events flow; nothing is being recovered
    RECONNECTING = "reconnecting"  # the websocket is down; retrying with backoff
    RECONCILING = "reconciling"  # catching up after a (re)connect, or reading missed events
    STOPPED = "stopped"  # closed, or ended by an error (see EventStream.error)


@dataclass(frozen=True)
class EventStreamStats(StatsSnapshot):
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
    # Seconds within which an event the websocket never carries is delivered once REST has it:
    # reconcile_interval while events flow (or the websocket is down), idle_interval otherwise.
    late_bound: float | None = None

    _times = ("last_error_at", "connected_since", "window_start")


_STREAMED_EVENT_DOC = """A Prefect ``ReceivedEvent`` as delivered by :func:`stream_events`.

``delivery`` is ``"live"`` (websocket) or ``"reconciled"`` (read back
from the REST API because the websocket missed it); ``late`` is True
when an event that occurred later was delivered before this one. Both
are left out of ``model_dump()``/JSON, which stay Prefect's own.
"""


# The delivered model, built on first use (prefect imports slowly).
_event_class = DeliveredModel(
    "prefect.events.schemas.events.ReceivedEvent", "StreamedEvent", _STREAMED_EVENT_DOC,
    default="live", module=__name__)


@dataclass
class _Options(EngineOptions):
    max_tracked: int
    ghost_after: float
    idle_interval: float = 30.0


class _Engine(StreamEngine):
    """The event stream's engine: a ledger of ids, counting passes, bursts, outage windows."""

    label = "event stream"
    restart = "stream_events(...)"
    callback = "on_event"
    socket_path = "/events/out"
    read_label = "reconciliation"
    logger = logging.getLogger("prefect_nbauth.events")
    opt: _Options
    rest: RestEvents | None

    def __init__(self, sfilter: StreamFilter, api_url: str, options: _Options) -> None:
        super().__init__(sfilter, api_url, options)
        self.sfilter: StreamFilter = sfilter
        self.ledger = Ledger(options.max_tracked)
        self._recovering = False
        self.c_passes = 0

        # reconciliation window
        self._floor_us = sfilter.since_us
        self._pins: list[tuple[int, float]] = []  # (floor, until monotonic): hold after an outage
        self._outage_since: int | None = None
        self._last_contact_us = sfilter.since_us
        self._newest_us: int | None = None
        self._catch_up_pending = True
        self._pass_catch_up = False
        self._cadence = Cadence(flowing=options.reconcile_interval, idle=options.idle_interval)
        self._outbox_waits = 0
        self._burst_window = (0.0, 0)
        self._reconciler: Reconciler | None = None
        self._event_cls = _event_class()

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> EventStreamState:
        if self._stopped:
            return EventStreamState.STOPPED
        if not self._ws_up:
            return EventStreamState.RECONNECTING if self._ever_connected else EventStreamState.CONNECTING
        if self._catching_up or self._recovering:
            return EventStreamState.RECONCILING
        return EventStreamState.CONNECTED

    def stats(self) -> EventStreamStats:
        return EventStreamStats(
            live=self.c_live, reconciled=self.c_reconciled, duplicates=self.c_duplicates,
            malformed=self.c_malformed, reconnects=self.c_reconnects, passes=self.c_passes,
            late=self.c_late, tracked=len(self.ledger),
            requests=self.rest.requests if self.rest is not None else 0,
            last_error=self.last_error, last_error_at=self.last_error_at,
            connected_since=self.connected_since, window_start=from_us(self._floor_us),
            late_bound=self.late_bound(),
        )

    def late_bound(self) -> float:
        """The late-delivery bound in force now (see :class:`EventStreamStats`)."""
        return self.opt.reconcile_interval if self._socket_lost() else self._cadence.bound()

    # ------------------------------------------------------------ websocket
    def _make_rest(self, verify: Any) -> RestEvents:
        assert self.keeper is not None
        return RestEvents(self.api_url, self.keeper, verify=verify)

    def _socket_filter(self) -> dict[str, Any]:
        return self.sfilter.socket_filter(datetime.now(timezone.utc))

    def _on_connected(self) -> None:
        self._last_contact_us = _now_us()
        if self._outage_since is not None:
            # Events sent while the server was down may be persisted late with their
            # original `occurred`: keep checking back to before the outage for a while,
            # and often for a few seconds (the server persists in batches).
            lookback = int(self.opt.lookback * 1e6)
            self._pins.append((self._outage_since - lookback, time.monotonic() + self.opt.lookback))
            self._outage_since = None
            self._cadence.heat(_HOT_FOR)
            self._catch_up_pending = True  # the engine wakes the reader: one catch-up pass now

    def _on_disconnected(self) -> None:
        if self._ws_up:
            self._outage_since = self._last_contact_us
        self._pass_within(self.opt.reconcile_interval)  # REST alone now: the flowing bound

    async def _on_frame(self, raw: Any) -> None:
        self._last_contact_us = _now_us()
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
        event = self._validate(data)
        if event is None:
            return
        occurred = to_us(event.occurred)
        if occurred < self.sfilter.since_us or not self.sfilter.accepts_live(event):
            return
        self.ledger.add(event_id, occurred, time.monotonic(), confirmed=False)
        self.c_live += 1
        self._note_burst()
        if self._cadence.note():  # events flow from now on: the next pass within the flowing bound
            self._pass_within(self.opt.reconcile_interval)
        await self._deliver(event, occurred, "live")

    def _validate(self, data: dict[str, Any]) -> Any:
        """The delivered model of an event, or None (counted as malformed)."""
        try:
            return self._event_cls.model_validate(data)
        except ValueError:
            self._malformed()
            return None

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
            self._cadence.heat(_HOT_FOR)
            self._wake_reader()

    async def _deliver(self, event: Any, occurred: int, how: str) -> None:
        event.delivery = how
        if self._newest_us is not None and occurred < self._newest_us:
            event.late = True
            self.c_late += 1
        else:
            self._newest_us = occurred
        self._changed()
        await self.outbox.put(event)
        if self.outbox.waits != self._outbox_waits:
            # The consumer held us back: the socket was not read meanwhile, and Prefect's
            # server drops for a subscriber whose queue is full. Look now, and often.
            self._outbox_waits = self.outbox.waits
            self._cadence.heat(_HOT_FOR)
            self._wake_reader()

    # ------------------------------------------------------- reconciliation
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
            event = self._validate(data)
            if event is None:
                continue
            occurred = to_us(event.occurred)
            self.ledger.add(event_id, occurred, time.monotonic(), confirmed=True)
            self.c_reconciled += 1
            delivered += 1
            if _now_us() - occurred < self.opt.idle_interval * 1e6:
                self._cadence.note()  # a recent event (not history read back): events flow
            await self._deliver(event, occurred, "reconciled")
        return delivered

    def _read_interval(self) -> float:
        interval = self._cadence.interval()
        if self._socket_lost():
            interval = min(interval, self.opt.reconcile_interval)  # REST is all there is
        return interval

    def _before_pass(self) -> None:
        self._pass_catch_up, self._catch_up_pending = self._catch_up_pending, False
        if self._pass_catch_up and self._ws_up:
            self._catching_up = True
            self._changed()

    def _pass_failed(self) -> None:
        self._catch_up_pending = self._catch_up_pending or self._pass_catch_up

    async def _read_pass(self) -> None:
        if self._reconciler is None:
            assert self.rest is not None
            self._reconciler = Reconciler(rest=self.rest, ledger=self.ledger, sfilter=self.sfilter,
                                          take=self._take, ghost_after=self.opt.ghost_after,
                                          on_recovering=self._set_recovering)
        started = _now_us()
        recovered = await self._reconciler.run_pass(self._floor_us, started)
        self._pass_done(started)
        if recovered:
            self._cadence.heat(_HOT_FOR)

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


def _now_us() -> int:
    return time.time_ns() // 1000
