"""An ASGI app served by uvicorn on a free 127.0.0.1 port, for the test gateways.

:class:`LoopbackServer` is the lifecycle that :class:`~prefect_nbauth.testing.CloudGateway`,
:class:`~prefect_nbauth.testing.RotatingGateway` (and users' own stand-ins) share: serve on a
socket bound before uvicorn starts (so the port is known and cannot be taken meanwhile), wait
until it accepts connections, and stop it, also on ``__exit__``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.websockets import WebSocket

__all__ = ["LoopbackServer"]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LoopbackServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a daemon thread.

    The lifecycle both test gateways share: ``_serve`` starts it and returns the
    port once it accepts connections; ``stop`` (also on ``__exit__``) ends it.
    """

    _http: httpx.AsyncClient | None
    _ws_tasks: set[asyncio.Task[Any]]

    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def start(self, timeout: float = 30) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _serve(self, app: Any, *, name: str, timeout: float) -> int:
        if self._thread is not None:
            raise RuntimeError(f"{name} already started")
        sock = self._sock = _free_socket()  # uvicorn serves on this very socket
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",  # supports the websocket denial-response extension
            ws_max_size=64 * 1024 * 1024,
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"{name} failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{name} did not start in time")
            self._thread.join(0.01)  # wait on the server thread, returns early if it dies
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        return port

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():  # pragma: no cover - stuck connections
            server.force_exit = True
            thread.join(10)
        self._server = None
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _proxy_app(self, routes: list[Any]) -> Starlette:
        """A Starlette app whose lifespan owns the upstream HTTP client and the relay tasks.

        Subclasses set ``self._http`` (None) and ``self._ws_tasks`` (a set) in ``__init__``.
        """

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(120.0), trust_env=False, follow_redirects=False
            )
            try:
                yield
            finally:
                for task in list(self._ws_tasks):
                    task.cancel()
                if self._http is not None:
                    await self._http.aclose()
                self._http = None

        return Starlette(routes=routes, lifespan=lifespan)

    async def _proxy_ws(self, websocket: WebSocket) -> None:
        """The websocket route: ``_proxy_ws_inner``, cancelled if the server stops first."""
        task = asyncio.current_task()
        if task is not None:
            self._ws_tasks.add(task)
        try:
            await self._proxy_ws_inner(websocket)
        finally:
            if task is not None:
                self._ws_tasks.discard(task)

    async def _proxy_ws_inner(self, websocket: WebSocket) -> None:  # pragma: no cover
        raise NotImplementedError
