"""What the per-request credential needs from the login in force: apply, refresh once, give up.

Three kinds of connection present the login's tokens and may be refused: an HTTP
request (:class:`~._http_auth.NbAuth`), a websocket Prefect opens
(:mod:`._socket_credential`), and our own streams (``_streaming``). Each answers a
refusal the same way, written here once:

- **refresh the tokens in use** (:func:`refresh_tokens_in_use`): each refreshable
  token that the refused connection presented is refreshed, single flight
  (``RefreshingToken.refresh(stale=…)``: a burst of refusals is one provider fetch,
  and a token someone else already replaced is simply used);
- **refreshed and refused again** (:class:`RefusalMemory`): a credential obtained
  *because* of a refusal that is refused in turn is not refreshed a second time.
  That is not expiry (a provider handing out tokens the server rejects, a 403 for a
  missing subprotocol), and refreshing on every request would hammer the provider.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable, Mapping

from .._exceptions import CredentialProviderError
from .._urls import is_under
from ._http_auth import NbAuth
from ._state import Login, current, lock
from ._tokens import credential_from
from .providers import Token

__all__ = ["NB_AUTH", "RefusalMemory", "Rotation", "active_rotation", "refresh_tokens_in_use", "used_key"]


class RefusalMemory:
    """Remembers credentials that were obtained because another was refused.

    ``refused_again(key)`` is True for such a credential: the caller gives up instead of
    refreshing once more. ``accepted(key)`` forgets it (it worked). Bounded: the oldest
    entries go first.
    """

    def __init__(self, size: int = 32) -> None:
        self._lock = threading.Lock()
        self._fresh: OrderedDict[Hashable, None] = OrderedDict()
        self._size = size

    def refreshed_after_refusal(self, key: Hashable) -> None:
        with self._lock:
            self._fresh[key] = None
            while len(self._fresh) > self._size:
                self._fresh.popitem(last=False)

    def accepted(self, key: Hashable) -> None:
        with self._lock:
            self._fresh.pop(key, None)

    def refused_again(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._fresh


def used_key(used: Mapping[str, Token]) -> Hashable:
    """What identifies the tokens a connection presented (by identity: a token is one fetch)."""
    return frozenset((slot, id(token)) for slot, token in used.items())


def refresh_tokens_in_use(login: Login, used: Mapping[str, Token], *, reason: str) -> bool:
    """Refresh each refreshable token that ``used`` presented; True when any is now different."""
    changed = False
    for slot, token in login.tokens.items():
        if not token.provider.refreshable:
            continue
        before = used.get(slot)
        try:
            new = token.refresh(stale=before, reason=reason)
        except CredentialProviderError:
            continue
        changed = changed or new is not before
    return changed


class Rotation:
    """What NbAuth needs from the active login: apply current tokens, refresh on 401."""

    def __init__(self, login: Login) -> None:
        self.login = login
        self.api_url = login.credential.api_url.rstrip("/")

    def covers(self, request: Any) -> bool:
        # Parsed origin and path on segment boundaries: a token for https://gw.example.com
        # never goes to https://gw.example.com.evil.net/ (a string prefix would).
        return is_under(request.url, self.api_url)

    def needs_refresh(self) -> bool:
        return any(t.token.expired() for t in self.login.tokens.values() if t.provider.refreshable)

    def ensure_fresh(self) -> None:
        for t in self.login.tokens.values():
            t.current()

    def apply(self, request: Any) -> dict[str, Token]:
        used = {slot: t.token for slot, t in self.login.tokens.items()}
        credential = credential_from(self.api_url, self.login.tokens, None)
        for name, value in credential.request_headers().items():
            request.headers[name] = value
        return used

    def succeeded(self, used: Mapping[str, Token]) -> None:
        _REFUSALS.accepted(used_key(used))

    def refresh_after_rejection(self, used: Mapping[str, Token], *, reason: str = "HTTP 401") -> bool:
        """Refresh the tokens ``used`` presented; False when there is nothing new to try.

        Nothing new: no token is refreshable, the provider gave the same token back, or
        ``used`` was itself obtained after a refusal (refused again: give up).
        """
        if _REFUSALS.refused_again(used_key(used)):
            return False
        changed = refresh_tokens_in_use(self.login, used, reason=reason)
        if changed:
            _REFUSALS.refreshed_after_refusal(used_key({s: t.token for s, t in self.login.tokens.items()}))
        return changed

    def refused_again(self, used: Mapping[str, Token]) -> bool:
        return _REFUSALS.refused_again(used_key(used))

    def rejected_twice_message(self) -> str:
        sources = ", ".join(f"the {t.slot} from {t.provider.describe()}"
                            for t in self.login.tokens.values() if t.provider.refreshable)
        return (f"{self.api_url} rejected a freshly refreshed credential (HTTP 401 twice): "
                f"{sources}. The provider returns tokens the server does not accept; check "
                "its configuration, then call prefect_nbauth.refresh() or log in again.")


#: The login's memory of refused credentials, shared by its HTTP requests and Prefect's sockets.
_REFUSALS = RefusalMemory()


def active_rotation() -> Rotation | None:
    """The rotation of the login in force when our hooks must act, else None."""
    with lock:
        login = current()
        if login is None or not login.injects or not login.in_force:
            return None  # nothing to inject, or somebody replaced our settings: do not fight them
    return Rotation(login)


#: The httpx Auth every Prefect HTTP client in the process carries (installed by login()).
NB_AUTH = NbAuth(active_rotation)
