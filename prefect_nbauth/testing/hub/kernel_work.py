"""What each person's kernel does in the Hub tests and ``benchmarks/hub_team.py``.

Runs INSIDE a kernel of a person's single-user server, after ``%prefect_login --hub``:
``run(person, duration=…)`` makes REST calls that name the person in their path
(``GET /api/flows/name/hub-<person>-…``, so the gateway's access log shows whose token
each one carried), emits events and streams them back with
``prefect_nbauth.stream_events``, for ``duration`` seconds; then waits until the stream
has every emitted event (or a timeout) and returns the figures as a dict. Nothing here
imports the test-only extras: the Hub's environment has only the project.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from .._wait import wait_until

__all__ = ["flow_name", "run", "token_fingerprints"]


def flow_name(person: str, tag: str) -> str:
    return f"hub-{person}-{tag}"


def _provider() -> Any:
    from prefect_nbauth.session import JupyterHubToken, current_login

    login = current_login()
    assert login is not None, "not logged in: run %prefect_login --hub first"
    for token in login.tokens.values():
        if isinstance(token.provider, JupyterHubToken):
            return token
    raise AssertionError("the login does not use JupyterHubToken")


def token_fingerprints() -> list[str]:
    """SHA-256 prefixes of every access token this kernel received from the Hub (never the tokens)."""
    return sorted(_SEEN)


_SEEN: set[str] = set()


def _remember_current() -> None:
    value = _provider().token.value.reveal()
    _SEEN.add(hashlib.sha256(value.encode()).hexdigest()[:16])


class _Work:
    """What the load's threads share: the figures under one lock, and the stop signal."""

    def __init__(self, person: str, name: str, prefix: str, emit_every: float, events: int | None) -> None:
        self.person, self.name, self.prefix, self.emit_every = person, name, prefix, emit_every
        self.events = events  # emit exactly this many (None: until stopped)
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.emitted: list[str] = []
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def call_until_stopped(self) -> None:
        from prefect import get_client

        with get_client(sync_client=True) as client:  # opened once: must follow every refresh
            while not self.stop.is_set():
                try:
                    client.read_flow_by_name(self.name)
                    ok = True
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    ok = False
                    with self.lock:
                        self.errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                with self.lock:
                    self.counts["ok" if ok else "failed"] += 1
                _remember_current()
                self.stop.wait(0.05)

    def emit(self) -> None:
        from prefect.events import emit_event

        n = 0
        while not self.stop.is_set() and (self.events is None or n < self.events):
            event = emit_event(event=f"{self.prefix}{n}", resource={"prefect.resource.id": f"hub.{self.person}"})
            if event is not None:
                with self.lock:
                    self.emitted.append(str(event.id))
            n += 1
            self.stop.wait(self.emit_every)

    def run_flows(self) -> None:
        """Tiny @flow runs one after another: each is a burst of API calls of Prefect's own."""
        from prefect import flow

        @flow(name=f"{self.name}-burst", log_prints=False, persist_result=False)
        def burst() -> int:
            return 1

        while not self.stop.is_set():
            try:
                burst()
                ok = True
            except Exception as exc:  # noqa: BLE001 - counted and reported
                ok = False
                with self.lock:
                    self.errors.append(f"flow: {type(exc).__name__}: {str(exc)[:300]}")
            with self.lock:
                self.counts["flow ok" if ok else "flow failed"] += 1

    def on_event(self, event: Any) -> None:
        with self.lock:
            self.received.append(str(event.id))

    def all_received(self) -> bool:
        with self.lock:
            return set(self.emitted) <= set(self.received)


def run(person: str, *, duration: float, emit_every: float = 0.25, rest_threads: int = 2,
        events: int | None = None, flows: bool = False, settle: float = 60.0) -> dict[str, Any]:
    """The load; see the module docstring. ``calls``/``failed`` count REST calls and flow runs
    (``flows``: a thread running tiny flows); ``events``: emit exactly that many."""
    from prefect import get_client

    from prefect_nbauth.events import stream_events

    token = _provider()
    refreshes_before, hub_requests_before = token.refreshes, token.provider.requests
    tag = uuid.uuid4().hex[:8]
    work = _Work(person, flow_name(person, tag), f"hub.{person}.{tag}.", emit_every, events)
    with get_client(sync_client=True) as client:
        client.create_flow_from_name(work.name)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    stream = stream_events(prefix=work.prefix, since=since).run_in_background(work.on_event)
    threads = [threading.Thread(target=work.call_until_stopped, daemon=True) for _ in range(rest_threads)]
    threads.append(threading.Thread(target=work.emit, daemon=True))
    if flows:
        threads.append(threading.Thread(target=work.run_flows, daemon=True))
    began = time.monotonic()
    for thread in threads:
        thread.start()
    work.stop.wait(duration)
    work.stop.set()
    for thread in threads:
        thread.join(60)
    ran = time.monotonic() - began
    with contextlib.suppress(TimeoutError):  # what did not arrive is counted below
        wait_until(work.all_received, settle, "every event to arrive", interval=0.1)
    stream.stop()
    with work.lock:
        got = Counter(work.received)
        return {
            "person": person, "flow": work.name, "seconds": round(ran, 1),
            "calls": sum(work.counts.values()), "failed": work.counts["failed"] + work.counts["flow failed"],
            "flow_runs": work.counts["flow ok"] + work.counts["flow failed"], "errors": work.errors[:5],
            "emitted": len(work.emitted), "streamed": len(set(work.emitted) & set(got)),
            "duplicates": sum(n - 1 for n in got.values() if n > 1),
            "refreshes": token.refreshes - refreshes_before,
            "hub_requests": token.provider.requests - hub_requests_before,
            "fingerprints": token_fingerprints(),
        }


_IDLE: list[Any] = []


def keep_streaming(person: str) -> None:
    """An events stream left open (what an idle notebook with a live table has)."""
    from prefect_nbauth.events import stream_events

    _IDLE.append(stream_events(prefix=f"hub.{person}.idle.").run_in_background(lambda event: None))
