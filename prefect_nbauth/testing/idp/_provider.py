"""The real identity provider: ``oidc-provider`` (npm, OpenID-certified) under Node.js.

Every access token it issues is opaque and lives ``ttl`` seconds (it floors the issue
time to the whole second, so a "5 s" token lives 4-5 s). It answers introspection
(RFC 7662) and revocation (RFC 7009), and signs ID tokens (RS256) with a key of its own,
published at ``/jwks``. Its clients:

* ``notebook`` and ``gateway``: confidential client-credentials clients (the rotation
  tests log in with the first; :class:`~.NginxGateway` introspects with the second);
* ``device_client_id`` (default ``prefect-notebook``): a PUBLIC client for the device
  authorization grant (RFC 8628) with refresh tokens (scope ``offline_access``) that
  rotate on every refresh; replaying a rotated one revokes the whole sign-in;
* ``web_clients``: confidential authorization-code clients (``client_secret_post``,
  PKCE S256 allowed, refresh tokens when the request says ``prompt=consent``), e.g.
  for JupyterHub's ``GenericOAuthenticator``.

People sign in on a real sign-in page (``devInteractions`` is off): the user name and
password are checked against ``users``, then the person consents; both pages have a
Cancel button (the client then gets ``access_denied``). :mod:`._browser` drives these
pages with Chromium. An administrator's "sign this person out everywhere" is
:meth:`OidcProvider.revoke_user`; :meth:`OidcProvider.stats` counts what happened
(refreshes, rotations, replays, revocations, device polls).

It listens on 127.0.0.1 and runs from a temporary directory, in its own process
group, stopped by :meth:`OidcProvider.stop`, the context manager or at exit.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .._process import PrivateDirServer, Process
from ._install import ASSETS, OIDC_PROVIDER_VERSION, ensure_oidc_provider, node

__all__ = ["OidcProvider", "WebClient"]


@dataclass(frozen=True)
class WebClient:
    """A confidential authorization-code client (a web application such as JupyterHub)."""

    client_id: str
    redirect_uris: Sequence[str]
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


class OidcProvider(PrivateDirServer):
    """``oidc-provider`` on 127.0.0.1: ``ttl``-second access tokens for every client.

    ``users`` maps user names to passwords for the sign-in page; ``interval`` is the
    polling interval the device authorization response carries (``None``: none, so a
    client must use RFC 8628's 5 s); with ``slow_down`` a device poll sooner than the
    interval is answered ``slow_down`` and the interval grows by 5 s (RFC 8628 3.5;
    oidc-provider never sends it by itself).
    """

    def __init__(self, *, ttl: int = 5, users: Mapping[str, str] | None = None,
                 device_client_id: str | None = "prefect-notebook", web_clients: Sequence[WebClient] = (),
                 interval: int | None = 1, slow_down: bool = False, refresh_ttl: int = 86400,
                 id_token_ttl: int = 3600, device_code_ttl: int = 600) -> None:
        self.ttl = ttl
        self.client_id = "notebook"
        self.client_secret = secrets.token_urlsafe(24)
        self.gateway_client_id = "gateway"
        self.gateway_client_secret = secrets.token_urlsafe(24)
        self.device_client_id = device_client_id
        self.web_clients = list(web_clients)
        self._users = dict(users or {})
        self.interval, self.slow_down = interval, slow_down
        self.refresh_ttl, self.id_token_ttl, self.device_code_ttl = refresh_ttl, id_token_ttl, device_code_ttl
        self._admin_token = secrets.token_urlsafe(24)
        self.version = OIDC_PROVIDER_VERSION
        self.issuer = ""

    def __repr__(self) -> str:  # never the passwords or secrets
        return f"OidcProvider(issuer={self.issuer!r}, ttl={self.ttl}, users={sorted(self._users)})"

    @property
    def users(self) -> list[str]:
        """Who can sign in (names only)."""
        return sorted(self._users)

    def password(self, user: str) -> str:
        """``user``'s password (for the test that types it into the sign-in page)."""
        return self._users[user]

    def start(self, timeout: float = 60.0) -> OidcProvider:
        modules = ensure_oidc_provider()
        config = self._make_dir("nbauth-idp-") / "config.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # passwords and secrets
        with os.fdopen(fd, "w") as fh:
            json.dump({
                "ttl": self.ttl, "refresh_ttl": self.refresh_ttl, "id_token_ttl": self.id_token_ttl,
                "device_code_ttl": self.device_code_ttl, "interval": self.interval, "slow_down": self.slow_down,
                "clients": [
                    {"client_id": self.client_id, "client_secret": self.client_secret},
                    {"client_id": self.gateway_client_id, "client_secret": self.gateway_client_secret},
                ],
                "device_client_id": self.device_client_id,
                "web_clients": [{"client_id": c.client_id, "client_secret": c.client_secret,
                                 "redirect_uris": list(c.redirect_uris)} for c in self.web_clients],
                "users": self._users, "admin_token": self._admin_token,
            }, fh)
        # The script imports from the cache's node_modules: run it from there, under a name
        # that is its content's hash (checkouts with different scripts share the cache).
        # Copied under a temporary name and renamed: a parallel start never runs half a file.
        source = (ASSETS / "idp.mjs").read_bytes()
        script = modules.parent / f"idp-{hashlib.sha256(source).hexdigest()[:12]}.mjs"
        if not script.exists():
            partial = modules.parent / f".idp.mjs.{os.getpid()}.{threading.get_ident()}"
            partial.write_bytes(source)
            os.replace(partial, script)
        self._process = Process("oidc-provider", [node(), str(script), str(config)], cwd=modules.parent,
                                log=config.with_name("idp.log"), stop_grace=5).start()
        ready = self._wait_ready(self._ready_line, timeout, "oidc-provider to listen", interval=0.2)
        assert ready is not None  # wait_until returns a truthy result only
        self.issuer = ready["issuer"]
        self.version = ready["version"]
        return self

    def _ready_line(self) -> dict[str, Any] | None:
        """The line ``idp.mjs`` prints once it listens (``{"port", "issuer", "version"}``), if printed yet."""
        assert self._process is not None
        for line in self._process.log_tail(100_000).splitlines():
            if line.startswith('{"port"'):
                ready: dict[str, Any] = json.loads(line)
                return ready
        return None

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.issuer}/token/introspection"

    @property
    def revocation_url(self) -> str:
        return f"{self.issuer}/token/revocation"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def device_authorization_url(self) -> str:
        return f"{self.issuer}/device/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

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

    def revoke_user(self, user: str) -> int:
        """Sign ``user`` out everywhere, as an administrator would; how many sign-ins (grants) ended.

        Every grant of the person is destroyed with all its tokens: their refresh tokens
        are then refused (``invalid_grant``) and their access tokens introspect inactive.
        Their browser sessions end too, so the next sign-in asks for the password again.
        """
        reply = httpx.post(f"{self.issuer}/admin/accounts/{user}/revoke", headers=self._admin_headers(), timeout=30)
        reply.raise_for_status()
        grants: int = reply.json()["grants"]
        return grants

    def stats(self) -> dict[str, Any]:
        """What the provider counted since it started.

        ``tokens`` (successful token responses by grant type), ``refresh_token_rotations``
        (refresh tokens consumed and replaced), ``replays`` (a rotated refresh token used
        again: the grant was revoked), ``revocations`` (RFC 7009 requests answered 200),
        ``introspections``, ``device_authorizations``, ``device_polls``, ``slow_downs``,
        ``sign_ins``/``failed_sign_ins`` (the password page), ``admin_revocations`` and
        ``errors`` (token endpoint errors by code).
        """
        reply = httpx.get(f"{self.issuer}/admin/stats", headers=self._admin_headers(), timeout=30)
        reply.raise_for_status()
        stats: dict[str, Any] = reply.json()
        return stats

    def new_device_codes(self) -> list[dict[str, str]]:
        """The device sign-ins started since the last call: ``user_code``, ``verification_uri_complete``,
        ``client_id`` (each returned once). What a person reads off a notebook, for a scripted one."""
        reply = httpx.post(f"{self.issuer}/admin/device-codes", headers=self._admin_headers(), timeout=30)
        reply.raise_for_status()
        codes: list[dict[str, str]] = reply.json()
        return codes

    def _admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._admin_token}"}
