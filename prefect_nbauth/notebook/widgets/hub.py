"""The login form's first choice under JupyterHub: "Use my Hub sign-in (alice)".

One entry of the form's list of ways to log in (the form shows the entries whose
:meth:`HubSignIn.available` is true, first the one with the lowest ``order``). Under a
Hub that signed the person in (``$JUPYTERHUB_USER``, ``$JUPYTERHUB_API_URL`` and
``$JUPYTERHUB_API_TOKEN`` are set in every server it starts) nothing is typed: the
access token the Hub keeps for that person goes to the gateway at the API URL, and the
Hub keeps it fresh (:class:`~prefect_nbauth.JupyterHubToken`, :func:`login_with_hub`). Outside a Hub the entry
is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from ...session import hub_user, login_with_hub, under_jupyterhub

__all__ = ["HubSignIn"]


@dataclass(frozen=True)
class HubSignIn:
    """The "Use my Hub sign-in" entry: its label, its explanation, and the login it does."""

    key: str = "hub"
    #: Lower is earlier: under a Hub this is the form's first choice.
    order: int = 0
    #: The header the gateway reads the token from (``Authorization: Bearer …``).
    header: str = "Authorization"

    @staticmethod
    def available() -> bool:
        """Offered only in a server JupyterHub started."""
        return under_jupyterhub()

    @property
    def label(self) -> str:
        return f"Use my Hub sign-in ({hub_user() or 'unknown'})"

    def explanation_html(self) -> str:
        """What the form shows under the choice: nothing to type, and what happens."""
        user = escape(hub_user() or "you")
        return (f"<span class='pnb-note'>No password: JupyterHub signed you in as <b>{user}</b>. "
                "Your access token goes to the gateway at the API URL above, and the Hub keeps it "
                "fresh. Nothing is stored.</span>")

    def needs_secret(self) -> bool:
        return False

    def login(self, api_url: str | None, *, timeout: float, **_: Any) -> Any:
        """Log in with the Hub's token for this server's owner (``api_url``: the gateway's)."""
        return login_with_hub(api_url, header=self.header, timeout=timeout)
