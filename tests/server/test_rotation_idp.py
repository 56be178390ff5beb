"""Rotation against parts nobody here wrote: oidc-provider and nginx with njs.

``prefect_nbauth.testing.idp`` starts ``oidc-provider`` (npm, pinned) issuing 5-second
client-credentials tokens and Debian's nginx whose njs module checks every
request's token at the provider's introspection endpoint (RFC 7662), in front
of the session's real Prefect server with an auth string. The load
(``prefect_nbauth.testing.idp.load``) runs in its own interpreter; mid-run the token in force
is revoked at the provider (RFC 7009) and nginx cuts every open connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from constants import AUTH_STRING

import prefect_nbauth as nb
from prefect_nbauth.session import current_login
from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.idp import NginxGateway, OidcProvider

pytestmark = pytest.mark.idp


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with OidcProvider(ttl=5) as provider:
        yield provider


@pytest.fixture(scope="module")
def gateway(idp: OidcProvider, auth_server: Any) -> Iterator[NginxGateway]:
    with NginxGateway(auth_server.api_url, idp) as gw:
        yield gw


def load_config(idp: OidcProvider, gw: NginxGateway, auth_string: str = AUTH_STRING) -> dict[str, Any]:
    return {"api_url": gw.api_url, "auth_string": auth_string, "token_url": idp.token_url,
            "revocation_url": idp.revocation_url, "client_id": idp.client_id,
            "client_secret": idp.client_secret, "nginx_pid": gw.pid}


def scenario(cfg: dict[str, Any], **kwargs: Any) -> str:
    return f"""
import logging
from prefect_nbauth.testing.idp.load import run
from prefect_nbauth.testing.probes import emit
logging.getLogger("prefect").setLevel(logging.ERROR)
emit(run({cfg!r}, **{kwargs!r}))
"""


def assert_rotation_held(result: dict[str, Any], *, rest: bool, stream: bool = True) -> None:
    assert result["failed"] == 0, result
    assert result["emitted"] > 0, result
    # Prefect logs "Service 'EventsWorker' failed to process item" for each event whose
    # upgrade was refused; with the emitter following rotation there are none.
    assert result["emit_failures"] == 0, result
    assert result["stored"] == result["emitted"], result
    if stream:
        assert result["streamed"] == result["emitted"], result
        assert result["recovered_after_revocation_s"] is not None, result
    if rest:
        assert result["calls"] > 0 and result["flow"] == "COMPLETED", result
    # Every refresh not caused by the revocation happened ahead of expiry.
    expiry_refreshes = result["refreshes"] - result["reactive_from_revocation"]
    assert expiry_refreshes >= 2, result
    assert result["proactive"] / expiry_refreshes >= 0.95, result


def test_rest_flow_emitter_and_stream_follow_rotation_and_revocation(idp, gateway, run_scenario):
    result = run_scenario(scenario(load_config(idp, gateway), duration=16, rest_threads=4,
                                   with_flow=True, revoke_at=7), timeout=300)
    assert_rotation_held(result, rest=True)
    assert result["reactive_from_revocation"] <= 1, result  # one refresh for everyone


def test_emits_and_stream_follow_revocation_without_any_rest_traffic(idp, gateway, run_scenario):
    result = run_scenario(scenario(load_config(idp, gateway), duration=12, rest_threads=0,
                                   with_flow=False, revoke_at=5), timeout=300)
    assert result["calls"] == 0, result
    assert_rotation_held(result, rest=False)
    assert result["reactive_from_revocation"] == 1, result


def test_the_emitter_alone_refreshes_when_its_upgrade_is_refused(idp, gateway, run_scenario):
    """Nothing but emit_event: only the emitter's own refused upgrade can notice the revocation."""
    result = run_scenario(scenario(load_config(idp, gateway), duration=10, rest_threads=0,
                                   with_flow=False, with_stream=False, revoke_at=4), timeout=300)
    assert_rotation_held(result, rest=False, stream=False)
    assert result["recovered_after_revocation_s"] is not None, result
    assert result["reasons"].get("websocket HTTP 401", 0) == result["reactive_from_revocation"] == 1, result


