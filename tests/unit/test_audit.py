"""audit() without a Prefect server: where the credential goes, what is logged, how it reads.

The servers here are :class:`test_hostile_inputs.FakeServer` instances on 127.0.0.1 that
record every request, so "the real credential went only to the configured origin" is
checked on the wire. The real-server verdicts are in test_audit_real.py / test_audit_old.py.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from constants import AUTH_STRING
from fake_servers import AUTH, FakeServer, prefect_like
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_URL,
    PREFECT_CLIENT_CUSTOM_HEADERS,
    temporary_settings,
)
from test_hostile_inputs import CANARY

from prefect_nbauth import ConfigurationError, ServerUnreachableError
from prefect_nbauth.auditing import AuditReport, Finding, Outcome, _transport, audit
from prefect_nbauth.auditing._prober import SocketAnswer
from prefect_nbauth.auditing._server_version import version_finding
from prefect_nbauth.auditing._socket_rules import judge_socket
from prefect_nbauth.testing._server import free_port
from prefect_nbauth.testing.canaries import assert_no_secret

BASIC = "Basic " + base64.b64encode(AUTH.encode()).decode()


@pytest.fixture
def logged_in_to() -> Iterator[Any]:
    """``logged_in_to(url, **headers)``: the credential in force is AUTH (+ headers) for ``url``."""
    stack: list[Any] = []

    def enter(url: str, **headers: str) -> None:
        updates: dict[Any, Any] = {PREFECT_API_URL: url, PREFECT_API_AUTH_STRING: AUTH}
        if headers:
            updates[PREFECT_CLIENT_CUSTOM_HEADERS] = headers
        context = temporary_settings(updates)
        context.__enter__()
        stack.append(context)

    yield enter
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _authorizations(server: FakeServer) -> list[tuple[str, str]]:
    return [(path, headers.get("Authorization", "")) for _, path, headers in server.requests]


def test_the_real_credential_reaches_the_configured_origin_only_in_the_control_requests(
        logged_in_to: Any) -> None:
    with FakeServer(prefect_like()) as server:
        logged_in_to(f"{server.url}/api", **{"cf-access-token": CANARY})
        report = audit()
        real = [path for _, path, h in server.requests if h.get("Authorization") == BASIC]
        others = [h for _, path, h in server.requests
                  if h.get("Authorization") != BASIC and h.get("cf-access-token") != CANARY]
        gateway_only = [path for _, path, h in server.requests
                        if h.get("cf-access-token") == CANARY and h.get("Authorization") != BASIC]
    # One REST request and one handshake per event socket carry Prefect's credential; nothing
    # else does. The gateway's header goes along on the probes of Prefect's own check (same
    # origin), each with a wrong or no Prefect credential.
    assert sorted(real) == sorted(["/api/admin/version", "/api/events/out", "/api/events/in",
                                   "/api/logs/out"])
    assert "/api/admin/version" in gateway_only and "/ui-settings" in gateway_only
    assert len(others) + len(gateway_only) >= 15
    wrong = {h.get("Authorization") for h in others if h.get("Authorization")}
    assert wrong and BASIC not in wrong and all(w.startswith("Basic ") for w in wrong)
    assert {h.get("cf-access-token") for h in others if h.get("cf-access-token")} - {CANARY}
    assert report.finding("your-credential").outcome is Outcome.PASS
    assert report.credential_used


def test_wrong_credentials_are_fresh_random_values_each_time(logged_in_to: Any) -> None:
    with FakeServer(prefect_like()) as server:
        logged_in_to(f"{server.url}/api")
        audit()
        first = {a for _, a in _authorizations(server) if a and a != BASIC}
        server.requests.clear()
        audit()
        second = {a for _, a in _authorizations(server) if a and a != BASIC}
    assert first and second and not first & second


def test_auditing_another_url_never_sends_the_credential_there(logged_in_to: Any) -> None:
    with FakeServer(prefect_like()) as configured, FakeServer(prefect_like()) as other:
        logged_in_to(f"{configured.url}/api", **{"cf-access-token": CANARY})
        report = audit(f"{other.url}/api")
        seen = other.seen()
    assert configured.requests == []
    assert_no_secret(seen, AUTH_STRING)
    assert CANARY not in seen
    assert not report.credential_used
    assert report.finding("your-credential").outcome is Outcome.NOT_APPLICABLE
    assert "your credential was not sent" in str(report)


def test_redirects_to_another_origin_are_reported_and_never_followed(logged_in_to: Any) -> None:
    with FakeServer(prefect_like()) as other:
        def redirect(method: str, path: str, headers: dict[str, str]) -> Any:
            if path == "/api/health":
                return None
            return 307, {"location": f"{other.url}{path}"}, b""

        with FakeServer(prefect_like(override=redirect)) as server:
            logged_in_to(f"{server.url}/api", **{"cf-access-token": CANARY})
            report = audit()
    assert other.requests == []
    finding = report.finding("redirects")
    assert finding.outcome is Outcome.FAIL
    assert other.url.replace("http://", "") in finding.detail
    assert "first message" in finding.detail  # says what Prefect's own sockets would do


def test_nothing_secret_is_logged_even_at_debug(logged_in_to: Any, caplog: pytest.LogCaptureFixture) -> None:
    with FakeServer(prefect_like()) as server:
        logged_in_to(f"{server.url}/api", **{"cf-access-token": CANARY})
        with caplog.at_level(logging.DEBUG):
            for name in ("websockets", "websockets.client", "httpx", "httpcore", "prefect_nbauth"):
                logging.getLogger(name).setLevel(logging.DEBUG)
            report = audit()
    assert any(r.name.startswith("prefect_nbauth.audit") for r in caplog.records)
    assert_no_secret(caplog.text, AUTH_STRING)
    assert CANARY not in caplog.text
    for text in (str(report), report._repr_html_(), repr(report), repr(report.to_dict())):
        assert_no_secret(text, AUTH_STRING)
        assert CANARY not in text


def test_a_real_websocket_server_gets_the_real_token_only_in_the_control_sockets(
        logged_in_to: Any) -> None:
    """On a real websockets server that speaks Prefect's auth handshake and answers REST too."""
    import json
    import threading
    from http import HTTPStatus

    from websockets.sync.server import serve

    seen: list[tuple[str, str | None, str]] = []

    def answer_http(connection: Any, request: Any) -> Any:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        if request.path == "/ui-settings":
            return connection.respond(HTTPStatus.OK, json.dumps({"auth": "BASIC"}))
        if request.path == "/api/health":
            return connection.respond(HTTPStatus.OK, "true")
        if request.path == "/api/admin/version" and request.headers.get("Authorization") == BASIC:
            return connection.respond(HTTPStatus.OK, '"3.9.1"')
        return connection.respond(HTTPStatus.UNAUTHORIZED, '{"exception_message": "Unauthorized"}')

    def handler(ws: Any) -> None:
        try:
            message = json.loads(ws.recv(timeout=2))
        except Exception:  # noqa: BLE001 - the socket was dropped
            return
        seen.append((ws.request.path, ws.request.headers.get("Authorization"), message))
        if message == {"type": "auth", "token": AUTH}:
            ws.send(json.dumps({"type": "auth_success"}))
        else:
            ws.close(1008, "Invalid token")

    with serve(handler, "127.0.0.1", 0, subprotocols=["prefect"],
               process_request=answer_http) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        logged_in_to(f"http://127.0.0.1:{port}/api")
        report = audit()
        server.shutdown()

    real = sorted(path for path, _, message in seen if message.get("token") == AUTH)
    assert real == ["/api/events/in", "/api/events/out", "/api/logs/out"]
    wrong = [m["token"] for _, _, m in seen if m.get("type") == "auth" and m.get("token") != AUTH]
    assert len(wrong) == 3 and len(set(wrong)) == 1 and AUTH not in wrong[0]
    assert all(auth != BASIC for path, auth, m in seen if m.get("token") != AUTH)
    sockets = [f for f in report.findings if f.check.startswith("socket-")]
    assert len(sockets) == 9 and all(f.outcome is Outcome.PASS for f in sockets), str(report)


