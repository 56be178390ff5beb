"""The login form's choices: one entry each, in :data:`CHOICES`.

The form (:class:`~prefect_nbauth.notebook.widgets.login.LoginWidget`) draws one
label per available choice above one panel per choice, in this order, and knows
nothing else about them. **To add a way to log in, add one** :class:`Choice` **to**
:data:`CHOICES`: a ``key`` (the ``mode=`` name, stable), a ``label`` (a string, or a
function returning one, e.g. ``lambda: f"Use my Hub sign-in ({user})"``), a ``build``
function, and optionally ``available`` (is it offered here? e.g. only under
JupyterHub), ``default_for`` (is it the first choice for this API URL?) and ``first``
(is it offered before the others here? e.g. SSO where an administrator configured
it). Put it where it should appear otherwise.

``build(form)`` makes the choice's panel and returns a :class:`Panel`:

* ``children``: the widgets shown (the form's ``url_box`` if the choice needs the API URL);
* ``secret_boxes()``: the :class:`SecretInput` boxes Log in asks the page for (Enter in
  one of them logs in); make them with ``form.secret_box(...)``, which seals them for
  this kernel. Any free-text box must be a ``form.text_box(check, ...)``
  (:mod:`._free_text`): a test pastes a canary into every text box of every panel;
* ``prepare()``: called under the form's lock when Log in is clicked; reads the panel
  (``form.api_url()`` checks the URL box), raises ``ConfigurationError`` with what to do
  for anything missing, and returns an :class:`Attempt`;
* ``parts``: named widgets for scripts and tests (``form.panels[key].parts["secret"]``);
* ``action``: the button's label while this choice is shown (default "Log in");
* ``close()``: called when the form closes (cancel what the panel still waits for).

``Attempt.run()`` runs on a worker thread and returns the new status, or None when the
panel asked the person for more, or the attempt ended without a login (it said so with
``form.show``). It may take its time (a person approving a sign-in on a phone): the
kernel stays free meanwhile. Its ``secrets`` are scrubbed from an error's details and
dropped after the attempt; its ``url`` is shown at most as ``scheme://host``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import ipywidgets as widgets

from ..._exceptions import ConfigurationError, SignInCancelledError
from ..._inputs import is_cloud_url
from ..._secrets import Secret
from ...session import AuthStatus, DeviceSignIn, cloud_api_url, list_workspaces, login
from ._base import SafeHTML, esc, theme_style
from ._free_text import Check, GuardedText, client_id_refusal, header_name_refusal, issuer_refusal
from ._login_messages import nothing_changed
from .secret_input import SecretInput
from .sso import SSO_CSS, SignInTurn, prompt_html, take_turn

__all__ = ["CHOICES", "SSO_CLIENT_ID_ENV", "SSO_ISSUER_ENV", "SSO_SCOPES_ENV", "Attempt", "Choice", "Form", "Panel",
           "available_choices", "sso_choice", "sso_configured"]


class Form(Protocol):
    """What a panel builder may use of the form (``LoginWidget`` provides it)."""

    timeout: float
    workspace: str | None
    lock: threading.RLock  # held while a panel reads or changes the form
    url_box: GuardedText  # the API URL; shared by the panels that need one

    @property
    def persist(self) -> bool: ...  # "save to my Prefect profile" is ticked

    def secret_box(self, description: str, placeholder: str, css_class: str) -> SecretInput: ...

    def text_box(self, check: Check, **kwargs: Any) -> GuardedText: ...

    def api_url(self) -> str | None: ...

    def show(self, text: str, kind: str, details: str = "", note: str = "") -> None: ...


@dataclass
class Attempt:
    """One login attempt, prepared from a panel (see the module docstring)."""

    run: Callable[[], AuthStatus | None]
    secrets: list[Secret] = field(default_factory=list)
    url: str = ""

    def drop(self) -> None:
        """Forget the secrets (the closure in ``run`` holds them too)."""
        self.secrets.clear()
        self.run = _spent


def _spent() -> AuthStatus | None:
    raise RuntimeError("this login attempt has already run")


@dataclass
class Panel:
    """What a choice's ``build`` returns (see the module docstring)."""

    children: list[widgets.Widget]
    secret_boxes: Callable[[], list[SecretInput]]
    prepare: Callable[[], Attempt]
    parts: Mapping[str, Any] = field(default_factory=dict)
    action: str = "Log in"
    close: Callable[[], None] = lambda: None


