"""One stream engine for events and logs: a websocket for latency, REST reads for completeness.

Both of Prefect's live sockets (``/events/out``, ``/logs/out``) give each
subscriber a queue of 256 and drop new items when it is full, so neither can be
trusted alone. :class:`StreamEngine` holds what the two streams share, once:

- the lifecycle on one event loop (run, stop from any thread, end on an error);
- the socket loop: the credential in force *now* on every (re)connect (so a
  rotated token or a gateway provider's new header is presented by
  construction), the auth message, the filter frame, receiving, reconnecting
  with backoff, one refresh per rejection;
- the reader loop: a REST pass when woken (the socket connected, a product
  saw a reason) or when the product's interval since the last pass ran out,
  brought forward (never put off) when a product asks for a pass sooner;
  retried with backoff, run by the same credential keeper;
- change notification (``on_change`` at most four times a second for
  counters), the consumer of ``run_in_background`` and the outbox.

A product (``events/_engine.py``, ``logs/_engine.py``) says what differs: the
socket path and filter frame (:meth:`_socket_filter`), what a frame means
(:meth:`_on_frame`), the REST reads (:meth:`_make_rest`, :meth:`_read_pass`),
how items are keyed and ordered, its state and counters.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from .._exceptions import PrefectAuthError
from .._redaction import scrub_text
from ._cadence import Schedule
from ._credential import CredentialKeeper
from ._failures import AuthRejected, Retryable, classify_closed, describe, wait_for
from ._options import EngineOptions
from ._outbox import END, Outbox
from ._reader import RestReader
from ._subscription import open_socket, tls_settings

__all__ = ["StreamEngine", "loads"]

_NOTIFY_INTERVAL = 0.25  # on_change at most this often for counter-only changes
_HEALTHY_AFTER = 10.0  # a connection that lasted this long resets the backoff


def loads() -> Callable[[Any], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with prefect
        import json

        return json.loads


class StreamEngine:
    """All of one stream's moving parts; runs on one event loop.

    The public shell (:class:`~._shell.Stream`) drives ``run()``, ``outbox``,
    ``request_stop()``, ``wait_finished()``, ``state``, ``stats()``, ``error``,
    ``consumer`` and ``listeners``.
    """

    label = "stream"  # names the stream in messages ("event stream", "log stream")
    restart = "stream_events(...)"  # what starts a new one
    callback = "on_event"  # what run_in_background's consumer is called in messages
    socket_path = "/events/out"
    read_label = "reconciliation"  # names the REST side in stats.last_error
    logger = logging.getLogger("prefect_nbauth")

    def __init__(self, sfilter: Any, api_url: str, options: EngineOptions) -> None:
        self.sfilter = sfilter
        self.api_url = api_url
        self.opt = options
        self.outbox = Outbox(options.buffer)
        self.error: BaseException | None = None
        self.listeners: list[Callable[[], None]] = []
        self.consumer: Callable[[Any], None] | None = None  # run_in_background's callback
        self._finished = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._kick: asyncio.Event | None = None  # the reader loop looks at its schedule again
        self._schedule = Schedule()
        self._stop_requested = False

        self._stopped = False
        self._ws_up = False
        self._ever_connected = False
        self._socket_failures = 0  # connection attempts that failed (REST alone meanwhile)
        self._catching_up = False
        self._last_state: Any = None
        self._last_notify = 0.0
        self._notify_handle: asyncio.TimerHandle | None = None

        self.c_live = self.c_reconciled = self.c_duplicates = self.c_malformed = 0
        self.c_reconnects = self.c_late = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.connected_since: datetime | None = None

        self.keeper: CredentialKeeper | None = None
        self.rest: RestReader | None = None
        self._socket: Any = None
        self._ssl: Any = None
        self._loads = loads()

    # ------------------------------------------------------ product hooks
    @property
    def state(self) -> Any:
        raise NotImplementedError

    def stats(self) -> Any:
        raise NotImplementedError

    def _make_rest(self, verify: Any) -> RestReader:
        raise NotImplementedError

    def _socket_filter(self) -> dict[str, Any]:
        """The filter frame sent after the auth message, built at each connect."""
        raise NotImplementedError

    async def _on_frame(self, raw: Any) -> None:
        raise NotImplementedError

    async def _read_pass(self) -> None:
        """One REST pass (reconciliation, a read round); raises Retryable to be retried."""
        raise NotImplementedError

    def _read_interval(self) -> float:
        """Seconds from the end of one pass to the next, unless woken or brought forward.

        Asked as a pass begins and as it ends (the shorter counts), so no side effects.
        """
        raise NotImplementedError

    async def _before_socket(self, backoff: Iterator[float]) -> bool:
        """Whether the server has a live socket for this stream (False: REST only)."""
        return True

    def _upgrade_refused(self, exc: AuthRejected) -> bool:
        """True when a refused upgrade means "no such socket" rather than "bad credential"."""
        return False

    def _on_connected(self) -> None:
        """The product's bookkeeping when a socket is up (before readers are woken)."""

    async def _after_connect(self) -> None:
        """What the product reads once a socket is up, before its frames are handled."""

    def _on_disconnected(self) -> None:
        """The product's bookkeeping when a socket went down (``_ws_up`` still says it was up)."""

    def _before_pass(self) -> None:
        """Called as a pass begins, before the credential is read."""

    def _pass_failed(self) -> None:
        """Called when a pass ended with a Retryable (before the backoff)."""

    # ---------------------------------------------------------------- state
    def _record_error(self, message: str) -> None:
        self.last_error = scrub_text(message)  # the one egress: others' text may quote a secret
        self.last_error_at = datetime.now(timezone.utc)
        self.logger.info("%s: %s", self.label, message)
        self._changed()

    def _changed(self, force: bool = False) -> None:
        if not self.listeners or self._loop is None:
            return
        now = time.monotonic()
        if force or self.state != self._last_state or now - self._last_notify >= _NOTIFY_INTERVAL:
            if self._notify_handle is not None:
                self._notify_handle.cancel()
                self._notify_handle = None
            self._notify()
        elif self._notify_handle is None:
            self._notify_handle = self._loop.call_later(
                _NOTIFY_INTERVAL - (now - self._last_notify), self._notify)

    def _notify(self) -> None:
        self._notify_handle = None
        self._last_state = self.state
        self._last_notify = time.monotonic()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a widget callback must not end the stream
                self.logger.exception("on_change callback raised")

    def _malformed(self) -> None:
        self.c_malformed += 1
        self._changed()

    def _socket_lost(self) -> bool:
        """The websocket is down after it was up, or cannot be opened: REST alone tells what is new.

        (Not while the first connection is being opened: the first pass covers the start.)
        """
        return not self._ws_up and (self._ever_connected or self._socket_failures > 0)

    def _wake_reader(self) -> None:
        """A pass now (or as soon as the one running ends)."""
        self._schedule.wake()
        if self._kick is not None:
            self._kick.set()

    def _pass_within(self, seconds: float) -> None:
        """The next pass at most ``seconds`` from now: brought forward, never put off."""
        if self._schedule.within(seconds) and self._kick is not None:
            self._kick.set()

    # ------------------------------------------------------------ lifecycle
    def request_stop(self) -> None:
        """Ask the stream to stop; safe from any thread, and from a finalizer."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def wait_finished(self, timeout: float | None) -> bool:
        return self._finished.wait(timeout)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self._record_error(describe(exc))
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self) -> None:
        """Run until stopped (request_stop) or ended by an error."""
        loop = self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        # The first pass runs at once, beside the first connect: it catches up from `since`
        # and tells whether this is Prefect at all.
        self._kick = asyncio.Event()
        self._wake_reader()
        self.outbox.bind(loop)
        verify, self._ssl = tls_settings()
        self.keeper = CredentialKeeper(self.api_url, wait=self.opt.credential_wait,
                                       on_wait=self._record_error, what=self.label, restart=self.restart)
        self.rest = self._make_rest(verify)
        tasks = [loop.create_task(self._guard(self._socket_loop())),
                 loop.create_task(self._guard(self._reader_loop()))]
        if self.consumer is not None:
            tasks.append(loop.create_task(self._guard(self._consume())))
        if self._stop_requested:
            self._stop_event.set()
        try:
            await self._stop_event.wait()
        finally:
            await self._wind_down(tasks)

    async def _wind_down(self, tasks: list[asyncio.Task[None]]) -> None:
        pending = set(tasks)
        while pending:  # re-cancel: third-party code may swallow one cancellation
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        if self._socket is not None:
            await self._socket.close()
        if self.rest is not None:
            await self.rest.aclose()
        self._stopped = True
        self._ws_up = False
        self.outbox.close()
        if self._notify_handle is not None:
            self._notify_handle.cancel()
        self._notify()
        self._finished.set()

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except PrefectAuthError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must end the stream visibly
            self.logger.exception("%s failed", self.label)
            self._fail(exc)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_event is not None
        try:
            await wait_for(self._stop_event.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # ------------------------------------------------------------ websocket
    async def _socket_loop(self) -> None:
        assert self.keeper is not None
        backoff = self.opt.backoff()
        if not await self._before_socket(backoff):
            self._wake_reader()  # REST only
            return
        while True:
            credential = None
            try:
                # The credential in force now, every time: rotation and gateway headers follow.
                credential = await self.keeper.get()
                self._socket = await open_socket(self.api_url, credential, self._socket_filter(),
                                                 ssl_context=self._ssl, path=self.socket_path)
            except AuthRejected as exc:
                if self._upgrade_refused(exc):
                    if not await self._before_socket(backoff):  # the product may try another socket
                        self._wake_reader()
                        return
                    continue
                await self._rejected(credential, exc)
                continue
            except Retryable as exc:
                self._socket_failures += 1
                delay = next(backoff)
                self._record_error(f"websocket: {describe(exc, credential)} (retrying in {delay:.1f} s)")
                await self._sleep(delay)
                continue
            self.keeper.accepted(credential)
            opened = time.monotonic()
            self._connected()
            await self._after_connect()
            error = await self._receive(credential)
            if isinstance(error, AuthRejected):
                await self._rejected(credential, error)
                continue
            if time.monotonic() - opened >= _HEALTHY_AFTER:
                backoff = self.opt.backoff()
            delay = next(backoff)
            self._record_error(f"{describe(error, credential)} (reconnecting in {delay:.1f} s)")
            await self._sleep(delay)

    async def _receive(self, credential: Any) -> Exception:
        """Hand every frame to the product until the socket ends; say how it ended."""
        from websockets.exceptions import ConnectionClosed

        error: Exception
        try:
            async for raw in self._socket.connection:
                await self._on_frame(raw)
            error = Retryable("websocket closed by the server")
        except ConnectionClosed as exc:
            error = classify_closed(exc, credential)
        except OSError as exc:
            error = Retryable(f"websocket failed: {describe(exc, credential)}")
        finally:
            socket, self._socket = self._socket, None
            self._disconnected()
            await socket.close()
        return error

    async def _rejected(self, credential: Any, exc: AuthRejected) -> None:
        assert self.keeper is not None
        if not self.keeper.busy:
            # Else the REST side is already on it (perhaps waiting for a login, which is
            # the note to keep showing).
            self._record_error(f"websocket: {exc.how}; refreshing the credential")
        await self.keeper.rejected(credential, exc.how, exc.status_code)

    def _connected(self) -> None:
        reconnect = self._ever_connected
        if reconnect:
            self.c_reconnects += 1
        self._ever_connected = True
        self._ws_up = True
        self.connected_since = datetime.now(timezone.utc)
        self._on_connected()
        if reconnect:
            self._wake_reader()  # whatever came while the socket was down is read now
        # (The first connect needs no pass of its own: the first pass began with the stream.)
        self._changed()

    def _disconnected(self) -> None:
        self._on_disconnected()
        self._ws_up = False
        self.connected_since = None
        self._changed()

    # ----------------------------------------------------------------- REST
    async def _reader_loop(self) -> None:
        assert self.keeper is not None
        backoff: Iterator[float] | None = None
        while True:
            await self._pass_time()
            self._schedule.begin(self._read_interval())
            self._before_pass()
            retry_in: float | None = None
            try:
                await self.keeper.get()
                await self._read_pass()
                backoff = None
            except Retryable as exc:
                self._pass_failed()
                backoff = backoff or self.opt.backoff()
                retry_in = max(next(backoff), 0.0)
                self._record_error(f"{self.read_label}: {describe(exc, self.keeper.current)} "
                                   f"(retrying in {retry_in:.1f} s)")
            finally:
                if self._catching_up:
                    self._catching_up = False
                    self._changed()
            if retry_in is None:
                self._schedule.done(self._read_interval())
            else:
                self._schedule.done(retry_in, failed=True)  # a wake-up waits for the backoff too

    async def _pass_time(self) -> None:
        """Until a pass is due: woken, or the scheduled time (which may be brought forward) came."""
        assert self._kick is not None
        while (delay := self._schedule.wait()) != 0:
            self._kick.clear()
            try:
                await wait_for(self._kick.wait(), delay)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------- consumer
    async def _consume(self) -> None:
        assert self.consumer is not None
        while True:
            item = await self.outbox.aget()
            if item is END:
                return
            try:
                self.consumer(item)
            except Exception as exc:  # noqa: BLE001 - report, keep streaming
                self.logger.exception("%s callback raised", self.callback)
                self._record_error(f"{self.callback} raised {type(exc).__name__}: {str(exc)[:200]}")