def test_findings_come_in_the_order_of_the_rules_and_rules_that_do_not_apply_are_left_out(
        logged_in_to: Any) -> None:
    # The order users read (and docs/security.md lists); the rules are kept in it in _rules.
    sockets = [f"socket-{path}-{probe}" for path in ("events-out", "events-in", "logs-out")
               for probe in ("no-subprotocol", "no-auth", "wrong-token")]
    expected = ["transport", "tls-verification", "advertised-auth", "rest-no-credential",
                "rest-wrong-credential", "your-credential", "gateway-prefect-credential",
                "public-endpoints", "health-exemption", *sockets, "redirects", "server-version",
                "client-server-versions"]
    with FakeServer(prefect_like()) as server:
        logged_in_to(f"{server.url}/api")
        plain = audit()
        logged_in_to(f"{server.url}/api", **{"cf-access-token": CANARY})  # on top of the first
        behind_gateway = audit()
    assert [f.check for f in behind_gateway.findings] == expected
    # Without gateway headers there is no probe of Prefect's own check behind one.
    assert [f.check for f in plain.findings] == [c for c in expected if c != "gateway-prefect-credential"]


def test_an_unreachable_server_is_reported_quickly(logged_in_to: Any) -> None:
    logged_in_to(f"http://127.0.0.1:{free_port()}/api")
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match="Nothing answered"):
        audit(timeout=1)
    assert time.monotonic() - started < 3


def test_no_url_at_all_is_a_configuration_error() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_API_AUTH_STRING}):
        with pytest.raises(ConfigurationError, match="No Prefect API URL"):
            audit()


def test_a_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        audit("ftp://example.invalid/api")


# ---------------------------------------------------------------- verdicts, one by one


def _seen(url: str, skip_verify: bool = False) -> Any:
    """The evidence the transport rules read: the URL and Prefect's TLS setting."""
    return SimpleNamespace(prober=SimpleNamespace(api_url=url),
                           settings=SimpleNamespace(api=SimpleNamespace(tls_insecure_skip_verify=skip_verify)))


