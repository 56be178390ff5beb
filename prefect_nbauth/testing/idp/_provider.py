"""The real identity provider: ``oidc-provider`` (npm, OpenID-certified) under Node.js.

It issues opaque client-credentials access tokens that live ``ttl`` seconds (it floors
the issue time to the whole second, so a "5 s" token lives 4-5 s), answers
introspection (RFC 7662) and revocation (RFC 7009). Two clients: ``notebook`` (what the
code under test logs in with) and ``gateway`` (what :class:`~.NginxGateway` introspects
with). It listens on 127.0.0.1 and runs from a temporary directory, in its own process
group, stopped by :meth:`OidcProvider.stop`, the context manager or at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from .._process import die_with_parent, kill_group
from ._install import ASSETS, OIDC_PROVIDER_VERSION, ensure_oidc_provider, node

__all__ = ["OidcProvider"]

_LIVE: set[Any] = set()
_LIVE_LOCK = threading.Lock()


def stop_all() -> None:
    """Stop every provider and gateway of this process that is still running."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for part in live:
        part.stop()


atexit.register(stop_all)


def track(part: Any, alive: bool) -> None:
    """Register (or forget) a running part, for :func:`stop_all` at exit."""
    with _LIVE_LOCK:
        if alive:
            _LIVE.add(part)
        else:
            _LIVE.discard(part)


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
        # The script imports from the cache's node_modules: run it from there. Copied under
        # a temporary name and renamed, so a parallel start never runs a half-written file.
        script = modules.parent / "idp.mjs"
        partial = modules.parent / f".idp.mjs.{os.getpid()}.{threading.get_ident()}"
        shutil.copyfile(ASSETS / "idp.mjs", partial)
        os.replace(partial, script)
        self._log = open(self._dir / "idp.log", "w")  # noqa: SIM115 - closed by stop()
        self._proc = subprocess.Popen(
            [node(), str(script), str(config)], cwd=str(modules.parent), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True, preexec_fn=die_with_parent())
        track(self, True)
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
        kill_group(self._proc)
        self._proc = None
        track(self, False)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
