"""``python -m prefect_nbauth.testing.stack`` (``scripts/scaled-stack``): a scaled stack for trying by hand.

Starts the stack, prints one JSON line (the load balancer's ``api_url``, pids, and
``auth_string_file``: a root-only file holding the auth string the replicas enforce; or
set ``SCALED_STACK_AUTH_STRING``), runs until SIGTERM/SIGINT/SIGHUP (or EOF on stdin with
``--until-eof``), then stops everything and prints ``{"stopped": true}``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from typing import Iterable

from ._stack import ScaledStack


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scaled-stack", description="A scaled-out Prefect on loopback.")
    parser.add_argument("--messaging", choices=["redis", "memory"], default="redis")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--until-eof", action="store_true",
                        help="also stop when stdin is closed (for a parent process)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    auth = os.environ.get("SCALED_STACK_AUTH_STRING") or "admin:" + secrets.token_urlsafe(18)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    stack = ScaledStack(auth_string=auth, messaging=args.messaging, replicas_count=args.replicas)
    try:
        stack.start()
        info = stack.describe()
        if "SCALED_STACK_AUTH_STRING" not in os.environ:
            # Never printed: a file only root (the caller) can read, removed with the stack.
            path = stack.root / "auth_string"
            path.write_text(auth)
            path.chmod(0o600)
            info["auth_string_file"] = str(path)
        print(json.dumps(info), flush=True)
        if args.until_eof:
            def stop_at_eof() -> None:
                sys.stdin.read()
                stop.set()

            threading.Thread(target=stop_at_eof, daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    print(json.dumps({"stopped": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
