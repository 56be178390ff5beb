"""A loopback OAuth2-proxy stand-in with short-lived JWTs, for tests only.

:class:`RotatingGateway` stands for an OAuth2 proxy / identity-aware proxy (IAP) /
Cloudflare Access in front of a Prefect server: every request must carry a short-lived
bearer JWT that the gateway itself issues from an OAuth2 token endpoint. It exists so
tests can exercise token expiry, refresh and revocation against a REAL Prefect server
(everything that passes the gateway is forwarded to it). It is not a security component:
do not use it outside tests.

Surface (all on ``127.0.0.1:PORT``):

* ``POST /oauth/token`` -- RFC 6749 §4.4 client-credentials grant. Client authentication
  by HTTP Basic (``client_id:client_secret``, each form-urlencoded first as §2.3.1 says)
  or by ``client_id``/``client_secret`` form fields (using both at once is a 400
  ``invalid_request``). Body ``grant_type=client_credentials`` (+ optional ``scope``,
  echoed back). Success: ``{"access_token": JWT, "token_type": "Bearer",
  "expires_in": lifetime}`` with ``Cache-Control: no-store``. Errors: bad/missing client
  401 ``invalid_client`` (with ``WWW-Authenticate: Basic``); wrong grant 400
  ``unsupported_grant_type``; missing grant 400 ``invalid_request``.
  :attr:`RotatingGateway.token_endpoint_mode` can be switched at run time to
  ``"down"`` (503), ``"400"`` (``invalid_scope`` if a scope was requested, else
  ``invalid_request``) or ``"401"`` (``invalid_client``, even with good credentials).
* ``/api/...`` (every method) and ``/ui-settings`` (Prefect's public root endpoint -- still
  guarded here, as a real proxy guards everything): the token is checked, then the request
  is forwarded to ``{upstream_api_url}/...`` (``/ui-settings`` to the upstream root).
* websockets under ``/api/...`` (``events/in``, ``events/out``, ``logs/out``, ...).

Tokens -- HS256 JWTs with claims ``iss``, ``sub`` (= client id), ``iat``, ``exp``, ``jti``
(uuid4 hex) and ``scope`` when one was requested.

**Expiry precision.** ``exp`` and ``iat`` are JSON *floats* (RFC 7519 §2 NumericDate
explicitly allows non-integer values), so sub-second lifetimes such as 0.5 s are exact.
The gateway enforces ``exp`` itself, at full float precision and with NO leeway: a token
is expired once ``time.time() >= exp``. (PyJWT's own ``exp`` check truncates to an integer,
i.e. expires tokens up to 1 s early, so it is switched off here.) ``expires_in`` is the
lifetime as given: an int when it is whole (``2.0`` -> ``2``), else a float (``0.5``).
Note that RFC 6749's grammar says ``expires_in = 1*DIGIT`` and oauthlib truncates a float
``expires_in`` to an int -- ``0.5`` becomes ``0``, which oauthlib then DROPS; clients should
fall back to the JWT's ``exp``.

**Token check** (HTTP and websocket upgrade alike). By default ``Authorization: Bearer
<jwt>`` (the scheme is case-insensitive); with ``header="X-Gateway-Token"`` (any other
name) the raw JWT in that header, no scheme. Rejection reasons, counted in
:attr:`RotatingGateway.rejected`:

* ``"missing"`` -- no such header, empty value, or (Authorization mode) a scheme other
  than Bearer, e.g. Prefect's own ``Basic``;
* ``"malformed"`` -- not a JWT, or ``exp``/``jti``/``sub`` missing or of the wrong type;
* ``"bad signature"`` -- signature does not verify, or an algorithm other than HS256
  (``alg: none`` included);
* ``"expired"`` -- checked before revocation, so pruning the revocation list never
  changes an answer;
* ``"revoked"`` -- ``jti`` is on the in-memory revocation list (:meth:`revoke`).

A rejected HTTP request gets ``401`` with ``WWW-Authenticate: Bearer realm="rotating-gateway",
error="invalid_token", error_description="<reason>"`` and a JSON body
``{"error": "invalid_token", "reason": <reason>, "detail": ...}`` -- for ``missing`` too,
although RFC 6750 §3.1 would omit the error code there.

**Forwarding.** The gateway header is removed. If ``upstream_auth_string`` is set, the
upstream gets ``Authorization: Basic base64(auth string)`` (overwriting anything the client
sent); if it is None nothing is added, and in custom-header mode a client's own
``Authorization`` header passes through untouched (as with an IAP in front of a server
that checks its own credentials). ``Location`` headers pointing at the upstream are
rewritten to the gateway.

**Websockets.** Only the UPGRADE request is checked (headers). A bad token is refused
BEFORE the handshake completes with a real HTTP ``401`` response (same headers and JSON
body as above) via the ASGI websocket denial-response extension, which uvicorn's
``websockets-sansio`` implementation supports; a client using the ``websockets`` library
sees ``websockets.exceptions.InvalidStatus`` with ``exc.response.status_code == 401``.
(Were the extension missing, it would fall back to ``close()`` before accept, i.e. HTTP
403.) A valid upgrade is relayed transparently: the gateway connects upstream with the
subprotocols the client offered (and the upstream Basic header), completes the client
handshake with the subprotocol the upstream chose, and if that is ``prefect`` rewrites the
client's first message ``{"type": "auth", "token": X}`` to carry the upstream auth string
(``X`` is typically None in header mode) -- the upstream answers ``auth_success`` or closes
with 1008 itself. If the upstream refuses the upgrade (e.g. 403: no ``prefect`` subprotocol
while the server enforces auth), the client is refused with the same status; if the
upstream cannot be reached, 502. Like real proxies, a token that EXPIRES (or is revoked)
while a websocket is open does NOT close it; only new upgrades are refused.

Counters (``issued``, ``accepted``, ``rejected``, ``token_requests``, ``rejected_log``) are
updated under a lock; ``rejected_log`` holds ``(time.time(), path, reason)`` and never a raw
token. The HTTP relay, the websocket relay and the uvicorn set-up are imported from
:mod:`prefect_nbauth.testing._cloud`.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import httpx
import jwt
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect

from ._cloud import _ALL_METHODS, _HOP_BY_HOP, CloudGateway, LoopbackServer

__all__ = ["RotatingGateway", "REJECTION_REASONS", "TOKEN_ENDPOINT_MODES"]

REJECTION_REASONS = ("missing", "bad signature", "expired", "revoked", "malformed")
TOKEN_ENDPOINT_MODES = ("ok", "down", "400", "401")
_ALGORITHM = "HS256"
_REALM = "rotating-gateway"

# uvicorn 0.54's websockets-sansio protocol never marks a denial response as a finished
# handshake, so after every (correctly sent) 401 it logs "ASGI callable returned without
# completing handshake." at ERROR (its fallback 500 is skipped). Drop exactly that record,
# and only for connections this gateway denied (the flag lives in the connection task's
# context, which uvicorn's run_asgi shares with the app).
_DENIED: contextvars.ContextVar[bool] = contextvars.ContextVar("rotating_gateway_denied",
                                                               default=False)


class _DeniedHandshakeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DENIED.get() and record.getMessage().startswith(
            "ASGI callable returned without completing handshake"))


_uvicorn_error = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _DeniedHandshakeFilter) for f in _uvicorn_error.filters):
    _uvicorn_error.addFilter(_DeniedHandshakeFilter())


def _www_authenticate(reason: str) -> str:
    return f'Bearer realm="{_REALM}", error="invalid_token", error_description="{reason}"'


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **headers},
    )


class RotatingGateway(LoopbackServer):
    """OAuth2-proxy stand-in issuing short-lived JWTs, in front of a real Prefect server.

    See the module docstring for the exact behaviour. Typical use::

        with RotatingGateway(server.api_url, upstream_auth_string=AUTH) as gw:
            token = httpx.post(gw.token_url, data={"grant_type": "client_credentials"},
                               auth=(gw.client_id, gw.client_secret)).json()["access_token"]
            httpx.get(f"{gw.api_url}/admin/version",
                      headers={"Authorization": f"Bearer {token}"})
    """

    def __init__(
        self,
        upstream_api_url: str,
        *,
        upstream_auth_string: str | None = None,
        token_lifetime: float = 2.0,
        client_id: str = "nbauth-tests",
        client_secret: str | None = None,
        signing_key: bytes | None = None,
        header: str = "Authorization",
    ) -> None:
        if token_lifetime < 0:
            raise ValueError("token_lifetime must be >= 0")
        self.upstream_api_url = upstream_api_url.rstrip("/")
        self.upstream_auth_string = upstream_auth_string
        self.token_lifetime = float(token_lifetime)
        self.client_id = client_id
        self.client_secret = client_secret if client_secret is not None else secrets.token_urlsafe(24)
        self.signing_key = signing_key if signing_key is not None else secrets.token_bytes(32)
        self.header = header
        self.token_endpoint_mode = "ok"

        self.port: int | None = None
        self.base_url = ""
        self.api_url = ""
        self.token_url = ""

        self._lock = threading.Lock()
        self.issued = 0
        self.accepted = 0
        self.token_requests = 0
        self.rejected: dict[str, int] = {r: 0 for r in REJECTION_REASONS}
        self.rejected_log: list[tuple[float, str, str]] = []
        self._revoked: dict[str, float] = {}  # jti -> exp

        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: Any = None
        self._http: httpx.AsyncClient | None = None
        self._ws_tasks: set[asyncio.Task[Any]] = set()
        self.app = self._build_app()

    # -- tokens -------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.base_url or "rotating-gateway"

    def issue(self, lifetime: float | None = None, *, scope: str | None = None) -> str:
        """Mint a token directly (counted in :attr:`issued`)."""
        lifetime = self.token_lifetime if lifetime is None else float(lifetime)
        now = time.time()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if scope:
            claims["scope"] = scope
        token = jwt.encode(claims, self.signing_key, algorithm=_ALGORITHM)
        with self._lock:
            self.issued += 1
        return token

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (signature only; expiry/revocation NOT checked)."""
        return jwt.decode(
            token,
            self.signing_key,
            algorithms=[_ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "verify_iss": False, "verify_aud": False},
        )

    def revoke(self, token: str) -> None:
        """Put the token's ``jti`` on the revocation list (prunes already-expired entries)."""
        try:
            claims = self.claims(token)
            jti, exp = claims["jti"], float(claims["exp"])
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a token of this gateway: {type(exc).__name__}") from None
        now = time.time()
        with self._lock:
            for old in [j for j, e in self._revoked.items() if e <= now]:
                del self._revoked[old]
            self._revoked[jti] = exp

    @property
    def revoked_count(self) -> int:
        with self._lock:
            return len(self._revoked)

    def _verify(self, token: str | None) -> str | None:
        """None if ``token`` is acceptable, else the rejection reason."""
        if not token:
            return "missing"
        try:
            claims = self.claims(token)
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            return "bad signature"
        except jwt.InvalidTokenError:
            return "malformed"
        exp, jti, sub = claims.get("exp"), claims.get("jti"), claims.get("sub")
        if (
            not isinstance(exp, (int, float)) or isinstance(exp, bool)
            or not isinstance(jti, str) or not jti or not isinstance(sub, str)
        ):
            return "malformed"
        if time.time() >= exp:  # no leeway, float precision
            return "expired"
        with self._lock:
            if jti in self._revoked:
                return "revoked"
        return None

    def _token_from(self, headers: Any) -> str | None:
        value = headers.get(self.header)
        if value is None:
            return None
        value = value.strip()
        if self.header.lower() == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
        return value or None

    def _check(self, headers: Any, path: str) -> str | None:
        reason = self._verify(self._token_from(headers))
        with self._lock:
            if reason is None:
                self.accepted += 1
            else:
                self.rejected[reason] += 1
                self.rejected_log.append((time.time(), path, reason))
        return reason

    @staticmethod
    def _rejection(reason: str) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid_token", "reason": reason,
             "detail": f"Gateway token rejected: {reason}"},
            status_code=401,
            headers={"WWW-Authenticate": _www_authenticate(reason)},
        )

    def reset_counters(self) -> None:
        with self._lock:
            self.issued = self.accepted = self.token_requests = 0
            self.rejected = {r: 0 for r in REJECTION_REASONS}
            self.rejected_log = []

    def counters(self) -> dict[str, Any]:
        """A consistent snapshot of every counter."""
        with self._lock:
            return {
                "issued": self.issued,
                "accepted": self.accepted,
                "token_requests": self.token_requests,
                "rejected": dict(self.rejected),
                "rejected_log": len(self.rejected_log),
            }

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        self.port = self._serve(self.app, name="rotating-gateway", timeout=timeout)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/api"
        self.token_url = f"{self.base_url}/oauth/token"

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<RotatingGateway {self.api_url or '-'} -> {self.upstream_api_url} {state}>"

    # -- app ----------------------------------------------------------------

    def _build_app(self) -> Starlette:
        routes = [
            Route("/oauth/token", self._token_endpoint, methods=["POST"]),
            Route("/ui-settings", self._proxy_http, methods=_ALL_METHODS),
            Route("/api", self._proxy_http, methods=_ALL_METHODS),
            Route("/api/{path:path}", self._proxy_http, methods=_ALL_METHODS),
            WebSocketRoute("/api/{path:path}", self._proxy_ws),
        ]

        return self._proxy_app(routes)

    # -- token endpoint -----------------------------------------------------

    def _client_credentials(
        self, request: Request, form: dict[str, str]
    ) -> tuple[str | None, str | None, bool, bool]:
        """(client_id, client_secret, used_basic, used_both)."""
        used_basic = False
        cid = secret = None
        auth = request.headers.get("authorization")
        if auth:
            scheme, _, value = auth.strip().partition(" ")
            if scheme.lower() == "basic":
                used_basic = True
                try:
                    decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
                    raw_id, sep, raw_secret = decoded.partition(":")
                    if sep:
                        cid, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
                except (ValueError, UnicodeDecodeError):
                    pass
        in_form = "client_secret" in form
        if used_basic:
            return cid, secret, True, in_form
        return form.get("client_id"), form.get("client_secret"), False, False

    async def _token_endpoint(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        mode = self.token_endpoint_mode
        if mode == "down":
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "token endpoint down"},
                status_code=503, headers={"Retry-After": "1"},
            )
        if mode == "400":
            if form.get("scope"):
                return _oauth_error(400, "invalid_scope", "The requested scope is invalid.")
            return _oauth_error(400, "invalid_request", "The request is invalid.")
        cid, secret, used_basic, used_both = self._client_credentials(request, form)
        basic_challenge = {"WWW-Authenticate": f'Basic realm="{_REALM}"'}
        if mode == "401":
            return _oauth_error(401, "invalid_client", "Client authentication failed.",
                                **basic_challenge)
        if mode != "ok":
            raise RuntimeError(f"unknown token_endpoint_mode {mode!r}")
        if used_both:
            return _oauth_error(400, "invalid_request",
                                "Use only one client authentication method.")
        if not (
            cid is not None and secret is not None
            and hmac.compare_digest(cid.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed.",
                                **(basic_challenge if used_basic or cid is None else {}))
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing grant_type.")
        if grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                f"Only client_credentials is supported, not {grant!r}.")
        scope = form.get("scope") or None
        lifetime = self.token_lifetime
        token = self.issue(lifetime, scope=scope)
        payload: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
        }
        if scope:
            payload["scope"] = scope
        return JSONResponse(payload, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- HTTP proxy ---------------------------------------------------------

    def _upstream_headers(self) -> dict[str, str]:
        return CloudGateway._upstream_headers(self)  # type: ignore[arg-type]

    @property
    def _upstream_root(self) -> str:
        url = self.upstream_api_url
        return url[: -len("/api")] if url.endswith("/api") else url

    @staticmethod
    def _raw_path(scope: MutableMapping[str, Any]) -> str:
        raw = scope.get("raw_path") or scope["path"].encode()
        return raw.decode("latin-1").split("?", 1)[0]

    def _upstream_url(self, raw_path: str) -> str:
        if raw_path == "/api" or raw_path.startswith("/api/"):
            return self.upstream_api_url + raw_path[len("/api"):]
        return self._upstream_root + raw_path

    def _forward_headers(self, headers: Any) -> list[tuple[str, str]]:
        drop = _HOP_BY_HOP | {"host", "content-length", self.header.lower()}
        if self.upstream_auth_string is not None:
            drop = drop | {"authorization"}
        out = [(k, v) for k, v in headers.items() if k.lower() not in drop]
        out.extend(self._upstream_headers().items())
        return out

    async def _proxy_http(self, request: Request) -> Response:
        reason = self._check(request.headers, request.url.path)
        if reason is not None:
            return self._rejection(reason)
        url = self._upstream_url(self._raw_path(request.scope))
        if request.url.query:
            url += "?" + request.url.query
        body = await request.body()
        assert self._http is not None
        upstream_req = self._http.build_request(
            request.method, url, headers=self._forward_headers(request.headers), content=body
        )
        try:
            upstream = await self._http.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"detail": f"Upstream Prefect server unreachable: {type(exc).__name__}"},
                status_code=502,
            )
        out_headers: list[tuple[str, str]] = []
        for k, v in upstream.headers.multi_items():
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk in ("server", "date"):
                continue
            if lk == "location" and v.startswith(self.upstream_api_url):
                v = self.api_url + v[len(self.upstream_api_url):]
            out_headers.append((k, v))
        response = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers
        ]
        return response

    # -- websocket proxy ----------------------------------------------------

    _relay = CloudGateway._relay
    _safe_close = staticmethod(CloudGateway._safe_close)

    async def _proxy_ws(self, websocket: WebSocket) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._ws_tasks.add(task)
        try:
            await self._proxy_ws_inner(websocket)
        finally:
            if task is not None:
                self._ws_tasks.discard(task)

    @staticmethod
    async def _deny(websocket: WebSocket, response: Response) -> None:
        _DENIED.set(True)
        try:
            await websocket.send_denial_response(response)
        except RuntimeError:  # server without the denial-response extension: HTTP 403
            await websocket.close(code=1008, reason=str(response.status_code))

    async def _proxy_ws_inner(self, websocket: WebSocket) -> None:
        reason = self._check(websocket.headers, websocket.url.path)
        if reason is not None:
            await self._deny(websocket, self._rejection(reason))
            return

        offered = [
            p.strip()
            for h in websocket.headers.getlist("sec-websocket-protocol")
            for p in h.split(",")
            if p.strip()
        ]
        url = self._upstream_url(self._raw_path(websocket.scope))
        url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        if websocket.url.query:
            url += "?" + websocket.url.query
        extra = {
            k: v for k, v in self._forward_headers(websocket.headers)
            if k.lower() not in {"user-agent"} and not k.lower().startswith("sec-websocket-")
        }
        try:
            upstream = await ws_connect(
                url,
                subprotocols=[websockets.Subprotocol(p) for p in offered] or None,
                additional_headers=extra,
                user_agent_header=websocket.headers.get("user-agent"),
                max_size=None,
                open_timeout=30,
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            await self._deny(websocket, JSONResponse(
                {"detail": f"upstream refused the websocket (HTTP {status})"}, status_code=status))
            return
        except Exception as exc:
            await self._deny(websocket, JSONResponse(
                {"detail": f"upstream connect failed: {type(exc).__name__}"}, status_code=502))
            return

        try:
            chosen = upstream.subprotocol
            await websocket.accept(subprotocol=chosen)
            if chosen == "prefect":
                # Rewrite Prefect's auth message to the upstream's own credential.
                try:
                    message = await websocket.receive()
                except (WebSocketDisconnect, RuntimeError):
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is not None:
                    try:
                        parsed = json.loads(text)
                    except ValueError:
                        parsed = None
                    if isinstance(parsed, dict) and parsed.get("type") == "auth":
                        text = json.dumps({**parsed, "token": self.upstream_auth_string})
                    await upstream.send(text)
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
            await self._relay(websocket, upstream)  # type: ignore[misc]  # CloudGateway's relay, shared
        finally:
            await upstream.close()
