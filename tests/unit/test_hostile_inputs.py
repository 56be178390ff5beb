"""Hostile input: property tests for the parsers and maskers, and hostile server answers.

The table in docs/security.md lists every input and what it gets; each row points here.

Server answers come from :class:`FakeServer`, a real HTTP server on 127.0.0.1 whose
answers a test scripts: oversized bodies, malformed JSON, redirects to another origin
(a second FakeServer on another port, which records whatever reaches it).
"""

from __future__ import annotations

import base64
import json
import pickle
import threading
import time
from datetime import timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from constants import AUTH_STRING
from fake_servers import Answer, FakeServer, prefect_like
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from prefect_nbauth import (
    AuthenticationError,
    ConfigurationError,
    NotPrefectServerError,
    PrefectAuthError,
    Secret,
    ServerUnreachableError,
    mask,
)
from prefect_nbauth._inputs import (
    Credential,
    check_api_key,
    check_api_url,
    check_auth_string,
    check_headers,
)
from prefect_nbauth._jwt import expiry_of, jwt_claims
from prefect_nbauth._redaction import redact
from prefect_nbauth.session._probe import MAX_BODY, probe_cloud, probe_server
from prefect_nbauth.session._sources import CREDENTIAL_SETTINGS, _normalise, _read_toml
from prefect_nbauth.testing.canaries import assert_no_secret

CANARY = "Zq9x-CANARY-s3cr3t"
AUTH = AUTH_STRING
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _credential(url: str, auth: str | None = AUTH, **headers: str) -> Credential:
    return Credential(api_url=f"{url}/api", auth_string=Secret(auth) if auth else None,
                      headers={n: Secret(v) for n, v in headers.items()})


# ------------------------------------------------------------------- input parsers (property)


def _with_canary(inner: st.SearchStrategy[str] = st.text(max_size=20)) -> st.SearchStrategy[str]:
    return st.tuples(inner, inner).map(lambda p: p[0] + CANARY + p[1])


@FAST
@given(_with_canary())
@example(" " + CANARY)
@example('"' + CANARY + '"')
@example("admin:" + CANARY + "é")
@example("admin:" + CANARY + "\n")
def test_check_auth_string_accepts_only_what_prefect_can_compare_and_never_echoes(value: str) -> None:
    try:
        secret = check_auth_string(value)
    except ConfigurationError as exc:
        assert CANARY not in str(exc)
        return
    raw = secret.reveal()
    # No ':' is fine: Prefect compares the whole string (PREFECT_FACTS.md).
    assert raw == value and raw.isascii() and raw.isprintable()
    assert raw == raw.strip() and not any(c in raw for c in "\r\n\t\0")
    assert CANARY not in repr(secret) and CANARY not in str(secret)


@FAST
@given(st.one_of(_with_canary(), st.text(max_size=30)))
def test_check_api_key_never_echoes_and_accepts_only_header_safe_keys(value: str) -> None:
    try:
        secret = check_api_key(value)
    except ConfigurationError as exc:
        assert CANARY not in str(exc)
        return
    # Whatever is accepted can be sent as a header value.
    httpx.Request("GET", "http://x/", headers={"Authorization": f"Bearer {secret.reveal()}"})


@FAST
@given(st.dictionaries(st.text(max_size=12), st.one_of(_with_canary(), st.text(max_size=20)),
                       max_size=3))
def test_check_headers_values_are_sendable_and_never_echoed(headers: dict[str, str]) -> None:
    try:
        cleaned = check_headers(headers)
    except ConfigurationError as exc:
        assert CANARY not in str(exc)
        return
    request = httpx.Request("GET", "http://x/", headers={n: v.reveal() for n, v in cleaned.items()})
    for name in cleaned:
        assert request.headers[name] == headers[name]
    assert CANARY not in repr(cleaned)


@FAST
@given(st.one_of(st.none(), st.integers(), st.binary(max_size=5), st.lists(st.text(max_size=3))))
def test_checks_refuse_non_strings_with_configuration_error(value: Any) -> None:
    for check in (check_auth_string, check_api_key, check_api_url):
        with pytest.raises(ConfigurationError):
            check(value)


_URL_CHARS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=25)


