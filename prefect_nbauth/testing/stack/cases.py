"""The fault cases of the scale-out suite, shared by tests/scale/test_scale_real.py and
benchmarks/scale_out.py: Prefect's own subscriber beside ``stream_events`` on a scaled stack.

Each case subscribes BOTH Prefect's own ``get_events_subscriber`` and our
``stream_events`` to a fresh event-name prefix through the load balancer, warms both
up (one event sent straight to every replica, so Prefect's subscriber is live
wherever NGINX put it), injects its fault, then compares what each delivered with
the ground truth: the ids the server has persisted, read back over REST once it has
stopped persisting new ones. The caller must be logged in (``prefect_nbauth.login``)
to the stack's load balancer: Prefect's subscriber uses the settings in force.

Every case returns ``{"emitted", "persisted", "prefect": {"delivered", "duplicates"},
"ours": {"delivered", "duplicates", "missing", "extra", "late_delivery_max_s", ...}}``;
``late_delivery_max_s`` is the longest time from the server's receipt of an event (its
``received``) to our delivery, among those our websocket never carried. ``emitted`` counts the
events handed to an ``/events/in`` socket, ``persisted`` those the server kept (the
two differ only when the server loses events it had accepted, e.g. a replica SIGKILLed
with events in its publisher's batch), and ``ours.missing`` counts persisted events our
stream did not deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect
from websockets.typing import Subprotocol

from ..._urls import ws_url
from ...events import stream_events
from .._wait import wait_until
from ..events import Collector, SteadyEmitter, emit_events, event_payload, persisted_events
from ._stack import ScaledStack

__all__ = ["PrefectSubscriber", "case_burst", "case_in_memory", "case_redis_restart", "case_replica_kill"]


class PrefectSubscriber:
    """Prefect's own ``get_events_subscriber`` on a thread with its own event loop."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ids: list[str] = []
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name="prefect-subscriber", daemon=True)

    def start(self, timeout: float = 60) -> "PrefectSubscriber":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"Prefect's subscriber did not connect in {timeout:g} s: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._task = self._loop.create_task(self._run())
            self._loop.run_until_complete(self._task)
        except BaseException as exc:  # noqa: BLE001 - cancelled, or Prefect gave up: keep the figures
            if not isinstance(exc, asyncio.CancelledError):
                self.error = exc
        finally:
            self._ready.set()
            self._loop.close()

    async def _run(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        async with get_events_subscriber(filter=EventFilter(event=EventNameFilter(prefix=[self.prefix]))) as sub:
            self._ready.set()
            async for event in sub:
                self.ids.append(str(event.id))

    def delivered(self, wanted: set[str]) -> int:
        return len(wanted & set(self.ids))

    def duplicates(self, wanted: set[str]) -> int:
        return sum(n - 1 for i, n in Counter(self.ids).items() if n > 1 and i in wanted)


class TimedCollector(Collector):
    """A Collector that also notes when each event arrived (time.time())."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def add(self, event: Any) -> None:
        self.arrived.setdefault(str(event.id), time.time())
        super().add(event)


class Sides:
    """Both subscribers on ``prefix``, warmed up; ``close()`` stops both."""

    def __init__(self, stack: ScaledStack, prefix: str) -> None:
        self.stack, self.prefix = stack, prefix
        self.since = datetime.now(timezone.utc)
        self.ours = TimedCollector()
        self.stream = stream_events(prefix=prefix)
        self.handle = self.stream.run_in_background(self.ours.add)
        self.prefect = PrefectSubscriber(prefix)
        try:
            self.prefect.start()
            wait_until(lambda: self.stream.state.value in ("connected", "reconciling"), 60,
                       what="our stream to connect")
            warm = []
            for replica in stack.replicas:  # wherever NGINX put Prefect's socket, it sees one
                warm += emit_events(replica.api_url, stack.auth_string, prefix + "warmup", 1)
            wait_until(lambda: set(warm) & set(self.prefect.ids) or self.prefect.error is not None, 60,
                       what="Prefect's subscriber to receive a warm-up event")
            self.ours.wait_ids(warm, 60)
        except BaseException:
            self.close()
            raise

    def stream_replica(self) -> str:
        """The replica (``127.0.0.1:PORT``) that holds our stream's websocket now."""
        socket = self.stream._engine._socket  # test introspection: the live websocket
        assert socket is not None, "our stream has no websocket now"
        return socket.connection.response.headers["X-Prefect-Replica"]

    def close(self) -> None:
        self.handle.stop()
        self.prefect.stop()

    def _settle(self, sent: int, headers: dict[str, str], timeout: float, quiet: float = 10.0) -> None:
        """Until the server has persisted all ``sent`` events, or its count stood still for ``quiet`` s.

        On a loaded machine Prefect's persister can lag a 10,000-event burst by many seconds,
        so a short pause in the count does not mean it is done.
        """
        body = {"filter": {"event": {"prefix": [self.prefix + "e"]},
                           "occurred": {"since": self.since.isoformat(),
                                        "until": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()}},
                "limit": 1}
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        with httpx.Client(headers=headers, timeout=30) as client:
            while True:
                total = client.post(f"{self.stack.api_url}/events/filter", json=body).json()["total"]
                if total >= sent:
                    return
                if total != last:
                    last, since = total, time.monotonic()
                elif time.monotonic() - since >= quiet or time.monotonic() > deadline:
                    return
                time.sleep(0.5)

    def figures(self, sent: list[str], *, timeout: float = 300) -> dict[str, Any]:
        """Settle, wait for ours to hold every persisted event, then count both sides."""
        headers = self.stack.auth_headers()
        self._settle(len(sent), headers, timeout)
        persisted = {e["id"] for e in persisted_events(self.stack.api_url, headers, self.prefix + "e", self.since)}
        try:
            self.ours.wait_ids(persisted, timeout)
        except AssertionError:
            pass  # reported as `missing` below
        # Prefect's subscriber gets until it has been quiet for 2 s.
        last = (len(self.prefect.ids), time.monotonic())
        while time.monotonic() - last[1] < 2.0:
            time.sleep(0.2)
            if len(self.prefect.ids) != last[0]:
                last = (len(self.prefect.ids), time.monotonic())
        stats = self.stream.stats
        with self.ours._cond:
            ours_ids = [str(e.id) for e in self.ours.events if e.event.startswith(self.prefix + "e")]
            # How late the events the websocket never carried came: from the server's receipt
            # (its persister flush included) to our delivery.
            late = [self.ours.arrived[str(e.id)] - e.received.timestamp() for e in self.ours.events
                    if e.delivery == "reconciled" and str(e.id) in persisted]
        counts = Counter(ours_ids)
        return {
            "emitted": len(sent),
            "persisted": len(persisted),
            "prefect": {"delivered": self.prefect.delivered(persisted),
                        "duplicates": self.prefect.duplicates(persisted),
                        "error": type(self.prefect.error).__name__ if self.prefect.error else None},
            "ours": {"delivered": len(persisted & set(ours_ids)),
                     "duplicates": sum(n - 1 for n in counts.values() if n > 1),
                     "missing": len(persisted - set(ours_ids)),
                     "extra": len(set(ours_ids) - persisted),
                     "live": stats.live, "reconciled": stats.reconciled, "reconnects": stats.reconnects,
                     "requests": stats.requests, "passes": stats.passes,
                     "late_delivery_max_s": round(max(late), 2) if late else None,
                     "late_bound": stats.late_bound,
                     "error": type(self.stream.error).__name__ if self.stream.error else None},
            "_persisted_ids": persisted,
        }


def _unique(label: str) -> str:
    return f"nbauth.scale.{label}.{uuid.uuid4().hex[:8]}."


def _drop_private(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


# ------------------------------------------------------------------ cases


def _balancer_socket(stack: ScaledStack) -> ClientConnection:
    """An authenticated ``/events/in`` socket through NGINX, with a patient close (see emit_burst)."""
    url = ws_url(stack.api_url, "events/in")
    ws = sync_connect(url, subprotocols=[Subprotocol("prefect")], open_timeout=10, close_timeout=600)
    try:
        ws.send(json.dumps({"type": "auth", "token": stack.auth_string}))
        if json.loads(ws.recv(timeout=10)).get("type") != "auth_success":
            raise RuntimeError("the stack refused its auth string on /events/in")
    except BaseException:
        ws.close()
        raise
    return ws


def emit_burst(stack: ScaledStack, name: str, count: int) -> list[str]:
    """``count`` events as fast as one socket through NGINX takes them; then a patient close.

    The client writes far faster than a replica reads, so the frames wait in socket and
    NGINX buffers; websockets' default close timeout (10 s) would reset the connection with
    frames still in flight. The server answers the close frame only after it has received
    every frame sent before it, so once ``close()`` returns, all ``count`` reached Prefect.
    """
    ids: list[str] = []
    ws = _balancer_socket(stack)
    try:
        for index in range(count):
            event = event_payload(name, index)
            ws.send(json.dumps(event))
            ids.append(event["id"])
    finally:
        ws.close()
    return ids


def case_burst(stack: ScaledStack, count: int) -> dict[str, Any]:
    """``count`` events as fast as one socket through NGINX takes them."""
    sides = Sides(stack, _unique("burst"))
    try:
        sent = emit_burst(stack, sides.prefix + "e", count)
        emitted_at = time.time()
        result = sides.figures(sent)
        arrived = [sides.ours.arrived[i] for i in result["_persisted_ids"] if i in sides.ours.arrived]
        result["ours"]["complete_after_s"] = (round(max(arrived) - emitted_at, 2)
                                              if result["ours"]["missing"] == 0 and arrived else None)
    finally:
        sides.close()
    return _drop_private(result)


@contextlib.contextmanager
def _under_steady_emitter(stack: ScaledStack, label: str, rate: float) -> Iterator[tuple[Sides, SteadyEmitter]]:
    """Both subscribers on a fresh prefix and an emitter at ``rate``/s through NGINX; both closed after."""
    sides = Sides(stack, _unique(label))
    emitter = SteadyEmitter(stack.api_url, lambda: stack.auth_string, sides.prefix + "e", rate=rate).start()
    try:
        yield sides, emitter
    finally:
        emitter.stop()
        sides.close()


def case_replica_kill(stack: ScaledStack, *, rate: float = 100, before: int = 300,
                      after: int = 300) -> dict[str, Any]:
    """SIGKILL the replica holding our websocket under a steady emitter; restart it."""
    with _under_steady_emitter(stack, "kill", rate) as (sides, emitter):
        emitter.wait_sent(before, 120)
        victim = stack.replica_at(sides.stream_replica())
        reconnects = sides.stream.stats.reconnects
        stack.kill_replica(victim)
        killed_at = len(emitter.sent)
        wait_until(lambda: sides.stream.stats.reconnects > reconnects, 90, what="our stream to reconnect")
        stack.start_replica(victim)
        emitter.wait_sent(killed_at + after, 180)
        emitter.stop()
        result = sides.figures(emitter.sent)
        result["killed_replica"] = victim.index
        result["sent_before_kill"] = killed_at
        result["ours_moved_to"] = sides.stream_replica() if sides.stream._engine._socket else None
    return _drop_private(result)


def case_redis_restart(stack: ScaledStack, *, rate: float = 100, before: int = 200,
                       after: int = 300) -> dict[str, Any]:
    """Stop Redis (``SHUTDOWN``, append-only file kept) and start it again under a steady emitter."""
    with _under_steady_emitter(stack, "redis", rate) as (sides, emitter):
        emitter.wait_sent(before, 120)
        stack.restart_redis()
        restarted_at = len(emitter.sent)
        emitter.wait_sent(restarted_at + after, 180)
        emitter.stop()
        result = sides.figures(emitter.sent)
        result["emitter_reconnects"] = emitter.failures
    return _drop_private(result)


def emit_round_robin(stack: ScaledStack, name: str, count: int, *, per_socket: int = 50,
                     rate: float = 200) -> tuple[list[str], Counter[str]]:
    """``count`` events at ``rate``/s through NGINX, a new socket every ``per_socket`` events."""
    ids: list[str] = []
    where: Counter[str] = Counter()
    period = 1.0 / rate
    next_at = time.monotonic()
    index = 0
    while index < count:
        ws = _balancer_socket(stack)
        try:
            replica = ws.response.headers.get("X-Prefect-Replica", "?") if ws.response else "?"
            for _ in range(min(per_socket, count - index)):
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += period
                event = event_payload(name, index)
                ws.send(json.dumps(event))
                ids.append(event["id"])
                where[replica] += 1
                index += 1
        finally:
            ws.close()
    return ids, where


def case_in_memory(stack: ScaledStack, count: int, *, rate: float = 200) -> dict[str, Any]:
    """In-memory messaging: each replica's websocket sees only what that replica ingested."""
    sides = Sides(stack, _unique("memory"))
    try:
        sent, where = emit_round_robin(stack, sides.prefix + "e", count, rate=rate)
        result = sides.figures(sent)
        result["ingested_per_replica"] = dict(where)
    finally:
        sides.close()
    return _drop_private(result)


def print_figures(label: str, result: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """One line per case: Prefect's figures beside ours."""
    ours, prefect = result["ours"], result["prefect"]
    out(f"[scale] {label}: emitted {result['emitted']}, persisted {result['persisted']}; "
        f"Prefect's subscriber delivered {prefect['delivered']} (duplicates {prefect['duplicates']}); "
        f"ours delivered {ours['delivered']} (duplicates {ours['duplicates']}, missing {ours['missing']}, "
        f"live {ours['live']}, reconciled {ours['reconciled']}, reconnects {ours['reconnects']}, "
        f"reconciled ones at most {ours.get('late_delivery_max_s')} s after the server received them)")
