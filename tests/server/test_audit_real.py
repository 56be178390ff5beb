"""audit() against real Prefect 3.9 servers: protected, open, and with a non-ASCII auth string.

Each audit runs in a fresh interpreter (``run_scenario``) with the credential in force
set the way a user would: ``login()``, or the environment. At most two servers run at
once: the session's ``auth_server`` and one started here for a single test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from constants import AUTH_STRING

from prefect_nbauth.testing._server import PrefectServer
from prefect_nbauth.testing.canaries import assert_no_secret

pytestmark = pytest.mark.server

NON_ASCII_AUTH = "admin:pässwörd"

AUDIT = """
import time
import prefect_nbauth as nb
from prefect_nbauth.auditing._audit import audit
from prefect_nbauth.testing.probes import emit
{setup}
# The audit's 3 s default is for people; on a busy shared CI machine a healthy server
# can take longer, and "no answer" would be luck, not a finding. The timeout adapts:
# 20 times the slowest of three answers to the public /health, at least 10 s.
import httpx
from prefect.settings import get_current_settings
baseline = 0.0
with httpx.Client(timeout=60, trust_env=False) as client:
    for _ in range(3):
        t0 = time.monotonic()
        client.get(str(get_current_settings().api.url).rstrip("/") + "/health")
        baseline = max(baseline, time.monotonic() - t0)
timeout = max(10.0, 20 * baseline)
started = time.monotonic()
report = audit(timeout=timeout)
emit({{"report": report.to_dict(), "text": str(report), "html": report._repr_html_(),
       "seconds": time.monotonic() - started, "timeout": timeout}})
"""


def run_audit(run_scenario: Any, *, setup: str = "", env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_scenario(AUDIT.format(setup=setup), env=env, timeout=120)
    result["outcomes"] = {f["check"]: f["outcome"] for f in result["report"]["findings"]}
    print(result["text"])  # shown with -s / on failure: the audit's own words
    return result


def _own_server(tmp_path: Path, auth: str | None) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path / "server-home", auth_string=auth) as server:
        yield server


@pytest.fixture
def unprotected_server(tmp_path: Path) -> Iterator[PrefectServer]:
    yield from _own_server(tmp_path, None)


@pytest.fixture
def non_ascii_server(tmp_path: Path) -> Iterator[PrefectServer]:
    yield from _own_server(tmp_path, NON_ASCII_AUTH)


def test_the_protected_3_9_server_passes_every_probe(auth_server: PrefectServer, run_scenario: Any) -> None:
    result = run_audit(run_scenario, setup=f"nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})")
    outcomes = result["outcomes"]
    assert result["report"]["server_version"] == "3.9.1"
    assert result["report"]["server_auth"] == "BASIC"
    assert [c for c, o in outcomes.items() if o == "fail"] == [], result["text"]
    not_applicable = {c for c, o in outcomes.items() if o == "n/a"}
    assert not_applicable == {"tls-verification"}  # plain http on loopback: no TLS
    for path in ("events-out", "events-in", "logs-out"):
        for probe in ("no-subprotocol", "no-auth", "wrong-token"):
            assert outcomes[f"socket-{path}-{probe}"] == "pass"
    assert "no answer within" not in result["text"]  # every probe got an answer, none timed out
    for text in (result["text"], result["html"], str(result["report"])):
        assert_no_secret(text, AUTH_STRING)


def test_an_unprotected_server_fails_the_rest_and_socket_probes(unprotected_server: PrefectServer,
                                                                 run_scenario: Any) -> None:
    result = run_audit(run_scenario, env={"PREFECT_API_URL": unprotected_server.api_url})
    outcomes = result["outcomes"]
    assert result["timeout"] >= 10  # not the 3 s default that once saw "no answer" on a busy machine
    assert "no answer within" not in result["text"]
    assert outcomes["rest-no-credential"] == "fail"
    assert outcomes["rest-wrong-credential"] == "fail"
    assert outcomes["public-endpoints"] == "fail"
    assert "GET /admin/settings" in next(f["detail"] for f in result["report"]["findings"]
                                         if f["check"] == "public-endpoints")
    for path in ("events-out", "events-in", "logs-out"):
        assert outcomes[f"socket-{path}-no-subprotocol"] == "fail"
        assert outcomes[f"socket-{path}-wrong-token"] == "fail"
    assert outcomes["your-credential"] == "n/a"  # nothing is in force to try
    assert result["report"]["server_auth"] == "none"
    fixes = [f["fix"] for f in result["report"]["findings"] if f["outcome"] == "fail"]
    assert all("PREFECT_SERVER_API_AUTH_STRING" in fix for fix in fixes)


def test_a_non_ascii_server_auth_string_is_reported_as_500s(non_ascii_server: PrefectServer,
                                                            run_scenario: Any) -> None:
    # What a user has in force when the server was given a non-ASCII password: the same one.
    result = run_audit(run_scenario, env={"PREFECT_API_URL": non_ascii_server.api_url,
                                          "PREFECT_API_AUTH_STRING": NON_ASCII_AUTH})
    outcomes = result["outcomes"]
    assert outcomes["rest-no-credential"] == "pass"  # refused before the comparison
    assert outcomes["rest-wrong-credential"] == "fail"
    assert outcomes["your-credential"] == "fail"
    wrong = next(f for f in result["report"]["findings"] if f["check"] == "rest-wrong-credential")
    assert "HTTP 500" in wrong["detail"] and "non-ASCII" in wrong["fix"]
    yours = next(f for f in result["report"]["findings"] if f["check"] == "your-credential")
    assert "non-ASCII" in yours["fix"]
    assert outcomes["socket-events-out-wrong-token"] == "fail"  # the socket check crashes too
    assert_no_secret(result["text"], NON_ASCII_AUTH)
