"""A loopback TCP proxy that cuts websockets in the middle of a frame (no tests in here).

:class:`CutProxy` forwards to a real server and, when armed, cuts an ``/events/out`` (or
``/logs/out``) websocket inside a frame: it parses the server's frames to find a point
inside one. The event helpers the tests also use live in :mod:`prefect_nbauth.testing.events`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["CutProxy"]


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

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1",
                 socket_path: str = "/events/out") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.socket_path = socket_path.encode()  # the websocket whose frames are cut
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
        is_events_out = self.socket_path in first.split(b"\r\n", 1)[0] and b"upgrade" in first.lower()
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


