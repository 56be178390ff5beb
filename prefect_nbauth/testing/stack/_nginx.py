"""The stack's load balancer: Debian's NGINX, round robin over the API replicas.

One unprivileged process on loopback. Websocket upgrades for ``/api/events/in``,
``/api/events/out`` and ``/api/logs/out``; an ``X-Prefect-Replica`` response header
names the replica that answered (on a websocket's 101 too, so a test can tell which
replica holds a socket), and the access log ends every line with ``$upstream_addr``.
NGINX does no authentication: every replica enforces the auth string itself.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Callable

from .._process import Process
from .._wait import wait_until
from ._system import make_dir

__all__ = ["NGINX_CONF", "start_nginx", "upstreams_since"]

NGINX_CONF = """\
# Written by prefect_nbauth.testing.stack: one unprivileged process, loopback only.
daemon off;
master_process off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    # Which replica answered each request (read by the tests: round robin really spreads).
    log_format upstream '$remote_addr [$time_local] "$request" $status $upstream_addr';
    access_log {base}/access.log upstream;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    client_max_body_size 20m;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream prefect_api {{
        # Round robin (NGINX's default). A refused connection marks a replica down for 3 s.
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        # Prefect's websockets: events in/out and live logs.
        location ~ ^/api/(events/in|events/out|logs/out)$ {{
            proxy_pass http://prefect_api;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            add_header X-Prefect-Replica $upstream_addr always;
        }}

        location / {{
            proxy_pass http://prefect_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
            add_header X-Prefect-Replica $upstream_addr always;
        }}
    }}
}}
"""


def start_nginx(base: Path, port: int, upstreams: list[str], *, user: str | None, log: Path,
                healthy: Callable[[], bool], timeout: float = 30) -> Process:
    """NGINX in ``base`` on 127.0.0.1:``port`` over ``upstreams`` (``host:port``); up once ``healthy()``."""
    make_dir(base, user)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        make_dir(base / sub, user)
    servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=3s;" for address in upstreams)
    (base / "nginx.conf").write_text(NGINX_CONF.format(base=base, port=port, servers=servers))
    process = Process("nginx", ["/usr/sbin/nginx", "-p", str(base), "-c", str(base / "nginx.conf"),
                                "-e", str(base / "error.log")],
                      env={"PATH": os.environ.get("PATH", "")}, cwd=base, log=log,
                      user=user, stop_signal=signal.SIGQUIT, stop_grace=15)  # SIGQUIT = graceful
    process.start()
    wait_until(healthy, timeout, "NGINX to answer", interval=0.5, process=process)
    return process


def upstreams_since(access_log: Path, offset: int) -> tuple[Counter[str], int]:
    """Replicas named in NGINX's access log after byte ``offset``; and the new offset."""
    try:
        with open(access_log, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return Counter(), offset
    seen: Counter[str] = Counter()
    for line in data.decode(errors="replace").splitlines():
        seen[line.rsplit(" ", 1)[-1]] += 1
    return seen, offset + len(data)
