"""Real identity provider and real gateway for rotation tests and benchmarks.

Nothing here is written by this project except glue and configuration:

* :class:`OidcProvider` runs ``oidc-provider`` (npm, an OpenID-certified OAuth2
  server; version pinned in :data:`OIDC_PROVIDER_VERSION`) under Debian's node.
  It issues opaque client-credentials access tokens that live ``ttl`` seconds
  (it floors the issue time to the whole second, so a "5 s" token lives 4-5 s),
  answers introspection (RFC 7662) and revocation (RFC 7009).
* :class:`NginxGateway` runs Debian's nginx with its njs module
  (``libnginx-mod-http-js``) in front of a real Prefect server: every request,
  websocket upgrades included, carries the IdP's token in ``header``; njs asks
  the introspection endpoint about it (no caching) and nginx answers 401 or
  proxies to Prefect (websockets ``/api/events/in``, ``/api/events/out``,
  ``/api/logs/out`` too). With ``inject_auth_string`` it replaces the client's
  ``Authorization`` with Prefect's own Basic header, as a gateway that holds the
  server's credential does. :meth:`NginxGateway.cut_connections` reloads nginx
  with a 1 s ``worker_shutdown_timeout``: every open connection (websockets
  included) is closed, as gateways do when they revoke sessions.

Installation is idempotent and done here, so a fresh clone's ``scripts/test``
works: ``npm install`` into ``.cache/real_idp/`` under the repository
(gitignored) when the pinned version is not there yet; ``apt-get install nginx
libnginx-mod-http-js`` when nginx or the module is missing and we are root.

Everything listens on 127.0.0.1, lives in a temporary directory, and is stopped
(process group killed) by ``stop()``/the context managers and at exit.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from typing_extensions import Self

__all__ = [
    "OIDC_PROVIDER_VERSION",
    "NginxGateway",
    "OidcProvider",
    "ensure_nginx",
    "ensure_oidc_provider",
]

OIDC_PROVIDER_VERSION = "9.13.3"
REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "real_idp"
ASSETS = Path(__file__).resolve().parent / "real_idp_assets"
NODE = shutil.which("node") or "/usr/bin/node"
NGINX = "/usr/sbin/nginx"
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")

_LIVE: set[Any] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for part in live:
        part.stop()


atexit.register(_stop_all)


# ------------------------------------------------------------------ installing


def ensure_oidc_provider() -> Path:
    """The ``node_modules`` folder holding the pinned ``oidc-provider`` (installed if missing)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    package = CACHE / "node_modules" / "oidc-provider" / "package.json"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes install once
        if not (package.exists() and json.loads(package.read_text())["version"] == OIDC_PROVIDER_VERSION):
            (CACHE / "package.json").write_text(json.dumps(
                {"name": "prefect-nbauth-real-idp", "private": True, "type": "module"}))
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                 "--prefix", str(CACHE), f"oidc-provider@{OIDC_PROVIDER_VERSION}"],
                check=True, stdin=subprocess.DEVNULL, timeout=600)
    return CACHE / "node_modules"


