#!/usr/bin/env python3
"""The event stream against a scaled-out Prefect, side by side with Prefect's own subscriber.

    .venv/bin/python benchmarks/scale_out.py [--quick]

Starts the stack of ``prefect_nbauth.testing.stack`` (PostgreSQL, Redis, two API replicas with
``--no-services``, one ``prefect server services start``, NGINX round robin; auth string
enforced by Prefect), logs this process in to the load balancer with
``prefect_nbauth.login()`` and runs the cases of ``prefect_nbauth.testing.stack.cases``, each with
Prefect's ``get_events_subscriber`` and our ``stream_events`` subscribed to the same fresh
prefix through NGINX:

* ``burst``: 10,000 events as fast as one ``/events/in`` socket through NGINX takes them
  (``--quick``: 1,000);
* ``replica_kill``: a 100 events/s emitter through NGINX; SIGKILL of the replica holding our
  websocket, then restart of that replica;
* ``redis_restart``: the same emitter; Redis stopped and started again;
* ``reconcile_cost``: 1,000,000 events bulk-inserted into PostgreSQL with SQL
  (``--quick``: 100,000) spread over the last hour, 1,000 of them matching a stream's
  prefix filter; a stream with ``since`` one hour back: its catch-up pass, its quiet passes
  (requests and ms each), and a pass that recovers 100 events inserted behind the websocket's
  back; the same quiet pass measured before the bulk insert, for comparison;
* ``idle_streams``: 50 idle streams (50 notebook kernels) on one process, 25 ``stream_events``
  and 25 ``stream_logs`` of runs that ended: REST requests per second they add at rest, by
  their own count and NGINX's (``--quick``: 30 s of counting, else 120 s), and from the
  first stream's start;
* ``in_memory_messaging``: a second stack with Prefect's in-memory broker (each replica
  running its own services), 2,000 events at 200/s through NGINX (``--quick``: 600);
  ``late_delivery_max_s``: the longest time from the server's receipt of an event our
  websocket never carried (the other replica ingested it) to its delivery, beside the
  stream's ``late_bound`` (its persister flush, 0.5 s here, is included).

Ground truth for every case: the ids the server persisted (REST, after it stopped persisting).
The LAST stdout line is one JSON object (the issue's shape, plus ``persisted`` per case and
the extra cases).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

import prefect_nbauth as nb
from prefect_nbauth.events import _reconcile as _events_reconcile
from prefect_nbauth.events import stream_events
from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.events import Collector
from prefect_nbauth.testing.stack import ScaledStack
from prefect_nbauth.testing.stack.cases import (
    case_burst,
    case_in_memory,
    case_redis_restart,
    case_replica_kill,
    print_figures,
)

AUTH = "bench:" + uuid.uuid4().hex


def _public(result: dict[str, Any]) -> dict[str, Any]:
    ours = {k: result["ours"][k] for k in ("delivered", "duplicates", "missing", "complete_after_s")
            if k in result["ours"]}
    return {"emitted": result["emitted"], "persisted": result["persisted"],
            "prefect": {"delivered": result["prefect"]["delivered"]}, "ours": ours}


# ------------------------------------------------------------------ pass timing


class PassMeter:
    """Wraps Reconciler.run_pass: (ms, REST requests, events delivered) of every pass."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, int, int]] = []
        self._lock = threading.Lock()
        self._original = _events_reconcile.Reconciler.run_pass
        meter = self

        async def run_pass(self: Any, lo: int, hi: int) -> int:
            before = self.rest.requests
            t0 = time.perf_counter()
            delivered = await meter._original(self, lo, hi)
            with meter._lock:
                meter.passes.append(((time.perf_counter() - t0) * 1000, self.rest.requests - before, delivered))
            return delivered

        _events_reconcile.Reconciler.run_pass = run_pass  # type: ignore[method-assign]

    def restore(self) -> None:
        _events_reconcile.Reconciler.run_pass = self._original  # type: ignore[method-assign]

    def mark(self) -> int:
        with self._lock:
            return len(self.passes)

    def since(self, mark: int) -> list[tuple[float, int, int]]:
        with self._lock:
            return list(self.passes[mark:])


