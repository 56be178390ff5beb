"""A loopback OAuth2-proxy stand-in with short-lived JWTs, for tests only.

:class:`RotatingGateway` stands for an OAuth2 proxy / identity-aware proxy (IAP) /
Cloudflare Access in front of a Prefect server: every request must carry a short-lived
bearer JWT that the gateway itself issues from an OAuth2 token endpoint. It exists so
tests can exercise token expiry, refresh and revocation against a REAL Prefect server
(everything that passes the gateway is forwarded to it). It is not a security component:
do not use it outside tests.

Surface (all on ``127.0.0.1:PORT``):

* ``POST /oauth/token`` -- RFC 6749 §4.4 client-credentials grant (client by HTTP Basic or
  form fields), answering ``{"access_token": JWT, "token_type": "Bearer", "expires_in":
  lifetime}`` or the OAuth2 error, exactly as :mod:`prefect_nbauth.testing._oauth_token`
  describes. :attr:`RotatingGateway.token_endpoint_mode` can be switched at run time to
  ``"down"`` (503), ``"400"`` or ``"401"`` to fail it.
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
token. The HTTP and websocket relay is :mod:`prefect_nbauth.testing._relay` and the uvicorn
set-up :mod:`prefect_nbauth.testing._loopback`, both shared with the Cloud emulation.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from typing import Any

import jwt
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._loopback import LoopbackServer
from ._oauth_token import REALM, TOKEN_ENDPOINT_MODES, token_response
from ._relay import (
    ALL_METHODS,
    connect_upstream,
    deny,
    forward_http,
    forwarded_headers,
    offered_subprotocols,
    raw_path,
    relay,
    upstream_authorization,
    websocket_url,
    with_query,
)

__all__ = ["RotatingGateway", "REJECTION_REASONS", "TOKEN_ENDPOINT_MODES"]

REJECTION_REASONS = ("missing", "bad signature", "expired", "revoked", "malformed")
_ALGORITHM = "HS256"


def _www_authenticate(reason: str) -> str:
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'


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

        self._http = None
        self._ws_tasks = set()
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
            Route("/ui-settings", self._proxy_http, methods=ALL_METHODS),
            Route("/api", self._proxy_http, methods=ALL_METHODS),
            Route("/api/{path:path}", self._proxy_http, methods=ALL_METHODS),
            WebSocketRoute("/api/{path:path}", self._proxy_ws),
        ]

        return self._proxy_app(routes)

    # -- token endpoint -----------------------------------------------------

    async def _token_endpoint(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        return await token_response(self, request)

    # -- HTTP proxy ---------------------------------------------------------

    @property
    def _upstream_root(self) -> str:
        url = self.upstream_api_url
        return url[: -len("/api")] if url.endswith("/api") else url

    def _upstream_url(self, raw_path: str) -> str:
        if raw_path == "/api" or raw_path.startswith("/api/"):
            return self.upstream_api_url + raw_path[len("/api"):]
        return self._upstream_root + raw_path

    def _forward_headers(self, headers: Any) -> list[tuple[str, str]]:
        drop = {self.header.lower()}
        if self.upstream_auth_string is not None:
            drop.add("authorization")
        return forwarded_headers(
            headers.items(), drop=drop, add=upstream_authorization(self.upstream_auth_string)
        )

    async def _proxy_http(self, request: Request) -> Response:
        reason = self._check(request.headers, request.url.path)
        if reason is not None:
            return self._rejection(reason)
        url = with_query(self._upstream_url(raw_path(request.scope)), request.url.query)
        assert self._http is not None
        return await forward_http(
            self._http, request, url, self._forward_headers(request.headers),
            upstream_prefix=self.upstream_api_url, public_prefix=self.api_url,
        )

    # -- websocket proxy ----------------------------------------------------

    async def _proxy_ws_inner(self, websocket: WebSocket) -> None:
        reason = self._check(websocket.headers, websocket.url.path)
        if reason is not None:
            await deny(websocket, self._rejection(reason))
            return
        upstream = await self._connect_upstream(websocket)
        if upstream is None:
            return
        try:
            chosen = upstream.subprotocol
            await websocket.accept(subprotocol=chosen)
            if chosen == "prefect" and not await self._forward_auth_message(websocket, upstream):
                return
            await relay(websocket, upstream)
        finally:
            await upstream.close()

    async def _connect_upstream(self, websocket: WebSocket) -> Any:
        """The upstream websocket, offered what the client offered; None once the client
        has been refused with the upstream's status (502 if unreachable)."""
        url = websocket_url(self._upstream_url(raw_path(websocket.scope)))
        extra = {
            k: v for k, v in self._forward_headers(websocket.headers)
            if k.lower() not in {"user-agent"} and not k.lower().startswith("sec-websocket-")
        }
        try:
            return await connect_upstream(
                with_query(url, websocket.url.query),
                offered_subprotocols(websocket.headers),
                extra,
                user_agent_header=websocket.headers.get("user-agent"),
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            await deny(websocket, JSONResponse(
                {"detail": f"upstream refused the websocket (HTTP {status})"}, status_code=status))
        except Exception as exc:
            await deny(websocket, JSONResponse(
                {"detail": f"upstream connect failed: {type(exc).__name__}"}, status_code=502))
        return None

    async def _forward_auth_message(self, websocket: WebSocket, upstream: Any) -> bool:
        """Relay the client's first message, with Prefect's auth message rewritten to the
        upstream's own credential; False if the client went away first."""
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return False
        if message["type"] == "websocket.disconnect":
            return False
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
        return True
