"""The one exception hierarchy of prefect_nbauth.

::

    PrefectAuthError                 catch this to handle anything we raise
    ├── ConfigurationError           bad input, found before any request is sent
    ├── AuthenticationError          the server answered: this credential is not accepted
    ├── CredentialProviderError      a token source failed (file, command, OAuth2 endpoint…)
    └── ServerUnreachableError       no usable answer: down, TLS failure, timeout
        └── NotPrefectServerError    it answered, but it is not a Prefect API

Every message says what happened and what to do next, and never contains a
secret: values are shown masked (``pnu_****abcd``) or not at all. Whatever a
message quotes (a server's answer, a provider's complaint) passes the egress
(:func:`._redaction.scrub_text`) when the error is made and again when it is shown,
so a secret that becomes known after the error was raised is masked too.
"""

from __future__ import annotations

from typing import Any

from ._redaction import scrub_text

__all__ = [
    "PrefectAuthError",
    "ConfigurationError",
    "AuthenticationError",
    "CredentialProviderError",
    "ServerUnreachableError",
    "NotPrefectServerError",
]


class PrefectAuthError(Exception):
    """Base class of every error prefect_nbauth raises."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub_text(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return scrub_text(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(PrefectAuthError, ValueError):
    """The input cannot work; detected before anything was sent to a server."""


class AuthenticationError(PrefectAuthError):
    """The server rejected the credential (HTTP 401/403 or a websocket close for auth)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class CredentialProviderError(PrefectAuthError):
    """A credential provider could not produce a usable token; its message names the provider."""


class ServerUnreachableError(PrefectAuthError, ConnectionError):
    """The API URL gave no usable answer: connection refused, DNS, TLS or timeout."""


class NotPrefectServerError(ServerUnreachableError):
    """Something answered at the URL, but it is not a Prefect API."""
