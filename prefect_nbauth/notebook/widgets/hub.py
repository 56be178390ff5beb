"""The login form's first choice under JupyterHub: "Use my Hub sign-in (alice)".

One entry of the form's choices (:class:`~._login_choices.Choice`), offered only in a
server that JupyterHub started (``$JUPYTERHUB_USER``, ``$JUPYTERHUB_API_URL`` and
``$JUPYTERHUB_API_TOKEN`` set) and then first, and chosen by default. Nothing is typed:
the access token the Hub keeps for that person goes to the gateway at the API URL, and
the Hub keeps it fresh (:class:`~prefect_nbauth.JupyterHubToken`,
:func:`~prefect_nbauth.session.login_with_hub`). :func:`login_choices` is what the form
offers: this entry, then :data:`~._login_choices.CHOICES` (those offered first, such as
a configured SSO sign-in, ahead of the others).
"""

from __future__ import annotations

from ...session import hub_user, login_with_hub, under_jupyterhub
from ._base import SafeHTML, esc
from ._login_choices import CHOICES, Attempt, Choice, Form, Panel, available_choices

__all__ = ["HUB_SIGN_IN", "hub_panel", "login_choices"]


def _label() -> str:
    return f"Use my Hub sign-in ({hub_user() or 'unknown'})"


def _under_hub(_url: str) -> bool:
    return under_jupyterhub()


def hub_panel(form: Form) -> Panel:
    """The API URL (the gateway's) and a sentence: there is nothing to type."""
    note = SafeHTML(
        f"<span class='pnb-note'>No password: JupyterHub signed you in as <b>{esc(hub_user() or 'you')}</b>. "
        "Your access token goes to the gateway at the API URL above, and the Hub keeps it fresh. "
        "Nothing is stored.</span>")

    def prepare() -> Attempt:
        url = form.api_url()
        timeout = form.timeout
        return Attempt(lambda: login_with_hub(url, timeout=timeout), [], url or "")

    return Panel([form.url_box, note], list, prepare, {"note": note})


#: "Use my Hub sign-in (alice)": offered under JupyterHub, first, and the default there.
HUB_SIGN_IN = Choice("hub", _label, hub_panel, available=under_jupyterhub, default_for=_under_hub,
                     first=under_jupyterhub)


def login_choices() -> tuple[Choice, ...]:
    """The choices the form offers in this kernel, in order: the Hub sign-in first (under a Hub)."""
    return available_choices((HUB_SIGN_IN, *CHOICES))
