#!/usr/bin/env python3
"""Prefect's own logs subscriber, Prefect's FlowRunSubscriber and stream_logs(), side by side.

    .venv/bin/python benchmarks/log_stream.py [--quick]

Starts its own auth-protected Prefect server (free port on 127.0.0.1, temporary
PREFECT_HOME, Prefect's logs websocket turned ON: it is off by default, and then
Prefect's subscribers get nothing at all), logs this process in with
``prefect_nbauth.login()``, and on one event loop subscribes all three to one flow run:

* **burst**: a flow run in a separate process (``python -m prefect.flow_engine``, as on
  a worker) logs 3,000 lines at full speed (``--quick``: 1,000). ``complete_after_s`` is
  from the flow process's exit to the last line our stream delivered (negative: every
  line was delivered before the process had finished shutting down). Prefect's
  subscribers are given until ours has everything, then until they have been quiet 3 s.
* **steady**: a separate emitter process posts one log at a time to ``POST /api/logs/``
  at 50 logs/s for 20 s (``--quick``: 5 s); latency = time delivered minus the log's
  timestamp (set by the emitter just before posting; same clock).

The LAST stdout line is one JSON object: ``{"burst": {"emitted", "prefect": {"delivered"},
"flow_run_subscriber": {"delivered"}, "ours": {"delivered", "duplicates", "out_of_order",
"complete_after_s"}}, "steady": {"rate", "prefect": {"delivered", "p50_ms", "p99_ms"},
"ours": {"delivered", "p50_ms", "p99_ms"}}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from uuid import UUID

from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.logs import LOGS_ON, FlowProcess, create_run

# One log per request, at a fixed rate, from its own interpreter (no GIL shared with the
# subscribers). Imports only httpx.
_EMITTER = r"""
import base64, os, sys, time
from datetime import datetime, timezone
import httpx
url, run_id, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
auth = os.environ.pop("BENCH_AUTH")
headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
    start = time.monotonic(); n = 0
    while time.monotonic() - start < seconds:
        body = [{"name": "bench", "level": 20, "message": f"steady {n:06d}", "flow_run_id": run_id,
                 "timestamp": datetime.now(timezone.utc).isoformat()}]
        client.post("/logs/", json=body).raise_for_status()
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
print(n)
"""


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def _drain(subscription: Any, sink: list[Any], stop: asyncio.Event,
                 keep: Callable[[Any], bool] = lambda item: True) -> None:
    """Read ``subscription`` (an async context manager that iterates) into ``sink`` until ``stop``."""
    async with subscription as sub:
        iterator = sub.__aiter__()
        while not stop.is_set():
            try:
                item = await asyncio.wait_for(iterator.__anext__(), 0.5)
            except asyncio.TimeoutError:
                continue
            except StopAsyncIteration:
                return  # FlowRunSubscriber stops by itself after the terminal event + its straggler timeout
            if keep(item):
                sink.append((time.time(), item))


async def _prefect_logs(run_id: str, sink: list[Any], stop: asyncio.Event) -> None:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.clients import get_logs_subscriber

    await _drain(get_logs_subscriber(filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]))),
                 sink, stop)


async def _flow_run_subscriber(run_id: str, sink: list[Any], stop: asyncio.Event) -> None:
    from prefect.client.schemas.objects import Log
    from prefect.events.subscribers import FlowRunSubscriber

    await _drain(FlowRunSubscriber(flow_run_id=UUID(run_id)), sink, stop, keep=lambda item: isinstance(item, Log))


async def _ours(run_id: str, sink: list[Any], stop: asyncio.Event) -> None:
    from prefect_nbauth import stream_logs

    await _drain(stream_logs(flow_run_id=run_id), sink, stop)


async def _quiet(sinks: list[list[Any]], seconds: float, limit: float) -> None:
    deadline = time.monotonic() + limit
    sizes = [len(s) for s in sinks]
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = [len(s) for s in sinks]
        if now != sizes:
            sizes, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return


async def _burst(server: PrefectServer, auth: str, lines: int) -> dict[str, Any]:
    run_id = create_run(server.api_url, server.auth_headers())
    prefect_sink: list[Any] = []
    frs_sink: list[Any] = []
    ours: list[Any] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f(run_id, s, stop)) for f, s in
             ((_prefect_logs, prefect_sink), (_flow_run_subscriber, frs_sink), (_ours, ours))]
    await asyncio.sleep(3)  # all three subscribed (ours says "connected" within ~1 s)
    flow = FlowProcess(server.api_url, auth, run_id, lines=lines)
    code = await asyncio.to_thread(flow.wait, 600)
    ended = time.time()
    if code != 0:
        raise RuntimeError(f"the flow process failed:\n{flow.output()}")
    deadline = time.monotonic() + 300
    while sum(1 for _, log in ours if log.message.startswith("line ")) < lines and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    mine = [(t, log) for t, log in ours if log.message.startswith("line ")]
    complete_after = round(mine[-1][0] - ended, 2) if len(mine) >= lines else None
    await _quiet([prefect_sink, frs_sink], 3.0, 60)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    def count(sink: list[Any]) -> int:
        return sum(1 for _, log in sink if log.message.startswith("line "))

    ids = Counter(str(log.id) for _, log in ours)
    numbers = [int(log.message.split()[-1]) for _, log in mine]
    return {
        "emitted": lines,
        "prefect": {"delivered": count(prefect_sink)},
        "flow_run_subscriber": {"delivered": count(frs_sink)},
        "ours": {"delivered": len(set(numbers)), "duplicates": sum(v - 1 for v in ids.values()),
                 "out_of_order": sum(1 for a, b in zip(numbers, numbers[1:]) if b < a),
                 "complete_after_s": complete_after},
    }


async def _steady(server: PrefectServer, auth: str, rate: float, seconds: float) -> dict[str, Any]:
    run_id = create_run(server.api_url, server.auth_headers())
    prefect_sink: list[Any] = []
    ours: list[Any] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_prefect_logs(run_id, prefect_sink, stop)),
             asyncio.create_task(_ours(run_id, ours, stop))]
    await asyncio.sleep(3)
    env = isolated_env(BENCH_AUTH=auth)
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", _EMITTER, server.api_url, run_id,
                                                    str(rate), str(seconds)], env=env, capture_output=True,
                                   text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    sent = int(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 60
    while len(ours) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await _quiet([prefect_sink], 2.0, 30)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    def latencies(sink: list[Any]) -> list[float]:
        return [(t - log.timestamp.timestamp()) * 1000 for t, log in sink]

    numbers = [int(log.message.split()[-1]) for _, log in ours if log.message.startswith("steady ")]
    return {"rate": rate, "sent": sent,
            "prefect": {"delivered": len(prefect_sink), "p50_ms": _percentile(latencies(prefect_sink), 0.5),
                        "p99_ms": _percentile(latencies(prefect_sink), 0.99)},
            "ours": {"delivered": len({str(log.id) for _, log in ours}),
                     "p50_ms": _percentile(latencies(ours), 0.5), "p99_ms": _percentile(latencies(ours), 0.99),
                     "out_of_order": sum(1 for a, b in zip(numbers, numbers[1:]) if b < a),
                     "live": sum(1 for _, log in ours if log.delivery == "live")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1,000-line burst and 5 s of steady logs (CI)")
    args = parser.parse_args()
    lines, seconds = (1000, 5.0) if args.quick else (3000, 20.0)
    auth = "bench:" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="log-bench-") as home:
        server = PrefectServer(Path(home) / "server", auth_string=auth, extra_env=LOGS_ON)
        server.start()
        try:
            import prefect_nbauth

            prefect_nbauth.login(server.api_url, auth_string=auth)
            try:
                started = time.monotonic()
                burst = asyncio.run(_burst(server, auth, lines))
                print(f"burst of {lines}: {json.dumps(burst)} ({time.monotonic() - started:.0f} s)", flush=True)
                steady = asyncio.run(_steady(server, auth, 50.0, seconds))
                print(f"steady: {json.dumps(steady)}", flush=True)
            finally:
                prefect_nbauth.logout()
        finally:
            server.stop()
    result = {"burst": burst, "steady": steady,
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
