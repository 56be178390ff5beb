"""prefect_nbauth: authenticate to Prefect from Jupyter notebooks, correctly and safely.

The core (this package's top level) never imports IPython or ipywidgets; the
notebook layer (``%load_ext prefect_nbauth``, :mod:`prefect_nbauth.widgets`)
loads them only when used.

``import prefect_nbauth`` itself imports nothing else: each public name is loaded
from the module that defines it the first time it is used (PEP 562), so a
pytest run that only loads our plugin, or a script that only asks for the
version, pays for nothing it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._exceptions import (
        AuthenticationError,
        ConfigurationError,
        CredentialProviderError,
        NotPrefectServerError,
        PrefectAuthError,
        ServerUnreachableError,
    )
    from ._secrets import Secret, mask
    from ._streaming import BackgroundStream, exponential_backoff
    from .auditing import AuditReport, Finding, Outcome, audit
    from .events import EventStream, EventStreamState, EventStreamStats, stream_events
    from .logs import LogStream, LogStreamState, LogStreamStats, stream_logs
    from .runs import RunWatch, watch
    from .session import (
        AuthMode,
        AuthStatus,
        CallableToken,
        CommandToken,
        CredentialProvider,
        EnvToken,
        FileToken,
        OAuth2ClientCredentials,
        StaticToken,
        Token,
        login,
        logout,
        refresh,
        status,
    )

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
    "EventStreamState",
    "EventStreamStats",
    "FileToken",
    "Finding",
    "LogStream",
    "LogStreamState",
    "LogStreamStats",
    "NotPrefectServerError",
    "OAuth2ClientCredentials",
    "Outcome",
    "PrefectAuthError",
    "RunWatch",
    "Secret",
    "ServerUnreachableError",
    "StaticToken",
    "Token",
    "audit",
    "exponential_backoff",
    "login",
    "logout",
    "mask",
    "refresh",
    "status",
    "stream_events",
    "stream_logs",
    "watch",
]

_LAZY = {
    "AuditReport": ".auditing",
    "AuthMode": ".session",
    "AuthStatus": ".session",
    "AuthenticationError": "._exceptions",
    "BackgroundStream": "._streaming",
    "CallableToken": ".session",
    "CommandToken": ".session",
    "ConfigurationError": "._exceptions",
    "CredentialProvider": ".session",
    "CredentialProviderError": "._exceptions",
    "EnvToken": ".session",
    "EventStream": ".events",
    "EventStreamState": ".events",
    "EventStreamStats": ".events",
    "FileToken": ".session",
    "Finding": ".auditing",
    "LogStream": ".logs",
    "LogStreamState": ".logs",
    "LogStreamStats": ".logs",
    "NotPrefectServerError": "._exceptions",
    "OAuth2ClientCredentials": ".session",
    "Outcome": ".auditing",
    "PrefectAuthError": "._exceptions",
    "RunWatch": ".runs",
    "Secret": "._secrets",
    "ServerUnreachableError": "._exceptions",
    "StaticToken": ".session",
    "Token": ".session",
    "__version__": "._version",
    "audit": ".auditing",
    "exponential_backoff": "._streaming",
    "login": ".session",
    "logout": ".session",
    "mask": "._secrets",
    "refresh": ".session",
    "status": ".session",
    "stream_events": ".events",
    "stream_logs": ".logs",
    "watch": ".runs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """``%load_ext prefect_nbauth``: registers the magics (imports IPython only now)."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """``%unload_ext prefect_nbauth``: removes the magics; ``%load_ext`` brings them back."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)
