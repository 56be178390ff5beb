"""A websocket of Prefect's refused for auth earns one refresh and one retry.

Prefect's events publisher (``EventsWorker`` -> ``PrefectEventsClient``) and its
subscriber reconnect with the credential they hold and never re-authenticate:
when a gateway refuses the upgrade (HTTP 401/403, raised by websockets as
``InvalidStatus``) or Prefect closes the socket with 1008 after a wrong auth
message, the publisher logs ``Service 'EventsWorker' failed to process item``
for every event until something else installs a fresh credential.

:func:`refresh_after_rejection` is what the seam (``install_socket_refresh``)
calls when Prefect's ``_reconnect`` raised: for an auth refusal it asks the
active login for one single-flight refresh of the tokens that were presented
(``RefreshingToken.refresh(stale=…)``: a burst of refusals from several sockets
and REST calls is still one provider fetch) and tells the seam to reconnect
once with the new credential. Prefect's publisher keeps every unconfirmed event
and resends it on the next successful reconnect, so nothing emitted meanwhile
is lost.

A credential that was itself just refreshed after a refusal and is refused
again is not refreshed a second time: that is not expiry (a 403 for a missing
subprotocol, a provider handing out tokens the gateway rejects), and refreshing
on every emitted event would hammer the provider.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

__all__ = ["auth_rejection", "refresh_after_rejection"]

logger = logging.getLogger("prefect_nbauth")

#: Close code Prefect uses when the auth message is wrong (policy violation).
POLICY_VIOLATION = 1008

_lock = threading.Lock()
# slot -> the token that a rejection refresh produced; refused again = give up.
_fresh_after_rejection: dict[str, Any] = {}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
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


def _refresh(used: dict[str, Any], reason: str) -> bool:
    from . import _session

    rotation = _session._active_rotation()
    if rotation is None:
        return False
    refreshable = {slot: token for slot, token in used.items()
                   if rotation.login.tokens.get(slot) is not None
                   and rotation.login.tokens[slot].provider.refreshable}
    with _lock:
        if refreshable and all(_fresh_after_rejection.get(slot) is token
                               for slot, token in refreshable.items()):
            logger.warning("a freshly refreshed credential was refused on a websocket (%s); "
                           "not refreshing again", reason)
            return False
    changed = rotation.refresh_after_rejection(used, reason=f"websocket {reason}")
    if changed:
        with _lock:
            for slot in refreshable:
                _fresh_after_rejection[slot] = rotation.login.tokens[slot].token
    return changed


async def refresh_after_rejection(exc: BaseException, used: Any) -> bool:
    """True when ``exc`` was an auth refusal and a different credential is now in force."""
    reason = auth_rejection(exc)
    if reason is None or not used:
        return False
    # The provider may block (a command, an HTTP call): never on the event loop.
    return await asyncio.to_thread(_refresh, used, reason)
