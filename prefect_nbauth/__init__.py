"""prefect_nbauth: authenticate to Prefect from Jupyter notebooks, correctly and safely.

The core (this package's top level) never imports IPython or ipywidgets; the
notebook layer (``%load_ext prefect_nbauth``, :mod:`prefect_nbauth.widgets`)
loads them only when used.
"""

from __future__ import annotations

from ._exceptions import (
    AuthenticationError,
    ConfigurationError,
    CredentialProviderError,
    NotPrefectServerError,
    PrefectAuthError,
    ServerUnreachableError,
)
from ._jupyterhub import JupyterHubToken
from ._oauth2 import OAuth2ClientCredentials
from ._providers import (
    CallableToken,
    CommandToken,
    CredentialProvider,
    EnvToken,
    FileToken,
    StaticToken,
    Token,
)
from ._secrets import Secret, mask
from ._session import login, logout, refresh, status
from ._status import AuthMode, AuthStatus
from .auditing import AuditReport, Finding, Outcome, audit
from .events import BackgroundStream, EventStream, StreamState, StreamStats, stream_events
from .logs import LogStream, LogStreamState, LogStreamStats, stream_logs
from .runs import RunWatch, watch

__version__ = "0.1.0"

__all__ = [
    "AuditReport",
    "AuthMode",
    "AuthStatus",
    "AuthenticationError",
    "BackgroundStream",
    "CallableToken",
    "CommandToken",
    "ConfigurationError",
    "CredentialProvider",
    "CredentialProviderError",
    "EnvToken",
    "EventStream",
    "FileToken",
    "JupyterHubToken",
    "LogStream",
    "LogStreamState",
    "LogStreamStats",
    "Finding",
    "NotPrefectServerError",
    "OAuth2ClientCredentials",
    "Outcome",
    "PrefectAuthError",
    "RunWatch",
    "Secret",
    "ServerUnreachableError",
    "StaticToken",
    "StreamState",
    "StreamStats",
    "Token",
    "audit",
    "login",
    "logout",
    "mask",
    "refresh",
    "status",
    "stream_events",
    "stream_logs",
    "watch",
]


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """``%load_ext prefect_nbauth``: registers the magics (imports IPython only now)."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """``%unload_ext prefect_nbauth``: removes the magics; ``%load_ext`` brings them back."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)
