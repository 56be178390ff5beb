"""A real identity provider and a real gateway, for testing token rotation end to end.

    from prefect_nbauth.testing.idp import NginxGateway, OidcProvider

    with OidcProvider(ttl=5) as idp, NginxGateway(server.api_url, idp) as gateway:
        provider = prefect_nbauth.OAuth2ClientCredentials(idp.token_url, idp.client_id, idp.client_secret)
        prefect_nbauth.login(gateway.api_url, auth_string=..., headers={gateway.header: provider})

Nothing here is written by this project except glue and configuration:

* :class:`OidcProvider` runs ``oidc-provider`` (npm, an OpenID-certified OAuth2 server,
  version pinned in :data:`OIDC_PROVIDER_VERSION`) under Node.js: short-lived
  client-credentials tokens, introspection (RFC 7662), revocation (RFC 7009);
* :class:`NginxGateway` runs Debian's nginx with njs in front of a real Prefect server,
  checking every request's token (websockets included) at the provider;
* :mod:`.load` is the load rotation must survive (REST threads, a flow, emitted events
  and a stream, with one revocation), used by the tests and ``benchmarks/rotation_real_idp.py``.

Installation is idempotent and done on first use (:mod:`._install`): ``npm install`` into
the user's cache directory, ``apt-get install nginx libnginx-mod-http-js`` when missing and
root. Everything listens on 127.0.0.1, lives in a temporary directory and is stopped
(process group killed) by ``stop()``, the context managers, and at exit.
"""

from __future__ import annotations

from ._install import OIDC_PROVIDER_VERSION, cache_dir, ensure_nginx, ensure_oidc_provider
from ._nginx import NginxGateway, cut_connections
from ._provider import OidcProvider

__all__ = [
    "OIDC_PROVIDER_VERSION",
    "NginxGateway",
    "OidcProvider",
    "cache_dir",
    "cut_connections",
    "ensure_nginx",
    "ensure_oidc_provider",
]
