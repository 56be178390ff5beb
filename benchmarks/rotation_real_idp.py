#!/usr/bin/env python3
"""Rotation through a real identity provider and a real gateway, with one revocation.

    .venv/bin/python benchmarks/rotation_real_idp.py [--quick] [--duration S] [--revoke-at S]

Starts a real auth-protected Prefect server, ``oidc-provider`` (npm, pinned in
``prefect_nbauth.testing.idp``) issuing 5-second client-credentials tokens, and Debian's
nginx with njs checking every request's token at the provider's introspection
endpoint (RFC 7662), websockets included. Then, in a fresh interpreter, for
``--duration`` seconds (30; ``--quick``: 12): 4 threads of REST calls, a running
``@flow`` calling the API, ``emit_event`` every 100 ms and a
``prefect_nbauth.stream_events`` receiving those events
(``prefect_nbauth.testing.idp.load``).
At ``--revoke-at`` (half the duration) the token in force is revoked at the
provider (RFC 7009) and nginx cuts every open connection.

Side by side, ``prefect_static``: plain Prefect with one token fetched before
the load and put in ``PREFECT_CLIENT_CUSTOM_HEADERS`` (what users do without
this toolkit), REST threads only, no revocation: its calls fail once the token
expires.

Figures: ``calls``/``failed`` (REST calls of the threads and the flow),
``refreshes`` (provider fetches during the load), ``proactive`` (ahead of expiry,
by the background thread), ``reactive`` (after a refusal or an expiry: the
revocation costs one), ``emitted`` (``emit_event`` calls), ``stored`` (of those,
what the server has persisted), ``streamed`` (what the stream delivered),
``recovered_after_revocation_s`` (from the revocation until a REST call AND an
event emitted after the cut had come through again). The LAST stdout line is
one JSON object.
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

from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.idp import NginxGateway, OidcProvider

AUTH_STRING = "bench:" + os.urandom(9).hex()

OURS = textwrap.dedent("""
    import json, logging, sys
    from prefect_nbauth.testing.idp.load import run
    logging.getLogger("prefect").setLevel(logging.ERROR)
    cfg, kwargs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    print(json.dumps(run(cfg, **kwargs)))
""")

STATIC = textwrap.dedent("""
    import json, os, sys, threading, time, httpx
    cfg, duration = json.loads(sys.argv[1]), float(sys.argv[2])
    import prefect.context  # first: importing Prefect can take longer than a token lives
    from prefect import get_client
    token = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials"},
                       auth=(cfg["client_id"], cfg["client_secret"])).json()["access_token"]
    os.environ["PREFECT_API_URL"] = cfg["api_url"]
    os.environ["PREFECT_API_AUTH_STRING"] = cfg["auth_string"]
    os.environ["PREFECT_CLIENT_CUSTOM_HEADERS"] = json.dumps({"X-Gateway-Token": token})
    prefect.context.refresh_global_settings_context()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = threading.Event()
    def worker():
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                try:
                    client.read_flows(limit=1); ok = True
                except Exception:
                    ok = False
                with lock:
                    counts["ok" if ok else "failed"] += 1
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    [t.start() for t in threads]
    stop.wait(duration); stop.set(); [t.join(30) for t in threads]
    print(json.dumps({"calls": counts["ok"] + counts["failed"], "failed": counts["failed"]}))
""")


def run_child(code: str, args: list[str], home: Path, timeout: float) -> dict:
    env = isolated_env(PREFECT_HOME=str(home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                       PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-c", code, *args], check=False, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"load failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="12 s of load (CI)")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--revoke-at", type=float)
    parser.add_argument("--ttl", type=int, default=5, help="token lifetime at the provider (s)")
    args = parser.parse_args()
    duration = args.duration or (12.0 if args.quick else 30.0)
    revoke_at = args.revoke_at if args.revoke_at is not None else duration / 2

    with tempfile.TemporaryDirectory(prefix="nbauth-bench-idp-") as tmp:
        root = Path(tmp)
        server = PrefectServer(root / "server", auth_string=AUTH_STRING)
        server.start()
        try:
            with OidcProvider(ttl=args.ttl) as idp, NginxGateway(server.api_url, idp) as gateway:
                cfg = {"api_url": gateway.api_url, "auth_string": AUTH_STRING,
                       "token_url": idp.token_url, "revocation_url": idp.revocation_url,
                       "client_id": idp.client_id, "client_secret": idp.client_secret,
                       "nginx_pid": gateway.pid}
                (root / "ours").mkdir()
                ours = run_child(OURS, [json.dumps(cfg), json.dumps(
                    {"duration": duration, "revoke_at": revoke_at})], root / "ours", duration + 400)
                (root / "static").mkdir()
                static = run_child(STATIC, [json.dumps(cfg), str(min(duration, 12.0))],
                                   root / "static", 120)
                idp_version, gateway_version = idp.version, gateway.version
        finally:
            server.stop()
    result = {
        "idp": f"oidc-provider {idp_version}",
        "gateway": f"nginx {gateway_version}",
        "token_lifetime_s": args.ttl,
        "duration_s": duration,
        **{k: ours[k] for k in ("calls", "failed", "refreshes", "proactive", "reactive",
                                "emitted", "stored", "streamed", "recovered_after_revocation_s")},
        "reactive_from_revocation": ours["reactive_from_revocation"],
        "emit_failures": ours["emit_failures"],
        "flow": ours["flow"],
        "prefect_static": static,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
