"""Credential providers: where a token comes from (see :mod:`._base` for the protocol).

A provider subclasses :class:`CredentialProvider` and overrides ``fetch()``; each kind
lives in its own module: local sources (:mod:`._local`), the OAuth2 client-credentials
grant (:mod:`._oauth2`), a person's device sign-in at an OpenID provider (:mod:`._device`,
on :mod:`._device_flow`, :mod:`._oidc` and :mod:`._refresh_store`), the signed-in person's
token from JupyterHub (:mod:`._jupyterhub`).
"""

from ._base import CredentialProvider, Token, callable_name
from ._device import DeviceSignIn, SignIn
from ._device_flow import DevicePrompt, PendingSignIn
from ._jupyterhub import HOOK_SETTING, HubSignedOutError, JupyterHubToken, hub_user, under_jupyterhub
from ._local import CallableToken, CommandToken, EnvToken, FileToken, StaticToken, as_provider
from ._oauth2 import OAuth2ClientCredentials, expiry_from_response

__all__ = [
    "HOOK_SETTING",
    "CallableToken",
    "CommandToken",
    "CredentialProvider",
    "DevicePrompt",
    "DeviceSignIn",
    "EnvToken",
    "FileToken",
    "HubSignedOutError",
    "JupyterHubToken",
    "OAuth2ClientCredentials",
    "PendingSignIn",
    "SignIn",
    "StaticToken",
    "Token",
    "as_provider",
    "callable_name",
    "expiry_from_response",
    "hub_user",
    "under_jupyterhub",
]
