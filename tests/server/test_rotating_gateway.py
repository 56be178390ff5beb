"""Self-tests of prefect_nbauth.testing.RotatingGateway against a REAL Prefect server (auth string on)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import jwt
import pytest
import websockets
from constants import AUTH_STRING
from websockets.asyncio.client import connect as ws_connect

from prefect_nbauth.testing._gateway import REJECTION_REASONS, RotatingGateway
from prefect_nbauth.testing._server import basic_auth_header

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def gateway(auth_server):
    with RotatingGateway(auth_server.api_url, upstream_auth_string=AUTH_STRING) as gw:
        yield gw


@pytest.fixture(scope="module")
def upstream_version(auth_server) -> str:
    r = httpx.get(f"{auth_server.api_url}/admin/version", headers=basic_auth_header(AUTH_STRING))
    assert r.status_code == 200
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fetch_token(gw: RotatingGateway, **kwargs) -> httpx.Response:
    kwargs.setdefault("data", {"grant_type": "client_credentials"})
    if "auth" not in kwargs and "client_id" not in kwargs["data"]:
        kwargs["auth"] = (gw.client_id, gw.client_secret)
    return httpx.post(gw.token_url, **kwargs)


def wait_until_expired(gw: RotatingGateway, token: str, timeout: float = 30) -> None:
    """Block until the wall clock is past the token's exp (a condition, not a fixed sleep)."""
    exp = gw.claims(token)["exp"]
    assert exp - time.time() < timeout
    while (remaining := exp - time.time()) >= 0:
        time.sleep(remaining + 0.001)


