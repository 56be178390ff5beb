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

from ._nginx import cut_connections

HEADER = "X-Gateway-Token"


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
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


def run(cfg: dict[str, Any], *, duration: float, rest_threads: int = 4, with_flow: bool = True,
        with_stream: bool = True, emit_every: float = 0.1, revoke_at: float | None = None,
        settle: float = 120.0) -> dict[str, Any]:
    from prefect import flow, get_client
    from prefect.events import emit_event

    import prefect_nbauth as nb
    from prefect_nbauth import _session

    provider = nb.OAuth2ClientCredentials(cfg["token_url"], cfg["client_id"], cfg["client_secret"])
    nb.login(cfg["api_url"], auth_string=cfg["auth_string"], headers={HEADER: provider})
    assert _session._current is not None, "login() returned without a session"
    token = _session._current.tokens[f"header {HEADER}"]
    started_refreshes = token.refreshes
    started_reasons = dict(token.reasons)

    failures = _EmitFailures()
    # Prefect's services log there, and prefect._internal does not propagate.
    logging.getLogger("prefect._internal.concurrency").addHandler(failures)
    prefix = f"nbauth.idp.{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(timezone.utc) - timedelta(seconds=5)
    stop = threading.Event()
    lock = threading.Lock()
    calls = {"ok": 0, "failed": 0}
    errors: list[str] = []
    ok_times: list[float] = []
    emitted: dict[str, float] = {}   # event id -> when emitted
    streamed: dict[str, float] = {}  # event id -> when received
    revoked: dict[str, Any] = {}

    def record(ok: bool, what: str = "") -> None:
        with lock:
            calls["ok" if ok else "failed"] += 1
            if ok:
                ok_times.append(time.time())
            elif len(errors) < 5:
                errors.append(what)

    def rest_worker() -> None:
        with get_client(sync_client=True) as client:  # opened once, across every rotation
            while not stop.is_set():
                try:
                    client.read_flows(limit=1)
                    record(True)
                except Exception as exc:  # noqa: BLE001 - counted
                    record(False, f"{type(exc).__name__}: {str(exc)[:200]}")

    @flow(name="nbauth-idp-load", persist_result=False)
    def long_flow() -> int:
        n = 0
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                try:
                    client.read_flows(limit=1)
                    record(True)
                except Exception as exc:  # noqa: BLE001
                    record(False, f"flow {type(exc).__name__}: {str(exc)[:200]}")
                n += 1
                stop.wait(0.1)
        return n

    flow_state: dict[str, Any] = {}

    def flow_runner() -> None:
        state = long_flow(return_state=True)
        flow_state["state"] = state.type.value

    def emitter() -> None:
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            event = emit_event(event=f"{prefix}.tick", resource={"prefect.resource.id": f"{prefix}.r"},
                               payload={"i": i})
            if event is not None:
                with lock:
                    emitted[str(event.id)] = time.time()
            i += 1
            next_at += emit_every
            stop.wait(max(0.0, next_at - time.monotonic()))

    def on_event(event: Any) -> None:
        with lock:
            streamed.setdefault(str(event.id), time.time())

    stream = nb.stream_events(prefix=prefix, since=t0).run_in_background(on_event) if with_stream else None
    threads = [threading.Thread(target=rest_worker, daemon=True) for _ in range(rest_threads)]
    if with_flow:
        threads.append(threading.Thread(target=flow_runner, daemon=True))
    threads.append(threading.Thread(target=emitter, daemon=True))
    begin = time.monotonic()
    for t in threads:
        t.start()
    if revoke_at is not None:
        stop.wait(revoke_at)
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
        rest_expected = bool(rest_threads or with_flow)

        def recovered() -> bool:
            with lock:
                rest_ok = not rest_expected or (ok_times and ok_times[-1] > cut)
                stream_ok = not with_stream or any(emitted.get(i, 0) > cut for i in streamed)
            socket = _emitter_socket()  # the emitter reconnected past the gateway
            return bool(rest_ok) and stream_ok and socket is not None and socket is not socket_before

        def watch() -> None:
            if _wait(recovered, duration):
                # The refreshes the revocation itself cost: the reactive ones until both were back.
                revoked["reasons_after"] = dict(token.reasons)
                revoked["back"] = time.time()

        threads.append(threading.Thread(target=watch, daemon=True))
        threads[-1].start()
    stop.wait(max(0.0, duration - (time.monotonic() - begin)))
    stop.set()
    for t in threads:
        t.join(60)
    load_seconds = time.monotonic() - begin
    refreshes_during_load = token.refreshes - started_refreshes
    reasons = {k: v - started_reasons.get(k, 0) for k, v in token.reasons.items()}

    # Settle: every emitted event stored by the server and delivered by the stream.
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60)
    stored: set[str] = set()

    def all_stored() -> bool:
        stored.update(_stored_ids(prefix, t0))
        return set(emitted) <= stored

    _wait(all_stored, settle)
    if stream is not None:
        _wait(lambda: set(emitted) <= set(streamed), settle)
        stream.stop()

    result: dict[str, Any] = {
        "calls": calls["ok"] + calls["failed"],
        "failed": calls["failed"],
        "errors": errors,
        "refreshes": refreshes_during_load,
        "proactive": reasons.get("proactive", 0),
        "reactive": refreshes_during_load - reasons.get("proactive", 0) - reasons.get("forced", 0),
        "reasons": reasons,
        "emit_failures": failures.count,
        "emitted": len(emitted),
        "stored": len(set(emitted) & stored),
        "streamed": len(set(emitted) & set(streamed)),
        "flow": flow_state.get("state"),
        "load_seconds": round(load_seconds, 1),
        "recovered_after_revocation_s": None,
        "reactive_from_revocation": 0,
    }
    if revoked:
        at = revoked["at"]
        rest_back = min((t for t in ok_times if t > revoked["cut_done"]), default=None)
        stream_back = min((streamed[i] for i, when in emitted.items() if when > revoked["cut_done"]
                           and i in streamed), default=None)
        backs = [b for b in (rest_back if (rest_threads or with_flow) else at,
                             stream_back if with_stream else revoked.get("back")) if b is not None]
        if len(backs) == 2 and "back" in revoked:
            result["recovered_after_revocation_s"] = round(max(backs) - at, 3)
        result["reactive_from_revocation"] = _reactive_in_window(revoked)
    nb.logout()
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
