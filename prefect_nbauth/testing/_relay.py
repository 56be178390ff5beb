"""The HTTP and websocket relay to a real Prefect server, shared by the test gateways.

:class:`~prefect_nbauth.testing.CloudGateway` and :class:`~prefect_nbauth.testing.RotatingGateway`
each decide who may pass and which credential the upstream gets; what happens after that
is the same for both and lives here: forwarding a request (streamed, raw bytes, so the
upstream's ``content-encoding`` and ``content-length`` stay valid), rewriting ``Location``
headers that point at the upstream, connecting a websocket upstream, and relaying frames
both ways until one side closes, passing its close code on.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import httpx
import websockets
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect

from .._urls import to_ws
from ._server import basic_auth_header

__all__ = [
    "ALL_METHODS",
    "HOP_BY_HOP",
    "connect_upstream",
    "deny",
    "forward_http",
    "forwarded_headers",
    "offered_subprotocols",
    "raw_path",
    "relay",
    "safe_close",
    "upstream_authorization",
    "websocket_url",
    "with_query",
]

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# Headers about one connection, not the message (RFC 9110 7.6.1): never relayed.
HOP_BY_HOP = frozenset({
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
})

# Close codes that may be sent in a close frame (RFC 6455 7.4.1; 1005/1006/1015 may not).
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014} | set(
    range(3000, 5000)
)

# uvicorn 0.54's websockets-sansio protocol never marks a denial response as a finished
# handshake, so after every (correctly sent) 401 it logs "ASGI callable returned without
# completing handshake." at ERROR (its fallback 500 is skipped). Drop exactly that record,
# and only for connections a gateway denied (the flag lives in the connection task's
# context, which uvicorn's run_asgi shares with the app).
_DENIED: contextvars.ContextVar[bool] = contextvars.ContextVar("gateway_denied",
                                                               default=False)


class _DeniedHandshakeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DENIED.get() and record.getMessage().startswith(
            "ASGI callable returned without completing handshake"))


_uvicorn_error = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _DeniedHandshakeFilter) for f in _uvicorn_error.filters):
    _uvicorn_error.addFilter(_DeniedHandshakeFilter())


async def deny(websocket: WebSocket, response: Response) -> None:
    """Refuse a websocket upgrade with a real HTTP ``response`` (before the handshake)."""
    _DENIED.set(True)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # server without the denial-response extension: HTTP 403
        await websocket.close(code=1008, reason=str(response.status_code))


def upstream_authorization(auth_string: str | None) -> dict[str, str]:
    """The header the upstream Prefect server wants for its auth string (none if open)."""
    return {} if auth_string is None else basic_auth_header(auth_string)


def raw_path(scope: MutableMapping[str, Any]) -> str:
    """The request path as the client sent it (still percent-encoded), without the query."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return str(raw.decode("latin-1").split("?", 1)[0])


def with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


def websocket_url(http_url: str) -> str:
    return to_ws(http_url)


def offered_subprotocols(headers: Any) -> list[str]:
    """The subprotocols a websocket client offered, in its order."""
    return [
        p.strip()
        for h in headers.getlist("sec-websocket-protocol")
        for p in h.split(",")
        if p.strip()
    ]


def forwarded_headers(
    headers: Iterable[tuple[str, str]], *, drop: Iterable[str], add: Mapping[str, str]
) -> list[tuple[str, str]]:
    """A client's headers for the upstream: hop-by-hop, ``host``, ``content-length`` and
    ``drop`` (lower case) removed, then ``add`` appended."""
    dropped = HOP_BY_HOP | {"host", "content-length"} | set(drop)
    out = [(k, v) for k, v in headers if k.lower() not in dropped]
    out.extend(add.items())
    return out


async def forward_http(
    http: httpx.AsyncClient,
    request: Request,
    url: str,
    headers: list[tuple[str, str]],
    *,
    upstream_prefix: str,
    public_prefix: str,
) -> Response:
    """Send ``request`` to ``url`` and stream the answer back (502 if unreachable).

    A ``Location`` under ``upstream_prefix`` is rewritten to ``public_prefix``, so that
    redirects keep the client on the gateway.
    """
    body = await request.body()
    upstream_request = http.build_request(request.method, url, headers=headers, content=body)
    try:
        upstream = await http.send(upstream_request, stream=True)
    except httpx.HTTPError as exc:
        return JSONResponse(
            {"detail": f"Upstream Prefect server unreachable: {type(exc).__name__}"},
            status_code=502,
        )
    out_headers: list[tuple[str, str]] = []
    for k, v in upstream.headers.multi_items():
        lk = k.lower()
        if lk in HOP_BY_HOP or lk in ("server", "date"):
            continue
        if lk == "location" and v.startswith(upstream_prefix):
            v = public_prefix + v[len(upstream_prefix):]
        out_headers.append((k, v))
    # Raw (still encoded) bytes are relayed, so content-encoding and content-length
    # stay valid and are kept.
    response = StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        background=BackgroundTask(upstream.aclose),
    )
    response.raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers
    ]
    return response


def connect_upstream(
    url: str, subprotocols: Sequence[str], headers: Mapping[str, str], **options: Any
) -> Any:
    """``websockets`` connect to the upstream (await it): no size limit, 30 s to open."""
    return ws_connect(
        url,
        subprotocols=[websockets.Subprotocol(p) for p in subprotocols] or None,
        additional_headers=dict(headers),
        max_size=None,
        open_timeout=30,
        **options,
    )


async def safe_close(websocket: WebSocket, code: int, reason: str = "") -> None:
    """Close the client's websocket; it may be gone already (nothing left to tell it)."""
    try:
        await websocket.close(code=code, reason=reason[:120])  # a close reason fits 123 bytes
    except Exception:
        pass


async def relay(client: WebSocket, upstream: Any) -> None:
    """Relay frames both ways until either side closes, then close the other side."""

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
        await safe_close(client, code if code in _SENDABLE else 1011, reason or "")

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
