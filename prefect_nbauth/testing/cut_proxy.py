"""A loopback TCP proxy that breaks websockets on purpose and counts requests (no tests in here).

:class:`CutProxy` forwards to a real server and

- when armed, cuts an ``/events/out`` (or ``/logs/out``) websocket inside a frame: it
  parses the server's frames to find a point inside one;
- with ``drop=MARKER``, never forwards a server frame whose payload contains ``MARKER``
  (the connection stays up): an item the socket never carries, as a second replica
  with in-memory messaging or a broker that loses a message would produce;
- counts every HTTP request that passes through it (``requests``), websocket
  upgrades included (``upgrades``), for measurements of what a client sends.

The event helpers the tests also use live in :mod:`prefect_nbauth.testing.events`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["CutProxy"]


class _RequestCounter:
    """Follows a client->server HTTP/1.1 byte stream and reports each request head.

    Bodies are skipped by ``Content-Length`` or chunked encoding; after a websocket
    upgrade the rest of the stream is frames, not requests, and is ignored.
    """

    def __init__(self, record: Any) -> None:
        self._record = record  # called with (method, path, is_upgrade)
        self._buffer = b""
        self._body_left = 0
        self._chunked = False
        self._upgraded = False

    def feed(self, data: bytes) -> None:
        if self._upgraded:
            return
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one piece (a body part, a chunk, a head); False when more bytes are needed."""
        if self._body_left:
            taken = min(self._body_left, len(self._buffer))
            self._buffer, self._body_left = self._buffer[taken:], self._body_left - taken
            return bool(taken) and not self._body_left
        if self._chunked:
            return self._chunk()
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        upgrade = headers.get("upgrade") == "websocket"
        self._record(parts[0], parts[1] if len(parts) > 1 else "", upgrade)
        if upgrade:
            self._upgraded = True
            return False
        self._chunked = "chunked" in headers.get("transfer-encoding", "")
        self._body_left = int(headers.get("content-length") or 0)
        return True

    def _chunk(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(self._buffer[:end].split(b";")[0] or b"0", 16)
        if size == 0:  # last chunk: no trailers from the clients measured here
            if len(self._buffer) < end + 4:
                return False
            self._buffer, self._chunked = self._buffer[end + 4:], False
            return True
        if len(self._buffer) < end + 2 + size + 2:
            return False
        self._buffer = self._buffer[end + 2 + size + 2:]
        return True


def _frame_size(buffer: bytes) -> tuple[int, int] | None:
    """(header size, payload size) of the websocket frame at the start of ``buffer``, if known."""
    if len(buffer) < 2:
        return None
    size, length = 2, buffer[1] & 0x7F
    if length == 126:
        size += 2
    elif length == 127:
        size += 8
    if buffer[1] & 0x80:
        size += 4
    if len(buffer) < size:
        return None
    if length == 126:
        length = int.from_bytes(buffer[2:4], "big")
    elif length == 127:
        length = int.from_bytes(buffer[2:10], "big")
    return size, length


class _FrameDropper:
    """Follows the server->client bytes of a websocket and leaves out frames containing a marker.

    Only whole, unfragmented text frames are dropped; the upgrade request had its
    ``Sec-WebSocket-Extensions`` removed, so frames are not compressed and a frame
    left out does not break the ones after it.
    """

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.in_headers = True
        self.buffer = b""
        self.dropped = 0

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to forward for ``chunk`` (complete frames only; the rest waits)."""
        self.buffer += chunk
        out: list[bytes] = []
        if self.in_headers:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            out.append(self.buffer[:end + 4])
            self.buffer = self.buffer[end + 4:]
            self.in_headers = False
        while True:
            sizes = _frame_size(self.buffer)
            if sizes is None or len(self.buffer) < sizes[0] + sizes[1]:
                break
            total = sizes[0] + sizes[1]
            frame, self.buffer = self.buffer[:total], self.buffer[total:]
            text_and_final = frame[0] == 0x81
            if text_and_final and self.marker in frame[sizes[0]:]:
                self.dropped += 1
                continue
            out.append(frame)
        return b"".join(out)


def _without_extensions(head: bytes) -> bytes:
    """The upgrade request without ``Sec-WebSocket-Extensions`` (no compression negotiated)."""
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"sec-websocket-extensions:"))


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
                sizes = _frame_size(self.header)
                if sizes is None:
                    continue
                self.payload_len = self.remaining = sizes[1]
                self.header = b""
                continue
            available = min(self.remaining, len(chunk) - pos)
            if armed and self.payload_len >= 16 and self.remaining > 1:
                # Cut strictly inside this frame's payload.
                return pos + max(1, min(available, self.remaining - 1) // 2)
            self.remaining -= available
            pos += available
        return None


class CutProxy:
    """A loopback TCP proxy to ``upstream_port``.

    :meth:`arm` cuts the next ``socket_path`` websocket mid-frame; ``drop=MARKER``
    leaves out every ``socket_path`` frame whose payload contains ``MARKER``
    (``dropped`` counts them); ``requests`` lists ``(method, path)`` of every HTTP
    request forwarded, websocket upgrades included (``upgrades`` lists those alone).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1",
                 socket_path: str = "/events/out", drop: bytes | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.socket_path = socket_path.encode()  # the websocket whose frames are cut
        self.drop = drop
        self.port: int | None = None
        self.cuts = 0
        self._dropped: list[_FrameDropper] = []
        self._requests: list[tuple[str, str, bool]] = []
        self._requests_lock = threading.Lock()
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

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every HTTP request forwarded so far, websocket upgrades included."""
        with self._requests_lock:
            return [(method, path) for method, path, _ in self._requests]

    @property
    def upgrades(self) -> list[str]:
        """The path of every websocket upgrade request forwarded so far."""
        with self._requests_lock:
            return [path for _, path, upgrade in self._requests if upgrade]

    @property
    def dropped(self) -> int:
        """Frames left out because they contained ``drop``."""
        return sum(dropper.dropped for dropper in list(self._dropped))

    def _record(self, method: str, path: str, upgrade: bool) -> None:
        with self._requests_lock:
            self._requests.append((method, path, upgrade))

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
        counter = _RequestCounter(self._record)
        first = await client_reader.read(65536)
        # The whole request head, to look at it (only for plain HTTP: TLS bytes pass as they are).
        while b"\r\n\r\n" not in first and first[:1].isalpha() and len(first) < 65536:
            more = await client_reader.read(65536)
            if not more:
                break
            first += more
        is_events_out = self.socket_path in first.split(b"\r\n", 1)[0] and b"upgrade" in first.lower()
        dropper = _FrameDropper(self.drop) if is_events_out and self.drop is not None else None
        end = first.find(b"\r\n\r\n")
        if dropper is not None and end >= 0:
            first = _without_extensions(first[:end]) + first[end:]
            self._dropped.append(dropper)
        counter.feed(first)
        up_writer.write(first)

        async def pump_up() -> None:
            while True:
                data = await client_reader.read(65536)
                if not data:
                    break
                counter.feed(data)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def pump_down() -> None:
            cutter = _FrameCutter() if is_events_out else None
            while True:
                data = await up_reader.read(65536)
                if not data:
                    break
                if dropper is not None:
                    data = dropper.feed(data)
                    if not data:
                        continue
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


