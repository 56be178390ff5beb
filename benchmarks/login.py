#!/usr/bin/env python3
"""How long does prefect_nbauth.login() take, next to a plain Prefect client call?

    .venv/bin/python benchmarks/login.py [--runs 20] [--warmup 3]

Starts its own auth-protected Prefect server (``prefect server start`` on a free
port of 127.0.0.1, in a temporary PREFECT_HOME; always stopped at the end), then,
each in a fresh interpreter with no PREFECT_* setting from this shell:

* ``login``: ``prefect_nbauth.login(api_url, auth_string=...)`` (it validates the
  credential against the server, then installs it), ``--runs`` times after ``--warmup``;
* ``read_flows`` (the reference): with PREFECT_API_URL and PREFECT_API_AUTH_STRING set
  before ``import prefect``, ``with get_client(sync_client=True) as c: c.read_flows()``,
  client creation included, as a user would write it.

Prints a readable summary; the LAST stdout line is one JSON object:
``{"login_ms_median", "read_flows_ms_median", "login_ms_p90", "read_flows_ms_p90",
"runs", "prefect_version"}``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from prefect_nbauth.testing._server import PrefectServer, isolated_env

# Each measurement runs in its own interpreter: Prefect reads its settings at
# import, and the reference must see the credential there, the login run must not.
_TIMER = textwrap.dedent(
    """
    import json, os, sys, time
    what, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    url = os.environ["BENCH_API_URL"]
    if what == "login":
        import prefect_nbauth
        secret = os.environ.pop("BENCH_AUTH_STRING")
        def once():
            prefect_nbauth.login(url, auth_string=secret)
    else:
        from prefect import get_client
        def once():
            with get_client(sync_client=True) as client:
                client.read_flows()
    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1000)
    import prefect
    print(json.dumps({"times_ms": times, "prefect_version": prefect.__version__}))
    """
)


def _measure(what: str, env: dict[str, str], runs: int, warmup: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _TIMER, what, str(runs), str(warmup)],
        env=env, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} benchmark failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    auth_string = f"bench:{secrets.token_urlsafe(18)}"
    with tempfile.TemporaryDirectory(prefix="prefect-nbauth-bench-") as tmp:
        server = PrefectServer(Path(tmp) / "server-home", auth_string=auth_string)
        print(f"starting an auth-protected Prefect server on {server.api_url} ...", flush=True)
        try:
            server.start()
            print(f"server up in {server.startup_seconds:.1f} s", flush=True)
            client_home = Path(tmp) / "client-home"
            client_home.mkdir()
            base = isolated_env(PREFECT_HOME=str(client_home), BENCH_API_URL=server.api_url,
                                PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                                PREFECT_LOGGING_LEVEL="WARNING")
            login = _measure("login", {**base, "BENCH_AUTH_STRING": auth_string},
                             args.runs, args.warmup)
            reference = _measure("read_flows", {**base, "PREFECT_API_URL": server.api_url,
                                                "PREFECT_API_AUTH_STRING": auth_string},
                                 args.runs, args.warmup)
        finally:
            server.stop()

    result = {
        "login_ms_median": round(statistics.median(login["times_ms"]), 2),
        "read_flows_ms_median": round(statistics.median(reference["times_ms"]), 2),
        "login_ms_p90": round(_p90(login["times_ms"]), 2),
        "read_flows_ms_p90": round(_p90(reference["times_ms"]), 2),
        "runs": args.runs,
        "prefect_version": login["prefect_version"],
    }
    ratio = result["login_ms_median"] / result["read_flows_ms_median"]
    print(f"\nPrefect {result['prefect_version']}, {args.runs} runs each after {args.warmup} warm-up, "
          f"server on 127.0.0.1 (SQLite):")
    print(f"  login(api_url, auth_string=...)          median {result['login_ms_median']:8.2f} ms"
          f"   p90 {result['login_ms_p90']:8.2f} ms")
    print(f"  get_client(sync_client=True).read_flows() median {result['read_flows_ms_median']:8.2f} ms"
          f"   p90 {result['read_flows_ms_p90']:8.2f} ms   (reference)")
    print(f"  login costs {ratio:.1f}x one authenticated read_flows() call, client creation included.")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
