"""Logging this process in as the person JupyterHub signed in (``%prefect_login --hub``)."""

from __future__ import annotations

from typing import Any

from .._exceptions import AuthenticationError
from ._login import login
from .providers import HOOK_SETTING, JupyterHubToken

__all__ = ["login_with_hub"]


def login_with_hub(api_url: str | None = None, *, header: str = "Authorization", timeout: float = 10.0) -> Any:
    """``login(api_url, headers={header: JupyterHubToken()})``, what ``%prefect_login --hub`` and
    the form's "Use my Hub sign-in" do; a refusal says what a Hub without the refresh hook does."""
    provider = JupyterHubToken(timeout=timeout)
    try:
        return login(api_url, headers={header: provider}, timeout=timeout)
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"The gateway refused the access token JupyterHub holds for {provider.user} "
            f"(HTTP {exc.status_code or 401}). Either it has expired and the Hub has not refreshed it "
            "(without the refresh hook a Hub hands out expired tokens for up to "
            f"c.Authenticator.auth_refresh_age seconds: the Hub admin adds {HOOK_SETTING}), or the "
            "gateway does not accept this identity provider's tokens. Nothing was changed.",
            status_code=exc.status_code) from None