@pytest.mark.parametrize(("url", "skip", "transport", "tls"), [
    ("http://127.0.0.1:4200/api", False, Outcome.PASS, Outcome.NOT_APPLICABLE),
    ("http://localhost:4200/api", True, Outcome.PASS, Outcome.FAIL),
    ("http://prefect.example.com/api", False, Outcome.FAIL, Outcome.NOT_APPLICABLE),
    ("http://10.1.2.3:4200/api", False, Outcome.FAIL, Outcome.NOT_APPLICABLE),
    ("https://prefect.example.com/api", False, Outcome.PASS, Outcome.PASS),
    ("https://prefect.example.com/api", True, Outcome.PASS, Outcome.FAIL),
])
def test_transport_and_tls_verdicts(url: str, skip: bool, transport: Outcome, tls: Outcome) -> None:
    seen = _seen(url, skip)
    found = {f.check: f for f in (_transport.transport(seen), _transport.tls_verification(seen))}
    assert found["transport"].outcome is transport
    assert found["tls-verification"].outcome is tls
    for finding in found.values():
        assert (finding.fix != "") == (finding.outcome is Outcome.FAIL)


@pytest.mark.parametrize(("version", "outcome", "mentions"), [
    ("3.2.15", Outcome.FAIL, ["#17687", "3.3.5", "/events/in", "3.6.22"]),
    ("3.3.4", Outcome.FAIL, ["#17687"]),
    ("3.3.5", Outcome.FAIL, ["/events/in", "3.6.22"]),
    ("3.6.13", Outcome.FAIL, ["/events/in"]),
    ("3.6.14", Outcome.FAIL, ["Host header"]),
    ("3.6.21", Outcome.FAIL, ["#21063"]),
    ("3.6.22", Outcome.PASS, []),
    ("3.9.1", Outcome.PASS, []),
    ("not-a-version", Outcome.NOT_APPLICABLE, []),
    (None, Outcome.NOT_APPLICABLE, []),
])
def test_version_verdicts(version: str | None, outcome: Outcome, mentions: list[str]) -> None:
    finding = version_finding(version, is_cloud=False, had_credential=True)
    assert finding.outcome is outcome
    for text in mentions:
        assert text in finding.detail
    if version == "3.3.5":
        assert "#17687" not in finding.detail
    if version == "3.6.14":
        assert "/events/in" not in finding.detail


@pytest.mark.parametrize(("probe", "result", "outcome"), [
    ("no-subprotocol", SocketAnswer("refused", status=403), Outcome.PASS),
    ("no-subprotocol", SocketAnswer("accepted"), Outcome.FAIL),
    ("no-auth", SocketAnswer("accepted", subprotocol="prefect", answer="closed 1008 Expected 'auth' message"), Outcome.PASS),
    ("no-auth", SocketAnswer("accepted", subprotocol=None, answer="closed None"), Outcome.FAIL),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="auth_success"), Outcome.FAIL),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="closed 1008 Invalid token"), Outcome.PASS),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="closed None"), Outcome.FAIL),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="closed 1011"), Outcome.FAIL),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="silent"), Outcome.NOT_APPLICABLE),
    ("wrong-token", SocketAnswer("accepted", subprotocol="prefect", answer="message 'event'"), Outcome.FAIL),
    ("wrong-token", SocketAnswer("redirect", status=302, location="http://elsewhere/"), Outcome.PASS),
    ("wrong-token", SocketAnswer("error", error="TimeoutError"), Outcome.NOT_APPLICABLE),
])
def test_socket_verdicts(probe: str, result: SocketAnswer, outcome: Outcome) -> None:
    assert judge_socket(probe, result)[0] is outcome


def test_report_text_and_html_forms() -> None:
    findings = (
        Finding("a", "REST <without> credentials", Outcome.PASS, "Refused (HTTP 401)."),
        Finding("b", "Socket /events/out with a random wrong token", Outcome.FAIL,
                "Answered auth_success to a random wrong token.", "Upgrade the server."),
        Finding("c", "TLS verification", Outcome.NOT_APPLICABLE, "Plain http."),
    )
    report = AuditReport(api_url="http://127.0.0.1:4200/api", client_sends="an auth string (HTTP Basic)",
                         server_version="3.2.15", server_auth="BASIC", findings=findings, seconds=0.42)
    text = str(report)
    assert text.splitlines()[0] == ("Prefect auth audit of http://127.0.0.1:4200/api: "
                                    "1 failed, 1 passed, 1 not applicable (0.4 s)")
    assert text.index("FAIL") < text.index("PASS") < text.index("N/A")  # failures first
    assert "        fix: Upgrade the server." in text
    page = report._repr_html_()
    assert page.count("<tr>") == 1 + len(findings)
    assert "&lt;without&gt;" in page and "<without>" not in page
    assert not report.ok and [f.check for f in report.failures] == ["b"]
    data = report.to_dict()
    assert data["findings"][1]["outcome"] == "fail"
    assert re.search(r"server: Prefect 3\.2\.15, advertises an auth string", text)