def assert_rejected(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["reason"] == reason
    assert response.json()["error"] == "invalid_token"
    www = response.headers["www-authenticate"]
    assert www.startswith("Bearer ") and 'error="invalid_token"' in www


# -- token endpoint ---------------------------------------------------------


def test_token_endpoint_issues_jwt_that_passes(gateway, upstream_version):
    before = gateway.counters()
    r = fetch_token(gateway)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 2 and isinstance(body["expires_in"], int)
    claims = gateway.claims(body["access_token"])
    assert claims["sub"] == gateway.client_id
    assert isinstance(claims["exp"], float)
    assert claims["exp"] - claims["iat"] == pytest.approx(2.0)
    assert len(claims["jti"]) == 32

    v = httpx.get(f"{gateway.api_url}/admin/version", headers=bearer(body["access_token"]))
    assert v.status_code == 200, v.text
    assert v.json() == upstream_version
    after = gateway.counters()
    assert after["issued"] == before["issued"] + 1
    assert after["accepted"] == before["accepted"] + 1
    assert after["token_requests"] == before["token_requests"] + 1


def test_token_endpoint_client_auth_variants(gateway):
    # Form fields instead of Basic; scope is echoed back.
    r = httpx.post(gateway.token_url, data={
        "grant_type": "client_credentials", "client_id": gateway.client_id,
        "client_secret": gateway.client_secret, "scope": "prefect:api"})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "prefect:api"
    assert gateway.claims(r.json()["access_token"])["scope"] == "prefect:api"
    # Both methods at once.
    r = fetch_token(gateway, auth=(gateway.client_id, gateway.client_secret), data={
        "grant_type": "client_credentials", "client_id": gateway.client_id,
        "client_secret": gateway.client_secret})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # Wrong secret, unknown client, no client auth at all.
    for auth in [(gateway.client_id, "wrong"), ("someone-else", gateway.client_secret)]:
        r = fetch_token(gateway, auth=auth)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic ")
    r = httpx.post(gateway.token_url, data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # Grant type.
    r = fetch_token(gateway, data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = fetch_token(gateway, data={})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert httpx.get(gateway.token_url).status_code == 405


def test_token_endpoint_modes(gateway):
    try:
        gateway.token_endpoint_mode = "down"
        assert fetch_token(gateway).status_code == 503
        gateway.token_endpoint_mode = "400"
        r = fetch_token(gateway)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = fetch_token(gateway, data={"grant_type": "client_credentials", "scope": "x"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
        gateway.token_endpoint_mode = "401"
        r = fetch_token(gateway)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    finally:
        gateway.token_endpoint_mode = "ok"
    assert fetch_token(gateway).status_code == 200


def test_oauthlib_provider_of_the_package_gets_a_token(gateway):
    """The package's own client-credentials provider speaks this endpoint's dialect."""
    from prefect_nbauth import OAuth2ClientCredentials

    token = OAuth2ClientCredentials(
        gateway.token_url, gateway.client_id, gateway.client_secret).obtain()
    assert gateway._verify(token.value.reveal()) is None
    assert token.expires_at is not None
    assert abs(token.expires_at.timestamp() - (time.time() + 2)) < 1.5


# -- the token check ----------------------------------------------------------


def test_expired_token_is_rejected(gateway):
    token = gateway.issue(lifetime=0.5)
    claims = gateway.claims(token)
    assert claims["exp"] - claims["iat"] == pytest.approx(0.5)
    assert gateway._verify(token) is None
    wait_until_expired(gateway, token)
    before = gateway.rejected["expired"]
    r = httpx.get(f"{gateway.api_url}/admin/version", headers=bearer(token))
    assert_rejected(r, "expired")
    assert 'error_description="expired"' in r.headers["www-authenticate"]
    assert gateway.rejected["expired"] == before + 1
    t, path, reason = gateway.rejected_log[-1]
    assert (path, reason) == ("/api/admin/version", "expired") and abs(t - time.time()) < 30
    assert token not in repr(gateway.rejected_log)


def test_exp_is_enforced_at_float_precision_without_leeway(gateway):
    # Choose a moment where int(exp) <= now < exp: PyJWT's own (integer) check would
    # already call the token expired, the gateway must not.
    while (time.time() % 1) >= 0.5:
        time.sleep(1.001 - time.time() % 1)
    token = gateway.issue(lifetime=0.45)
    exp = gateway.claims(token)["exp"]
    assert int(exp) <= time.time() < exp
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, gateway.signing_key, algorithms=["HS256"])
    assert gateway._verify(token) is None
    wait_until_expired(gateway, token)
    assert gateway._verify(token) == "expired"  # right after exp: no leeway


def test_revoked_token_is_rejected(gateway):
    token, other = gateway.issue(lifetime=60), gateway.issue(lifetime=60)
    url = f"{gateway.api_url}/admin/version"
    assert httpx.get(url, headers=bearer(token)).status_code == 200
    gateway.revoke(token)
    assert_rejected(httpx.get(url, headers=bearer(token)), "revoked")
    assert httpx.get(url, headers=bearer(other)).status_code == 200
    with pytest.raises(ValueError):
        gateway.revoke("not-a-jwt")


def test_revocation_list_prunes_expired_entries(gateway):
    short = gateway.issue(lifetime=0.2)
    gateway.revoke(short)
    n = gateway.revoked_count
    wait_until_expired(gateway, short)
    gateway.revoke(gateway.issue(lifetime=60))
    assert gateway.revoked_count == n  # `short` pruned, the new one added
    assert gateway._verify(short) == "expired"


def test_bad_signature_missing_and_malformed(gateway):
    url = f"{gateway.api_url}/admin/version"
    good = gateway.issue(lifetime=60)
    claims = gateway.claims(good)
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    assert_rejected(httpx.get(url, headers=bearer(forged)), "bad signature")
    # Payload swapped under a valid signature.
    head, _, sig = good.split(".")
    payload = base64.urlsafe_b64encode(
        json.dumps({**claims, "sub": "admin"}).encode()).rstrip(b"=").decode()
    assert_rejected(httpx.get(url, headers=bearer(f"{head}.{payload}.{sig}")), "bad signature")
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert_rejected(httpx.get(url, headers=bearer(unsigned)), "bad signature")

    assert_rejected(httpx.get(url), "missing")
    assert_rejected(httpx.get(url, headers={"Authorization": "Bearer"}), "missing")
    assert_rejected(httpx.get(url, headers=basic_auth_header(AUTH_STRING)), "missing")
    assert_rejected(httpx.get(url, headers=bearer("abc.def")), "malformed")
    no_jti = jwt.encode({"sub": "x", "exp": time.time() + 60}, gateway.signing_key, "HS256")
    assert_rejected(httpx.get(url, headers=bearer(no_jti)), "malformed")
    # Also guarded: the public health endpoint and the root /ui-settings.
    assert_rejected(httpx.get(f"{gateway.api_url}/health"), "missing")
    assert_rejected(httpx.get(f"{gateway.base_url}/ui-settings"), "missing")
    assert set(gateway.rejected) == set(REJECTION_REASONS)
    assert good not in repr(gateway.rejected_log) and forged not in repr(gateway.rejected_log)


def test_forwarding_details(gateway):
    token = gateway.issue(lifetime=60)
    with httpx.Client(headers=bearer(token), timeout=30) as c:
        ui = c.get(f"{gateway.base_url}/ui-settings")
        assert ui.status_code == 200, ui.text
        assert ui.json()["auth"] == "BASIC"
        # A write + read round trip with a percent-encoded path segment.
        name = f"nbauth-gw-{uuid.uuid4().hex[:8]}"
        created = c.post(f"{gateway.api_url}/variables/", json={"name": name, "value": [1, 2]})
        assert created.status_code == 201, created.text
        read = c.get(f"{gateway.api_url}/variables/name/{name}")
        assert read.status_code == 200 and read.json()["value"] == [1, 2]
        assert c.get(f"{gateway.api_url}/variables/name/no%2Fsuch").status_code == 404


def test_counters_are_thread_safe(gateway):
    token = gateway.issue(lifetime=60)
    before = gateway.counters()
    url = f"{gateway.api_url}/health"
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(
            lambda i: httpx.get(url, headers=bearer(token) if i % 2 else {}).status_code,
            range(40)))
    assert codes.count(200) == 20 and codes.count(401) == 20
    after = gateway.counters()
    assert after["accepted"] - before["accepted"] == 20
    assert after["rejected"]["missing"] - before["rejected"]["missing"] == 20


def test_custom_header_mode_passes_client_authorization_through(auth_server):
    with RotatingGateway(auth_server.api_url, header="X-Gateway-Token",
                         token_lifetime=30) as gw:
        token = gw.issue()
        url = f"{gw.api_url}/admin/version"
        # Gateway token + the server's own Basic credential (IAP in front of an auth server).
        r = httpx.get(url, headers={"X-Gateway-Token": token, **basic_auth_header(AUTH_STRING)})
        assert r.status_code == 200, r.text
        # Gateway passes, the upstream refuses (its own 401 shape).
        r = httpx.get(url, headers={"X-Gateway-Token": token})
        assert r.status_code == 401 and "exception_message" in r.json()
        # The raw JWT only: a Bearer token in Authorization does not count.
        assert_rejected(httpx.get(url, headers=bearer(token)), "missing")
        assert_rejected(httpx.get(url, headers={"X-Gateway-Token": f"Bearer {token}"}),
                        "malformed")


# -- websockets -------------------------------------------------------------


def ws_url(gw: RotatingGateway, path: str) -> str:
    return gw.api_url.replace("http://", "ws://") + path


async def open_prefect_socket(gw, path: str, token: str | None, auth_token=None):
    ws = await ws_connect(
        ws_url(gw, path),
        subprotocols=[websockets.Subprotocol("prefect")],
        additional_headers=bearer(token) if token else {},
        open_timeout=30,
    )
    await ws.send(json.dumps({"type": "auth", "token": auth_token}))
    answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
    return ws, answer


def test_websocket_with_valid_token_gets_auth_success(gateway):
    async def go():
        ws, answer = await open_prefect_socket(gateway, "/events/out", gateway.issue(30))
        try:
            assert ws.subprotocol == "prefect"
            return answer
        finally:
            await ws.close()

    assert asyncio.run(go()) == {"type": "auth_success"}


def test_websocket_without_token_is_refused_before_the_handshake(gateway):
    async def refused(headers):
        with pytest.raises(websockets.InvalidStatus) as ei:
            await ws_connect(ws_url(gateway, "/events/out"),
                             subprotocols=[websockets.Subprotocol("prefect")],
                             additional_headers=headers, open_timeout=30)
        return ei.value.response

    async def go():
        missing = await refused({})
        expired_token = gateway.issue(lifetime=0.0)
        expired = await refused(bearer(expired_token))
        return missing, expired

    before = gateway.rejected["missing"]
    missing, expired = asyncio.run(go())
    assert missing.status_code == 401
    assert 'error="invalid_token"' in missing.headers["WWW-Authenticate"]
    assert json.loads(missing.body)["reason"] == "missing"
    assert expired.status_code == 401 and json.loads(expired.body)["reason"] == "expired"
    assert gateway.rejected["missing"] == before + 1
    assert gateway.rejected_log[-1][1:] == ("/api/events/out", "expired")


def test_websocket_upstream_refusal_is_passed_on(gateway):
    """No 'prefect' subprotocol: the auth-enforcing upstream refuses (403), so does the gateway."""
    async def go():
        with pytest.raises(websockets.InvalidStatus) as ei:
            await ws_connect(ws_url(gateway, "/events/in"),
                             additional_headers=bearer(gateway.issue(30)), open_timeout=30)
        return ei.value.response.status_code

    assert asyncio.run(go()) == 403


def test_open_websocket_survives_token_expiry(gateway):
    """Only the upgrade is checked: a subscription outlives its token, like real proxies."""
    name = f"nbauth.rotgw.{uuid.uuid4().hex[:8]}"

    async def go():
        token = gateway.issue(lifetime=1.0)
        sub, answer = await open_prefect_socket(gateway, "/events/out", token)
        assert answer["type"] == "auth_success"
        # Explicit `until`: the server's default is "now" when the filter is parsed.
        now = datetime.now(timezone.utc)
        await sub.send(json.dumps({"type": "filter", "backfill": False, "filter": {
            "event": {"prefix": [name]},
            "occurred": {"since": (now - timedelta(minutes=1)).isoformat(),
                         "until": (now + timedelta(hours=1)).isoformat()}}}))
        try:
            await asyncio.to_thread(wait_until_expired, gateway, token)
            # A new upgrade with the same token is refused...
            with pytest.raises(websockets.InvalidStatus) as ei:
                await ws_connect(ws_url(gateway, "/events/out"), additional_headers=bearer(token),
                                 subprotocols=[websockets.Subprotocol("prefect")])
            assert ei.value.response.status_code == 401
            # ...but the open subscription still streams: emit through events/in.
            pub, answer = await open_prefect_socket(gateway, "/events/in", gateway.issue(30))
            assert answer["type"] == "auth_success"
            event_id = str(uuid.uuid4())
            await pub.send(json.dumps({
                "id": event_id, "event": name,
                "occurred": datetime.now(timezone.utc).isoformat(),
                "resource": {"prefect.resource.id": "nbauth.rotating-gateway"},
            }))
            frame = json.loads(await asyncio.wait_for(sub.recv(), 30))
            await pub.close()
            return frame, event_id
        finally:
            await sub.close()

    frame, event_id = asyncio.run(go())
    assert frame["type"] == "event" and frame["event"]["id"] == event_id


# -- Prefect's own client ---------------------------------------------------

SCENARIO = r'''
import json
from prefect.settings import PREFECT_CLIENT_CUSTOM_HEADERS, temporary_settings
from prefect_nbauth.testing.probes import events_roundtrip, read_flows_async, read_flows_sync

result = {"sync": read_flows_sync(), "async": read_flows_async(), "events": events_roundtrip()}
with temporary_settings(updates={PREFECT_CLIENT_CUSTOM_HEADERS: {"Authorization": "Bearer x.y.z"}}):
    result["bad"] = read_flows_sync()
print(json.dumps(result))
'''


def test_prefect_get_client_through_gateway(gateway, run_scenario):
    token = gateway.issue(lifetime=300)
    res = run_scenario(SCENARIO, env={
        "PREFECT_API_URL": gateway.api_url,
        "PREFECT_CLIENT_CUSTOM_HEADERS": json.dumps({"Authorization": f"Bearer {token}"}),
    })
    assert res == {"sync": 200, "async": 200, "events": "received", "bad": 401}
