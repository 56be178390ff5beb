"""DeviceSignInWidget: "Sign in with SSO" in a notebook, the device sign-in (RFC 8628).

The widget asks the identity provider for a code on a worker thread, shows the link
(clickable, opens a new tab; the code is filled in) and the code (large, to compare
with what the provider's page shows), and a Cancel button. The cell returns at once:
the kernel stays free while the person approves, on this computer or on a phone.
When they have, the login happens on that worker thread (``login(api_url,
sso=provider)``), and the widget says who is signed in.

A second sign-in cancels the one still waiting (one sign-in per kernel at a time:
:func:`take_turn`, shared with the login form's "Sign in with SSO" choice, which shows
the same link and code, :func:`prompt_html`, inside the form).
Nothing secret is ever in the widget's state: the link and the user code are what the
person must read; the device code, the tokens and the person's password never reach
the kernel's widgets (the password is typed at the provider, not here).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import ipywidgets as widgets

from ..._exceptions import PrefectAuthError, SignInCancelledError
from ...session import AuthStatus, DevicePrompt, DeviceSignIn, PendingSignIn, login
from ._base import SafeHTML, TextForm, esc, theme_style

__all__ = ["REPLACED", "SSO_CSS", "DeviceSignInWidget", "SignInTurn", "prompt_html", "take_turn"]

#: Why a sign-in still waiting ended when another one started in the kernel.
REPLACED = "A newer sign-in in this kernel replaced this one."


class SignInTurn:
    """One device sign-in waiting for the person, whatever shows it; cancellable before its code exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: PendingSignIn | None = None
        self._why: str | None = None

    def hold(self, pending: PendingSignIn) -> None:
        """The sign-in's code exists now: cancelled at once if this turn already was."""
        with self._lock:
            self._pending, why = pending, self._why
        if why is not None:
            pending.cancel(why)

    def cancel(self, why: str = "Cancelled: nothing changed.") -> None:
        """Stop waiting for the person (a no-op once the sign-in ended)."""
        with self._lock:
            self._why = self._why or why
            pending = self._pending
        if pending is not None:
            pending.cancel(why)


_lock = threading.Lock()
_waiting: weakref.ReferenceType[SignInTurn] | None = None  # the sign-in still waiting, if any


def take_turn(turn: SignInTurn) -> None:
    """Make ``turn`` this kernel's one waiting sign-in; the one before it is cancelled (:data:`REPLACED`)."""
    global _waiting
    with _lock:
        previous = _waiting() if _waiting is not None else None
        _waiting = weakref.ref(turn)
    if previous is not None and previous is not turn:
        previous.cancel(REPLACED)


