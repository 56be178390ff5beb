"""The prober: one REST request or one websocket attempt, and what it ended as.

It holds the credentials the probes may use: the real ones (sent only when the audited
URL is the configured API), random wrong ones made fresh for each audit, and, behind a
gateway, the gateway's own headers (``auditing._gateway``). It never follows a redirect:
a cross-origin one is noted in :attr:`Prober.redirects` for the redirect check. Every
answer is read up to :data:`MAX_BODY` bytes, and every failure becomes a result (the
exception's type name at most, never a header value).
"""

from __future__ import annotations

import json
import secrets
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .._headers import basic
from .._urls import same_origin, shown_origin, ws_url
from .._websocket import SILENT
from ._credentials import gateway_headers, wrong_prefect_headers

if TYPE_CHECKING:
    from websockets.sync.connection import Connection

__all__ = ["MAX_BODY", "HttpAnswer", "Prober", "SocketAnswer", "where"]

MAX_BODY = 64 * 1024  # every answer we look at is a few hundred bytes


@dataclass(frozen=True)
class HttpAnswer:
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
class SocketAnswer:
    """What one websocket attempt ended as."""

    kind: str  # "refused" (HTTP status), "redirect", "accepted", "error"
    status: int | None = None
    location: str = ""
    subprotocol: str | None = None
    answer: str = ""  # "auth_success", "closed 1008 Invalid token", "silent", "message …"
    error: str = ""


def _cross_origin(base: str, location: str) -> bool:
    if not location or not urlsplit(location).netloc:  # relative: same origin
        return False
    return not same_origin(base, location)


def where(location: str) -> str:
    """What of a redirect target a finding shows: its origin, never its path or query."""
    return shown_origin(location) if urlsplit(location).netloc else location[:100]


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


class Prober:
    def __init__(self, api_url: str, headers: dict[str, str], token: str | None, *,
                 verify: ssl.SSLContext, timeout: float, use_credential: bool) -> None:
        self.api_url = api_url.rstrip("/")
        self.real_headers = headers if use_credential else {}
        self.real_token = token if use_credential else None
        self.use_credential = use_credential and bool(headers or token)
        self.ssl_context = verify  # _tls.ssl_context(): the one TLS context
        self.timeout = timeout
        self.client = httpx.Client(verify=self.ssl_context, timeout=timeout, follow_redirects=False,
                                   headers={"User-Agent": "prefect-nbauth-audit"}, trust_env=True)
        self.redirects: list[tuple[str, str]] = []  # (what, where) for cross-origin redirects
        self.wrong_headers = _wrong_headers(headers)
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

    def close(self) -> None:
        self.client.close()

    # -- HTTP ---------------------------------------------------------------------

    def http(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             root: bool = False, body: Any = None, what: str = "") -> HttpAnswer:
        base = self.api_url
        if root:
            base = base[: -len("/api")] if base.endswith("/api") else base
        return self.http_at(method, f"{base}/{path}", headers=headers, body=body, what=what or f"{method} /{path}")

    def http_at(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None,
                what: str = "") -> HttpAnswer:
        """One request to a whole URL (on the audited server's host: ``/ui-settings`` may be elsewhere)."""
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
                    self.redirects.append((what or f"{method} {urlsplit(url).path}", where(location)))
                return HttpAnswer(response.status_code, bytes(data[:MAX_BODY]), location)
        except httpx.TimeoutException:
            return HttpAnswer(None, error=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            # httpx messages name the URL at most, never a header value.
            return HttpAnswer(None, error=type(exc).__name__)

    # -- websockets -----------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | None:
        return self.ssl_context if self.api_url.startswith("https") else None

    def socket(self, path: str, *, subprotocol: bool, headers: dict[str, str],
               first: dict[str, Any] | None) -> SocketAnswer:
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
                if first is None:
                    return SocketAnswer("accepted", subprotocol=ws.subprotocol)
                return self._first_answer(ws, first)
        except InvalidStatus as exc:
            status = exc.response.status_code
            location = exc.response.headers.get("Location", "")
            if 300 <= status < 400:
                if _cross_origin(url, location):
                    self.redirects.append((f"socket /{path}", where(location)))
                return SocketAnswer("redirect", status=status, location=location)
            return SocketAnswer("refused", status=status)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            return SocketAnswer("refused", answer=f"closed {code}")
        except TimeoutError:
            return SocketAnswer("error", error=f"no answer within {self.timeout:g} s")
        except (OSError, ValueError) as exc:
            return SocketAnswer("error", error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - any other handshake failure is an error result
            return SocketAnswer("error", error=type(exc).__name__)

    def _first_answer(self, ws: Connection, first: dict[str, Any]) -> SocketAnswer:
        """Send ``first`` on an accepted socket and say how the server answered it."""
        from websockets.exceptions import ConnectionClosed

        chosen = ws.subprotocol
        ws.send(json.dumps(first))
        try:
            message = ws.recv(timeout=self.timeout)
        except TimeoutError:
            return SocketAnswer("accepted", subprotocol=chosen, answer="silent")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            return SocketAnswer("accepted", subprotocol=chosen, answer=f"closed {code} {reason}".strip())
        try:
            kind = json.loads(message).get("type")
        except (ValueError, AttributeError):
            kind = None
        answer = "auth_success" if kind == "auth_success" else f"message {kind!r}"
        return SocketAnswer("accepted", subprotocol=chosen, answer=answer)