def _json_cast(stack: ScaledStack) -> dict[str, str]:
    rows = stack.psql("SELECT column_name || '=' || udt_name FROM information_schema.columns "
                      "WHERE table_name = 'events'")
    return dict(line.split("=", 1) for line in rows.splitlines())


def _insert_sql(cols: dict[str, str], count: int, name_sql: str, occurred_sql: str) -> str:
    def cast(col: str) -> str:
        return f"::{cols[col]}"

    return (
        "INSERT INTO events (id, created, updated, occurred, event, resource_id, resource, "
        "related_resource_ids, related, payload, received, recorded, follows) "
        f"SELECT gen_random_uuid(), now(), now(), {occurred_sql}, {name_sql}, 'nbauth.bulk.' || (g % 1000), "
        f"('{{\"prefect.resource.id\": \"nbauth.bulk.' || (g % 1000) || '\"}}'){cast('resource')}, "
        f"'[]'{cast('related_resource_ids')}, '[]'{cast('related')}, '{{}}'{cast('payload')}, now(), now(), NULL "
        f"FROM generate_series(1, {count}) AS g"
    )


def _quiet_passes(meter: PassMeter, stream: Any, count: int, timeout: float = 120) -> list[tuple[float, int, int]]:
    mark = meter.mark()
    wait_until(lambda: len([p for p in meter.since(mark) if p[2] == 0]) >= count, timeout, interval=0.2,
               what=f"{count} quiet passes")
    return [p for p in meter.since(mark) if p[2] == 0][:count]


