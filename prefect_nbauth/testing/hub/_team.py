"""A team on a real JupyterHub: every part real, started on 127.0.0.1, stopped after.

:class:`HubTeam` starts, in order: a Prefect server with an auth string; the identity
provider (``oidc-provider``, ``ttl``-second access tokens, refresh tokens, a sign-in page
with each person's password, and a confidential client for the Hub); the SSO gateway
(nginx + njs: introspects each person's bearer token, sends Prefect the server's auth
string, logs who each request was for); ``people`` as real Unix users; JupyterHub with
the shipped configuration. :meth:`HubTeam.sign_in` is a person in Chromium: the Hub's
login page, the provider's sign-in page (user name, password, consent), back to the Hub,
which starts their server. :meth:`HubTeam.kernel` starts a kernel in a person's server
(through the Hub's proxy, with the test's service token).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from typing import Any

from .._server import PrefectServer
from .._wait import wait_until
from ..idp import NginxGateway, OidcProvider, WebClient, chromium, sign_in
from ._hub import JupyterHub
from ._install import ensure_hub_env
from ._kernel import RemoteKernel
from ._users import UnixUsers

__all__ = ["HubTeam"]


class HubTeam:
    """``people`` signed in to one Hub; see the module docstring."""

    def __init__(self, people: list[str], *, ttl: int = 10, home: Any = None) -> None:
        self.people = list(people)
        self.ttl = ttl
        self._home = home
        self._stack = contextlib.ExitStack()
        self.sign_in_seconds: dict[str, float] = {}
        # Each person's cookies (the Hub's and the provider's) between sign-ins. The browser
        # itself lives only while one signs in: Playwright's sync API marks the calling
        # thread's event loop as running while it is open, which would break every
        # ``asyncio.run`` (and every other Playwright) of the tests that share this team.
        self._cookies: dict[str, Any] = {}
        self.kernels: dict[str, RemoteKernel] = {}
        self._lock = threading.Lock()  # kernel() may be called from several threads at once

    def name(self, person: str) -> str:
        """The person's user name at the provider, the Hub and on the machine (``alice-3f9c``)."""
        return self.users.names[person]

    def start(self) -> HubTeam:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import tempfile
        from pathlib import Path

        stack = self._stack
        self.env = ensure_hub_env()
        home = Path(self._home) if self._home else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        self.server = PrefectServer(home / "prefect", auth_string=f"gateway:{secrets.token_urlsafe(12)}")
        self.server.start()
        stack.callback(self.server.stop)
        self.users = UnixUsers(self.people).create()
        stack.callback(self.users.remove)
        passwords = {self.name(p): secrets.token_urlsafe(12) for p in self.people}
        hub_port = JupyterHub.reserve_port()
        self.client = WebClient("jupyterhub", [f"http://127.0.0.1:{hub_port}/hub/oauth_callback"])
        self.idp = OidcProvider(ttl=self.ttl, users=passwords, device_client_id=None, web_clients=[self.client])
        self.idp.start()
        stack.callback(self.idp.stop)
        self.gateway = NginxGateway.sso(self.server.api_url, self.idp, auth_string=self.server.auth_string)
        self.gateway.start()
        stack.callback(self.gateway.stop)
        self.hub = JupyterHub(self.env, issuer=self.idp.issuer, client_id=self.client.client_id,
                              client_secret=self.client.client_secret, prefect_api_url=self.gateway.api_url,
                              port=hub_port)
        self.hub.start()
        stack.callback(self.hub.stop)

    # ------------------------------------------------------------------ people
    def sign_in(self, person: str, timeout: float = 180.0) -> float:
        """``person`` signs in to the Hub through the provider's page; their server runs. Seconds taken."""
        name = self.name(person)
        began = time.monotonic()
        with chromium() as browser:
            context = browser.new_context(storage_state=self._cookies.get(person))
            try:
                page = context.new_page()
                # The Hub's "Sign in with ..." button leads here; straight to the provider's page.
                page.goto(f"{self.hub.url}/hub/oauth_login?next=/hub/spawn", timeout=timeout * 1000)
                if page.url.startswith(self.idp.issuer):
                    sign_in(page, name, self.idp.password(name))
                page.wait_for_url(f"{self.hub.url}/user/{name}/**", timeout=timeout * 1000)
                self._cookies[person] = context.storage_state()
            finally:
                context.close()
        wait_until(lambda: self.hub.server_ready(name), timeout, f"{name}'s server")
        took = time.monotonic() - began
        self.sign_in_seconds[person] = round(took, 2)
        return took

    def kernel(self, person: str) -> RemoteKernel:
        """A new kernel in ``person``'s server (kept in :attr:`kernels`, shut down by :meth:`stop`).
        Thread-safe: several people's kernels may be started at once."""
        kernel = RemoteKernel(self.hub.url, self.name(person), self.hub.admin_token).start()
        with self._lock:
            old = self.kernels.pop(person, None)
            self.kernels[person] = kernel
        if old is not None:
            old.shutdown()
        return kernel

    def stop(self) -> None:
        for kernel in self.kernels.values():
            kernel.shutdown()
        self.kernels.clear()
        self._cookies.clear()
        self._stack.close()

    def __enter__(self) -> HubTeam:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