@FAST
@given(st.sampled_from(["http://", "https://", "ftp://", "", "http:/", "HTTP://"]), _URL_CHARS)
@example("http://", "127.0.0.1:4200/api/")
@example("http://", "user:" + CANARY + "@host/api")
def test_check_api_url_is_idempotent_and_never_keeps_userinfo(scheme: str, rest: str) -> None:
    url = scheme + rest
    try:
        cleaned = check_api_url(url)
    except ConfigurationError as exc:
        assert CANARY not in str(exc)
        return
    except ValueError:
        # Reported separately (test_check_api_url_raises_only_configuration_error).
        assume(False)
        return
    assert cleaned.startswith(("http://", "https://"))
    parts = urlsplit(cleaned)
    assert not cleaned.endswith("/") and not parts.username and not parts.password
    assert check_api_url(cleaned) == cleaned
    assert CANARY not in cleaned


@pytest.mark.parametrize("url", ["http://[::1", "http://[", "http://h\x00/api",
                                 "http://h\x7f/api", "http://[::1]x/api"])
def test_check_api_url_raises_only_configuration_error(url: str) -> None:
    try:
        cleaned = check_api_url(url)
    except ConfigurationError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{url!r} raised {type(exc).__name__}, not ConfigurationError")
    httpx.URL(cleaned)  # what check_api_url accepts must be a URL httpx can request


# --------------------------------------------------------------------------- maskers (property)


@FAST
@given(st.text(min_size=1, max_size=120))
def test_mask_shows_no_part_of_a_password_and_a_key_tail_only_for_long_keys(value: str) -> None:
    shown = mask(value)
    scheme, space, _ = value.partition(" ")
    if space and scheme.lower() in ("basic", "bearer", "token"):
        assert shown == f"{scheme} ****"  # a Basic value's tail decodes to the password's tail
        return
    body = shown.removeprefix("pnu_").removeprefix("pnb_")
    assert body.startswith("****")
    core = value[4:] if value[:4] in ("pnu_", "pnb_") else None
    if core is not None and len(core) >= 16 and core.isascii() and core.isalnum():
        assert body == "****" + core[-4:]  # a long Prefect Cloud key: which key it is
    else:
        assert body == "****"  # anything else shows nothing at all


_SECRET = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",),
                                         exclude_characters="*"), min_size=3, max_size=30)


@FAST
@given(_SECRET.filter(lambda s: len(s) >= 8),  # shorter: only as a whole word (test_secrets)
       st.text(max_size=40), st.text(max_size=40), st.integers(1, 3))
def test_redact_removes_every_occurrence(secret: str, before: str, after: str, times: int) -> None:
    text = before + (secret + after) * times
    assert secret not in redact(text, secret)


def test_redact_cannot_rebuild_the_secret_from_its_own_mask() -> None:
    # The filler is never a character of the secret: "****" beside a '*' cannot spell it again.
    assert "a***" not in redact("x a*** y", "a***")
    assert "*a******" not in redact("x *a****** y", "*a******")


@FAST
@given(_with_canary(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                            max_size=20)))
def test_secret_never_shows_its_value(value: str) -> None:
    secret = Secret(value)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret:>40}", "%s" % (secret,),
             repr([secret]), repr({"k": secret}), pickle.dumps(secret).decode("latin-1")]
    for text in shown:
        assert CANARY not in text
    assert pickle.loads(pickle.dumps(secret)) != value  # a pickle carries the mask only
    assert secret == value and hash(secret) == hash(value)


def test_credential_repr_and_exceptions_never_show_secrets() -> None:
    credential = _credential("http://h", auth=AUTH, **{"cf-access-token": CANARY})
    for text in (repr(credential), str(credential)):
        assert_no_secret(text, AUTH_STRING)
        assert CANARY not in text


# ------------------------------------------------------------------------- token parsers


_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


@FAST
@given(st.text(max_size=80))
def test_jwt_claims_never_raises_on_any_text(token: str) -> None:
    claims = jwt_claims(token)
    assert claims is None or isinstance(claims, dict)
    expiry_of(claims)


@FAST
@given(_JSONISH, st.one_of(st.none(), st.floats(allow_nan=True), st.integers(), st.text(max_size=5)))
@example({}, float("inf"))
@example({}, 10**30)
@example({}, -(10**30))
def test_jwt_claims_survive_any_payload_and_any_exp(payload: Any, exp: Any) -> None:
    if isinstance(payload, dict):
        payload = {**payload, "exp": exp}
    try:
        raw = json.dumps(payload).encode()
    except ValueError:
        assume(False)
        return
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    claims = jwt_claims(f"Bearer header.{body}.signature")
    assert claims is None or isinstance(claims, dict)
    expires = expiry_of(claims)
    assert expires is None or expires.tzinfo is not None


