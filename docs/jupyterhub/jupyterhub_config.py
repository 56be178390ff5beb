# JupyterHub configuration: every person's kernel signed in to Prefect as that person,
# on the access token the Hub keeps fresh (prefect_nbauth.JupyterHubToken, `%prefect_login --hub`).
#
# This is the file the tests start their Hub with (tests/hub/), for JupyterHub 6.1.1,
# oauthenticator 17.4.0 and configurable-http-proxy 5.3.0, against an OpenID provider that
# issues refresh tokens. Site values come from the environment:
#
#   OIDC_ISSUER            the identity provider, e.g. https://sso.example.com
#   OIDC_CLIENT_ID         the Hub's client at the provider (confidential, client_secret_post,
#   OIDC_CLIENT_SECRET     authorization_code + refresh_token grants)
#   JUPYTERHUB_PUBLIC_URL  where people reach the Hub, e.g. https://hub.example.com
#   PREFECT_API_URL        the SSO gateway in front of Prefect, given to every server
#   JUPYTERHUB_CRYPT_KEY   auth state is encrypted with it (openssl rand -hex 32)
#   JUPYTERHUB_STATE_DIR   the Hub's database and cookie secret (made 0700 here)
#
# The comments say why each setting is there; docs/jupyterhub.md says what to change.
import asyncio
import os
import time

from oauthenticator.generic import GenericOAuthenticator
from tornado.httpclient import HTTPClientError
from tornado.web import HTTPError

c = get_config()  # noqa: F821 - defined by JupyterHub when it loads this file

issuer = os.environ["OIDC_ISSUER"].rstrip("/")
public_url = os.environ["JUPYTERHUB_PUBLIC_URL"].rstrip("/")

# The Hub's database holds every person's (encrypted) auth state and is created 0644:
# keep it in a directory only the Hub's user can enter.
state_dir = os.environ.get("JUPYTERHUB_STATE_DIR", "/srv/jupyterhub")
os.makedirs(state_dir, mode=0o700, exist_ok=True)
os.chmod(state_dir, 0o700)
c.JupyterHub.db_url = f"sqlite:///{state_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state_dir}/jupyterhub_cookie_secret"

# --- signing people in -------------------------------------------------------------
c.JupyterHub.authenticator_class = GenericOAuthenticator
c.GenericOAuthenticator.client_id = os.environ["OIDC_CLIENT_ID"]
c.GenericOAuthenticator.client_secret = os.environ["OIDC_CLIENT_SECRET"]
c.GenericOAuthenticator.oauth_callback_url = f"{public_url}/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = f"{issuer}/auth"
c.GenericOAuthenticator.token_url = f"{issuer}/token"
c.GenericOAuthenticator.userdata_url = f"{issuer}/me"
c.GenericOAuthenticator.scope = ["openid", "profile", "offline_access"]
c.GenericOAuthenticator.username_claim = "preferred_username"
# Without prompt=consent, oidc-provider drops offline_access: no refresh token, and the
# Hub could never refresh. (Other providers ignore it or ask for consent once more.)
c.GenericOAuthenticator.extra_authorize_params = {"prompt": "consent"}
c.GenericOAuthenticator.allow_all = True  # your site: allowed_users / allowed_groups instead

# --- auth state: the tokens, kept and refreshed by the Hub --------------------------
c.Authenticator.enable_auth_state = True  # needs JUPYTERHUB_CRYPT_KEY
c.Authenticator.refresh_pre_spawn = True
# How often the Hub runs refresh_user (below) for a request. The hook answers from the
# stamped expiry without asking the provider while the token has time left, so a short
# age costs nothing; it must be shorter than the margin the hook refreshes ahead by.
c.Authenticator.auth_refresh_age = 1
# Seconds before the access token's expiry from which the Hub refreshes it: at least
# this, or a third of the token's lifetime, whichever is longer.
REFRESH_AHEAD = 5.0