def _always() -> bool:
    return True


def _no() -> bool:
    return False


def _never(_url: str) -> bool:
    return False


@dataclass(frozen=True)
class Choice:
    """One way to log in (see the module docstring)."""

    key: str
    label: str | Callable[[], str]
    build: Callable[[Form], Panel]
    available: Callable[[], bool] = _always
    default_for: Callable[[str], bool] = _never
    first: Callable[[], bool] = _no

    def title(self) -> str:
        return self.label if isinstance(self.label, str) else self.label()


# --------------------------------------------------------------- the panels


def self_hosted(form: Form) -> Panel:
    """An auth string (``PREFECT_SERVER_API_AUTH_STRING``) for the API URL in the URL box."""
    box = form.secret_box("Auth string", "user:password (the server's PREFECT_SERVER_API_AUTH_STRING)",
                          "pnb-auth-string")

    def prepare() -> Attempt:
        url = form.api_url()  # checked first: a bad URL keeps the secret for the next click
        secret = box.take()
        if secret is None:
            raise ConfigurationError("Type the auth string (user:password) first.")
        persist, timeout = form.persist, form.timeout
        return Attempt(lambda: login(url, auth_string=secret, persist=persist, timeout=timeout),
                       [secret], url or "")

    return Panel([form.url_box, box], lambda: [box], prepare, {"secret": box})


def prefect_cloud(form: Form) -> Panel:
    """A Prefect Cloud API key; a workspace chooser when the key can use several."""
    box = form.secret_box("API key", "pnu_… or pnb_…", "pnb-api-key")
    chooser = widgets.Dropdown(description="Workspace", options=[], value=None,
                               style={"description_width": "8em"}, layout=widgets.Layout(display="none"))
    note = SafeHTML(f'<small class="pnb-note">Prefect Cloud at {esc(cloud_api_url())}</small>')

    def prepare() -> Attempt:
        key = box.secret  # kept (not taken) until the attempt ends: a second click may choose a workspace
        if key is None:
            raise ConfigurationError("Type your Prefect Cloud API key (pnu_… or pnb_…) first.")
        if chooser.layout.display != "none":
            if not chooser.value:
                raise ConfigurationError("Choose a workspace first, then click Log in.")
            workspace = chooser.value
        else:
            workspace = form.workspace
        persist, timeout = form.persist, form.timeout

        def run() -> AuthStatus | None:
            try:
                chosen = workspace
                if not chosen:
                    handles = list_workspaces(key, timeout=timeout)
                    if len(handles) > 1:
                        with form.lock:
                            chooser.options = handles
                            chooser.value = None
                            chooser.layout.display = None
                        form.show(f"This key can use {len(handles)} workspaces. Choose one above, "
                                  "then click Log in.", "choose")
                        return None  # the key stays held for the second click
                    chosen = handles[0] if handles else None
                status = login(api_url=cloud_api_url(), api_key=key, workspace=chosen, persist=persist,
                               timeout=timeout)
            except Exception:
                box.take()
                raise
            box.take()
            return status

        return Attempt(run, [key])

    return Panel([box, chooser, note], lambda: [box], prepare, {"secret": box, "workspace": chooser})


