"""A real identity provider and a real gateway, for testing sign-in and token rotation end to end.

Machines (client-credentials tokens in a gateway header, beside Prefect's own credential)::

    from prefect_nbauth.testing.idp import NginxGateway, OidcProvider

    with OidcProvider(ttl=5) as idp, NginxGateway(server.api_url, idp) as gateway:
        provider = prefect_nbauth.OAuth2ClientCredentials(idp.token_url, idp.client_id, idp.client_secret)
        prefect_nbauth.login(gateway.api_url, auth_string=..., headers={gateway.header: provider})

People (the device authorization grant, RFC 8628, approved on the provider's sign-in page;
an SSO gateway that holds Prefect's auth string itself)::

    from prefect_nbauth.testing.idp import NginxGateway, OidcProvider, approve_device, chromium

    with OidcProvider(ttl=5, users={"alice": password}) as idp, \\
            NginxGateway.sso(server.api_url, idp, auth_string=server.auth_string) as gateway:
        # the notebook asks idp.device_authorization_url and shows the link; a person:
        with chromium() as browser:
            approve_device(browser.new_page(), verification_uri_complete, "alice", password)

Nothing here is written by this project except glue and configuration:

* :class:`OidcProvider` runs ``oidc-provider`` (npm, an OpenID-certified OAuth2 server,
  version pinned in :data:`OIDC_PROVIDER_VERSION`) under Node.js: short-lived access
  tokens for client-credentials, device and authorization-code clients (:class:`WebClient`),
  rotating refresh tokens, ID tokens signed with its own key, introspection (RFC 7662),
  revocation (RFC 7009), a real sign-in page (user name and password, then consent) and
  an administrator's "sign this person out" (:meth:`OidcProvider.revoke_user`);
* :class:`NginxGateway` runs Debian's nginx with njs in front of a real Prefect server,
  checking every request's token (websockets included) at the provider; its SSO mode adds
  Prefect's own credential upstream, and the person's name (:meth:`NginxGateway.access_log`);
* :func:`approve_device` and :func:`sign_in` are the person at those pages (Debian's
  Chromium through Playwright, :func:`chromium`);
* :mod:`.load` is the load rotation must survive (REST threads, a flow, emitted events
  and a stream, with one revocation), used by the tests and ``benchmarks/rotation_real_idp.py``.

Installation is idempotent and done on first use (:mod:`._install`): ``npm install`` into
the user's cache directory, ``apt-get install nginx libnginx-mod-http-js
libnginx-mod-stream libnginx-mod-stream-js`` when missing and root. Everything listens on
127.0.0.1, lives in a temporary directory and is stopped (process group killed) by
``stop()``, the context managers, and at exit.
"""

from __future__ import annotations

from ._browser import SignInRefused, approve_device, chromium, sign_in
from ._install import OIDC_PROVIDER_VERSION, cache_dir, ensure_nginx, ensure_oidc_provider
from ._nginx import GatewayRequest, NginxGateway, cut_connections
from ._provider import OidcProvider, WebClient

__all__ = [
    "OIDC_PROVIDER_VERSION",
    "GatewayRequest",
    "NginxGateway",
    "OidcProvider",
    "SignInRefused",
    "WebClient",
    "approve_device",
    "cache_dir",
    "chromium",
    "cut_connections",
    "ensure_nginx",
    "ensure_oidc_provider",
    "sign_in",
]
