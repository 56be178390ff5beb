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
  *because* of a refusal that is refused in turn, before it came near its expiry, is
  not refreshed a second time. That is not expiry (a provider handing out tokens the
  server rejects, a 403 for a missing subprotocol), and refreshing on every request
  would hammer the provider. One refused once it had expired, or within its refresh
  margin of expiry, was refused for its age (a kernel starved of CPU between the
  refresh and the request, a 5-second token): that earns a refresh, a few times in a
  row at most.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Hashable, Mapping

from .._exceptions import CredentialProviderError
from .._urls import is_under
from ._http_auth import NbAuth
from ._refreshing import CLOCK_SKEW
from ._state import Login, current, lock
from ._tokens import credential_from
from .providers import Token

__all__ = ["NB_AUTH", "RefusalMemory", "Rotation", "active_rotation", "refresh_tokens_in_use", "stale_at_of",
           "used_key"]


@dataclass(frozen=True)
class _Fresh:
    """A credential obtained because another was refused (no secret in it)."""

    stale_at: datetime | None  # from then on a refusal is explained by its age (None: it never ages)
    aged: int  # refusals explained by age in the chain that led to it, since one was last accepted


class RefusalMemory:
    """Remembers credentials that were obtained because another was refused.

    ``refused_again(key)`` is True for such a credential refused in turn: the caller
    gives up instead of refreshing once more. Not when the refusal is explained by the
    credential's age: from ``expires_at`` minus the refresh margin of its earliest
    expiring token on (``refreshed_after_refusal(key, tokens)``), a refusal earns one
    more refresh, at most :attr:`MAX_AGED` times in a row, so a provider whose tokens
    expire before they can be used (or arrive expired) is still given up on, after a
    handful of fetches. ``accepted(key)`` forgets it (it worked) and ends the chain.
    Bounded: the oldest entries go first.
    """

    #: Refusals explained by age, in a row, that still earn a refresh.
    MAX_AGED = 3

    def __init__(self, size: int = 32) -> None:
        self._lock = threading.Lock()
        self._fresh: OrderedDict[Hashable, _Fresh] = OrderedDict()
        self._size = size

    def refreshed_after_refusal(self, key: Hashable, tokens: Mapping[str, Token] | None = None, *,
                                refused: Hashable | None = None) -> None:
        """``key`` (made of ``tokens``) was obtained because ``refused`` was refused."""
        stale_at = stale_at_of(tokens or {})
        with self._lock:
            before = self._fresh.get(refused) if refused is not None else None
            self._fresh[key] = _Fresh(stale_at, before.aged + 1 if before is not None else 0)
            self._fresh.move_to_end(key)
            while len(self._fresh) > self._size:
                self._fresh.popitem(last=False)

    def accepted(self, key: Hashable) -> None:
        with self._lock:
            self._fresh.pop(key, None)

    def refused_again(self, key: Hashable, now: datetime | None = None) -> bool:
        """``key``, obtained because of a refusal, was refused before its age explains it: give up."""
        with self._lock:
            fresh = self._fresh.get(key)
        if fresh is None:
            return False
        aged = fresh.stale_at is not None and (now or datetime.now(timezone.utc)) >= fresh.stale_at
        return not aged or fresh.aged >= self.MAX_AGED


def stale_at_of(tokens: Mapping[str, Token]) -> datetime | None:
    """When the first of ``tokens`` comes within its refresh margin of expiry; None if none expires.

    The margin is the one the login in force refreshes that token with (a refusal after
    it is what a proactive refresh exists to avoid); a token of no login, :data:`CLOCK_SKEW`.
    """
    login = current()
    keepers = login.tokens if login is not None else {}
    times = []
    for slot, token in tokens.items():
        keeper = keepers.get(slot)
        if token.expires_at is None or (keeper is not None and not keeper.provider.refreshable):
            continue
        margin = keeper.margin_for(token) if keeper is not None else CLOCK_SKEW
        times.append(token.expires_at - timedelta(seconds=margin))
    return min(times, default=None)


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
        self.refresh_failure: str | None = None

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
            now_used = {s: t.token for s, t in self.login.tokens.items()}
            _REFUSALS.refreshed_after_refusal(used_key(now_used), now_used, refused=used_key(used))
        else:  # why nothing changed (a provider failed: the person is signed out…), for the request to say
            self.refresh_failure = next((t.last_error for slot, t in self.login.tokens.items()
                                         if slot in used and t.provider.refreshable and t.last_error), None)
        return changed

    def refused_again(self, used: Mapping[str, Token]) -> bool:
        return _REFUSALS.refused_again(used_key(used))

    def rejected_twice_message(self) -> str:
        sources = ", ".join(f"the {t.slot} from {t.provider.describe()}"
                            for t in self.login.tokens.values() if t.provider.refreshable)
        return (f"{self.api_url} rejected a freshly refreshed credential (HTTP 401 twice): "
                f"{sources}. The provider returns tokens the server does not accept (or that expire "
                "before they reach it); check its configuration, then call prefect_nbauth.refresh() "
                "or log in again.")


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
