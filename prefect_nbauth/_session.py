"""login(), logout() and refresh(): the credential in force for this whole process.

The login state lives here (one lock, one current login); status() reads it
from :mod:`._diagnosis`, the profile file is :mod:`._persist`'s.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import _headers, _listeners, _persist, _prefect_compat, _redaction, _socket_auth, _versions
from . import _prefect_seam as seam
from ._auth import NbAuth
from ._boundary import public
from ._diagnosis import effective_values, status  # status() is re-exported: login() returns it
from ._exceptions import ConfigurationError, CredentialProviderError
from ._inputs import Credential, check_api_url, check_timeout
from ._login_checks import check_combination, resolve_api_url
from ._probe import DEFAULT_TIMEOUT, probe_cloud, probe_server
from ._providers import Token
from ._refresh import RefreshingToken
from ._secrets import Secret
from ._status import AuthStatus, jwt_claims
from ._tls import ssl_context
from ._tokens import KEY, SecretInput, credential_from, tokens_for
from ._urls import is_under

__all__ = ["login", "logout", "refresh", "status"]  # status: from _diagnosis

logger = logging.getLogger("prefect_nbauth")

# Login, logout and status may be called from cells, widget callbacks (threads)
# and flows at once; one lock keeps "validate, then swap" atomic for each.
_lock = threading.RLock()


@dataclass
class _Login:
    original: Any  # the global SettingsContext before the first login()
    installed: Any  # the one login() put in its place (replaced at each rotation)
    credential: Credential  # as validated at login (initial token values)
    identity: str | None
    workspace: str | None
    server_version: str | None
    server_auth: str | None
    persisted_to: str | None  # profile name, when persist=True
    tokens: dict[str, RefreshingToken] = field(default_factory=dict)  # slot -> token

    @property
    def rotating(self) -> bool:
        return any(t.provider.refreshable for t in self.tokens.values())

    @property
    def injects(self) -> bool:
        """Our hooks must add the credential per request: it rotates, or it has gateway
        headers (kept out of Prefect's settings, which print them in clear)."""
        return self.rotating or bool(self.credential.headers)

    def gateway_headers(self) -> dict[str, str]:
        """The gateway headers to send now, raw (current token values)."""
        credential = credential_from(self.credential.api_url, self.tokens, None)
        return credential.request_headers(prefect_credential=False)


_current: _Login | None = None


def _base_context() -> Any:
    """The settings that login() starts from: those in force before any login()."""
    with _lock:
        return _current.original if _current is not None else seam.global_settings_context()


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
    its current value, which will not be refreshed there).

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
    settings = _base_context().settings
    header_items = check_combination(auth_string=auth_string, api_key=api_key, headers=headers,
                                     workspace=workspace)
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
            credential, tokens, settings, str(settings.cloud.api_url).rstrip("/"), timeout)
    _install(credential, tokens, persist=persist, identity=identity, workspace=workspace_handle,
             server_version=version, server_auth=server_auth)
    logger.info("logged in to %s as %s", credential.api_url, identity or "anonymous")
    _listeners.notify("login")
    return status(check_server=False)


def _install(credential: Credential, tokens: dict[str, RefreshingToken], *, persist: bool,
             identity: str | None, workspace: str | None, server_version: str | None,
             server_auth: str | None) -> None:
    """Swap the validated credential in for the whole process, atomically, then start its tokens."""
    global _current
    _redaction.set_in_force("login", credential.secrets())
    with _lock:
        previous = _current
        original = previous.original if previous is not None else seam.global_settings_context()
        installed = _settings_for(original, credential)
        persisted_to = _persist.save_credential(_base_context().profile.name, credential) if persist else (
            previous.persisted_to if previous is not None else None)
        new_login = _Login(original=original, installed=installed, credential=credential,
                           identity=identity, workspace=workspace, server_version=server_version,
                           server_auth=server_auth, persisted_to=persisted_to, tokens=tokens)
        if new_login.injects:
            seam.install_client_auth(_NB_AUTH)
            seam.install_socket_refresh(_refresh_socket, on_rejected=_socket_auth.refresh_after_rejection)
            seam.install_gateway_headers(_gateway_headers_for)
        seam.install_redirect_guard()
        seam.install_global_settings_context(installed)
        _current = new_login
    if previous is not None:
        _stop_tokens(previous, keep=tokens)
    for token in tokens.values():
        token.start()
    seam.restart_background_services()


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


