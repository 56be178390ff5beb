"""What a websocket to the Prefect API presents, and what a refusal of it earns.

Every socket connecting now asks :func:`socket_credential`: the login's current
tokens (refreshed first if already expired), else Prefect's settings in force. It
holds the values as :class:`~prefect_nbauth._secrets.Secret`; the one caller that
puts them on the wire reveals them (:meth:`SocketCredential.raw_headers`).

Prefect's events publisher (``EventsWorker`` -> ``PrefectEventsClient``) and its
subscribers reconnect with the credential they hold and never re-authenticate:
when a gateway refuses the upgrade (HTTP 401/403, raised by websockets as
``InvalidStatus``) or Prefect closes the socket with 1008 after a wrong auth
message, the publisher logs ``Service 'EventsWorker' failed to process item`` for
every event until something else installs a fresh credential.
:func:`refresh_after_rejection` is what the seam (``install_socket_refresh``) calls
when Prefect's ``_reconnect`` raised: for an auth refusal it refreshes the tokens
that were presented, once (:mod:`._rotation`), and tells the seam to reconnect
with the new credential. Prefect's publisher keeps every unconfirmed event and
resends it on the next successful reconnect, so nothing emitted meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from .. import _headers
from .. import _prefect_seam as seam
from .._secrets import Secret
from ._rotation import active_rotation, refresh_tokens_in_use
from ._sources import effective_values
from ._state import current, gateway_headers_for
from .providers import Token

__all__ = ["SocketCredential", "auth_rejection", "refresh_after_rejection", "refresh_socket",
           "refresh_socket_credential", "socket_credential"]

logger = logging.getLogger("prefect_nbauth")

#: Close code Prefect uses when the auth message is wrong (policy violation).
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class SocketCredential:
    """What a websocket to the Prefect API must present right now.

    ``headers`` go on the HTTP upgrade request (Basic/Bearer Authorization and any
    gateway headers); ``auth_token`` is the token of Prefect's first ``{"type":
    "auth", "token": …}`` message (the auth string, or the Cloud key). ``used``: the
    login's tokens it was built from, for :func:`refresh_socket_credential`.
    """

    api_url: str | None
    headers: dict[str, Secret]
    auth_token: Secret | None
    used: dict[str, Token] = field(default_factory=dict, compare=False)

    def raw_headers(self) -> dict[str, str]:
        """The upgrade headers as sent (the one place a socket's credential is revealed)."""
        return {name: value.reveal() for name, value in self.headers.items()}

    def raw_auth_token(self) -> str | None:
        return self.auth_token.reveal() if self.auth_token is not None else None

    def secrets(self) -> list[Secret]:
        """Every value this credential holds, and the bare token of a header with a scheme."""
        values = [*self.headers.values(), *([self.auth_token] if self.auth_token else [])]
        bare = [Secret(v.reveal().split(" ", 1)[1]) for v in self.headers.values() if " " in v.reveal()]
        return values + bare

    @property
    def fingerprint(self) -> str:
        """Identifies this credential without keeping another copy of its values around."""
        digest = hashlib.sha256()
        for name, value in sorted(self.headers.items()):
            digest.update(f"{name.lower()}\0{value.reveal()}\0".encode())
        digest.update(f"token\0{self.raw_auth_token() or ''}".encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (f"SocketCredential(api_url={self.api_url!r}, headers={sorted(self.headers)}, "
                f"auth_token={'<set>' if self.auth_token else None})")


def socket_credential() -> SocketCredential:
    """The credential a websocket connecting now must use (login, rotation or plain settings)."""
    from prefect.settings import get_current_settings

    login = current()
    if login is not None and login.rotating:
        for token in login.tokens.values():
            token.current()  # refresh first if it already expired
    values = effective_values(get_current_settings())
    url = values["PREFECT_API_URL"]
    custom = dict(values["PREFECT_CLIENT_CUSTOM_HEADERS"] or {})
    if url:
        custom.update(gateway_headers_for(url))
    auth_string, api_key = values["PREFECT_API_AUTH_STRING"], values["PREFECT_API_KEY"]
    headers = _headers.request_headers(auth_string=auth_string, api_key=api_key,
                                       headers={n: str(v) for n, v in custom.items()})
    token = auth_string or api_key
    used = {slot: t.token for slot, t in login.tokens.items()} if login is not None else {}
    return SocketCredential(api_url=url, headers={n: Secret(v) for n, v in headers.items()},
                            auth_token=Secret(token) if token else None, used=used)


def refresh_socket_credential(used: SocketCredential) -> bool:
    """A websocket was refused for auth with ``used``: refresh once (single flight).

    Returns True when a different credential is now available (retry with
    :func:`socket_credential`), False when nothing refreshable changed (give up
    with ``AuthenticationError``).
    """
    login = current()
    if login is not None and login.rotating:
        return refresh_tokens_in_use(login, used.used, reason="websocket closed for auth")
    return socket_credential().fingerprint != used.fingerprint


# ------------------------------------------------------------ Prefect's own sockets


def refresh_socket(client: Any) -> dict[str, Token] | None:
    """Give one of Prefect's events clients the current credential; the tokens it now presents."""
    login = current()
    if login is None or not login.injects:
        return None
    used = {slot: t.token for slot, t in login.tokens.items()}
    seam.refresh_socket_client(client, login.credential.api_url, gateway_headers_for(login.credential.api_url))
    return used


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in seen and len(seen) < 10:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def auth_rejection(exc: BaseException) -> str | None:
    """Why ``exc`` means "refused for auth" ("HTTP 401", "close 1008"), or None."""
    for error in _chain(exc):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if type(error).__name__ == "InvalidStatus" and status in (401, 403):
            return f"HTTP {status}"
        received = getattr(error, "rcvd", None)
        if getattr(received, "code", None) == POLICY_VIOLATION:
            return f"close {POLICY_VIOLATION}"
    return None


def _refresh(used: dict[str, Token], reason: str) -> bool:
    rotation = active_rotation()
    if rotation is None:
        return False
    changed = rotation.refresh_after_rejection(used, reason=f"websocket {reason}")
    if not changed and rotation.refused_again(used):
        logger.warning("a freshly refreshed credential was refused on a websocket (%s); "
                       "not refreshing again", reason)
    return changed


async def refresh_after_rejection(exc: BaseException, used: Any) -> bool:
    """True when ``exc`` was an auth refusal and a different credential is now in force."""
    reason = auth_rejection(exc)
    if reason is None or not used:
        return False
    # The provider may block (a command, an HTTP call): never on the event loop.
    return await asyncio.to_thread(_refresh, used, reason)
