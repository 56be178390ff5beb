"""Talking to the server to validate a credential, without changing anything.

Self-hosted: ``GET /ui-settings`` (public; served by the UI app at the server's
root, beside ``/api``, not under it: ``/api/ui-settings`` answers 401 on an
auth-protected 3.9 server) tells whether the server enforces an auth string;
``GET /api/admin/version`` (protected) checks the credential.
Prefect Cloud: ``GET /api/me/`` and ``GET /api/me/workspaces`` check the key and
list the workspaces it can use; a workspace's API URL is built from them.

Probes never follow redirects (a credential must not travel to another host),
read at most ``MAX_BODY`` bytes of any answer, and scrub the credential from
anything a server echoes back before it can reach an error message.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._exceptions import (
    AuthenticationError,
    ConfigurationError,
    NotPrefectServerError,
    PrefectAuthError,
    ServerUnreachableError,
)
from .._inputs import Credential
from .._redaction import redact, scrub_text
from .._ui_settings import ui_settings_urls
from .._urls import shown_origin

__all__ = ["CloudInfo", "ServerInfo", "list_workspaces", "probe_cloud", "probe_server", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 1 << 20  # 1 MiB: ui-settings and version answers are a few hundred bytes

_WORKSPACE_PATH = re.compile(
    r"/accounts/(?P<account>[0-9a-fA-F-]{36})/workspaces/(?P<workspace>[0-9a-fA-F-]{36})$"
)


@dataclass(frozen=True)
class ServerInfo:
    api_url: str
    auth_required: bool | None  # from /ui-settings; None when the server does not say
    version: str | None
    rejection: str | None = None  # why the credential was refused (raise_on_reject=False)


@dataclass(frozen=True)
class CloudInfo:
    api_url: str  # the workspace API URL
    identity: str
    actor_type: str  # "user" or "service account"
    workspace_handle: str
    version: str | None


class _Probe:
    """One httpx client with our rules, and error translation in one place."""

    def __init__(self, credential: Credential, *, verify: Any, timeout: float) -> None:
        self.credential = credential
        self.client = httpx.Client(
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "prefect-nbauth"},
            trust_env=True,
        )

    def __enter__(self) -> "_Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def scrub(self, text: str) -> str:
        return scrub_text(redact(text, *self.credential.secrets()))

    def get(self, url: str, *, authenticated: bool) -> tuple[httpx.Response, bytes]:
        if authenticated:
            headers = self.credential.request_headers()
        else:
            # Gateway headers (an Authorization header among them) go on every request:
            # the gateway sits in front of the public routes too. Prefect's own
            # credential (Basic auth string, Bearer key) only where it is checked.
            headers = self.credential.request_headers(prefect_credential=False)
        try:
            deadline = time.monotonic() + 2 * (self.client.timeout.read or DEFAULT_TIMEOUT)
            with self.client.stream("GET", url, headers=headers) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if time.monotonic() > deadline:  # the timeout is per read: bound the whole
                        raise httpx.ReadTimeout("answer too slow", request=response.request)
                    if len(body) > MAX_BODY:
                        raise NotPrefectServerError(
                            f"{_endpoint(url)} answered with more than {MAX_BODY // 1024} KiB; "
                            "a Prefect API answers this in a few hundred bytes. Check the URL."
                        )
                return response, bytes(body)
        except PrefectAuthError:
            raise
        except httpx.TimeoutException:
            raise ServerUnreachableError(
                f"{shown_origin(url)} did not answer within {self.client.timeout.read:g} s. "
                "Check that the server is running and reachable from this machine."
            ) from None
        except httpx.ConnectError as exc:
            raise _connect_error(url, exc, self) from None
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(
                f"Request to {_endpoint(url)} failed: {self.scrub(str(exc)) or type(exc).__name__}."
            ) from None

    def redirect_error(self, url: str, response: httpx.Response) -> PrefectAuthError:
        # Only the target's origin is shown: a hostile server knows the credential it was
        # sent and may echo it back, percent-encoded, in the user info, path or query.
        where = shown_origin(response.headers.get("location", ""), base=url)
        return NotPrefectServerError(
            f"{_endpoint(url)} redirected (HTTP {response.status_code}) to {self.scrub(where)!s}. "
            "Credentials are not forwarded across redirects; use the final API URL "
            "directly (often https:// instead of http://)."
        )


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _connect_error(url: str, exc: httpx.ConnectError, probe: _Probe) -> PrefectAuthError:
    text = probe.scrub(str(exc))
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return ServerUnreachableError(
            f"TLS failed for {shown_origin(url)}: {text}. If the server uses a private CA, point "
            "SSL_CERT_FILE (or Prefect's PREFECT_API_SSL_CERT_FILE) at the CA bundle; if "
            "it speaks plain http, use an http:// URL."
        )
    return ServerUnreachableError(
        f"Could not connect to {shown_origin(url)} ({text or 'connection failed'}). Is the "
        "server running? Start one with `prefect server start`, or check the host and port."
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays/objects
        return _NOT_JSON


_NOT_JSON = object()


def _not_prefect(url: str, response: httpx.Response, probe: _Probe, hint: str = "") -> NotPrefectServerError:
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", kind):  # a server may echo anything here
        kind = "unknown content"
    kind = probe.scrub(kind)
    return NotPrefectServerError(
        f"{_endpoint(url)} answered HTTP {response.status_code} with {kind}: this does not "
        f"look like a Prefect API.{hint} A self-hosted API URL looks like "
        "'http://HOST:4200/api'."
    )


def _suggest_api_suffix(api_url: str, probe: _Probe) -> str:
    """When the user gave the UI address, find out whether '/api' was the missing part."""
    if api_url.rstrip("/").endswith("/api"):
        return ""
    try:
        response, body = probe.get(api_url.rstrip("/") + "/api/health", authenticated=False)
    except PrefectAuthError:
        return ""
    if response.status_code == 200 and _json(body) is True:
        return f" Did you mean {api_url.rstrip('/')}/api ?"
    return ""


def probe_server(credential: Credential, *, verify: Any = True, timeout: float = DEFAULT_TIMEOUT,
                 check_credential: bool = True, raise_on_reject: bool = True) -> ServerInfo:
    """Check a self-hosted server (or a gateway in front of one) and the credential.

    With ``raise_on_reject=False`` a refused credential is reported in
    ``ServerInfo.rejection`` instead of raised, so a status check still learns
    what the server enforces.
    """
    api_url = credential.api_url
    with _Probe(credential, verify=verify, timeout=timeout) as probe:
        auth_required: bool | None = None
        [url, *elsewhere] = ui_settings_urls(api_url)
        response, body = probe.get(url, authenticated=False)
        if response.is_redirect:
            raise probe.redirect_error(url, response)
        data = _json(body)
        for other_url in elsewhere if response.status_code == 404 else []:
            other, other_body = probe.get(other_url, authenticated=False)
            if other.status_code == 200 and isinstance(_json(other_body), dict) and "auth" in _json(other_body):
                url, response, body, data = other_url, other, other_body, _json(other_body)
                break
        if response.status_code == 200 and isinstance(data, dict) and "auth" in data:
            auth_required = bool(data.get("auth"))
        elif response.status_code in (401, 403):
            pass  # a gateway guards even the public routes; the credential check decides
        elif response.status_code == 404 or data is _NOT_JSON or not isinstance(data, dict):
            # Older servers have no /ui-settings; /health is public on every version.
            health, health_body = probe.get(f"{api_url}/health", authenticated=False)
            if not (health.status_code == 200 and _json(health_body) is True):
                raise _not_prefect(url, response, probe, _suggest_api_suffix(api_url, probe))
        elif response.status_code >= 500:
            raise ServerUnreachableError(
                f"{_endpoint(url)} answered HTTP {response.status_code}. The server is failing; "
                "if its PREFECT_SERVER_API_AUTH_STRING contains non-ASCII characters, every "
                "request fails this way: give it an ASCII auth string and restart it."
            )

        if not check_credential:
            return ServerInfo(api_url, auth_required, None)

        url = f"{api_url}/admin/version"
        response, body = probe.get(url, authenticated=True)
        if response.is_redirect:
            raise probe.redirect_error(url, response)
        if response.status_code in (401, 403):
            message = _rejected_message(credential, response.status_code, auth_required)
            if not raise_on_reject:
                return ServerInfo(api_url, auth_required, None, rejection=message)
            raise AuthenticationError(message, status_code=response.status_code)
        if response.status_code >= 500:
            raise ServerUnreachableError(
                f"{_endpoint(url)} answered HTTP {response.status_code}. If the server's "
                "PREFECT_SERVER_API_AUTH_STRING contains non-ASCII characters, Prefect answers "
                "500 to every request: give it an ASCII auth string and restart it."
            )
        version = _json(body)
        if response.status_code != 200 or not isinstance(version, str):
            raise _not_prefect(url, response, probe, _suggest_api_suffix(api_url, probe))
        return ServerInfo(api_url, auth_required, version)


def _rejected_message(credential: Credential, status: int, auth_required: bool | None) -> str:
    where = credential.api_url
    if any(n.lower() == "authorization" for n in credential.headers):
        return (f"{where} rejected the Authorization header you passed in headers (HTTP {status}). "
                "Get a fresh token from your gateway and log in again.")
    if credential.auth_string is not None:
        who = f" for user {credential.username!r}" if credential.username else ""
        return (f"{where} rejected the auth string{who} (HTTP {status}): "
                "it is wrong. It must equal the server's "
                "PREFECT_SERVER_API_AUTH_STRING exactly, including case and punctuation.")
    if credential.api_key is not None:
        return (f"{where} rejected the API key {credential.api_key.masked} (HTTP {status}). "
                "API keys are for Prefect Cloud; a self-hosted server wants auth_string='user:password'.")
    if credential.headers:
        names = ", ".join(credential.headers)
        return (f"{where} answered HTTP {status} to the headers {names}: the gateway in front of "
                "Prefect did not accept them. Get fresh values and log in again.")
    if auth_required:
        return (f"{where} requires an auth string (its /ui-settings says auth is BASIC). Log in "
                "with auth_string='user:password', the server's PREFECT_SERVER_API_AUTH_STRING.")
    return f"{where} requires credentials (HTTP {status}). Log in with the credential it expects."


def probe_cloud(credential: Credential, *, cloud_api_url: str, verify: Any = True,
                timeout: float = DEFAULT_TIMEOUT) -> CloudInfo:
    """Check a Cloud API key; choose the workspace; return its API URL and who we are."""
    assert credential.api_key is not None
    cloud = cloud_api_url.rstrip("/")
    key_masked = credential.api_key.masked
    with _Probe(credential, verify=verify, timeout=timeout) as probe:
        me = _cloud_get(probe, f"{cloud}/me/", key_masked, dict)

        workspaces = _read_workspaces(probe, cloud, key_masked)
        chosen = _choose_workspace(workspaces, credential, cloud, key_masked)
        api_url = f"{cloud}/accounts/{chosen.account_id}/workspaces/{chosen.workspace_id}"

        version = None
        url = f"{api_url}/admin/version"
        response, body = probe.get(url, authenticated=True)
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"Workspace {chosen.handle} rejected the API key {key_masked} "
                f"(HTTP {response.status_code}): the key may lack a role in that workspace.",
                status_code=response.status_code)
        if response.status_code == 200 and isinstance(_json(body), str):
            version = _json(body)

    actor_type = "service account" if (
        me.get("actor_type") in ("bot", "service_account")
        or credential.api_key.reveal().startswith("pnb_")
    ) else "user"
    who = str(me.get("handle") or me.get("email") or me.get("name") or me.get("id") or "unknown")
    return CloudInfo(api_url=api_url, identity=f"{who} ({actor_type}) in {chosen.handle}",
                     actor_type=actor_type, workspace_handle=chosen.handle, version=version)


def _cloud_get(probe: _Probe, url: str, key_masked: str, kind: type) -> Any:
    """GET a Cloud account route with the key; its JSON answer, which must be a ``kind``."""
    response, body = probe.get(url, authenticated=True)
    if response.is_redirect:
        raise probe.redirect_error(url, response)
    if response.status_code in (401, 403):
        raise AuthenticationError(
            f"Prefect Cloud rejected the API key {key_masked} (HTTP {response.status_code}): it "
            "is wrong, expired or revoked. Create a new key in Prefect Cloud (profile menu, "
            "API keys) and log in with it.", status_code=response.status_code)
    data = _json(body)
    if response.status_code != 200 or not isinstance(data, kind):
        raise _not_prefect(url, response, probe)
    return data


def _read_workspaces(probe: _Probe, cloud: str, key_masked: str) -> list[Any]:
    """``GET /me/workspaces`` as Prefect's own ``Workspace`` models (unknown entries skipped)."""
    listed = _cloud_get(probe, f"{cloud}/me/workspaces", key_masked, list)

    from prefect.client.schemas.objects import Workspace

    workspaces = []
    for item in listed:
        try:
            workspaces.append(Workspace.model_validate(item))
        except Exception:  # noqa: BLE001 - skip entries we cannot understand
            continue
    return workspaces