def _stop_tokens(login_state: _Login, keep: dict[str, RefreshingToken] | None = None) -> list[str]:
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
    with _lock:
        login_state = _current
        if login_state is None or token not in login_state.tokens.values():
            return  # a token of a login that has since been replaced
        credential = credential_from(login_state.credential.api_url, login_state.tokens,
                                      login_state.credential.workspace)
        _redaction.set_in_force("login", credential.secrets())
        installed = _settings_for(login_state.original, credential)
        was_in_force = seam.global_settings_context() is login_state.installed
        login_state.installed = installed
        if was_in_force:
            seam.install_global_settings_context(installed)
    _listeners.notify("rotation")
    # The events worker keeps its connection; it presents the new token on its
    # next reconnect (install_socket_refresh), so nothing needs restarting here.


def _refresh_socket(client: Any) -> dict[str, Token] | None:
    """Give an events client the current credential; returns the tokens it now presents."""
    login_state = _current
    if login_state is not None and login_state.injects:
        used = {slot: t.token for slot, t in login_state.tokens.items()}
        seam.refresh_socket_client(client, login_state.credential.api_url,
                                   _gateway_headers_for(login_state.credential.api_url))
        return used
    return None


def _gateway_headers_for(url: str) -> dict[str, str]:
    """Our login's gateway headers, for a URL under its API while its settings are in force."""
    login_state = _current
    if login_state is None or not login_state.credential.headers:
        return {}
    if seam.global_settings_context() is not login_state.installed:
        return {}  # somebody replaced our settings; do not fight them (as _active_rotation)
    http_url = re.sub(r"^ws(s?)://", r"http\1://", str(url))
    if not is_under(http_url, login_state.credential.api_url):
        return {}
    return login_state.gateway_headers()


class _Rotation:
    """What NbAuth needs from the active login: apply current tokens, refresh on 401."""

    def __init__(self, login_state: _Login) -> None:
        self.login = login_state
        self.api_url = login_state.credential.api_url.rstrip("/")
        self.refresh_failure: CredentialProviderError | None = None

    def covers(self, request: Any) -> bool:
        # Parsed origin and path on segment boundaries: a token for https://gw.example.com
        # never goes to https://gw.example.com.evil.net/ (a string prefix would).
        return is_under(request.url, self.api_url)

    def needs_refresh(self) -> bool:
        return any(t.token.expired() for t in self.login.tokens.values() if t.provider.refreshable)

    def ensure_fresh(self) -> None:
        for t in self.login.tokens.values():
            t.current()

    def apply(self, request: Any) -> dict[str, Token]:
        used = {slot: t.token for slot, t in self.login.tokens.items()}
        credential = credential_from(self.api_url, self.login.tokens, None)
        for name, value in credential.request_headers().items():
            request.headers[name] = value
        return used

    def refresh_after_rejection(self, used: dict[str, Token], *, reason: str = "HTTP 401") -> bool:
        """Refresh every refreshable token that was used; True when any changed."""
        changed = False
        for slot, token in self.login.tokens.items():
            if not token.provider.refreshable:
                continue
            before = used.get(slot)
            try:
                new = token.refresh(stale=before, reason=reason)
            except CredentialProviderError as exc:
                self.refresh_failure = exc  # why nothing changed, for the request to say
                continue
            if new is before and token.last_error:  # failed, the old token kept: still why
                self.refresh_failure = CredentialProviderError(token.last_error)
            changed = changed or new is not before
        return changed

    def rejected_twice_message(self) -> str:
        sources = ", ".join(f"the {t.slot} from {t.provider.describe()}"
                            for t in self.login.tokens.values() if t.provider.refreshable)
        return (f"{self.api_url} rejected a freshly refreshed credential (HTTP 401 twice): "
                f"{sources}. The provider returns tokens the server does not accept; check "
                "its configuration, then call prefect_nbauth.refresh() or log in again.")


def _active_rotation() -> _Rotation | None:
    with _lock:
        login_state = _current
        if login_state is None or not login_state.injects:
            return None
        if seam.global_settings_context() is not login_state.installed:
            return None  # somebody replaced our settings; do not fight them
    return _Rotation(login_state)


