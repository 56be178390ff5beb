#!/usr/bin/env python3
"""Rotation under load: prefect_nbauth's refreshing credential vs Prefect with a static token.

    .venv/bin/python benchmarks/rotation.py [--quick] [--duration S] [--lifetime S]

Starts a real auth-protected Prefect server and, in front of it, the test suite's
rotating gateway (``prefect_nbauth.testing.RotatingGateway``: an OAuth2-proxy stand-in issuing
JWTs that live ``--lifetime`` seconds, 2 by default, checked on every request).
Then, each in its own interpreter, the same load for ``--duration`` seconds
(20; ``--quick``: 6): 8 concurrent callers making Prefect API calls
(``read_flows(limit=1)``):

* 4 threads, each with its own ``get_client(sync_client=True)``;
* 3 asyncio tasks on one event loop, each with its own ``get_client()``;
* 1 running ``@flow`` calling the API through its own client for the whole run.

``ours``: ``prefect_nbauth.login(gateway, headers={"Authorization":
OAuth2ClientCredentials(...)})``; ``prefect_static``: plain Prefect, with one token
fetched just before the load and put in ``PREFECT_CLIENT_CUSTOM_HEADERS`` (set in
the environment, then ``prefect.context.refresh_global_settings_context()``):
what users do today; it works until the token expires.

Figures: ``calls`` (successful + failed), ``failed`` (calls that raised), ``p99_ms``
(latency of the successful calls, retries included), ``refreshes`` (provider
fetches during the load), ``expiries`` (how many tokens had to be replaced during the
load: how often the clock passed the refresh point, expiry minus margin, of the
token in force; one refresh per expiry is the ideal, a thundering herd of
callers each refreshing would show as a ratio well above 1). The LAST stdout
line is one JSON object:
``{"ours": {"calls", "failed", "refreshes", "expiries", "p99_ms"},
"prefect_static": {"calls", "failed", "p99_ms"}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from prefect_nbauth.testing._gateway import RotatingGateway
from prefect_nbauth.testing._server import PrefectServer, isolated_env

AUTH_STRING = "bench:" + os.urandom(9).hex()

LOAD = textwrap.dedent(
    """
    import asyncio, json, os, sys, threading, time
    mode, duration = sys.argv[1], float(sys.argv[2])
    if mode == "ours":
        import prefect_nbauth as nb
        from prefect_nbauth.session import current_login
        provider = nb.OAuth2ClientCredentials(os.environ["BENCH_TOKEN_URL"],
                                              os.environ["BENCH_CLIENT_ID"],
                                              os.environ.pop("BENCH_CLIENT_SECRET"))
        nb.login(os.environ["BENCH_API_URL"], headers={"Authorization": provider})
        token = current_login().tokens["header Authorization"]
    from prefect import flow, get_client
    if mode == "static":
        # Plain Prefect with one token, fetched now so that it is fresh when the load
        # starts, and put in force the way Prefect offers: environment + refresh of
        # the global settings context.
        import httpx, prefect.context
        static_token = httpx.post(os.environ["BENCH_TOKEN_URL"], data={"grant_type": "client_credentials"},
                                  auth=(os.environ["BENCH_CLIENT_ID"], os.environ.pop("BENCH_CLIENT_SECRET"))
                                  ).json()["access_token"]
        os.environ["PREFECT_API_URL"] = os.environ["BENCH_API_URL"]
        os.environ["PREFECT_CLIENT_CUSTOM_HEADERS"] = json.dumps({"Authorization": f"Bearer {static_token}"})
        prefect.context.refresh_global_settings_context()

    lock = threading.Lock()
    latencies, failures = [], []
    deadline = [0.0]

    def record(t0, error=None):
        with lock:
            if error is None:
                latencies.append(time.perf_counter() - t0)
            else:
                failures.append(type(error).__name__)

    def sync_loop(client):
        while time.monotonic() < deadline[0]:
            t0 = time.perf_counter()
            try:
                client.read_flows(limit=1)
                record(t0)
            except Exception as exc:
                record(t0, exc)
                time.sleep(0.05)   # same pacing for both modes after a failure

    def thread_caller():
        with get_client(sync_client=True) as client:
            sync_loop(client)

    async def async_caller():
        async with get_client() as client:
            while time.monotonic() < deadline[0]:
                t0 = time.perf_counter()
                try:
                    await client.read_flows(limit=1)
                    record(t0)
                except Exception as exc:
                    record(t0, exc)
                    await asyncio.sleep(0.05)

    @flow(name="rotation-bench", persist_result=False)
    def running_flow():
        sync_loop(get_client(sync_client=True))   # the flow run's own client

    def run_flow():
        try:
            running_flow()
        except Exception as exc:
            record(time.perf_counter(), exc)

    before = token.refreshes if mode == "ours" else 0
    if mode == "ours":
        in_force = token.token            # the token in force when the load starts
        margin = token.margin_for(in_force)
        lifetime = in_force.expires_at.timestamp() - in_force.obtained_at.timestamp()
    started_wall = time.time()
    started = time.monotonic()
    deadline[0] = started + duration
    threads = [threading.Thread(target=thread_caller) for _ in range(4)]
    async def three_tasks():
        await asyncio.gather(*(async_caller() for _ in range(3)))
    threads.append(threading.Thread(target=lambda: asyncio.run(three_tasks())))
    threads.append(threading.Thread(target=run_flow))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else None
    result = {"calls": len(latencies) + len(failures), "failed": len(failures),
              "p99_ms": round(p99, 2) if p99 is not None else None, "elapsed_s": round(elapsed, 2),
              "errors": sorted(set(failures))}
    if mode == "ours":
        result["refreshes"] = token.refreshes - before
        # Expiries: how many tokens had to be replaced during the load, i.e. how often
        # the clock passed the refresh point (expiry minus margin) of the token in
        # force, walking from the one in force at the start. One refresh per expiry
        # is ideal; a thundering herd shows as a ratio above 1.
        end = started_wall + elapsed
        point, expiries = in_force.expires_at.timestamp() - margin, 0
        while point <= end:
            expiries += 1
            point += lifetime - margin
        result["expiries"] = expiries
        result["lifetimes_elapsed"] = round(elapsed / lifetime, 2)
    print(json.dumps(result))
    """
)


def run_load(mode: str, duration: float, env: dict[str, str], home: Path) -> dict:
    env = isolated_env(PREFECT_HOME=str(home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                       PREFECT_LOGGING_LEVEL="CRITICAL", **env)
    done = subprocess.run([sys.executable, "-c", LOAD, mode, str(duration)], env=env,
                          capture_output=True, text=True, timeout=duration + 300)
    if done.returncode != 0:
        raise SystemExit(f"{mode} load failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 s of load instead of 20")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--lifetime", type=float, default=2.0, help="token lifetime, seconds")
    args = parser.parse_args()
    duration = args.duration or (6.0 if args.quick else 20.0)

    with tempfile.TemporaryDirectory(prefix="nbauth-rotation-") as tmp:
        tmp_path = Path(tmp)
        with PrefectServer(tmp_path / "server", auth_string=AUTH_STRING) as server, \
                RotatingGateway(server.api_url, upstream_auth_string=AUTH_STRING,
                                token_lifetime=args.lifetime) as gateway:
            common = {"BENCH_API_URL": gateway.api_url}
            ours = run_load("ours", duration, {
                **common, "BENCH_TOKEN_URL": gateway.token_url, "BENCH_CLIENT_ID": gateway.client_id,
                "BENCH_CLIENT_SECRET": gateway.client_secret}, tmp_path / "ours-home")
            rejected_ours = dict(gateway.counters()["rejected"])
            static = run_load("static", duration, {
                **common, "BENCH_TOKEN_URL": gateway.token_url, "BENCH_CLIENT_ID": gateway.client_id,
                "BENCH_CLIENT_SECRET": gateway.client_secret}, tmp_path / "static-home")

    ratio = ours["refreshes"] / ours["expiries"] if ours["expiries"] else None
    print(f"load: 8 callers for {duration:g} s, tokens live {args.lifetime:g} s")
    print(f"ours:           {ours['calls']} calls, {ours['failed']} failed, p99 {ours['p99_ms']} ms, "
          f"{ours['refreshes']} refreshes for {ours['expiries']} expiries (ratio {ratio:.2f}); "
          f"gateway 401s absorbed by retry: {sum(rejected_ours.values())}")
    print(f"prefect static: {static['calls']} calls, {static['failed']} failed, p99 {static['p99_ms']} ms "
          f"(errors: {', '.join(static['errors']) or 'none'})")
    summary = {
        "ours": {k: ours[k] for k in ("calls", "failed", "refreshes", "expiries", "p99_ms")},
        "prefect_static": {k: static[k] for k in ("calls", "failed", "p99_ms")},
        "duration_s": duration, "token_lifetime_s": args.lifetime,
        "gateway_rejections_ours": sum(rejected_ours.values()),
        "ours_lifetimes_elapsed": ours["lifetimes_elapsed"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
