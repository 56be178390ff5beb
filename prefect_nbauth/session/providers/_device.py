"""Sign in as yourself: the OpenID device sign-in (RFC 8628) as a credential provider.

    prefect_nbauth.login("https://prefect.example.com/api",
                         sso=DeviceSignIn("https://login.example.com", "prefect-notebook"))

The person opens a link on any device, signs in there and approves; the kernel polls
(:mod:`._device_flow`). What the provider then holds and how it keeps it:

* the access token goes to the gateway (``Authorization: Bearer``, or the header named);
* the refresh token renews it ahead of expiry (the toolkit's ``RefreshingToken`` calls
  :meth:`DeviceSignIn.fetch`). Providers that rotate refresh tokens revoke the whole
  sign-in when an old one is used again, so exactly one refresh grant is ever in flight
  (one lock around request and store) and the new refresh token replaces the old one
  in the same step as the access token;
* when the provider refuses the refresh token (revoked, expired, the person signed out
  there) the sign-in is over: :class:`~prefect_nbauth.SignedOutError`, one message, and
  nothing more is sent until the person signs in again;
* the ID token says who signed in; its signature is checked against the provider's
  published keys (:meth:`._oidc.Issuer.verify_id_token`);
* :meth:`DeviceSignIn.close` (``logout()``) revokes the refresh token (RFC 7009) where
  the provider offers revocation.

The refresh token and the ID token never leave this object: they are
:class:`~prefect_nbauth.Secret` values, scrubbed from every log line and message while
held (:mod:`._redaction`), and kept on disk only with ``persist=`` (:mod:`._refresh_store`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ... import _redaction
from ..._exceptions import (
    ConfigurationError,
    CredentialProviderError,
    IssuerUnreachableError,
    PrefectAuthError,
    SignedOutError,
    SignInError,
)
from ..._secrets import Secret
from ._base import CredentialProvider, Token, clean_token
from ._device_flow import DevicePrompt, PendingSignIn, authorize
from ._oauth2 import expiry_from_response
from ._oidc import Issuer
from ._refresh_store import RefreshTokenStore, store_for

__all__ = ["DEFAULT_SCOPES", "DeviceSignIn", "SignIn"]

logger = logging.getLogger("prefect_nbauth")

DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
#: Seconds an access token must still have to be handed out as it is; a sign-in's token that
#: waited longer (the person approved, then ``import prefect`` took its time) is refreshed first.
FRESH_ENOUGH = 2.0


@dataclass(frozen=True)
class SignIn:
    """Who is signed in, from the verified ID token; no secret in it."""

    user: str  # preferred_username, else email, else sub
    email: str | None
    issuer: str
    signed_in_at: datetime
    ends_at: datetime | None  # when the provider said the sign-in (its refresh token) ends


@dataclass(frozen=True)
class _Held:
    """What a sign-in holds, replaced as a whole (never one part without the others)."""

    access: Token
    refresh: Secret | None
    id_token: Secret | None
    sign_in: SignIn | None


class DeviceSignIn(CredentialProvider):
    """A person's sign-in at an OpenID provider with the device authorization grant (RFC 8628).

    Args:
        issuer: the identity provider's URL (its ``/.well-known/openid-configuration`` is read).
        client_id: a PUBLIC client registered there with the device_code and refresh_token grants.
        scopes: what to ask for; ``offline_access`` brings the refresh token that keeps the
            sign-in alive, ``openid`` the ID token that says who signed in.
        header: where the gateway wants the access token (``Authorization``: sent as ``Bearer``).
        persist: ``False`` (default): nothing on disk, a new kernel asks again; ``True``: the
            refresh token in the platform's secret store (``keyring``), refused where there is
            none; a path: that file, mode 0600.
        prompt: called with the :class:`DevicePrompt` when :meth:`fetch` has to start a sign-in
            itself (``login()`` in a script); default: print the link and code once.
        verify: TLS verification for the identity provider (``True``, a CA bundle path, or an
            ``ssl.SSLContext``).
        timeout: seconds per request to the identity provider.
        transport: an ``httpx`` transport for the requests to the identity provider (tests).
    """

    def __init__(self, issuer: str, client_id: str, *, scopes: Sequence[str] = DEFAULT_SCOPES,
                 header: str = "Authorization", persist: bool | str | os.PathLike[str] = False,
                 prompt: Callable[[DevicePrompt], None] | None = None, verify: Any = True,
                 timeout: float = 30.0, transport: Any = None) -> None:
        if not isinstance(client_id, str) or not client_id.strip():
            raise ConfigurationError("client_id must be the public client registered at the identity provider.")
        self.issuer = Issuer(issuer, verify=verify, timeout=timeout, transport=transport)
        self.client_id = client_id.strip()
        self.scopes = list(scopes.split() if isinstance(scopes, str) else scopes)
        self.header = header
        self.timeout = timeout
        self._store: RefreshTokenStore | None = store_for(persist, self.issuer.url, self.client_id)
        self._prompt = prompt or _print_prompt
        self._lock = threading.Lock()  # guards the state below
        self._grant_lock = threading.Lock()  # one refresh (or revocation) at a time, request to store
        self._held: _Held | None = None
        self._handed_out: Token | None = None  # the access token fetch() last returned
        self._generation = 0  # bumped whenever _held is replaced
        self._signed_out: str | None = None  # why, once the provider ended the sign-in
        self._pending: PendingSignIn | None = None
        self.refreshes = 0
        self.rotations = 0  # refreshes that returned a new refresh token
        self.revoked_at_close: bool | None = None
        self._owner = f"sso {id(self)}"  # for _redaction: the secrets this object holds

    # ---------------------------------------------------------------- facts
    def describe(self) -> str:
        """``SSO sign-in at ISSUER as alice <alice@example.com>, until …``; never a token."""
        text = f"SSO sign-in at {self.issuer.url}"
        with self._lock:
            held, signed_out = self._held, self._signed_out
        if signed_out:
            return text + " (signed out by the identity provider)"
        if held is not None and held.sign_in is not None:
            who = held.sign_in
            text += f" as {who.user}" + (f" <{who.email}>" if who.email and who.email != who.user else "")
            text += (f", until {who.ends_at.astimezone(timezone.utc):%Y-%m-%d %H:%M UTC}" if who.ends_at
                     else ", until you log out or the identity provider ends it")
        if self._store is not None:
            text += f"; refresh token kept in {self._store.describe()}"
        return text

    def identity(self) -> str | None:
        sign_in = self.sign_in
        return sign_in.user if sign_in is not None else None

    @property
    def sign_in(self) -> SignIn | None:
        """Who is signed in (the verified ID token's claims), or None."""
        with self._lock:
            return self._held.sign_in if self._held is not None and not self._signed_out else None

    @property
    def signed_out(self) -> str | None:
        """Why the identity provider ended the sign-in, or None while it lasts."""
        with self._lock:
            return self._signed_out

    @property
    def signed_in(self) -> bool:
        with self._lock:
            return self._held is not None and self._signed_out is None

    def __repr__(self) -> str:
        return f"<DeviceSignIn {self.client_id!r} at {self.issuer.url}{' (signed in)' if self.signed_in else ''}>"

    # -------------------------------------------------------------- sign in
    def start(self) -> PendingSignIn:
        """Start a device sign-in: the link and code to show, polled in the background.

        A sign-in already waiting is cancelled (the newest one wins). When the person
        approves, the tokens are taken and checked here; ``login()`` (or :meth:`fetch`)
        then uses them.
        """
        with self._lock:
            previous, self._pending = self._pending, None
        if previous is not None:
            previous.cancel("A newer sign-in replaced this one.")
        pending = authorize(self.issuer, self.client_id, self.scopes, self._signed_in_now)
        with self._lock:
            self._pending = pending
        return pending

    def cancel(self) -> None:
        """Cancel a sign-in that is waiting for the person (nothing else changes)."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()

    def _signed_in_now(self, response: dict[str, Any], requested_at: float) -> None:
        """The person approved: keep the tokens (on the polling thread)."""
        held = self._held_from(response, requested_at, previous=None)
        self._keep(held, signed_out=None)

    # ------------------------------------------------------------- protocol
    def fetch(self) -> Token:
        """The access token: fresh from the sign-in the first time, then from the refresh grant.

        Not signed in yet: the refresh token kept with ``persist=`` is used if there is one,
        else a sign-in is started here and the prompt shown (this blocks until the person
        approves: in a notebook, use ``%prefect_login --sso`` or the login form instead).
        """
        with self._lock:
            signed_out, held, handed = self._signed_out, self._held, self._handed_out
        if signed_out:
            raise SignedOutError(signed_out)
        if held is None:  # a sign-in's errors are its own (IssuerUnreachableError, SignInDeniedError…)
            held = self._resume() or self._sign_in_here()
        left = held.access.remaining()
        if held.access is not handed and (left is None or left > FRESH_ENOUGH):
            return self._hand_out(held)  # the sign-in's own token, still good for a while
        try:
            return self._hand_out(self._refresh(held.access))
        except IssuerUnreachableError as exc:
            # The provider's refresh is a credential failure to the toolkit (retried with
            # backoff while the current token lasts); the message says what went wrong.
            raise CredentialProviderError(str(exc)) from None

    def _hand_out(self, held: _Held) -> Token:
        with self._lock:
            self._handed_out = held.access
        return held.access

    def _sign_in_here(self) -> _Held:
        with self._lock:
            pending = self._pending
        if pending is None or pending.done:
            pending = self.start()
        self._prompt(pending.prompt)
        pending.wait()
        with self._lock:
            held = self._held
        if held is None:  # pragma: no cover - wait() raises when the sign-in failed
            raise SignInError("The sign-in ended without tokens.")
        return held

    def _resume(self) -> _Held | None:
        """A sign-in from the refresh token kept with ``persist=``, if there is one that still works."""
        if self._store is None:
            return None
        stored = self._store.load()
        if stored is None:
            return None
        _redaction.remember_secret(stored)
        try:
            response, requested_at = self._refresh_grant(stored)
        except SignedOutError:
            self._store.delete()  # refused: a new sign-in follows, and replaces it
            with self._lock:
                self._signed_out = None
            return None
        held = self._held_from(response, requested_at, previous=None, old_refresh=stored)
        self._keep(held, signed_out=None)
        return held

    def _refresh(self, stale: Token | None) -> _Held:
        """One refresh grant; the rotated refresh token replaces the old one in the same step."""
        with self._lock:
            generation = self._generation
        with self._grant_lock:  # exactly one refresh grant in flight for this sign-in
            with self._lock:
                held, signed_out = self._held, self._signed_out
                if signed_out:
                    raise SignedOutError(signed_out)
                if held is None:
                    raise SignedOutError(self._ended("the sign-in was closed (logged out)"))
                if self._generation != generation or held.access is not stale:
                    return held  # refreshed by someone else while this caller waited
            if held.refresh is None:
                raise SignedOutError(self._end(
                    "the identity provider gave no refresh token (was offline_access granted?), so the "
                    "sign-in ends with its access token"))
            response, requested_at = self._refresh_grant(held.refresh)
            new = self._held_from(response, requested_at, previous=held)
            self._keep(new, signed_out=None)
            self.refreshes += 1
            if new.refresh is not None and new.refresh != held.refresh:
                self.rotations += 1
            return new

    def _refresh_grant(self, refresh_token: Secret) -> tuple[dict[str, Any], float]:
        token_endpoint = self.issuer.endpoint("token_endpoint")
        if token_endpoint is None:
            raise IssuerUnreachableError(f"The identity provider at {self.issuer.url} publishes no token_endpoint.")
        requested_at = time.time()
        status, body = self.issuer.post(token_endpoint, {
            "grant_type": "refresh_token", "refresh_token": refresh_token.reveal(), "client_id": self.client_id,
        }, what="the refresh grant")
        if status == 200:
            return body, requested_at
        error = str(body.get("error", ""))
        if error == "invalid_grant":
            raise SignedOutError(self._end("it refused the refresh token (the sign-in was revoked, expired, "
                                           "or you signed out there)"))
        raise CredentialProviderError(
            f"The identity provider at {self.issuer.url} refused to refresh the sign-in "
            f"({_redaction.scrub_text(error)[:100] or f'HTTP {status}'}). Retrying while the current token lasts.")

    # -------------------------------------------------------------- state
    def _held_from(self, response: dict[str, Any], requested_at: float, *, previous: _Held | None,
                   old_refresh: Secret | None = None) -> _Held:
        """The token response as what a sign-in holds; the ID token's signature checked."""
        value = clean_token(response.get("access_token"), self)
        access = Token(Secret(value), expiry_from_response(value, response.get("expires_in"), requested_at))
        refresh_value = response.get("refresh_token")
        # Without a new refresh token the old one stays valid (no rotation this time).
        refresh = Secret(str(refresh_value)) if refresh_value else (
            previous.refresh if previous is not None else old_refresh)
        id_value = response.get("id_token")
        id_token = Secret(str(id_value)) if id_value else (previous.id_token if previous is not None else None)
        _redaction.set_in_force(self._owner, [refresh, id_token])
        sign_in = previous.sign_in if previous is not None else None
        if id_value:
            ends_in = response.get("refresh_expires_in")
            ends_at = (datetime.now(timezone.utc) + timedelta(seconds=float(ends_in))
                       if isinstance(ends_in, (int, float)) and not isinstance(ends_in, bool) and ends_in > 0
                       else None)
            try:
                sign_in = self._who(Secret(str(id_value)), ends_at, previous)
            except PrefectAuthError:
                if previous is None:
                    raise  # a first sign-in whose ID token does not check out is not a sign-in
                # After a refresh the old refresh token is already spent: keep the new
                # tokens, keep the identity we had, and say so.
                logger.warning("the ID token from the refresh at %s did not check out; "
                               "keeping the identity from the sign-in", self.issuer.url)
        return _Held(access=access, refresh=refresh, id_token=id_token, sign_in=sign_in)

    def _who(self, id_token: Secret, ends_at: datetime | None, previous: _Held | None) -> SignIn:
        claims = self.issuer.verify_id_token(id_token, self.client_id)
        user = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        email = claims.get("email")
        auth_time = claims.get("auth_time") or claims["iat"]  # iat is required by verify_id_token
        signed_in_at = (previous.sign_in.signed_in_at if previous is not None and previous.sign_in is not None
                        else datetime.fromtimestamp(float(auth_time), tz=timezone.utc))
        if ends_at is None and previous is not None and previous.sign_in is not None:
            ends_at = previous.sign_in.ends_at
        return SignIn(user=user, email=str(email) if email else None, issuer=self.issuer.url,
                      signed_in_at=signed_in_at, ends_at=ends_at)

    def _keep(self, held: _Held, *, signed_out: str | None) -> None:
        with self._lock:
            self._held = held
            self._signed_out = signed_out
            self._generation += 1
            self._pending = None
        if self._store is not None and held.refresh is not None:
            self._store.save(held.refresh)

    def _ended(self, why: str) -> str:
        return (f"Signed out: {why}. Sign in again: %prefect_login --sso {self.issuer.url} "
                f"--client-id {self.client_id}, or prefect_nbauth.login(…, sso=DeviceSignIn(…)).")

    def _end(self, why: str) -> str:
        """The identity provider ended the sign-in: drop everything, remember why (one message)."""
        message = (f"Signed out by the identity provider at {self.issuer.url}: {why}. Sign in again: "
                   f"%prefect_login --sso {self.issuer.url} --client-id {self.client_id}, or "
                   "prefect_nbauth.login(…, sso=DeviceSignIn(…)).")
        with self._lock:
            first = self._signed_out is None
            self._held = None
            self._signed_out = message
            self._generation += 1
        _redaction.set_in_force(self._owner, ())
        if self._store is not None:
            self._store.delete()
        if first:
            logger.warning("%s", message)
        return message

    # ----------------------------------------------------------------- close
    def close(self) -> str | None:
        """``logout()``: revoke the refresh token at the provider (RFC 7009) where it can, forget all.

        Returns what happened, for ``status()``.
        """
        self.cancel()
        with self._grant_lock:
            with self._lock:
                held, self._held = self._held, None
                self._handed_out = None
                self._generation += 1
            if self._store is not None:
                self._store.delete()
            if held is None or held.refresh is None:
                _redaction.set_in_force(self._owner, ())
                return None
            note = self._revoke(held.refresh)
        _redaction.set_in_force(self._owner, ())  # still scrubbed a while, as recent secrets
        return note

    def _revoke(self, refresh: Secret) -> str:
        try:
            endpoint = self.issuer.endpoint("revocation_endpoint")
            if endpoint is None:
                self.revoked_at_close = False
                return (f"The identity provider at {self.issuer.url} offers no token revocation: the refresh "
                        "token was dropped here but stays valid there until it expires.")
            status, body = self.issuer.post(endpoint, {
                "token": refresh.reveal(), "token_type_hint": "refresh_token", "client_id": self.client_id,
            }, what="token revocation")
        except IssuerUnreachableError as exc:
            self.revoked_at_close = False
            return f"Could not revoke the refresh token ({exc}); it stays valid there until it expires."
        if status == 200:
            self.revoked_at_close = True
            return (f"Revoked the refresh token at {self.issuer.url} (RFC 7009): this sign-in has ended "
                    "there too.")
        self.revoked_at_close = False
        error = _redaction.scrub_text(str(body.get("error") or f"HTTP {status}"))[:100]
        return (f"The identity provider at {self.issuer.url} refused to revoke the refresh token ({error}); "
                "it stays valid there until it expires.")


def _print_prompt(prompt: DevicePrompt) -> None:
    print(prompt.text(), file=sys.stdout, flush=True)
