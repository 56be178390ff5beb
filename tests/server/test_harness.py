"""Self-tests of the test harness: real servers, the Cloud gateway, run_scenario."""

from __future__ import annotations

import uuid

import httpx
import pytest
from constants import AUTH_STRING

from prefect_nbauth.testing._cloud import (
    CloudGateway,
    CloudKey,
    CloudWorkspace,
    fingerprint,
)
from prefect_nbauth.testing._server import basic_auth_header

pytestmark = pytest.mark.server

USER_KEY = "pnu_" + "u" * 36
BOT_KEY = "pnb_" + "b" * 36
OTHER_KEY = "pnu_" + "o" * 36
EXPIRED_KEY = "pnu_" + "e" * 36
WORKSPACE_FIELDS = {
    "account_id",
    "account_name",
    "account_handle",
    "workspace_id",
    "workspace_name",
    "workspace_description",
    "workspace_handle",
}


@pytest.fixture(scope="module")
def workspaces() -> tuple[CloudWorkspace, CloudWorkspace]:
    return CloudWorkspace.new("acme", "data-team"), CloudWorkspace.new("other-co", "prod")


@pytest.fixture(scope="module")
def gateway(auth_server, workspaces):
    ws, other_ws = workspaces
    keys = [
        CloudKey(USER_KEY, "user", "ada", [ws]),
        CloudKey(BOT_KEY, "service_account", "etl-bot", [ws]),
        CloudKey(OTHER_KEY, "user", "mallory", [other_ws]),
        CloudKey(EXPIRED_KEY, "user", "ada", [ws], expired=True),
    ]
    with CloudGateway(
        auth_server.api_url, upstream_auth_string=AUTH_STRING, keys=keys
    ) as gw:
        yield gw


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_auth_server_enforces_basic_auth(auth_server):
    api = auth_server.api_url
    with httpx.Client(timeout=10) as c:
        assert c.get(f"{api}/health").status_code == 200
        assert c.get(f"{api}/admin/version").status_code == 401
        ok = c.get(f"{api}/admin/version", headers=basic_auth_header(AUTH_STRING))
        assert ok.status_code == 200 and ok.json().startswith("3.")
        wrong = c.get(f"{api}/admin/version", headers=basic_auth_header(AUTH_STRING + "x"))
        assert wrong.status_code == 401
        # ui-settings is served by the UI app at the ROOT (public, even with the UI
        # disabled); under /api it is just another protected path.
        assert c.get(f"{auth_server.ui_url}/ui-settings").json()["auth"] == "BASIC"
        assert c.get(f"{api}/ui-settings").status_code == 401


def test_gateway_me(gateway):
    with httpx.Client(timeout=10) as c:
        me = c.get(f"{gateway.api_url}/me/", headers=bearer(USER_KEY))
        assert me.status_code == 200
        assert me.json()["handle"] == "ada" and me.json()["email"] == "ada@example.com"
        uuid.UUID(me.json()["id"])
        bot = c.get(f"{gateway.api_url}/me/", headers=bearer(BOT_KEY)).json()
        assert bot["actor_type"] == "bot" and bot["handle"] == "etl-bot"
        for headers in (bearer("pnu_" + "x" * 36), bearer(EXPIRED_KEY), {}):
            bad = c.get(f"{gateway.api_url}/me/", headers=headers)
            assert bad.status_code == 401
            assert bad.json() == {"detail": "Invalid authentication credentials"}


def test_gateway_my_workspaces(gateway, workspaces):
    ws, _ = workspaces
    with httpx.Client(timeout=10) as c:
        listed = c.get(f"{gateway.api_url}/me/workspaces", headers=bearer(USER_KEY)).json()
        assert [set(w) for w in listed] == [WORKSPACE_FIELDS]
        assert listed[0]["workspace_id"] == str(ws.workspace_id)
        assert c.get(f"{gateway.api_url}/me/workspaces", headers=bearer("nope")).status_code == 401


def test_gateway_forwards_to_real_server(gateway, workspaces):
    ws, other_ws = workspaces
    url = gateway.workspace_api_url(ws)
    with httpx.Client(timeout=10) as c:
        ok = c.get(f"{url}/admin/version", headers=bearer(USER_KEY))
        assert ok.status_code == 200 and ok.json().startswith("3.")
        assert c.get(f"{url}/admin/version", headers=bearer(BOT_KEY)).status_code == 200
        assert c.get(f"{url}/admin/version").status_code == 401
        assert c.get(f"{url}/admin/version", headers=bearer(EXPIRED_KEY)).status_code == 401
        # A workspace of another key -> 403; a workspace nobody has -> 404.
        other = gateway.workspace_api_url(other_ws)
        assert c.get(f"{other}/admin/version", headers=bearer(USER_KEY)).status_code == 403
        unknown = f"{gateway.api_url}/accounts/{uuid.uuid4()}/workspaces/{uuid.uuid4()}"
        assert c.get(f"{unknown}/admin/version", headers=bearer(USER_KEY)).status_code == 404
        # POST with a body, query strings and upstream status codes are relayed.
        name = f"harness-var-{uuid.uuid4().hex[:8]}"
        created = c.post(f"{url}/variables/", json={"name": name, "value": {"a": 1}},
                         headers=bearer(USER_KEY))
        assert created.status_code == 201, created.text
        read = c.get(f"{url}/variables/name/{name}", headers=bearer(BOT_KEY))
        assert read.json()["value"] == {"a": 1}
        assert c.get(f"{url}/variables/name/missing-{name}", headers=bearer(USER_KEY)).status_code == 404
    # The request log masks keys.
    log = repr(gateway.requests)
    for key in (USER_KEY, BOT_KEY, OTHER_KEY, EXPIRED_KEY):
        assert key not in log
    assert f"Bearer pnu_***#{fingerprint(USER_KEY)}" in log


