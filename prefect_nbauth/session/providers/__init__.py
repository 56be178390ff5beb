"""Credential providers: where a token comes from (see :mod:`._base` for the protocol).

A provider subclasses :class:`CredentialProvider` and overrides ``fetch()``; each kind
lives in its own module: local sources (:mod:`._local`), the OAuth2 client-credentials
grant (:mod:`._oauth2`).
"""

from ._base import CredentialProvider, Token, callable_name
from ._local import CallableToken, CommandToken, EnvToken, FileToken, StaticToken, as_provider
from ._oauth2 import OAuth2ClientCredentials, expiry_from_response

__all__ = [
    "CallableToken",
    "CommandToken",
    "CredentialProvider",
    "EnvToken",
    "FileToken",
    "OAuth2ClientCredentials",
    "StaticToken",
    "Token",
    "as_provider",
    "callable_name",
    "expiry_from_response",
]
