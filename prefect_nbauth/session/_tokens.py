"""A login's secrets as refreshing tokens, one per slot, and the Credential they make now.

A login holds one :class:`RefreshingToken` per slot (the auth string, the API
key, each gateway header); whatever needs the credential as it is at this moment
(a request, a websocket, the settings after a rotation) builds it here from the
tokens' current values.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Union

from .. import _headers
from .._exceptions import ConfigurationError
from .._inputs import Credential, check_api_key, check_auth_string, check_headers
from .._secrets import Secret
from ._refreshing import RefreshingToken
from .providers import CredentialProvider, StaticToken, Token, as_provider

__all__ = ["AUTH", "KEY", "SecretInput", "credential_from", "header_slot", "tokens_for"]

#: What a secret argument of login() may be: a value, or something that produces one.
SecretInput = Union[str, Secret, CredentialProvider, Callable[[], Any]]

# Slots a credential can occupy; headers are "header <Name>".
AUTH = "auth string"
KEY = "API key"
_HEADER = "header "

OnRefresh = Callable[[RefreshingToken, Token], None]


def header_slot(name: str) -> str:
    return f"{_HEADER}{name}"


def _check_header(name: str, value: Any) -> Any:
    return check_headers({name: value})


def _token_for(slot: str, value: SecretInput, check: Callable[[Any], Any], margin: float | None,
               on_refresh: OnRefresh) -> RefreshingToken:
    """Wrap a secret in a RefreshingToken, fetch it once and check the value it gives."""
    if isinstance(value, (str, Secret)) or not (isinstance(value, CredentialProvider) or callable(value)):
        check(value)  # a plain value: validate before wrapping, with the plain message
    provider = as_provider(value)
    token = RefreshingToken(provider, slot=slot, margin=margin, on_refresh=on_refresh)
    initial = token.fetch_initial()
    try:
        check(initial.value)
    except ConfigurationError as exc:
        if isinstance(provider, StaticToken):
            raise
        raise ConfigurationError(f"The {slot} from {provider.describe()} is unusable: {exc}") from None
    return token


def tokens_for(*, auth_string: SecretInput | None, api_key: SecretInput | None,
               headers: dict[str, SecretInput], margin: float | None,
               on_refresh: OnRefresh) -> dict[str, RefreshingToken]:
    """One token per slot, each fetched once (providers run here) and its value checked."""
    tokens: dict[str, RefreshingToken] = {}
    if auth_string is not None:
        tokens[AUTH] = _token_for(AUTH, auth_string, check_auth_string, margin, on_refresh)
    if api_key is not None:
        tokens[KEY] = _token_for(KEY, api_key, check_api_key, margin, on_refresh)
    for name, value in headers.items():
        tokens[header_slot(name)] = _token_for(header_slot(name), value,
                                               functools.partial(_check_header, name), margin, on_refresh)
    return tokens


def credential_from(url: str, tokens: dict[str, RefreshingToken], workspace: str | None) -> Credential:
    """The credential the tokens make now (gateway header values as Prefect would send them)."""
    headers = {slot[len(_HEADER):]: Secret(_headers.gateway_header_value(slot[len(_HEADER):], t.token.value))
               for slot, t in tokens.items() if slot.startswith(_HEADER)}
    return Credential(
        api_url=url,
        auth_string=tokens[AUTH].token.value if AUTH in tokens else None,
        api_key=tokens[KEY].token.value if KEY in tokens else None,
        headers=headers,
        workspace=workspace,
    )
