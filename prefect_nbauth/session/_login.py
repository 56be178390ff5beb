"""login(), logout() and refresh(): the credential in force for this whole process.

The login state is :mod:`._state`'s (one lock, one current login); status() reads
it from :mod:`._status`, the profile file is :mod:`._persist`'s.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .. import _prefect_compat, _redaction, _versions
from .. import _prefect_seam as seam
from .._boundary import public
from .._exceptions import ConfigurationError, CredentialProviderError
from .._inputs import Credential, check_api_url, check_timeout
from .._jwt import jwt_claims
from .._secrets import Secret
from .._tls import ssl_context
from . import _children, _listeners, _open_clients, _persist
from ._auth_status import AuthStatus
from ._checks import check_combination, resolve_api_url
from ._probe import DEFAULT_TIMEOUT, probe_cloud, probe_server
from ._refreshing import RefreshingToken
from ._rotation import NB_AUTH
from ._socket_credential import refresh_after_rejection, refresh_socket
from ._state import Login, base_context, current, gateway_headers_for, lock, replace, set_logout_notes
from ._status import status  # login() returns it
from ._tokens import KEY, SecretInput, credential_from, tokens_for
from .providers import Token

__all__ = ["login", "logout", "refresh"]

logger = logging.getLogger("prefect_nbauth")


def _settings_for(original: Any, credential: Credential) -> Any:
    return seam.settings_with_credential(
        original,
        api_url=credential.api_url,
        auth_string=credential.auth_string.reveal() if credential.auth_string else None,
        api_key=credential.api_key.reveal() if credential.api_key else None,
        custom_headers={},  # gateway headers: added per request (_prefect_seam.install_gateway_headers)
    )


@public(secrets=("auth_string", "api_key"), maps=("headers",), urls=("api_url",))
def login(
    api_url: str | None = None,
    *,
    auth_string: SecretInput | None = None,
    api_key: SecretInput | None = None,
    headers: Mapping[str, SecretInput] | None = None,
    workspace: str | None = None,
    persist: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    refresh_margin: float | None = None,
) -> AuthStatus:
    """Log this process in to a Prefect API: validate first, then switch everything over.

    Give one credential:

    - ``auth_string="user:password"`` for a self-hosted server started with
      ``PREFECT_SERVER_API_AUTH_STRING`` (sent as HTTP Basic, and raw on websockets);
    - ``api_key="pnu_…"`` for Prefect Cloud, with ``workspace="account/workspace"``
      when the key can use several (``api_url`` defaults to Cloud);
    - ``headers={...}`` for a gateway in front of Prefect (Cloudflare Access, an
      OAuth2 proxy, IAP); may be combined with an auth string or key when the
      gateway wants its own headers besides Prefect's credential.

    Each secret may be a string or a credential provider (``EnvToken``,
    ``FileToken``, ``CommandToken``, ``CallableToken`` or a plain function,
    ``OAuth2ClientCredentials``). Provided tokens are refreshed ``refresh_margin``
    seconds before they expire (default: at least 1 s of clock skew plus the
    provider's fetch time, 5 % of their lifetime, or three times the recent fetch
    time, whichever is longest, at most a minute or half the lifetime) in the
    background, and once on HTTP 401 or a websocket refused for auth; every
    Prefect client in the process, including ones already open, follows.

    The credential is checked against the server before anything changes; on any
    error the credential already in force stays exactly as it was. After success,
    every ``get_client()``, ``@flow`` run, ``emit_event`` and events subscriber
    created in this process uses the new credential, without a restart.
    Nothing is written to disk unless ``persist=True``, which saves it to the
    active Prefect profile (a file readable only by you; a provider is saved as
    its current value, which will not be refreshed there). Gateway headers are
    never saved (``prefect config view`` would print them): ``persist=True`` with
    ``headers`` raises ConfigurationError.

    Raises:
        ConfigurationError: the input cannot work (found before any request).
        CredentialProviderError: a provider could not produce a token.
        AuthenticationError: the server rejected the credential.
        ServerUnreachableError: no Prefect API answered at the URL
            (``NotPrefectServerError`` when something else answered).
    """
    _versions.require_supported_client()
    if isinstance(api_url, Secret):
        check_api_url(api_url)  # not a plain http(s) URL: says why, without showing it
    timeout = check_timeout(timeout)
    if refresh_margin is not None:
        refresh_margin = check_timeout(refresh_margin, "refresh_margin", allow_zero=True)
    settings = base_context().settings
    header_items = check_combination(auth_string=auth_string, api_key=api_key, headers=headers,
                                     workspace=workspace)
    _persist.check_persistable(persist, header_items)
    url = resolve_api_url(api_url, auth_string=auth_string, api_key=api_key, settings=settings)
    try:
        tokens = tokens_for(auth_string=auth_string, api_key=api_key, headers=header_items,
                            margin=refresh_margin, on_refresh=_on_refresh)
    except CredentialProviderError as exc:
        raise CredentialProviderError(f"{exc} Nothing was changed.") from None

    _prefect_compat.require_seams(settings, custom_headers=bool(header_items),
                                  rotating=any(t.provider.refreshable for t in tokens.values()))
    credential = credential_from(url, tokens, workspace)
    with _redaction.validating(credential.secrets()):  # provider values: unknown to the boundary
        identity, workspace_handle, version, server_auth, credential = _validate(
            credential, tokens, settings, seam.cloud_api_url(settings), timeout)
    _install(credential, tokens, persist=persist, identity=identity, workspace=workspace_handle,
             server_version=version, server_auth=server_auth)
    logger.info("logged in to %s as %s", credential.api_url, identity or "anonymous")
    _listeners.notify("login")
    return status(check_server=False)


def _install(credential: Credential, tokens: dict[str, RefreshingToken], *, persist: bool,
             identity: str | None, workspace: str | None, server_version: str | None,
             server_auth: str | None) -> None:
    """Swap the validated credential in for the whole process, atomically, then start its tokens."""
    _redaction.set_in_force("login", credential.secrets())
    with lock:
        previous = current()
        original = previous.original if previous is not None else seam.global_settings_context()
        installed = _settings_for(original, credential)
        persisted_to = _persist.save_credential(base_context().profile.name, credential) if persist else (
            previous.persisted_to if previous is not None else None)
        new_login = Login(original=original, installed=installed, credential=credential,
                          identity=identity, workspace=workspace, server_version=server_version,
                          server_auth=server_auth, persisted_to=persisted_to, tokens=tokens)
        if new_login.injects:
            seam.install_client_auth(NB_AUTH)
            seam.install_socket_refresh(refresh_socket, on_rejected=refresh_after_rejection)
            seam.install_gateway_headers(gateway_headers_for)
        seam.install_redirect_guard()
        _children.install(lambda: current() is not None)
        seam.install_global_settings_context(installed)
        replace(new_login)
        set_logout_notes(())
        ended = _open_clients.switch(credential.api_url)
    if previous is not None:
        _stop_tokens(previous, keep=tokens)
    for token in tokens.values():
        token.start()
    seam.restart_background_services()
    ended.finish(previous.credential.headers if previous is not None else ())


def _validate(credential: Credential, tokens: dict[str, RefreshingToken], settings: Any,
              cloud_api_url: str, timeout: float) -> tuple[Any, ...]:
    """Ask the server; (identity, workspace handle, version, server auth, final credential)."""
    verify = ssl_context(settings)
    if KEY in tokens:
        info = probe_cloud(credential, cloud_api_url=cloud_api_url, verify=verify, timeout=timeout)
        credential = Credential(api_url=info.api_url, api_key=credential.api_key,
                                headers=credential.headers, workspace=info.workspace_handle)
        return info.identity, info.workspace_handle, info.version, "API key", credential
    server = probe_server(credential, verify=verify, timeout=timeout)
    server_auth = None if server.auth_required is None else ("BASIC" if server.auth_required else "none")
    return (_provider_identity(tokens) or credential.username or _token_subject(credential), None,
            server.version, server_auth, credential)


def _stop_tokens(login_state: Login, keep: dict[str, RefreshingToken] | None = None) -> list[str]:
    """Stop a login's tokens and close its providers (those a new login does not reuse).

    Returns what the providers said they did (``close()``: a revoked refresh token…).
    """
    kept = {id(t.provider) for t in (keep or {}).values()}
    said: list[str] = []
    for token in login_state.tokens.values():
        token.stop()
        if id(token.provider) in kept:
            continue
        try:
            note = token.provider.close()
        except Exception as exc:  # noqa: BLE001 - a provider's failure must not stop a logout
            note = f"{token.provider.describe()} could not close: {type(exc).__name__}: {exc}"
        if note:
            said.append(_redaction.scrub_text(str(note)))
    for note in said:
        logger.info("%s", note)
    return said


def _on_refresh(token: RefreshingToken, new: Token) -> None:
    """A token was refreshed: make the settings (hence new clients and sockets) carry it."""
    with lock:
        login_state = current()
        if login_state is None or token not in login_state.tokens.values():
            return  # a token of a login that has since been replaced
        credential = credential_from(login_state.credential.api_url, login_state.tokens,
                                     login_state.credential.workspace)
        _redaction.set_in_force("login", credential.secrets())
        installed = _settings_for(login_state.original, credential)
        was_in_force = login_state.in_force
        login_state.installed = installed
        if was_in_force:
            seam.install_global_settings_context(installed)
    _listeners.notify("rotation")
    # The events worker keeps its connection; it presents the new token on its
    # next reconnect (install_socket_refresh), so nothing needs restarting here.


@public()
def refresh() -> AuthStatus:
    """Refresh the credential now, whatever its expiry, and check it against the server.

    Raises:
        ConfigurationError: not logged in with :func:`login`.
        CredentialProviderError: a provider failed and no valid token is left.
        AuthenticationError: the server rejects the refreshed credential.
    """
    login_state = current()
    if login_state is None:
        raise ConfigurationError("Nothing to refresh: log in first with prefect_nbauth.login(…).")
    for token in login_state.tokens.values():
        if token.provider.refreshable:
            token.refresh(reason="forced")
    credential = credential_from(login_state.credential.api_url, login_state.tokens,
                                  login_state.credential.workspace)
    try:
        if KEY not in login_state.tokens:
            probe_server(credential, verify=ssl_context(login_state.original.settings))
    finally:
        _listeners.notify("refresh")
    return status(check_server=False)


@public()
def logout(*, forget: bool = False) -> AuthStatus:
    """Go back to exactly the settings in force before the first :func:`login`.

    With ``forget=True``, also remove the credential that ``login(persist=True)``
    saved to the profile.
    """
    with lock:
        login_state = current()
        if login_state is None:
            if forget:
                _persist.forget_credential(seam.global_settings_context().profile.name)
            return status(check_server=False)
        seam.install_global_settings_context(login_state.original)
        replace(None)
        ended = _open_clients.switch(None)
        _redaction.set_in_force("login", ())  # still scrubbed for a while, as a recent secret
    notes = _stop_tokens(login_state)
    set_logout_notes(notes)
    with lock:
        if forget:
            _persist.forget_credential(login_state.original.profile.name)
    seam.restart_background_services()
    ended.finish(login_state.credential.headers)  # clients opened while logged in: see _open_clients
    logger.info("logged out of %s", login_state.credential.api_url)
    _listeners.notify("logout")
    # Ask the server: after a logout the interesting news is often "it now says 401".
    return status(check_server=True)


def _provider_identity(tokens: dict[str, RefreshingToken]) -> str | None:
    """Who a provider says its token speaks for (a signed-in person), first one that knows."""
    for token in tokens.values():
        who = token.provider.identity()
        if who:
            return str(who)
    return None


def _token_subject(credential: Credential) -> str | None:
    for value in credential.headers.values():
        claims = jwt_claims(value.reveal())
        if claims:
            subject = claims.get("email") or claims.get("sub")
            if subject:
                return str(subject)
    return None