class HeaderRows:
    """The gateway panel's rows of (name, value); ``add()`` appends one."""

    def __init__(self, form: Form) -> None:
        self._form = form
        self.rows: list[tuple[GuardedText, SecretInput]] = []
        self.box = widgets.VBox()
        self.add()

    def add(self) -> None:
        name = self._form.text_box(header_name_refusal, description="Header", placeholder="cf-access-token",
                                   style={"description_width": "8em"}, layout=widgets.Layout(width="40%"))
        value = self._form.secret_box("Value", "token (hidden)", "pnb-header-value")
        value.layout = widgets.Layout(width="55%")
        self.rows.append((name, value))
        self.box.children = [*self.box.children, widgets.HBox([name, value])]

    def headers(self) -> dict[str, Secret]:
        """The rows with a name, checked; messages name a row by its number, never by its text."""
        headers: dict[str, Secret] = {}
        for row, (name_box, value) in enumerate(self.rows, start=1):
            name = name_box.checked()
            if not name:
                continue
            if name.lower() in {n.lower() for n in headers}:
                raise ConfigurationError(f"Row {row} names a header an earlier row already names; "
                                         "give each header once.")
            if value.secret is None:
                raise ConfigurationError(f"Type a value for the header in row {row} first.")
            headers[name] = value.secret
        if not headers:
            raise ConfigurationError("Give at least one header name and its value.")
        return headers


def gateway_headers(form: Form) -> Panel:
    """Header names and their values (a gateway in front of Prefect)."""
    rows = HeaderRows(form)
    add = widgets.Button(description="Add header", icon="plus")
    add.on_click(lambda _: rows.add())

    def prepare() -> Attempt:
        url = form.api_url()
        headers = rows.headers()
        for _, value in rows.rows:
            value.take()
        persist, timeout = form.persist, form.timeout
        return Attempt(lambda: login(url, headers=headers, persist=persist, timeout=timeout),
                       list(headers.values()), url or "")

    return Panel([form.url_box, rows.box, add], lambda: [value for _, value in rows.rows], prepare,
                 {"rows": rows, "add": add})


#: The identity provider's URL, for everyone using this kernel's environment (a team's image, a Hub's spawner).
SSO_ISSUER_ENV = "PREFECT_NBAUTH_SSO_ISSUER"
#: The public client registered there for the device sign-in.
SSO_CLIENT_ID_ENV = "PREFECT_NBAUTH_SSO_CLIENT_ID"
#: Scopes to ask for instead of DeviceSignIn's default, separated by spaces.
SSO_SCOPES_ENV = "PREFECT_NBAUTH_SSO_SCOPES"

_SSO_NOTE = ("Sign in shows a link and a code: open the link on any device, sign in there and approve. Your "
             "password goes to your identity provider only; the kernel stays free meanwhile, and nothing is "
             "stored.")


def sso_configured() -> bool:
    """An administrator named the identity provider for this kernel (``$PREFECT_NBAUTH_SSO_ISSUER``)."""
    return bool(os.environ.get(SSO_ISSUER_ENV, "").strip())


