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

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import httpx
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect

__all__ = ["CloudWorkspace", "CloudKey", "CloudGateway", "LoopbackServer", "mask_authorization", "fingerprint"]

_ACTOR_NAMESPACE = uuid.UUID("6f1d3c2e-8a57-4f0e-9a1b-5c0de0c1a0d0")

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


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


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _json_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


_UNAUTHORIZED = "Invalid authentication credentials"


class LoopbackServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a daemon thread.

    The lifecycle both test gateways share: ``_serve`` starts it and returns the
    port once it accepts connections; ``stop`` (also on ``__exit__``) ends it.
    """

    _http: httpx.AsyncClient | None
    _ws_tasks: set[asyncio.Task[Any]]

    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def start(self, timeout: float = 30) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _serve(self, app: Any, *, name: str, timeout: float) -> int:
        if self._thread is not None:
            raise RuntimeError(f"{name} already started")
        sock = self._sock = _free_socket()  # uvicorn serves on this very socket
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",  # supports the websocket denial-response extension
            ws_max_size=64 * 1024 * 1024,
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"{name} failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{name} did not start in time")
            self._thread.join(0.01)  # wait on the server thread, returns early if it dies
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        return port

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():  # pragma: no cover - stuck connections
            server.force_exit = True
            thread.join(10)
        self._server = None
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.start()
        return self

    def _proxy_app(self, routes: list[Any]) -> Starlette:
        """A Starlette app whose lifespan owns the upstream HTTP client and the relay tasks.

        Subclasses set ``self._http`` (None) and ``self._ws_tasks`` (a set) in ``__init__``.
        """
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(120.0), trust_env=False, follow_redirects=False
            )
            try:
                yield
            finally:
                for task in list(self._ws_tasks):
                    task.cancel()
                if self._http is not None:
                    await self._http.aclose()
                self._http = None

        return Starlette(routes=routes, lifespan=lifespan)

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.AsyncClient | None = None
        self._sock: socket.socket | None = None
        self._ws_tasks: set[asyncio.Task[Any]] = set()
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
        if self.upstream_auth_string is None:
            return {}
        token = base64.b64encode(self.upstream_auth_string.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {token}"}

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
            Route(ws_prefix, self._proxy_http, methods=_ALL_METHODS),
            Route(ws_prefix + "/{path:path}", self._proxy_http, methods=_ALL_METHODS),
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
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        marker = f"/workspaces/{workspace_id}"
        idx = raw_path.find(marker)
        if idx < 0:  # pragma: no cover - ids are plain UUIDs
            return scope["path"].split(marker, 1)[-1]
        return raw_path[idx + len(marker) :]

    async def _proxy_http(self, request: Request) -> Response:
        aid = request.path_params["account_id"]
        wid = request.path_params["workspace_id"]
        auth = request.headers.get("authorization")
        self._log(request.method, request.url.path, auth)
        status, ws = self._check(self._bearer(auth), aid, wid)
        if status == 401:
            return _json_error(401, _UNAUTHORIZED)
        if status == 403:
            return _json_error(403, "Forbidden: this key has no access to this workspace")
        if status == 404:
            return _json_error(404, "Workspace not found")

        remainder = self._raw_remainder(request.scope, aid, wid)
        url = self.upstream_api_url + remainder
        if request.url.query:
            url += "?" + request.url.query
        headers = [
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP | {"host", "authorization", "content-length"}
        ]
        headers.extend(self._upstream_headers().items())
        body = await request.body()
        assert self._http is not None
        upstream_req = self._http.build_request(request.method, url, headers=headers, content=body)
        try:
            upstream = await self._http.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            return _json_error(502, f"Upstream Prefect server unreachable: {type(exc).__name__}")

        out_headers: list[tuple[str, str]] = []
        for k, v in upstream.headers.multi_items():
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk in ("server", "date"):
                continue
            if lk == "location" and v.startswith(self.upstream_api_url):
                v = self.workspace_api_url(ws) + v[len(self.upstream_api_url) :]  # type: ignore[arg-type]
            out_headers.append((k, v))
        # Raw (still encoded) bytes are relayed, so content-encoding and content-length
        # stay valid and are kept.
        response = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        return response

    async def _proxy_ws(self, websocket: WebSocket) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._ws_tasks.add(task)
        try:
            await self._proxy_ws_inner(websocket)
        finally:
            if task is not None:
                self._ws_tasks.discard(task)

    async def _proxy_ws_inner(self, websocket: WebSocket) -> None:
        aid = websocket.path_params["account_id"]
        wid = websocket.path_params["workspace_id"]
        auth_header = websocket.headers.get("authorization")
        path = websocket.url.path
        self._log("WEBSOCKET", path, auth_header)
        subprotocols = [
            p.strip()
            for h in websocket.headers.getlist("sec-websocket-protocol")
            for p in h.split(",")
        ]
        uses_prefect_protocol = "prefect" in subprotocols

        if not uses_prefect_protocol:
            # PrefectCloudEventsClient: the key travels in the upgrade request's
            # Authorization header; reject before accepting (the client sees HTTP 403).
            status, _ = self._check(self._bearer(auth_header), aid, wid)
            if status:
                await websocket.close(code=1008, reason=_UNAUTHORIZED)
                return
        # With the "prefect" subprotocol the first message carries the credential, as
        # on Prefect server; any Authorization header is ignored.

        if uses_prefect_protocol:
            await websocket.accept(subprotocol="prefect")
            try:
                first = await websocket.receive_json()
            except (WebSocketDisconnect, json.JSONDecodeError, KeyError, RuntimeError):
                await self._safe_close(websocket, 1008, "Expected 'auth' message")
                return
            if not isinstance(first, dict) or first.get("type") != "auth":
                await self._safe_close(websocket, 1008, "Expected 'auth' message")
                return
            token = first.get("token")
            self.requests.append(
                ("WEBSOCKET-AUTH", path, mask_authorization(token) if token else None)
            )
            status, _ = self._check(token, aid, wid)
            if status:
                await self._safe_close(websocket, 1008, _UNAUTHORIZED)
                return
        else:
            await websocket.accept()

        remainder = self._raw_remainder(websocket.scope, aid, wid)
        upstream_url = self.upstream_api_url.replace("http://", "ws://", 1).replace(
            "https://", "wss://", 1
        ) + remainder
        if websocket.url.query:
            upstream_url += "?" + websocket.url.query
        try:
            upstream = await ws_connect(
                upstream_url,
                subprotocols=[websockets.Subprotocol("prefect")],
                additional_headers=self._upstream_headers(),
                max_size=None,
                open_timeout=30,
            )
        except Exception as exc:
            await self._safe_close(websocket, 1011, f"upstream connect failed: {type(exc).__name__}")
            return

        try:
            await upstream.send(json.dumps({"type": "auth", "token": self.upstream_auth_string}))
            try:
                answer_raw = await upstream.recv()
                answer = json.loads(answer_raw)
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1011
                reason = exc.rcvd.reason if exc.rcvd else "upstream closed"
                await self._safe_close(websocket, code, reason)
                return
            if answer.get("type") != "auth_success":
                await self._safe_close(websocket, 1011, "upstream authentication failed")
                return
            if uses_prefect_protocol:
                await websocket.send_text(answer_raw if isinstance(answer_raw, str) else answer_raw.decode())
            await self._relay(websocket, upstream)
        finally:
            await upstream.close()

    async def _relay(self, client: WebSocket, upstream: Any) -> None:
        async def client_to_upstream() -> None:
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", 1000) or 1000
                    await upstream.close(code=code if code in _SENDABLE else 1000)
                    return
                if message.get("text") is not None:
                    await upstream.send(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])

        async def upstream_to_client() -> None:
            try:
                async for message in upstream:
                    if isinstance(message, str):
                        await client.send_text(message)
                    else:
                        await client.send_bytes(message)
                rcvd = upstream.close_code, upstream.close_reason
            except websockets.ConnectionClosed as exc:
                rcvd = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1011, "")
            code, reason = rcvd
            await self._safe_close(
                client, code if code in _SENDABLE else 1011, reason or ""
            )

        tasks = [
            asyncio.ensure_future(client_to_upstream()),
            asyncio.ensure_future(upstream_to_client()),
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(
                exc, (WebSocketDisconnect, websockets.ConnectionClosed, RuntimeError)
            ):
                raise exc

    @staticmethod
    async def _safe_close(websocket: WebSocket, code: int, reason: str = "") -> None:
        try:
            await websocket.close(code=code, reason=reason[:120])
        except Exception:
            pass


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Close codes that may be sent in a close frame (RFC 6455 7.4.1; 1005/1006/1015 may not).
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014} | set(
    range(3000, 5000)
)
