"""A real JupyterHub (PyPI) with configurable-http-proxy (npm), started from the shipped config.

:class:`JupyterHub` runs ``jupyterhub`` from the environment :func:`.ensure_hub_env`
builds, as root (``LocalProcessSpawner`` starts each person's server as that person),
on 127.0.0.1, with ``docs/jupyterhub/jupyterhub_config.py``, the file the docs show,
loaded unchanged (``load_subconfig``) by a small wrapper that adds only what a test
needs: loopback ports, the proxy's and the single-user server's paths, and a service
token for the test itself (:attr:`JupyterHub.admin_token`: manage users and servers,
reach servers; it cannot read anyone's auth state). Its state directory is 0700 (the
shipped config makes sure) and is removed by :meth:`JupyterHub.stop`, which also stops
every server the Hub started.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import Any

import httpx

from .._process import PrivateDirServer, Process
from .._server import free_port
from .._wait import wait_until
from ._install import HubEnv

__all__ = ["SHIPPED_CONFIG", "JupyterHub"]

SHIPPED_CONFIG = Path(__file__).resolve().parents[3] / "docs" / "jupyterhub" / "jupyterhub_config.py"

_WRAPPER = """\
# Test-only additions around the shipped configuration (prefect_nbauth.testing.hub).
load_subconfig({shipped!r})  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.should_start = True
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.default_url = "/api"  # no web front end is installed: a person lands on the server's API
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.environment.update({environment!r})
c.JupyterHub.cleanup_servers = True
c.JupyterHub.log_level = "INFO"
c.JupyterHub.services = [{{"name": "nbauth-tests", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [
    {{"name": "nbauth-tests", "services": ["nbauth-tests"],
      "scopes": ["admin:users", "admin:servers", "access:servers", "tokens", "read:users"]}}]
"""


class JupyterHub(PrivateDirServer):
    """JupyterHub + configurable-http-proxy on 127.0.0.1, signing people in at ``issuer``.

    ``port`` is where people reach the Hub (choose it first with :meth:`reserve_port`:
    the identity provider must know the callback URL, :attr:`callback_url`, before the
    Hub starts). ``prefect_api_url`` is given to every server as ``PREFECT_API_URL``.
    """

    def __init__(self, env: HubEnv, *, issuer: str, client_id: str, client_secret: str,
                 prefect_api_url: str, port: int | None = None,
                 server_environment: dict[str, str] | None = None) -> None:
        self.env = env
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self.prefect_api_url = prefect_api_url
        self.port = port or free_port()
        self.server_environment = dict(server_environment or {})
        self.admin_token = secrets.token_hex(24)
        self.version = ""

    def __repr__(self) -> str:
        return f"JupyterHub(url={self.url!r}, issuer={self.issuer!r})"

    @staticmethod
    def reserve_port() -> int:
        return free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.url}/hub/oauth_callback"

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    @property
    def state_dir(self) -> Path:
        assert self._dir is not None, "the Hub is not running"
        return self._dir / "state"

    def start(self, timeout: float = 120.0) -> JupyterHub:
        directory = self._make_dir("nbauth-hub-")  # 0700: holds the secrets below
        wrapper = directory / "jupyterhub_config.py"
        wrapper.write_text(_WRAPPER.format(
            shipped=str(SHIPPED_CONFIG), port=self.port, hub_port=free_port(), proxy_api_port=free_port(),
            chp=str(self.env.chp), singleuser=str(self.env.bin / "jupyterhub-singleuser"),
            environment=self.server_environment, admin_token=self.admin_token))
        environ = {
            "PATH": f"{self.env.bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(directory),
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": self.client_id,
            "OIDC_CLIENT_SECRET": self._client_secret,
            "JUPYTERHUB_PUBLIC_URL": self.url,
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "JUPYTERHUB_STATE_DIR": str(directory / "state"),
            "PREFECT_API_URL": self.prefect_api_url,
        }
        # SIGTERM to the Hub alone: it stops every server it started (cleanup_servers) and its proxy.
        self._process = Process("JupyterHub", [str(self.env.bin / "jupyterhub"), "-f", str(wrapper)],
                                env=environ, cwd=directory, log=directory / "hub.log",
                                stop_signal=signal.SIGTERM, stop_grace=60, stop_group=False).start()
        self.version = self.env.version("jupyterhub")

        def answers() -> bool:
            try:
                return httpx.get(f"{self.api_url}/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait_ready(answers, timeout, "JupyterHub's API to answer", interval=0.2)
        return self

    def log(self) -> str:
        path = self._dir / "hub.log" if self._dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    # ----------------------------------------------------------------- the Hub API
    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """A Hub API request (``path`` after ``/hub/api``) with the test's service token or ``token``."""
        return httpx.request(method, f"{self.api_url}{path}", timeout=60,
                             headers={"Authorization": f"token {token or self.admin_token}"}, **kwargs)

    def server_ready(self, user: str) -> bool:
        model = self.api("GET", f"/users/{user}").json()
        server = (model.get("servers") or {}).get("")
        return bool(server and server.get("ready"))

    def stop_server(self, user: str, timeout: float = 60.0) -> None:
        self.api("DELETE", f"/users/{user}/server")
        wait_until(lambda: not self.api("GET", f"/users/{user}").json().get("servers"), timeout,
                   f"{user}'s server to stop", interval=0.2)
