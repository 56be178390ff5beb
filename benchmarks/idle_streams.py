#!/usr/bin/env python3
"""What idle streams send to a Prefect server, counted on the wire, beside Prefect's own subscribers.

    .venv/bin/python benchmarks/idle_streams.py [--seconds 120] [--quick]

Starts its own auth-protected Prefect server with Prefect's default logs settings (the
``/logs/out`` socket off), then runs each subject in its own interpreter, all at once,
each through its own counting proxy (``prefect_nbauth.testing.cut_proxy.CutProxy``, which
records every HTTP request it forwards, websocket upgrades included), for ``--seconds``
from the moment the subject starts (default 120; ``--quick``: 20):

* ``events``: ``stream_events(prefix=...)`` with a prefix nothing matches;
* ``logs``: ``stream_logs()`` (every log from now on) while no flow run is running;
* ``logs_finished_run``: ``stream_logs(flow_run_id=...)`` of a run that completed before;
* ``prefect_events`` / ``prefect_logs``: Prefect's ``get_events_subscriber`` and
  ``get_logs_subscriber`` with the same filters, for comparison.

Nothing is emitted while they run. For each subject: ``requests`` (REST requests, i.e.
HTTP requests that are not websocket upgrades), ``upgrades``, ``requests_per_s`` (REST
requests over the whole window, start-up included), ``by_path``, and for ours the stream's
own ``stats`` at the end. The LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from prefect_nbauth.logs._runs import TAIL
from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.cut_proxy import CutProxy

# One subject: start, run for `seconds`, stop, print what it saw (the last line).
_SUBJECT = r"""
import asyncio, json, sys, time
kind, seconds, arg = sys.argv[1], float(sys.argv[2]), sys.argv[3]

async def main():
    out = {}
    if kind in ("prefect_events", "prefect_logs"):
        if kind == "prefect_events":
            from prefect.events.clients import get_events_subscriber
            from prefect.events.filters import EventFilter, EventNameFilter
            subscriber = get_events_subscriber(filter=EventFilter(event=EventNameFilter(prefix=[arg])))
        else:
            from prefect.logging.clients import get_logs_subscriber
            subscriber = get_logs_subscriber()
        async with subscriber as sub:
            async def drain():
                async for _ in sub:
                    out["received"] = out.get("received", 0) + 1
            task = asyncio.create_task(drain())
            await asyncio.sleep(seconds)
            task.cancel()
    else:
        import prefect_nbauth as nb
        stream = nb.stream_events(prefix=arg) if kind == "events" else nb.stream_logs(flow_run_id=arg or None)
        async def drain():
            async for _ in stream:
                out["received"] = out.get("received", 0) + 1
        task = asyncio.create_task(drain())
        await asyncio.sleep(seconds)
        out["stats"] = stream.stats.to_dict()
        out["state"] = stream.state.value
        await stream.aclose()
        task.cancel()
    print(json.dumps(out))

asyncio.run(main())
"""


def _finished_run(api_url: str, auth: str) -> str:
    """A flow run created and taken to Completed over REST (nothing logs to it any more)."""
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        flow = client.post("/flows/", json={"name": "nbauth-idle"}).json()
        run = client.post("/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "PENDING"}}).json()
        for state in ("RUNNING", "COMPLETED"):
            client.post(f"/flow_runs/{run['id']}/set_state",
                        json={"state": {"type": state}, "force": True}).raise_for_status()
        return str(run["id"])


def _start(kind: str, api_url: str, auth: str, seconds: float, arg: str, home: Path) -> subprocess.Popen[str]:
    env = isolated_env(PREFECT_HOME=str(home), PREFECT_API_URL=api_url, PREFECT_API_AUTH_STRING=auth,
                       PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", PYTHONUNBUFFERED="1")
    home.mkdir(parents=True)
    return subprocess.Popen([sys.executable, "-c", _SUBJECT, kind, str(seconds), arg], env=env, cwd=str(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long each subject runs")
    parser.add_argument("--quick", action="store_true", help="20 s instead of 120 s")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    load = os.getloadavg()
    auth = "bench:" + secrets.token_urlsafe(16)
    prefix = f"nbauth.idle.{uuid.uuid4().hex[:8]}."
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="idle-bench-") as tmp:
        server = PrefectServer(Path(tmp) / "server", auth_string=auth)
        server.start()
        proxies: list[CutProxy] = []
        try:
            run_id = _finished_run(server.api_url, auth)
            # A run that has just ended may still ship its last log batches, and a stream on it
            # reads fast for a few seconds (logs/_runs.py TAIL): let that pass, to measure idle.
            time.sleep(TAIL + 1)
            subjects = {"events": prefix, "logs": "", "logs_finished_run": run_id,
                        "prefect_events": prefix, "prefect_logs": ""}
            running = {}
            for kind, arg in subjects.items():
                proxy = CutProxy(server.port).start()
                proxies.append(proxy)
                running[kind] = (proxy, _start(kind, proxy.url(server.api_url), auth, seconds, arg,
                                                 Path(tmp) / kind))
            print(f"{len(running)} subjects started for {seconds:g} s against {server.api_url}", flush=True)
            for kind, (proxy, proc) in running.items():
                out, err = proc.communicate(timeout=seconds + 300)
                if proc.returncode != 0:
                    raise RuntimeError(f"{kind} failed:\n{err[-3000:]}")
                seen = json.loads(out.strip().splitlines()[-1])
                rest = Counter(path.split("?")[0] for _, path in proxy.requests)
                rest.subtract(Counter(proxy.upgrades))
                count = sum(rest.values())
                result[kind] = {
                    "requests": count, "upgrades": len(proxy.upgrades),
                    "requests_per_s": round(count / seconds, 3),
                    "by_path": {path: n for path, n in rest.items() if n}, **seen,
                }
                print(f"{kind}: {json.dumps(result[kind])}", flush=True)
        finally:
            for proxy in proxies:
                proxy.stop()
            server.stop()
    result["seconds"] = seconds
    result["machine"] = {"loadavg_start": [round(x, 2) for x in load],
                         "loadavg_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                         "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
