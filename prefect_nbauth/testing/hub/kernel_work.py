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

import hashlib
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["flow_name", "run", "token_fingerprints"]


def flow_name(person: str, tag: str) -> str:
    return f"hub-{person}-{tag}"


def _provider() -> Any:
    from prefect_nbauth import _session
    from prefect_nbauth._jupyterhub import JupyterHubToken

    login = _session._current
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


def run(person: str, *, duration: float, emit_every: float = 0.25, rest_threads: int = 2,
        settle: float = 60.0) -> dict[str, Any]:
    """The load; see the module docstring. ``calls``/``failed`` count REST calls."""
    from prefect import get_client
    from prefect.events import emit_event

    import prefect_nbauth as nb

    token = _provider()
    refreshes_before = token.refreshes
    hub_requests_before = token.provider.requests
    tag = uuid.uuid4().hex[:8]
    name = flow_name(person, tag)
    prefix = f"hub.{person}.{tag}."
    with get_client(sync_client=True) as client:
        client.create_flow_from_name(name)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    emitted: list[str] = []
    received: list[str] = []

    def call_until_stopped() -> None:
        with get_client(sync_client=True) as client:  # opened once: must follow every refresh
            while not stop.is_set():
                try:
                    client.read_flow_by_name(name)
                    ok = True
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    ok = False
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                with lock:
                    counts["ok" if ok else "failed"] += 1
                _remember_current()
                stop.wait(0.05)

    def emit() -> None:
        n = 0
        while not stop.is_set():
            event = emit_event(event=f"{prefix}{n}", resource={"prefect.resource.id": f"hub.{person}"})
            if event is not None:
                with lock:
                    emitted.append(str(event.id))
            n += 1
            stop.wait(emit_every)

    def on_event(event: Any) -> None:
        with lock:
            received.append(str(event.id))

    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    stream = nb.stream_events(prefix=prefix, since=since).run_in_background(on_event)
    threads = [threading.Thread(target=call_until_stopped, daemon=True) for _ in range(rest_threads)]
    threads.append(threading.Thread(target=emit, daemon=True))
    began = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(duration)
    stop.set()
    for thread in threads:
        thread.join(60)
    ran = time.monotonic() - began
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        with lock:
            if set(emitted) <= set(received):
                break
        time.sleep(0.1)
    stream.stop()
    with lock:
        got = Counter(received)
        return {
            "person": person, "flow": name, "seconds": round(ran, 1),
            "calls": counts["ok"] + counts["failed"], "failed": counts["failed"], "errors": errors[:5],
            "emitted": len(emitted), "streamed": len(set(emitted) & set(got)),
            "duplicates": sum(n - 1 for n in got.values() if n > 1),
            "refreshes": token.refreshes - refreshes_before,
            "hub_requests": token.provider.requests - hub_requests_before,
            "fingerprints": token_fingerprints(),
        }
