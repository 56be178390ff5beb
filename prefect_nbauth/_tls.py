"""TLS: the one place that turns Prefect's TLS settings into an ``ssl.SSLContext``.

Login probes, status checks, the event stream (REST and websockets) and the
audit all connect with the context built here, so they trust exactly what
Prefect's own clients trust:

- ``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``: no certificate check (``status()``
  and ``audit()`` warn about it);
- ``PREFECT_API_SSL_CERT_FILE``: that CA bundle (a private CA);
- otherwise httpx's defaults: certifi's bundle, or ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` from the environment.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["ssl_context"]


def ssl_context(settings: Any = None) -> ssl.SSLContext:
    """The context for connections to the Prefect API (``settings``: Prefect's, default current)."""
    if settings is None:
        from prefect.settings import get_current_settings

        settings = get_current_settings()
    api = settings.api
    if api.tls_insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cert_file = getattr(api, "ssl_cert_file", None)
    if cert_file:
        return ssl.create_default_context(cafile=str(cert_file))
    import httpx

    return httpx.create_ssl_context(trust_env=True)
