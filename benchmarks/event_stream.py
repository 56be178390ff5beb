#!/usr/bin/env python3
"""Prefect's own events subscriber and prefect_nbauth.stream_events(), side by side.

    .venv/bin/python benchmarks/event_stream.py [--quick]

Starts its own auth-protected Prefect server (``prefect server start`` on a free port of
127.0.0.1, temporary PREFECT_HOME, the test suite's settings: event persister flush every
0.5 s; always stopped at the end), logs this process in with ``prefect_nbauth.login()``,
then for each phase subscribes BOTH ``prefect.events.clients.get_events_subscriber`` and
``stream_events`` to the same fresh event-name prefix, on one event loop, and has a
separate emitter process write the events into ``/api/events/in``:

* bursts of 1,000 and 10,000 events, as fast as one socket takes them
  (``--quick``: 1,000 only);
* a steady 200 events/s for 20 s (``--quick``: 5 s); latency = time delivered minus the
  event's ``occurred`` (set by the emitter just before sending; same clock).

Before each phase one warm-up event is emitted and awaited by both subscribers, so both
subscriptions are live on the server. ``complete_after_s`` is the time from the last emit
to the last burst event our stream delivered. Prefect's subscriber is given until ours has
everything, and then until it has been quiet for 2 s.

The LAST stdout line is one JSON object:
``{"burst": [{"emitted", "prefect": {"delivered", "duplicates"}, "ours": {"delivered",
"duplicates", "complete_after_s"}}, ...], "steady": {"rate", "prefect": {"delivered",
"p50_ms", "p99_ms"}, "ours": {"delivered", "p50_ms", "p99_ms"}}}``.
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
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from prefect_nbauth.testing._server import PrefectServer, isolated_env

# The emitter runs in its own interpreter so that sending never competes with the two
# subscribers for this process's GIL. It imports only websockets (no prefect).
_EMITTER = r"""
import json, os, sys, time, uuid
from datetime import datetime, timezone
from websockets.sync.client import connect
mode, url, name, count, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ws = connect(url.replace("http://", "ws://", 1) + "/events/in", subprotocols=["prefect"], max_size=None)
ws.send(json.dumps({"type": "auth", "token": os.environ.pop("BENCH_AUTH")}))
assert json.loads(ws.recv())["type"] == "auth_success"
ids = []
period = 1.0 / rate if rate > 0 else 0.0
start = next_at = time.monotonic()
first = None
for i in range(count):
    if period:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at += period
    event_id = str(uuid.uuid4())
    ws.send(json.dumps({"id": event_id, "occurred": datetime.now(timezone.utc).isoformat(),
                        "event": name, "resource": {"prefect.resource.id": "bench." + str(i % 10)},
                        "payload": {"i": i}}))
    ids.append(event_id)
    first = first or time.time()
last = time.time()
ws.close()
print(json.dumps({"ids": ids, "first": first, "last": last}))
"""


def _emit(api_url: str, auth: str, name: str, count: int, rate: float = 0.0) -> dict[str, Any]:
    env = isolated_env(BENCH_AUTH=auth)
    proc = subprocess.run(
        [sys.executable, "-c", _EMITTER, "burst" if not rate else "steady", api_url, name, str(count), str(rate)],
        env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"emitter failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def _emit_async(*args: Any) -> dict[str, Any]:
    return await asyncio.to_thread(_emit, *args)


class Side:
    """What one subscriber received: ids in order, receive times, latencies."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.latency_ms: dict[str, float] = {}
        self.received_at: dict[str, float] = {}
        self.last_at = time.monotonic()
        self.changed = asyncio.Event()

    def record(self, event: Any) -> None:
        now = time.time()
        event_id = str(event.id)
        self.ids.append(event_id)
        self.received_at.setdefault(event_id, now)
        self.latency_ms.setdefault(event_id, (now - event.occurred.timestamp()) * 1000)
        self.last_at = time.monotonic()
        self.changed.set()

    def delivered(self, wanted: set[str]) -> int:
        return len(wanted & set(self.ids))

    def duplicates(self, wanted: set[str]) -> int:
        return sum(n - 1 for i, n in Counter(self.ids).items() if n > 1 and i in wanted)

    async def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        return True

    async def wait_quiet(self, quiet: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_at < quiet and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), quiet)
            except asyncio.TimeoutError:
                pass