def sso_sign_in(form: Form, **provider_options: Any) -> Panel:
    """Sign in as yourself at your identity provider (the device sign-in, RFC 8628), for a
    Prefect behind an SSO gateway at the API URL; the link and the code shown in the form."""
    configured_client = os.environ.get(SSO_CLIENT_ID_ENV, "").strip()
    wide = {"style": {"description_width": "8em"}, "layout": widgets.Layout(width="95%")}
    issuer = form.text_box(issuer_refusal, value=os.environ.get(SSO_ISSUER_ENV, "").strip(), description="Issuer",
                           placeholder="https://login.example.com (your identity provider)", **wide)
    issuer.add_class("pnb-sso-issuer")
    client = form.text_box(client_id_refusal(configured_client), value=configured_client, description="Client id",
                           placeholder="prefect-notebook (the app registered there)", **wide)
    client.add_class("pnb-sso-client-id")
    prompt = SafeHTML()  # the link and the code, while the sign-in waits for the person
    prompt.add_class("pnb-sso-prompt")
    cancel = widgets.Button(description="Cancel", icon="times", tooltip="Stop waiting for this sign-in",
                            layout=widgets.Layout(display="none"))
    cancel.add_class("pnb-sso-cancel")
    note = SafeHTML(f'<span class="pnb-note">{esc(_SSO_NOTE)}</span>')
    note.add_class("pnb-sso-note")
    turns: list[SignInTurn] = []  # the sign-in under way (for Cancel and close)

    def stop(why: str = "Sign-in cancelled.") -> None:
        for turn in list(turns):
            turn.cancel(why)

    cancel.on_click(lambda _: stop())

    def showing(pending: Any) -> None:
        with form.lock:
            prompt.value = prompt_html(pending.prompt) if pending is not None else ""
            cancel.layout.display = None if pending is not None else "none"

    def prepare() -> Attempt:
        url = form.api_url()
        if not url:
            raise ConfigurationError("Type the API URL of the Prefect behind your SSO gateway first "
                                     "(https://HOST/api).")
        issuer_url = issuer.checked()
        if not issuer_url:
            raise ConfigurationError("Type your identity provider's URL (the issuer, such as "
                                     "https://login.example.com) first; an administrator can set it in "
                                     f"{SSO_ISSUER_ENV}.")
        client_id = client.checked()
        if not client_id:
            raise ConfigurationError("Type the client id registered at your identity provider first; an "
                                     f"administrator can set it in {SSO_CLIENT_ID_ENV}.")
        if form.persist:
            raise ConfigurationError(
                'A sign-in is never saved to the Prefect profile: untick "Save to my Prefect profile". To sign '
                "in without a code in a new kernel, use %prefect_login --url URL --sso ISSUER --client-id ID "
                "--persist (the refresh token goes to your platform's secret store).")
        scopes = os.environ.get(SSO_SCOPES_ENV, "").split()
        provider = DeviceSignIn(issuer_url, client_id, **{"timeout": form.timeout,
                                                          **({"scopes": scopes} if scopes else {}),
                                                          **provider_options})
        timeout = form.timeout
        turn = SignInTurn()

        def run() -> AuthStatus | None:
            turns[:] = [turn]
            take_turn(turn)  # a sign-in still waiting in this kernel ends here
            try:
                form.show("Asking your identity provider for a code…", "info")
                pending = provider.start()
                turn.hold(pending)
                showing(pending)
                form.show("Waiting for you to approve… The kernel stays free: run other cells meanwhile.", "info")
                try:
                    pending.wait()
                except SignInCancelledError as exc:
                    form.show(str(exc), "info", note=nothing_changed())
                    return None
                showing(None)
                form.show("Approved. Logging this kernel in…", "info")
                try:
                    return login(url, sso=provider, timeout=timeout)
                except Exception:
                    _close_quietly(provider)  # an unused sign-in: its refresh token revoked, not left valid
                    raise
            finally:
                showing(None)
                turns[:] = [t for t in turns if t is not turn]

        return Attempt(run, [], url)

    return Panel([form.url_box, issuer, client, note, theme_style(SSO_CSS), prompt, cancel], list, prepare,
                 {"issuer": issuer, "client_id": client, "prompt": prompt, "cancel": cancel},
                 action="Sign in", close=stop)


def _close_quietly(provider: DeviceSignIn) -> None:
    try:
        provider.close()
    except Exception:  # noqa: BLE001 - the login's own error is the one to show
        pass


def _cloud_url(url: str) -> bool:
    return bool(url) and is_cloud_url(url, cloud_api_url())


def _sso_default(url: str) -> bool:
    return sso_configured() and not _cloud_url(url)


def sso_choice(**provider_options: Any) -> Choice:
    """"Sign in with SSO": offered everywhere; first, and the default, where
    ``$PREFECT_NBAUTH_SSO_ISSUER`` names the identity provider. ``provider_options`` go to
    each :class:`~prefect_nbauth.DeviceSignIn` it makes (``header=``, ``verify=``, ``scopes=``)."""
    return Choice("sso", "Sign in with SSO", lambda form: sso_sign_in(form, **provider_options),
                  default_for=_sso_default, first=sso_configured)


#: Every way to log in, in the order shown (see the module docstring).
CHOICES: tuple[Choice, ...] = (
    Choice("auth-string", "Self-hosted server", self_hosted),
    Choice("api-key", "Prefect Cloud", prefect_cloud, default_for=_cloud_url),
    Choice("headers", "Gateway headers", gateway_headers),
    sso_choice(),
)


def available_choices(choices: tuple[Choice, ...] = CHOICES) -> tuple[Choice, ...]:
    """The choices offered in this kernel, in order: those offered first (``first``), then the others."""
    offered = [c for c in choices if c.available()]
    return tuple(sorted(offered, key=lambda c: not c.first()))  # stable: each group keeps its order