@FAST
@given(st.one_of(st.text(max_size=40), _JSONISH))
def test_sources_normalise_any_custom_headers_value_without_raising(value: Any) -> None:
    spec = next(s for s in CREDENTIAL_SETTINGS if s.name == "PREFECT_CLIENT_CUSTOM_HEADERS")
    _normalise(spec, value)
    for other in CREDENTIAL_SETTINGS:
        if other is not spec and isinstance(value, str):
            assert _normalise(other, value) == value


@FAST
@given(st.binary(max_size=200))
def test_sources_read_any_bytes_as_toml_without_raising(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("toml") / "prefect.toml"
    path.write_bytes(data)
    assert isinstance(_read_toml(path), dict)


_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
              st.datetimes(timezones=st.just(timezone.utc)), st.timedeltas()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=6,
)
_FILTER_KEYS = st.sampled_from(["event", "resource", "related", "occurred", "any_resource", "id", "order"])


@FAST
@given(_ANY, _ANY, _ANY, _ANY, _ANY, st.one_of(_ANY, st.dictionaries(_FILTER_KEYS, _ANY, max_size=3)))
def test_event_filter_inputs_give_a_filter_or_a_configuration_error(
        prefix: Any, resource: Any, labels: Any, related: Any, since: Any, filter: Any) -> None:
    from prefect_nbauth.events import _filter as events_filter

    try:
        events_filter.build_filter(prefix=prefix, resource=resource, labels=labels, related=related,
                                   since=since, filter=filter)
    except ConfigurationError:
        pass


# ------------------------------------------------------------ hostile server answers (real HTTP)


def test_oversized_answer_is_cut_at_max_body() -> None:
    sent = {"bytes": 0}

    def endless() -> Iterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(10_000):  # 640 MiB if nobody stopped reading
            sent["bytes"] += len(chunk)
            yield chunk

    with FakeServer(lambda m, p, h: (200, {"content-type": "application/json"}, endless())) as srv:
        started = time.monotonic()
        with pytest.raises(NotPrefectServerError, match="more than 1024 KiB"):
            probe_server(_credential(srv.url), timeout=5)
        assert time.monotonic() - started < 5
    assert sent["bytes"] < 64 * MAX_BODY  # it stopped reading, the server could not keep going


_DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe\x00", b"[]", b'"3.9.1', b"null", b"NaN", b'{"auth": 1e999}',
    pytest.param(_DEEP, id="deeply-nested"),
])
def test_malformed_json_answers_are_not_prefect(body: bytes) -> None:
    with FakeServer(lambda m, p, h: (200, {"content-type": "application/json"}, body)) as srv:
        with pytest.raises(NotPrefectServerError) as info:
            probe_server(_credential(srv.url), timeout=5)
    assert_no_secret(str(info.value), AUTH_STRING)


