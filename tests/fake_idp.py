"""An identity provider played by httpx.MockTransport, for DeviceSignIn and the login form's SSO choice.

The real one (oidc-provider with Chromium approving) is ``prefect_nbauth.testing.idp``; this one
gives on demand the answers a real one rarely does (slow_down, expired_token, a refused refresh).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from prefect_nbauth.testing.canaries import make_canary

__all__ = ["CLIENT", "GRANT", "ISSUER", "FakeIdP"]

ISSUER = "https://login.example.test"
CLIENT = "prefect-notebook"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class FakeIdP:
    """The endpoints a device sign-in uses, answering what the test sets."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        self.discovery: dict[str, Any] = {
            "issuer": ISSUER, "token_endpoint": f"{ISSUER}/token",
            "device_authorization_endpoint": f"{ISSUER}/device/auth", "jwks_uri": f"{ISSUER}/jwks",
            "revocation_endpoint": f"{ISSUER}/token/revocation",
            "grant_types_supported": [GRANT, "refresh_token"]}
        self.device_answer: dict[str, Any] = {
            "device_code": "DEVICE-" + make_canary(None), "user_code": "ABCD-EFGH",
            "verification_uri": f"{ISSUER}/device",
            "verification_uri_complete": f"{ISSUER}/device?user_code=ABCD-EFGH", "expires_in": 600, "interval": 0.01}
        self.polls: list[dict[str, Any]] = []  # answers to device polls, in order (then approve)
        self.refresh_answers: list[tuple[int, dict[str, Any]]] = []
        self.issued = 0
        self.valid_refresh: set[str] = set()
        self.refresh_delay = 0.0

    def id_token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 3600,
                "preferred_username": "alice", "email": "alice@example.test", **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "k1"})

    def tokens(self) -> dict[str, Any]:
        self.issued += 1
        refresh = f"RT{self.issued}-" + make_canary(None)
        self.valid_refresh.add(refresh)
        return {"access_token": f"AT{self.issued}-{make_canary(None)}", "token_type": "Bearer",
                "expires_in": 300, "refresh_token": refresh, "id_token": self.id_token()}

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode()) if request.content else {}
        path = request.url.path
        with self.lock:
            self.requests.append((path, form))
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/jwks":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return httpx.Response(200, json={"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
        if path == "/device/auth":
            return httpx.Response(200, json=self.device_answer)
        if path == "/token/revocation":
            self.valid_refresh.discard(form["token"][0])
            return httpx.Response(200)
        if path == "/token" and form["grant_type"] == [GRANT]:
            with self.lock:
                answer = self.polls.pop(0) if self.polls else None
            if answer is not None:
                return httpx.Response(400, json=answer)
            return httpx.Response(200, json=self.tokens())
        if path == "/token" and form["grant_type"] == ["refresh_token"]:
            time.sleep(self.refresh_delay)
            with self.lock:
                if self.refresh_answers:
                    status, body = self.refresh_answers.pop(0)
                    return httpx.Response(status, json=body)
                token = form["refresh_token"][0]
                if token not in self.valid_refresh:
                    return httpx.Response(400, json={"error": "invalid_grant", "error_description": "grant request is invalid"})
                self.valid_refresh.discard(token)  # rotation: the old one is spent
                return httpx.Response(200, json=self.tokens())
        return httpx.Response(404, json={"error": "not_found"})
