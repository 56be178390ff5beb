"""LoginWidget: log this kernel in to Prefect from a form, without leaking the secret.

Where a secret could leak from a notebook form, and what this one does:

* **widget state** (saved into the ``.ipynb`` when the front end saves widget
  state, and re-sent to every connected front end): the secret boxes are
  :class:`~prefect_nbauth.notebook.widgets.secret_input.SecretInput`, which have no value
  trait. The page keeps the typed text in its ``<input>`` only and sends it once,
  as a custom message (Enter, or the Log in button asking for it), clearing the
  box as it sends. So a save while the kernel is busy, or after it restarted,
  cannot contain the secret. The kernel keeps what arrives in a private
  :class:`Secret`.
* **the URL box** is a plain synced text box, so a URL holding a user name or
  password (``http://user:pw@host``) is emptied the moment the kernel sees it,
  and so is anything that is not a URL when Log in is clicked (it may be a
  pasted secret). Messages show at most ``scheme://host`` of a rejected URL.
* **outputs**: every message shows masked values only; an error leads with one
  sentence, and its details (scrubbed of the secrets just tried and of the URL
  box) sit in a collapsed ``<details>``.
* **the kernel**: validation (network) runs on a worker thread; the kernel
  stays free to run cells. The stashed secret is dropped after the attempt.
* **a failed login** changes nothing (``login()`` validates before it switches),
  so the previous login keeps working and the form stays as it was.
* **a login or logout elsewhere** (``login()``, ``%prefect_login --auth-string-env``,
  the status widget) replaces whatever the form said: no stale error stays red.

Colours come from JupyterLab's theme variables (``login.css``), so the form reads
in the light and dark themes and in Notebook 7.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..._exceptions import ConfigurationError
from ..._inputs import is_cloud_url
from ..._secrets import Secret
from ...session import AuthStatus, api_url_in_force, cloud_api_url, list_workspaces, login, subscribe
from .._login_origin import FORM, via
from ._base import SafeHTML, TextForm, esc
from ._login_messages import check_url_box, has_userinfo, lead, nothing_changed, safe_url, scrub
from .secret_input import SecretInput

__all__ = ["LoginWidget", "SecretInput", "safe_url"]

MODES = ("auth-string", "api-key", "headers")
TAB_TITLES = ("Self-hosted server", "Prefect Cloud", "Gateway headers")

#: How long Log in waits for the page to send what its secret boxes hold.
#: Only when a page said it can answer; a page that went away without saying so
#: costs this much, then the form goes on with what it already received.
REQUEST_TIMEOUT = 5.0

class LoginWidget(TextForm, widgets.VBox):
    """A login form: self-hosted auth string, Prefect Cloud API key (with a workspace
    chooser), or gateway headers.

    Args:
        api_url: the API URL to fill in (default: the one in force).
        mode: ``"auth-string"``, ``"api-key"`` or ``"headers"`` (default: from the URL).
        workspace: the Cloud workspace to use without asking (``"account/workspace"``).
        persist: tick "save to my Prefect profile" (``login(persist=True)``).
        timeout: seconds for each request to the server.

    Without a browser, type into a secret box with its ``receive()`` method (what
    the page's message does), e.g. ``form._auth_string.receive("user:pw", enter=True)``
    logs in as Enter would.
    """

    def __init__(self, *, api_url: str | None = None, mode: str | None = None,
                 workspace: str | None = None, persist: bool = False, timeout: float = 10.0) -> None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
        super().__init__()
        self.timeout = timeout
        self.workspace = workspace
        self.result: AuthStatus | None = None  # the status after the last successful login
        self.error: Exception | None = None  # the error of the last failed attempt
        self._lock = threading.RLock()
        self._idle = threading.Event()
        self._idle.set()
        self._message_text = ""
        self._pending: dict[SecretInput, int] = {}  # secret boxes asked for their value, by request id
        self._pending_timer: threading.Timer | None = None

        cloud = cloud_api_url()
        in_force = api_url_in_force()
        url = api_url if api_url is not None else (in_force or "")
        if mode is None:
            mode = "api-key" if url and is_cloud_url(url, cloud) else "auth-string"
        if url and is_cloud_url(url, cloud):
            url = ""  # the Cloud tab builds the workspace URL itself

        self._url = widgets.Text(value=url, description="API URL", placeholder="http://127.0.0.1:4200/api",
                                 style={"description_width": "8em"}, layout=widgets.Layout(width="95%"))
        self._url.add_class("pnb-url")
        self._url.observe(self._on_url, "value")
        self._tabs = self._credential_tabs(cloud, mode)
        self._tabs.observe(self._on_tab, "selected_index")
        self._persist = widgets.Checkbox(value=persist, description="Save to my Prefect profile",
                                         indent=False)
        self._button = widgets.Button(description="Log in", button_style="primary", icon="sign-in")
        self._button.add_class("pnb-login-button")
        self._button.on_click(lambda _: self.submit())
        self._message = SafeHTML()
        self._message.add_class("pnb-login-message")
        self.children = [
            SafeHTML("<b>Log in to Prefect</b>"),
            self._url, self._tabs,
            widgets.HBox([self._button, self._persist]),
            self._message,
        ]
        self.add_class("prefect-nbauth-login")
        self._on_tab({"new": self._tabs.selected_index})
        self._unsubscribe = subscribe(_weak_listener(self))

    # ------------------------------------------------------------------ public

    @property
    def mode(self) -> str:
        return MODES[self._tabs.selected_index or 0]

    @property
    def message(self) -> str:
        """The message the form shows (plain text, details included)."""
        return self._message_text

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the login attempt in progress ends; True if none is left running."""
        return self._idle.wait(timeout)

    def submit(self) -> None:
        """What the Log in button does: collect the secrets, validate on a worker thread."""
        self._collect_then_submit(skip=None)

    def close(self) -> None:
        if "_lock" in self.__dict__:  # not when __init__ failed half-way (Widget.__del__)
            self._unsubscribe()
            with self._lock:
                self._cancel_pending()
            stack = list(self.children)
            while stack:
                child = stack.pop()
                stack.extend(getattr(child, "children", ()))
                child.close()
        super().close()

    # --------------------------------------------------------------- internals

    def _credential_tabs(self, cloud: str, mode: str) -> widgets.Tab:
        """One tab per kind of credential; the secret boxes are SecretInputs (no value trait)."""
        self._auth_string = self._secret_field("Auth string",
                                               "user:password (the server's PREFECT_SERVER_API_AUTH_STRING)")
        self._auth_string.add_class("pnb-auth-string")
        self._api_key = self._secret_field("API key", "pnu_… or pnb_…")
        self._api_key.add_class("pnb-api-key")
        self._workspace = widgets.Dropdown(description="Workspace", options=[], value=None,
                                           style={"description_width": "8em"},
                                           layout=widgets.Layout(display="none"))
        self._header_rows: list[tuple[widgets.Text, SecretInput]] = []
        self._header_box = widgets.VBox()
        self._add_header_button = widgets.Button(description="Add header", icon="plus")
        self._add_header_button.on_click(lambda _: self._add_header_row())
        self._add_header_row()
        tabs = widgets.Tab(children=[
            widgets.VBox([self._auth_string]),
            widgets.VBox([self._api_key, self._workspace,
                          SafeHTML(f'<small class="pnb-note">Prefect Cloud at {esc(cloud)}</small>')]),
            widgets.VBox([self._header_box, self._add_header_button]),
        ], titles=TAB_TITLES)
        tabs.selected_index = MODES.index(mode)
        return tabs

    def _secret_field(self, description: str, placeholder: str) -> SecretInput:
        return SecretInput(description=description, placeholder=placeholder,
                           on_value=self._on_secret, on_reply=self._on_reply,
                           layout=widgets.Layout(width="95%"))

    def _mode_fields(self) -> list[SecretInput]:
        mode = self.mode
        if mode == "auth-string":
            return [self._auth_string]
        if mode == "api-key":
            return [self._api_key]
        return [value for _, value in self._header_rows]

    def _on_secret(self, field: SecretInput, enter: bool) -> None:
        """A secret box received a value from the page; Enter submits the form."""
        if enter and field in self._mode_fields():
            self._collect_then_submit(skip=field)

    def _collect_then_submit(self, *, skip: SecretInput | None) -> None:
        """Ask the page for what the boxes of this mode hold, then submit.

        Runs on the kernel's main thread (a comm message), so it cannot wait for
        the answers: they arrive as later messages (:meth:`_on_reply`). When no
        page can answer (no browser, or the view was never shown), it submits now.
        """
        with self._lock:
            if not self._idle.is_set() or self._pending:
                return  # one attempt at a time
            ask = [f for f in self._mode_fields() if f is not skip and f.views]
            if not ask:
                self._submit_now()
                return
            self._pending = {f: f.request() for f in ask}
            timer = threading.Timer(REQUEST_TIMEOUT, self._pending_expired, args=(dict(self._pending),))
            timer.daemon = True
            self._pending_timer = timer
            timer.start()

    def _on_reply(self, field: SecretInput, request_id: int) -> None:
        with self._lock:
            if self._pending.get(field) != request_id:
                return  # an answer to an older request, or from a second view
            del self._pending[field]
            if self._pending:
                return
            self._cancel_pending()
            self._submit_now()

    def _pending_expired(self, pending: dict[SecretInput, int]) -> None:
        with self._lock:
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
        """Validate the form (under the lock) and start the worker thread."""
        with self._lock:
            if not self._idle.is_set():
                return
            try:
                job = self._prepare()
            except ConfigurationError as exc:
                self._show(str(exc), "error")
                return
            self._idle.clear()
        self._set_enabled(False)
        self._show("Connecting…", "info")
        threading.Thread(target=self._work, args=(job,), name="prefect-nbauth-login",
                         daemon=True).start()

    def _on_url(self, change: dict[str, Any]) -> None:
        """A URL box with a user name or password is emptied as soon as the kernel sees it."""
        value = change["new"] or ""
        if value and has_userinfo(value):
            self._url.value = ""
            self._show(check_url_box(value) or "", "error")

    def _add_header_row(self) -> None:
        name = widgets.Text(description="Header", placeholder="cf-access-token",
                            style={"description_width": "8em"}, layout=widgets.Layout(width="40%"))
        value = self._secret_field("Value", "token (hidden)")
        value.layout = widgets.Layout(width="55%")
        self._header_rows.append((name, value))
        self._header_box.children = [widgets.HBox([n_, v_]) for n_, v_ in self._header_rows]

    def _on_tab(self, change: dict[str, Any]) -> None:
        cloud_tab = MODES[change["new"] or 0] == "api-key"
        self._url.layout.display = "none" if cloud_tab else None

    def _set_enabled(self, enabled: bool) -> None:
        self._button.disabled = not enabled
        self._button.description = "Log in" if enabled else "Connecting…"

    def _show(self, text: str, kind: str, details: str = "", note: str = "") -> None:
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

    def _prepare(self) -> dict[str, Any]:
        """Read the form (under the lock); ConfigurationError for what is plainly missing."""
        mode = self.mode
        job: dict[str, Any] = {"mode": mode, "persist": bool(self._persist.value), "url": ""}
        if mode == "api-key":
            if self._api_key.secret is None:
                raise ConfigurationError("Type your Prefect Cloud API key (pnu_… or pnb_…) first.")
            if self._workspace.layout.display != "none":
                if not self._workspace.value:
                    raise ConfigurationError("Choose a workspace first, then click Log in.")
                job["workspace"] = self._workspace.value
            else:
                job["workspace"] = self.workspace
            job["api_key"] = self._api_key.secret  # kept until the attempt ends
            return job
        url = self._url.value.strip()
        if url:
            problem = check_url_box(url)
            if problem is not None:
                if not problem.startswith("The API URL must start"):
                    self._url.value = ""  # may be a secret: do not keep it in widget state
                raise ConfigurationError(problem)
        job["api_url"] = job["url"] = url or None
        if mode == "auth-string":
            secret = self._auth_string.take()
            if secret is None:
                raise ConfigurationError("Type the auth string (user:password) first.")
            job["auth_string"] = secret
            return job
        headers: dict[str, Secret] = {}
        for name, value in self._header_rows:
            if not name.value.strip():
                continue
            if value.secret is None:
                raise ConfigurationError(f"Type a value for the header {name.value.strip()!r} first.")
            headers[name.value.strip()] = value.secret
        if not headers:
            raise ConfigurationError("Give at least one header name and its value.")
        for _, value in self._header_rows:
            value.take()
        job["headers"] = headers
        return job

    def _work(self, job: dict[str, Any]) -> None:
        try:
            if job["mode"] == "api-key":
                self._work_cloud(job)
                return
            with via(FORM):
                status = login(job.get("api_url"), auth_string=job.get("auth_string"),
                               headers=job.get("headers"), persist=job["persist"], timeout=self.timeout)
            self._succeeded(status)
        except Exception as exc:  # noqa: BLE001 - shown in the form
            self._failed(exc, job)
        finally:
            job.clear()  # drop our references to the secret
            self._set_enabled(True)
            self._idle.set()

    def _work_cloud(self, job: dict[str, Any]) -> None:
        key: Secret = job["api_key"]
        try:
            workspace = job.get("workspace")
            if not workspace:
                handles = list_workspaces(key, timeout=self.timeout)
                if len(handles) > 1:
                    with self._lock:
                        self._workspace.options = handles
                        self._workspace.value = None
                        self._workspace.layout.display = None
                    self._show(f"This key can use {len(handles)} workspaces. Choose one above, "
                               "then click Log in.", "choose")
                    return  # the key stays stashed for the second click
                workspace = handles[0] if handles else None
            with via(FORM):
                status = login(api_url=cloud_api_url(), api_key=key, workspace=workspace,
                               persist=job["persist"], timeout=self.timeout)
            self._api_key.take()
            self._succeeded(status)
        except Exception:
            self._api_key.take()
            raise

    def _succeeded(self, status: AuthStatus) -> None:
        self.result, self.error = status, None
        who = status.identity or "anonymous"
        text = f"Logged in to {status.api_url} as {who}"
        if status.workspace:
            text += f" (workspace {status.workspace})"
        text += (f". Mode {status.mode.value}, credential {status.credential}. "
                 "Prefect in this kernel uses it now.")
        self._show(text, "ok")

    def _failed(self, exc: Exception, job: dict[str, Any]) -> None:
        self.error = exc
        secrets = [s for s in (job.get("auth_string"), job.get("api_key"), *(job.get("headers") or {}).values())
                   if isinstance(s, Secret)]
        details = scrub(f"{type(exc).__name__}: {exc}", secrets, job.get("url") or "")
        self._show(lead(exc), "error", details, note=nothing_changed())

    def _credential_changed(self, event: str) -> None:
        """A login or logout made elsewhere: what the form says no longer holds (listener thread)."""
        if event not in ("login", "logout") or self.busy:
            return  # our own attempt reports its own outcome
        if event == "login":
            self.error = None
            self._show("Logged in from elsewhere in this kernel; see %prefect_status for the "
                       "credential in force.", "info")
        elif self._message_text:  # an empty form stays empty
            self.error = None
            self._show("Logged out from elsewhere in this kernel.", "info")

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