async def _subscribe_both(api_url: str, auth: str, name: str):
    """Start both subscribers on ``name`` and wait until a warm-up event reached both."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    try:
        from prefect_nbauth import stream_events
    except ImportError:  # not exported from the package yet
        from prefect_nbauth.events._stream import stream_events

    prefect_side, ours_side = Side(), Side()
    prefect_sub = get_events_subscriber(filter=EventFilter(event=EventNameFilter(prefix=[name])))
    await prefect_sub.__aenter__()
    ours = stream_events(prefix=name)

    async def pump_prefect() -> None:
        async for event in prefect_sub:
            prefect_side.record(event)

    async def pump_ours() -> None:
        async for event in ours:
            ours_side.record(event)

    tasks = [asyncio.create_task(pump_prefect()), asyncio.create_task(pump_ours())]
    while ours.state.value not in ("connected", "reconciling"):
        await asyncio.sleep(0.02)
    warm = await _emit_async(api_url, auth, name + "warmup", 1)
    warm_ids = set(warm["ids"])
    for side in (prefect_side, ours_side):
        if not await side.wait(lambda s=side: warm_ids <= set(s.ids), 30):
            raise RuntimeError("a subscriber did not receive the warm-up event")

    async def close() -> None:
        await ours.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await prefect_sub.__aexit__(None, None, None)

    return prefect_side, ours_side, ours, close


async def _persisted_at(api_url: str, auth: str, prefix: str, count: int) -> float | None:
    """When (time.time()) the server's REST API first showed all ``count`` events."""
    import base64
    from datetime import datetime, timedelta, timezone

    import httpx

    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    now = datetime.now(timezone.utc)
    body = {"filter": {"event": {"prefix": [prefix]},
                       "occurred": {"since": (now - timedelta(minutes=5)).isoformat(),
                                    "until": (now + timedelta(days=1)).isoformat()}}, "limit": 1}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for _ in range(1200):
            response = await client.post(f"{api_url}/events/filter", json=body)
            if response.json().get("total", 0) >= count:
                return time.time()
            await asyncio.sleep(0.25)
    return None


async def _burst(api_url: str, auth: str, run: str, count: int) -> dict[str, Any]:
    name = f"bench.{run}.burst{count}."
    prefect_side, ours_side, ours, close = await _subscribe_both(api_url, auth, name)
    try:
        # Probe (one count every 0.25 s) when the server has persisted the whole burst:
        # the REST API, hence reconciliation, cannot see an event before that.
        persisted = asyncio.create_task(_persisted_at(api_url, auth, name + "e", count))
        emitted = await _emit_async(api_url, auth, name + "e", count)
        wanted = set(emitted["ids"])
        complete = await ours_side.wait(lambda: ours_side.delivered(wanted) == len(wanted), 300)
        persisted_at = await persisted
        await prefect_side.wait_quiet(2.0, 60)
        last_ours = max((ours_side.received_at[i] for i in wanted if i in ours_side.received_at),
                        default=None)
        stats = ours.stats
    finally:
        await close()
    result = {
        "emitted": len(wanted),
        "prefect": {"delivered": prefect_side.delivered(wanted), "duplicates": prefect_side.duplicates(wanted)},
        "ours": {"delivered": ours_side.delivered(wanted), "duplicates": ours_side.duplicates(wanted),
                 "complete_after_s": round(last_ours - emitted["last"], 3) if complete and last_ours else None},
    }
    print(f"burst {count}: emitted in {emitted['last'] - emitted['first']:.2f} s; "
          f"prefect delivered {result['prefect']['delivered']}, ours {result['ours']['delivered']} "
          f"(live {stats.live}, reconciled {stats.reconciled}, REST requests {stats.requests}), "
          f"ours complete {result['ours']['complete_after_s']} s after the last emit; the server had "
          f"persisted all of them {persisted_at - emitted['last'] if persisted_at else float('nan'):.2f} s "
          "after it (REST probe every 0.25 s)", flush=True)
    return result


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q * (len(values) - 1)))))
    return round(values[k], 2)


async def _steady(api_url: str, auth: str, run: str, rate: float, seconds: float) -> dict[str, Any]:
    name = f"bench.{run}.steady."
    prefect_side, ours_side, ours, close = await _subscribe_both(api_url, auth, name)
    try:
        emitted = await _emit_async(api_url, auth, name + "e", int(rate * seconds), rate)
        wanted = set(emitted["ids"])
        await ours_side.wait(lambda: ours_side.delivered(wanted) == len(wanted), 120)
        await prefect_side.wait_quiet(1.0, 30)
        stats = ours.stats
    finally:
        await close()
    out: dict[str, Any] = {"rate": rate}
    for key, side in (("prefect", prefect_side), ("ours", ours_side)):
        latencies = [side.latency_ms[i] for i in wanted if i in side.latency_ms]
        out[key] = {"delivered": side.delivered(wanted), "p50_ms": _pct(latencies, 0.5),
                    "p99_ms": _pct(latencies, 0.99)}
    print(f"steady {rate:g}/s for {seconds:g} s: emitted {len(wanted)}; prefect {out['prefect']}; "
          f"ours {out['ours']} (live {stats.live}, reconciled {stats.reconciled})", flush=True)
    return out


async def _main(args: argparse.Namespace, api_url: str, auth: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    bursts = [1000] if args.quick else [1000, 10_000]
    result: dict[str, Any] = {"burst": []}
    for count in bursts:
        result["burst"].append(await _burst(api_url, auth, run, count))
    result["steady"] = await _steady(api_url, auth, run, 200.0, 5.0 if args.quick else 20.0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000-event burst only; 5 s steady")
    args = parser.parse_args()

    auth = "bench:" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="nbauth-bench-") as tmp:
        server = PrefectServer(Path(tmp) / "home", auth_string=auth)
        server.start()
        try:
            import prefect

            import prefect_nbauth

            print(f"prefect {prefect.__version__}; server {server.api_url} started in "
                  f"{server.startup_seconds:.1f} s; {os.cpu_count()} CPUs", flush=True)
            prefect_nbauth.login(server.api_url, auth_string=auth)
            try:
                result = asyncio.run(_main(args, server.api_url, auth))
            finally:
                prefect_nbauth.logout()
        finally:
            server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
