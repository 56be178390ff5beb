"""stream_logs() pieces without a server: input checks and the keyset reads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_nbauth import ConfigurationError
from prefect_nbauth._streaming._time import iso_us, to_us
from prefect_nbauth.logs._filter import build_log_filter, parse_level, parse_since
from prefect_nbauth.logs._reconcile import PAGE, read_range

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class FakeRest:
    """POST /logs/filter over a list, with the server's semantics: sort by timestamp only
    (ties in an arbitrary order), inclusive after_/before_, limit 200, offset."""

    PAGE = PAGE

    def __init__(self, logs: list[dict[str, Any]]) -> None:
        self.logs = logs
        self.requests = 0

    async def page(self, body: dict[str, Any], offset: int = 0) -> list[dict[str, Any]]:
        self.requests += 1
        after = body["timestamp"]["after_"]
        before = body["timestamp"].get("before_")
        hits = [log for log in self.logs if log["timestamp"] >= after and (before is None or log["timestamp"] <= before)]
        hits.sort(key=lambda log: (log["timestamp"], hash(log["id"]) % 7))  # ties: no order
        return hits[offset:offset + PAGE]


def _logs(stamps: list[int]) -> list[dict[str, Any]]:
    return [{"id": str(uuid.uuid4()), "timestamp": iso_us(to_us(NOW) + us), "message": f"{i}"}
            for i, us in enumerate(stamps)]


@pytest.mark.parametrize("stamps", [
    list(range(1000)),  # distinct
    [0] * 450 + list(range(1, 300)),  # a run of 450 logs with one timestamp: more than two pages
    [i // 3 for i in range(900)],  # ties everywhere, across page boundaries
])
def test_keyset_reads_return_every_log_once(stamps: list[int]) -> None:
    logs = _logs(stamps)
    rest = FakeRest(logs)
    sfilter = build_log_filter(flow_run_id=str(uuid.uuid4()), since=NOW - timedelta(seconds=1), now=NOW)
    seen: list[str] = []

    async def take(page: list[dict[str, Any]]) -> None:
        seen.extend(log["id"] for log in page)

    asyncio.run(read_range(rest, sfilter, to_us(NOW), None, take))  # type: ignore[arg-type]
    # Keyset pages re-read the boundary timestamp: ids repeat, and the stream drops them.
    assert set(seen) == {log["id"] for log in logs}
    assert rest.requests <= len(logs) // 100 + 4


def test_inputs_are_checked_before_anything_connects() -> None:
    assert parse_level("warning") == 30 and parse_level("WARN") == 30 and parse_level(15) == 15
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since(timedelta(hours=1), NOW) == NOW - timedelta(hours=1)
    for bad in ({"level": "LOUD"}, {"level": True}, {"since": "yesterday"}, {"flow_run_id": "x"},
                {"flow_run_id": []}, {"since": datetime(2026, 1, 1)}, {"text": ""}):
        with pytest.raises(ConfigurationError):
            build_log_filter(**bad, now=NOW)
    run = str(uuid.uuid4())
    with_run = build_log_filter(flow_run_id=run, now=NOW)
    assert with_run.since_us == 0  # a run's whole history by default
    assert build_log_filter(now=NOW).since == NOW  # no run: from now
    text = build_log_filter(flow_run_id=run, text="error", now=NOW)
    assert not text.live_exact and "text" not in text.socket_filter()  # the socket ignores text
    assert with_run.live_exact and with_run.socket_filter()["flow_run_id"] == {"any_": [run]}


def test_stream_logs_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_nbauth import stream_logs

    for bad in ({"poll_interval": 0}, {"lookback": 2, "settle": 3}, {"buffer": 0}, {"backoff": 3}):
        with pytest.raises(ConfigurationError):
            stream_logs(**bad)


# ------------------------------------------ live lines: when the socket is in order


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _prefect_logs_socket(batches: list[tuple[float, int]], send_times: list[float]) -> tuple[list[tuple[float, int]], set[int]]:
    """Prefect's /logs/out for one subscriber, as server/logs/stream.py does it.

    Each batch (a POST of ``size`` logs at ``time``) is put into the subscriber's
    queue of 256 without a pause (``put_nowait``; a full queue drops the log);
    the socket sends from the queue one log at a time, each send taking the next
    of ``send_times`` seconds. Returns (arrival time, log number) in arrival
    order, and the numbers dropped.
    """
    from collections import deque

    from prefect_nbauth.logs._live import BACKLOG

    queue: deque[int] = deque()
    dropped: set[int] = set()
    arrivals: list[tuple[float, int]] = []
    pending = sorted(batches)
    number, now, sending, sends = 0, 0.0, None, 0
    while pending or queue or sending:
        next_batch = pending[0][0] if pending else float("inf")
        if sending is not None and sending[0] <= next_batch:
            now, item = sending
            arrivals.append((now, item))
            sending = None
        elif pending:
            now, size = pending.pop(0)
            for _ in range(size):
                (queue.append if len(queue) < BACKLOG else dropped.add)(number)
                number += 1
        if sending is None and queue:
            sending = (now + send_times[sends % len(send_times)], queue.popleft())
            sends += 1
    return arrivals, dropped


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.tuples(st.floats(0, 20), st.integers(1, 400)), min_size=1, max_size=8),
       send_times=st.lists(st.floats(0, 0.007), min_size=1, max_size=30))
def test_a_line_the_gate_lets_through_never_follows_a_dropped_one(batches, send_times) -> None:
    """Against a model of Prefect's subscriber queue: whenever the server dropped logs just before
    a frame, the gate says so for that frame (sends of up to 7 ms: 256 of them within 2 s)."""
    from prefect_nbauth.logs._live import LiveGate

    clock = FakeClock()
    gate = LiveGate(window=2.0, clock=clock)
    arrivals, dropped = _prefect_logs_socket(batches, send_times)
    previous = -1
    for at, number in arrivals:
        clock.now = at
        in_order = gate.arrived()
        gap = any(previous < lost < number for lost in dropped)
        assert not (gap and in_order), (number, previous)
        previous = number


def test_steady_lines_pass_the_gate_and_a_clean_read_syncs_it() -> None:
    from prefect_nbauth.logs._live import LiveGate

    clock = FakeClock()
    gate = LiveGate(window=2.0, clock=clock)
    gate.connected()
    token = gate.read_begins(up=True)
    gate.read_ends(token, up=True, held=False, unannounced=3)
    assert not gate.synced  # the read found logs the socket had not announced: not yet
    token = gate.read_begins(up=True)
    gate.read_ends(token, up=True, held=False, unannounced=0)
    assert gate.synced
    for n in range(1000):  # 50 lines/s: never 256 within 2 s
        clock.now = n * 0.02
        assert gate.arrived()
    assert gate.synced
    clock.now += 10
    for _ in range(256):  # a burst drained back to back: 256 may all have waited in the queue...
        assert gate.arrived()
    assert not gate.arrived() and not gate.synced  # ...so a log after them may have been dropped
    token = gate.read_begins(up=True)
    gate.connected()  # a reconnect during the read: that read cannot sync the new connection
    gate.read_ends(token, up=True, held=False, unannounced=0)
    assert not gate.synced
    token = gate.read_begins(up=True)
    gate.read_ends(token, up=True, held=True, unannounced=0)
    assert not gate.synced  # live frames still wait for REST
    token = gate.read_begins(up=True)
    gate.distrust()  # e.g. the consumer held the socket back
    gate.read_ends(token, up=True, held=False, unannounced=0)
    assert not gate.synced


# ------------------------------------------ no live logs: where there is something to read


def test_runs_are_active_while_pending_running_or_cancelling_and_briefly_after_the_end() -> None:
    from prefect_nbauth.logs._runs import TAIL, RunActivity

    run, other = str(uuid.uuid4()), str(uuid.uuid4())
    clock = FakeClock()
    activity = RunActivity(build_log_filter(flow_run_id=[run, other], now=NOW), recheck=30.0, clock=clock)
    assert activity.ids_to_read() == [f"prefect.flow-run.{run}", f"prefect.flow-run.{other}"]
    activity.reading()
    assert activity.from_event(f"prefect.flow-run.{run}", "RUNNING")  # told while the read ran
    assert activity.from_rest([(f"prefect.flow-run.{run}", "SCHEDULED", 50.0),  # older than the event
                               (f"prefect.flow-run.{other}", "COMPLETED", 3600.0)]) is False
    assert activity.active() and activity.active_count == 1 and activity.ids_to_read() is None
    clock.now = 30.0  # a run believed active is re-read now and then (a missed "final" event)
    assert activity.ids_to_read() == [f"prefect.flow-run.{run}"]
    assert activity.from_event(f"prefect.flow-run.{run}", "COMPLETED")  # its last batches follow
    assert activity.active() and activity.active_count == 0
    clock.now += TAIL
    assert not activity.active()
    assert not activity.from_event(f"prefect.flow-run.{run}", None)  # no state: no news
    assert activity.from_event(f"prefect.flow-run.{other}", "PENDING") and activity.active()
    assert not activity.from_event(f"prefect.flow-run.{run}", "RUNNING")  # already reading fast
    activity.from_event(f"prefect.flow-run.{other}", "PAUSED")
    activity.from_event(f"prefect.flow-run.{run}", "SCHEDULED")
    assert not activity.active()
    activity.gap()  # the events socket was down: fast for a tail
    assert activity.active()


def test_the_events_socket_is_asked_for_the_states_of_the_runs_whose_logs_are_wanted() -> None:
    from prefect.events.filters import EventFilter

    from prefect_nbauth.logs._runs import signal_filter, state_of_event

    run, task = str(uuid.uuid4()), str(uuid.uuid4())
    for kwargs, prefix, ids in (
        ({"flow_run_id": run}, ["prefect.flow-run."], [f"prefect.flow-run.{run}"]),
        ({"flow_run_id": run, "task_run_id": task}, ["prefect.task-run."], [f"prefect.task-run.{task}"]),
        ({"level": "INFO"}, ["prefect.flow-run.", "prefect.task-run."], None),
    ):
        body = signal_filter(build_log_filter(**kwargs, now=NOW), NOW)
        EventFilter.model_validate(body)  # Prefect's websocket takes it
        assert body["event"] == {"prefix": prefix}
        assert (body.get("resource") or {}).get("id") == ids
    frame = {"type": "event", "event": {"event": "prefect.flow-run.Running", "resource": {
        "prefect.resource.id": f"prefect.flow-run.{run}", "prefect.state-type": "RUNNING"}}}
    assert state_of_event(frame) == (f"prefect.flow-run.{run}", "RUNNING")
    assert state_of_event({"type": "event", "event": {"resource": {"prefect.resource.id": "prefect.flow.x"}}}) is None
    assert state_of_event([1]) is None and state_of_event({"type": "event", "event": 3}) is None


# ------------------------------------------------------------------ which run a line is from

def test_a_log_is_labelled_with_its_task_run_else_its_flow_run() -> None:
    from types import SimpleNamespace

    from prefect_nbauth.logs import source_label

    flow, task = uuid.uuid4(), uuid.uuid4()
    names = {("flow", str(flow)): "crazy-cat", ("task", str(task)): "prepare-3f1"}
    assert source_label(SimpleNamespace(flow_run_id=flow, task_run_id=task), names) == "task prepare-3f1"
    assert source_label(SimpleNamespace(flow_run_id=flow, task_run_id=None), names) == "flow crazy-cat"
    assert source_label(SimpleNamespace(flow_run_id=uuid.uuid4(), task_run_id=None), {}).startswith("flow ")
    assert source_label(SimpleNamespace(flow_run_id=None, task_run_id=None), names) == ""


def test_run_names_are_read_in_batches_each_run_once_and_failures_fall_back_to_the_id() -> None:
    import threading
    from types import SimpleNamespace

    from prefect_nbauth.logs import RunNames
    from prefect_nbauth.testing import wait_until

    flows = [uuid.uuid4() for _ in range(3)]
    batches: list[list[tuple[str, str]]] = []
    changed = threading.Event()
    fail = {"now": True}

    def read(wanted: Any) -> dict[tuple[str, str], str]:
        batches.append(list(wanted))
        if fail["now"]:
            fail["now"] = False
            raise RuntimeError("the API is down")
        return {key: f"name-{key[1][:4]}" for key in wanted}

    names = RunNames(on_change=changed.set, read=read)
    logs = [SimpleNamespace(flow_run_id=flow, task_run_id=None) for flow in flows]
    names.want(logs[0])  # read, and the read fails: its label stays the id's start
    wait_until(lambda: len(batches) == 1, 10, "the first read")
    assert names.label(logs[0]) == f"flow {str(flows[0])[:8]}"
    for log in logs * 50:  # many lines of the same runs: each run is asked for once
        names.want(log)
    wait_until(changed.is_set, 10, "the names to arrive")
    assert sorted(key for batch in batches[1:] for key in batch) == sorted(("flow", str(f)) for f in flows[1:])
    assert names.label(logs[1]) == f"flow name-{str(flows[1])[:4]}"
    names.close()
