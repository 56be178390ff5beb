"""What every live widget shares: one HTML view, re-rendered on a throttle thread.

:class:`ThrottledView` is the rendering half (used by the events, logs and flow run
widgets): the whole view is ONE ``SafeHTML``, and :meth:`~ThrottledView._flush`
(run by a :class:`~._throttle.Throttle`) sends it only when it changed, as one comm
message, and reports the bytes so the throttle keeps within its byte budget.

:class:`LiveStreamView` adds the streaming half (events and logs): a stream running
on its own thread appends each item to a ring buffer and pokes the throttle, O(1),
so the kernel's main thread never does per-item work; a generation number makes
late callbacks of a stopped stream harmless; pause freezes what is shown while
items keep arriving; after a login, a stream that could not run is restarted.
Subclasses say which filters start a stream (:meth:`~LiveStreamView._filters`) and
how to render (``_render_html``).
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Callable

import ipywidgets as widgets

from ...session import api_url_in_force
from ._base import SafeHTML
from ._credential_watch import WATCHER
from ._throttle import Throttle

__all__ = ["LiveStreamView", "StreamFactory", "ThrottledView"]

# A comm message around the HTML: header, ids, JSON framing (measured ~300 bytes).
MESSAGE_OVERHEAD = 300

StreamFactory = Callable[..., Any]


class ThrottledView:
    """Mixin for a ``widgets.Box`` whose whole view is ``self._view`` (one HTML widget)."""

    _view: SafeHTML
    _throttle: Throttle
    updates_sent: int
    comm: Any

    def _start_throttle(self, name: str, max_per_second: float, max_bytes_per_second: float) -> None:
        self.updates_sent = 0  # front-end updates of the view
        self._throttle = Throttle(self._flush, max_per_second=max_per_second,
                                  max_bytes_per_second=max_bytes_per_second, name=name)

    def _render_html(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _flush(self) -> int:
        """On the throttle's thread: send the view if it changed; the bytes it cost."""
        if self._view.comm is None and self.comm is None:
            return 0  # closed
        text = self._render_html()
        if text == self._view.value:
            return 0
        self._view.value = text  # ONE comm message
        self.updates_sent += 1
        # What the message costs: the HTML as a JSON string (its quotes and line breaks escaped).
        return len(json.dumps(text)) + MESSAGE_OVERHEAD