def ensure_nginx() -> None:
    """Debian's nginx and its njs module (``apt-get install`` when missing and root)."""
    if Path(NGINX).exists() and NJS_MODULE.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("nginx with njs is missing: apt-get install nginx libnginx-mod-http-js")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdin=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-http-js"],
                   check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _kill_group(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ provider


class OidcProvider:
    """``oidc-provider`` issuing ``ttl``-second client-credentials tokens on 127.0.0.1."""

    def __init__(self, *, ttl: int = 5) -> None:
        self.ttl = ttl
        self.client_id = "notebook"
        self.client_secret = secrets.token_urlsafe(24)
        self.gateway_client_id = "gateway"
        self.gateway_client_secret = secrets.token_urlsafe(24)
        self.version = OIDC_PROVIDER_VERSION
        self.issuer = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> OidcProvider:
        modules = ensure_oidc_provider()
        self._dir = Path(tempfile.mkdtemp(prefix="nbauth-idp-"))
        config = self._dir / "config.json"
        config.write_text(json.dumps({"ttl": self.ttl, "clients": [
            {"client_id": self.client_id, "client_secret": self.client_secret},
            {"client_id": self.gateway_client_id, "client_secret": self.gateway_client_secret},
        ]}))
        # The script imports from the cache's node_modules: run it from there.
        script = modules.parent / "idp.mjs"
        shutil.copyfile(ASSETS / "idp.mjs", script)
        self._log = open(self._dir / "idp.log", "w")  # noqa: SIM115 - closed by stop()
        self._proc = subprocess.Popen(
            [NODE, str(script), str(config)], cwd=str(modules.parent), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(self)
        ready: dict[str, Any] = {}

        def read() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            for line in self._proc.stdout:
                if line.startswith("{"):
                    ready.update(json.loads(line))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready:
            self.stop()
            raise RuntimeError(f"oidc-provider did not start: {(self._dir / 'idp.log').read_text()[-2000:]}")
        self.issuer = ready["issuer"]
        self.version = ready["version"]
        return self

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.issuer}/token/introspection"

    @property
    def revocation_url(self) -> str:
        return f"{self.issuer}/token/revocation"

    def issue(self) -> str:
        """A fresh token for the notebook client (for tests that need one by hand)."""
        reply = httpx.post(self.token_url, data={"grant_type": "client_credentials"},
                           auth=(self.client_id, self.client_secret), timeout=30)
        reply.raise_for_status()
        return reply.json()["access_token"]

    def introspect(self, token: str) -> dict[str, Any]:
        reply = httpx.post(self.introspection_url, data={"token": token},
                           auth=(self.gateway_client_id, self.gateway_client_secret), timeout=30)
        reply.raise_for_status()
        return reply.json()

    def revoke(self, token: str) -> None:
        """RFC 7009 revocation, by the client the token was issued to."""
        reply = httpx.post(self.revocation_url,
                           data={"token": token, "token_type_hint": "access_token"},
                           auth=(self.client_id, self.client_secret), timeout=30)
        reply.raise_for_status()

    def stop(self) -> None:
        _kill_group(self._proc)
        self._proc = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ gateway

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


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"nginx/(\S+)", out)
    return match.group(1) if match else "unknown"


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
            basic = base64.b64encode(self.inject_auth_string.encode()).decode()
            inject = f'proxy_set_header Authorization "Basic {basic}";'
        return _NGINX_CONF.format(
            njs_module=NJS_MODULE, dir=self._dir, port=self.port, upstream=self.upstream_root,
            user="user nobody nogroup;" if os.geteuid() == 0 else "",
            introspection_url=self.idp.introspection_url,
            introspection_auth="Basic " + base64.b64encode(credentials.encode()).decode(),
            header=self.header.lower(), inject=inject)

    def start(self, timeout: float = 30.0) -> NginxGateway:
        from prefect_nbauth.testing._server import free_port

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
                start_new_session=True)
            with _LIVE_LOCK:
                _LIVE.add(self)
            if self._wait_listening(deadline):
                return self
            if time.monotonic() > deadline or "Address already in use" not in self.error_log():
                log = self.error_log()
                self.stop()
                raise RuntimeError(f"nginx did not start: {log[-2000:]}")
            _kill_group(self._proc)  # lost the port race: try another

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

    def _workers(self) -> set[int]:
        assert self._proc is not None
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self._proc.pid:
                    found.add(int(entry.name))
        return found

    def cut_connections(self, timeout: float = 30.0) -> None:
        """Close every open connection (websockets too): reload, wait for the old worker to exit."""
        old = self._workers()
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._workers() & old:
            if time.monotonic() > deadline:
                raise TimeoutError("nginx's old worker did not exit")
            time.sleep(0.05)

    def stop(self) -> None:
        _kill_group(self._proc)
        self._proc = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
