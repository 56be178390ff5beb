"""The stack's Redis: ``redis-server`` on a loopback port with its append-only file on.

The append-only file makes a restart keep the streams, as a production Redis does: the
Redis-restart fault case depends on it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .._process import Process
from .._wait import wait_until

__all__ = ["start_redis"]


def start_redis(data_dir: Path, port: int, log: Path, timeout: float = 60) -> Process:
    """Start Redis with its files in ``data_dir``; return once it answers ``PING``."""
    process = Process(
        "redis",
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--save", "", "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes",
         "--logfile", ""],
        env={"PATH": os.environ.get("PATH", "")}, cwd=data_dir, log=log, stop_grace=15)
    process.start()

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(ready, timeout, "Redis to answer PING", interval=0.5, process=process)
    return process
