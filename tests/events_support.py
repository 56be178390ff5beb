"""Helpers for the event-stream tests and benchmark (no tests in here).

* :func:`emit_events` writes events straight into a server's ``/api/events/in``
  websocket: about 3,000 events/s from one thread, far faster than ``emit_event``'s
  EventsWorker, which is what bursts need.
* :class:`SteadyEmitter` emits at a fixed rate from a thread, reconnecting when the
  server goes away, and records which ids it handed to the socket.
* :func:`persisted_events` reads back what the server has persisted (REST, keyset).
* :class:`Collector` gathers delivered events from a background stream and waits for
  conditions on them without sleeping blindly.
* :class:`CutProxy` is a loopback TCP proxy that cuts ``/events/out`` websockets in the
  middle of a frame (it parses the server's frames to find a point inside one).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import httpx
from websockets.sync.client import connect as sync_connect

from prefect_nbauth.testing import wait_until

__all__ = [
    "Collector",
    "CutProxy",
    "SteadyEmitter",
    "emit_events",
    "event_payload",
    "persisted_events",
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
    url = api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/events/in"
    ws = sync_connect(url, subprotocols=["prefect"], open_timeout=10, max_size=None)
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


# --------------------------------------------------------------------- proxy


class _FrameCutter:
    """Follows the server->client byte stream of a websocket and finds a cut inside a frame."""

    def __init__(self) -> None:
        self.in_headers = True
        self.buffer = b""
        self.header: bytes = b""
        self.remaining = 0  # payload bytes left in the current frame
        self.payload_len = 0

    def cut_point(self, chunk: bytes, armed: bool) -> int | None:
        """Advance over ``chunk``; if armed, the offset inside it to cut at (mid-payload)."""
        pos = 0
        if self.in_headers:
            self.buffer += chunk
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            consumed_before = len(self.buffer) - len(chunk)
            pos = end + 4 - consumed_before
            self.in_headers = False
            self.buffer = b""
        while pos < len(chunk):
            if self.remaining == 0:
                self.header += chunk[pos:pos + 1]
                pos += 1
                need = self._header_size()
                if need is None or len(self.header) < need:
                    continue
                self.payload_len = self._payload_length()
                self.remaining = self.payload_len
                self.header = b""
                continue
            available = min(self.remaining, len(chunk) - pos)
            if armed and self.payload_len >= 16 and self.remaining > 1:
                # Cut strictly inside this frame's payload.
                return pos + max(1, min(available, self.remaining - 1) // 2)
            self.remaining -= available
            pos += available
        return None

    def _header_size(self) -> int | None:
        if len(self.header) < 2:
            return None
        size = 2
        length = self.header[1] & 0x7F
        if length == 126:
            size += 2
        elif length == 127:
            size += 8
        if self.header[1] & 0x80:
            size += 4
        return size

    def _payload_length(self) -> int:
        length = self.header[1] & 0x7F
        if length == 126:
            return int.from_bytes(self.header[2:4], "big")
        if length == 127:
            return int.from_bytes(self.header[2:10], "big")
        return length


class CutProxy:
    """A loopback TCP proxy to ``upstream_port``; :meth:`cut` breaks websockets mid-frame."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port: int | None = None
        self.cuts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._armed = threading.Event()
        self._cut_done = threading.Condition()
        self._sockets: set[Any] = set()
        self._ready = threading.Event()

    def url(self, api_url: str) -> str:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(api_url)
        return urlunsplit((parts.scheme, f"127.0.0.1:{self.port}", parts.path, parts.query, ""))

    def start(self) -> "CutProxy":
        self._thread = threading.Thread(target=self._main, name="cut-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            for writer in list(self._sockets):
                self._loop.call_soon_threadsafe(writer.transport.abort)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "CutProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self) -> int:
        """Cut the next websocket frame that flows to a client; returns the cut count so far."""
        with self._cut_done:
            before = self.cuts
        self._armed.set()
        return before

    def wait_cut(self, before: int, timeout: float = 30) -> None:
        with self._cut_done:
            if not self._cut_done.wait_for(lambda: self.cuts > before, timeout):
                raise AssertionError("the proxy did not cut a websocket in time")

    # internals
    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        loop.run_until_complete(start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _handle(self, client_reader: Any, client_writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._sockets.update({client_writer, up_writer})
        first = await client_reader.read(65536)
        is_events_out = b"/events/out" in first.split(b"\r\n", 1)[0] and b"upgrade" in first.lower()
        up_writer.write(first)

        async def pump_up() -> None:
            while True:
                data = await client_reader.read(65536)
                if not data:
                    break
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def pump_down() -> None:
            cutter = _FrameCutter() if is_events_out else None
            while True:
                data = await up_reader.read(65536)
                if not data:
                    break
                if cutter is not None:
                    armed = self._armed.is_set()
                    cut = cutter.cut_point(data, armed)
                    if cut is not None:
                        self._armed.clear()
                        client_writer.write(data[:cut])
                        await client_writer.drain()
                        client_writer.transport.abort()  # RST: no close frame, mid-frame
                        up_writer.transport.abort()
                        with self._cut_done:
                            self.cuts += 1
                            self._cut_done.notify_all()
                        return
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        try:
            await asyncio.gather(pump_up(), pump_down(), return_exceptions=True)
        finally:
            for writer in (client_writer, up_writer):
                self._sockets.discard(writer)
                writer.transport.abort()


