"""The harness for people signing in: oidc-provider's device grant, its sign-in page, and the SSO gateway.

What a product test relies on, checked on the parts themselves: a device sign-in that
Chromium approves on the provider's real sign-in page (user name + password, consent);
refresh tokens that rotate, a replay or a revocation ending the sign-in; an
administrator's "sign alice out"; the confidential authorization-code client JupyterHub
uses; and the nginx SSO gateway refusing requests without a valid token, adding
Prefect's auth string upstream (REST as Basic, websockets in their first message) and
naming the person in its log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from constants import AUTH_STRING
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from prefect_nbauth.testing.canaries import make_canary
from prefect_nbauth.testing.idp import (
    NginxGateway,
    OidcProvider,
    SignInRefused,
    WebClient,
    approve_device,
    chromium,
    sign_in,
)

pytestmark = [pytest.mark.idp, pytest.mark.browser]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "openid profile email offline_access"
HUB_CALLBACK = "http://127.0.0.1:{port}/hub/oauth_callback"


class _Catcher(BaseHTTPRequestHandler):
    """Records what reaches it: the web client's redirect, or what a gateway sends upstream."""

    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def catcher() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Catcher", (_Catcher,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {name: make_canary(None) for name in ("alice", "bob")}


@pytest.fixture(scope="module")
def idp(passwords: dict[str, str], catcher: tuple[str, Any]) -> Iterator[OidcProvider]:
    hub = WebClient("jupyterhub", [f"{catcher[0]}/hub/oauth_callback"])
    with OidcProvider(ttl=5, users=passwords, web_clients=[hub]) as provider:
        yield provider


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def gateway(idp: OidcProvider, auth_server: Any) -> Iterator[NginxGateway]:
    with NginxGateway.sso(auth_server.api_url, idp, auth_string=AUTH_STRING) as gw:
        yield gw


def device_authorization(idp: OidcProvider) -> dict[str, Any]:
    reply = httpx.post(idp.device_authorization_url, data={"client_id": idp.device_client_id, "scope": SCOPE})
    reply.raise_for_status()
    return reply.json()


def poll(idp: OidcProvider, flow: dict[str, Any]) -> httpx.Response:
    return httpx.post(idp.token_url, data={"client_id": idp.device_client_id, "grant_type": DEVICE_GRANT,
                                           "device_code": flow["device_code"]})


def refresh(idp: OidcProvider, refresh_token: str) -> httpx.Response:
    return httpx.post(idp.token_url, data={"client_id": idp.device_client_id, "grant_type": "refresh_token",
                                           "refresh_token": refresh_token})


def signed_in(idp: OidcProvider, browser: Any, user: str, passwords: dict[str, str]) -> dict[str, Any]:
    """A whole device sign-in in a fresh browser context: the token response."""
    flow = device_authorization(idp)
    context = browser.new_context()
    try:
        approve_device(context.new_page(), flow["verification_uri_complete"], user, passwords[user])
    finally:
        context.close()
    reply = poll(idp, flow)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_discovery_offers_the_device_grant_and_the_pages_load_nothing_from_outside(idp: OidcProvider) -> None:
    meta = httpx.get(idp.discovery_url).json()
    assert meta["device_authorization_endpoint"] == idp.device_authorization_url
    assert DEVICE_GRANT in meta["grant_types_supported"] and "refresh_token" in meta["grant_types_supported"]
    assert meta["revocation_endpoint"] == idp.revocation_url
    assert meta["jwks_uri"] == idp.jwks_url and "S256" in meta["code_challenge_methods_supported"]
    assert "offline_access" in meta["scopes_supported"]
    page = httpx.get(f"{idp.issuer}/device").text
    assert "op.deviceInputForm" in page and "http" not in page.replace(idp.issuer, "")  # no CDN fonts


def test_a_device_sign_in_completes_when_a_person_approves_in_chromium(
        idp: OidcProvider, browser: Any, passwords: dict[str, str]) -> None:
    flow = device_authorization(idp)
    assert flow["interval"] == 1  # added by the harness: oidc-provider sends none
    assert flow["verification_uri_complete"].endswith(f"?user_code={flow['user_code']}")
    assert poll(idp, flow).json()["error"] == "authorization_pending"
    context = browser.new_context()
    approve_device(context.new_page(), flow["verification_uri_complete"], "alice", passwords["alice"])
    context.close()
    tokens = poll(idp, flow).json()
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens) and tokens["expires_in"] == 5

    keys = jwt.PyJWKClient(idp.jwks_url)
    claims = jwt.decode(tokens["id_token"], keys.get_signing_key_from_jwt(tokens["id_token"]).key,
                        algorithms=["RS256"], audience=idp.device_client_id, issuer=idp.issuer)
    assert claims["preferred_username"] == "alice" and claims["email"] == "alice@example.test"
    assert idp.introspect(tokens["access_token"])["sub"] == "alice"
    assert poll(idp, flow).status_code == 400  # a device code gives its tokens once


