"""Events in and out of a real Prefect server, for tests and benchmarks of event streams.

* :func:`emit_events` writes events straight into a server's ``/api/events/in``
  websocket: about 3,000 events/s from one thread, far faster than ``emit_event``'s
  EventsWorker, which is what bursts need.
* :class:`SteadyEmitter` emits at a fixed rate from a thread, reconnecting when the
  server goes away, and records which ids it handed to the socket.
* :func:`persisted_events` reads back what the server has persisted (REST, keyset).
* :class:`Collector` gathers delivered events from a background stream and waits for
  conditions on them without sleeping blindly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import httpx
from websockets.sync.client import connect as sync_connect
from websockets.typing import Subprotocol

from .._urls import ws_url
from ._wait import wait_until

__all__ = [
    "Collector",
    "SteadyEmitter",
    "emit_events",
    "event_payload",
    "persisted_events",
    "persisted_ids_settled",
]


def event_payload(name: str, index: int, *, resource: str | None = None,
                  related: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(timezone.utc).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource or f"nbauth.test.{index % 7}"},
        "related": related or [],
        "payload": {"i": index},
    }


def _events_in(api_url: str, auth_string: str | None) -> Any:
    url = ws_url(api_url, "events/in")
    ws = sync_connect(url, subprotocols=[Subprotocol("prefect")], open_timeout=10, max_size=None)
    ws.send(json.dumps({"type": "auth", "token": auth_string}))
    answer = json.loads(ws.recv(timeout=10))
    if answer.get("type") != "auth_success":
        ws.close()
        raise RuntimeError(f"events/in refused: {answer}")
    return ws


def emit_events(api_url: str, auth_string: str | None, name: str, count: int, *,
                make: Callable[[str, int], dict[str, Any]] | None = None,
                sent_times: dict[str, float] | None = None) -> list[str]:
    """Send ``count`` events over one ``/events/in`` socket; return their ids in order."""
    make = make or event_payload
    ids: list[str] = []
    ws = _events_in(api_url, auth_string)
    try:
        for index in range(count):
            event = make(name, index)
            ws.send(json.dumps(event))
            ids.append(event["id"])
            if sent_times is not None:
                sent_times[event["id"]] = time.time()
    finally:
        ws.close()
    return ids


class SteadyEmitter:
    """Emit ``rate`` events/s on a thread until stopped; survives server restarts.

    ``auth`` is a callable returning the auth string to use for each (re)connect, so a
    test can change it with the server's. ``sent`` holds the ids handed to a socket
    (the server may still lose some of them if it is killed).
    """

    def __init__(self, api_url: str, auth: Callable[[], str | None], name: str, rate: float) -> None:
        self.api_url = api_url
        self.auth = auth
        self.name = name
        self.rate = rate
        self.sent: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-emitter", daemon=True)

    def start(self) -> "SteadyEmitter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_sent(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: len(self.sent) >= count, timeout, what=f"{count} events sent")

    def _run(self) -> None:
        index = 0
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                ws = _events_in(self.api_url, self.auth())
            except Exception:  # noqa: BLE001 - server down: try again shortly
                self.failures += 1
                self._stop.wait(0.2)
                continue
            try:
                while not self._stop.is_set():
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    next_at += period
                    event = event_payload(self.name, index)
                    ws.send(json.dumps(event))
                    self.sent.append(event["id"])
                    index += 1
            except Exception:  # noqa: BLE001
                self.failures += 1
            finally:
                try:
                    ws.close()
                except Exception:  # noqa: BLE001
                    pass


def persisted_events(api_url: str, headers: dict[str, str], prefix: str,
                     since: datetime | None = None) -> list[dict[str, Any]]:
    """Every persisted event whose name starts with ``prefix`` (keyset pages of 50)."""
    since = since or datetime.now(timezone.utc) - timedelta(hours=1)
    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    found: dict[str, dict[str, Any]] = {}
    cursor = since.isoformat()
    with httpx.Client(headers=headers, timeout=30) as client:
        while True:
            body = {"filter": {"event": {"prefix": [prefix]}, "occurred": {"since": cursor, "until": until},
                               "order": "ASC"}, "limit": 50}
            response = client.post(f"{api_url}/events/filter", json=body)
            response.raise_for_status()
            events = response.json()["events"]
            for event in events:
                found[event["id"]] = event
            if len(events) < 50:
                return list(found.values())
            if events[-1]["occurred"] == cursor:
                raise AssertionError("more than 50 events share one timestamp; use offsets")
            cursor = events[-1]["occurred"]


def persisted_ids_settled(api_url: str, headers: dict[str, str], prefix: str, since: datetime,
                          *, quiet: float = 2.0, timeout: float = 90) -> set[str]:
    """The persisted ids once the server has stopped persisting new ones for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    last: set[str] = set()
    stable_since = time.monotonic()
    while True:
        ids = {e["id"] for e in persisted_events(api_url, headers, prefix, since)}
        if ids != last:
            last, stable_since = ids, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return ids
        if time.monotonic() > deadline:
            raise AssertionError("the server kept persisting new events")
        time.sleep(0.25)


class Collector:
    """Thread-safe sink for ``run_in_background``: ``collector.add`` is the on_event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.states: list[str] = []
        self._cond = threading.Condition()

    def add(self, event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def on_change(self, stream: Any) -> None:
        state = stream.state.value
        with self._cond:
            if not self.states or self.states[-1] != state:
                self.states.append(state)
            self._cond.notify_all()

    def ids(self) -> list[str]:
        with self._cond:
            return [str(e.id) for e in self.events]

    def duplicates(self) -> dict[str, int]:
        return {k: v for k, v in Counter(self.ids()).items() if v > 1}

    def wait_for(self, predicate: Callable[["Collector"], bool], timeout: float, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {message or predicate}")
                self._cond.wait(min(remaining, 0.5))

    def wait_ids(self, ids: Iterable[str], timeout: float) -> None:
        wanted = set(ids)
        self.wait_for(lambda c: wanted <= {str(e.id) for e in c.events}, timeout,
                      f"{len(wanted)} events to be delivered")
