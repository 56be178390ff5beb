"""The signed-in person's access token, from the JupyterHub that signed them in.

Under a JupyterHub with an OAuth authenticator (oauthenticator's
``GenericOAuthenticator``), the Hub holds each person's tokens in ``auth_state`` and
refreshes them. :class:`JupyterHubToken` asks the Hub for the current access token
with the server's own token (``$JUPYTERHUB_API_TOKEN``), every time the token nears
its expiry and once after a rejection: nothing is typed, and the token follows the
Hub's refreshes instead of going stale like one put in the environment at spawn.

What the Hub hands over and what is done with it:

- ``GET {JUPYTERHUB_API_URL}/users/{JUPYTERHUB_USER}``, not ``/user``: JupyterHub 6.1
  returns ``auth_state: null`` there (jupyterhub #5103);
- only ``access_token`` is used. ``auth_state`` also carries the refresh token and the
  id token (twice: on their own and in ``token_response``): they are registered with
  the log scrubber as soon as the body is parsed and dropped with it, never kept on
  this object, shown or logged;
- the expiry: ``expires_at`` when the Hub stamps it (the shipped
  ``docs/jupyterhub/jupyterhub_config.py`` does), else ``expires_in`` counted from when
  this kernel first saw the token (a token older than that is caught by the 401 path),
  else the token's own ``exp`` when it is a JWT.

One Hub call at a time: JupyterHub does not de-duplicate refreshes across requests, and
with rotating refresh tokens a second refresh with the same refresh token makes the
provider revoke the whole sign-in. Calls are serialised in this process (a lock) and
across this person's kernels on the same machine (a file lock in their Jupyter runtime
directory).

A Hub without the shipped refresh hook refreshes only after the provider has refused
the stored token, and meanwhile hands the same expired token out again. That is
detected (the same token, past its expiry) and answered with a message naming the Hub
setting, and with backoff (1 s, doubling, at most ``max_backoff``): the Hub is never
asked in a loop. When the Hub says the person is signed out (the shipped hook's
``signed_out`` mark: the provider refused the refresh token), the error says so and the
Hub is asked again every ``signed_out_poll`` seconds, so the next Hub sign-in is picked
up by itself, without a kernel restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from ... import _redaction
from ..._exceptions import CredentialProviderError
from ..._jwt import expiry_of, jwt_claims
from ..._secrets import Secret
from ._base import CredentialProvider, Token

__all__ = ["HOOK_SETTING", "HubSignedOutError", "JupyterHubToken", "hub_user", "under_jupyterhub"]

#: The Hub settings a message names when the Hub does not hand out what is needed.
ROLES_SETTING = (
    'c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "admin:auth_state!user"]}, '
    '{"name": "server", "scopes": ["users:activity!user", "access:servers!server", '
    '"admin:auth_state!user"]}]'
)
AUTH_STATE_SETTING = "c.Authenticator.enable_auth_state = True (with JUPYTERHUB_CRYPT_KEY set for the Hub)"
HOOK_SETTING = ("c.GenericOAuthenticator.refresh_user_hook and modify_auth_state_hook from "
                "prefect_nbauth's docs/jupyterhub/jupyterhub_config.py, with c.Authenticator.auth_refresh_age = 1")

#: A token with more than this (or a quarter of its life) left is not being refreshed for its
#: expiry: asking again then means the gateway refused it.
NEAR_EXPIRY = 5.0

_ENV_URL = "JUPYTERHUB_API_URL"
_ENV_TOKEN = "JUPYTERHUB_API_TOKEN"  # noqa: S105 - a variable's name
_ENV_USER = "JUPYTERHUB_USER"


class HubSignedOutError(CredentialProviderError):
    """The Hub can no longer refresh this person's sign-in: they must sign in to the Hub again."""


def under_jupyterhub() -> bool:
    """True in a server (and so a kernel) that JupyterHub started: its API is reachable from here."""
    return all(os.environ.get(name) for name in (_ENV_URL, _ENV_TOKEN, _ENV_USER))


def hub_user() -> str | None:
    """The Hub user this server belongs to (``$JUPYTERHUB_USER``), or None outside a Hub."""
    return os.environ.get(_ENV_USER) or None


def _runtime_dir() -> Path:
    """This person's Jupyter runtime directory (0700): where the cross-kernel lock lives."""
    configured = os.environ.get("JUPYTER_RUNTIME_DIR")
    if configured:
        return Path(configured)
    data = os.environ.get("JUPYTER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"), "jupyter")
    return Path(data) / "runtime"