def test_a_wrong_password_is_refused_and_cancel_or_deny_give_access_denied(
        idp: OidcProvider, browser: Any, passwords: dict[str, str]) -> None:
    before = idp.stats()
    context = browser.new_context()
    page = context.new_page()
    flow = device_authorization(idp)
    with pytest.raises(SignInRefused, match="Wrong user name or password"):
        approve_device(page, flow["verification_uri_complete"], "alice", passwords["bob"])
    assert poll(idp, flow).json()["error"] == "authorization_pending"
    with pytest.raises(SignInRefused, match="Wrong user name or password"):
        sign_in(page, "mallory", passwords["alice"])  # the sign-in page stays open for another try

    page.click("#cancel")  # on the sign-in page
    page.wait_for_selector("#error")
    assert poll(idp, flow).json()["error"] == "access_denied"

    flow = device_authorization(idp)
    approve_device(page, flow["verification_uri_complete"], "bob", passwords["bob"], allow=False)
    assert poll(idp, flow).json()["error"] == "access_denied"

    flow = device_authorization(idp)
    approve_device(page, flow["verification_uri_complete"], "bob", passwords["bob"], confirm=False)
    assert poll(idp, flow).json()["error"] == "access_denied"
    context.close()
    after = idp.stats()
    assert after["failed_sign_ins"] - before["failed_sign_ins"] == 2
    assert after["sign_ins"] - before["sign_ins"] == 1  # bob, once: the session cookie does the rest