class LiveStreamView(ThrottledView):
    """Mixin for ``widgets.VBox``: a stream's items in a ring buffer, shown through a throttle.

    Call :meth:`_init_stream` in ``__init__`` before building the children, and
    :meth:`_go_live` after them.
    """

    _what = "stream"  # in "Could not start the … stream"
    _name = "live"  # in the names of its threads
    children: Any

    def _init_stream(self, factory: StreamFactory, max_items: int) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._items: collections.deque[Any] = collections.deque(maxlen=max_items)
        self._frozen: list[Any] | None = None  # what is shown while paused
        self._generation = 0
        self._stream: Any = None
        self._handle: Any = None
        self._error: str | None = None
        self._wanted = False  # start() was called and stop() was not: restart after a login
        self.received = 0  # items delivered since the last start/clear
        self._received_at_pause = 0
        self._last_stats: Any = None  # the counters of the stream stopped last (kept after stop())

    def _go_live(self, max_per_second: float, max_bytes_per_second: float, start: bool) -> None:
        self._start_throttle(f"prefect-nbauth-{self._name}-view", max_per_second, max_bytes_per_second)
        self._view.value = self._render_html()
        if start:
            self.start()
        WATCHER.add(self)  # restart after a login when the stream could not run before

    def _filters(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _reset_for_start(self) -> None:
        """Under the lock, as a (re)start begins: a new stream counts from zero."""
        self._last_stats = None

    # ------------------------------------------------------------------ public

    @property
    def stream(self) -> Any:
        """The stream in use (None before :meth:`start` or after :meth:`stop`)."""
        return self._stream

    def start(self) -> None:
        """(Re)start the stream with the current filters."""
        self._stop_stream()
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._error = None
            self._wanted = True
            self._reset_for_start()
        stream = handle = None
        try:
            stream = self._factory(**self._filters())
            handle = stream.run_in_background(
                on_event=lambda item, g=generation: self._on_item(item, g),
                on_change=lambda _stream, g=generation: self._on_change(g),
            )
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            with self._lock:
                self._error = f"Could not start the {self._what}: {exc}"
        with self._lock:
            if generation == self._generation:
                self._stream, self._handle = stream, handle
        self._throttle.poke()

    def stop(self) -> None:
        """Stop streaming (what is shown stays)."""
        self._wanted = False
        self._stop_stream()
        self._throttle.poke()

    def clear(self) -> None:
        """Empty the view (streaming goes on)."""
        with self._lock:
            self._items.clear()
            self.received = 0
            self._received_at_pause = 0
            if self._frozen is not None:
                self._frozen = []
        self._throttle.poke()

    def close(self) -> None:
        if "_throttle" in self.__dict__:  # not when __init__ failed half-way (Widget.__del__)
            WATCHER.remove(self)
            self._wanted = False
            self._stop_stream()
            self._throttle.close()
        for child in self._all_children():
            child.close()
        super().close()  # type: ignore[misc]

    # --------------------------------------------------------------- internals

    def _all_children(self) -> list[widgets.Widget]:
        found: list[widgets.Widget] = []
        stack = list(self.children)
        while stack:
            child = stack.pop()
            found.append(child)
            stack.extend(getattr(child, "children", ()))
        return found

    def _stop_stream(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
            stats = getattr(self._stream, "stats", None)
            if stats is not None:
                self._last_stats = stats() if callable(stats) else stats
            self._stream = None
            self._generation += 1  # late callbacks of the old stream are ignored
        if handle is not None:
            try:
                handle.stop()  # outside the lock: the stream's thread may be in a callback
            except Exception:  # noqa: BLE001
                pass

    def _state_changed(self) -> None:
        """The credential in force changed (watcher thread): restart a stream that cannot work.

        A stream takes the new credential by itself at its next reconnect; it must be
        restarted only when it never started (no API URL before the login), ended
        (its credential was rejected), or follows a different API URL now.
        """
        with self._lock:
            stream, error, wanted = self._stream, self._error, self._wanted
        if not wanted:
            return
        url = api_url_in_force()
        stream_url = getattr(stream, "api_url", None)
        state = str(getattr(getattr(stream, "state", None), "value", getattr(stream, "state", "")))
        if (stream is None and error is not None) or state == "stopped" or (
                stream_url and url and stream_url.rstrip("/") != str(url).rstrip("/")):
            threading.Thread(target=self.start, name=f"prefect-nbauth-{self._name}-restart", daemon=True).start()

    def _tick(self) -> None:
        """Once a second, on the watcher thread (nothing to do unless a view ages)."""

    def _on_item(self, item: Any, generation: int) -> None:
        # Runs on the stream's thread, once per item: keep it O(1).
        if generation != self._generation:
            return
        self._items.append(item)
        self.received += 1
        self._throttle.poke()

    def _on_change(self, generation: int) -> None:
        if generation == self._generation:
            self._throttle.poke()

    def _set_paused(self, paused: bool) -> None:
        with self._lock:
            if paused:
                self._frozen = list(self._items)
                self._received_at_pause = self.received
            else:
                self._frozen = None
        self._throttle.poke()

    def _shown_items(self) -> list[Any]:
        with self._lock:
            return list(self._frozen if self._frozen is not None else self._items)

    def _stream_info(self) -> tuple[list[Any], dict[str, Any]]:
        """What is shown (oldest first) and the stream's state, counters and errors."""
        with self._lock:
            items = list(self._frozen if self._frozen is not None else self._items)
            stream, error = self._stream, self._error
            paused = self._frozen is not None
            new_since_pause = self.received - self._received_at_pause if paused else 0
            received = self.received
        stats = getattr(stream, "stats", None)
        if callable(stats):
            stats = stats()
        state = getattr(stream, "state", None)
        return items, {
            "stream": stream, "stats": stats, "error": error, "paused": paused,
            "state": str(getattr(state, "value", state)) if state is not None else "stopped",
            "new_since_pause": new_since_pause, "received": received,
        }
