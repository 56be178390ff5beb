"""status(): what Prefect in this process sends right now, where it came from, what is wrong.

It reads the settings Prefect really uses (the global settings context built at
``import prefect``, or the one ``login()`` installed) and compares them with every
source as it is now (:mod:`._sources`), then, unless told not to, asks the server
(:mod:`._probe`). The login state it reads is :mod:`._state`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import _prefect_seam as seam
from .. import _versions
from .._boundary import public
from .._exceptions import PrefectAuthError
from .._inputs import Credential, check_timeout, is_cloud_url
from .._jwt import expiry_of, jwt_claims
from .._secrets import Secret, auth_string_user, mask, mask_auth_string
from .._tls import ssl_context
from . import _state
from ._auth_status import AuthMode, AuthStatus
from ._probe import probe_cloud, probe_server
from ._sources import CREDENTIAL_SETTINGS, SettingSpec, effective_values, read_sources
from ._status_rules import Facts, Origin, warnings_for

__all__ = ["status"]


@public()
def status(*, check_server: bool = True, timeout: float = 3.0) -> AuthStatus:
    """What Prefect in this process sends right now, where it came from, and what is wrong.

    Works whether or not :func:`login` was called: it reads the settings Prefect
    actually uses (built at ``import prefect``, or replaced by ``login()``) and
    compares them with the environment, ``.env``, ``prefect.toml``,
    ``pyproject.toml`` and the active profile as they are now. With
    ``check_server`` (the default) it also asks the server for its version and
    whether it accepts the credential. The warnings come from the independent
    checks in :mod:`._status_rules`.
    """
    _versions.require_supported_client()
    facts = _gather(check_server=check_server, timeout=check_timeout(timeout))
    return AuthStatus(
        mode=facts.mode, api_url=facts.url, identity=_identity(facts), sources=_sources(facts),
        expires_at=facts.expires_at, warnings=warnings_for(facts), server_version=facts.server_version,
        credential=_credential_text(facts), workspace=_workspace(facts), server_auth=facts.server_auth,
        logged_in=facts.ours, notes=() if facts.login is not None else _state.logout_notes(),
    )


def _gather(*, check_server: bool, timeout: float) -> Facts:
    """Read the settings in force, the login, every source and (if asked) the server, once."""
    with _state.lock:
        login = _state.current()
        context = seam.active_settings_context()
        global_context = seam.global_settings_context()
    settings = context.settings
    mine = login if login is not None and context is login.installed else None  # its settings in force
    values = effective_values(settings)
    if mine is not None and mine.credential.headers:
        values["PREFECT_CLIENT_CUSTOM_HEADERS"] = mine.gateway_headers()
    url, auth_string, api_key = (values["PREFECT_API_URL"], values["PREFECT_API_AUTH_STRING"],
                                 values["PREFECT_API_KEY"])
    custom_headers: dict[str, str] = values["PREFECT_CLIENT_CUSTOM_HEADERS"] or {}
    cloud_api_url = seam.cloud_api_url(settings)
    auth_header_name = next((n for n in custom_headers if n.lower() == "authorization"), None)

    found = read_sources((login.original if login else global_context).profile.name)
    origins = {spec.name: _origin(spec, values[spec.name], found[spec.name], ours=mine is not None)
               for spec in CREDENTIAL_SETTINGS}
    expires_at, subject = _expiry_and_subject(custom_headers, mine)
    server = (_probe_for_status(url, auth_string, api_key, custom_headers, settings, cloud_api_url, timeout)
              if check_server and url else None)
    server_version = mine.server_version if mine is not None else None
    server_auth = mine.server_auth if mine is not None else None
    if isinstance(server, dict):
        server_version = server.get("version") or server_version
        server_auth = server.get("auth") or server_auth
    return Facts(
        settings=settings, url=url, auth_string=auth_string, api_key=api_key,
        custom_headers=custom_headers, cloud_api_url=cloud_api_url,
        mode=_mode(auth_string, api_key, custom_headers, auth_header_name),
        auth_header_name=auth_header_name, login=login, ours=mine is not None,
        replaced=login is not None and global_context is not login.installed,
        local_context=seam.local_settings_context_active(), origins=origins,
        expires_at=expires_at, header_subject=subject,
        rotating=bool(mine is not None and mine.rotating), server=server,
        server_version=server_version, server_auth=server_auth,
    )


def _mode(auth_string: str | None, api_key: str | None, custom_headers: dict[str, str],
          auth_header_name: str | None) -> AuthMode:
    """The kind of credential Prefect sends: a custom Authorization header wins, as in Prefect."""
    if auth_header_name:
        return AuthMode.HEADERS
    if auth_string:
        return AuthMode.BASIC
    if api_key:
        return AuthMode.API_KEY
    return AuthMode.HEADERS if custom_headers else AuthMode.NONE


def _origin(spec: SettingSpec, value: Any, candidates: list[Any], ours: bool) -> Origin:
    """Where a value in force came from; a warning when a source says otherwise.

    Prefect reads settings once, at ``import prefect``: a source changed since
    then (most often ``os.environ``) is silently ignored.
    """
    if value is None:
        if candidates and not ours:
            return Origin(None, (
                f"{spec.name} is set in the {candidates[0].source}, but Prefect in this process does "
                "not use it: it was set after `import prefect`, which reads settings only "
                "once. Use prefect_nbauth.login(…) (or %prefect_login --from-env) instead "
                "of setting os.environ."))
        return Origin(None)
    if ours:
        differing = [c for c in candidates if c.value != value]
        if differing and differing[0].source == "environment variable":
            return Origin("login()", (
                f"{spec.name} in the environment differs from the login() credential. "
                "Prefect in this process uses the login, but programs you start from it "
                "(`!prefect …`, subprocesses) use the environment variable."))
        return Origin("login()")
    if candidates and candidates[0].value == value:
        return Origin(candidates[0].source)
    matching = [c for c in candidates if c.value == value]
    if matching:
        shown = "(value hidden)" if spec.secret else repr(candidates[0].value)
        return Origin(matching[0].source, (
            f"{spec.name} in the {candidates[0].source} {shown} differs from what Prefect "
            f"sends, which comes from the {matching[0].source}: it was changed after "
            "`import prefect`, so Prefect ignores it. Use prefect_nbauth.login(…) to switch."))
    label = "settings in force since import (no current source has this value)"
    if candidates and candidates[0].source == "environment variable":
        return Origin(label, (
            f"{spec.name} was changed in os.environ after `import prefect`; Prefect still "
            "sends the value it read at import. Use prefect_nbauth.login(…) to switch."))
    return Origin(label)


def _expiry_and_subject(custom_headers: dict[str, str], login: Any) -> tuple[datetime | None, str | None]:
    """The earliest known expiry (JWT ``exp``, our tokens' own) and a JWT's email/subject."""
    expires_at: datetime | None = None
    subject: str | None = None
    for value in custom_headers.values():
        claims = jwt_claims(str(value))
        if claims:
            expires_at = expiry_of(claims) or expires_at
            subject = subject or (str(claims.get("email") or claims.get("sub") or "") or None)
    for token in (login.tokens.values() if login is not None else ()):
        token_expiry = token.snapshot()["expires_at"]
        if isinstance(token_expiry, datetime):
            expires_at = token_expiry if expires_at is None else min(expires_at, token_expiry)
    return expires_at, subject


def _server_says(f: Facts, key: str) -> Any:
    return f.server.get(key) if isinstance(f.server, dict) else None


def _identity(f: Facts) -> str | None:
    """Who the server sees: its own answer, then our login's, then the Basic user, then a JWT's."""
    identity = f.header_subject
    if f.mode is AuthMode.BASIC and auth_string_user(f.auth_string):
        # Prefect compares the whole string: only a ':' after a name-like part names a user.
        identity = auth_string_user(f.auth_string)
    if f.our_login is not None:
        identity = f.our_login.identity or identity
    return _server_says(f, "identity") or identity


def _workspace(f: Facts) -> str | None:
    login_workspace = f.our_login.workspace if f.our_login is not None else None
    return _server_says(f, "workspace") or login_workspace


def _sources(f: Facts) -> dict[str, str]:
    sources = {name: origin.source for name, origin in f.origins.items() if origin.source}
    if f.our_login is not None and f.our_login.persisted_to:
        sources["saved to"] = f"profile {f.our_login.persisted_to}"
    return sources


def _credential_text(f: Facts) -> str:
    """The credential in force, masked: never any part of a password."""
    headers = ", ".join(f"{n}={mask(str(v))}" for n, v in f.custom_headers.items())
    if f.mode is AuthMode.BASIC and f.auth_string:
        text = f"auth string {mask_auth_string(f.auth_string)}"
        if not auth_string_user(f.auth_string):
            text += " (no user name is known: none is shown)"
        return text + (f"; headers {headers}" if headers else "")
    if f.mode is AuthMode.API_KEY and f.api_key:
        return f"API key {mask(f.api_key)}"
    if f.mode is AuthMode.HEADERS:
        return f"headers {headers}"
    return "none"


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