class JupyterHubToken(CredentialProvider):
    """The access token the Hub keeps for the person this server belongs to.

    Use it as a gateway's bearer token: ``login(gateway_url, headers={"Authorization":
    JupyterHubToken()})``, or ``%prefect_login --hub``. Every argument defaults to what
    JupyterHub puts in the server's environment.

    Args:
        api_url: the Hub's API (``$JUPYTERHUB_API_URL``).
        api_token: this server's token (``$JUPYTERHUB_API_TOKEN``).
        user: whose auth state to read (``$JUPYTERHUB_USER``).
        timeout: seconds one Hub call may take.
        max_backoff: the longest wait, in seconds, between Hub calls after failures.
        signed_out_poll: seconds between Hub calls while the Hub says the person is signed out.
        transport: an httpx transport for the Hub calls (tests); default: a real connection.
    """

    def __init__(self, *, api_url: str | None = None, api_token: str | Secret | None = None,
                 user: str | None = None, timeout: float = 10.0, max_backoff: float = 30.0,
                 signed_out_poll: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        api_url = api_url or os.environ.get(_ENV_URL)
        token = api_token if api_token is not None else os.environ.get(_ENV_TOKEN)
        user = user or os.environ.get(_ENV_USER)
        missing = [name for name, value in ((_ENV_URL, api_url), (_ENV_TOKEN, token), (_ENV_USER, user))
                   if not value]
        if missing:
            raise CredentialProviderError(
                f"Not running under JupyterHub: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set. A Hub sets them in every server it "
                "starts; outside a Hub, log in another way (prefect_nbauth.login(...) or %prefect_login).")
        assert api_url is not None and token is not None and user is not None
        self.api_url = api_url.rstrip("/")
        self.user = user
        self._api_token = Secret(token)
        _redaction.set_in_force(f"jupyterhub api token {id(self)}", [self._api_token])
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.signed_out_poll = signed_out_poll
        self._transport = transport
        self._lock = threading.Lock()
        self._last_value: Secret | None = None
        self._last_expiry: datetime | None = None
        self._last_token: Token | None = None
        self._failures = 0
        self._not_before = 0.0  # monotonic time before which the Hub is not asked again
        self._last_error: CredentialProviderError | None = None
        self._retry_at = ""
        #: Hub API calls made (each is one GET); for benchmarks and status.
        self.requests = 0

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        return "JupyterHub"

    def identity(self) -> str | None:
        return self.user

    def fetch(self) -> Token:
        """The person's current access token; see the module docstring for every rule."""
        with self._lock, self._across_kernels():
            if self._not_before > time.monotonic() and self._last_error is not None:
                raise type(self._last_error)(f"{self._last_error} (the Hub is asked again at {self._retry_at})")
            previous = self._last_token
            try:
                token = self._ask_hub()
            except HubSignedOutError as exc:
                self._remember_failure(exc, self.signed_out_poll)
                raise
            except CredentialProviderError as exc:
                self._failures += 1
                self._remember_failure(exc, min(self.max_backoff, 2.0 ** (self._failures - 1)))
                raise
            if token is not previous:
                self._failures = 0  # progress: a new token (the same one again resets nothing)
            self._last_error = None
            self._not_before = 0.0
            return token

    # ------------------------------------------------------------------- the Hub
    def _remember_failure(self, exc: CredentialProviderError, wait: float) -> None:
        self._last_error = exc
        self._not_before = time.monotonic() + wait
        # A time, not a countdown: the same failure reads the same until then (logged once).
        self._retry_at = (datetime.now() + timedelta(seconds=wait)).strftime("%H:%M:%S")

    @contextlib.contextmanager
    def _across_kernels(self) -> Iterator[None]:
        """Hold a lock file shared by this person's kernels (best effort: without a
        writable runtime directory, the in-process lock is all there is)."""
        try:
            directory = _runtime_dir()
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = open(directory / "prefect-nbauth-hub.lock", "a")  # noqa: SIM115 - closed below
        except OSError:
            yield
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ask_hub(self) -> Token:
        url = f"{self.api_url}/users/{quote(self.user, safe='')}"
        self.requests += 1
        try:
            with httpx.Client(transport=self._transport, timeout=self.timeout,
                              follow_redirects=False) as client:
                response = client.get(url, headers={"Authorization": f"token {self._api_token.reveal()}",
                                                    "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise CredentialProviderError(
                f"The JupyterHub API at {self.api_url} could not be reached ({type(exc).__name__}); "
                "is the Hub running?") from None
        if response.status_code in (401, 403, 404):
            raise CredentialProviderError(self._refused_message(response))
        if response.status_code != 200:
            raise CredentialProviderError(
                f"The JupyterHub API answered HTTP {response.status_code} for {self.user}; try again later.")
        try:
            model = json.loads(response.text)
        except ValueError:
            raise CredentialProviderError(
                f"The JupyterHub API at {self.api_url} answered with something that is not JSON.") from None
        del response  # its body holds the refresh token: not kept a moment longer than needed
        return self._token_from(model)

    def _refused_message(self, response: httpx.Response) -> str:
        said = _redaction.scrub_text(_hub_message(response))[:200]
        what = f"The JupyterHub API refused to show {self.user}'s user model (HTTP {response.status_code}"
        what += f": {said})." if said else ")."
        if response.status_code == 401:
            return what + (" This server's JupyterHub token is not valid (any more): restart your "
                           "server from the Hub's home page.")
        return what + (" The server's token needs a scope on its owner's model; the Hub admin adds "
                       f"to the Hub's configuration: {ROLES_SETTING}")

    def _token_from(self, model: Any) -> Token:
        if not isinstance(model, dict):
            raise CredentialProviderError("The JupyterHub API answered with something that is not a user model.")
        if "auth_state" not in model:
            raise CredentialProviderError(
                f"JupyterHub does not show this server its owner's auth state: the server's token lacks "
                f"the admin:auth_state!user scope. The Hub admin adds to the Hub's configuration: "
                f"{ROLES_SETTING}")
        state = model.pop("auth_state")
        if not isinstance(state, dict) or not state:
            raise CredentialProviderError(
                f"JupyterHub keeps no auth state for {self.user}. The Hub admin sets "
                f"{AUTH_STATE_SETTING}; then {self.user} signs in to the Hub again.")
        response = state.get("token_response")
        lifetime = response.get("expires_in") if isinstance(response, dict) else None
        _scrub_auth_state(state)
        signed_out = state.get("signed_out")
        if signed_out:
            raise HubSignedOutError(self._signed_out_message(signed_out))
        value = state.get("access_token")
        if not isinstance(value, str) or not value.strip():
            raise CredentialProviderError(
                f"The auth state JupyterHub keeps for {self.user} holds no access token: the Hub's "
                "authenticator must be an OAuthenticator (GenericOAuthenticator) with "
                f"{AUTH_STATE_SETTING}.")
        access = Secret(value.strip())
        expires_at = self._expiry(state.get("expires_at"), lifetime, access)
        if self._last_value is not None and access == self._last_value and self._last_expiry is not None \
                and self._last_expiry <= datetime.now(timezone.utc):
            ago = (datetime.now(timezone.utc) - self._last_expiry).total_seconds()
            raise CredentialProviderError(
                f"JupyterHub handed out {self.user}'s access token again, which expired {ago:.0f} s ago: "
                "the Hub has not refreshed it (by itself it refreshes only every "
                "c.Authenticator.auth_refresh_age seconds, after the identity provider refused the old "
                f"token). The Hub admin adds {HOOK_SETTING}.")
        if self._last_token is not None and self._last_token.value == access \
                and self._last_token.expires_at == expires_at:
            left = self._last_token.remaining()
            lifetime_s = (expires_at - self._last_token.obtained_at).total_seconds() if expires_at else None
            if left is None or lifetime_s is None or left > max(NEAR_EXPIRY, lifetime_s / 4):
                # Asked again long before the token ends: the gateway refused it (revoked, or
                # expired sooner than the Hub knows). Not the same token again: nothing changes.
                raise CredentialProviderError(
                    f"The gateway refused {self.user}'s access token and JupyterHub has no newer one: "
                    "it was revoked, or it expired before the Hub refreshed it (a Hub without the "
                    f"refresh hook hands out expired tokens; the Hub admin adds {HOOK_SETTING}).")
            # Near its end: the Hub refreshes at its own margin; the very token in use until then.
            return self._last_token
        self._last_value, self._last_expiry = access, expires_at
        self._last_token = Token(access, expires_at)
        return self._last_token

    def _expiry(self, stamped: Any, lifetime: Any, access: Secret) -> datetime | None:
        if isinstance(stamped, (int, float)) and not isinstance(stamped, bool):
            return datetime.fromtimestamp(float(stamped), timezone.utc)
        if access == self._last_value:
            return self._last_expiry  # the same token: counted from when it was first seen
        if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool) and lifetime > 0:
            # One second less: providers floor the issue time to the whole second.
            return datetime.now(timezone.utc) + timedelta(seconds=float(lifetime) - 1.0)
        return expiry_of(jwt_claims(access.reveal()))

    def _signed_out_message(self, signed_out: Any) -> str:
        when = ""
        if isinstance(signed_out, dict) and isinstance(signed_out.get("at"), (int, float)):
            when = " at " + datetime.fromtimestamp(signed_out["at"]).strftime("%H:%M:%S")
        return (f"{self.user} is signed out: JupyterHub can no longer refresh the sign-in (the identity "
                f"provider refused it{when}). Sign in to JupyterHub again (log out of the Hub, then log "
                f"in); this kernel picks the new sign-in up by itself within {self.signed_out_poll:g} s, "
                "no restart needed.")


def _scrub_auth_state(state: dict[str, Any]) -> None:
    """Make every token in ``state`` known to the log scrubber, then drop all but the access token."""
    found = state.get("token_response")
    response: dict[str, Any] = found if isinstance(found, dict) else {}
    secrets = [state.get(k) for k in ("access_token", "refresh_token", "id_token")]
    secrets += [response.get(k) for k in ("access_token", "refresh_token", "id_token")]
    _redaction.set_in_force("jupyterhub auth state", [s for s in secrets if isinstance(s, str)])
    for key in ("refresh_token", "id_token", "token_response"):
        state.pop(key, None)


def _hub_message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.text)
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""

