"""The load that rotation with a real IdP must survive (the tests and benchmarks/rotation_real_idp.py).

Runs INSIDE a scenario interpreter (a fresh process, like a notebook kernel):
``run(cfg, ...)`` logs in through the nginx gateway with an
``OAuth2ClientCredentials`` provider for the oidc-provider's short tokens, then
for ``duration`` seconds runs

* ``rest_threads`` threads of REST calls, each with its own
  ``get_client(sync_client=True)`` opened once (so it must follow rotation);
* optionally a ``@flow`` that keeps calling the API through its own client;
* ``emit_event`` every ``emit_every`` seconds (Prefect's own ``EventsWorker``);
* a ``prefect_nbauth.stream_events`` receiving those events;

and at ``revoke_at`` seconds revokes the token in force at the IdP (RFC 7009)
and has the gateway cut every open connection. Then it waits until the server
has stored, and the stream delivered, every emitted event (or a timeout) and
returns the figures as a dict.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from .._wait import wait_until
from ._nginx import cut_connections

HEADER = "X-Gateway-Token"


def _wait(condition: Any, timeout: float) -> bool:
    """Whether ``condition()`` came true within ``timeout`` s: a figure of the run, not a failure."""
    try:
        wait_until(condition, timeout, interval=0.1)
    except TimeoutError:
        return False
    return True


def _stored_ids(prefix: str, since: datetime) -> set[str]:
    from prefect import get_client

    ids: set[str] = set()
    body = {"filter": {"event": {"prefix": [prefix]},
                       "occurred": {"since": since.isoformat(),
                                    "until": (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()}},
            "limit": 50}
    with get_client(sync_client=True) as client:
        page = client._client.post("/events/filter", json=body).json()
        while True:
            ids.update(e["id"] for e in page["events"])
            if not page.get("next_page"):
                return ids
            page = client._client.get(page["next_page"]).json()


class _EmitFailures(logging.Handler):
    """Counts Prefect's ``Service 'EventsWorker' failed to process item`` errors."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to process item" in str(record.msg) and "EventsWorker" in record.getMessage():
            self.count += 1


class _Load:
    """What the load's threads share: one lock over the figures, and the stop signal."""

    def __init__(self, prefix: str, emit_every: float) -> None:
        self.prefix, self.emit_every = prefix, emit_every
        self.stop = threading.Event()
        # Cleared while the load pauses (a person signed out in sso_load): no call, no event,
        # so nothing is counted as failed.
        self.running = threading.Event()
        self.running.set()
        self.lock = threading.Lock()
        self.calls = {"ok": 0, "failed": 0}
        self.errors: list[str] = []
        self.ok_times: list[float] = []
        self.emitted: dict[str, float] = {}   # event id -> when emitted
        self.streamed: dict[str, float] = {}  # event id -> when received
        self.flow_state: dict[str, Any] = {}

    def record(self, ok: bool, what: str = "") -> None:
        with self.lock:
            self.calls["ok" if ok else "failed"] += 1
            if ok:
                self.ok_times.append(time.time())
            elif len(self.errors) < 5:
                self.errors.append(what)

    def call_until_stopped(self, label: str, pause: float = 0.0) -> int:
        """REST calls through one client opened once, across every rotation; how many."""
        from prefect import get_client

        n = 0
        with get_client(sync_client=True) as client:
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.stop.wait(0.05)
                    continue
                try:
                    client.read_flows(limit=1)
                    self.record(True)
                except Exception as exc:  # noqa: BLE001 - counted
                    self.record(False, f"{label}{type(exc).__name__}: {str(exc)[:200]}")
                n += 1
                if pause:
                    self.stop.wait(pause)
        return n

    def run_flow(self) -> None:
        from prefect import flow

        @flow(name="nbauth-idp-load", persist_result=False)
        def long_flow() -> int:
            return self.call_until_stopped("flow ", pause=0.1)

        self.flow_state["state"] = long_flow(return_state=True).type.value

    def emit(self) -> None:
        """``emit_event`` every ``emit_every`` seconds (Prefect's own EventsWorker sends them)."""
        from prefect.events import emit_event

        i = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.running.is_set():
                event = emit_event(event=f"{self.prefix}.tick", resource={"prefect.resource.id": f"{self.prefix}.r"},
                                   payload={"i": i})
                if event is not None:
                    with self.lock:
                        self.emitted[str(event.id)] = time.time()
                i += 1
            next_at += self.emit_every
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def on_event(self, event: Any) -> None:
        with self.lock:
            self.streamed.setdefault(str(event.id), time.time())

    def revoke(self, cfg: dict[str, Any], token: Any, *, rest_expected: bool, with_stream: bool,
               duration: float) -> tuple[dict[str, Any], threading.Thread]:
        """Revoke the token in force, cut every connection, and watch (a thread) for the recovery."""
        revoked: dict[str, Any] = {}
        # Revoke a token that was just issued, so its own proactive refresh (seconds
        # away) cannot stand in for the recovery being measured.
        generation = token.generation
        _wait(lambda: token.generation != generation, 30)
        value = token.token.value.reveal()
        socket_before = _emitter_socket()
        revoked["reasons_before"] = dict(token.reasons)
        revoked["at"] = time.time()
        httpx.post(cfg["revocation_url"], data={"token": value, "token_type_hint": "access_token"},
                   auth=(cfg["client_id"], cfg["client_secret"]), timeout=30).raise_for_status()
        cut_connections(cfg["nginx_pid"])
        revoked["cut_done"] = cut = time.time()

        def recovered() -> bool:
            with self.lock:
                rest_ok = not rest_expected or (self.ok_times and self.ok_times[-1] > cut)
                stream_ok = not with_stream or any(self.emitted.get(i, 0) > cut for i in self.streamed)
            socket = _emitter_socket()  # the emitter reconnected past the gateway
            return bool(rest_ok) and stream_ok and socket is not None and socket is not socket_before

        def watch() -> None:
            if _wait(recovered, duration):
                # The refreshes the revocation itself cost: the reactive ones until both were back.
                revoked["reasons_after"] = dict(token.reasons)
                revoked["back"] = time.time()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        return revoked, watcher

    def settle(self, since: datetime, stream: Any, timeout: float) -> set[str]:
        """Until every emitted event is stored by the server and delivered by the stream; the stored ids."""
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=60)
        stored: set[str] = set()

        def all_stored() -> bool:
            stored.update(_stored_ids(self.prefix, since))
            return set(self.emitted) <= stored

        _wait(all_stored, timeout)
        if stream is not None:
            _wait(lambda: set(self.emitted) <= set(self.streamed), timeout)
            stream.stop()
        return stored

    def recovery_seconds(self, revoked: dict[str, Any], *, rest_expected: bool, with_stream: bool) -> float | None:
        """From the revocation until a REST call AND an event emitted after the cut came through."""
        at = revoked["at"]
        rest_back = min((t for t in self.ok_times if t > revoked["cut_done"]), default=None)
        stream_back = min((self.streamed[i] for i, when in self.emitted.items() if when > revoked["cut_done"]
                           and i in self.streamed), default=None)
        backs = [b for b in (rest_back if rest_expected else at,
                             stream_back if with_stream else revoked.get("back")) if b is not None]
        return round(max(backs) - at, 3) if len(backs) == 2 and "back" in revoked else None


