"""The real gateway: Debian's nginx with its njs module in front of a real Prefect server.

Every request, websocket upgrades included, carries the IdP's token in ``header``; njs
(``assets/gateway.js``) asks the provider's introspection endpoint about it (no caching)
and nginx answers 401 or proxies to Prefect (websockets ``/api/events/in``,
``/api/events/out``, ``/api/logs/out`` too). With ``inject_auth_string`` it replaces the
client's ``Authorization`` with Prefect's own Basic header, as a gateway that holds the
server's credential does. :func:`cut_connections` reloads nginx with a 1 s
``worker_shutdown_timeout``: every open connection (websockets included) is closed, as
gateways do when they revoke sessions.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from .._process import die_with_parent, kill_group
from .._server import basic_auth_header, free_port
from ._install import ASSETS, NGINX, NJS_MODULE, ensure_nginx, nginx_version
from ._provider import OidcProvider, track

__all__ = ["NginxGateway", "cut_connections"]

_NGINX_CONF = """\
load_module {njs_module};
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
# A reload closes every connection of the old worker after 1 s (cut_connections()).
worker_shutdown_timeout 1s;
events {{ worker_connections 1024; }}
http {{
    log_format gateway '$msec $status $request_method $uri';
    access_log {dir}/access.log gateway;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    js_path {dir};
    js_import gateway from gateway.js;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location = /_introspect {{
            internal;
            set $introspection_url "{introspection_url}";
            set $introspection_auth "{introspection_auth}";
            set $gateway_header "{header}";
            js_content gateway.introspect;
        }}
        location / {{
            auth_request /_introspect;
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header {header} "";
            {inject}
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"""


def _workers(master_pid: int) -> set[int]:
    """The pids whose parent is ``master_pid`` (nginx's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                found.add(int(entry.name))
    return found


def cut_connections(master_pid: int, timeout: float = 30.0) -> None:
    """Close every open connection (websockets too): reload nginx, wait for its old worker to exit."""
    old = _workers(master_pid)
    os.kill(master_pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while _workers(master_pid) & old:
        if time.monotonic() > deadline:
            raise TimeoutError("nginx's old worker did not exit")
        time.sleep(0.05)


class NginxGateway:
    """nginx + njs validating the IdP's tokens in front of a Prefect server."""

    def __init__(self, upstream_api_url: str, idp: OidcProvider, *, header: str = "X-Gateway-Token",
                 inject_auth_string: str | None = None) -> None:
        self.upstream_root = upstream_api_url.rstrip("/").removesuffix("/api")
        self.idp = idp
        self.header = header
        self.inject_auth_string = inject_auth_string
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def _conf(self) -> str:
        assert self._dir is not None
        credentials = f"{self.idp.gateway_client_id}:{self.idp.gateway_client_secret}"
        inject = ""
        if self.inject_auth_string is not None:
            basic = basic_auth_header(self.inject_auth_string)["Authorization"]
            inject = f'proxy_set_header Authorization "{basic}";'
        return _NGINX_CONF.format(
            njs_module=NJS_MODULE, dir=self._dir, port=self.port, upstream=self.upstream_root,
            user="user nobody nogroup;" if os.geteuid() == 0 else "",
            introspection_url=self.idp.introspection_url,
            introspection_auth=basic_auth_header(credentials)["Authorization"],
            header=self.header.lower(), inject=inject)

    def start(self, timeout: float = 30.0) -> NginxGateway:
        ensure_nginx()
        self.version = nginx_version()
        self._dir = Path(tempfile.mkdtemp(prefix="nbauth-nginx-"))
        self._dir.chmod(0o711)  # workers (nobody) reach their temp folders, nothing else
        shutil.copyfile(ASSETS / "gateway.js", self._dir / "gateway.js")
        (self._dir / "gateway.js").chmod(0o644)
        (self._dir / "tmp").mkdir()
        deadline = time.monotonic() + timeout
        while True:
            self.port = free_port()
            (self._dir / "nginx.conf").write_text(self._conf())
            (self._dir / "nginx.conf").chmod(0o600)  # holds the gateway's client secret
            self._proc = subprocess.Popen(
                [NGINX, "-p", str(self._dir), "-c", str(self._dir / "nginx.conf"),
                 "-e", str(self._dir / "error.log"), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent())
            track(self, True)
            if self._wait_listening(deadline):
                return self
            if time.monotonic() > deadline or "Address already in use" not in self.error_log():
                log = self.error_log()
                self.stop()
                raise RuntimeError(f"nginx did not start: {log[-2000:]}")
            kill_group(self._proc)  # lost the port race: try another

    def _wait_listening(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                httpx.get(f"{self.base_url}/api/health", timeout=2)
                return True
            except httpx.HTTPError:
                time.sleep(0.05)
        return False

    def error_log(self) -> str:
        path = self._dir / "error.log" if self._dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def access_log(self) -> list[tuple[float, int, str, str]]:
        """``(time, status, method, path)`` of every request the gateway answered."""
        path = self._dir / "access.log" if self._dir else None
        rows = []
        if path and path.exists():
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split(" ", 3)
                if len(parts) == 4 and parts[1].isdigit():
                    rows.append((float(parts[0]), int(parts[1]), parts[2], parts[3]))
        return rows

    @property
    def pid(self) -> int | None:
        """nginx's master process (what :func:`cut_connections` signals)."""
        return self._proc.pid if self._proc is not None else None

    def cut_connections(self, timeout: float = 30.0) -> None:
        """Close every open connection (websockets too); see :func:`cut_connections`."""
        assert self._proc is not None, "the gateway is not running"
        cut_connections(self._proc.pid, timeout)

    def stop(self) -> None:
        kill_group(self._proc)
        self._proc = None
        track(self, False)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> NginxGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
