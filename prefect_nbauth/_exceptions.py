"""The one exception hierarchy of prefect_nbauth.

::

    PrefectAuthError                 catch this to handle anything we raise
    ├── ConfigurationError           bad input, found before any request is sent
    ├── AuthenticationError          the server answered: this credential is not accepted
    ├── CredentialProviderError      a token source failed (file, command, OAuth2 endpoint…)
    │   └── SignedOutError           the identity provider ended the sign-in: sign in again
    ├── SignInError                  a person's sign-in at an identity provider did not complete
    │   ├── SignInDeniedError        the person declined or cancelled at the provider
    │   ├── SignInExpiredError       the code expired before the person approved
    │   ├── SignInCancelledError     cancelled here (Cancel, or a newer sign-in)
    │   └── DeviceFlowUnsupportedError  the issuer does not offer the device sign-in
    └── ServerUnreachableError       no usable answer: down, TLS failure, timeout
        ├── NotPrefectServerError    it answered, but it is not a Prefect API
        └── IssuerUnreachableError   the identity provider gave no usable answer (TLS too)

Every message says what happened and what to do next, and never contains a
secret: values are shown masked (``pnu_****abcd``) or not at all. Whatever a
message quotes (a server's answer, a provider's complaint) passes the egress
(:func:`._redaction.scrub_text`) when the error is made and again when it is shown,
so a secret that becomes known after the error was raised is masked too.
"""

from __future__ import annotations

import sys
import traceback
import types
from typing import Any

from ._redaction import scrub_text

__all__ = [
    "PrefectAuthError",
    "ConfigurationError",
    "AuthenticationError",
    "CredentialProviderError",
    "ServerUnreachableError",
    "NotPrefectServerError",
    "SignedOutError",
    "SignInError",
    "SignInDeniedError",
    "SignInExpiredError",
    "SignInCancelledError",
    "DeviceFlowUnsupportedError",
    "IssuerUnreachableError",
]


class PrefectAuthError(Exception):
    """Base class of every error prefect_nbauth raises."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub_text(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return scrub_text(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error uncaught: the person's own call last, not our boundary.

        IPython skips frames marked ``__tracebackhide__`` except the innermost, and the
        innermost is always ours: the boundary raises the contained error. This is IPython's
        hook for an exception to render itself; it renders with the running shell's own
        formatter (colours, ``%xmode``) a traceback without that hidden tail. The shell is
        looked up, never imported: the core does not depend on IPython.
        """
        tb = _without_hidden_tail(self.__traceback__)
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is not None:
            return list(shell.InteractiveTB.structured_traceback(type(self), self, tb))
        return traceback.format_exception(type(self), self, tb)


def _without_hidden_tail(tb: types.TracebackType | None) -> types.TracebackType | None:
    """A copy of ``tb`` without its innermost frames marked ``__tracebackhide__`` (one kept)."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    keep = len(entries)
    while keep > 1 and entries[keep - 1].tb_frame.f_locals.get("__tracebackhide__"):
        keep -= 1
    trimmed = None
    for entry in reversed(entries[:keep]):
        trimmed = types.TracebackType(trimmed, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return trimmed


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


class SignedOutError(CredentialProviderError):
    """The identity provider ended the sign-in (it refused the refresh token): nothing is
    retried until the person signs in again."""


class SignInError(PrefectAuthError):
    """A person's sign-in at an identity provider did not complete."""


class SignInDeniedError(SignInError):
    """The person declined, or cancelled, at the identity provider (``access_denied``)."""


class SignInExpiredError(SignInError):
    """The sign-in code expired before the person approved it (``expired_token``)."""


class SignInCancelledError(SignInError):
    """The sign-in was cancelled in this process (its Cancel button, or a newer sign-in)."""


class DeviceFlowUnsupportedError(SignInError, ConfigurationError):
    """The issuer does not offer the device sign-in (RFC 8628) to this client."""


class IssuerUnreachableError(ServerUnreachableError):
    """The identity provider gave no usable answer: down, wrong URL, TLS failure, timeout."""
