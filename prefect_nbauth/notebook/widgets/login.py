"""LoginWidget: log this kernel in to Prefect from a form, without leaking the secret.

The form shows a row of choices (:class:`~.choice_bar.ChoiceBar`) above one panel per
choice. The choices are data: one :class:`~._login_choices.Choice` each in
:data:`~._login_choices.CHOICES` (a label and a builder of its panel); adding a way
to log in is adding one entry there (see :mod:`._login_choices`). Today: **Self-hosted
server** (auth string), **Prefect Cloud** (API key, workspace chooser), **Gateway
headers** (names and values), **Sign in with SSO** (the device sign-in at an identity
provider, its link and code shown in the form; first where an administrator set
``PREFECT_NBAUTH_SSO_ISSUER``), and under JupyterHub **Use my Hub sign-in** (:mod:`.hub`).

Where a secret could leak from a notebook form, and what this one does:

* **widget state** (saved into the ``.ipynb`` when the front end saves widget
  state, and re-sent to every connected front end): the secret boxes are
  :class:`~prefect_nbauth.notebook.widgets.secret_input.SecretInput`, which have no value
  trait. The page keeps the typed text in its ``<input>`` only and sends it once,
  as a custom message (Enter, or the Log in button asking for it), clearing the
  box as it sends. So a save while the kernel is busy, or after it restarted,
  cannot contain the secret. The kernel keeps what arrives in a private
  :class:`Secret`.
* **the message itself**: the page seals the value with this form's public key
  (:mod:`._sealing`: RSA-OAEP SHA-256 around AES-256-GCM, WebCrypto); only this
  kernel's private key opens it, and it is dropped when the form closes. A page that
  is not a secure context (plain http from another host) cannot seal: its boxes are
  switched off and the form says why (``docs/login-form.md``).
* **free-text boxes** (the API URL, header names) are synced text, so each is a
  :class:`~._free_text.GuardedText`: a value that is plainly not what the box is for
  (a URL with a password, a token pasted as a header name) is emptied the moment the
  kernel sees it, and no message repeats it (a URL at most as ``scheme://host``, a
  header by its row number).
* **outputs**: every message shows masked values only; an error leads with one
  sentence, and its details (scrubbed of the secrets just tried and of the URL
  box) sit in a collapsed ``<details>``.
* **the kernel**: validation (network) runs on a worker thread; the kernel
  stays free to run cells. The secrets are dropped after the attempt.
* **a failed login** changes nothing (``login()`` validates before it switches),
  so the previous login keeps working and the form stays as it was.
* **a login or logout elsewhere** (``login()``, ``%prefect_login --auth-string-env``,
  the status widget) replaces whatever the form said: no stale error stays red.

Colours come from JupyterLab's theme variables (``login.css``, ``choice_bar.css``), so
the form reads in the light and dark themes and in Notebook 7.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets

from ..._exceptions import ConfigurationError
from ..._inputs import is_cloud_url
from ...session import AuthStatus, api_url_in_force, cloud_api_url, subscribe
from .._login_origin import FORM, via
from ._base import SafeHTML, TextForm, esc
from ._free_text import Check, GuardedText, url_refusal
from ._login_choices import Attempt, Choice, Panel
from ._login_messages import lead, nothing_changed, safe_url, scrub
from ._sealing import SealingKey
from .choice_bar import ChoiceBar
from .hub import login_choices
from .secret_input import INSECURE_PAGE, SecretInput

__all__ = ["LoginWidget", "SecretInput", "safe_url"]

#: How long Log in waits for the page to send what its secret boxes hold.
#: Only when a page said it can answer; a page that went away without saying so
#: costs this much, then the form goes on with what it already received.
REQUEST_TIMEOUT = 5.0


class LoginWidget(TextForm, widgets.VBox):
    """A login form: one panel per way to log in (self-hosted auth string, Prefect Cloud
    API key with a workspace chooser, gateway headers, SSO device sign-in, and any added
    to ``CHOICES``).

    Args:
        api_url: the API URL to fill in (default: the one in force).
        mode: the choice shown first, by key (``"auth-string"``, ``"api-key"``,
            ``"headers"``, ``"sso"``, ``"hub"``; default: the first one meant for the URL,
            else the first).
        workspace: the Cloud workspace to use without asking (``"account/workspace"``).
        persist: tick "save to my Prefect profile" (``login(persist=True)``).
        timeout: seconds for each request to the server.
        choices: the choices offered (default: those available here, :func:`.hub.login_choices`).

    Without a browser, give a secret box a value as the page's message would, e.g.
    ``form.panels["auth-string"].parts["secret"].receive("user:pw", enter=True)`` logs
    in as Enter would.
    """

    def __init__(self, *, api_url: str | None = None, mode: str | None = None,
                 workspace: str | None = None, persist: bool = False, timeout: float = 10.0,
                 choices: Iterable[Choice] | None = None) -> None:
        offered = login_choices() if choices is None else tuple(choices)
        keys = [c.key for c in offered]
        if not offered or len(set(keys)) != len(keys):
            raise ValueError("choices must be one or more Choice entries with distinct keys.")
        if mode is not None and mode not in keys:
            raise ValueError(f"mode must be one of {', '.join(keys)}, not {mode!r}.")
        super().__init__()
        self.timeout = timeout
        self.workspace = workspace
        self.result: AuthStatus | None = None  # the status after the last successful login
        self.error: Exception | None = None  # the error of the last failed attempt
        self.lock = threading.RLock()  # held while the form is read or changed by a choice's panel
        self._idle = threading.Event()
        self._idle.set()
        self._message_text = ""
        self._pending: dict[SecretInput, int] = {}  # secret boxes asked for their value, by request id
        self._pending_timer: threading.Timer | None = None
        self._sealing_key = SealingKey()  # one key pair per form; its private half stays here

        url = api_url if api_url is not None else (api_url_in_force() or "")
        if mode is None:
            mode = next((c.key for c in offered if c.default_for(url)), keys[0])
        if url and is_cloud_url(url, cloud_api_url()):
            url = ""  # the Cloud panel builds the workspace URL itself

        self._message = SafeHTML()
        self._message.add_class("pnb-login-message")
        self.url_box = self.text_box(url_refusal, value=url, description="API URL",
                                     placeholder="http://127.0.0.1:4200/api",
                                     style={"description_width": "8em"}, layout=widgets.Layout(width="95%"))
        self.url_box.add_class("pnb-url")
        self._persist = widgets.Checkbox(value=persist, description="Save to my Prefect profile", indent=False)
        self._choices = offered
        self.panels: dict[str, Panel] = {c.key: c.build(self) for c in offered}
        self._bar = ChoiceBar(labels=[c.title() for c in offered], description="How to log in")
        self._stack = widgets.Stack(children=[widgets.VBox(p.children, layout=widgets.Layout(width="100%"))
                                              for p in self.panels.values()],
                                    selected_index=0, layout=widgets.Layout(width="100%"))
        self._stack.add_class("pnb-panels")
        # Switched in the page too (a busy kernel does not delay it); the kernel follows the bar.
        self._link = widgets.jslink((self._bar, "index"), (self._stack, "selected_index"))
        self._bar.observe(self._on_choice, "index")
        self._button = widgets.Button(description="Log in", button_style="primary", icon="sign-in")
        self._button.add_class("pnb-login-button")
        self._button.on_click(lambda _: self.submit())
        self.children = [
            SafeHTML("<b>Log in to Prefect</b>"),
            self._bar, self._stack,
            widgets.HBox([self._button, self._persist]),
            self._message,
        ]
        self.add_class("prefect-nbauth-login")
        self.select(mode)
        self._button.description = self._panel().action
        self._unsubscribe = subscribe(_weak_listener(self))

    # ------------------------------------------------------------------ public

    @property
    def mode(self) -> str:
        """The key of the choice shown."""
        return self._choices[self._bar.index].key

    @property
    def message(self) -> str:
        """The message the form shows (plain text, details included)."""
        return self._message_text

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    @property
    def persist(self) -> bool:
        return bool(self._persist.value)

    def select(self, mode: str) -> None:
        """Show the choice ``mode`` (a key), as a click on its label does."""
        self._bar.index = [c.key for c in self._choices].index(mode)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the login attempt in progress ends; True if none is left running."""
        return self._idle.wait(timeout)

    def submit(self) -> None:
        """What the Log in button does: collect the secrets, validate on a worker thread."""
        self._collect_then_submit(skip=None)

    def close(self) -> None:
        if "_sealing_key" in self.__dict__:  # not when __init__ failed half-way (Widget.__del__)
            if "_unsubscribe" in self.__dict__:
                self._unsubscribe()
            with self.lock:
                self._cancel_pending()
            for panel in self.__dict__.get("panels", {}).values():
                panel.close()  # a sign-in still waiting for the person ends with its form
            stack: list[Any] = [*self.children, *(w for p in self.__dict__.get("panels", {}).values()
                                                  for w in p.children)]
            while stack:
                child = stack.pop()
                stack.extend(getattr(child, "children", ()))
                child.close()
            if "_link" in self.__dict__:
                self._link.close()
            self._sealing_key.drop()  # what was sealed for this form can no longer be opened
        super().close()

    # ------------------------------------------- for the choices' panel builders

    def secret_box(self, description: str, placeholder: str, css_class: str) -> SecretInput:
        """A secret box sealed for this form, wired to Enter, Log in and the form's messages."""
        box = SecretInput(description=description, placeholder=placeholder, sealing_key=self._sealing_key,
                          on_value=self._on_secret, on_reply=self._on_reply, on_problem=self._on_problem,
                          layout=widgets.Layout(width="95%"))
        box.add_class(css_class)
        return box

    def text_box(self, check: Check, **kwargs: Any) -> GuardedText:
        """A free-text box whose values pass ``check`` (see :mod:`._free_text`)."""
        return GuardedText(check=check, report=lambda text: self.show(text, "error"), **kwargs)

    def api_url(self) -> str | None:
        """The URL box's value, checked (ConfigurationError); None when empty (the URL in force)."""
        return self.url_box.checked() or None

    def show(self, text: str, kind: str, details: str = "", note: str = "") -> None:
        """Show a message: one lead sentence, a note, and the details collapsed below them."""
        self._message_text = text + (f" {note}" if note else "") + (f"\nDetails: {details}" if details else "")
        html = ""
        if text:
            html = (f'<div class="pnb-{kind}"><span class="pnb-lead">{esc(text)}</span>'
                    + (f' <span class="pnb-note-text">{esc(note)}</span>' if note else "") + "</div>")
        if details:
            html += ('<details class="pnb-details"><summary>Details</summary>'
                     f"<pre>{esc(details)}</pre></details>")
        self._message.value = html

    # --------------------------------------------------------------- internals

    def _panel(self) -> Panel:
        return self.panels[self.mode]

    def _on_choice(self, change: dict[str, Any]) -> None:
        self._stack.selected_index = change["new"]  # the page's link did it already; without a page, here
        if self._idle.is_set():
            self._button.description = self._panel().action

    def _on_secret(self, field: SecretInput, enter: bool) -> None:
        """A secret box received a value from the page; Enter submits the form."""
        if enter and field in self._panel().secret_boxes():
            self._collect_then_submit(skip=field)

    def _on_problem(self, field: SecretInput, text: str) -> None:
        """A page cannot send a secret safely (not a secure context, or it sent one in clear)."""
        if not self.busy:
            self.show(text, "error")

    def _collect_then_submit(self, *, skip: SecretInput | None) -> None:
        """Ask the page for what the boxes of this panel hold, then submit.

        Runs on the kernel's main thread (a comm message), so it cannot wait for
        the answers: they arrive as later messages (:meth:`_on_reply`). When no
        page can answer (no browser, or the view was never shown), it submits now.
        """
        with self.lock:
            if not self._idle.is_set() or self._pending:
                return  # one attempt at a time
            boxes = self._panel().secret_boxes()
            ask = [f for f in boxes if f is not skip and f.views]
            if not ask:
                if any(f.insecure_views and f.secret is None for f in boxes):
                    self.show(INSECURE_PAGE, "error")  # not "type it first": it cannot be sent from here
                    return
                self._submit_now()
                return
            self._pending = {f: f.request() for f in ask}
            timer = threading.Timer(REQUEST_TIMEOUT, self._pending_expired, args=(dict(self._pending),))
            timer.daemon = True
            self._pending_timer = timer
            timer.start()

    def _on_reply(self, field: SecretInput, request_id: int) -> None:
        with self.lock:
            if self._pending.get(field) != request_id:
                return  # an answer to an older request, or from a second view
            del self._pending[field]
            if self._pending:
                return
            self._cancel_pending()
            self._submit_now()

    def _pending_expired(self, pending: dict[SecretInput, int]) -> None:
        with self.lock:
            if self._pending != pending:
                return  # answered in time, or a newer attempt
            self._pending = {}
            self._pending_timer = None
            self._submit_now()

    def _cancel_pending(self) -> None:
        self._pending = {}
        if self._pending_timer is not None:
            self._pending_timer.cancel()
            self._pending_timer = None

    def _submit_now(self) -> None:
        """Read the panel (under the lock) and start the worker thread."""
        with self.lock:
            if not self._idle.is_set():
                return
            try:
                attempt = self._panel().prepare()
            except ConfigurationError as exc:
                self.show(str(exc), "error")
                return
            self._idle.clear()
        self._set_enabled(False)
        self.show("Connecting…", "info")
        threading.Thread(target=self._work, args=(attempt,), name="prefect-nbauth-login", daemon=True).start()

    def _set_enabled(self, enabled: bool) -> None:
        self._button.disabled = not enabled
        self._button.description = self._panel().action if enabled else "Connecting…"

    def _work(self, attempt: Attempt) -> None:
        try:
            with via(FORM):  # the status widget says how this login was made
                status = attempt.run()
            if status is not None:
                self._succeeded(status)
        except Exception as exc:  # noqa: BLE001 - shown in the form
            self._failed(exc, attempt)
        finally:
            attempt.drop()  # drop our references to the secrets
            self._set_enabled(True)
            self._idle.set()

    def _succeeded(self, status: AuthStatus) -> None:
        self.result, self.error = status, None
        who = status.identity or "anonymous"
        text = f"Logged in to {status.api_url} as {who}"
        if status.workspace:
            text += f" (workspace {status.workspace})"
        text += (f". Mode {status.mode.value}, credential {status.credential}. "
                 "Prefect in this kernel uses it now.")
        self.show(text, "ok")

    def _failed(self, exc: Exception, attempt: Attempt) -> None:
        self.error = exc
        details = scrub(f"{type(exc).__name__}: {exc}", attempt.secrets, attempt.url)
        self.show(lead(exc), "error", details, note=nothing_changed())

    def _credential_changed(self, event: str) -> None:
        """A login or logout made elsewhere: what the form says no longer holds (listener thread)."""
        if event not in ("login", "logout") or self.busy:
            return  # our own attempt reports its own outcome
        if event == "login":
            self.error = None
            self.show("Logged in from elsewhere in this kernel; see %prefect_status for the "
                      "credential in force.", "info")
        elif self._message_text:  # an empty form stays empty
            self.error = None
            self.show("Logged out from elsewhere in this kernel.", "info")

    def text_form(self) -> str:
        text = ("Prefect login form. If you see this text instead of a form, this front end cannot "
                "show Jupyter widgets: run %prefect_login --no-widget to be prompted, or "
                "%prefect_login --url URL --auth-string-env VAR (or --api-key-env VAR).")
        if self._message_text:
            text += f"\n  {self._message_text}"
        return text


def _weak_listener(form: LoginWidget) -> Callable[[str], None]:
    """A ``session.subscribe`` listener that does not keep a forgotten form alive."""
    ref = weakref.ref(form)

    def listener(event: str) -> None:
        target = ref()
        if target is not None:
            target._credential_changed(event)

    return listener