def test_a_call_starved_past_its_fresh_tokens_expiry_is_refreshed_again(idp, gateway):
    """Under heavy CPU load with 5-second tokens a REST call once failed with "401 twice": the
    token fetched because of a refusal had expired by the time the retry reached the gateway.

    Real oidc-provider, nginx introspecting every request, Prefect, Prefect's own client. The
    starved kernel is the one part played: the retry carrying the token fetched for the
    refusal leaves only once the provider says that token is inactive, as a thread
    descheduled between the refresh and the send would. Its age explains the refusal, so it
    earns one more refresh.
    """
    from prefect.client.orchestration import get_client

    provider = nb.OAuth2ClientCredentials(idp.token_url, idp.client_id, idp.client_secret)
    nb.login(gateway.api_url, auth_string=AUTH_STRING, headers={gateway.header: provider})
    try:
        login = current_login()
        assert login is not None
        token = login.tokens[f"header {gateway.header}"]
        first = token.token.value.reveal()
        idp.revoke(first)  # the next request is refused: a refresh for it
        starved: list[str] = []

        def starve(request: Any) -> None:
            value = request.headers.get(gateway.header)
            if value and value != first and not starved:
                starved.append(value)
                wait_until(lambda: not idp.introspect(value)["active"], timeout=60,
                           what="the token fetched for the refusal to expire")

        with get_client(httpx_settings={"event_hooks": {"request": [starve]}}, sync_client=True) as client:
            assert client.hello().status_code == 200
        assert len(starved) == 1, "the retry after the refusal never left"
        assert not idp.introspect(starved[0])["active"]
        # The refusal's refresh, and for the aged one at most one more (none when the proactive
        # refresh already had the next token): no storm.
        assert token.reasons["HTTP 401"] in (1, 2), token.reasons
    finally:
        nb.logout()


@pytest.fixture(scope="module")
def injecting_gateway(idp: OidcProvider, auth_server: Any) -> Iterator[NginxGateway]:
    """A gateway that holds the server's auth string and sends it instead of the client's."""
    with NginxGateway(auth_server.api_url, idp, inject_auth_string=AUTH_STRING) as gw:
        yield gw


AUDIT = """
import prefect_nbauth as nb
from prefect_nbauth.testing.probes import emit
provider = nb.OAuth2ClientCredentials({token_url!r}, {client_id!r}, {client_secret!r})
results = []
for api_url, auth_string in {logins!r}:
    nb.login(api_url, auth_string=auth_string, headers={{"X-Gateway-Token": provider}})
    report = nb.audit(timeout=10)
    results.append({{"server_auth": report.server_auth, "ok": report.ok,
                    "findings": {{f.check: [f.outcome.value, f.detail, f.fix] for f in report.findings}}}})
emit(results)
"""


def test_audit_behind_gateways_sees_prefects_own_check(idp, gateway, injecting_gateway, run_scenario):
    # One interpreter, two logins: through the gateway that swaps in its own Basic header
    # with a WRONG auth string (login() itself succeeds: the gateway replaces it), then
    # through the gateway that passes the client's credential on, with the right one.
    injecting, passthrough = run_scenario(AUDIT.format(
        token_url=idp.token_url, client_id=idp.client_id, client_secret=idp.client_secret,
        logins=[(injecting_gateway.api_url, "svc:definitely-WRONG"), (gateway.api_url, AUTH_STRING)],
    ), timeout=240)

    outcome, detail, fix = injecting["findings"]["gateway-prefect-credential"]
    assert outcome == "fail", injecting
    assert "wrong Prefect credential was accepted" in detail and "PREFECT_SERVER_API_AUTH_STRING" in fix
    assert not injecting["ok"]
    # /ui-settings is read through the gateway, not reported missing.
    assert injecting["server_auth"] == "BASIC", injecting
    # Prefect's sockets still check the auth message: the wrong one is refused there.
    assert injecting["findings"]["socket-events-in-your-credential"][0] == "fail", injecting
    assert injecting["findings"]["socket-events-in-wrong-token"][0] == "pass", injecting
    assert "definitely-WRONG" not in str(injecting)

    findings = passthrough["findings"]
    assert findings["gateway-prefect-credential"][0] == "pass", passthrough
    assert passthrough["server_auth"] == "BASIC", passthrough
    for path in ("events-in", "events-out"):
        for probe in ("no-subprotocol", "no-auth", "wrong-token"):
            assert findings[f"socket-{path}-{probe}"][0] == "pass", (path, probe, passthrough)
    assert passthrough["ok"], passthrough
