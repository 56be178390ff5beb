"""A stream's view of the credential in force: the current one, one refresh per rejection.

The websocket and the REST reads of one stream share one keeper, so both
rejecting the same credential costs one refresh. Every (re)connect and every
read asks :meth:`CredentialKeeper.get` first, which reads the credential in
force *now* (``login()``'s, a rotated token, a gateway provider's header): a
stream never reconnects with what it had when it started.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from .._exceptions import AuthenticationError, ConfigurationError, CredentialProviderError
from ..session import RefusalMemory, refresh_socket_credential, socket_credential
from ._failures import Retryable

__all__ = ["CredentialKeeper"]


class CredentialKeeper:
    """The stream's view of the credential: current one, one refresh per rejection.

    A credential obtained *because* of a rejection is "fresh"; if a fresh one is
    rejected too, before it came near its expiry, the stream ends with
    AuthenticationError (the login's rule, :class:`~prefect_nbauth.session.RefusalMemory`). When a refresh
    yields nothing new (a plain auth string that the server no longer accepts),
    it waits up to ``wait`` seconds for one to appear (``prefect_nbauth.login(...)``
    with the new value) before giving up.
    """

    def __init__(self, api_url: str, *, wait: float, on_wait: Callable[[str], None],
                 what: str = "event stream", restart: str = "stream_events(...)") -> None:
        self.api_url = api_url
        self.wait = wait
        self._what = what  # names the stream in messages
        self._restart = restart
        self._on_wait = on_wait
        self._refusals = RefusalMemory()  # "refreshed and refused again": the login's own rule
        self._lock = asyncio.Lock()
        self._failed: AuthenticationError | None = None
        self.current: Any = None

    @property
    def busy(self) -> bool:
        """A refresh (or the wait for a login) is under way for another part of the stream."""
        return self._lock.locked()

    async def _read(self) -> Any:
        try:
            credential = await asyncio.to_thread(socket_credential)
        except CredentialProviderError as exc:
            # A provider that fails now (OAuth2 endpoint down) may work again: retry.
            raise Retryable(f"the credential provider failed: {exc}") from None
        self._check_url(credential)
        return credential

    async def get(self) -> Any:
        credential = await self._read()
        self.current = credential
        return credential

    def _check_url(self, credential: Any) -> None:
        url = (credential.api_url or "").rstrip("/")
        if url != self.api_url:
            where = url or "no API URL"
            raise ConfigurationError(
                f"The Prefect API in force changed from {self.api_url} to {where} while this "
                f"{self._what} ran; a stream stays with one server. Start a new one with "
                f"{self._restart}."
            )

    def accepted(self, credential: Any) -> None:
        self._refusals.accepted(credential.fingerprint)

    def _fail(self, how: str, status_code: int | None, why: str) -> AuthenticationError:
        self._failed = AuthenticationError(
            f"The Prefect API at {self.api_url} rejected the {self._what}'s credential ({how}) "
            f"{why}. Log in again with prefect_nbauth.login(...) (or fix the credential "
            f"provider), then start a new stream with {self._restart}.",
            status_code=status_code,
        )
        return self._failed

    async def rejected(self, used: Any, how: str, status_code: int | None = None) -> Any:
        """``used`` was refused: return a credential to retry with, or raise AuthenticationError."""
        async with self._lock:
            if self._failed is not None:
                raise self._failed
            used_print = used.fingerprint
            if self._refusals.refused_again(used_print):
                raise self._fail(how, status_code, "right after it was refreshed")
            current = await self._read()
            if current.fingerprint == used_print:
                changed = await asyncio.to_thread(refresh_socket_credential, used)
                if changed:
                    current = await self._read()
            if current.fingerprint == used_print and self.wait > 0:
                current = await self._wait_for_new(used_print, how)
            if current.fingerprint == used_print:
                waited = f" and no new credential appeared within {self.wait:g} s" if self.wait > 0 else ""
                raise self._fail(how, status_code, f"and a refresh gave no new credential{waited}")
            self._refusals.refreshed_after_refusal(current.fingerprint, current.used, refused=used_print)
            self.current = current
            return current

    async def _wait_for_new(self, used_print: str, how: str) -> Any:
        """Up to ``wait`` seconds for a credential other than the refused one (a new login)."""
        self._on_wait(
            f"The server rejected the credential ({how}) and refreshing gave no new one; "
            f"waiting up to {self.wait:g} s for prefect_nbauth.login(...) with a valid one."
        )
        deadline = time.monotonic() + self.wait
        while True:
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            current = await self._read()
            if current.fingerprint != used_print or time.monotonic() >= deadline:
                return current
