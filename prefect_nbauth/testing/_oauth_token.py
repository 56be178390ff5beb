"""The OAuth2 token endpoint of :class:`~prefect_nbauth.testing.RotatingGateway`, for tests only.

``POST /oauth/token`` -- RFC 6749 §4.4 client-credentials grant. Client authentication
by HTTP Basic (``client_id:client_secret``, each form-urlencoded first as §2.3.1 says)
or by ``client_id``/``client_secret`` form fields (using both at once is a 400
``invalid_request``). Body ``grant_type=client_credentials`` (+ optional ``scope``,
echoed back). Success: ``{"access_token": JWT, "token_type": "Bearer",
"expires_in": lifetime}`` with ``Cache-Control: no-store``. Errors: bad/missing client
401 ``invalid_client`` (with ``WWW-Authenticate: Basic``); wrong grant 400
``unsupported_grant_type``; missing grant 400 ``invalid_request``.

The issuer's ``token_endpoint_mode`` can be switched at run time to ``"down"`` (503),
``"400"`` (``invalid_scope`` if a scope was requested, else ``invalid_request``) or
``"401"`` (``invalid_client``, even with good credentials).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["REALM", "TOKEN_ENDPOINT_MODES", "TokenIssuer", "client_credentials", "token_response"]

REALM = "rotating-gateway"
TOKEN_ENDPOINT_MODES = ("ok", "down", "400", "401")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
_BASIC_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}


class TokenIssuer(Protocol):
    """What the endpoint needs of the gateway: its client, its mode and its minting."""

    client_id: str
    client_secret: str
    token_lifetime: float
    token_endpoint_mode: str

    def issue(self, lifetime: float | None = None, *, scope: str | None = None) -> str: ...


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**_NO_STORE, **headers},
    )


def client_credentials(
    authorization: str | None, form: dict[str, str]
) -> tuple[str | None, str | None, bool, bool]:
    """(client_id, client_secret, used_basic, used_both) of a token request."""
    used_basic = False
    cid = secret = None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
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


def _forced_answer(mode: str, form: dict[str, str]) -> Response | None:
    """The answer a failure mode forces, whatever the request (None in mode ``ok``)."""
    if mode == "down":
        return JSONResponse(
            {"error": "temporarily_unavailable", "error_description": "token endpoint down"},
            status_code=503, headers={"Retry-After": "1"},
        )
    if mode == "400":
        if form.get("scope"):
            return _oauth_error(400, "invalid_scope", "The requested scope is invalid.")
        return _oauth_error(400, "invalid_request", "The request is invalid.")
    if mode == "401":
        return _oauth_error(401, "invalid_client", "Client authentication failed.",
                            **_BASIC_CHALLENGE)
    if mode != "ok":
        raise RuntimeError(f"unknown token_endpoint_mode {mode!r}")
    return None


async def token_response(issuer: TokenIssuer, request: Request) -> Response:
    """Answer one token request: a fresh token, or the OAuth2 error it deserves."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    forced = _forced_answer(issuer.token_endpoint_mode, form)
    if forced is not None:
        return forced
    cid, secret, used_basic, used_both = client_credentials(
        request.headers.get("authorization"), form
    )
    if used_both:
        return _oauth_error(400, "invalid_request",
                            "Use only one client authentication method.")
    if not (
        cid is not None and secret is not None
        and hmac.compare_digest(cid.encode(), issuer.client_id.encode())
        and hmac.compare_digest(secret.encode(), issuer.client_secret.encode())
    ):
        return _oauth_error(401, "invalid_client", "Client authentication failed.",
                            **(_BASIC_CHALLENGE if used_basic or cid is None else {}))
    grant = form.get("grant_type")
    if not grant:
        return _oauth_error(400, "invalid_request", "Missing grant_type.")
    if grant != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type",
                            f"Only client_credentials is supported, not {grant!r}.")
    scope = form.get("scope") or None
    lifetime = issuer.token_lifetime
    token = issuer.issue(lifetime, scope=scope)
    payload: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
    }
    if scope:
        payload["scope"] = scope
    return JSONResponse(payload, headers=_NO_STORE)
