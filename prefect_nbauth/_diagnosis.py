"""status(): what Prefect in this process sends right now, where it came from, what is wrong.

It reads the settings Prefect really uses (the global settings context built at
``import prefect``, or the one ``login()`` installed) and compares them with every
source as it is now (:mod:`._sources`), then, unless told not to, asks the server
(:mod:`._probe`). The login state it reads is :mod:`._session`'s.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _prefect_seam as seam
from . import _versions
from ._boundary import public
from ._exceptions import ConfigurationError, PrefectAuthError
from ._inputs import (
    Credential,
    check_api_key,
    check_auth_string,
    check_timeout,
    is_cloud_url,
    plain_http_warning,
)
from ._probe import probe_cloud, probe_server
from ._secrets import Secret, mask, mask_auth_string
from ._sources import CREDENTIAL_SETTINGS, read_sources
from ._status import AuthMode, AuthStatus, expiry_of, jwt_claims
from ._tls import ssl_context

__all__ = ["effective_values", "status"]


def _reveal(value: Any) -> Any:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else value


def effective_values(settings: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in CREDENTIAL_SETTINGS:
        node: Any = settings
        for part in spec.path:
            node = getattr(node, part)
        value = _reveal(node)
        if spec.name == "PREFECT_CLIENT_CUSTOM_HEADERS":
            value = dict(value or {}) or None
        values[spec.name] = value
    return values


@public()
def status(*, check_server: bool = True, timeout: float = 3.0) -> AuthStatus:
    """What Prefect in this process sends right now, where it came from, and what is wrong.

    Works whether or not :func:`login` was called: it reads the settings Prefect
    actually uses (built at ``import prefect``, or replaced by ``login()``) and
    compares them with the environment, ``.env``, ``prefect.toml``,
    ``pyproject.toml`` and the active profile as they are now. With
    ``check_server`` (the default) it also asks the server for its version and
    whether it accepts the credential.
    """
    from . import _session

    _versions.require_supported_client()
    timeout = check_timeout(timeout)
    with _session._lock:
        login_state = _session._current
        context = seam.active_settings_context()
        global_context = seam.global_settings_context()
    settings = context.settings
    values = effective_values(settings)
    if login_state is not None and context is login_state.installed and login_state.credential.headers:
        values["PREFECT_CLIENT_CUSTOM_HEADERS"] = login_state.gateway_headers()
    url = values["PREFECT_API_URL"]
    auth_string = values["PREFECT_API_AUTH_STRING"]
    api_key = values["PREFECT_API_KEY"]
    custom_headers: dict[str, str] = values["PREFECT_CLIENT_CUSTOM_HEADERS"] or {}
    cloud_api_url = str(settings.cloud.api_url).rstrip("/")
    warnings: list[str] = []

    ours = login_state is not None and context is login_state.installed
    if login_state is not None and global_context is not login_state.installed:
        warnings.append(
            "Something replaced the settings that login() installed (for example "
            "prefect.context.refresh_global_settings_context()); Prefect no longer uses the "
            "login. Log in again."
        )
    if seam.local_settings_context_active():
        warnings.append(
            "This code runs inside a Prefect settings context (a flow run, use_profile() or "
            "temporary_settings()); shown are that context's settings, and login() changes "
            "only the process-wide ones used outside it."
        )

    auth_header_name = next((n for n in custom_headers if n.lower() == "authorization"), None)
    if auth_header_name:
        mode = AuthMode.HEADERS
    elif auth_string:
        mode = AuthMode.BASIC
    elif api_key:
        mode = AuthMode.API_KEY
    elif custom_headers:
        mode = AuthMode.HEADERS
    else:
        mode = AuthMode.NONE

    # Where each value came from.
    profile_name = (login_state.original if login_state else global_context).profile.name
    found = read_sources(profile_name)
    sources: dict[str, str] = {}
    for spec in CREDENTIAL_SETTINGS:
        value = values[spec.name]
        candidates = found[spec.name]
        if value is None:
            if candidates and not ours:
                first = candidates[0]
                warnings.append(
                    f"{spec.name} is set in the {first.source}, but Prefect in this process does "
                    "not use it: it was set after `import prefect`, which reads settings only "
                    "once. Use prefect_nbauth.login(…) (or %prefect_login --from-env) instead "
                    "of setting os.environ."
                )
            continue
        if ours:
            sources[spec.name] = "login()"
            differing = [c for c in candidates if c.value != value]
            if differing and differing[0].source == "environment variable":
                warnings.append(
                    f"{spec.name} in the environment differs from the login() credential. "
                    "Prefect in this process uses the login, but programs you start from it "
                    "(`!prefect …`, subprocesses) use the environment variable."
                )
            continue
        matching = [c for c in candidates if c.value == value]
        if candidates and candidates[0].value == value:
            sources[spec.name] = candidates[0].source
        elif matching:
            sources[spec.name] = matching[0].source
            shown = "(value hidden)" if spec.secret else repr(candidates[0].value)
            warnings.append(
                f"{spec.name} in the {candidates[0].source} {shown} differs from what Prefect "
                f"sends, which comes from the {matching[0].source}: it was changed after "
                "`import prefect`, so Prefect ignores it. Use prefect_nbauth.login(…) to switch."
            )
        else:
            sources[spec.name] = "settings in force since import (no current source has this value)"
            if candidates and candidates[0].source == "environment variable":
                warnings.append(
                    f"{spec.name} was changed in os.environ after `import prefect`; Prefect still "
                    "sends the value it read at import. Use prefect_nbauth.login(…) to switch."
                )

    # Conflicts Prefect resolves silently.
    if auth_string and api_key:
        warnings.append(
            f"Both an auth string ({sources.get('PREFECT_API_AUTH_STRING', 'set')}) and an API key "
            f"({sources.get('PREFECT_API_KEY', 'set')}) are set. Prefect sends only the auth "
            "string, as HTTP Basic, and ignores the API key. Unset the one you do not mean."
        )
    if auth_header_name and (auth_string or api_key):
        replaced = "auth string" if auth_string else "API key"
        warnings.append(
            f"A custom {auth_header_name} header (PREFECT_CLIENT_CUSTOM_HEADERS) replaces the "
            f"{replaced}: Prefect sends the custom header, not the {replaced}."
        )
    if os.environ.get("PREFECT_SERVER_API_AUTH_STRING") and not auth_string:
        warnings.append(
            "PREFECT_SERVER_API_AUTH_STRING is set in this environment but the client setting "
            "PREFECT_API_AUTH_STRING is not. The SERVER setting only tells a server what to "
            "require; clients send PREFECT_API_AUTH_STRING. Log in with auth_string=… instead."
        )
    if auth_string:
        try:
            check_auth_string(auth_string)
        except ConfigurationError as exc:
            warnings.append(f"The auth string in force cannot work: {exc}")
    if api_key:
        try:
            check_api_key(api_key)
        except ConfigurationError as exc:
            warnings.append(f"The API key in force cannot work: {exc}")
        if url and not is_cloud_url(url, cloud_api_url) and mode is AuthMode.API_KEY:
            warnings.append(
                f"An API key is set, but {url} is not Prefect Cloud ({cloud_api_url}). A "
                "self-hosted server ignores Bearer keys; it wants PREFECT_API_AUTH_STRING."
            )
    if url and mode is not AuthMode.NONE and (warning := plain_http_warning(url)):
        warnings.append(warning)
    if settings.api.tls_insecure_skip_verify:
        warnings.append(
            "TLS certificate checks are off (PREFECT_API_TLS_INSECURE_SKIP_VERIFY): anyone who can "
            "intercept the connection can read the credential. Point PREFECT_API_SSL_CERT_FILE "
            "at your CA instead."
        )
    if not url:
        if settings.server.ephemeral.enabled or getattr(settings.server, "allow_ephemeral_mode", False):
            warnings.append(
                "No PREFECT_API_URL is in force: Prefect starts a temporary local server for "
                "this process, and nothing is authenticated. Log in to use a real server."
            )
        else:
            warnings.append("No PREFECT_API_URL is in force; Prefect API calls will fail. Log in first.")

    # Expiry and identity from tokens we can read.
    expires_at = None
    identity: str | None = None
    for value in custom_headers.values():
        claims = jwt_claims(str(value))
        if claims:
            expires_at = expiry_of(claims) or expires_at
            identity = identity or (str(claims.get("email") or claims.get("sub") or "") or None)
    rotating = bool(ours and login_state is not None and login_state.rotating)
    if ours and login_state is not None:
        for token in login_state.tokens.values():
            info = token.snapshot()
            token_expiry = info["expires_at"]
            if isinstance(token_expiry, datetime):
                expires_at = token_expiry if expires_at is None else min(expires_at, token_expiry)
            # Gateway tokens nearly always expire; one whose expiry we cannot know is
            # refreshed late (after a 401). Auth strings and keys rarely expire: no noise.
            if (token.provider.refreshable and token_expiry is None and not info["last_error"]
                    and token.slot.startswith("header ")):
                warnings.append(
                    f"The {info['slot']} from {info['provider']} has no known expiry (no "
                    "expires_in, no JWT exp claim, no ttl=): it is refreshed only when the "
                    "server rejects it. Pass ttl=… to the provider to refresh it ahead of time."
                )
            if info["last_error"]:
                warnings.append(
                    f"Refreshing the {info['slot']} from {info['provider']} failed "
                    f"({info['failures']} time(s)): {info['last_error']} The previous token stays "
                    "in use while it is valid; retries continue in the background."
                )
    if expires_at is not None and not rotating:
        now = datetime.now(timezone.utc)
        if expires_at <= now:
            warnings.append(
                f"The token in the custom headers expired at {expires_at.isoformat(timespec='seconds')}; "
                "requests will be rejected. Log in again with a fresh token."
            )
        elif expires_at - now < timedelta(minutes=5):
            warnings.append(
                f"The token in the custom headers expires soon ({expires_at.isoformat(timespec='seconds')})."
            )

    if mode is AuthMode.BASIC and auth_string:
        # Prefect compares the whole string: only a ':' makes its first part a user name.
        identity = auth_string.split(":", 1)[0] if ":" in auth_string else identity
        credential_text = f"auth string {mask_auth_string(auth_string)}"
        if ":" not in auth_string:
            credential_text += " (no ':', so no user name is known)"
    elif mode is AuthMode.API_KEY and api_key:
        credential_text = f"API key {mask(api_key)}"
    elif mode is AuthMode.HEADERS:
        credential_text = "headers " + ", ".join(f"{n}={mask(str(v))}" for n, v in custom_headers.items())
    else:
        credential_text = "none"
    if mode is AuthMode.BASIC and custom_headers:
        credential_text += "; headers " + ", ".join(f"{n}={mask(str(v))}" for n, v in custom_headers.items())

    workspace = server_version = server_auth = None
    if ours and login_state is not None:
        identity = login_state.identity or identity
        workspace = login_state.workspace
        server_version = login_state.server_version
        server_auth = login_state.server_auth
    if login_state is not None and login_state.persisted_to and ours:
        sources["saved to"] = f"profile {login_state.persisted_to}"

    if check_server and url:
        probe_result = _probe_for_status(url, auth_string, api_key, custom_headers, settings,
                                         cloud_api_url, timeout)
        if isinstance(probe_result, str):
            warnings.append(probe_result)
        else:
            server_version = probe_result.get("version") or server_version
            server_auth = probe_result.get("auth") or server_auth
            identity = probe_result.get("identity") or identity
            workspace = probe_result.get("workspace") or workspace
            if probe_result.get("auth") == "BASIC" and mode is AuthMode.NONE:
                warnings.append(
                    "The server requires an auth string (its /ui-settings says BASIC) but none is "
                    "set here, so every request gets HTTP 401. Log in with auth_string=…."
                )
            elif probe_result.get("rejection"):
                warnings.append(f"The server rejects the credential in force: {probe_result['rejection']}")
            if probe_result.get("auth") == "none" and mode is AuthMode.BASIC:
                warnings.append(
                    "The server does not check auth strings (its /ui-settings says auth is off): "
                    "anyone who can reach it can use it."
                )

    warnings += _versions.compatibility_warnings(server_version, server_auth,
                                                 auth_string_set=bool(auth_string))
    return AuthStatus(
        mode=mode, api_url=url, identity=identity, sources=sources, expires_at=expires_at,
        warnings=tuple(dict.fromkeys(warnings)), server_version=server_version,
        credential=credential_text, workspace=workspace, server_auth=server_auth,
        logged_in=ours,
    )


def _probe_for_status(url: str, auth_string: str | None, api_key: str | None,
                      custom_headers: dict[str, str], settings: Any, cloud_api_url: str,
                      timeout: float) -> dict[str, Any] | str:
    """Ask the server about the credential in force; a string is a warning."""
    try:
        headers = {n: Secret(str(v)) for n, v in custom_headers.items()}
        credential = Credential(
            api_url=url,
            auth_string=Secret(auth_string) if auth_string else None,
            api_key=Secret(api_key) if api_key and not auth_string else None,
            headers=headers,
        )
        verify = ssl_context(settings)
        if credential.api_key is not None and is_cloud_url(url, cloud_api_url) and not headers:
            info = probe_cloud(credential, cloud_api_url=cloud_api_url, verify=verify, timeout=timeout)
            return {"version": info.version, "auth": "API key", "identity": info.identity,
                    "workspace": info.workspace_handle}
        server = probe_server(credential, verify=verify, timeout=timeout, raise_on_reject=False)
        auth = None if server.auth_required is None else ("BASIC" if server.auth_required else "none")
        return {"version": server.version, "auth": auth, "rejection": server.rejection}
    except PrefectAuthError as exc:
        return f"Server check failed: {exc}"
