"""Refresh: one token, kept fresh ahead of expiry, refreshed once however many ask.

``RefreshingToken`` owns a provider and the current token. Three things ask it
for a new token:

- its own background thread, ``margin`` seconds before the token expires
  (proactive: cells and flows never wait for a refresh);
- a request that got HTTP 401, or a websocket closed for auth (reactive);
- :func:`prefect_nbauth.refresh` (forced).

Single flight: the first caller runs the provider; callers that arrive while
it runs wait for its result. A caller passes the token that failed for it
(``stale=``); if the current token is already a different one, somebody has
refreshed meanwhile and the caller just uses it. That is what keeps a burst of
401s from eight threads to one refresh. It works across threads and event
loops because it is a ``threading.Condition``; async callers wait on a worker
thread (``anyio.to_thread``) so no event loop is blocked.

A failed refresh keeps the old token while it is still valid, records the
error for ``status().warnings``, and retries with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

from .._exceptions import CredentialProviderError
from .._redaction import scrub_text
from .providers import CredentialProvider, Token

__all__ = ["RefreshingToken"]

logger = logging.getLogger("prefect_nbauth")

#: Seconds of clock difference between us and whoever checks the token that the
#: proactive refresh allows for.
CLOCK_SKEW = 1.0


class RefreshingToken:
    def __init__(self, provider: CredentialProvider, *, slot: str, margin: float | None = None,
                 on_refresh: Callable[["RefreshingToken", Token], None] | None = None) -> None:
        self.provider = provider
        self.slot = slot  # "auth string", "API key", "header X-Token": for messages
        self.margin = margin
        self.on_refresh = on_refresh
        self._cond = threading.Condition()
        self._token: Token | None = None
        self._refreshing = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.generation = 0
        self.refreshes = 0
        self.reasons: Counter[str] = Counter()  # "proactive", "HTTP 401", "expired", …
        self.failures = 0
        self.last_error: str | None = None
        self.last_refresh_at: datetime | None = None
        self._fetch_seconds = 0.0  # slowest recent provider fetch, decayed

    # ----------------------------------------------------------------- access
    def _timed_fetch(self) -> Token:
        started = time.monotonic()
        try:
            return self.provider.obtain(previous=self._token)
        finally:
            took = time.monotonic() - started
            self._fetch_seconds = max(took, self._fetch_seconds * 0.8)

    def fetch_initial(self) -> Token:
        token = self._timed_fetch()
        with self._cond:
            self._token = token
            self.generation = 1
        return token

    @property
    def token(self) -> Token:
        with self._cond:
            assert self._token is not None, "fetch_initial() first"
            return self._token

    def current(self) -> Token:
        """The token to send now; refreshes first if it has already expired."""
        token = self.token
        if token.expired() and self.provider.refreshable:
            return self.refresh(stale=token, reason="expired")
        return token

    def margin_for(self, token: Token) -> float:
        """How long before expiry the background refresh runs.

        Early enough that a fetch finishes before the old token ends: three
        times the slowest recent fetch, at least 5 % of the lifetime, and at
        least :data:`CLOCK_SKEW` plus one fetch (the gateway's clock may run
        ahead of ours; the token's own expiry already allows for the issuer's
        whole-second rounding, see ``expiry_from_response``). Late enough that
        each token is used for most of its life: one refresh per expiry, not
        more. At most a minute; at most half the lifetime. A request that still
        meets the expiry gets a 401, which the single-flight refresh absorbs.
        """
        if self.margin is not None:
            return self.margin
        lifetime = max(0.0, token.remaining(token.obtained_at) or 0.0)
        margin = max(0.05 * lifetime, 3 * self._fetch_seconds, CLOCK_SKEW + self._fetch_seconds)
        return min(60.0, margin, 0.5 * lifetime)

    # ---------------------------------------------------------------- refresh
    def refresh(self, *, stale: Token | None = None, reason: str = "forced") -> Token:
        """Get a new token (single flight). Raises only when no valid token is left."""
        with self._cond:
            if stale is not None and self._token is not None and self._token is not stale:
                return self._token  # someone refreshed while this caller was failing
            if self._refreshing:
                start_generation = self.generation
                while self._refreshing:
                    self._cond.wait()
                if self.generation != start_generation or not self._token.expired():
                    return self._token
                raise CredentialProviderError(
                    f"Refreshing the {self.slot} from {self.provider.describe()} failed and the "
                    f"previous token has expired: {self.last_error}")
            self._refreshing = True
        try:
            token = self._timed_fetch()
        except CredentialProviderError as exc:
            return self._failed(exc)
        except Exception as exc:  # noqa: BLE001 - a provider bug must not kill the caller's request
            return self._failed(CredentialProviderError(
                f"{self.provider.describe()} failed with {type(exc).__name__}."))
        with self._cond:
            changed = self._token is None or token.value != self._token.value or token is not self._token
            self._token = token
            self.generation += 1
            self.refreshes += 1
            self.reasons[reason] += 1
            self.last_error = None
            self.last_refresh_at = datetime.now(timezone.utc)
            self._refreshing = False
            self._cond.notify_all()
        logger.debug("refreshed the %s from %s (%s)", self.slot, self.provider.describe(), reason)
        if changed and self.on_refresh is not None:
            try:
                self.on_refresh(self, token)
            except Exception:  # noqa: BLE001
                logger.warning("applying a refreshed %s failed", self.slot, exc_info=True)
        return token

    def _failed(self, exc: CredentialProviderError) -> Token:
        with self._cond:
            self.failures += 1
            self.last_error = scrub_text(str(exc))  # a provider's text may quote the token in force
            self._refreshing = False
            self._cond.notify_all()
            token = self._token
        logger.warning("refreshing the %s failed: %s", self.slot, exc)
        if token is not None and not token.expired():
            return token  # keep using the old one while it lasts
        raise exc

    # ------------------------------------------------------------- background
    def start(self) -> None:
        if not self.provider.refreshable or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"prefect-nbauth-refresh({self.slot})",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                if self._stopped:
                    return
                token = self._token
                assert token is not None
                remaining = token.remaining()
                if remaining is None:
                    # No known expiry: nothing to do until a 401 or a forced refresh.
                    self._cond.wait()
                    continue
                delay = max(backoff, remaining - self.margin_for(token))
                if delay > 0:
                    generation = self.generation
                    self._cond.wait(timeout=delay)
                    if self._stopped:
                        return
                    if self.generation != generation:
                        backoff = 0.0
                        continue  # refreshed by someone else: plan from the new token
                    if (token.remaining() or 0) - self.margin_for(token) > 0.001 and backoff == 0:
                        continue  # woke early
            try:
                self.refresh(stale=token, reason="proactive")
            except CredentialProviderError:
                pass
            with self._cond:
                new = self._token
                assert new is not None
                if new is token or (new.value == token.value and new.expires_at == token.expires_at):
                    # Failed, or the source still holds the same token (a file not yet
                    # rotated): retry, sooner as the expiry nears.
                    left = token.remaining() or 0
                    backoff = min(30.0, max(0.2, left / 4))
                else:
                    backoff = 0.0

    def snapshot(self) -> dict[str, object]:
        with self._cond:
            token = self._token
            return {
                "slot": self.slot,
                "provider": self.provider.describe(),
                "expires_at": token.expires_at if token else None,
                "refreshes": self.refreshes,
                "reasons": dict(self.reasons),
                "failures": self.failures,
                "last_error": scrub_text(self.last_error) if self.last_error else None,
                "last_refresh_at": self.last_refresh_at,
            }