def _probe_error(version: Callable[[dict[str, str]], Answer], error: type[Exception]) -> str:
    """The message of ``error``, raised by a probe of a Prefect look-alike whose
    ``/api/admin/version`` answers ``version(request headers)``."""
    def override(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        return version(headers) if path == "/api/admin/version" else None

    with FakeServer(prefect_like(override=override)) as srv:
        with pytest.raises(error) as info:
            probe_server(_credential(srv.url), timeout=5)
    return str(info.value)


def test_malformed_version_after_a_good_ui_settings_is_not_prefect() -> None:
    message = _probe_error(lambda h: (200, {"content-type": "application/json"}, b"{not json"),
                           NotPrefectServerError)
    assert "does not look like a Prefect API" in message


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["/ui-settings", "/api/admin/version"])
def test_redirect_to_another_host_never_forwards_the_credential(status: int, where: str) -> None:
    with FakeServer(prefect_like()) as other:
        def override(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if path == where:
                return status, {"location": f"{other.url}{path}"}, b""
            return None

        with FakeServer(prefect_like(override=override)) as srv:
            with pytest.raises(NotPrefectServerError, match="not forwarded across redirects"):
                probe_server(_credential(srv.url, **{"cf-access-token": CANARY}), timeout=5)
        assert other.requests == []  # nothing at all reached the other host


def test_redirect_that_echoes_the_credential_does_not_put_it_in_the_message() -> None:
    # A hostile server knows the credential it was sent; its Location may carry it back,
    # percent-encoded, in the user info, the path and the query.
    encoded = quote(AUTH, safe="")
    location = f"http://{encoded}@evil.invalid:8443/{encoded}/x?token={encoded}"
    message = _probe_error(lambda h: (302, {"location": location}, b""), NotPrefectServerError)
    assert "evil.invalid" in message  # says where it was sent
    assert_no_secret(message, AUTH_STRING)


def test_a_content_type_that_echoes_the_credential_is_not_shown() -> None:
    message = _probe_error(lambda h: (200, {"content-type": AUTH}, b"<html>"), NotPrefectServerError)
    assert_no_secret(message, AUTH_STRING)


def test_error_bodies_that_echo_the_credential_are_not_shown() -> None:
    def echo(headers: dict[str, str]) -> Answer:
        body = json.dumps({"detail": f"bad credential {AUTH} / {headers.get('Authorization')}"})
        return 401, {"content-type": "application/json"}, body.encode()

    assert_no_secret(_probe_error(echo, AuthenticationError), AUTH_STRING)


def test_cloud_probe_does_not_follow_a_redirect() -> None:
    with FakeServer() as other:
        def route(method: str, path: str, headers: dict[str, str]) -> Answer:
            return 307, {"location": f"{other.url}{path}"}, b""

        with FakeServer(route) as cloud:
            credential = Credential(api_url=f"{cloud.url}/api", api_key=Secret("pnu_" + "k" * 36))
            with pytest.raises(PrefectAuthError):
                probe_cloud(credential, cloud_api_url=f"{cloud.url}/api", timeout=5)
        assert other.requests == []


def test_huge_headers_and_garbage_are_server_unreachable() -> None:
    with FakeServer(lambda m, p, h: (200, {"x-junk": "j" * 200_000}, b"true")) as srv:
        with pytest.raises(ServerUnreachableError):
            probe_server(_credential(srv.url), timeout=5)


def test_a_dripping_server_cannot_hold_a_probe_much_longer_than_its_timeout() -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(12):
            time.sleep(0.25)  # each byte well within the read timeout
            yield b" "

    with FakeServer(lambda m, p, h: (200, {"content-type": "application/json"}, drip())) as srv:
        started = time.monotonic()
        with pytest.raises(PrefectAuthError):
            probe_server(_credential(srv.url), timeout=0.5)
        assert time.monotonic() - started < 2


# ------------------------------------- Prefect's own clients after login(): redirects (seam)


def _csrf_disabled(method: str, path: str, headers: dict[str, str]) -> Answer | None:
    if path.startswith("/api/csrf-token"):
        return 422, {"content-type": "application/json"}, b'{"detail": "CSRF protection is disabled."}'
    return None


@pytest.mark.server
def test_prefect_rest_client_does_not_carry_gateway_headers_across_a_redirect(run_scenario: Any) -> None:
    with FakeServer(prefect_like(None)) as other:
        def redirect(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if path == "/api/flows/filter":
                return 307, {"location": f"{other.url}{path}"}, b""
            return _csrf_disabled(method, path, headers)

        with FakeServer(prefect_like(None, override=redirect)) as gateway:
            run_scenario(f"""
                import prefect_nbauth as nb
                from prefect_nbauth.testing.probes import emit, read_flows_sync
                nb.login({gateway.url + '/api'!r}, headers={{"cf-access-token": {CANARY!r}}})
                emit(read_flows_sync())
                """)
        assert other.requests, "the redirect was not followed at all"
        assert CANARY not in other.seen()


@pytest.mark.server
def test_prefect_event_socket_does_not_send_the_token_across_a_redirect(run_scenario: Any) -> None:
    from websockets.sync.server import serve

    received: list[str] = []

    def record(ws: Any) -> None:
        try:
            received.append(ws.recv(timeout=5))
        except Exception:  # noqa: BLE001 - nothing sent is the good outcome
            pass

    with serve(record, "127.0.0.1", 0, subprotocols=["prefect"]) as other:
        threading.Thread(target=other.serve_forever, daemon=True).start()
        port = other.socket.getsockname()[1]

        def redirect(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if path == "/api/events/out":
                return 307, {"location": f"ws://127.0.0.1:{port}{path}"}, b""
            return _csrf_disabled(method, path, headers)

        with FakeServer(prefect_like(override=redirect)) as server:
            run_scenario(f"""
                import asyncio
                import prefect_nbauth as nb
                from prefect.events.clients import get_events_subscriber
                from prefect_nbauth.testing.probes import emit
                nb.login({server.url + '/api'!r}, auth_string={AUTH!r})
                async def subscribe():
                    try:
                        async with get_events_subscriber(reconnection_attempts=0):
                            return "connected"
                    except Exception as exc:
                        return type(exc).__name__
                emit(asyncio.run(asyncio.wait_for(subscribe(), 20)))
                """)
        other.shutdown()
    assert all(AUTH not in message for message in received), received