SCENARIO = r'''
import asyncio, json, os, uuid
from prefect.client.cloud import get_cloud_client
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.clients import (
    PrefectCloudEventSubscriber, PrefectCloudEventsClient, get_events_client,
    get_events_subscriber,
)
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.events.worker import EventsWorker

name = f"nbauth.harness.{uuid.uuid4().hex}"
result = {}

async def main():
    async with get_cloud_client() as cloud:
        result["workspaces"] = [w.handle for w in await cloud.read_workspaces()]
        result["me"] = await cloud.get("/me/")
    result["events_client"] = type(get_events_client()).__name__
    flt = EventFilter(event=EventNameFilter(name=[name]))
    async with get_events_subscriber(filter=flt) as sub:
        result["subscriber"] = type(sub).__name__
        ev = emit_event(name, resource={"prefect.resource.id": f"nbauth.{name}"},
                        payload={"n": 1})
        result["emitted_id"] = str(ev.id)
        await asyncio.to_thread(EventsWorker.drain_all, timeout=30)
        got = await asyncio.wait_for(sub.__anext__(), 60)
        result["streamed_id"] = str(got.id)
    # Read it back from the server's database through REST.
    async with get_client() as client:
        for _ in range(120):
            r = await client._client.post(
                "/events/filter", json={"filter": flt.model_dump(mode="json"), "limit": 10})
            events = r.json()["events"]
            if events:
                break
            await asyncio.sleep(0.25)
        result["persisted_ids"] = [e["id"] for e in events]
    # A bad key is refused on both sockets.
    bad = "pnu_" + "z" * 36
    try:
        async with PrefectCloudEventSubscriber(api_key=bad, reconnection_attempts=0):
            result["bad_subscriber"] = "accepted"
    except Exception as exc:
        result["bad_subscriber"] = str(exc)
    try:
        async with PrefectCloudEventsClient(api_key=bad, reconnection_attempts=0):
            result["bad_events_client"] = "accepted"
    except Exception as exc:
        result["bad_events_client"] = type(exc).__name__ + ": " + str(exc)

asyncio.run(main())
print(json.dumps(result))
'''


def test_gateway_websockets_events_reach_real_server(gateway, workspaces, run_scenario):
    ws, _ = workspaces
    before = len(gateway.requests)
    res = run_scenario(
        SCENARIO,
        env={
            "PREFECT_API_URL": gateway.workspace_api_url(ws),
            "PREFECT_API_KEY": USER_KEY,
            "PREFECT_CLOUD_API_URL": gateway.api_url,
        },
    )
    assert res["workspaces"] == ["acme/data-team"]
    assert res["me"]["handle"] == "ada"
    assert res["events_client"] == "PrefectCloudEventsClient"
    assert res["subscriber"] == "PrefectCloudEventSubscriber"
    assert res["streamed_id"] == res["emitted_id"]
    assert res["persisted_ids"] == [res["emitted_id"]]
    assert "Invalid authentication credentials" in res["bad_subscriber"]
    assert res["bad_events_client"].startswith("InvalidStatus") and "403" in res["bad_events_client"]
    new = gateway.requests[before:]
    fp = fingerprint(USER_KEY)
    assert ("WEBSOCKET", f"/api/accounts/{ws.account_id}/workspaces/{ws.workspace_id}/events/in",
            f"bearer pnu_***#{fp}") in new
    assert ("WEBSOCKET-AUTH", f"/api/accounts/{ws.account_id}/workspaces/{ws.workspace_id}/events/out",
            f"pnu_***#{fp}") in new


def test_kill_and_restart_keep_port_and_database(open_server):
    server = open_server
    port, api = server.port, server.api_url
    name = f"harness-{uuid.uuid4().hex[:8]}"
    with httpx.Client(timeout=10) as c:
        flow = c.post(f"{api}/flows/", json={"name": name})
        assert flow.status_code in (200, 201), flow.text
        assert c.post(f"{api}/variables/", json={"name": name, "value": 42}).status_code == 201
    try:
        server.kill()
        assert not server.running
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{api}/health", timeout=2)
        server.restart()
        assert (server.port, server.api_url) == (port, api)
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{api}/flows/name/{name}").json()["id"] == flow.json()["id"]
            assert c.get(f"{api}/variables/name/{name}").json()["value"] == 42
        # Restart with a new auth string: same database, now behind Basic auth.
        server.restart(auth_string=AUTH_STRING)
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{api}/variables/name/{name}").status_code == 401
            got = c.get(f"{api}/variables/name/{name}", headers=basic_auth_header(AUTH_STRING))
            assert got.json()["value"] == 42
    finally:
        server.restart(auth_string=None)  # leave the session fixture as it was
    assert httpx.get(f"{api}/variables/name/{name}", timeout=10).json()["value"] == 42


def test_run_scenario_is_isolated(run_scenario, tmp_path):
    res = run_scenario(
        """
        import json, os
        import prefect.settings as s
        print("noise")
        print(json.dumps({
            "home": str(s.PREFECT_HOME.value()),
            "api_url": s.PREFECT_API_URL.value(),
            "ephemeral": s.PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value(),
            "prefect_env": sorted(k for k in os.environ if k.startswith("PREFECT_")),
        }))
        """
    )
    assert res["home"].startswith(str(tmp_path))
    assert res["api_url"] is None and res["ephemeral"] is False
    assert res["prefect_env"] == ["PREFECT_HOME", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"]
    with pytest.raises(AssertionError, match="exited with 3"):
        run_scenario("import sys; print('x'); sys.exit(3)")
