"""A real Prefect 3.2.15 server with an auth string: the audit flags it; login still works.

The server runs from ``.old-prefect-venv/`` (built by tests/old_prefect.py, skipped with the
reason when it cannot be built). Measured on it: REST answers 401 correctly, but
``/events/out`` answers ``auth_success`` to a wrong token, ``/events/in`` takes a socket
with no subprotocol and no auth, and a crafted Host header reads GET endpoints.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from constants import AUTH_STRING
from old_prefect import OLD_PREFECT_VERSION, old_auth_server, old_prefect_python  # noqa: F401
from test_audit_real import run_audit

from prefect_nbauth.testing._server import PrefectServer, basic_auth_header
from prefect_nbauth.testing.canaries import assert_no_secret

pytestmark = pytest.mark.server


def test_the_old_server_is_flagged_while_its_rest_api_refuses_correctly(
        old_auth_server: PrefectServer, run_scenario: Any) -> None:
    result = run_audit(run_scenario,
                       setup=f"nb.login({old_auth_server.api_url!r}, auth_string={AUTH_STRING!r})")
    outcomes = result["outcomes"]
    assert result["report"]["server_version"] == OLD_PREFECT_VERSION
    # REST is right ...
    assert outcomes["rest-no-credential"] == "pass"
    assert outcomes["rest-wrong-credential"] == "pass"
    assert outcomes["your-credential"] == "pass"
    assert outcomes["public-endpoints"] == "pass"
    # ... the sockets and the health-check exemption are not.
    assert outcomes["socket-events-out-wrong-token"] == "fail"
    assert outcomes["socket-events-in-no-subprotocol"] == "fail"
    assert outcomes["socket-events-in-wrong-token"] == "fail"
    assert outcomes["health-exemption"] == "fail"
    assert outcomes["server-version"] == "fail"
    # /logs/out does not exist on 3.2: not applicable, not a pass.
    assert {outcomes[f"socket-logs-out-{p}"] for p in ("no-subprotocol", "no-auth", "wrong-token")} == {"n/a"}
    fixes = {f["fix"] for f in result["report"]["findings"] if f["outcome"] == "fail"}
    assert not any("non-ASCII" in fix for fix in fixes)
    assert all("3.6.22" in fix for fix in fixes)
    version = next(f for f in result["report"]["findings"] if f["check"] == "server-version")
    assert "#17687" in version["detail"] and "3.3.5" in version["detail"]
    assert "no answer within" not in result["text"]  # no probe timed out (the timeout adapts to the machine)
    assert_no_secret(result["text"], AUTH_STRING)


def test_what_the_audit_reports_is_real_anyone_can_post_events(old_auth_server: PrefectServer) -> None:
    """Not a quirk of the probes: an event sent with no credential at all is stored."""
    from websockets.sync.client import connect

    name = f"nbauth.audit.intruder.{uuid.uuid4().hex[:8]}"
    event = {"id": str(uuid.uuid4()), "occurred": "2026-01-01T00:00:00Z", "event": name,
             "resource": {"prefect.resource.id": "nbauth.intruder"}}
    ws_url = old_auth_server.api_url.replace("http://", "ws://") + "/events/in"
    with connect(ws_url, open_timeout=60, close_timeout=10) as ws:  # no subprotocol, no auth; generous: a busy machine
        ws.send(json.dumps(event))

    body = {"filter": {"event": {"name": [name]},
                       "occurred": {"since": "2025-12-31T00:00:00Z", "until": "2026-01-02T00:00:00Z"}},
            "limit": 10}
    with httpx.Client(timeout=60, headers=basic_auth_header(AUTH_STRING)) as client:
        found: list[Any] = []
        deadline = time.monotonic() + 15
        while not found and time.monotonic() < deadline:  # the persister flushes every 0.5 s
            response = client.post(f"{old_auth_server.api_url}/events/filter", json=body)
            response.raise_for_status()
            found = response.json()["events"]
            if not found:
                time.sleep(0.2)
    assert [e["event"] for e in found] == [name]


def test_a_crafted_host_header_reads_a_protected_endpoint_without_credentials(
        old_auth_server: PrefectServer) -> None:
    with httpx.Client(timeout=60) as client:
        plain = client.get(f"{old_auth_server.api_url}/admin/version")
        crafted = client.get(f"{old_auth_server.api_url}/admin/version",
                             headers={"Host": f"127.0.0.1:{old_auth_server.port}/health?"})
    assert plain.status_code == 401
    assert crafted.status_code == 200 and crafted.json() == OLD_PREFECT_VERSION


def test_login_and_prefect_work_against_the_old_server(old_auth_server: PrefectServer,
                                                       run_scenario: Any) -> None:
    """Our 3.9 client logs in to the 3.2.15 server; Prefect's REST and flows follow.

    Prefect 3.9's own event emitter cannot publish there: it opens /events/in with the auth
    message that 3.2 does not know, the server parses that message as an Event, fails, drops
    the socket, and logs the validation error with the auth message in it (the tail of the
    raw auth string lands in the SERVER's log). Pinned here so that a change shows up.
    """
    result = run_scenario(
        f"""
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import *
        r = {{"before": read_flows_sync()}}
        r["login"] = nb.login({old_auth_server.api_url!r}, auth_string={AUTH_STRING!r}).to_dict()
        r["status"] = nb.status().to_dict()
        r["after"] = [read_flows_sync(), read_flows_async(), run_flow()]
        r["events"] = events_roundtrip(10)
        r["logout"] = nb.logout().to_dict()
        r["again"] = read_flows_sync()
        emit(r)
        """,
        env={"PREFECT_API_URL": old_auth_server.api_url},
    )
    print(json.dumps({k: result[k] for k in ("before", "after", "events", "again")}))
    assert result["before"] == 401
    assert result["login"]["mode"] == "basic"
    assert result["login"]["identity"] == "admin@corp"
    assert result["status"]["server_version"] == OLD_PREFECT_VERSION
    assert result["status"]["server_auth"] == "BASIC"
    # The one warning is the version pairing: this 3.9 client's emitter and a server
    # before 3.6.14 lose events (see below), and status() says which side to upgrade.
    warnings = result["status"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("Events are lost: the server runs Prefect "), warnings
    assert OLD_PREFECT_VERSION in warnings[0]
    assert result["after"] == [200, 200, 200]
    assert result["again"] == 401
    # Prefect's own events do not make it (see the docstring).
    assert result["events"] != "received"
    log = old_auth_server.log_tail(1_000_000)
    assert "stream_events_in" in log and "'type': 'auth'" in log
    assert AUTH_STRING[-8:] in log  # the server logged the end of the raw auth string
