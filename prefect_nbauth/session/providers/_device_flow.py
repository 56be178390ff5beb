"""The device authorization grant (RFC 8628) up to the tokens: a link, a code, polling.

:func:`authorize` asks the provider's device authorization endpoint for a code and
returns a :class:`PendingSignIn`: what the person needs (:class:`DevicePrompt`: the link,
the code, until when) and a daemon thread that polls the token endpoint until the
person approves, declines, the code expires or the sign-in is cancelled. Nothing here
blocks the caller: a notebook shows the prompt and goes on; :meth:`PendingSignIn.wait`
blocks for those who want to (a script).

Polling follows RFC 8628 §3.4-3.5: every ``interval`` seconds (5 when the provider
says nothing, as oidc-provider does), ``authorization_pending`` goes on, ``slow_down``
adds 5 seconds for good, ``access_denied`` and ``expired_token`` end it with
:class:`~prefect_nbauth.SignInDeniedError` and
:class:`~prefect_nbauth.SignInExpiredError`. A provider that cannot be reached for a
while is polled again until the code expires.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ..._exceptions import (
    DeviceFlowUnsupportedError,
    IssuerUnreachableError,
    PrefectAuthError,
    SignInCancelledError,
    SignInDeniedError,
    SignInError,
    SignInExpiredError,
)
from ..._redaction import remember_secret, scrub_text
from ..._secrets import Secret
from ._oidc import Issuer

__all__ = ["DEVICE_GRANT", "DevicePrompt", "PendingSignIn", "authorize"]

logger = logging.getLogger("prefect_nbauth")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.2: the polling interval when the provider gives none.
DEFAULT_INTERVAL = 5.0
#: RFC 8628 §3.5: what ``slow_down`` adds to the interval, for good.
SLOW_DOWN_STEP = 5.0


@dataclass(frozen=True)
class DevicePrompt:
    """What the person needs to approve the sign-in on any device: a link and a code."""

    verification_uri: str
    user_code: str
    expires_at: datetime
    verification_uri_complete: str | None = None

    @property
    def link(self) -> str:
        """The link to open: with the code already filled in when the provider offers that."""
        return self.verification_uri_complete or self.verification_uri

    def text(self) -> str:
        """The prompt as one paragraph of plain text (what a script prints)."""
        minutes = max(1, round((self.expires_at - datetime.now(timezone.utc)).total_seconds() / 60))
        if self.verification_uri_complete:
            how = f"open {self.verification_uri_complete} and check that it shows the code {self.user_code}"
        else:
            how = f"open {self.verification_uri} and enter the code {self.user_code}"
        return f"To sign in, {how} (within {minutes} min). Waiting for you to approve…"


class PendingSignIn:
    """A device sign-in waiting for the person; polled on a daemon thread until it ends.

    ``on_tokens(response, requested_at)`` runs on that thread with the token response
    when the person approved; what it raises ends the sign-in with that error.
    """

    def __init__(self, issuer: Issuer, token_endpoint: str, client_id: str, device_code: Secret,
                 prompt: DevicePrompt, interval: float,
                 on_tokens: Callable[[dict[str, Any], float], None]) -> None:
        self.prompt = prompt
        self.interval = interval
        self._issuer = issuer
        self._token_endpoint = token_endpoint
        self._client_id = client_id
        self._device_code = device_code
        self._on_tokens = on_tokens
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._callbacks: list[Callable[[PendingSignIn], None]] = []
        self._lock = threading.Lock()
        self.error: PrefectAuthError | None = None
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="prefect-nbauth-device-sign-in", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "waiting" if not self.done else ("failed" if self.error else "signed in")
        return f"<PendingSignIn {state}: {self.prompt.link} code {self.prompt.user_code}>"

    # ----------------------------------------------------------------- public
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the sign-in ends; raise its error if it failed."""
        if not self._done.wait(timeout):
            raise TimeoutError("the person has not approved the sign-in yet")
        if self.error is not None:
            raise self.error

    def cancel(self, why: str = "The sign-in was cancelled.") -> None:
        """Stop polling (a Cancel button, a newer sign-in); a no-op once done."""
        with self._lock:
            if self._done.is_set():
                return
            self._cancel_reason = why
        self._cancelled.set()

    def add_done_callback(self, callback: Callable[[PendingSignIn], None]) -> None:
        """Call ``callback(self)`` when the sign-in ends (now, if it already has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    # --------------------------------------------------------------- polling
    def _run(self) -> None:
        try:
            self._poll()
        except PrefectAuthError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - ends the sign-in, named, never a traceback
            self.error = SignInError(f"The sign-in failed: {type(exc).__name__}: {scrub_text(str(exc))[:200]}")
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001
                logger.warning("a sign-in callback failed", exc_info=True)

    def _poll(self) -> None:
        last_error = ""
        while True:
            if self._cancelled.wait(self.interval):
                raise SignInCancelledError(getattr(self, "_cancel_reason", "The sign-in was cancelled."))
            if datetime.now(timezone.utc) >= self.prompt.expires_at:
                raise SignInExpiredError(
                    f"The sign-in code {self.prompt.user_code} expired before it was approved"
                    + (f" (the last poll failed: {last_error})" if last_error else "")
                    + ". Start the sign-in again.")
            requested_at = time.time()
            self.polls += 1
            try:
                status, body = self._issuer.post(self._token_endpoint, {
                    "grant_type": DEVICE_GRANT, "device_code": self._device_code.reveal(),
                    "client_id": self._client_id}, what="the token endpoint")
            except IssuerUnreachableError as exc:
                last_error = str(exc)  # the provider may come back before the code expires
                continue
            if status == 200:
                if self._cancelled.is_set():
                    raise SignInCancelledError(getattr(self, "_cancel_reason", "The sign-in was cancelled."))
                self._on_tokens(body, requested_at)
                return
            error = str(body.get("error", ""))
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                self.interval += SLOW_DOWN_STEP
                continue
            if error == "access_denied":
                raise SignInDeniedError(
                    f"The sign-in was declined at {self._issuer.url} (the person cancelled or did not "
                    "allow access). Start it again to retry.")
            if error == "expired_token":
                raise SignInExpiredError(
                    f"The sign-in code {self.prompt.user_code} expired before it was approved. "
                    "Start the sign-in again.")
            raise SignInError(
                f"The identity provider at {self._issuer.url} ended the sign-in: "
                f"{_oauth_error(body, status)}.")


def authorize(issuer: Issuer, client_id: str, scopes: list[str],
              on_tokens: Callable[[dict[str, Any], float], None]) -> PendingSignIn:
    """Ask for a device code (RFC 8628 §3.1-3.2): the pending sign-in, already polling."""
    metadata = issuer.metadata()
    device_endpoint = issuer.endpoint("device_authorization_endpoint")
    grants = metadata.get("grant_types_supported")
    if device_endpoint is None or (isinstance(grants, list) and DEVICE_GRANT not in grants):
        raise DeviceFlowUnsupportedError(
            f"The identity provider at {issuer.url} does not offer the device sign-in (RFC 8628): "
            "its discovery document has no device_authorization_endpoint"
            + ("" if device_endpoint is None else " and does not list the device_code grant")
            + ". Ask its administrators to enable the device authorization grant for a public "
              "client, or sign in another way.")
    token_endpoint = issuer.endpoint("token_endpoint")
    if token_endpoint is None:
        raise IssuerUnreachableError(f"The identity provider at {issuer.url} publishes no token_endpoint.")
    status, body = issuer.post(device_endpoint, {"client_id": client_id, "scope": " ".join(scopes)},
                               what="the device authorization endpoint")
    if status != 200:
        error = str(body.get("error", ""))
        if error in ("invalid_client", "unauthorized_client", "unsupported_grant_type"):
            raise DeviceFlowUnsupportedError(
                f"The identity provider at {issuer.url} does not let client {client_id!r} use the "
                f"device sign-in ({_oauth_error(body, status)}). Check the client id, and that the "
                "client is public (no secret) with the device_code grant.")
        raise SignInError(f"The identity provider at {issuer.url} refused to start the sign-in: "
                          f"{_oauth_error(body, status)}. Check the scopes ({' '.join(scopes)}).")
    try:
        device_code = Secret(str(body["device_code"]))
        prompt = DevicePrompt(
            verification_uri=_url(body.get("verification_uri") or body.get("verification_url")),
            user_code=str(body["user_code"]),
            expires_at=datetime.now(timezone.utc) + timedelta(seconds=float(body.get("expires_in") or 600)),
            verification_uri_complete=(_url(body["verification_uri_complete"])
                                       if body.get("verification_uri_complete") else None))
        interval = float(body.get("interval") or DEFAULT_INTERVAL)
    except (KeyError, TypeError, ValueError):
        raise IssuerUnreachableError(
            f"The identity provider at {issuer.url} answered the device authorization request "
            "without a device code, user code and link (RFC 8628 §3.2).") from None
    remember_secret(device_code)  # it can be exchanged for tokens once approved: never shown
    return PendingSignIn(issuer, token_endpoint, client_id, device_code, prompt, max(0.0, interval), on_tokens)


def _url(value: Any) -> str:
    text = str(value)
    if not text.startswith(("https://", "http://")):
        raise ValueError("not an http(s) link")
    return text


def _oauth_error(body: dict[str, Any], status: int) -> str:
    """``error: description`` of an OAuth2 error answer, scrubbed (the description is theirs)."""
    error = scrub_text(str(body.get("error") or f"HTTP {status}"))[:100]
    description = body.get("error_description")
    return error + (f": {scrub_text(str(description))[:200]}" if description else "")
