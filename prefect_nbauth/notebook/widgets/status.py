"""AuthStatusWidget: what Prefect in this kernel sends, kept up to date by itself.

It changes when the credential changes anywhere in the kernel (``login()`` in
another cell, the login widget, ``%prefect_logout``, a background rotation).
Two signals, both handled on one shared watcher thread, never on the kernel's
main thread:

* ``prefect_nbauth.session`` notifications (``subscribe``), immediate, once the core sends them;
* a check, once a second, of which settings object Prefect uses: ``login()``,
  ``logout()`` and every rotation install a new one, so this sees every change
  even without notifications (and also a ``refresh_global_settings_context()``).

The same tick updates the expiry countdown, which is its own small HTML widget:
a tick sends a message only when the text it shows changes.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

import ipywidgets as widgets

from ...session import AuthMode, AuthStatus, logout, refresh, status
from .._login_origin import login_origin
from ._base import SafeHTML, TextForm, esc, theme_style
from ._credential_watch import WATCHER as _WATCHER

__all__ = ["AuthStatusWidget", "countdown"]


def countdown(expires_at: datetime | None, now: datetime | None = None) -> str:
    """``"expires in 4m 05s"``, ``"expired 12s ago"``; coarser when far away."""
    if expires_at is None:
        return ""
    now = now or datetime.now(timezone.utc)
    left = int((expires_at - now).total_seconds())

    def span(seconds: int) -> str:
        if seconds < 600:
            return f"{seconds // 60}m {seconds % 60:02d}s"
        if seconds < 86_400:
            return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
        return f"{seconds // 86_400}d {seconds % 86_400 // 3600}h"

    at = expires_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if left <= 0:
        return f"expired {span(-left)} ago ({at})"
    return f"expires in {span(left)} ({at})"




class AuthStatusWidget(TextForm, widgets.VBox):
    """Mode, API URL, identity, sources, server version, expiry, warnings; refresh and log out.

    Args:
        check_server: also ask the server (version, whether it accepts the credential),
            on a background thread, now and after every change.
        watch: update by itself when the credential changes anywhere in this kernel.
        timeout: seconds for each server check.
    """

    def __init__(self, *, check_server: bool = True, watch: bool = True, timeout: float = 3.0) -> None:
        super().__init__()
        self.check_server = check_server
        self.timeout = timeout
        self.status: AuthStatus = status(check_server=False)
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # notified when a check or action ends
        self._generation = 0  # bumped at every credential change
        self._checking = False
        self._check_again = False
        self._checked_generation = -1  # generation whose server check is shown
        self._busy = False
        self._message_text = ""
        self._summary = SafeHTML()
        self._countdown = SafeHTML()
        self._message = SafeHTML()
        self._refresh_button = widgets.Button(
            description="Refresh", icon="refresh",
            tooltip="Refresh the credential now (rotating tokens) and check it against the server")
        self._logout_button = widgets.Button(
            description="Log out", icon="sign-out",
            tooltip="Go back to the settings in force before the first login")
        self._refresh_button.on_click(lambda _: self._run_action(self._do_refresh))
        self._logout_button.on_click(lambda _: self._run_action(self._do_logout))
        self._logout_button.add_class("pnb-logout-button")
        self._refresh_button.add_class("pnb-refresh-button")
        self._style = theme_style(_STATUS_CSS)
        self.children = [self._style, self._summary, self._countdown,
                         widgets.HBox([self._refresh_button, self._logout_button]), self._message]
        self.add_class("prefect-nbauth-status")
        self.add_class("pnb-w")
        self._render()
        if check_server:
            self._check_server_async()
        if watch:
            _WATCHER.add(self)

    # ------------------------------------------------------------------ public

    def update(self) -> AuthStatus:
        """Re-read the status now (and check the server in the background)."""
        self._state_changed()
        return self.status

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no server check or button action runs (for scripts and tests)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._checking or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def message(self) -> str:
        """The last message of a button action (plain text)."""
        return self._message_text

    def close(self) -> None:
        _WATCHER.remove(self)
        if "_message" in self.__dict__:  # not when __init__ failed half-way (Widget.__del__)
            for child in [self._style, self._summary, self._countdown, self._message,
                          self._refresh_button, self._logout_button, *self.children]:
                child.close()
        super().close()

    # --------------------------------------------------------------- internals

    def _state_changed(self) -> None:
        with self._lock:
            self._generation += 1
            self.status = status(check_server=False)
        self._render()
        if self.check_server:
            self._check_server_async()

    def _tick(self) -> None:
        text = countdown(self.status.expires_at)
        value = f'<div class="pnb-expiry pnb-w">{esc(text)}</div>' if text else ""
        if self._countdown.value != value:
            self._countdown.value = value

    def _check_server_async(self) -> None:
        with self._lock:
            if self._checking:
                self._check_again = True
                return
            self._checking = True
        self._render()
        threading.Thread(target=self._check_server_loop, name="prefect-nbauth-status-check",
                         daemon=True).start()

    def _check_server_loop(self) -> None:
        while True:
            with self._lock:
                generation = self._generation
                self._check_again = False
            try:
                checked: AuthStatus | None = status(check_server=True, timeout=self.timeout)
            except Exception:  # noqa: BLE001 - status() reports problems as warnings
                checked = None
            with self._lock:
                if checked is not None and generation == self._generation:
                    self.status = checked
                    self._checked_generation = generation
                again = self._check_again or generation != self._generation
                if not again:
                    self._checking = False
                    self._idle.notify_all()
            self._render()
            if not again:
                return

    def _run_action(self, action: Callable[[], str]) -> None:
        with self._lock:
            if self._busy:
                return
            self._busy = True
        self._refresh_button.disabled = self._logout_button.disabled = True
        self._set_message("Working…", "info")

        def run() -> None:
            try:
                text, kind = action(), "ok"
            except Exception as exc:  # noqa: BLE001 - shown in the widget
                text, kind = f"{type(exc).__name__}: {exc}", "error"
            self._set_message(text, kind)
            with self._lock:
                self._busy = False
            self._state_changed()  # re-enables the buttons that apply
            with self._lock:
                self._idle.notify_all()

        threading.Thread(target=run, name="prefect-nbauth-status-action", daemon=True).start()

    def _do_refresh(self) -> str:
        if self.status.logged_in:
            refresh()
            return "Refreshed: the credential was renewed where it can be, and the server accepts it."
        return "Checked again. (Nothing to refresh: this credential was not set with login().)"

    def _do_logout(self) -> str:
        if not self.status.logged_in:
            return "Not logged in with login(); nothing changed."
        logout()
        return "Logged out: Prefect uses the settings in force before the first login again."

    def _set_message(self, text: str, kind: str) -> None:
        self._message_text = text
        self._message.value = f'<div class="pnb-w"><div class="pnb-message pnb-{kind}">{esc(text)}</div></div>'

    def _render(self) -> None:
        with self._lock:
            st = self.status
            checking = self._checking
            checked = self._checked_generation == self._generation
            value = _status_html(st, checking=checking, checked=checked, check_server=self.check_server)
            if self._summary.value != value:
                self._summary.value = value
            busy = self._busy
        # "Log out" only does something after a login() in this kernel.
        logout_disabled = busy or not st.logged_in
        if self._logout_button.disabled != logout_disabled:
            self._logout_button.disabled = logout_disabled
        self._logout_button.tooltip = (
            "Go back to the settings in force before the first login" if st.logged_in
            else "Nobody is logged in with login() in this kernel: nothing to log out")
        if self._refresh_button.disabled != busy:
            self._refresh_button.disabled = busy
        self._tick()

    def text_form(self) -> str:
        text = str(self.status)
        expiry = countdown(self.status.expires_at)
        if expiry:
            text += f"\n  {expiry}"
        if self._message_text:
            text += f"\n  {self._message_text}"
        return text


def _server_text(st: AuthStatus, *, checking: bool, checked: bool, check_server: bool) -> str:
    if st.server_version:
        return f"Prefect {st.server_version}" + (f", auth {st.server_auth}" if st.server_auth else "")
    if checking:
        return "checking…"
    if not (check_server and checked):
        return "not checked"
    # It answered but would not say its version: say why, not "no answer".
    if st.server_auth == "BASIC" and st.mode is AuthMode.NONE:
        return "answered: it requires an auth string (log in)"
    if any(w.startswith("The server rejects") for w in st.warnings):
        return "answered: it refuses the credential in force (see below)"
    return "no answer (see below)"


def _how_logged_in() -> str:
    origin = login_origin()
    return f"via {origin}" if origin else "logged in from this kernel"


def _status_html(st: AuthStatus, *, checking: bool, checked: bool, check_server: bool) -> str:
    rows: list[tuple[str, str, str]] = []  # (label, value, class)
    rows.append(("API URL", st.api_url or "none: Prefect would start a temporary local server", "pnb-url"))
    rows.append(("Credential", st.credential, "pnb-credential"))
    rows.append(("Identity", st.identity or "unknown", "pnb-identity"))
    if st.workspace:
        rows.append(("Workspace", st.workspace, "pnb-workspace"))
    rows.append(("Server", _server_text(st, checking=checking, checked=checked, check_server=check_server),
                 "pnb-server"))
    body = "".join(
        f'<tr class="{cls}"><th>{esc(label)}</th><td>{esc(value)}</td></tr>' for label, value, cls in rows)
    origin = login_origin()  # "login()" in the core's words is the form or the magic, when it was
    sources = "".join(f"<li>{esc(name)} from {esc(origin if src == 'login()' and origin else src)}</li>"
                      for name, src in st.sources.items())
    warnings = "".join(f"<li>{esc(w)}</li>" for w in st.warnings)
    return (
        '<div class="pnb-status pnb-w">'
        f'<div><b>Prefect auth</b> <span class="pnb-mode pnb-badge">{esc(st.mode.value)}</span>'
        + (f" {esc(_how_logged_in())}" if st.logged_in else "") + "</div>"
        f'<table class="pnb-table">{body}</table>'
        + (f'<details class="pnb-sources"><summary>Where each value came from</summary><ul>{sources}</ul></details>'
           if sources else "")
        + (f'<div class="pnb-note pnb-warn"><b>Warning</b><ul class="pnb-warnings">{warnings}</ul></div>'
           if warnings else "")
        + "</div>"
    )


# Layout only (colours are in _base.THEME_CSS): label column, URLs may wrap anywhere.
_STATUS_CSS = (
    ".pnb-status .pnb-table{border-collapse:collapse;max-width:100%}"
    ".pnb-status .pnb-table th{text-align:left;padding:1px 1em 1px 0;vertical-align:top;white-space:nowrap;"
    "font-weight:600}"
    ".pnb-status .pnb-table td{padding:1px 0;overflow-wrap:anywhere}"
    ".pnb-status .pnb-warnings{margin:2px 0;padding-left:1.2em}"
)