def list_workspaces(credential: Credential, *, cloud_api_url: str, verify: Any = True,
                    timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Handles (``account/workspace``) of the workspaces a Cloud key can use, sorted.

    For a chooser shown before the real login; changes nothing.
    """
    assert credential.api_key is not None
    with _Probe(credential, verify=verify, timeout=timeout) as probe:
        workspaces = _read_workspaces(probe, cloud_api_url.rstrip("/"), credential.api_key.masked)
    return sorted({w.handle for w in workspaces})


def _choose_workspace(workspaces: list[Any], credential: Credential, cloud: str, key_masked: str) -> Any:
    wanted = credential.workspace
    # A workspace API URL names its workspace itself.
    match = _WORKSPACE_PATH.search(credential.api_url) if credential.api_url.startswith(cloud) else None
    if match and not wanted:
        wanted = match.group("workspace")
    handles = ", ".join(sorted(w.handle for w in workspaces)) or "none"
    if not workspaces:
        raise AuthenticationError(
            f"The API key {key_masked} is valid but has access to no workspace. Ask an account "
            "admin to add it to one.")
    if wanted:
        w = wanted.strip().lower()
        for ws in workspaces:
            if w in (ws.handle.lower(), str(ws.workspace_id).lower(), ws.workspace_handle.lower()):
                same_short = [x for x in workspaces if x.workspace_handle.lower() == w]
                if w == ws.workspace_handle.lower() and len(same_short) > 1:
                    raise ConfigurationError(
                        f"Several workspaces are called {wanted!r}: {handles}. Pass the full "
                        "'account/workspace' handle.")
                return ws
        raise AuthenticationError(
            f"The API key {key_masked} has no access to workspace {wanted!r}. It can use: "
            f"{handles}. Pass one of those as workspace=…, or use a key from that workspace.")
    if len(workspaces) == 1:
        return workspaces[0]
    raise ConfigurationError(
        f"This API key can use {len(workspaces)} workspaces: {handles}. Choose one with "
        "workspace='account/workspace'.")
