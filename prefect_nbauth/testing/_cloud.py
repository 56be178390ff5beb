"""A loopback emulation of Prefect Cloud's documented API surface, for tests only.

Prefect Cloud (``https://api.prefect.cloud``) cannot be reached from the test machines,
so tests talk to this gateway instead. It emulates Cloud's *documented* surface:

* workspace API URLs ``/api/accounts/{account_id}/workspaces/{workspace_id}/...``;
* ``GET /api/me/`` (the actor behind a key) and ``GET /api/me/workspaces`` (what
  ``prefect cloud login`` uses to validate a key);
* Bearer API keys: ``pnu_...`` (user) and ``pnb_...`` (service account / bot), which
  may be expired.

Everything under a workspace URL is forwarded to a REAL Prefect server (REST and the
``events/in``, ``events/out``, ``logs/out`` websockets), so flows, variables and events
are handled by Prefect's own code. The gateway only swaps credentials: the client's
Cloud API key is checked here and replaced by the upstream server's Basic auth string
(or removed if the upstream is open).

It is NOT Prefect Cloud: no RBAC/scopes, no account-level APIs beyond ``/me``, and a
single upstream server backs every workspace (workspaces are not isolated from each
other). Service-account (``pnb_``) ``/me/`` responses use a guessed shape
(``{"id", "handle", "name", "actor_type": "bot"}``) because real Cloud's exact bot
payload is not public here; code under test must be tolerant of extra/missing fields.

Websocket authentication, as Prefect 3.9.1 clients do it (``prefect/events/clients.py``):

* ``PrefectCloudEventsClient`` (``events/in`` on a Cloud URL) sends NO subprotocol and
  authenticates with an ``Authorization: bearer <key>`` header on the HTTP upgrade; it
  performs no auth message handshake.
* ``PrefectCloudEventSubscriber`` (``events/out``) and the logs subscriber offer the
  ``prefect`` subprotocol and send ``{"type": "auth", "token": <key>}`` as the first
  message, expecting ``{"type": "auth_success"}`` back.

The gateway supports both: it validates the key (closing with 1008 on failure, like
Prefect Cloud and server), then performs the upstream server's own handshake
(``prefect`` subprotocol, ``{"type": "auth", "token": <upstream auth string>}``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._loopback import LoopbackServer
from ._relay import (
    ALL_METHODS,
    connect_upstream,
    forward_http,
    forwarded_headers,
    offered_subprotocols,
    raw_path,
    relay,
    safe_close,
    upstream_authorization,
    websocket_url,
    with_query,
)

__all__ = ["CloudWorkspace", "CloudKey", "CloudGateway", "mask_authorization", "fingerprint"]

_ACTOR_NAMESPACE = uuid.UUID("6f1d3c2e-8a57-4f0e-9a1b-5c0de0c1a0d0")


@dataclass
class CloudWorkspace:
    account_id: UUID
    account_handle: str
    account_name: str
    workspace_id: UUID
    workspace_handle: str
    workspace_name: str

    @classmethod
    def new(cls, account_handle: str, workspace_handle: str) -> "CloudWorkspace":
        """A workspace with random ids and names derived from the handles."""
        return cls(
            account_id=uuid.uuid4(),
            account_handle=account_handle,
            account_name=account_handle.replace("-", " ").title(),
            workspace_id=uuid.uuid4(),
            workspace_handle=workspace_handle,
            workspace_name=workspace_handle.replace("-", " ").title(),
        )

    def as_prefect_workspace(self) -> dict[str, Any]:
        """Exactly the fields of ``prefect.client.schemas.objects.Workspace``."""
        return {
            "account_id": str(self.account_id),
            "account_name": self.account_name,
            "account_handle": self.account_handle,
            "workspace_id": str(self.workspace_id),
            "workspace_name": self.workspace_name,
            "workspace_description": f"{self.workspace_name} (emulated for tests)",
            "workspace_handle": self.workspace_handle,
        }


@dataclass
class CloudKey:
    key: str
    actor_type: Literal["user", "service_account"]
    handle: str
    workspaces: list[CloudWorkspace] = field(default_factory=list)
    expired: bool = False  # mutable at run time: set True to "expire"/revoke the key

    @property
    def actor_id(self) -> UUID:
        """Stable per actor: two keys of the same actor (rotation) share it."""
        return uuid.uuid5(_ACTOR_NAMESPACE, f"{self.actor_type}:{self.handle}")

    def me(self) -> dict[str, Any]:
        if self.actor_type == "user":
            return {
                "id": str(self.actor_id),
                "handle": self.handle,
                "email": f"{self.handle}@example.com",
                "first_name": self.handle.split("-")[0].title(),
                "last_name": "Tester",
            }
        # Guessed shape: real Cloud's bot payload is not public here.
        return {
            "id": str(self.actor_id),
            "handle": self.handle,
            "name": self.handle,
            "actor_type": "bot",
        }


def fingerprint(secret: str) -> str:
    """A short, non-reversible fingerprint of a secret (to tell keys apart in logs)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def mask_authorization(value: str | None) -> str | None:
    """``"Bearer pnu_abc..."`` -> ``"Bearer pnu_***#<fingerprint>"``; never the raw secret."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if not token:
        scheme, token = "", scheme
    prefix = token[:4] if token[:4] in ("pnu_", "pnb_") else ""
    masked = f"{prefix}***#{fingerprint(token)}"
    return f"{scheme} {masked}" if scheme else masked


def _json_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


_UNAUTHORIZED = "Invalid authentication credentials"
# What a workspace request gets for each status ``CloudGateway._check`` returns.
_REFUSALS = {
    401: _UNAUTHORIZED,
    403: "Forbidden: this key has no access to this workspace",
    404: "Workspace not found",
}


class CloudGateway(LoopbackServer):
    """Emulated Prefect Cloud in front of a real Prefect server (see module docstring).

    ``requests`` records ``(method, path, masked Authorization)`` for every request;
    websockets are logged as ``("WEBSOCKET", path, masked header)`` and, when the client
    sends an auth message, ``("WEBSOCKET-AUTH", path, masked token)``.
    """

    def __init__(
        self,
        upstream_api_url: str,
        *,
        upstream_auth_string: str | None = None,
        keys: list[CloudKey],
    ) -> None:
        self.upstream_api_url = upstream_api_url.rstrip("/")
        self.upstream_auth_string = upstream_auth_string
        self.keys: list[CloudKey] = list(keys)
        self.requests: list[tuple[str, str, str | None]] = []
        self.port: int | None = None
        self.api_url: str = ""
        self._http = None
        self._ws_tasks = set()
        self.app = self._build_app()

    # -- public helpers -----------------------------------------------------

    def workspace_api_url(self, ws: CloudWorkspace) -> str:
        return f"{self.api_url}/accounts/{ws.account_id}/workspaces/{ws.workspace_id}"

    def add_key(self, key: CloudKey) -> None:
        self.keys.append(key)

    def remove_key(self, key: str) -> None:
        self.keys = [k for k in self.keys if k.key != key]

    @property
    def workspaces(self) -> list[CloudWorkspace]:
        seen: dict[UUID, CloudWorkspace] = {}
        for k in self.keys:
            for ws in k.workspaces:
                seen.setdefault(ws.workspace_id, ws)
        return list(seen.values())

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        self.port = self._serve(self.app, name="cloud-gateway", timeout=timeout)
        self.api_url = f"http://127.0.0.1:{self.port}/api"

    # -- auth ---------------------------------------------------------------

    def _lookup(self, token: str | None) -> CloudKey | None:
        if not token:
            return None
        for k in self.keys:
            if k.key == token and not k.expired:
                return k
        return None

    @staticmethod
    def _bearer(authorization: str | None) -> str | None:
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None

    def _find_workspace(self, account_id: str, workspace_id: str) -> CloudWorkspace | None:
        for ws in self.workspaces:
            if str(ws.account_id) == account_id and str(ws.workspace_id) == workspace_id:
                return ws
        return None

    @staticmethod
    def _has_access(key: CloudKey, ws: CloudWorkspace) -> bool:
        return any(w.workspace_id == ws.workspace_id for w in key.workspaces)

    def _check(
        self, token: str | None, account_id: str, workspace_id: str
    ) -> tuple[int, CloudWorkspace | None]:
        """(0, ws) on success, else (HTTP status, None)."""
        key = self._lookup(token)
        if key is None:
            return 401, None
        ws = self._find_workspace(account_id, workspace_id)
        if ws is None:
            return 404, None
        if not self._has_access(key, ws):
            return 403, None
        return 0, ws

    def _upstream_headers(self) -> dict[str, str]:
        return upstream_authorization(self.upstream_auth_string)

    def _log(self, method: str, path: str, authorization: str | None) -> None:
        self.requests.append((method, path, mask_authorization(authorization)))

    # -- app ----------------------------------------------------------------

    def _build_app(self) -> Starlette:
        ws_prefix = "/api/accounts/{account_id}/workspaces/{workspace_id}"
        routes = [
            Route("/api/me", self._me),
            Route("/api/me/", self._me),
            Route("/api/me/workspaces", self._my_workspaces),
            Route("/api/me/workspaces/", self._my_workspaces),
            Route("/api/health", self._health),
            Route(ws_prefix, self._proxy_http, methods=ALL_METHODS),
            Route(ws_prefix + "/{path:path}", self._proxy_http, methods=ALL_METHODS),
            WebSocketRoute(ws_prefix + "/{path:path}", self._proxy_ws),
        ]

        return self._proxy_app(routes)

    async def _health(self, request: Request) -> Response:
        return JSONResponse(True)

    def _caller(self, request: Request) -> CloudKey | None:
        """The key behind a /me request (logged, masked), or None."""
        auth = request.headers.get("authorization")
        self._log(request.method, request.url.path, auth)
        return self._lookup(self._bearer(auth))

    async def _me(self, request: Request) -> Response:
        key = self._caller(request)
        if key is None:
            return _json_error(401, _UNAUTHORIZED)
        return JSONResponse(key.me())

    async def _my_workspaces(self, request: Request) -> Response:
        key = self._caller(request)
        if key is None:
            return _json_error(401, _UNAUTHORIZED)
        return JSONResponse([ws.as_prefect_workspace() for ws in key.workspaces])

    @staticmethod
    def _raw_remainder(scope: MutableMapping[str, Any], account_id: str, workspace_id: str) -> str:
        """The still percent-encoded path after the workspace prefix."""
        path = raw_path(scope)
        marker = f"/workspaces/{workspace_id}"
        idx = path.find(marker)
        if idx < 0:  # pragma: no cover - ids are plain UUIDs
            return str(scope["path"].split(marker, 1)[-1])
        return path[idx + len(marker) :]

    async def _proxy_http(self, request: Request) -> Response:
        aid = request.path_params["account_id"]
        wid = request.path_params["workspace_id"]
        auth = request.headers.get("authorization")
        self._log(request.method, request.url.path, auth)
        status, ws = self._check(self._bearer(auth), aid, wid)
        if ws is None:
            return _json_error(status, _REFUSALS[status])
        remainder = self._raw_remainder(request.scope, aid, wid)
        url = with_query(self.upstream_api_url + remainder, request.url.query)
        headers = forwarded_headers(
            request.headers.items(), drop={"authorization"}, add=self._upstream_headers()
        )
        assert self._http is not None
        return await forward_http(
            self._http, request, url, headers,
            upstream_prefix=self.upstream_api_url, public_prefix=self.workspace_api_url(ws),
        )

    async def _proxy_ws_inner(self, websocket: WebSocket) -> None:
        aid = websocket.path_params["account_id"]
        wid = websocket.path_params["workspace_id"]
        uses_prefect_protocol = "prefect" in offered_subprotocols(websocket.headers)
        if not await self._admit_websocket(websocket, aid, wid, uses_prefect_protocol):
            return
        remainder = self._raw_remainder(websocket.scope, aid, wid)
        url = with_query(websocket_url(self.upstream_api_url + remainder), websocket.url.query)
        try:
            upstream = await connect_upstream(url, ["prefect"], self._upstream_headers())
        except Exception as exc:
            await safe_close(websocket, 1011, f"upstream connect failed: {type(exc).__name__}")
            return
        try:
            answer = await self._authenticate_upstream(websocket, upstream)
            if answer is None:
                return
            if uses_prefect_protocol:
                await websocket.send_text(answer)
            await relay(websocket, upstream)
        finally:
            await upstream.close()

    async def _admit_websocket(
        self, websocket: WebSocket, aid: str, wid: str, uses_prefect_protocol: bool
    ) -> bool:
        """Check the client's key the way its Prefect client sends it; accept or close."""
        auth_header = websocket.headers.get("authorization")
        path = websocket.url.path
        self._log("WEBSOCKET", path, auth_header)
        if not uses_prefect_protocol:
            # PrefectCloudEventsClient: the key travels in the upgrade request's
            # Authorization header; reject before accepting (the client sees HTTP 403).
            status, _ = self._check(self._bearer(auth_header), aid, wid)
            if status:
                await websocket.close(code=1008, reason=_UNAUTHORIZED)
                return False
            await websocket.accept()
            return True
        # With the "prefect" subprotocol the first message carries the credential, as
        # on Prefect server; any Authorization header is ignored.
        await websocket.accept(subprotocol="prefect")
        try:
            first = await websocket.receive_json()
        except (WebSocketDisconnect, json.JSONDecodeError, KeyError, RuntimeError):
            await safe_close(websocket, 1008, "Expected 'auth' message")
            return False
        if not isinstance(first, dict) or first.get("type") != "auth":
            await safe_close(websocket, 1008, "Expected 'auth' message")
            return False
        token = first.get("token")
        self.requests.append(("WEBSOCKET-AUTH", path, mask_authorization(token) if token else None))
        status, _ = self._check(token, aid, wid)
        if status:
            await safe_close(websocket, 1008, _UNAUTHORIZED)
            return False
        return True

    async def _authenticate_upstream(self, websocket: WebSocket, upstream: Any) -> str | None:
        """The upstream server's own auth handshake: its ``auth_success`` text, or None
        once the client has been closed with the reason."""
        await upstream.send(json.dumps({"type": "auth", "token": self.upstream_auth_string}))
        try:
            answer_raw = await upstream.recv()
            answer = json.loads(answer_raw)
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1011
            reason = exc.rcvd.reason if exc.rcvd else "upstream closed"
            await safe_close(websocket, code, reason)
            return None
        if answer.get("type") != "auth_success":
            await safe_close(websocket, 1011, "upstream authentication failed")
            return None
        return answer_raw if isinstance(answer_raw, str) else answer_raw.decode()