def run(cfg: dict[str, Any], *, duration: float, rest_threads: int = 4, with_flow: bool = True,
        with_stream: bool = True, emit_every: float = 0.1, revoke_at: float | None = None,
        settle: float = 120.0) -> dict[str, Any]:
    """Log in through the gateway, run the load for ``duration`` s (revoking at ``revoke_at``); the figures."""
    from ...events import stream_events
    from ...session import OAuth2ClientCredentials, current_login, login, logout

    provider = OAuth2ClientCredentials(cfg["token_url"], cfg["client_id"], cfg["client_secret"])
    login(cfg["api_url"], auth_string=cfg["auth_string"], headers={HEADER: provider})
    session = current_login()
    assert session is not None, "login() returned without a session"
    token = session.tokens[f"header {HEADER}"]
    started_refreshes, started_reasons = token.refreshes, dict(token.reasons)

    failures = _EmitFailures()
    # Prefect's services log there, and prefect._internal does not propagate.
    logging.getLogger("prefect._internal.concurrency").addHandler(failures)
    load = _Load(f"nbauth.idp.{uuid.uuid4().hex[:8]}", emit_every)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=5)
    stream = stream_events(prefix=load.prefix, since=t0).run_in_background(load.on_event) if with_stream else None
    threads = [threading.Thread(target=load.call_until_stopped, args=("",), daemon=True) for _ in range(rest_threads)]
    if with_flow:
        threads.append(threading.Thread(target=load.run_flow, daemon=True))
    threads.append(threading.Thread(target=load.emit, daemon=True))
    begin = time.monotonic()
    for t in threads:
        t.start()
    rest_expected = bool(rest_threads or with_flow)
    revoked: dict[str, Any] = {}
    if revoke_at is not None:
        load.stop.wait(revoke_at)
        revoked, watcher = load.revoke(cfg, token, rest_expected=rest_expected, with_stream=with_stream,
                                       duration=duration)
        threads.append(watcher)
    load.stop.wait(max(0.0, duration - (time.monotonic() - begin)))
    load.stop.set()
    for t in threads:
        t.join(60)
    load_seconds = time.monotonic() - begin
    refreshes_during_load = token.refreshes - started_refreshes
    reasons = {k: v - started_reasons.get(k, 0) for k, v in token.reasons.items()}
    stored = load.settle(t0, stream, settle)
    emitted = set(load.emitted)
    result: dict[str, Any] = {
        "calls": load.calls["ok"] + load.calls["failed"], "failed": load.calls["failed"], "errors": load.errors,
        "refreshes": refreshes_during_load, "proactive": reasons.get("proactive", 0),
        "reactive": refreshes_during_load - reasons.get("proactive", 0) - reasons.get("forced", 0),
        "reasons": reasons, "emit_failures": failures.count, "emitted": len(emitted),
        "stored": len(emitted & stored), "streamed": len(emitted & set(load.streamed)),
        "flow": load.flow_state.get("state"), "load_seconds": round(load_seconds, 1),
        "recovered_after_revocation_s": None, "reactive_from_revocation": 0,
    }
    if revoked:
        result["recovered_after_revocation_s"] = load.recovery_seconds(revoked, rest_expected=rest_expected,
                                                                       with_stream=with_stream)
        result["reactive_from_revocation"] = _reactive_in_window(revoked)
    logout()
    return result


def _emitter_socket() -> Any:
    """The websocket of Prefect's events publisher (EventsWorker's client), if connected."""
    from prefect.events.worker import EventsWorker

    for worker in list(getattr(EventsWorker, "_instances", {}).values()):
        socket = getattr(getattr(worker, "_client", None), "_websocket", None)
        if socket is not None:
            return socket
    return None


def _reactive_in_window(revoked: dict[str, Any]) -> int:
    before, after = revoked["reasons_before"], revoked.get("reasons_after")
    if after is None:
        return 0
    return sum(v - before.get(k, 0) for k, v in after.items() if k not in ("proactive", "forced"))
