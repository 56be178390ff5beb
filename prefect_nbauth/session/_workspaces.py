"""Which Prefect Cloud workspaces an API key can use (for the login form's chooser).

``login(api_key=…)`` without ``workspace=`` refuses a key with several
workspaces and names them in its message; the form needs them as a list, to
offer a choice before the real login. This asks Cloud the same question
``login()`` asks (``GET /api/me/workspaces``) with the core's own probe: no
redirects, bounded answers, the key scrubbed from every message.
"""

from __future__ import annotations

from .. import _prefect_seam as seam
from .._inputs import Credential, check_api_key
from .._secrets import Secret
from .._tls import ssl_context
from . import _probe

__all__ = ["cloud_api_url", "list_workspaces"]


def cloud_api_url() -> str:
    """Prefect Cloud's API base in force (``PREFECT_CLOUD_API_URL``; login() never changes it)."""
    return seam.cloud_api_url()


def list_workspaces(api_key: str | Secret, *, timeout: float = _probe.DEFAULT_TIMEOUT) -> list[str]:
    """Handles (``account/workspace``) of the workspaces ``api_key`` can use, sorted.

    Raises AuthenticationError when Cloud rejects the key, ServerUnreachableError /
    NotPrefectServerError when Cloud cannot be asked, ConfigurationError for a
    malformed key.
    """
    key = check_api_key(api_key)
    cloud = cloud_api_url()
    return _probe.list_workspaces(Credential(api_url=cloud, api_key=key), cloud_api_url=cloud,
                                   verify=ssl_context(seam.global_settings_context().settings), timeout=timeout)