_NB_AUTH = NbAuth(_active_rotation)


@public()
def refresh() -> AuthStatus:
    """Refresh the credential now, whatever its expiry, and check it against the server.

    Raises:
        ConfigurationError: not logged in with :func:`login`.
        CredentialProviderError: a provider failed and no valid token is left.
        AuthenticationError: the server rejects the refreshed credential.
    """
    login_state = _current
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
    global _current
    with _lock:
        if _current is None:
            if forget:
                _persist.forget_credential(seam.global_settings_context().profile.name)
            return status(check_server=False)
        login_state = _current
        seam.install_global_settings_context(login_state.original)
        _current = None
        _redaction.set_in_force("login", ())  # still scrubbed for a while, as a recent secret
    _stop_tokens(login_state)
    with _lock:
        if forget:
            _persist.forget_credential(login_state.original.profile.name)
    seam.restart_background_services()
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


# ----------------------------------------------------------- websocket credentials


@dataclass(frozen=True)
class SocketCredential:
    """What a websocket to the Prefect API must present right now.

    ``headers`` go on the HTTP upgrade request (Basic/Bearer Authorization and any
    gateway headers); ``auth_token`` is the raw token of Prefect's first
    ``{"type": "auth", "token": …}`` message (the auth string, or the Cloud key).
    ``generation`` identifies this credential for :func:`refresh_socket_credential`.
    """

    api_url: str | None
    headers: dict[str, str]
    auth_token: str | None
    generation: tuple[int, ...]

    def __repr__(self) -> str:
        return (f"SocketCredential(api_url={self.api_url!r}, headers={sorted(self.headers)}, "
                f"auth_token={'<set>' if self.auth_token else None})")


def socket_credential() -> SocketCredential:
    """The credential a websocket connecting now must use (login, rotation or plain settings)."""
    from prefect.settings import get_current_settings

    with _lock:
        login_state = _current
    if login_state is not None and login_state.rotating:
        for token in login_state.tokens.values():
            token.current()  # refresh first if it already expired
    settings = get_current_settings()
    values = effective_values(settings)
    if values["PREFECT_API_URL"] and (gateway := _gateway_headers_for(values["PREFECT_API_URL"])):
        values["PREFECT_CLIENT_CUSTOM_HEADERS"] = {**(values["PREFECT_CLIENT_CUSTOM_HEADERS"] or {}), **gateway}
    url = values["PREFECT_API_URL"]
    auth_string = values["PREFECT_API_AUTH_STRING"]
    api_key = values["PREFECT_API_KEY"]
    headers = _headers.request_headers(
        auth_string=auth_string, api_key=api_key,
        headers={n: str(v) for n, v in (values["PREFECT_CLIENT_CUSTOM_HEADERS"] or {}).items()})
    generation = tuple(t.generation for t in login_state.tokens.values()) if login_state else ()
    return SocketCredential(api_url=url, headers=headers, auth_token=auth_string or api_key,
                            generation=generation)


def refresh_socket_credential(used: SocketCredential) -> bool:
    """A websocket was refused for auth with ``used``: refresh once (single flight).

    Returns True when a different credential is now available (retry with
    :func:`socket_credential`), False when nothing refreshable changed (give up
    with ``AuthenticationError``).
    """
    with _lock:
        login_state = _current
    if login_state is None or not login_state.rotating:
        return socket_credential().generation != used.generation or \
            socket_credential().headers != used.headers
    changed = False
    for index, token in enumerate(login_state.tokens.values()):
        if not token.provider.refreshable:
            continue
        if index < len(used.generation) and token.generation != used.generation[index]:
            changed = True  # already refreshed by someone else
            continue
        before = token.token
        try:
            changed = token.refresh(stale=before, reason="websocket closed for auth") is not before or changed
        except CredentialProviderError:
            continue
    return changed


# ------------------------------------------------------- for the notebook layer


def api_url_in_force() -> str | None:
    """The API URL Prefect in this process uses outside any flow run (login's, or import's)."""
    url = seam.global_settings_context().settings.api.url
    return str(url) if url else None


def settings_in_force() -> object:
    """An opaque token that changes whenever the process-wide settings are replaced.

    Widgets compare it between polls to notice a change made behind ``login()``'s
    back (``refresh_global_settings_context()``, a profile switch).
    """
    return seam.global_settings_context()
