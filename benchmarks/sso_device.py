#!/usr/bin/env python3
"""Signed in as yourself (device sign-in) through an SSO gateway: work across token rotations, then logout.

    .venv/bin/python benchmarks/sso_device.py [--quick] [--duration S] [--ttl S]

Starts a real auth-protected Prefect server, ``oidc-provider`` (npm, pinned in
``prefect_nbauth.testing.idp``) with a real sign-in page and ``--ttl``-second access
tokens (5), and Debian's nginx in SSO mode: every request's bearer token introspected,
Prefect's auth string added upstream (websockets too). A scripted person (Chromium,
:class:`~prefect_nbauth.testing.idp.DeviceApprover`) approves the sign-in as alice. In a
fresh interpreter: ``login(api_url, sso=DeviceSignIn(issuer, client_id))``, then for
``--duration`` seconds (30; ``--quick``: 12) 4 threads of REST calls, a running
``@flow``, ``emit_event`` every 100 ms and a ``stream_events`` receiving them
(``prefect_nbauth.testing.idp.sso_load``); then logout, and the provider is asked
whether the old refresh token still works.

Figures: ``sign_in_s`` (from login() until it returned: discovery, the device code,
alice approving in Chromium, the first poll that saw it, Prefect's check),
``calls``/``failed`` (REST calls of the threads and the flow), ``refreshes``
(refresh grants during the load), ``proactive`` (of those, ahead of expiry),
``refresh_token_rotations`` (refreshes that returned a new refresh token),
``emitted``/``stored``/``streamed`` (events), ``revoked_at_logout`` (RFC 7009 revocation
answered, and the old refresh token then refused). The LAST stdout line is one JSON
object with exactly these keys and ``idp``, ``gateway``, ``grant``, ``identity``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.idp import DeviceApprover, NginxGateway, OidcProvider

AUTH_STRING = "bench:" + os.urandom(9).hex()

CHILD = textwrap.dedent("""
    import json, logging, sys
    from prefect_nbauth.testing.idp import sso_load
    logging.getLogger("prefect").setLevel(logging.ERROR)
    cfg, duration = json.loads(sys.argv[1]), float(sys.argv[2])
    out = {"sign_in_s": sso_load.sign_in(cfg)}
    out.update(sso_load.work(cfg, duration=duration, rest_threads=4))
    out.update(sso_load.log_out(cfg))
    print(json.dumps(out))
""")

KEYS = ("idp", "gateway", "grant", "sign_in_s", "identity", "calls", "failed", "refreshes", "proactive",
        "refresh_token_rotations", "emitted", "stored", "streamed", "revoked_at_logout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="12 s of load (CI)")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--ttl", type=int, default=5, help="access-token lifetime at the provider (s)")
    args = parser.parse_args()
    duration = args.duration or (12.0 if args.quick else 30.0)
    password = secrets.token_urlsafe(18)

    with tempfile.TemporaryDirectory(prefix="nbauth-bench-sso-") as tmp:
        root = Path(tmp)
        with PrefectServer(root / "server", auth_string=AUTH_STRING) as server, \
                OidcProvider(ttl=args.ttl, users={"alice": password}) as idp, \
                NginxGateway.sso(server.api_url, idp, auth_string=AUTH_STRING) as gateway, \
                DeviceApprover(idp, "alice", password) as alice:
            cfg = {"api_url": gateway.api_url, "issuer": idp.issuer, "client_id": idp.device_client_id,
                   "direct_api_url": server.api_url, "auth_string": AUTH_STRING, "user": "alice"}
            (root / "home").mkdir()
            env = isolated_env(PREFECT_HOME=str(root / "home"), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                               PYTHONUNBUFFERED="1")
            done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), str(duration)], env=env,
                                  capture_output=True, text=True, timeout=duration + 600, check=False,
                                  stdin=subprocess.DEVNULL)
            lines = [line for line in done.stdout.splitlines() if line.strip()]
            if done.returncode != 0 or not lines or alice.errors:
                raise SystemExit(f"load failed ({done.returncode}, {alice.errors}):\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
            figures = json.loads(lines[-1])
            figures.update(idp=f"oidc-provider {idp.version}", gateway=f"nginx {gateway.version}",
                           grant="device_code",
                           revoked_at_logout=bool(figures["revoked_at_logout"] and figures["old_refresh_token_refused"]))
    print(json.dumps({key: figures[key] for key in KEYS}))


if __name__ == "__main__":
    main()
