"""Token rotation end to end: real Prefect server, a gateway issuing 2-second JWTs.

``prefect_nbauth.testing.RotatingGateway`` stands for an OAuth2 proxy in front of Prefect: it
issues short-lived JWTs from a client-credentials endpoint and checks them on
every request. Each scenario runs in its own interpreter with the gateway in it
(so the test can revoke tokens and read the gateway's counters).
"""

from __future__ import annotations

import pytest
from constants import AUTH_STRING

pytestmark = pytest.mark.server

PRELUDE = """
import asyncio, threading, time
import prefect_nbauth as nb
from prefect import flow, get_client, task
from prefect_nbauth.testing._gateway import RotatingGateway
from prefect_nbauth.testing.probes import emit, read_flows_sync

gateway = RotatingGateway({upstream!r}, upstream_auth_string={auth!r}, token_lifetime={lifetime})
gateway.start()
provider = nb.OAuth2ClientCredentials(gateway.token_url, gateway.client_id, gateway.client_secret)
nb.login(gateway.api_url, headers={{"Authorization": provider}})

from prefect_nbauth.testing import wait_until as wait_for
"""


def prelude(auth_server, lifetime: float = 2.0) -> str:
    return PRELUDE.format(upstream=auth_server.api_url, auth=AUTH_STRING, lifetime=lifetime)


def test_a_flow_started_before_a_rotation_finishes_after_it(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server) + """
from prefect_nbauth.testing.probes import flow_across_rotations

state = flow_across_rotations(gateway, 3)
emit({"state": state.type.value, "calls": state.result() if state.is_completed() else None,
      "gateway": gateway.counters(), "status": nb.status(check_server=False).to_dict()})
""")
    assert result["state"] == "COMPLETED", result
    assert result["calls"] >= 3
    assert result["gateway"]["issued"] >= 4
    status = result["status"]
    assert status["mode"] == "headers" and status["expires_at"] and not status["warnings"]


def test_an_open_client_keeps_working_across_three_rotations(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server) + """
statuses = []
with get_client(sync_client=True) as client:   # opened BEFORE the rotations
    start = gateway.issued
    while gateway.issued < start + 3:
        statuses.append(client.read_flows(limit=1) is not None)

async def async_client():
    ok = []
    async with get_client() as client:
        start = gateway.issued
        while gateway.issued < start + 3:
            ok.append((await client.read_flows(limit=1)) is not None)
    return ok

emit({"sync": statuses, "async": asyncio.run(async_client()), "gateway": gateway.counters()})
""")
    assert result["sync"] and all(result["sync"])
    assert result["async"] and all(result["async"])


def test_a_revoked_token_is_replaced_on_the_next_call(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server, lifetime=30) + """
from prefect_nbauth.session import current_login
with get_client(sync_client=True) as client:
    client.read_flows(limit=1)
    current = current_login().tokens["header Authorization"].token.value.reveal()
    gateway.revoke(current)
    before = gateway.counters()
    client.read_flows(limit=1)                     # 401 revoked -> one refresh -> retried
    after = gateway.counters()
new = current_login().tokens["header Authorization"].token.value.reveal()
emit({"before": before, "after": after, "replaced": new != current})
""")
    assert result["replaced"] is True
    assert result["after"]["rejected"]["revoked"] == result["before"]["rejected"]["revoked"] + 1
    assert result["after"]["issued"] == result["before"]["issued"] + 1


