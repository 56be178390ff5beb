"""Loopback HTTP servers that answer what a test scripts: a stand-in Prefect, an echoing host.

:class:`FakeServer` is a real HTTP server on 127.0.0.1 (threads, no mocks) whose every
answer comes from ``route(method, path, headers)``; :func:`prefect_like` is a route that
answers like a Prefect server enforcing an auth string, with hooks to misbehave.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

from constants import AUTH_STRING

__all__ = ["Answer", "FakeServer", "prefect_like"]

AUTH = AUTH_STRING

Answer = tuple[int, dict[str, str], "bytes | Iterable[bytes]"]


class _Listener(ThreadingHTTPServer):
    request_queue_size = 128  # the audit opens ~30 connections at once; 5 would drop SYNs


class FakeServer:
    """A real HTTP server on 127.0.0.1 that answers what ``route(method, path, headers)`` says.

    Every request is recorded as ``(method, path, headers)`` in :attr:`requests`.
    """

    def __init__(self, route: Callable[[str, str, dict[str, str]], Answer] | None = None) -> None:
        self.route = route or (lambda m, p, h: (404, {}, b"{}"))
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                headers = {k: v for k, v in self.headers.items()}
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, headers))
                status, extra, body = server.route(self.command, self.path, headers)
                self.send_response(status)
                chunked = not isinstance(body, (bytes, bytearray))
                for name, value in extra.items():
                    self.send_header(name, value)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if chunked:
                        for chunk in body:
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: that is the point of some tests

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self._httpd = _Listener(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def seen(self) -> str:
        """Everything that reached this server, as one string to search for secrets."""
        return json.dumps(self.requests)


def prefect_like(auth: str | None = AUTH, *, version: str = "3.9.1",
                 override: Callable[[str, str, dict[str, str]], Answer | None] | None = None):
    """A route that answers like a Prefect server enforcing ``auth`` (None: open)."""

    def route(method: str, path: str, headers: dict[str, str]) -> Answer:
        if override is not None and (answer := override(method, path, headers)) is not None:
            return answer
        json_type = {"content-type": "application/json"}
        if path == "/ui-settings":
            return 200, json_type, json.dumps({"auth": "BASIC" if auth else None}).encode()
        if path in ("/api/health", "/api/ready"):
            return 200, json_type, b"true"
        expected = "Basic " + base64.b64encode(auth.encode()).decode() if auth else None
        if expected and headers.get("Authorization") != expected:
            return 401, json_type, b'{"exception_message": "Unauthorized"}'
        if path == "/api/admin/version":
            return 200, json_type, json.dumps(version).encode()
        return 404, json_type, b'{"detail": "Not Found"}'

    return route