class DeviceSignInWidget(TextForm, widgets.VBox):
    """Sign in as yourself at ``issuer`` and log this kernel in to ``api_url`` (through an SSO gateway).

    Args:
        api_url: the Prefect API URL behind the gateway.
        issuer: the identity provider's URL.
        client_id: the public client registered there for the device sign-in.
        scopes, persist, verify: passed to :class:`~prefect_nbauth.DeviceSignIn`.
        provider: a :class:`~prefect_nbauth.DeviceSignIn` to use instead of building one.
        timeout: seconds per request (identity provider and Prefect).
    """

    def __init__(self, api_url: str, issuer: str | None = None, client_id: str | None = None, *,
                 provider: DeviceSignIn | None = None, timeout: float = 10.0, start: bool = True,
                 **provider_options: Any) -> None:
        super().__init__()
        if provider is None:
            if issuer is None or client_id is None:
                raise TypeError("give the issuer and client_id, or a DeviceSignIn as provider=")
            provider = DeviceSignIn(issuer, client_id, timeout=timeout, **provider_options)
        self.provider = provider
        self.api_url = api_url
        self.timeout = timeout
        self.status: AuthStatus | None = None
        self.error: Exception | None = None
        self._pending: PendingSignIn | None = None
        self._turn = SignInTurn()
        self._state = "starting"  # starting, waiting, signing-in, signed-in, failed, cancelled
        self._text = ""
        self._done = threading.Event()
        self._prompt = SafeHTML()
        self._message = SafeHTML()
        self._cancel = widgets.Button(description="Cancel", icon="times", tooltip="Stop waiting for this sign-in")
        self._again = widgets.Button(description="Start again", icon="refresh", tooltip="Ask for a new code")
        self._cancel.add_class("pnb-sso-cancel")
        self._again.add_class("pnb-sso-again")
        self._cancel.on_click(lambda _: self.cancel())
        self._again.on_click(lambda _: self.start())
        self.children = [theme_style(SSO_CSS), self._prompt, self._message,
                         widgets.HBox([self._cancel, self._again])]
        self.add_class("prefect-nbauth-sso")
        self.add_class("pnb-w")
        self._render()
        if start:
            self.start()

    # ------------------------------------------------------------------ public
    @property
    def state(self) -> str:
        return self._state

    @property
    def message(self) -> str:
        return self._text

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sign-in ends (signed in, failed or cancelled); for scripts and tests."""
        return self._done.wait(timeout)

    def start(self) -> None:
        """Ask for a new code (cancelling any sign-in still waiting in this kernel)."""
        self._turn = turn = SignInTurn()
        self._pending = None
        take_turn(turn)
        self._done.clear()
        self.error = None
        self._set("starting", "Asking the identity provider for a code…")
        threading.Thread(target=self._begin, args=(turn,), name="prefect-nbauth-sso-start", daemon=True).start()

    def cancel(self, why: str = "Cancelled: nothing changed.") -> None:
        """Stop waiting for the person (what the Cancel button does)."""
        if self._state not in ("signed-in", "cancelled", "failed"):
            self._turn.cancel(why)

    def close(self) -> None:
        self.cancel()
        super().close()

    # --------------------------------------------------------------- internals
    def _begin(self, turn: SignInTurn) -> None:
        try:
            pending = self.provider.start()
        except PrefectAuthError as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}", exc)
            return
        self._pending = pending
        self._set("waiting", "Waiting for you to approve… (the kernel stays free: run other cells meanwhile)")
        turn.hold(pending)  # cancelled while it asked for the code: ends now
        pending.add_done_callback(self._approved_or_not)

    def _approved_or_not(self, pending: PendingSignIn) -> None:
        if pending.error is not None:
            cancelled = isinstance(pending.error, SignInCancelledError)
            self._finish("cancelled" if cancelled else "failed", str(pending.error), pending.error)
            return
        self._set("signing-in", "Approved. Logging this kernel in…")
        try:
            self.status = login(self.api_url, sso=self.provider, timeout=self.timeout)
        except PrefectAuthError as exc:
            self._finish("failed", f"Login failed ({type(exc).__name__}): {exc}", exc)
            return
        self._finish("signed-in", f"Signed in as {self.status.identity or 'unknown'}: {self.status.credential}")

    def _finish(self, state: str, text: str, error: Exception | None = None) -> None:
        self.error = error
        self._set(state, text)
        self._done.set()

    def _set(self, state: str, text: str) -> None:
        self._text = text
        self._render(state)
        self._state = state  # after the views: whoever waits for a state finds it drawn

    def _render(self, state: str | None = None) -> None:
        state = state or self._state
        pending = self._pending
        waiting = state == "waiting" and pending is not None
        self._prompt.value = prompt_html(pending.prompt) if waiting and pending is not None else ""
        kind = {"signed-in": "ok", "failed": "error"}.get(state, "info")
        self._message.value = (f'<div class="pnb-w"><div class="pnb-message pnb-{kind} pnb-sso-state" '
                               f'data-state="{esc(state)}">{esc(self._text)}</div></div>')
        self._cancel.disabled = state not in ("starting", "waiting")
        self._again.layout.display = "" if state in ("failed", "cancelled") else "none"

    def text_form(self) -> str:
        pending = self._pending
        lines = ["Sign in with SSO"]
        if self._state == "waiting" and pending is not None:
            lines.append(pending.prompt.text())
        lines.append(self._text)
        return "\n".join(lines)


def prompt_html(prompt: DevicePrompt) -> str:
    """The link (clickable, a new tab) and the code to compare, as the widget and the form show them."""
    link = esc(prompt.link)
    return (
        '<div class="pnb-sso pnb-w">'
        f'<div>Open <a class="pnb-sso-link" href="{link}" target="_blank" rel="noopener noreferrer">'
        f"{link}</a> on any device, sign in and approve.</div>"
        f'<div>Check that it shows this code: <code class="pnb-sso-code">{esc(prompt.user_code)}</code></div>'
        f'<div class="pnb-muted">The code expires at {prompt.expires_at:%H:%M:%S} UTC.</div>'
        "</div>"
    )


SSO_CSS = (
    ".pnb-sso .pnb-sso-code{font-size:1.6em;letter-spacing:.12em;font-weight:600;padding:0 .3em}"
    ".pnb-sso .pnb-sso-link{overflow-wrap:anywhere}"
    ".pnb-sso div{margin:2px 0}"
    # In the login form: ipywidgets gives an HTML widget an input row's height per line.
    ".prefect-nbauth-login .pnb-sso-note .widget-html-content{line-height:1.4}"
)
