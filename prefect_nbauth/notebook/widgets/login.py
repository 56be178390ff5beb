"""LoginWidget: log this kernel in to Prefect from a form, without leaking the secret.

Where a secret could leak from a notebook form, and what this one does:

* **widget state** (saved into the ``.ipynb`` when the front end saves widget
  state, and re-sent to every connected front end): a secret box's value is read
  the moment it reaches the kernel, moved into a private :class:`Secret`, and the
  box is emptied. Its ``value`` is also excluded from ipywidgets' echo, so the
  kernel never broadcasts what was typed back over IOPub.
* **outputs**: every message shows masked values only; errors are the core's,
  which never contain a secret.
* **the kernel**: validation (network) runs on a worker thread; the kernel
  stays free to run cells. The stashed secret is dropped after the attempt.
* **a failed login** changes nothing (``login()`` validates before it switches),
  so the previous login keeps working and the form stays as it was.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from ... import _prefect_seam as seam
from ..._exceptions import ConfigurationError
from ..._inputs import is_cloud_url
from ..._secrets import Secret
from ..._session import login
from ..._status import AuthStatus
from ._base import TextForm, esc
from ..._workspaces import cloud_api_url, list_workspaces

__all__ = ["LoginWidget", "SecretField"]

MODES = ("auth-string", "api-key", "headers")
TAB_TITLES = ("Self-hosted server", "Prefect Cloud", "Gateway headers")
_RECEIVED = "received, hidden (type again to replace)"


class SecretField(widgets.Password):
    """A password box whose value is never echoed back by the kernel (see module docstring)."""

    value = Unicode(help="Emptied by the owner as soon as it is read.").tag(sync=True, echo_update=False)


class LoginWidget(TextForm, widgets.VBox):
    """A login form: self-hosted auth string, Prefect Cloud API key (with a workspace
    chooser), or gateway headers.

    Args:
        api_url: the API URL to fill in (default: the one in force).
        mode: ``"auth-string"``, ``"api-key"`` or ``"headers"`` (default: from the URL).
        workspace: the Cloud workspace to use without asking (``"account/workspace"``).
        persist: tick "save to my Prefect profile" (``login(persist=True)``).
        timeout: seconds for each request to the server.
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
        self._lock = threading.Lock()
        self._secrets: dict[str, Secret] = {}
        self._idle = threading.Event()
        self._idle.set()
        self._message_text = ""

        cloud = cloud_api_url()
        in_force = seam.global_settings_context().settings.api.url
        url = api_url if api_url is not None else (in_force or "")
        if mode is None:
            mode = "api-key" if url and is_cloud_url(url, cloud) else "auth-string"
        if url and is_cloud_url(url, cloud):
            url = ""  # the Cloud tab builds the workspace URL itself

        style = {"description_width": "8em"}
        wide = widgets.Layout(width="95%")
        self._url = widgets.Text(value=url, description="API URL", placeholder="http://127.0.0.1:4200/api",
                                 style=style, layout=wide)
        self._url.add_class("pnb-url")
        self._auth_string = self._secret_field("auth string", "Auth string",
                                               "user:password (the server's PREFECT_SERVER_API_AUTH_STRING)")
        self._auth_string.add_class("pnb-auth-string")
        self._api_key = self._secret_field("api key", "API key", "pnu_… or pnb_…")
        self._api_key.add_class("pnb-api-key")
        self._workspace = widgets.Dropdown(description="Workspace", options=[], value=None, style=style,
                                           layout=widgets.Layout(display="none"))
        self._header_rows: list[tuple[widgets.Text, SecretField]] = []
        self._header_box = widgets.VBox()
        self._add_header_button = widgets.Button(description="Add header", icon="plus")
        self._add_header_button.on_click(lambda _: self._add_header_row())
        self._add_header_row()

        self._tabs = widgets.Tab(children=[
            widgets.VBox([self._auth_string]),
            widgets.VBox([self._api_key, self._workspace,
                          widgets.HTML(f'<small>Prefect Cloud at {esc(cloud)}</small>')]),
            widgets.VBox([self._header_box, self._add_header_button]),
        ], titles=TAB_TITLES)
        self._tabs.selected_index = MODES.index(mode)
        self._tabs.observe(self._on_tab, "selected_index")
        self._persist = widgets.Checkbox(value=persist, description="Save to my Prefect profile",
                                         indent=False)
        self._button = widgets.Button(description="Log in", button_style="primary", icon="sign-in")
        self._button.add_class("pnb-login-button")
        self._button.on_click(lambda _: self.submit())
        self._message = widgets.HTML()
        self._message.add_class("pnb-login-message")
        self.children = [
            widgets.HTML("<b>Log in to Prefect</b>"),
            self._url, self._tabs,
            widgets.HBox([self._button, self._persist]),
            self._message,
        ]
        self.add_class("prefect-nbauth-login")
        self._on_tab({"new": self._tabs.selected_index})

    # ------------------------------------------------------------------ public

    @property
    def mode(self) -> str:
        return MODES[self._tabs.selected_index or 0]

    @property
    def message(self) -> str:
        """The message the form shows (plain text)."""
        return self._message_text

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the login attempt in progress ends; True if none is left running."""
        return self._idle.wait(timeout)

    def submit(self) -> None:
        """What the Log in button does: validate on a worker thread, show the outcome here."""
        with self._lock:
            if not self._idle.is_set():
                return  # one attempt at a time
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

    def close(self) -> None:
        if "_lock" in self.__dict__:  # not when __init__ failed half-way (Widget.__del__)
            with self._lock:
                self._secrets.clear()
            stack = list(self.children)
            while stack:
                child = stack.pop()
                stack.extend(getattr(child, "children", ()))
                child.close()
        super().close()

    # --------------------------------------------------------------- internals

    def _secret_field(self, key: str, description: str, placeholder: str) -> SecretField:
        field = SecretField(description=description, placeholder=placeholder,
                            continuous_update=False,  # sent once (Enter or leaving the box), not per key
                            style={"description_width": "8em"}, layout=widgets.Layout(width="95%"))
        field.observe(lambda change: self._take(key, field, change["new"]), "value")
        field._pnb_placeholder = placeholder  # type: ignore[attr-defined]
        return field

    def _take(self, key: str, field: SecretField, value: str) -> None:
        """A secret box received a value: keep it privately, empty the box now."""
        if not value:
            return
        with self._lock:
            self._secrets[key] = Secret(value)
        field.value = ""
        field.placeholder = _RECEIVED

    def _forget(self, key: str, field: SecretField | None) -> Secret | None:
        secret = self._secrets.pop(key, None)
        if field is not None and field.placeholder == _RECEIVED:
            field.placeholder = field._pnb_placeholder  # type: ignore[attr-defined]
        return secret

    def _add_header_row(self) -> None:
        n = len(self._header_rows)
        name = widgets.Text(description="Header", placeholder="cf-access-token",
                            style={"description_width": "8em"}, layout=widgets.Layout(width="40%"))
        value = self._secret_field(f"header {n}", "Value", "token (hidden)")
        value.layout = widgets.Layout(width="55%")
        self._header_rows.append((name, value))
        self._header_box.children = [widgets.HBox([n_, v_]) for n_, v_ in self._header_rows]

    def _on_tab(self, change: dict[str, Any]) -> None:
        cloud_tab = MODES[change["new"] or 0] == "api-key"
        self._url.layout.display = "none" if cloud_tab else None

    def _set_enabled(self, enabled: bool) -> None:
        self._button.disabled = not enabled
        self._button.description = "Log in" if enabled else "Connecting…"

    def _show(self, text: str, kind: str) -> None:
        self._message_text = text
        colour = {"error": "#c62828", "ok": "#2e7d32", "choose": "#1565c0"}.get(kind, "#555")
        self._message.value = (f'<div class="pnb-{kind}" style="color:{colour};white-space:pre-wrap">'
                               f"{esc(text)}</div>")

    def _prepare(self) -> dict[str, Any]:
        """Read the form (under the lock); ConfigurationError for what is plainly missing."""
        mode = self.mode
        job: dict[str, Any] = {"mode": mode, "persist": bool(self._persist.value)}
        if mode == "api-key":
            if "api key" not in self._secrets:
                raise ConfigurationError("Type your Prefect Cloud API key (pnu_… or pnb_…) first.")
            if self._workspace.layout.display != "none":
                if not self._workspace.value:
                    raise ConfigurationError("Choose a workspace first, then click Log in.")
                job["workspace"] = self._workspace.value
            else:
                job["workspace"] = self.workspace
            job["api_key"] = self._secrets["api key"]  # kept until the attempt ends
            return job
        job["api_url"] = self._url.value.strip() or None
        if mode == "auth-string":
            secret = self._forget("auth string", self._auth_string)
            if secret is None:
                raise ConfigurationError("Type the auth string (user:password) first.")
            job["auth_string"] = secret
            return job
        headers: dict[str, Secret] = {}
        for i, (name, value) in enumerate(self._header_rows):
            key = f"header {i}"
            if not name.value.strip():
                continue
            if key not in self._secrets:
                raise ConfigurationError(f"Type a value for the header {name.value.strip()!r} first.")
            headers[name.value.strip()] = self._secrets[key]
        if not headers:
            raise ConfigurationError("Give at least one header name and its value.")
        for i, (_, value) in enumerate(self._header_rows):
            self._forget(f"header {i}", value)
        job["headers"] = headers
        return job

    def _work(self, job: dict[str, Any]) -> None:
        try:
            if job["mode"] == "api-key":
                self._work_cloud(job)
                return
            status = login(job.get("api_url"), auth_string=job.get("auth_string"),
                           headers=job.get("headers"), persist=job["persist"], timeout=self.timeout)
            self._succeeded(status)
        except Exception as exc:  # noqa: BLE001 - shown in the form
            self._failed(exc)
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
            status = login(api_url=cloud_api_url(), api_key=key, workspace=workspace,
                           persist=job["persist"], timeout=self.timeout)
            with self._lock:
                self._forget("api key", self._api_key)
            self._succeeded(status)
        except Exception:
            with self._lock:
                self._forget("api key", self._api_key)
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

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        self._show(f"{type(exc).__name__}: {exc}\nNothing was changed: the credential in force "
                   "before this attempt is still in use. Correct the form and try again.", "error")

    def text_form(self) -> str:
        text = ("Prefect login form. If you see this text instead of a form, this front end cannot "
                "show Jupyter widgets: run %prefect_login --no-widget to be prompted, or "
                "%prefect_login --url URL --auth-string-env VAR (or --api-key-env VAR).")
        if self._message_text:
            text += f"\n  {self._message_text}"
        return text
