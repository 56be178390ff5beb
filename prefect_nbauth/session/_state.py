"""The one login in force for this process, and the lock that keeps it consistent.

Everything that reads or changes the login goes through here: :mod:`._login` writes
it (login, logout, rotation), :mod:`._status` and :mod:`._socket_credential` read it.
It imports nothing of theirs, so none of them forms a cycle with another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .. import _prefect_seam as seam
from .._inputs import Credential
from .._urls import is_under
from ._refreshing import RefreshingToken
from ._tokens import credential_from

__all__ = ["Login", "api_url_in_force", "base_context", "current", "gateway_headers_for", "lock",
           "logout_notes", "replace", "set_logout_notes", "settings_in_force"]

# Login, logout and status may be called from cells, widget callbacks (threads)
# and flows at once; one lock keeps "validate, then swap" atomic for each.
lock = threading.RLock()


@dataclass
class Login:
    """A login in force: what was validated, the tokens that keep it fresh, the settings it installed."""

    original: Any  # the global SettingsContext before the first login()
    installed: Any  # the one login() put in its place (replaced at each rotation)
    credential: Credential  # as validated at login (initial token values)
    identity: str | None
    workspace: str | None
    server_version: str | None
    server_auth: str | None
    persisted_to: str | None  # profile name, when persist=True
    tokens: dict[str, RefreshingToken] = field(default_factory=dict)  # slot -> token

    @property
    def rotating(self) -> bool:
        return any(t.provider.refreshable for t in self.tokens.values())

    @property
    def injects(self) -> bool:
        """Our hooks must add the credential per request: it rotates, or it has gateway
        headers (kept out of Prefect's settings, which print them in clear)."""
        return self.rotating or bool(self.credential.headers)

    @property
    def in_force(self) -> bool:
        """Its settings are the process's: nobody replaced them behind login()'s back."""
        return seam.global_settings_context() is self.installed

    def gateway_headers(self) -> dict[str, str]:
        """The gateway headers to send now, raw (current token values)."""
        credential = credential_from(self.credential.api_url, self.tokens, None)
        return credential.request_headers(prefect_credential=False)


_current: Login | None = None
# What the providers of the last logout said they did (a revoked refresh token…), until the next login.
_logout_notes: tuple[str, ...] = ()


def current() -> Login | None:
    """The login in force, or None (a snapshot: it may be replaced a moment later)."""
    with lock:
        return _current


def replace(new: Login | None) -> Login | None:
    """Put ``new`` in force (caller holds :data:`lock`); returns the login it replaced."""
    global _current
    previous, _current = _current, new
    return previous


def set_logout_notes(notes: Any) -> None:
    global _logout_notes
    _logout_notes = tuple(notes)


def logout_notes() -> tuple[str, ...]:
    return _logout_notes


def base_context() -> Any:
    """The settings that login() starts from: those in force before any login()."""
    with lock:
        return _current.original if _current is not None else seam.global_settings_context()


def gateway_headers_for(url: str) -> dict[str, str]:
    """Our login's gateway headers, for a URL under its API while its settings are in force."""
    login = current()
    if login is None or not login.credential.headers or not login.in_force:
        return {}  # nothing of ours, or somebody replaced our settings: do not fight them
    if not is_under(str(url), login.credential.api_url):  # ws(s):// counts as http(s)://
        return {}
    return login.gateway_headers()


def api_url_in_force() -> str | None:
    """The API URL Prefect in this process uses outside any flow run (login's, or import's)."""
    url = seam.global_settings_context().settings.api.url
    return str(url) if url else None


def settings_in_force() -> object:
    """An opaque token that changes whenever the process-wide settings are replaced.

    Widgets compare it between polls to notice a change made behind ``login()``'s
    back (``refresh_global_settings_context()``, a profile switch).
    """
    return seam.global_settings_context()
