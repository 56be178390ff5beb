"""audit(): what the Prefect server you talk to really enforces, probed the way an outsider would.

Each probe ends as pass, fail or not applicable, with one sentence and a fix:

- the transport: plain http to another machine, TLS verification turned off;
- the auth mode the server advertises (``GET /ui-settings`` at the server root) versus what
  this process sends;
- REST: a protected endpoint without credentials and with a random wrong one (401, not 500);
- REST endpoints that answer without credentials, besides ``/health`` and ``/ready``, and the
  health-check exemption of older servers (a path ending in ``health``, a crafted Host header);
- each event socket (``/events/out``, ``/events/in``, ``/logs/out``): without the ``prefect``
  subprotocol, without the auth message, with a random wrong token;
- redirects to another origin, which Prefect's own clients follow;
- the server version, against the auth defects Prefect fixed, each checked in the released source:

  ========  =================================================================================
  < 3.3.5   ``/events/out`` (and the task-run sockets) answer ``auth_success`` to any token
            (Prefect issue #17687, fixed by PR #17741, first released in 3.3.5)
  < 3.6.14  ``/events/in`` never asks for the auth message: anyone can send events
  < 3.6.22  a GET whose URL path ends in ``health``/``ready`` skips the auth check, and the
            path is built from the Host header, so a crafted Host reads any GET endpoint
            (fixed by PR #21063 in 3.6.22)
  ========  =================================================================================

The real credential goes only to the configured API's origin (one REST request and one socket
per path, to tell "refused" from "not there"); probes meant to be refused carry no credential
or random wrong values. Behind a gateway (headers besides Prefect's own credential) the probes
of Prefect's own check keep the gateway's headers, to the same origin, with Prefect's credential
wrong or missing (``auditing._gateway``). Nothing follows a redirect, every socket has a timeout, no credential
is logged or put into the report.
"""

from __future__ import annotations

import logging
import time

from .. import _prefect_seam as seam
from .._boundary import public
from .._exceptions import ConfigurationError
from .._inputs import check_api_url, check_timeout, is_cloud_url
from ._auth_mode import client_sends
from ._evidence import gather
from ._prober import Prober
from ._report import AuditReport
from ._rules import judge

__all__ = ["audit"]

logger = logging.getLogger("prefect_nbauth.audit")

DEFAULT_TIMEOUT = 3.0


@public(urls=("api_url",))
def audit(api_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> AuditReport:
    """Probe the Prefect API this process talks to and say what it really enforces.

    ``api_url`` defaults to the API URL in force (after :func:`login`, the logged-in one).
    Another URL is probed from outside only: the credential in force is never sent to it.
    Every request and socket has a ``timeout`` (seconds); the whole audit takes a few seconds.

    Raises:
        ConfigurationError: no API URL is in force and none was given.
        ServerUnreachableError: nothing answered at the URL.
    """
    from prefect.settings import get_current_settings

    from .._tls import ssl_context
    from ..session import socket_credential

    timeout = check_timeout(timeout)
    started = time.monotonic()
    credential = socket_credential()
    configured = credential.api_url.rstrip("/") if credential.api_url else None
    if api_url is None:
        if configured is None:
            raise ConfigurationError(
                "No Prefect API URL is in force. Log in first (prefect_nbauth.login(…)), or "
                "pass the URL to audit: audit('http://HOST:4200/api')."
            )
        url = check_api_url(configured)
    else:
        url = check_api_url(api_url)
    use_credential = configured is not None and url == check_api_url(configured)
    settings = get_current_settings()
    cloud_api = seam.cloud_api_url(settings)
    is_cloud = is_cloud_url(url, cloud_api)

    prober = Prober(url, credential.raw_headers(), credential.raw_auth_token(),
                    verify=ssl_context(settings), timeout=timeout, use_credential=use_credential)
    try:
        seen = gather(prober, settings, is_cloud)
    finally:
        prober.close()
    sends = client_sends(credential.raw_headers()) if use_credential else "nothing (another URL)"
    report = AuditReport(api_url=url, client_sends=sends, server_version=seen.version,
                         server_auth=seen.advertised, findings=tuple(judge(seen)),
                         seconds=time.monotonic() - started, credential_used=use_credential)
    for f in report.findings:
        logger.debug("audit %s: %s", f.check, f.outcome.value)
    return report
