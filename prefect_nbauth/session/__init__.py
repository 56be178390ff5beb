"""The login product: who this process is to Prefect, kept fresh, and said plainly.

- ``login()``/``logout()``/``refresh()`` (:mod:`._login`) switch the credential of the
  whole process; the one login in force and its lock are :mod:`._state`'s;
- credential providers (:mod:`.providers`) say where a token comes from;
  :class:`~._refreshing.RefreshingToken` keeps each one fresh, single flight;
- every connection presents the current tokens and answers a refusal once:
  HTTP through :mod:`._http_auth`/:mod:`._rotation`, websockets through
  :mod:`._socket_credential`;
- ``status()`` (:mod:`._status`, its rules in :mod:`._status_rules`) says what
  Prefect sends, where it came from and what is wrong; :mod:`._probe` asks the server.

What other packages of prefect_nbauth use is exported here; nothing outside this
package imports its private modules.
"""

from ._auth_status import AuthMode, AuthStatus
from ._listeners import notify, subscribe
from ._login import login, logout, refresh
from ._rotation import RefusalMemory
from ._socket_credential import SocketCredential, refresh_socket_credential, socket_credential
from ._state import api_url_in_force, settings_in_force
from ._state import current as current_login
from ._status import status
from ._workspaces import cloud_api_url, list_workspaces
from .providers import (
    CallableToken,
    CommandToken,
    CredentialProvider,
    EnvToken,
    FileToken,
    OAuth2ClientCredentials,
    StaticToken,
    Token,
)

__all__ = [
    "AuthMode",
    "AuthStatus",
    "CallableToken",
    "CommandToken",
    "CredentialProvider",
    "EnvToken",
    "FileToken",
    "OAuth2ClientCredentials",
    "RefusalMemory",
    "SocketCredential",
    "StaticToken",
    "Token",
    "api_url_in_force",
    "cloud_api_url",
    "current_login",
    "list_workspaces",
    "login",
    "logout",
    "notify",
    "refresh",
    "refresh_socket_credential",
    "settings_in_force",
    "socket_credential",
    "status",
    "subscribe",
]