def test_refresh_tokens_rotate_and_a_replayed_one_ends_the_sign_in(
        idp: OidcProvider, browser: Any, passwords: dict[str, str]) -> None:
    first = signed_in(idp, browser, "alice", passwords)
    before = idp.stats()
    second = refresh(idp, first["refresh_token"]).json()
    third = refresh(idp, second["refresh_token"]).json()
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert idp.introspect(third["access_token"])["active"]

    replay = refresh(idp, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(idp, third["refresh_token"]).json()["error"] == "invalid_grant"
    assert idp.introspect(third["access_token"]) == {"active": False}
    after = idp.stats()
    assert after["refresh_token_rotations"] - before["refresh_token_rotations"] == 2
    assert after["replays"] - before["replays"] == 1


def test_revocation_by_the_client_or_by_an_administrator_ends_the_sign_in(
        idp: OidcProvider, browser: Any, passwords: dict[str, str]) -> None:
    tokens = signed_in(idp, browser, "alice", passwords)
    reply = httpx.post(idp.revocation_url, data={"client_id": idp.device_client_id, "token": tokens["refresh_token"],
                                                 "token_type_hint": "refresh_token"})
    assert reply.status_code == 200 and reply.content == b""
    assert refresh(idp, tokens["refresh_token"]).json()["error"] == "invalid_grant"

    tokens = signed_in(idp, browser, "alice", passwords)
    bobs = signed_in(idp, browser, "bob", passwords)
    assert idp.revoke_user("alice") >= 1
    assert refresh(idp, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert idp.introspect(tokens["access_token"]) == {"active": False}
    assert refresh(idp, bobs["refresh_token"]).status_code == 200  # only alice was signed out


def test_the_web_client_gets_a_refresh_token_through_the_authorization_code_flow(
        idp: OidcProvider, browser: Any, passwords: dict[str, str], catcher: tuple[str, Any]) -> None:
    """What JupyterHub's GenericOAuthenticator does: client_secret_post, PKCE S256, prompt=consent."""
    [hub] = idp.web_clients
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(12)
    query = {"client_id": hub.client_id, "response_type": "code", "redirect_uri": hub.redirect_uris[0],
             "scope": SCOPE, "prompt": "consent", "state": state, "code_challenge": challenge,
             "code_challenge_method": "S256"}
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{idp.issuer}/auth?{urlencode(query)}")
    sign_in(page, "bob", passwords["bob"])
    page.wait_for_url(f"{hub.redirect_uris[0]}**")
    context.close()
    params = parse_qs(urlsplit(page.url).query)
    assert params["state"] == [state]
    reply = httpx.post(idp.token_url, data={
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": hub.redirect_uris[0],
        "code_verifier": verifier, "client_id": hub.client_id, "client_secret": hub.client_secret})
    assert reply.status_code == 200, reply.text
    tokens = reply.json()
    assert "refresh_token" in tokens and idp.introspect(tokens["access_token"])["sub"] == "bob"
    userinfo = httpx.get(f"{idp.issuer}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert userinfo["preferred_username"] == "bob"
    rotated = httpx.post(idp.token_url, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                              "client_id": hub.client_id, "client_secret": hub.client_secret}).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]


def test_the_sso_gateway_refuses_requests_without_a_valid_personal_token(
        idp: OidcProvider, gateway: NginxGateway, browser: Any, passwords: dict[str, str]) -> None:
    tokens = signed_in(idp, browser, "alice", passwords)
    url = f"{gateway.api_url}/flows/filter"
    basic = "Basic " + base64.b64encode(AUTH_STRING.encode()).decode()
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": basic}).status_code == 401  # Prefect's own: not here
    assert httpx.post(url, json={}, headers={"Authorization": f"Bearer {tokens['id_token']}"}).status_code == 401
    ok = httpx.post(url, json={}, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert ok.status_code == 200 and isinstance(ok.json(), list)  # Prefect accepted the gateway's Basic
    assert httpx.get(f"{gateway.api_url}/health").json() is True  # as Prefect answers it, without a token
    assert httpx.get(f"{gateway.api_url}/version").status_code == 401

    idp.revoke_user("alice")
    assert httpx.post(url, json={}, headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    users = [(r.status, r.user) for r in gateway.access_log() if r.path == "/api/flows/filter"]
    assert (200, "alice") in users and all(user is None for status, user in users if status == 401)


def _socket(url: str, headers: dict[str, str], token: Any = None) -> str:
    with connect(url, subprotocols=["prefect"], additional_headers=headers, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        try:
            return str(ws.recv(timeout=30))
        except Exception as exc:  # noqa: BLE001 - the close code says what Prefect did
            return f"closed {getattr(getattr(exc, 'rcvd', None), 'code', exc)}"


def test_the_sso_gateway_authenticates_prefects_websockets_for_the_person(
        idp: OidcProvider, gateway: NginxGateway, browser: Any, passwords: dict[str, str]) -> None:
    tokens = signed_in(idp, browser, "bob", passwords)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    events_out = gateway.api_url.replace("http://", "ws://") + "/events/out"
    assert _socket(events_out, bearer) == '{"type":"auth_success"}'
    assert _socket(events_out, bearer, token="x" * 300) == '{"type":"auth_success"}'  # replaced, whatever it was
    with pytest.raises(InvalidStatus) as refused:
        _socket(events_out, {})
    assert refused.value.response.status_code == 401
    # The HTTP half alone (no stream server putting the auth string in the first
    # message): Prefect itself closes the socket. This is why the stream half exists.
    http_half = f"ws://127.0.0.1:{gateway._http_port}/api/events/out"
    assert _socket(http_half, bearer) == "closed 1008"
    assert [r.user for r in gateway.access_log() if r.path == "/api/events/out" and r.status == 101][-3:] == ["bob"] * 3


def test_prefect_gets_the_gateways_credential_and_the_persons_name_never_the_token(
        idp: OidcProvider, browser: Any, passwords: dict[str, str], catcher: tuple[str, list[dict[str, Any]]]) -> None:
    upstream, seen = catcher
    tokens = signed_in(idp, browser, "alice", passwords)
    with NginxGateway.sso(f"{upstream}/api", idp, auth_string=AUTH_STRING) as gw:
        reply = httpx.get(f"{gw.api_url}/flows", headers={"Authorization": f"Bearer {tokens['access_token']}",
                                                         "X-Forwarded-User": "root"})
        assert reply.status_code == 200
        health = httpx.get(f"{gw.api_url}/health", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert health.status_code == 200
    flows = next(r["headers"] for r in seen if r["path"] == "/api/flows")
    assert flows["authorization"] == "Basic " + base64.b64encode(AUTH_STRING.encode()).decode()
    assert flows["x-forwarded-user"] == "alice"  # the person's own header was replaced
    checked = next(r["headers"] for r in seen if r["path"] == "/api/health")
    assert "authorization" not in checked
    assert not any(tokens["access_token"] in json.dumps(r) for r in seen)


def test_slow_down_when_polling_faster_than_the_interval() -> None:
    with OidcProvider(slow_down=True, interval=2, users={"alice": make_canary(None)}) as idp:
        flow = device_authorization(idp)
        assert poll(idp, flow).json()["error"] == "authorization_pending"
        assert poll(idp, flow).json()["error"] == "slow_down"  # at once: too soon
        assert poll(idp, flow).json()["error"] == "slow_down"  # 5 s more each time: now 12 s
        assert idp.stats()["slow_downs"] == 2
