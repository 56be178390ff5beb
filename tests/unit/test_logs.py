"""stream_logs() pieces without a server: input checks and the keyset reads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

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
