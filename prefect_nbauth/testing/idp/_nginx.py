"""The real gateway: Debian's nginx with its njs module in front of a real Prefect server.

Two modes, both checking every request and websocket upgrade at the identity provider
(``assets/gateway.js`` asks its introspection endpoint, RFC 7662, no caching) and
answering 401 or proxying to Prefect (websockets ``/api/events/in``, ``/api/events/out``,
``/api/logs/out`` too):

* header mode (``NginxGateway(api_url, idp)``): a machine's token in ``header``
  (``X-Gateway-Token``) beside Prefect's own credential, which passes through; with
  ``inject_auth_string`` the client's ``Authorization`` is replaced by Prefect's Basic
  header instead, as a gateway that holds the server's credential does;
* SSO mode (:meth:`NginxGateway.sso`): a PERSON's access token as ``Authorization: Bearer``.
  Prefect gets the gateway's own credential (its auth string as Basic: people never hold
  it), the person's name in ``X-Forwarded-User`` (Prefect ignores it; the access log
  records it), and ``/api/health``/``/api/ready`` answer without a token as Prefect's own
  do. Prefect authenticates a websocket by its first message (the raw auth string), which
  no HTTP proxy writes: when Prefect has an auth string a stream server (nginx's stream
  module with njs, ``assets/prefect_socket.js``) holds the public port and puts it into
  the first message of each upgrade the HTTP half accepted. The configuration is
  ``assets/sso_http.conf`` and ``assets/sso_stream.conf``, shown in ``docs/sso.md``.

:func:`cut_connections` reloads nginx with a 1 s ``worker_shutdown_timeout``: every open
connection (websockets included) is closed, as gateways do when they revoke sessions.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import NamedTuple

import httpx

from .._process import PrivateDirServer, Process, ProcessExited
from .._server import basic_auth_header, free_port
from .._wait import wait_until
from ._install import ASSETS, NGINX, NJS_MODULE, STREAM_JS_MODULE, STREAM_MODULE, ensure_nginx, nginx_version
from ._provider import OidcProvider

__all__ = ["GatewayRequest", "NginxGateway", "cut_connections"]

# What every gateway here shares: modules, process, temporary paths. The mode's own
# configuration is included (server.conf in `http`, stream.conf in `stream`).
_FRAME = """load_module {njs_module};
{stream_modules}
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
# A reload closes every connection of the old worker after 1 s (cut_connections()).
worker_shutdown_timeout 1s;
events {{ worker_connections 1024; }}
{stream}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    js_path {dir};
    include {dir}/server.conf;
}}
"""

_STREAM = """stream {{
    js_path {dir};
    include {dir}/stream.conf;
}}"""

# Header mode: a machine's token in its own header; Prefect's credential passes through
# (or is replaced by the gateway's, with inject_auth_string).
_HEADER_MODE = """js_import gateway from gateway.js;
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
log_format gateway '$msec $status $request_method $gateway_user $uri';
server {{
    listen 127.0.0.1:{port};
    access_log {dir}/access.log gateway;
    location = /_introspect {{
        internal;
        set $introspection_url "{introspection_url}";
        set $introspection_auth "{introspection_auth}";
        set $gateway_header "{header}";
        js_content gateway.introspect;
    }}
    location / {{
        auth_request /_introspect;
        auth_request_set $gateway_user $sent_http_x_gateway_user;
        proxy_pass {upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_set_header {header} "";
        proxy_set_header X-Forwarded-User $gateway_user;
        {inject}
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        proxy_buffering off;
    }}
}}
"""


class GatewayRequest(NamedTuple):
    """One line of the gateway's access log."""

    time: float
    status: int
    method: str
    user: str | None  # who the token spoke for (None: no valid token)
    path: str


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
    wait_until(lambda: not _workers(master_pid) & old, timeout, "nginx's old worker to exit")


class NginxGateway(PrivateDirServer):
    """nginx + njs validating the IdP's tokens in front of a Prefect server (header mode; see :meth:`sso`)."""

    def __init__(self, upstream_api_url: str, idp: OidcProvider, *, header: str = "X-Gateway-Token",
                 inject_auth_string: str | None = None) -> None:
        self.upstream_root = upstream_api_url.rstrip("/").removesuffix("/api")
        self.idp = idp
        self.header = header
        self.inject_auth_string = inject_auth_string
        self.mode = "header"
        self._open = False
        self.port = 0
        self._http_port = 0
        self.version = ""

    @classmethod
    def sso(cls, upstream_api_url: str, idp: OidcProvider, *, auth_string: str | None,
            misconfigured_open: bool = False) -> NginxGateway:
        """The SSO gateway: people's bearer tokens in, Prefect's own credential (``auth_string``) out.

        ``auth_string`` is the Prefect server's (``None`` for a server without one); only
        the gateway holds it. ``misconfigured_open`` leaves out the token check (a gateway
        that lets everyone through, for tests of ``audit()``). Not started: use it as a
        context manager or call ``start()``.
        """
        gateway = cls(upstream_api_url, idp, header="Authorization", inject_auth_string=auth_string)
        gateway.mode = "sso"
        gateway._open = misconfigured_open
        return gateway

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def _streams(self) -> bool:
        """Whether a stream server fronts the HTTP half (SSO mode in front of an auth string)."""
        return self.mode == "sso" and self.inject_auth_string is not None

    def _server_conf(self) -> str:
        assert self._dir is not None
        credentials = f"{self.idp.gateway_client_id}:{self.idp.gateway_client_secret}"
        introspection_auth = basic_auth_header(credentials)["Authorization"]
        prefect_basic = (basic_auth_header(self.inject_auth_string)["Authorization"]
                         if self.inject_auth_string is not None else "")
        if self.mode == "sso":
            conf = (ASSETS / "sso_http.conf").read_text()
            if self._open:
                conf = conf.replace("auth_request /_introspect;", "# auth_request: left out (misconfigured)")
            return _fill(conf, {
                "HTTP_LISTEN": f"127.0.0.1:{self._http_port}", "LOG_DIR": str(self._dir),
                "INTROSPECTION_URL": self.idp.introspection_url, "INTROSPECTION_AUTH": introspection_auth,
                "PREFECT": self.upstream_root, "PREFECT_AUTHORIZATION": prefect_basic})
        inject = f'proxy_set_header Authorization "{prefect_basic}";' if prefect_basic else ""
        return _HEADER_MODE.format(
            dir=self._dir, port=self._http_port, upstream=self.upstream_root,
            introspection_url=self.idp.introspection_url, introspection_auth=introspection_auth,
            header=self.header.lower(), inject=inject)

    def _stream_conf(self) -> str:
        assert self.inject_auth_string is not None
        return _fill((ASSETS / "sso_stream.conf").read_text(), {
            "LISTEN": f"127.0.0.1:{self.port}", "HTTP_LISTEN": f"127.0.0.1:{self._http_port}",
            "AUTH_STRING_B64": base64.b64encode(self.inject_auth_string.encode()).decode()})

    def _conf(self) -> str:
        assert self._dir is not None
        return _FRAME.format(
            njs_module=NJS_MODULE, dir=self._dir, user="user nobody nogroup;" if os.geteuid() == 0 else "",
            stream_modules=(f"load_module {STREAM_MODULE};\nload_module {STREAM_JS_MODULE};"
                            if self._streams else ""),
            stream=_STREAM.format(dir=self._dir) if self._streams else "")

    def _write(self, name: str, text: str) -> None:
        assert self._dir is not None
        path = self._dir / name
        path.write_text(text)
        path.chmod(0o600)  # the gateway's client secret, Prefect's auth string: read by the master only

    def start(self, timeout: float = 30.0) -> NginxGateway:
        ensure_nginx()
        self.version = nginx_version()
        directory = self._make_dir("nbauth-nginx-")
        directory.chmod(0o711)  # workers (nobody) reach their temp folders, nothing else
        for script in ("gateway.js", "prefect_socket.js"):
            shutil.copyfile(ASSETS / script, directory / script)
            (directory / script).chmod(0o644)
        (directory / "tmp").mkdir()
        deadline = time.monotonic() + timeout
        while True:
            self.port = free_port()
            self._http_port = free_port() if self._streams else self.port
            self._write("server.conf", self._server_conf())
            if self._streams:
                self._write("stream.conf", self._stream_conf())
            self._write("nginx.conf", self._conf())
            self._process = Process("nginx", [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"),
                                              "-e", str(directory / "error.log"), "-g", "daemon off;"],
                                    log=directory / "nginx.out", stop_grace=5).start()
            try:
                wait_until(self._listening, deadline - time.monotonic(), "nginx to answer", process=self._process)
                return self
            except (ProcessExited, TimeoutError):
                if time.monotonic() > deadline or "Address already in use" not in self.error_log():
                    log = self.error_log()
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {log[-2000:]}") from None
            self._process.stop()  # lost the port race: try another

    def _listening(self) -> bool:
        try:
            httpx.get(f"{self.base_url}/api/health", timeout=2)
            return True
        except httpx.HTTPError:
            return False

    def error_log(self) -> str:
        path = self._dir / "error.log" if self._dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def access_log(self) -> list[GatewayRequest]:
        """Every request the gateway answered: time, status, method, who (the token's user), path."""
        path = self._dir / "access.log" if self._dir else None
        rows = []
        if path and path.exists():
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split(" ", 4)
                if len(parts) == 5 and parts[1].isdigit():
                    user = None if parts[3] in ("-", "") else parts[3]
                    rows.append(GatewayRequest(float(parts[0]), int(parts[1]), parts[2], user, parts[4]))
        return rows

    @property
    def pid(self) -> int | None:
        """nginx's master process (what :func:`cut_connections` signals)."""
        return self._process.pid if self._process is not None else None

    def cut_connections(self, timeout: float = 30.0) -> None:
        """Close every open connection (websockets too); see :func:`cut_connections`."""
        assert self.pid is not None, "the gateway is not running"
        cut_connections(self.pid, timeout)



def _fill(template: str, values: dict[str, str]) -> str:
    """``@NAME@`` placeholders of a configuration asset, each filled (one left unfilled is an error)."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    code = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("#"))
    leftover = re.findall(r"@[A-Z0-9_]+@", code)
    if leftover:
        raise ValueError(f"unfilled placeholders in a gateway configuration: {leftover}")
    return template
