"""EventStreamWidget: the newest Prefect events, live, without flooding the front end.

The stream (``prefect_nbauth.events._stream``) runs its own event loop on a daemon
thread; its callback only appends the event to a ring buffer and pokes a
:class:`~prefect_nbauth.notebook.widgets._throttle.Throttle`. Rendering happens on the
throttle's thread, at most ``max_updates_per_second`` times a second and within
``max_bytes_per_second``, as ONE comm message per update (the whole view is a
single HTML widget). So the kernel's main thread never does per-event work, and
a burst of 10,000 events costs the front end the same as a burst of 20.
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import ipywidgets as widgets

from ... import _prefect_seam as seam
from ._base import TextForm, esc
from ._throttle import Throttle
from ._watch import WATCHER

__all__ = ["EventRow", "EventStreamWidget"]

DEFAULT_MAX_ROWS = 20
MAX_ROWS_LIMIT = 1000
PREVIEW_CHARS = 80
# A comm message around the HTML: header, ids, JSON framing (measured ~300 bytes).
_MESSAGE_OVERHEAD = 300

StreamFactory = Callable[..., Any]


@dataclass(frozen=True)
class EventRow:
    """One table row, as shown (all text)."""

    id: str
    time: str  # when it occurred, UTC, HH:MM:SS.mmm
    event: str
    resource: str
    payload: str  # compact JSON, cut to PREVIEW_CHARS


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_row(event: Any) -> EventRow:
    """The row for a Prefect ``Event``/``ReceivedEvent`` (tolerant of missing fields)."""
    occurred = getattr(event, "occurred", None)
    if isinstance(occurred, datetime):
        if occurred.tzinfo is not None:
            occurred = occurred.astimezone(timezone.utc)
        when = occurred.strftime("%H:%M:%S.%f")[:-3]
    else:
        when = ""
    resource = getattr(event, "resource", None)
    resource_id = getattr(resource, "id", None)
    if resource_id is None and isinstance(resource, dict):
        resource_id = resource.get("prefect.resource.id")
    payload = getattr(event, "payload", None)
    try:
        preview = json.dumps(payload, default=str, separators=(",", ":"), ensure_ascii=False) \
            if payload else ""
    except (TypeError, ValueError):
        preview = repr(payload)
    return EventRow(
        id=str(getattr(event, "id", "")),
        time=when,
        event=_cut(str(getattr(event, "event", "")), 120),
        resource=_cut(str(resource_id or ""), 120),
        payload=_cut(preview, PREVIEW_CHARS),
    )


def _default_factory(**filters: Any) -> Any:
    try:
        from ...events._stream import stream_events
    except ImportError as exc:
        raise RuntimeError(
            "Live events need prefect_nbauth.events._stream, which this installation does not "
            f"have ({exc}). Upgrade prefect-nbauth."
        ) from None
    return stream_events(**filters)


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def _names(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return _split(values)
    return [str(v) for v in values if str(v)]


class EventStreamWidget(TextForm, widgets.VBox):
    """A live table of the newest Prefect events, with the stream's state and counters.

    Args:
        prefix: event-name prefixes to receive (``["prefect.flow-run."]``); none = all.
        resource: resource ids to receive (``prefect.resource.id`` values, ``*`` wildcards
            as the server allows); none = all.
        since: also fetch events that occurred since then (the stream backfills).
        max_rows: rows kept and shown (a ring buffer: older rows fall off), 1–1000.
        max_updates_per_second: front-end updates at most (one comm message each).
        max_bytes_per_second: IOPub bytes at most; large tables update less often.
        start: start streaming now (else call :meth:`start`).
        stream_factory: ``factory(prefix=, resource=, since=)`` returning a stream with
            ``state``, ``stats`` and ``run_in_background(on_event=, on_change=)``;
            defaults to ``prefect_nbauth.events._stream.stream_events``.
    """

    def __init__(
        self,
        *,
        prefix: Sequence[str] | str | None = None,
        resource: Sequence[str] | str | None = None,
        since: datetime | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_updates_per_second: float = 10.0,
        max_bytes_per_second: float = 50_000.0,
        start: bool = True,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or not 1 <= max_rows <= MAX_ROWS_LIMIT:
            raise ValueError(f"max_rows must be an integer from 1 to {MAX_ROWS_LIMIT}, not {max_rows!r}.")
        if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
            raise ValueError("since must be a timezone-aware datetime (for example in UTC).")
        super().__init__()
        self.max_rows = max_rows
        self.since = since
        self._factory: StreamFactory = stream_factory or _default_factory
        self._lock = threading.Lock()
        self._events: collections.deque[Any] = collections.deque(maxlen=max_rows)
        self._frozen: list[Any] | None = None  # rows shown while paused
        self._rows_cache: dict[int, tuple[Any, EventRow]] = {}  # id(event) -> (event, row)
        self._cache_lock = threading.Lock()
        self._generation = 0
        self._stream: Any = None
        self._handle: Any = None
        self._error: str | None = None
        self._wanted = False  # start() was called and stop() was not: restart after a login
        self.received = 0  # events delivered to this widget since the last start/clear
        self.updates_sent = 0  # front-end updates of the view
        self._received_at_pause = 0

        self._prefix_field = widgets.Text(
            value=", ".join(_names(prefix)), description="Event prefix",
            placeholder="e.g. prefect.flow-run. (comma-separated; empty = all)",
            continuous_update=False, layout=widgets.Layout(width="45%"))
        self._resource_field = widgets.Text(
            value=", ".join(_names(resource)), description="Resource",
            placeholder="e.g. prefect.flow-run.* (empty = all)",
            continuous_update=False, layout=widgets.Layout(width="35%"))
        self._apply_button = widgets.Button(description="Apply", tooltip="Restart the stream with these filters")
        self._pause_button = widgets.ToggleButton(value=False, description="Pause", icon="pause",
                                                  tooltip="Freeze the table; events keep arriving")
        self._clear_button = widgets.Button(description="Clear", icon="trash", tooltip="Empty the table")
        self._view = widgets.HTML()
        self._apply_button.on_click(lambda _: self.apply_filters())
        self._clear_button.on_click(lambda _: self.clear())
        self._pause_button.observe(self._on_pause_toggle, "value")
        self.children = [
            widgets.HBox([self._prefix_field, self._resource_field, self._apply_button]),
            widgets.HBox([self._pause_button, self._clear_button]),
            self._view,
        ]
        self.add_class("prefect-nbauth-events")

        self._throttle = Throttle(self._flush, max_per_second=max_updates_per_second,
                                  max_bytes_per_second=max_bytes_per_second,
                                  name="prefect-nbauth-events-view")
        self._view.value = self._render_html()
        if start:
            self.start()
        WATCHER.add(self)  # restart after a login when the stream could not run before

    # ------------------------------------------------------------------ public

    @property
    def prefix(self) -> list[str]:
        return _split(self._prefix_field.value)

    @property
    def resource(self) -> list[str]:
        return _split(self._resource_field.value)

    @property
    def stream(self) -> Any:
        """The stream in use (None before :meth:`start` or after :meth:`stop`)."""
        return self._stream

    @property
    def paused(self) -> bool:
        return self._pause_button.value

    @property
    def rows(self) -> list[EventRow]:
        """What the table holds now, newest first (live, even while the view is paused)."""
        with self._lock:
            events = list(self._events)
        return [self._row(e) for e in reversed(events)]

    def start(self) -> None:
        """(Re)start the stream with the current filters."""
        self._stop_stream()
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._error = None
            self._wanted = True
        filters = {"prefix": self.prefix or None, "resource": self.resource or None, "since": self.since}
        stream = handle = None
        try:
            stream = self._factory(**filters)
            handle = stream.run_in_background(
                on_event=lambda event, g=generation: self._on_event(event, g),
                on_change=lambda _stream, g=generation: self._on_change(g),
            )
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            with self._lock:
                self._error = f"Could not start the event stream: {exc}"
        with self._lock:
            if generation == self._generation:
                self._stream, self._handle = stream, handle
        self._throttle.poke()

    def stop(self) -> None:
        """Stop streaming (the table stays)."""
        self._wanted = False
        self._stop_stream()
        self._throttle.poke()

    def apply_filters(self) -> None:
        """Restart the stream with the filters in the fields, starting from an empty table."""
        with self._lock:
            self._events.clear()
            self.received = 0
        self.start()

    def pause(self) -> None:
        self._pause_button.value = True

    def resume(self) -> None:
        self._pause_button.value = False

    def clear(self) -> None:
        """Empty the table (streaming goes on)."""
        with self._lock:
            self._events.clear()
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
        super().close()

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
        url = seam.global_settings_context().settings.api.url
        stream_url = getattr(stream, "api_url", None)
        state = str(getattr(getattr(stream, "state", None), "value", getattr(stream, "state", "")))
        if (stream is None and error is not None) or state == "stopped" or (
                stream_url and url and stream_url.rstrip("/") != str(url).rstrip("/")):
            threading.Thread(target=self.start, name="prefect-nbauth-events-restart", daemon=True).start()

    def _tick(self) -> None:
        pass

    def _on_event(self, event: Any, generation: int) -> None:
        # Runs on the stream's thread, once per event: keep it O(1).
        if generation != self._generation:
            return
        self._events.append(event)
        self.received += 1
        self._throttle.poke()

    def _on_change(self, generation: int) -> None:
        if generation == self._generation:
            self._throttle.poke()

    def _on_pause_toggle(self, change: dict[str, Any]) -> None:
        with self._lock:
            if change["new"]:
                self._frozen = list(self._events)
                self._received_at_pause = self.received
            else:
                self._frozen = None
        self._pause_button.description = "Resume" if change["new"] else "Pause"
        self._pause_button.icon = "play" if change["new"] else "pause"
        self._throttle.poke()

    def _row(self, event: Any) -> EventRow:
        # Keyed by id() but holding the event itself, so a recycled id never matches.
        with self._cache_lock:
            cached = self._rows_cache.get(id(event))
        if cached is not None and cached[0] is event:
            return cached[1]
        row = event_row(event)
        with self._cache_lock:
            self._rows_cache[id(event)] = (event, row)
        return row

    def _flush(self) -> int:
        if self._view.comm is None and self.comm is None:
            return 0  # closed
        text = self._render_html()
        if text == self._view.value:
            return 0
        self._view.value = text  # ONE comm message
        self.updates_sent += 1
        return len(text.encode("utf-8")) + _MESSAGE_OVERHEAD

    def _snapshot(self) -> tuple[list[EventRow], dict[str, Any]]:
        with self._lock:
            events = list(self._frozen if self._frozen is not None else self._events)
            stream, error = self._stream, self._error
            paused = self._frozen is not None
            new_since_pause = self.received - self._received_at_pause if paused else 0
            received = self.received
            live_keys = {id(e) for e in self._events} | {id(e) for e in events}
        rows = [self._row(e) for e in reversed(events)]
        with self._cache_lock:
            for key in [k for k in self._rows_cache if k not in live_keys]:
                del self._rows_cache[key]
        stats = getattr(stream, "stats", None)
        state = getattr(stream, "state", None)
        last_error = getattr(stats, "last_error", None)
        info = {
            "state": str(getattr(state, "value", state)) if state is not None else "stopped",
            "live": getattr(stats, "live", 0),
            "reconciled": getattr(stats, "reconciled", 0),
            "duplicates": getattr(stats, "duplicates", 0),
            "malformed": getattr(stats, "malformed", 0),
            "reconnects": getattr(stats, "reconnects", 0),
            "last_error": str(last_error) if last_error else None,
            "error": error,
            "paused": paused,
            "new_since_pause": new_since_pause,
            "received": received,
        }
        return rows, info

    def _counters(self, info: dict[str, Any]) -> str:
        return (f"live {info['live']} · reconciled {info['reconciled']} · "
                f"duplicates dropped {info['duplicates']} · malformed {info['malformed']} · "
                f"reconnects {info['reconnects']}")

    def _render_html(self) -> str:
        rows, info = self._snapshot()
        state = info["state"]
        colour = {"connected": "#2e7d32", "reconnecting": "#e65100", "stopped": "#757575"}.get(state, "#1565c0")
        head = (f'<div class="pnb-state"><b style="color:{colour}">● {esc(state)}</b> · '
                f"{esc(self._counters(info))}")
        if info["paused"]:
            head += f" · <b>paused</b> ({info['new_since_pause']} new)"
        head += "</div>"
        notes = ""
        if info["error"]:
            notes += f'<div class="pnb-error" style="color:#c62828">{esc(info["error"])}</div>'
        if info["last_error"]:
            notes += f'<div class="pnb-last-error" style="color:#e65100">last error: {esc(_cut(info["last_error"], 300))}</div>'
        if rows:
            body = "".join(
                f"<tr><td>{esc(r.time)}</td><td>{esc(r.event)}</td><td>{esc(r.resource)}</td>"
                f"<td>{esc(r.payload)}</td></tr>" for r in rows)
            table = ('<table class="pnb-rows"><thead><tr><th>time (UTC)</th><th>event</th>'
                     f"<th>resource</th><th>payload</th></tr></thead><tbody>{body}</tbody></table>")
        else:
            table = '<div class="pnb-empty">No events yet.</div>'
        return (f'<div class="pnb-events" style="font-family:var(--jp-code-font-family,monospace);'
                f'font-size:12px">{head}{notes}{table}</div>')

    def text_form(self) -> str:
        rows, info = self._snapshot()
        lines = [f"Prefect events: {info['state']} · {self._counters(info)}"
                 + (" · paused" if info["paused"] else "")]
        lines.append(f"  filter: prefix {', '.join(self.prefix) or 'any'}; "
                     f"resource {', '.join(self.resource) or 'any'}; newest {len(rows)} of at most {self.max_rows}")
        if info["error"]:
            lines.append(f"  ! {info['error']}")
        if info["last_error"]:
            lines.append(f"  last error: {_cut(info['last_error'], 300)}")
        for r in rows:
            lines.append(f"  {r.time}  {r.event}  {r.resource}  {r.payload}".rstrip())
        return "\n".join(lines)
