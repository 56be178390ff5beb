"""stream_events() without a real Prefect server: input checks, the counting logic, the
websocket protocol against a scripted fake, and the iteration/background plumbing.

The fault tests against real servers are in ``test_events_real.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prefect_nbauth as nb
from prefect_nbauth import exponential_backoff
from prefect_nbauth._streaming._outbox import END, Outbox
from prefect_nbauth._streaming._time import iso_us, to_us
from prefect_nbauth.events import (
    EventStream,
    EventStreamState,
    EventStreamStats,
    stream_events,
)
from prefect_nbauth.events._filter import build_filter
from prefect_nbauth.events._ledger import CONFIRMED, GHOST, UNCONFIRMED, Ledger
from prefect_nbauth.events._reconcile import Reconciler
from prefect_nbauth.testing import wait_until

SECRET = "admin:CANARY-s3cret-VALUE-0123456789"
NOW = datetime.now(timezone.utc)
EARLIER = NOW - timedelta(minutes=1)  # events made by a test occur after this


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"filter": {"bogus": 1}}, ["bogus", "not a valid"]),
        ({"filter": {"event": {"prefixx": ["a"]}}}, ["prefixx"]),
        ({"filter": {"occurred": {}}}, ["since="]),
        ({"filter": {"order": "ASC"}}, ["order"]),
        ({"filter": 42}, ["EventFilter or a dict"]),
        ({"since": datetime(2024, 1, 1)}, ["naive"]),
        ({"since": NOW + timedelta(hours=1)}, ["future"]),
        ({"since": "2024-01-01"}, ["datetime"]),
        ({"prefix": []}, ["empty"]),
        ({"prefix": [""]}, ["blank"]),
        ({"prefix": 3}, ["string"]),
        ({"prefix": [b"x"]}, ["strings"]),
        ({"resource": " spaced"}, ["whitespace"]),
        ({"labels": "x"}, ["mapping"]),
        ({"labels": {}}, ["empty"]),
        ({"labels": {"a": []}}, ["empty"]),
        ({"resource": "r", "labels": {"prefect.resource.id": "r"}}, ["one"]),
        ({"prefix": "a", "filter": {"event": {"prefix": ["b"]}}}, ["both"]),
        ({"reconcile_interval": 0}, ["reconcile_interval"]),
        ({"reconcile_interval": float("nan")}, ["finite"]),
        ({"reconcile_interval": True}, ["number"]),
        ({"lookback": 4, "reconcile_interval": 5}, ["longer than"]),
        ({"credential_wait": -1}, ["credential_wait"]),
        ({"buffer": 0}, ["buffer"]),
        ({"max_tracked": 10}, ["max_tracked"]),
        ({"backoff": 3}, ["backoff"]),
    ],
)
def test_bad_input_raises_configuration_error_before_connecting(kwargs, words):
    with pytest.raises(nb.ConfigurationError) as info:
        stream_events(**kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_no_api_url_is_a_configuration_error():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        with pytest.raises(nb.ConfigurationError, match="No Prefect API URL"):
            stream_events()


def test_filters_become_prefect_event_filters():
    from prefect.events.filters import EventFilter

    f = build_filter(prefix=["a.", "b."], resource="prefect.flow-run.*", labels={"team": "x"},
                     related=["prefect.deployment.1"], since=NOW - timedelta(minutes=1),
                     filter={"event": None, "text": {"query": "error"}}, now=NOW)
    body = f.query(to_us(NOW) - 10, to_us(NOW))
    EventFilter.model_validate(body)  # Prefect accepts it
    assert body["event"] == {"prefix": ["a.", "b."]}
    assert body["resource"] == {"labels": {"team": ["x"], "prefect.resource.id": ["prefect.flow-run.*"]}}
    assert body["related"] == {"id": ["prefect.deployment.1"]}
    assert body["text"] == {"query": "error"}
    assert body["order"] == "ASC"
    exact = build_filter(resource=["r1", "r2"], now=NOW).query(0, 1)
    assert exact["resource"] == {"id": ["r1", "r2"]}
    assert build_filter(now=NOW).since == NOW  # default: from now on


def _event(related: list[dict[str, str]]) -> Any:
    from prefect.events.schemas.events import ReceivedEvent

    return ReceivedEvent(event="x", resource={"prefect.resource.id": "r"}, related=related, received=NOW)


def test_related_is_checked_locally_because_the_live_socket_does_not():
    flow = {"prefect.resource.id": "prefect.flow.1", "prefect.resource.role": "flow"}
    tag = {"prefect.resource.id": "prefect.tag.etl", "prefect.resource.role": "tag"}
    assert build_filter(related="prefect.flow.1").accepts_live(_event([flow]))
    assert not build_filter(related="prefect.flow.1").accepts_live(_event([tag]))
    assert not build_filter(related="prefect.flow.1").accepts_live(_event([]))
    assert build_filter(related="prefect.tag.*").accepts_live(_event([flow, tag]))
    assert not build_filter(related="prefect.tag.?").accepts_live(_event([tag]))
    roles = build_filter(filter={"related": {"role": ["tag"]}})
    assert roles.accepts_live(_event([tag])) and not roles.accepts_live(_event([flow]))
    assert build_filter().accepts_live(_event([]))


# ---------------------------------------------------------------------- ledger


def test_ledger_counts_windows_and_forgets_below_the_floor():
    ledger = Ledger(max_tracked=1000)
    ids = [uuid.uuid4() for _ in range(6)]
    for n, event_id in enumerate(ids):
        ledger.add(event_id, n * 10, arrived=0.0, confirmed=n % 2 == 0)
    assert ledger.count_confirmed(0, 40) == 3 and ledger.count_confirmed(1, 39) == 1
    assert [item[1] for item in ledger.unconfirmed_in(0, 100)] == [ids[1], ids[3], ids[5]]
    assert ledger.confirm(ids[1]) and not ledger.confirm(ids[1])
    ledger.mark_ghost(ids[3])
    assert ledger.state(ids[3]) == GHOST and ledger.state(ids[1]) == CONFIRMED
    assert ledger.state(ids[5]) == UNCONFIRMED
    assert ledger.evict(25, arrived_before=1.0) == 25  # ids 0, 1, 2 (occurred < 25) go
    assert len(ledger) == 3 and ids[0] not in ledger and ids[3] in ledger
    assert ledger.count_confirmed(0, 100) == 1  # id 4


def test_ledger_cap_moves_the_floor_above_what_it_drops():
    ledger = Ledger(max_tracked=1000)
    for n in range(1500):
        ledger.add(uuid.uuid4(), n, arrived=10.0, confirmed=True)
    floor = ledger.evict(0, arrived_before=0.0)
    assert len(ledger) == 1000 and floor == 500
    assert ledger.count_confirmed(floor, 10_000) == 1000


# ------------------------------------------------ counting logic, property-based


def _select(events: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    since = to_us(datetime.fromisoformat(body["occurred"]["since"]))
    until = to_us(datetime.fromisoformat(body["occurred"]["until"]))
    ids = set((body.get("id") or {}).get("id") or [])
    prefixes = (body.get("event") or {}).get("prefix") or []
    chosen = [e for e in events if since <= e["_us"] <= until
              and (not ids or e["id"] in ids)
              and (not prefixes or any(e["event"].startswith(p) for p in prefixes))]
    return sorted(chosen, key=lambda e: e["_us"])  # stable: ties keep insertion order


class FakeRest:
    """The REST semantics stream reconciliation relies on, over an in-memory table."""

    PAGE = 50

    def __init__(self) -> None:
        self.persisted: list[dict[str, Any]] = []
        self.requests = 0

    async def count(self, body: dict[str, Any]) -> int:
        self.requests += 1
        return len(_select(self.persisted, body))

    async def page(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._page(body, 0)

    async def next_page(self, link: str) -> dict[str, Any] | None:
        token = json.loads(base64.b64decode(parse_qs(urlsplit(link).query)["page-token"][0]))
        return self._page(token["filter"], token["offset"])

    def _page(self, body: dict[str, Any], offset: int) -> dict[str, Any]:
        self.requests += 1
        chosen = _select(self.persisted, body)
        page = chosen[offset:offset + self.PAGE]
        more = offset + self.PAGE < len(chosen)
        token = base64.b64encode(json.dumps({"filter": body, "offset": offset + self.PAGE}).encode()).decode()
        return {"events": [{k: v for k, v in e.items() if k != "_us"} for e in page],
                "total": len(chosen), "next_page": f"http://x/api/events/filter/next?page-token={token}" if more else None}


def _engine(since: datetime):
    from prefect_nbauth.events._engine import _Engine, _Options

    options = _Options(reconcile_interval=5, lookback=300, credential_wait=0, buffer=10**6,
                       max_tracked=10**6, backoff=exponential_backoff, ghost_after=60)
    return _Engine(build_filter(prefix="p.", since=since, now=since + timedelta(hours=1)), "http://x/api", options)


event_plan = st.lists(
    st.tuples(
        st.integers(0, 40),  # occurred, in ms after `since`: small range, many ties
        st.one_of(st.none(), st.integers(0, 5)),  # step at which the server persists it (None: never)
        st.one_of(st.none(), st.integers(0, 5)),  # step at which it arrives live (None: dropped)
        st.booleans(),  # matches the prefix?
    ),
    min_size=1, max_size=160,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=event_plan, ghost_after=st.sampled_from([0.0, 1e6]), tie=st.integers(0, 120))
def test_reconciliation_delivers_every_persisted_event_exactly_once(plan, ghost_after, tie):
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    base = to_us(since)
    events = []
    for n, (ms, persist_at, live_at, matches) in enumerate(plan):
        us = base + ms * 1000
        events.append(({"id": str(uuid.uuid4()), "_us": us, "occurred": iso_us(us), "received": iso_us(us),
                        "event": ("p." if matches else "q.") + str(n),
                        "resource": {"prefect.resource.id": "r"}}, persist_at, live_at))
    # A run of `tie` persisted events sharing one timestamp exercises the offset fallback.
    for _ in range(tie):
        us = base + 20_000
        events.append(({"id": str(uuid.uuid4()), "_us": us, "occurred": iso_us(us), "received": iso_us(us),
                        "event": "p.tie", "resource": {"prefect.resource.id": "r"}}, 0, None))

    async def run() -> tuple[list[str], FakeRest]:
        engine = _engine(since)
        engine.outbox.bind(asyncio.get_running_loop())
        rest = FakeRest()
        reconciler = Reconciler(rest=rest, ledger=engine.ledger, sfilter=engine.sfilter, take=engine._take,
                                ghost_after=ghost_after, on_recovering=lambda value: None)
        hi = base + 10**9
        for step in range(7):
            for data, persist_at, live_at in events:
                if persist_at == step:
                    rest.persisted.append(data)
                if live_at == step and data["event"].startswith("p."):
                    frame = {k: v for k, v in data.items() if k != "_us"}
                    await engine._on_frame(json.dumps({"type": "event", "event": frame}))
                    if step % 2:  # a re-sent event arrives twice
                        await engine._on_frame(json.dumps({"type": "event", "event": frame}))
            await reconciler.run_pass(engine.sfilter.since_us, hi)
        assert await reconciler.deficit(engine.sfilter.since_us, hi) == (0, len(
            [e for e, p, _ in events if p is not None and e["event"].startswith("p.")]))
        delivered = []
        while engine.outbox._items:
            delivered.append(str(engine.outbox._items.popleft().id))
        return delivered, rest

    delivered, rest = asyncio.run(run())
    persisted = {e["id"] for e, p, _ in events if p is not None and e["event"].startswith("p.")}
    live = {e["id"] for e, _, lv in events if lv is not None and e["event"].startswith("p.")}
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    assert set(delivered) == persisted | live


def test_quiet_pass_costs_a_few_requests_however_many_events():
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    base = to_us(since)

    async def run() -> int:
        engine = _engine(since)
        engine.outbox.bind(asyncio.get_running_loop())
        rest = FakeRest()
        reconciler = Reconciler(rest=rest, ledger=engine.ledger, sfilter=engine.sfilter, take=engine._take,
                                ghost_after=60, on_recovering=lambda value: None)
        for n in range(5000):
            us = base + n * 100
            data = {"id": str(uuid.uuid4()), "occurred": iso_us(us), "received": iso_us(us), "event": "p.x",
                    "resource": {"prefect.resource.id": "r"}}
            await engine._on_frame(json.dumps({"type": "event", "event": data}))
            rest.persisted.append({**data, "_us": us})
        await reconciler.run_pass(base, base + 10**9)  # confirms the live events: 10 id counts + 1
        first = rest.requests
        rest.requests = 0
        await reconciler.run_pass(base, base + 10**9)
        assert engine.c_reconciled == 0
        return first, rest.requests

    first, quiet = asyncio.run(run())
    assert first <= 12 and quiet == 1


# ----------------------------------------------------------------- plumbing


def test_backoff_is_jittered_exponential_and_capped():
    backoff = exponential_backoff(0.1, 2.0, 1.0)
    delays = [next(backoff) for _ in range(12)]
    for n, delay in enumerate(delays):
        step = min(1.0, 0.1 * 2**n)
        assert step / 2 <= delay <= step
    assert len(set(delays)) > 1


def test_outbox_hands_over_between_threads_with_backpressure():
    outbox = Outbox(maxsize=3)
    got: list[Any] = []

    async def produce() -> None:
        outbox.bind(asyncio.get_running_loop())
        for n in range(50):
            assert await outbox.put(n)
            assert len(outbox._items) <= 3
        outbox.close()

    def consume() -> None:
        while (item := outbox.get(timeout=10)) is not END:
            got.append(item)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    asyncio.run(produce())
    consumer.join(10)
    assert got == list(range(50))


def test_stats_and_state_are_plain_values():
    stats = EventStreamStats(live=2, reconciled=3)
    assert stats.delivered == 5 and stats.to_dict()["delivered"] == 5
    assert EventStreamState.CONNECTED == "connected" and str(EventStreamState.STOPPED) == "stopped"


def test_importing_the_stream_pulls_in_neither_ipython_nor_prefect():
    code = ("import sys; sys.modules['IPython'] = None; sys.modules['ipywidgets'] = None\n"
            "import prefect_nbauth.events._stream\n"
            "assert 'prefect' not in sys.modules, 'prefect imported eagerly'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------- a scripted fake Prefect


class FakePrefect:
    """Starlette app on uvicorn: /api/events/out and /api/events/filter, scripted.

    ``frames`` are sent after the filter message; ``auth`` is the auth string it wants
    (close 1008 / HTTP 401 otherwise); ``persisted`` is what REST returns.
    """

    def __init__(self, *, frames: list[Any] = (), auth: str | None = None, html: bool = False,
                 deny_upgrade: int | None = None) -> None:
        self.frames = list(frames)
        self.auth = auth
        self.html = html
        self.deny_upgrade = deny_upgrade  # refuse every upgrade with this HTTP status
        self.persisted: list[dict[str, Any]] = []
        self.upgrades: list[dict[str, Any]] = []
        self.rest_headers: list[dict[str, str]] = []
        self.api_url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse
        from starlette.routing import Route, WebSocketRoute

        async def events_out(websocket: Any) -> None:
            record = {"headers": dict(websocket.headers), "token": None, "filter": None}
            self.upgrades.append(record)
            if self.deny_upgrade is not None:
                await websocket.send_denial_response(
                    JSONResponse({"detail": "denied"}, status_code=self.deny_upgrade))
                return
            offered = [p.strip() for h in websocket.headers.getlist("sec-websocket-protocol") for p in h.split(",")]
            await websocket.accept(subprotocol="prefect" if "prefect" in offered else None)
            message = await websocket.receive_json()
            record["token"] = message.get("token")
            if self.auth is not None and message.get("token") != self.auth:
                await websocket.close(1008, "Invalid token")
                return
            await websocket.send_json({"type": "auth_success"})
            record["filter"] = await websocket.receive_json()
            for frame in self.frames:
                if isinstance(frame, bytes):
                    await websocket.send_bytes(frame)
                elif isinstance(frame, str):
                    await websocket.send_text(frame)
                else:
                    await websocket.send_json(frame)
            try:
                while True:
                    await websocket.receive_text()
            except Exception:  # noqa: BLE001 - client went away
                return

        def authorized(request: Any) -> bool:
            if self.auth is None:
                return True
            expected = "Basic " + base64.b64encode(self.auth.encode()).decode()
            return request.headers.get("authorization") == expected

        async def events_filter(request: Any) -> Any:
            self.rest_headers.append(dict(request.headers))
            if not authorized(request):
                return JSONResponse({"exception_message": "Unauthorized"}, status_code=401)
            body = await request.json()
            chosen = _select([{**e, "_us": to_us(datetime.fromisoformat(e["occurred"]))} for e in self.persisted],
                             body["filter"])
            page = [{k: v for k, v in e.items() if k != "_us"} for e in chosen[:body["limit"]]]
            return JSONResponse({"events": page, "total": len(chosen), "next_page": None})

        async def html_page(request: Any) -> Any:
            return HTMLResponse("<html>not prefect</html>", status_code=404)

        if self.html:
            return Starlette(routes=[Route("/{path:path}", html_page, methods=["GET", "POST"])])
        return Starlette(routes=[WebSocketRoute("/api/events/out", events_out),
                                 Route("/api/events/filter", events_filter, methods=["POST"])])

    def __enter__(self) -> "FakePrefect":
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        config = uvicorn.Config(self._app(), log_level="critical", ws="websockets-sansio", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, 30, what="the fake server")
        self._sock = sock
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def _settings(api_url: str, auth: str | None = None, headers: dict[str, str] | None = None) -> Any:
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_CLIENT_CUSTOM_HEADERS,
        temporary_settings,
    )

    return temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth,
                                       PREFECT_CLIENT_CUSTOM_HEADERS: headers or {}})


def _valid_event(name: str = "p.ok") -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat()
    return {"id": str(uuid.uuid4()), "occurred": now, "received": now, "event": name,
            "resource": {"prefect.resource.id": "r"}}


async def _first_events(stream: EventStream, count: int, timeout: float = 30) -> list[Any]:
    got = []

    async def take() -> None:
        async for event in stream:
            got.append(event)
            if len(got) == count:
                return

    await asyncio.wait_for(take(), timeout)
    return got


def test_credential_goes_on_the_upgrade_and_in_the_auth_message():
    event = _valid_event()
    with FakePrefect(frames=[{"type": "event", "event": event}], auth=SECRET) as fake:
        async def run() -> list[Any]:
            with _settings(fake.api_url, SECRET, {"X-Gateway-Token": "gw-token-value"}):
                async with stream_events(prefix="p.", since=EARLIER) as stream:
                    return await _first_events(stream, 1)

        got = asyncio.run(run())
    assert [str(e.id) for e in got] == [event["id"]] and got[0].delivery == "live"
    upgrade = fake.upgrades[0]
    assert upgrade["headers"]["authorization"] == "Basic " + base64.b64encode(SECRET.encode()).decode()
    assert upgrade["headers"]["x-gateway-token"] == "gw-token-value"
    assert "prefect" in upgrade["headers"]["sec-websocket-protocol"]
    assert upgrade["token"] == SECRET  # the raw auth string, as Prefect's server wants it
    assert upgrade["filter"]["type"] == "filter" and upgrade["filter"]["backfill"] is False
    assert upgrade["filter"]["filter"]["event"] == {"prefix": ["p."]}
    assert all(h["x-gateway-token"] == "gw-token-value" for h in fake.rest_headers)


def test_malformed_frames_are_counted_and_skipped():
    good = _valid_event()
    frames = ["not json", {"type": "nope"}, {"type": "event", "event": {"id": "x"}},
              {"type": "event", "event": {"id": str(uuid.uuid4()), "event": 3}}, b"\x00\x01",
              {"type": "event"}, [1, 2], {"type": "event", "event": good}, {"type": "event", "event": good}]
    with FakePrefect(frames=frames) as fake:
        async def run() -> tuple[list[Any], EventStreamStats]:
            with _settings(fake.api_url):
                async with stream_events(prefix="p.", since=EARLIER) as stream:
                    got = await _first_events(stream, 1)
                    await asyncio.sleep(0)  # let the duplicate frame arrive
                    for _ in range(100):
                        if stream.stats.duplicates:
                            break
                        await asyncio.sleep(0.02)
                    return got, stream.stats

        got, stats = asyncio.run(run())
    assert [str(e.id) for e in got] == [good["id"]]
    assert stats.malformed == 7 and stats.duplicates == 1 and stats.live == 1


def test_rejected_credential_ends_the_stream_without_the_secret():
    with FakePrefect(auth="the:right-one") as fake:
        async def run() -> EventStream:
            with _settings(fake.api_url, SECRET):
                stream = stream_events(credential_wait=0)
                with pytest.raises(nb.AuthenticationError) as info:
                    await _first_events(stream, 1)
                assert stream.state == EventStreamState.STOPPED
                return stream, info.value

        stream, error = asyncio.run(run())
    text = " ".join([str(error), repr(stream), str(stream.stats), repr(error)])
    assert "rejected" in text and "login" in str(error)
    for part in (SECRET, "CANARY", base64.b64encode(SECRET.encode()).decode()):
        assert part not in text


def test_http_401_on_the_upgrade_refreshes_once_then_ends(monkeypatch):
    """401 on the upgrade → one refresh; the new credential is refused too → AuthenticationError."""
    import prefect_nbauth._streaming._credential as keeper
    from prefect_nbauth._secrets import Secret
    from prefect_nbauth.session import SocketCredential

    refreshes: list[Any] = []
    real = keeper.socket_credential

    def rotating_credential() -> Any:
        credential = real()
        token = f"token-{len(refreshes)}"
        return SocketCredential(api_url=credential.api_url,
                                headers={**credential.headers, "X-Gateway-Token": Secret(token)},
                                auth_token=credential.auth_token)

    def refresh(used: Any) -> bool:
        refreshes.append(used.headers["X-Gateway-Token"].reveal())
        return True

    monkeypatch.setattr(keeper, "socket_credential", rotating_credential)
    monkeypatch.setattr(keeper, "refresh_socket_credential", refresh)
    with FakePrefect(deny_upgrade=401) as fake:
        async def run() -> BaseException:
            with _settings(fake.api_url):
                stream = stream_events(credential_wait=0, reconcile_interval=60, lookback=600)
                with pytest.raises(nb.AuthenticationError) as info:
                    await _first_events(stream, 1)
                return info.value

        error = asyncio.run(run())
    assert refreshes == ["token-0"]  # exactly one refresh, for the credential first used
    tokens = [u["headers"].get("x-gateway-token") for u in fake.upgrades]
    assert tokens[:2] == ["token-0", "token-1"] and len(tokens) == 2
    assert "HTTP 401 on the websocket upgrade" in str(error) and error.status_code == 401
    assert "token-" not in str(error)


def test_a_server_that_is_not_prefect_is_a_clear_error():
    with FakePrefect(html=True) as fake:
        async def run() -> BaseException:
            with _settings(fake.api_url):
                stream = stream_events()
                with pytest.raises(nb.NotPrefectServerError) as info:
                    await _first_events(stream, 1)
                return info.value

        error = asyncio.run(run())
    assert "not a Prefect events page" in str(error) and "/api" in str(error)


def test_unreachable_server_keeps_retrying_and_reports_it():
    from prefect_nbauth.testing import free_port

    url = f"http://127.0.0.1:{free_port()}/api"

    async def run() -> tuple[EventStreamState, EventStreamStats, EventStreamState]:
        with _settings(url, SECRET):
            stream = stream_events(backoff=lambda: exponential_backoff(0.01, 2, 0.05))
            task = asyncio.ensure_future(_first_events(stream, 1, timeout=60))
            for _ in range(200):
                if stream.stats.last_error and stream.stats.passes == 0:
                    break
                await asyncio.sleep(0.01)
            state, stats = stream.state, stream.stats
            await stream.aclose()
            task.cancel()
            return state, stats, stream.state

    state, stats, final = asyncio.run(run())
    assert state == EventStreamState.CONNECTING and final == EventStreamState.STOPPED
    assert "127.0.0.1" in stats.last_error and SECRET not in stats.last_error


def test_sync_iteration_runs_on_a_thread_and_a_stream_runs_once():
    events = [_valid_event() for _ in range(3)]
    with FakePrefect(frames=[{"type": "event", "event": e} for e in events]) as fake:
        # A background thread does not see temporary_settings (a context variable), so
        # point the process-wide settings at the fake for this test.
        import prefect.context
        from prefect.settings import PREFECT_API_URL, temporary_settings

        original = prefect.context.GLOBAL_SETTINGS_CONTEXT
        with temporary_settings(updates={PREFECT_API_URL: fake.api_url}) as patched:
            prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(
                profile=original.profile, settings=patched)
        try:
            stream = stream_events(prefix="p.", since=EARLIER)
            got = []
            for event in stream:
                got.append(str(event.id))
                if len(got) == 3:
                    break
            assert stream.wait(10) and stream.state == EventStreamState.STOPPED
            with pytest.raises(RuntimeError, match="runs once"):
                next(iter(stream))

            collected: list[Any] = []
            changes: list[str] = []
            background = stream_events(prefix="p.", since=EARLIER).run_in_background(
                collected.append, lambda s: changes.append(s.state.value))
            wait_until(lambda: len(collected) == 3, 30, what="background delivery")
            background.stop()
            assert not background.running and changes[-1] == "stopped"
        finally:
            prefect.context.GLOBAL_SETTINGS_CONTEXT = original
    assert got == [e["id"] for e in events]
    assert [str(e.id) for e in collected] == [e["id"] for e in events]


# ------------------------------------------------ when a stream asks REST


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cadence_is_quick_when_hot_flowing_while_items_flow_idle_otherwise():
    from prefect_nbauth._streaming._cadence import QUICK, Cadence

    clock = FakeClock()
    cadence = Cadence(flowing=5.0, idle=30.0, clock=clock)
    assert cadence.interval() == cadence.bound() == 30.0  # nothing flowed yet
    assert cadence.note() is True  # a flow starts: the engine brings the next read forward
    clock.now = 1.0
    assert cadence.note() is False  # the same flow
    assert cadence.interval() == cadence.bound() == 5.0
    clock.now = 30.9
    assert cadence.bound() == 5.0  # flowing: an item within the last `idle` seconds
    clock.now = 31.0
    assert cadence.bound() == 30.0 and cadence.note() is True
    cadence.heat(2.0)
    assert cadence.interval() == QUICK and cadence.bound() == 5.0
    clock.now = 33.0
    assert cadence.interval() == 5.0


def test_schedule_wakes_brings_forward_never_puts_off_and_waits_out_a_backoff():
    from prefect_nbauth._streaming._cadence import Schedule

    clock = FakeClock()
    schedule = Schedule(clock=clock)
    assert schedule.wait() is None  # nothing scheduled, nothing due
    schedule.wake()
    assert schedule.wait() == 0
    schedule.begin(30.0)
    schedule.done(30.0)
    assert schedule.wait() == 30.0
    assert schedule.within(5.0) and schedule.wait() == 5.0
    assert not schedule.within(10.0) and schedule.wait() == 5.0  # never put off
    schedule.begin(5.0)
    clock.now = 1.0
    schedule.done(30.0)  # the flow ended during the read: the shorter interval counts
    assert schedule.wait() == 5.0
    schedule.begin(5.0)
    schedule.done(2.0, failed=True)
    schedule.wake()
    assert schedule.wait() == 2.0  # a wake-up waits for the backoff


@settings(max_examples=50, deadline=None)
@given(items=st.lists(st.floats(0, 50), max_size=30), heats=st.lists(st.floats(0, 50), max_size=4),
       durations=st.lists(st.floats(0, 0.4), min_size=1, max_size=20))
def test_a_read_follows_any_moment_within_the_bound_in_force_then(items, heats, durations):
    """The late-delivery bound: whatever items come and however long reads take, the first read
    that begins after a moment t begins by t + bound(t) + (the longest read)."""
    from prefect_nbauth._streaming._cadence import Cadence, Schedule

    step, flowing, idle = 0.02, 1.0, 5.0
    clock = FakeClock()
    cadence = Cadence(flowing=flowing, idle=idle, clock=clock)
    schedule = Schedule(clock=clock)
    items, heats = sorted(items), sorted(heats)
    bounds: list[tuple[float, float]] = []
    starts: list[float] = []
    running_until, n = None, 0
    schedule.wake()
    while clock.now < 60:
        while items and items[0] <= clock.now:
            items.pop(0)
            if cadence.note():
                schedule.within(flowing)  # as the engines do when a flow starts
        while heats and heats[0] <= clock.now:
            heats.pop(0)
            cadence.heat(2.0)
        if running_until is not None and clock.now >= running_until:
            schedule.done(cadence.interval())
            running_until = None
        if running_until is None and schedule.wait() == 0:
            schedule.begin(cadence.interval())
            starts.append(clock.now)
            running_until = clock.now + durations[n % len(durations)]
            n += 1
        bounds.append((clock.now, cadence.bound()))
        clock.now = round(clock.now + step, 6)
    longest = max(durations)
    for t, bound in bounds:
        if t > 50:
            break
        first = next(s for s in starts if s > t)
        assert first <= t + bound + longest + 3 * step, (t, bound, first)  # (steps: the simulation grain)