def stamp_expiry(authenticator, auth_state):
    """Record when the access token ends: the provider says only `expires_in`, relative
    to a response the Hub received at some moment it does not keep. One second less,
    because providers floor the issue time to the whole second."""
    expires_in = (auth_state.get("token_response") or {}).get("expires_in")
    if expires_in:
        auth_state["expires_at"] = time.time() + float(expires_in) - 1.0
        auth_state["expires_in"] = float(expires_in)
    return auth_state


_refresh_locks = {}


async def refresh_ahead_of_expiry(authenticator, user, auth_state):
    """Refresh the access token before it expires, one refresh per person at a time.

    By itself the Hub refreshes only after the provider has refused the stored token, and
    hands out expired tokens until then. Two refreshes at once would send the same
    rotating refresh token twice, which makes the provider revoke the whole sign-in:
    hence the lock, and reading the auth state again inside it."""
    lock = _refresh_locks.setdefault(user.name, asyncio.Lock())
    async with lock:
        auth_state = await user.get_auth_state()
        if not auth_state:
            return None  # nothing stored: JupyterHub's own behaviour (a new sign-in)
        if auth_state.get("signed_out"):
            # The provider refused the refresh token. Browser requests are sent to sign in
            # again; a kernel's requests still get this state and tell the person so.
            return False
        expires_at = auth_state.get("expires_at")
        lifetime = auth_state.get("expires_in") or 0
        if expires_at and expires_at - time.time() > max(REFRESH_AHEAD, lifetime / 3):
            return True  # still fresh: no request to the provider
        refresh_token = auth_state.get("refresh_token")
        if not refresh_token:
            return None
        params = authenticator.build_refresh_token_request_params(refresh_token)
        try:
            token_info = await authenticator.get_token_info(None, params)
        except (HTTPClientError, HTTPError) as e:
            if 400 <= (getattr(e, "code", None) or getattr(e, "status_code", 500)) < 500:
                # Refused (revoked, expired, signed out at the provider): keep no token.
                authenticator.log.warning("refresh token of %s refused: signed out", user.name)
                reason = "the identity provider refused the refresh token"
                signed_out = {"signed_out": {"at": time.time(), "reason": reason},
                              "oauth_user": auth_state.get("oauth_user")}
                await user.save_auth_state(signed_out)
                return {"name": user.name, "auth_state": signed_out}
            authenticator.log.warning("refreshing %s failed (%s); trying again later", user.name, e)
            return True  # the provider is unreachable: keep what there is, retry later
        token_info.setdefault("refresh_token", refresh_token)
        new_state = authenticator.build_auth_state_dict(token_info, auth_state.get("oauth_user"))
        if asyncio.iscoroutine(new_state):
            new_state = await new_state
        new_state = stamp_expiry(authenticator, new_state)
        # Saved before the lock is released: the Hub saves it only after more awaits, and a
        # request waiting on the lock must not read the old (now spent) refresh token.
        await user.save_auth_state(new_state)
        return {"name": user.name, "auth_state": new_state}


c.GenericOAuthenticator.modify_auth_state_hook = stamp_expiry
c.GenericOAuthenticator.refresh_user_hook = refresh_ahead_of_expiry

# --- what a person's server may read: its own auth state, nobody else's --------------
# A server's token gets the intersection of the `server` role and its owner's own scopes,
# so the scope must be on both roles; `!user` limits it to the server's owner.
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "admin:auth_state!user"]},
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server", "admin:auth_state!user"]},
]

# --- the servers --------------------------------------------------------------------
# Kernels over IPC sockets in the person's 0700 runtime directory: over TCP (the default)
# any local user can connect to a kernel's IOPub port and read its output.
c.Spawner.args = ["--KernelManager.transport=ipc"]
if os.environ.get("PREFECT_API_URL"):
    c.Spawner.environment = {"PREFECT_API_URL": os.environ["PREFECT_API_URL"]}
