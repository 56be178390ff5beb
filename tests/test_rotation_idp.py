"""Rotation against parts nobody here wrote: oidc-provider and nginx with njs.

``tests/real_idp.py`` starts ``oidc-provider`` (npm, pinned) issuing 5-second
client-credentials tokens and Debian's nginx whose njs module checks every
request's token at the provider's introspection endpoint (RFC 7662), in front
of the session's real Prefect server with an auth string. The load
(``tests/idp_load.py``) runs in its own interpreter; mid-run the token in force
is revoked at the provider (RFC 7009) and nginx cuts every open connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from constants import AUTH_STRING
from real_idp import NginxGateway, OidcProvider

pytestmark = [pytest.mark.server, pytest.mark.idp]


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
            "client_secret": idp.client_secret, "nginx_pid": gw._proc.pid}


def scenario(cfg: dict[str, Any], **kwargs: Any) -> str:
    return f"""
import logging
from idp_load import run
from scenario_helpers import emit
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


@pytest.fixture(scope="module")
def injecting_gateway(idp: OidcProvider, auth_server: Any) -> Iterator[NginxGateway]:
    """A gateway that holds the server's auth string and sends it instead of the client's."""
    with NginxGateway(auth_server.api_url, idp, inject_auth_string=AUTH_STRING) as gw:
        yield gw


AUDIT = """
import prefect_nbauth as nb
from scenario_helpers import emit
provider = nb.OAuth2ClientCredentials({token_url!r}, {client_id!r}, {client_secret!r})
nb.login({api_url!r}, auth_string={auth_string!r}, headers={{"X-Gateway-Token": provider}})
report = nb.audit(timeout=10)
emit({{"server_auth": report.server_auth, "ok": report.ok,
       "findings": {{f.check: [f.outcome.value, f.detail, f.fix] for f in report.findings}}}})
"""


def audit_behind(gw: NginxGateway, idp: OidcProvider, auth_string: str, run_scenario: Any) -> dict:
    return run_scenario(AUDIT.format(token_url=idp.token_url, client_id=idp.client_id,
                                     client_secret=idp.client_secret, api_url=gw.api_url,
                                     auth_string=auth_string), timeout=180)


def test_audit_behind_a_header_injecting_gateway_fails_the_wrong_credential(
        idp, injecting_gateway, run_scenario):
    # login() itself succeeds: the gateway swaps the wrong auth string for its own.
    result = audit_behind(injecting_gateway, idp, "svc:definitely-WRONG", run_scenario)
    outcome, detail, fix = result["findings"]["gateway-prefect-credential"]
    assert outcome == "fail", result
    assert "wrong Prefect credential was accepted" in detail and "PREFECT_SERVER_API_AUTH_STRING" in fix
    assert not result["ok"]
    # /ui-settings is read through the gateway, not reported missing.
    assert result["server_auth"] == "BASIC", result
    # Prefect's sockets still check the auth message: the wrong one is refused there.
    assert result["findings"]["socket-events-in-your-credential"][0] == "fail", result
    assert result["findings"]["socket-events-in-wrong-token"][0] == "pass", result
    assert "definitely-WRONG" not in str(result)


def test_audit_behind_a_passthrough_gateway_sees_prefects_own_check(idp, gateway, run_scenario):
    result = audit_behind(gateway, idp, AUTH_STRING, run_scenario)
    findings = result["findings"]
    assert findings["gateway-prefect-credential"][0] == "pass", result
    assert result["server_auth"] == "BASIC", result
    for path in ("events-in", "events-out"):
        for probe in ("no-subprotocol", "no-auth", "wrong-token"):
            assert findings[f"socket-{path}-{probe}"][0] == "pass", (path, probe, result)
    assert result["ok"], result
