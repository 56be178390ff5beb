"""audit(): what the Prefect server you talk to really enforces, probed the way an outsider would.

Each probe ends as pass, fail or not applicable, with one sentence and a fix:

- the transport: plain http to another machine, TLS verification turned off;
- the auth mode the server advertises (``GET /ui-settings`` at the server root) versus what
  this process sends;
- REST: a protected endpoint without credentials and with a random wrong one (401, not 500);
- REST endpoints that answer without credentials, besides ``/health`` and ``/ready``, and the
  health-check exemption of older servers (a path ending in ``health``, a crafted Host header);
- each event socket (``/events/out``, ``/events/in``, ``/logs/out``): without the ``prefect``
  subprotocol, without the auth message, with a random wrong token;
- redirects to another origin, which Prefect's own clients follow;
- the server version, against the auth defects Prefect fixed, each checked in the released source:

  ========  =================================================================================
  < 3.3.5   ``/events/out`` (and the task-run sockets) answer ``auth_success`` to any token
            (Prefect issue #17687, fixed by PR #17741, first released in 3.3.5)
  < 3.6.14  ``/events/in`` never asks for the auth message: anyone can send events
  < 3.6.22  a GET whose URL path ends in ``health``/``ready`` skips the auth check, and the
            path is built from the Host header, so a crafted Host reads any GET endpoint
            (fixed by PR #21063 in 3.6.22)
  ========  =================================================================================

The real credential goes only to the configured API's origin (one REST request and one socket
per path, to tell "refused" from "not there"); probes meant to be refused carry no credential
or random wrong values. Behind a gateway (headers besides Prefect's own credential) the probes
of Prefect's own check keep the gateway's headers, to the same origin, with Prefect's credential
wrong or missing (``auditing._gateway``). Nothing follows a redirect, every socket has a timeout, no credential
is logged or put into the report.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import secrets
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from .. import _versions
from .._boundary import public
from .._exceptions import ConfigurationError, ServerUnreachableError
from .._headers import basic
from .._inputs import check_api_url, check_timeout, is_cloud_url, plain_http_warning
from .._websocket import SILENT, ws_url
from ._gateway import (
    gateway_headers,
    prefect_check_finding,
    wrong_prefect_headers,
)

__all__ = ["AuditReport", "Finding", "Outcome", "audit"]

logger = logging.getLogger("prefect_nbauth.audit")

DEFAULT_TIMEOUT = 3.0
MAX_BODY = 64 * 1024  # every answer we look at is a few hundred bytes
SOCKET_PATHS = ("events/out", "events/in", "logs/out")

# (first fixed version, what an older server does); each read in Prefect's released source.
KNOWN_DEFECTS: tuple[tuple[str, str], ...] = (
    ("3.3.5", "/events/out answers auth_success to any token (Prefect issue #17687, fixed by "
              "PR #17741 in 3.3.5)"),
    ("3.6.14", "/events/in takes events from anyone: it never asks for the auth message "
               "(fixed in 3.6.14)"),
    ("3.6.22", "a GET whose URL path ends in 'health' or 'ready' skips the auth check, and a "
               "crafted Host header makes any path look like one (fixed by PR #21063 in 3.6.22)"),
)


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One probe's result: ``detail`` says what was seen, ``fix`` what to do (empty on a pass)."""

    check: str  # a stable id, e.g. "rest-wrong-credential", "socket-events-in-no-auth"
    title: str
    outcome: Outcome
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found. Holds no secret: only outcomes and sentences."""

    api_url: str
    client_sends: str  # what this process sends, in words ("an auth string (HTTP Basic)")
    server_version: str | None
    server_auth: str | None  # what /ui-settings advertises: "BASIC", "none" or None (unknown)
    findings: tuple[Finding, ...]
    seconds: float
    credential_used: bool = field(default=True)  # False: api_url was not the configured one

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.outcome is Outcome.FAIL)

    def finding(self, check: str) -> Finding:
        for f in self.findings:
            if f.check == check:
                return f
        raise KeyError(check)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [{**asdict(f), "outcome": f.outcome.value} for f in self.findings]
        return data

    def _summary(self) -> str:
        counts = {o: sum(f.outcome is o for f in self.findings) for o in Outcome}
        return (f"{counts[Outcome.FAIL]} failed, {counts[Outcome.PASS]} passed, "
                f"{counts[Outcome.NOT_APPLICABLE]} not applicable ({self.seconds:.1f} s)")

    def _server_line(self) -> str:
        version = f"Prefect {self.server_version}" if self.server_version else "version unknown"
        advertised = {"BASIC": "advertises an auth string (BASIC)", "none": "advertises no auth",
                      None: "does not say which auth it wants"}[self.server_auth]
        note = "" if self.credential_used else " (not the configured API: your credential was not sent)"
        return f"server: {version}, {advertised}; this process sends {self.client_sends}{note}"

    def __str__(self) -> str:
        lines = [f"Prefect auth audit of {self.api_url}: {self._summary()}",
                 f"  {self._server_line()}"]
        order = {Outcome.FAIL: 0, Outcome.PASS: 1, Outcome.NOT_APPLICABLE: 2}
        for f in sorted(self.findings, key=lambda f: order[f.outcome]):
            lines.append(f"  {f.outcome.value.upper():4}  {f.title}: {f.detail}")
            if f.fix:
                lines.append(f"        fix: {f.fix}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        style = {Outcome.FAIL: ("&#x2718; fail", "#b00020"), Outcome.PASS: ("&#x2714; pass", "#1b5e20"),
                 Outcome.NOT_APPLICABLE: ("&ndash; n/a", "#666")}
        rows = []
        for f in self.findings:
            label, colour = style[f.outcome]
            rows.append(
                f"<tr><td style='color:{colour};white-space:nowrap;font-weight:bold'>{label}</td>"
                f"<td style='text-align:left'>{html.escape(f.title)}</td>"
                f"<td style='text-align:left'>{html.escape(f.detail)}</td>"
                f"<td style='text-align:left'>{html.escape(f.fix)}</td></tr>"
            )
        return (
            f"<div class='prefect-nbauth-audit'><p><b>Prefect auth audit of "
            f"{html.escape(self.api_url)}</b>: {html.escape(self._summary())}<br>"
            f"{html.escape(self._server_line())}</p>"
            "<table><thead><tr><th>result</th><th style='text-align:left'>check</th>"
            "<th style='text-align:left'>finding</th><th style='text-align:left'>fix</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


# ------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class _Http:
    status: int | None  # None: no answer (error says why)
    body: bytes = b""
    location: str = ""
    error: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class _Socket:
    """What one websocket attempt ended as."""

    kind: str  # "refused" (HTTP status), "redirect", "accepted", "error"
    status: int | None = None
    location: str = ""
    subprotocol: str | None = None
    answer: str = ""  # "auth_success", "closed 1008 Invalid token", "silent", "message …"
    error: str = ""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _cross_origin(base: str, location: str) -> bool:
    if not location:
        return False
    target = urlsplit(location)
    if not target.netloc:  # relative: same origin
        return False
    return _origin(base) != _origin(location)


class _Auditor:
    def __init__(self, api_url: str, headers: dict[str, str], token: str | None, *,
                 verify: Any, timeout: float, use_credential: bool) -> None:
        self.api_url = api_url.rstrip("/")
        self.real_headers = headers if use_credential else {}
        self.real_token = token if use_credential else None
        self.use_credential = use_credential and bool(headers or token)
        self.verify = verify
        self.ssl_context: ssl.SSLContext = verify  # _tls.ssl_context(): the one TLS context
        self.timeout = timeout
        self.client = httpx.Client(verify=self.ssl_context, timeout=timeout, follow_redirects=False,
                                   headers={"User-Agent": "prefect-nbauth-audit"}, trust_env=True)
        self.redirects: list[tuple[str, str]] = []  # (what, where) for cross-origin redirects
        self.wrong_headers = self._wrong_headers(headers)
        self.wrong_token = "nbauth-audit:" + secrets.token_urlsafe(18)
        # Behind a gateway, probes keep its headers so they reach Prefect's own check.
        # (Only with a Prefect credential besides them: without one there is nothing to get wrong.)
        self.gateway_headers = (gateway_headers(self.real_headers, self.real_token)
                                if self.real_token else {})
        self.prefect_wrong_headers = (wrong_prefect_headers(self.real_headers, self.real_token)
                                      if self.gateway_headers else self.wrong_headers)
        # A gateway's own Authorization header displaces Prefect's Basic on REST: no REST probe.
        self.probe_prefect_rest = bool(self.gateway_headers) and not any(
            n.lower() == "authorization" for n in self.gateway_headers)

    @staticmethod
    def _wrong_headers(headers: dict[str, str]) -> dict[str, str]:
        """The same header names as the real credential, each with a random value."""
        wrong: dict[str, str] = {}
        for name, value in headers.items():
            if name.lower() == "authorization":
                scheme = value.split(" ", 1)[0] if " " in value else "Bearer"
                if scheme.lower() == "basic":
                    wrong[name] = basic(f"nbauth-audit:{secrets.token_urlsafe(18)}")
                else:
                    wrong[name] = f"{scheme} {secrets.token_urlsafe(24)}"
            else:
                wrong[name] = secrets.token_urlsafe(24)
        if not any(n.lower() == "authorization" for n in wrong):
            wrong["Authorization"] = basic(f"nbauth-audit:{secrets.token_urlsafe(18)}")
        return wrong

    def close(self) -> None:
        self.client.close()

    # -- HTTP ---------------------------------------------------------------------

    def http(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             root: bool = False, body: Any = None, what: str = "") -> _Http:
        base = self.api_url
        if root:
            base = base[: -len("/api")] if base.endswith("/api") else base
        url = f"{base}/{path}"
        try:
            with self.client.stream(method, url, headers=headers or {},
                                    json=body if body is not None else None) as response:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_BODY:
                        break  # we only look at small answers; a huge one is not one of them
                location = response.headers.get("location", "")
                if response.is_redirect and _cross_origin(url, location):
                    self.redirects.append((what or f"{method} /{path}", _where(location)))
                return _Http(response.status_code, bytes(data[:MAX_BODY]), location)
        except httpx.TimeoutException:
            return _Http(None, error=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            # httpx messages name the URL at most, never a header value.
            return _Http(None, error=type(exc).__name__)

    # -- websockets -----------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | None:
        return self.ssl_context if self.api_url.startswith("https") else None

    def socket(self, path: str, *, subprotocol: bool, headers: dict[str, str],
               first: dict[str, Any] | None) -> _Socket:
        from websockets import Subprotocol
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        url = ws_url(self.api_url, path)
        try:
            with connect(url, subprotocols=[Subprotocol("prefect")] if subprotocol else None,
                         additional_headers=headers, open_timeout=self.timeout,
                         close_timeout=1, ssl=self._ssl(),
                         user_agent_header="prefect-nbauth-audit",
                         max_size=MAX_BODY, logger=SILENT) as ws:
                chosen = ws.subprotocol
                if first is None:
                    return _Socket("accepted", subprotocol=chosen)
                ws.send(json.dumps(first))
                try:
                    message = ws.recv(timeout=self.timeout)
                except TimeoutError:
                    return _Socket("accepted", subprotocol=chosen, answer="silent")
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else None
                    reason = exc.rcvd.reason if exc.rcvd else ""
                    return _Socket("accepted", subprotocol=chosen,
                                   answer=f"closed {code} {reason}".strip())
                try:
                    kind = json.loads(message).get("type")
                except (ValueError, AttributeError):
                    kind = None
                answer = "auth_success" if kind == "auth_success" else f"message {kind!r}"
                return _Socket("accepted", subprotocol=chosen, answer=answer)
        except InvalidStatus as exc:
            status = exc.response.status_code
            location = exc.response.headers.get("Location", "")
            if 300 <= status < 400:
                if _cross_origin(url, location):
                    self.redirects.append((f"socket /{path}", _where(location)))
                return _Socket("redirect", status=status, location=location)
            return _Socket("refused", status=status)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            return _Socket("refused", answer=f"closed {code}")
        except TimeoutError:
            return _Socket("error", error=f"no answer within {self.timeout:g} s")
        except (OSError, ValueError) as exc:
            return _Socket("error", error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - any other handshake failure is an error result
            return _Socket("error", error=type(exc).__name__)


def _where(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else location[:100]


def _version_tuple(text: str | None) -> Any:
    if not text:
        return None
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with Prefect
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _client_sends(headers: dict[str, str]) -> str:
    auth = next((v for n, v in headers.items() if n.lower() == "authorization"), None)
    others = [n for n in headers if n.lower() != "authorization"]
    if auth is None:
        what = "no credential" if not others else "gateway headers"
    elif auth.lower().startswith("basic "):
        what = "an auth string (HTTP Basic)"
    elif auth.lower().startswith("bearer "):
        what = "a bearer token (API key)"
    else:
        what = "a custom Authorization header"
    if auth is not None and others:
        what += " and gateway headers " + ", ".join(others)
    elif auth is None and others:
        what += " " + ", ".join(others)
    return what


# --------------------------------------------------------------------------- audit


@public(urls=("api_url",))
def audit(api_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> AuditReport:
    """Probe the Prefect API this process talks to and say what it really enforces.

    ``api_url`` defaults to the API URL in force (after :func:`login`, the logged-in one).
    Another URL is probed from outside only: the credential in force is never sent to it.
    Every request and socket has a ``timeout`` (seconds); the whole audit takes a few seconds.

    Raises:
        ConfigurationError: no API URL is in force and none was given.
        ServerUnreachableError: nothing answered at the URL.
    """
    from prefect.settings import get_current_settings

    from .._session import socket_credential
    from .._tls import ssl_context

    timeout = check_timeout(timeout)
    started = time.monotonic()
    credential = socket_credential()
    configured = credential.api_url.rstrip("/") if credential.api_url else None
    if api_url is None:
        if configured is None:
            raise ConfigurationError(
                "No Prefect API URL is in force. Log in first (prefect_nbauth.login(…)), or "
                "pass the URL to audit: audit('http://HOST:4200/api')."
            )
        url = check_api_url(configured)
    else:
        url = check_api_url(api_url)
    use_credential = configured is not None and url == check_api_url(configured)
    settings = get_current_settings()
    cloud_api = str(settings.cloud.api_url).rstrip("/")
    is_cloud = is_cloud_url(url, cloud_api)

    auditor = _Auditor(url, dict(credential.headers), credential.auth_token,
                       verify=ssl_context(settings), timeout=timeout,
                       use_credential=use_credential)
    try:
        findings, version, advertised = _run(auditor, settings, is_cloud)
    finally:
        auditor.close()
    client_sends = _client_sends(dict(credential.headers)) if use_credential else "nothing (another URL)"
    report = AuditReport(api_url=url, client_sends=client_sends, server_version=version,
                         server_auth=advertised, findings=tuple(findings),
                         seconds=time.monotonic() - started, credential_used=use_credential)
    for f in report.findings:
        logger.debug("audit %s: %s", f.check, f.outcome.value)
    return report


def _run(a: _Auditor, settings: Any, is_cloud: bool) -> tuple[list[Finding], str | None, str | None]:
    # The first request tells whether anything answers at all.
    health = a.http("GET", "health", what="GET /health")
    if health.status is None:
        raise ServerUnreachableError(
            f"Nothing answered at {a.api_url} ({health.error}). Check the URL and that the "
            "server is running; the audit needs a reachable server."
        )

    jobs: dict[str, Callable[[], Any]] = {
        "ui": lambda: a.http("GET", "ui-settings", root=True, what="GET /ui-settings"),
        "no_cred": lambda: a.http("GET", "admin/version", what="GET /admin/version"),
        "wrong": lambda: a.http("GET", "admin/version", headers=a.wrong_headers,
                                what="GET /admin/version"),
        "suffix": lambda: a.http("GET", f"flows/name/nbauth-audit-{uuid.uuid4().hex[:8]}-health"),
        "host": lambda: a.http("GET", "admin/version", headers={
            "Host": f"{urlsplit(a.api_url).netloc}/health?"}),
    }
    if a.use_credential:
        jobs["control"] = lambda: a.http("GET", "admin/version", headers=a.real_headers,
                                         what="GET /admin/version")
    if a.probe_prefect_rest:
        jobs["gateway:wrong"] = lambda: a.http("GET", "admin/version", headers=a.prefect_wrong_headers,
                                               what="GET /admin/version")
    if a.gateway_headers:
        jobs["gateway:ui"] = lambda: a.http("GET", "ui-settings", root=True, headers=a.gateway_headers,
                                            what="GET /ui-settings")
    for name, path, method, body in _PUBLIC_CANDIDATES:
        jobs[f"public:{name}"] = functools.partial(a.http, method, path.format(uuid=uuid.uuid4()), body=body)
    for path in SOCKET_PATHS:
        jobs[f"ws:{path}:nosub"] = functools.partial(
            a.socket, path, subprotocol=False, headers=dict(a.gateway_headers), first=None)
        jobs[f"ws:{path}:noauth"] = functools.partial(
            a.socket, path, subprotocol=True, headers=dict(a.gateway_headers),
            first={"type": "filter", "filter": {}})
        jobs[f"ws:{path}:wrong"] = functools.partial(
            a.socket, path, subprotocol=True, headers=a.prefect_wrong_headers,
            first={"type": "auth", "token": a.wrong_token})
        if a.use_credential:
            jobs[f"ws:{path}:control"] = functools.partial(
                a.socket, path, subprotocol=True, headers=a.real_headers,
                first={"type": "auth", "token": a.real_token})
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="nbauth-audit") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        r = {name: future.result() for name, future in futures.items()}

    findings: list[Finding] = []
    findings += _transport_findings(a, settings)

    # What the server says it enforces, and its version.
    ui: _Http = r["ui"]
    if ui.status != 200 and r.get("gateway:ui") is not None:
        ui = r["gateway:ui"]  # the gateway guards /ui-settings too: ask with its headers
    ui_data = ui.json() if ui.status == 200 else None
    advertised = None
    if isinstance(ui_data, dict) and "auth" in ui_data:
        advertised = "BASIC" if ui_data.get("auth") else "none"
    version = None
    for key in ("control", "no_cred"):
        res = r.get(key)
        if res is not None and res.status == 200 and isinstance(res.json(), str):
            version = res.json()
            break
    findings.append(_advertised_finding(a, advertised, r["no_cred"], is_cloud, ui))
    findings += _rest_findings(a, r)
    if "gateway:wrong" in r:
        findings.append(prefect_check_finding(r["gateway:wrong"], r.get("control")))
    findings.append(_public_finding(r))
    findings.append(_health_exemption_finding(r, is_cloud))
    findings += _socket_findings(a, r)
    findings.append(_redirect_finding(a))
    findings.append(_version_finding(version, is_cloud, a.use_credential))
    findings.append(_versions.compatibility_finding(version, advertised, is_cloud))
    return findings, version, advertised


# (label, path under the API, method, JSON body)
_PUBLIC_CANDIDATES: tuple[tuple[str, str, str, Any], ...] = (
    ("GET /version", "version", "GET", None),
    ("GET /admin/settings", "admin/settings", "GET", None),
    ("GET /csrf-token", "csrf-token?client={uuid}", "GET", None),
    ("GET /openapi.json", "openapi.json", "GET", None),
    ("GET /docs", "docs", "GET", None),
    ("POST /flows/filter", "flows/filter", "POST", {"limit": 1}),
    ("POST /events/filter", "events/filter", "POST", {"limit": 1}),
)


def _transport_findings(a: _Auditor, settings: Any) -> list[Finding]:
    out = []
    if plain_http_warning(a.api_url):
        host = urlsplit(a.api_url).hostname
        out.append(Finding("transport", "Transport", Outcome.FAIL,
                           f"Credentials go over plain http to {host}, which is not this machine: "
                           "anyone on the network path can read them.",
                           "Put the server behind https (a reverse proxy with a certificate) and "
                           "use the https:// URL."))
    elif a.api_url.startswith("https"):
        out.append(Finding("transport", "Transport", Outcome.PASS, "The API is reached over https."))
    else:
        host = urlsplit(a.api_url).hostname
        out.append(Finding("transport", "Transport", Outcome.PASS,
                           f"Plain http, but to {host}, this machine: nothing crosses a network."))

    skip = bool(settings.api.tls_insecure_skip_verify)
    if not a.api_url.startswith("https"):
        out.append(Finding(
            "tls-verification", "TLS verification",
            Outcome.FAIL if skip else Outcome.NOT_APPLICABLE,
            "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is on (no effect over http, but it will be "
            "over https)." if skip else "The API is plain http: there is no TLS to verify.",
            "Unset PREFECT_API_TLS_INSECURE_SKIP_VERIFY." if skip else ""))
    elif skip:
        out.append(Finding("tls-verification", "TLS verification", Outcome.FAIL,
                           "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is on: anyone who can intercept "
                           "the connection can pose as the server and read the credential.",
                           "Unset it and point PREFECT_API_SSL_CERT_FILE at your CA bundle."))
    else:
        out.append(Finding("tls-verification", "TLS verification", Outcome.PASS,
                           "Certificates are verified."))
    return out


def _advertised_finding(a: _Auditor, advertised: str | None, no_cred: _Http,
                        is_cloud: bool, ui: _Http | None = None) -> Finding:
    title = "Advertised auth mode"
    if not is_cloud and advertised is None and ui is not None and _refusal(ui):
        return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                       f"GET /ui-settings was refused (HTTP {ui.status}): something in front of "
                       "the server (a gateway) guards it, so the auth mode the server advertises "
                       "could not be read.")
    if is_cloud or advertised is None:
        return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud does not advertise an auth mode." if is_cloud else
                       "The server does not say which auth it wants (no /ui-settings at its root).")
    sends = _client_sends(a.real_headers) if a.use_credential else None
    basic = any(n.lower() == "authorization" and v.lower().startswith("basic ")
                for n, v in a.real_headers.items())
    refused = no_cred.status in (401, 403) or (no_cred.status is not None and 300 <= no_cred.status < 400)
    if advertised == "BASIC":
        if not a.use_credential:
            return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                           "The server advertises an auth string (BASIC); no credential of yours "
                           "was compared with it.")
        if basic:
            return Finding("advertised-auth", title, Outcome.PASS,
                           "The server advertises an auth string (BASIC) and this process sends one.")
        return Finding("advertised-auth", title, Outcome.FAIL,
                       f"The server advertises an auth string (BASIC), but this process sends {sends}: "
                       "every request gets HTTP 401.",
                       "Log in with prefect_nbauth.login(URL, auth_string='user:password').")
    # The server says it checks nothing.
    if refused:
        return Finding("advertised-auth", title, Outcome.PASS,
                       "Prefect itself checks no auth string, but something in front of it refuses "
                       "requests without credentials (a gateway); keep the server unreachable "
                       "except through it.")
    if a.use_credential and basic:
        return Finding("advertised-auth", title, Outcome.FAIL,
                       "This process sends an auth string, but the server advertises no auth and "
                       "ignores it: anyone who can reach the server can use it.",
                       "Start the server with PREFECT_SERVER_API_AUTH_STRING set to the same value.")
    return Finding("advertised-auth", title, Outcome.PASS,
                   "The server advertises no auth and this process sends none: consistent (that "
                   "the server is open is reported by the REST checks).")


def _refusal(res: _Http) -> bool:
    return res.status in (401, 403) or (res.status is not None and 300 <= res.status < 400)


def _rest_findings(a: _Auditor, r: dict[str, Any]) -> list[Finding]:
    out = []
    no_cred: _Http = r["no_cred"]
    wrong: _Http = r["wrong"]
    control: _Http | None = r.get("control")
    fix_open = ("Start the server with PREFECT_SERVER_API_AUTH_STRING='user:password' (or put an "
                "authenticating gateway in front), then log in with that auth string.")
    if no_cred.status is None:
        out.append(Finding("rest-no-credential", "REST without credentials", Outcome.NOT_APPLICABLE,
                           f"GET /admin/version gave no answer ({no_cred.error})."))
    elif _refusal(no_cred):
        out.append(Finding("rest-no-credential", "REST without credentials", Outcome.PASS,
                           f"GET /admin/version without credentials was refused (HTTP {no_cred.status})."))
    elif 200 <= no_cred.status < 300:
        out.append(Finding("rest-no-credential", "REST without credentials", Outcome.FAIL,
                           "GET /admin/version answered HTTP 200 without any credential: the API "
                           "is open to anyone who can reach it.", fix_open))
    else:
        out.append(Finding("rest-no-credential", "REST without credentials",
                           Outcome.FAIL if no_cred.status >= 500 else Outcome.NOT_APPLICABLE,
                           f"GET /admin/version without credentials answered HTTP {no_cred.status}, "
                           "neither a refusal nor an answer.",
                           "Check the server's logs." if no_cred.status >= 500 else ""))

    non_ascii = _NON_ASCII_FIX
    if wrong.status is None:
        out.append(Finding("rest-wrong-credential", "REST with a wrong credential",
                           Outcome.NOT_APPLICABLE, f"No answer ({wrong.error})."))
    elif _refusal(wrong):
        out.append(Finding("rest-wrong-credential", "REST with a wrong credential", Outcome.PASS,
                           f"A random wrong credential was refused (HTTP {wrong.status})."))
    elif wrong.status >= 500:
        out.append(Finding("rest-wrong-credential", "REST with a wrong credential", Outcome.FAIL,
                           f"A random wrong credential got HTTP {wrong.status} instead of 401: the "
                           "server's auth check itself fails.", non_ascii))
    elif 200 <= wrong.status < 300:
        out.append(Finding("rest-wrong-credential", "REST with a wrong credential", Outcome.FAIL,
                           "A random wrong credential was accepted (HTTP 200).", fix_open))
    else:
        out.append(Finding("rest-wrong-credential", "REST with a wrong credential",
                           Outcome.NOT_APPLICABLE, f"Answered HTTP {wrong.status}."))

    if control is None:
        out.append(Finding("your-credential", "Your credential", Outcome.NOT_APPLICABLE,
                           "No credential in force for this URL, so none was tried."))
    elif control.status == 200:
        out.append(Finding("your-credential", "Your credential", Outcome.PASS,
                           "The server accepts the credential in force (GET /admin/version: 200)."))
    elif control.status is not None and control.status >= 500:
        out.append(Finding("your-credential", "Your credential", Outcome.FAIL,
                           f"The server answered HTTP {control.status} to your credential.", non_ascii))
    elif control.status is None:
        broken = wrong.status is not None and wrong.status >= 500
        out.append(Finding("your-credential", "Your credential", Outcome.FAIL,
                           f"The server gave no answer to your credential ({control.error}).",
                           non_ascii if broken else "Check the server's logs; "
                           "prefect_nbauth.status() says what is sent."))
    else:
        what = f"HTTP {control.status}"
        out.append(Finding("your-credential", "Your credential", Outcome.FAIL,
                           f"The server refused the credential in force ({what}).",
                           "Log in again with the credential the server expects "
                           "(prefect_nbauth.login(…)); prefect_nbauth.status() says what is sent."))
    return out


def _public_finding(r: dict[str, Any]) -> Finding:
    answered = [name for name, *_ in _PUBLIC_CANDIDATES
                if (res := r[f"public:{name}"]).status is not None and 200 <= res.status < 300]
    title = "Endpoints open without credentials"
    if answered:
        return Finding("public-endpoints", title, Outcome.FAIL,
                       f"Besides /health and /ready, these answered without credentials: "
                       f"{', '.join(answered)}.",
                       "Start the server with PREFECT_SERVER_API_AUTH_STRING, or put an "
                       "authenticating gateway in front of every path.")
    return Finding("public-endpoints", title, Outcome.PASS,
                   f"Only /health and /ready answer without credentials (tried {len(_PUBLIC_CANDIDATES)} others).")


def _health_exemption_finding(r: dict[str, Any], is_cloud: bool) -> Finding:
    title = "Health-check exemption"
    no_cred: _Http = r["no_cred"]
    if is_cloud or not _refusal(no_cred):
        return Finding("health-exemption", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud has its own auth." if is_cloud else
                       "The API answers without credentials anyway; nothing to bypass.")
    suffix: _Http = r["suffix"]
    host: _Http = r["host"]
    bypassed = []
    if host.status == 200:
        bypassed.append("GET /admin/version answered 200 without credentials when the Host "
                        "header ended in '/health?'")
    if suffix.status == 404:
        bypassed.append("GET /flows/name/…-health reached the API without credentials (404, not 401)")
    if bypassed:
        return Finding("health-exemption", title, Outcome.FAIL,
                       "; ".join(bypassed) + ": the auth check skips any GET whose path ends in "
                       "'health' or 'ready', so every GET endpoint is readable by anyone.",
                       "Upgrade the server to Prefect 3.6.22 or later; until then, have a proxy "
                       "in front reject Host headers that contain '/'.")
    return Finding("health-exemption", title, Outcome.PASS,
                   "A path ending in 'health' and a crafted Host header were both refused.")


_NON_ASCII_FIX = ("If the server's PREFECT_SERVER_API_AUTH_STRING contains non-ASCII characters, "
                  "Prefect (3.6.22 and later) fails on every credential: give it an ASCII auth "
                  "string and restart it.")


def _crashed(res: _Socket | None) -> bool:
    """Accepted, then closed without a proper close code: the server failed, it did not refuse."""
    return (res is not None and res.kind == "accepted"
            and (res.answer in ("closed None", "closed 1006") or res.answer.startswith("closed 1011")))


def _socket_findings(a: _Auditor, r: dict[str, Any]) -> list[Finding]:
    out = []
    upgrade = "Upgrade the server to Prefect 3.6.22 or later (the first with no known auth defect)."
    for path in SOCKET_PATHS:
        control: _Socket | None = r.get(f"ws:{path}:control")
        # Refusing everyone, you included, proves nothing: the socket may not exist there.
        control_refused = control is not None and (
            control.kind in ("refused", "redirect", "error")
            or (control.kind == "accepted" and control.answer != "auth_success"))
        absent = ""
        # A control that crashed (non-ASCII server auth string) still shows the socket exists,
        # so the refusals stand; the crash itself is reported by the wrong-token probe.
        # Accepted with the 'prefect' subprotocol and closed 1008: the socket is there and
        # Prefect refused the auth message of the credential in force.
        control_answer = (control.answer or "") if control is not None else ""
        refused_token = (control is not None and control.kind == "accepted"
                         and control.subprotocol == "prefect" and control_answer.startswith("closed 1008"))
        if refused_token:
            out.append(Finding(f"socket-{path.replace('/', '-')}-your-credential",
                               f"Socket /{path} with your credential", Outcome.FAIL,
                               f"/{path} refused the auth message of the credential in force "
                               f"({control_answer}): events and live streams fail.",
                               "Log in with the auth string the server was started with "
                               "(prefect_nbauth.login(URL, auth_string=…))."))
        elif control_refused and control is not None and not _crashed(control):
            older = " (it is not in Prefect 3.4.0 and older)" if path == "logs/out" else ""
            absent = (f"/{path} refuses your credential too ({_describe_socket(control)}); the "
                      f"server probably has no such socket{older}, or a proxy blocks websockets.")

        probes = (
            ("no-subprotocol", "without the 'prefect' subprotocol", r[f"ws:{path}:nosub"]),
            ("no-auth", "without an auth message", r[f"ws:{path}:noauth"]),
            ("wrong-token", "with a random wrong token", r[f"ws:{path}:wrong"]),
        )
        for suffix, how, res in probes:
            check = f"socket-{path.replace('/', '-')}-{suffix}"
            title = f"Socket /{path} {how}"
            outcome, detail = _judge_socket(suffix, res)
            if outcome is Outcome.PASS and absent:
                outcome, detail = Outcome.NOT_APPLICABLE, absent
            fix = ""
            if outcome is Outcome.FAIL:
                if _crashed(res) and res.subprotocol == "prefect":
                    fix = _NON_ASCII_FIX
                elif _looks_protected(r):
                    fix = upgrade
                else:
                    fix = ("Start the server with PREFECT_SERVER_API_AUTH_STRING: sockets are "
                           "checked only then.")
            out.append(Finding(check, title, outcome, detail, fix))
    return out


def _looks_protected(r: dict[str, Any]) -> bool:
    return _refusal(r["no_cred"])


def _describe_socket(res: _Socket) -> str:
    if res.kind == "refused":
        return f"refused, HTTP {res.status}" if res.status else f"refused, {res.answer}"
    if res.kind == "redirect":
        return f"redirected (HTTP {res.status}) to {_where(res.location)}"
    if res.kind == "error":
        return res.error
    if _crashed(res):
        code = res.answer.split(" ", 2)[1]
        return ("accepted, then dropped with no close code" if code == "None"
                else f"accepted, then closed with code {code}, a server error")
    return res.answer or "accepted"


def _judge_socket(probe: str, res: _Socket) -> tuple[Outcome, str]:
    if res.kind == "error":
        return Outcome.NOT_APPLICABLE, f"Could not tell: {res.error}."
    if res.kind == "refused":
        return Outcome.PASS, f"Refused at the handshake ({_describe_socket(res)})."
    if res.kind == "redirect":
        return Outcome.PASS, (f"Not accepted: redirected (HTTP {res.status}) to "
                              f"{_where(res.location)}; see the redirect check.")
    # Accepted at the handshake.
    if probe == "no-subprotocol":
        return Outcome.FAIL, ("Accepted a socket that skipped the 'prefect' subprotocol, so it "
                              "never asks for the auth message: anyone who can reach the server "
                              "can use it.")
    if res.subprotocol != "prefect":
        return Outcome.FAIL, ("Accepted the socket without the 'prefect' auth handshake (it did "
                              "not select the subprotocol): it never checks a token.")
    if res.answer == "auth_success":
        what = "a random wrong token" if probe == "wrong-token" else "a socket without an auth message"
        return Outcome.FAIL, f"Answered auth_success to {what}."
    if _crashed(res):
        return Outcome.FAIL, (f"The server failed instead of refusing ({_describe_socket(res)}): "
                              "its token check itself is broken.")
    if res.answer.startswith("closed"):
        return Outcome.PASS, f"Closed the socket ({res.answer})."
    if res.answer == "silent":
        return Outcome.NOT_APPLICABLE, "Accepted the socket but gave no answer in time; could not tell."
    return Outcome.FAIL, f"Accepted the socket and answered with a {res.answer} instead of refusing."


def _redirect_finding(a: _Auditor) -> Finding:
    title = "Redirects to another host"
    if a.redirects:
        seen = "; ".join(f"{what} -> {where}" for what, where in dict.fromkeys(a.redirects))
        return Finding("redirects", title, Outcome.FAIL,
                       f"The API redirects to another origin ({seen}). Prefect's own clients "
                       "follow redirects: they drop the Authorization header but keep gateway "
                       "headers, and its event sockets send the raw token in their first "
                       "message to the new host.",
                       "Use the final URL as the API URL (often https:// instead of http://), and "
                       "make the proxy answer API paths itself instead of redirecting.")
    return Finding("redirects", title, Outcome.PASS,
                   "No probe was redirected to another origin.")


def _version_finding(version: str | None, is_cloud: bool, had_credential: bool) -> Finding:
    title = "Server version"
    if is_cloud:
        return Finding("server-version", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud is maintained by Prefect; no self-hosted version to check.")
    parsed = _version_tuple(version)
    if parsed is None:
        why = ("the server did not tell it" if had_credential
               else "it is only told to a valid credential")
        return Finding("server-version", title, Outcome.NOT_APPLICABLE,
                       f"Version unknown: {why}.")
    from packaging.version import Version

    defects = [text for fixed, text in KNOWN_DEFECTS if parsed < Version(fixed)]
    if defects:
        return Finding("server-version", title, Outcome.FAIL,
                       f"Prefect {version} has known auth defects: " + "; ".join(defects) + ".",
                       "Upgrade the server to Prefect 3.6.22 or later.")
    return Finding("server-version", title, Outcome.PASS,
                   f"Prefect {version}: no known auth defect. (Since 3.6.22 a non-ASCII server "
                   "auth string makes every credentialed request fail with HTTP 500.)")