def _summary(passes: list[tuple[float, int, int]]) -> dict[str, Any]:
    ms = sorted(p[0] for p in passes)
    return {"passes": len(passes), "requests_per_pass": round(sum(p[1] for p in passes) / len(passes), 2),
            "ms_per_pass": round(ms[len(ms) // 2], 1), "ms_max": round(ms[-1], 1)}


def reconcile_cost(stack: ScaledStack, bulk: int, matching: int = 1000, late: int = 100) -> dict[str, Any]:
    meter = PassMeter()
    try:
        prefix = f"nbauth.cost.{uuid.uuid4().hex[:8]}."
        cols = _json_cast(stack)
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        # Baseline: the same kind of stream before the bulk insert.
        base = Collector()
        stream = stream_events(prefix=prefix + "base.", since=since, reconcile_interval=1.0, idle_interval=1.0)
        handle = stream.run_in_background(base.add)
        try:
            before = _summary(_quiet_passes(meter, stream, 5))
        finally:
            handle.stop()
        t0 = time.monotonic()
        stack.psql(_insert_sql(cols, bulk, "'nbauth.bulk.other.' || (g % 50)",
                                 "now() - random() * interval '59 minutes'"))
        stack.psql(_insert_sql(cols, matching, f"'{prefix}old'", "now() - random() * interval '59 minutes'"))
        stack.psql("ANALYZE events")
        insert_s = time.monotonic() - t0
        in_db = int(stack.psql("SELECT count(*) FROM events"))
        print(f"[bench] bulk-inserted {bulk + matching} events in {insert_s:.1f} s; {in_db} in the database",
              flush=True)

        # What one REST count costs the server, by the width of the window it covers (the
        # catch-up covers the hour; a regular pass covers `lookback`, 5 minutes).
        count_ms = {}
        with httpx.Client(headers=stack.auth_headers(), timeout=120) as client:
            for label, width in (("window_1h", timedelta(hours=1)), ("window_5min", timedelta(minutes=5))):
                now = datetime.now(timezone.utc)
                body = {"filter": {"event": {"prefix": [prefix]},
                                   "occurred": {"since": (now - width).isoformat(), "until": now.isoformat()}},
                        "limit": 1}
                t1 = time.perf_counter()
                client.post(f"{stack.api_url}/events/filter", json=body).raise_for_status()
                count_ms[label] = round((time.perf_counter() - t1) * 1000, 1)

        collector = Collector()
        mark = meter.mark()
        stream = stream_events(prefix=prefix, since=since, reconcile_interval=1.0, idle_interval=1.0)
        handle = stream.run_in_background(collector.add)
        try:
            wait_until(lambda: len(collector.events) >= matching, 300, interval=0.2, what="the catch-up")
            catch_up = [p for p in meter.since(mark) if p[2] > 0]
            quiet = _summary(_quiet_passes(meter, stream, 5))
            # Events the websocket never saw: straight into the database, occurred = now.
            mark = meter.mark()
            stack.psql(_insert_sql(cols, late, f"'{prefix}late'", "now()"))
            wait_until(lambda: len(collector.events) >= matching + late, 120, interval=0.2,
                       what="the late events")
            recover = [p for p in meter.since(mark) if p[2] > 0]
            stats = stream.stats
        finally:
            handle.stop()
        ids = [str(e.id) for e in collector.events]
        return {
            "events_in_db": in_db,
            "requests_per_pass": quiet["requests_per_pass"],
            "ms_per_pass": quiet["ms_per_pass"],
            "quiet_pass_before_bulk": before,
            "quiet_pass": quiet,
            "catch_up": {"missing": matching, "passes": len(catch_up),
                         "requests": sum(p[1] for p in catch_up), "ms": round(sum(p[0] for p in catch_up), 1)},
            "recover_late": {"missing": late, "requests": sum(p[1] for p in recover),
                             "ms": round(sum(p[0] for p in recover), 1)},
            "ours": {"delivered": len(set(ids)), "duplicates": len(ids) - len(set(ids)),
                     "requests": stats.requests},
            "rest_count_ms": count_ms,
            "bulk_insert_s": round(insert_s, 1),
        }
    finally:
        meter.restore()


def idle_streams(stack: ScaledStack, count: int, seconds: float) -> dict[str, Any]:
    """``count`` idle streams in this process (as many notebook kernels), half events, half logs.

    The event streams filter on prefixes nothing matches; the log streams follow flow runs that
    ended before they started (the stack has Prefect's default logs settings: no /logs/out, so
    they listen to the events socket for run states). REST requests are counted by the streams
    themselves and, as a cross-check, by NGINX (every request it forwarded to a replica,
    websocket upgrades included), over ``seconds`` once every stream has started; and from the
    first stream's start, start-up included.
    """
    from prefect_nbauth import stream_logs
    from prefect_nbauth.testing.logs import create_run, set_run_state

    headers = stack.auth_headers()
    events_n, logs_n = count - count // 2, count // 2
    runs = [create_run(stack.api_url, headers, name="nbauth-idle") for _ in range(logs_n)]
    for run in runs:
        set_run_state(stack.api_url, headers, run, "COMPLETED")
    time.sleep(11)  # past the 10 s a log stream reads fast after a run ended (its last batches)
    events, logs, handles = [], [], []
    _, first_offset = stack.upstreams_since(0)
    t_first = time.monotonic()
    try:
        for i in range(events_n):
            stream = stream_events(prefix=f"nbauth.idle.{uuid.uuid4().hex[:8]}.{i}.")
            handles.append(stream.run_in_background(lambda e: None))
            events.append(stream)
        for run in runs:
            log_stream = stream_logs(flow_run_id=run)
            handles.append(log_stream.run_in_background(lambda e: None))
            logs.append(log_stream)
        wait_until(lambda: all(s.state.value == "connected" and s.stats.passes >= 1 for s in events)
                   and all(s.state.value == "polling" and s.stats.connected_since is not None
                           and s.stats.reads >= 1 for s in logs), 300, interval=0.2,
                   what="the idle streams to start")
        _, offset = stack.upstreams_since(0)
        before = [s.stats.requests for s in events + logs]
        t0 = time.monotonic()
        time.sleep(seconds)  # measuring a rate over a fixed window: nothing to await
        elapsed = time.monotonic() - t0
        after = [s.stats.requests for s in events + logs]
        since_first = time.monotonic() - t_first
        seen, _ = stack.upstreams_since(offset)
        seen_all, _ = stack.upstreams_since(first_offset)
        bounds = sorted({s.stats.late_bound for s in events + logs})
    finally:
        for handle in handles:
            handle.stop()
    deltas = [b - a for a, b in zip(before, after)]
    ev, lg = sum(deltas[:events_n]), sum(deltas[events_n:])
    return {"streams": count, "seconds": round(elapsed, 1),
            "events": {"streams": events_n, "requests_per_s": round(ev / elapsed, 3)},
            "logs": {"streams": logs_n, "requests_per_s": round(lg / elapsed, 3)},
            "requests_per_s": round((ev + lg) / elapsed, 3),
            "requests_per_s_per_stream": round((ev + lg) / elapsed / count, 4),
            "nginx_requests_per_s": round(sum(seen.values()) / elapsed, 3),
            "from_start": {"seconds": round(since_first, 1), "requests": sum(after),
                           "requests_per_s": round(sum(after) / since_first, 3),
                           "nginx_requests_per_s": round(sum(seen_all.values()) / since_first, 3)},
            "late_bound_s": bounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for CI")
    args = parser.parse_args()
    quick = args.quick
    load = os.getloadavg()
    out: dict[str, Any] = {}

    stack = ScaledStack(auth_string=AUTH, messaging="redis")
    try:
        stack.start()
        print(f"[bench] redis stack up in {stack.startup_seconds:.1f} s", flush=True)
        out["stack"] = {"replicas": len(stack.replicas), "messaging": "redis",
                        "postgres": stack.postgres_version.split()[0]}
        nb.login(stack.api_url, auth_string=AUTH)
        try:
            for label, run in (
                ("burst", lambda: case_burst(stack, 1000 if quick else 10_000)),
                ("replica_kill", lambda: case_replica_kill(stack, rate=100, before=300 if quick else 1000,
                                                           after=300 if quick else 1000)),
                ("redis_restart", lambda: case_redis_restart(stack, rate=100, before=200 if quick else 1000,
                                                             after=300 if quick else 1000)),
            ):
                result = run()
                print_figures(label, result)
                out[label] = _public(result)
                if label == "replica_kill":
                    out[label]["ours"]["reconnects"] = result["ours"]["reconnects"]
            out["idle_streams"] = idle_streams(stack, 50, 30 if quick else 120)
            print(f"[bench] idle streams: {out['idle_streams']}", flush=True)
            out["reconcile_cost"] = reconcile_cost(stack, 100_000 if quick else 1_000_000)
            print(f"[bench] reconcile cost: {out['reconcile_cost']}", flush=True)
        finally:
            nb.logout()
    finally:
        stack.stop()

    memory = ScaledStack(auth_string=AUTH, messaging="memory")
    try:
        memory.start()
        print(f"[bench] in-memory stack up in {memory.startup_seconds:.1f} s", flush=True)
        nb.login(memory.api_url, auth_string=AUTH)
        try:
            result = case_in_memory(memory, 600 if quick else 2000)
            print_figures("in_memory_messaging", result)
            out["in_memory_messaging"] = _public(result)
            out["in_memory_messaging"]["ingested_per_replica"] = sorted(result["ingested_per_replica"].values())
            out["in_memory_messaging"]["late_delivery_max_s"] = result["ours"]["late_delivery_max_s"]
            out["in_memory_messaging"]["late_bound_s"] = result["ours"]["late_bound"]
        finally:
            nb.logout()
    finally:
        memory.stop()

    out["machine"] = {"loadavg_start": [round(x, 2) for x in load],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
