"""What login() checks in its arguments before any provider runs or request is sent.

Every mistake found here is a :class:`ConfigurationError` that says what to pass
instead; nothing has changed yet when it is raised.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import _prefect_seam as seam
from .._exceptions import ConfigurationError
from .._inputs import check_api_url, check_headers, is_cloud_url
from .._secrets import Secret
from ._tokens import SecretInput

__all__ = ["check_combination", "resolve_api_url"]


def check_combination(*, auth_string: SecretInput | None, api_key: SecretInput | None,
                      headers: Mapping[str, SecretInput] | None,
                      workspace: str | None) -> dict[str, SecretInput]:
    """The credential arguments fit together; returns the headers as a plain dict."""
    if auth_string is not None and api_key is not None:
        raise ConfigurationError(
            "Pass either auth_string (self-hosted server) or api_key (Prefect Cloud), not both: "
            "Prefect would send only the auth string and ignore the key."
        )
    if headers is not None and not isinstance(headers, Mapping):
        check_headers(headers)  # raises the explanatory error
    header_items = dict(headers or {})
    check_headers({n: v for n, v in header_items.items() if isinstance(v, (str, Secret))})
    for name in header_items:
        check_headers({name: "x"})  # provider-backed header names too, before anything runs
    if any(n.lower() == "authorization" for n in header_items) and (auth_string or api_key):
        raise ConfigurationError(
            "headers contains an Authorization header, which would replace the "
            f"{'auth string' if auth_string else 'API key'} (Prefect sends the custom header "
            "instead). Pass one of them."
        )
    if workspace is not None and api_key is None:
        raise ConfigurationError("workspace= is for Prefect Cloud and needs api_key=….")
    if workspace is not None and (not isinstance(workspace, str) or not workspace.strip()):
        raise ConfigurationError("workspace must be a non-empty 'account/workspace' handle or id.")
    return header_items


def resolve_api_url(api_url: Any, *, auth_string: SecretInput | None, api_key: SecretInput | None,
                    settings: Any) -> str:
    """The API URL to log in to (Cloud's when a key comes without one), checked against the credential."""
    cloud_api_url = seam.cloud_api_url(settings)
    if api_url is None:
        api_url = cloud_api_url if api_key is not None and not settings.api.url else settings.api.url
        if api_key is not None and api_url and not is_cloud_url(api_url, cloud_api_url):
            # A key with a self-hosted URL from the environment is almost always
            # "log me in to Cloud"; say so rather than sending the key there.
            raise ConfigurationError(
                f"An API key is for Prefect Cloud, but the API URL in force is {api_url}, "
                "which is not Cloud. Pass the Cloud workspace URL as api_url=…; for a "
                "self-hosted server use auth_string='user:password'."
            )
    url = check_api_url(api_url)
    cloud = is_cloud_url(url, cloud_api_url)
    if api_key is not None and not cloud:
        raise ConfigurationError(
            f"API keys are for Prefect Cloud, and {url} is not under Cloud's API "
            f"({cloud_api_url}). A self-hosted server ignores Bearer keys: log in with "
            "auth_string='user:password'; for a gateway pass headers={...}."
        )
    if auth_string is not None and cloud:
        raise ConfigurationError(
            "Prefect Cloud does not use auth strings; log in with api_key='pnu_…' (or a "
            "service account's 'pnb_…')."
        )
    return url