def test_concurrent_callers_trigger_one_refresh_per_expiry(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server) + """
stop = threading.Event()
failures = []
calls = [0]
lock = threading.Lock()

def thread_caller():
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            try:
                client.read_flows(limit=1)
                with lock:
                    calls[0] += 1
            except Exception as exc:
                failures.append(type(exc).__name__)

async def async_callers():
    async def one():
        async with get_client() as client:
            while not stop.is_set():
                try:
                    await client.read_flows(limit=1)
                    with lock:
                        calls[0] += 1
                except Exception as exc:
                    failures.append(type(exc).__name__)
    await asyncio.gather(*(one() for _ in range(4)))

issued_before = gateway.issued
threads = [threading.Thread(target=thread_caller) for _ in range(4)]
threads.append(threading.Thread(target=lambda: asyncio.run(async_callers())))
started = time.monotonic()
for t in threads: t.start()
wait_for(lambda: gateway.issued >= issued_before + 4)   # four expiries' worth of rotation
stop.set()
for t in threads: t.join(30)
elapsed = time.monotonic() - started
from prefect_nbauth.session import current_login
token = current_login().tokens["header Authorization"]
in_force = token.token
# Each token is used from its issue until the refresh point (expiry minus the margin).
period = (in_force.expires_at - in_force.obtained_at).total_seconds() - token.margin_for(in_force)
emit({"failures": failures, "calls": calls[0], "refreshes": gateway.issued - issued_before,
      "elapsed": elapsed, "period": period, "rejected": gateway.counters()["rejected"]})
""")
    assert result["failures"] == []
    assert result["calls"] > 20
    # One refresh per token's refresh period, not one per caller: 9 callers share each.
    assert result["period"] > 0.5, result
    expiries = result["elapsed"] / result["period"]
    assert result["refreshes"] <= expiries * 1.1 + 1, result


def test_provider_failure_keeps_the_token_and_is_reported(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server, lifetime=4) + """
from prefect_nbauth.session import current_login
token = current_login().tokens["header Authorization"]
gateway.token_endpoint_mode = "down"
failures_before = token.failures
wait_for(lambda: token.failures > failures_before)      # the proactive refresh failed
still = read_flows_sync()                                  # old token still valid
warnings = nb.status(check_server=False).warnings
gateway.token_endpoint_mode = "ok"
wait_for(lambda: token.last_error is None)                 # background retry succeeds
emit({"still": still, "warnings": warnings, "after": read_flows_sync(),
      "warnings_after": nb.status(check_server=False).warnings})
""")
    assert result["still"] == 200 and result["after"] == 200
    assert any("Refreshing the header Authorization" in w and "HTTP 503" in w for w in result["warnings"])
    assert result["warnings_after"] == []


def test_second_401_after_refresh_raises_authentication_error(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server, lifetime=30) + """
from prefect_nbauth.session import current_login
# From now on the gateway revokes every token it issues, and the current one.
issue = gateway.issue
def issue_revoked(*args, **kwargs):
    token = issue(*args, **kwargs)
    gateway.revoke(token)
    return token
gateway.issue = issue_revoked
gateway.revoke(current_login().tokens["header Authorization"].token.value.reveal())
try:
    with get_client(sync_client=True) as client:
        client.read_flows(limit=1)
    outcome = "no error"
except nb.AuthenticationError as exc:
    outcome = str(exc)
emit({"outcome": outcome, "secret": gateway.client_secret in outcome})
""")
    assert "rejected a freshly refreshed credential" in result["outcome"]
    assert result["secret"] is False


def test_events_clients_present_the_current_token_on_their_next_connect(auth_server, run_scenario):
    result = run_scenario(prelude(auth_server) + """
import uuid
from prefect.events import Event
from prefect.events.clients import PrefectEventsClient, get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

name = f"nbauth.rotation.{uuid.uuid4().hex[:8]}"
# Both created now, with the token of this moment captured inside them...
publisher = PrefectEventsClient()
subscriber = get_events_subscriber(filter=EventFilter(event=EventNameFilter(prefix=[name])),
                                   reconnection_attempts=0)
start = gateway.issued
wait_for(lambda: gateway.issued >= start + 2)   # ...which has expired by now.

async def go():
    async with subscriber as sub:
        async with publisher as pub:
            await pub.emit(Event(event=name, resource={"prefect.resource.id": "nbauth.rotation"}))
        received = await asyncio.wait_for(sub.__anext__(), 30)
        return received.event

emit({"received": asyncio.run(go()) == name, "rejected": gateway.counters()["rejected"]})
""")
    assert result["received"] is True, result
