"""EventStreamWidget: the newest Prefect events, live, without flooding the front end.

The stream (``prefect_nbauth.events._stream``) runs its own event loop on a daemon
thread; its callback only appends the event to a ring buffer and pokes a
:class:`~prefect_nbauth.notebook.widgets._throttle.Throttle` (both in
:class:`~prefect_nbauth.notebook.widgets._live.LiveStreamView`). Rendering happens on the
throttle's thread, at most ``max_updates_per_second`` times a second and within
``max_bytes_per_second``, as ONE comm message per update (the whole view is a
single HTML widget). So the kernel's main thread never does per-event work, and
a burst of 10,000 events costs the front end the same as a burst of 20.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import ipywidgets as widgets

from ._base import SafeHTML, TextForm, clock_time, cut, esc, theme_style
from ._live import LiveStreamView, StreamFactory

__all__ = ["EventRow", "EventStreamWidget"]

DEFAULT_MAX_ROWS = 20
MAX_ROWS_LIMIT = 1000
PREVIEW_CHARS = 80
DETAIL_CHARS = 4000  # the expanded payload of one row (pretty JSON)


@dataclass(frozen=True)
class EventRow:
    """One table row, as shown (all text)."""

    id: str
    time: str  # when it occurred, UTC, HH:MM:SS.mmm
    event: str
    resource: str
    payload: str  # compact JSON, cut to PREVIEW_CHARS
    occurred: datetime | None = None  # UTC, for the relative time and the hover text
    payload_full: str = ""  # indented JSON, cut to DETAIL_CHARS (the row's expanded view)


def event_row(event: Any) -> EventRow:
    """The row for a Prefect ``Event``/``ReceivedEvent`` (tolerant of missing fields)."""
    occurred, when = clock_time(getattr(event, "occurred", None))
    resource = getattr(event, "resource", None)
    resource_id = getattr(resource, "id", None)
    if resource_id is None and isinstance(resource, dict):
        resource_id = resource.get("prefect.resource.id")
    payload = getattr(event, "payload", None)
    try:
        preview = json.dumps(payload, default=str, separators=(",", ":"), ensure_ascii=False) \
            if payload else ""
        full = json.dumps(payload, default=str, indent=1, ensure_ascii=False) if payload else ""
    except (TypeError, ValueError):
        preview = full = repr(payload)
    return EventRow(
        id=str(getattr(event, "id", "")),
        time=when,
        event=cut(str(getattr(event, "event", "")), 120),
        resource=cut(str(resource_id or ""), 120),
        payload=cut(preview, PREVIEW_CHARS),
        occurred=occurred,
        payload_full=cut(full, DETAIL_CHARS),
    )


def relative_time(occurred: datetime | None, now: datetime) -> str:
    """``"just now"``, ``"15s ago"`` (5 s steps), ``"3m ago"``, ``"2h ago"``; ``""`` without a time."""
    if occurred is None:
        return ""
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=timezone.utc)
    age = (now - occurred).total_seconds()
    if age < 5:
        return "just now" if age > -5 else "in the future"
    if age < 60:
        return f"{int(age) // 5 * 5}s ago"
    if age < 3600:
        return f"{int(age) // 60}m ago"
    if age < 86_400:
        return f"{int(age) // 3600}h ago"
    return f"{int(age) // 86_400}d ago"


def _absolute(occurred: datetime | None) -> str:
    return occurred.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if occurred else ""


def friendly_error(text: str) -> str:
    """One short sentence for a connection problem; the raw text stays available beside it."""
    low = text.lower()
    if "refused" in low or "connect call failed" in low:
        return "The server does not answer (connection refused); retrying."
    if "timed out" in low or "timeout" in low:
        return "The server did not answer in time; retrying."
    if "401" in low or "403" in low or "auth" in low:
        return "The server refused the credential; log in again."
    if "name or service not known" in low or "nodename" in low or "getaddrinfo" in low:
        return "The server's host name does not resolve; check the API URL."
    return "The connection dropped; retrying."


def _text(value: str) -> str:
    """Escape for a text node (quotes need no escaping there: JSON stays short)."""
    return html.escape(value, quote=False)


def _default_factory(**filters: Any) -> Any:
    from ...events import stream_events

    return stream_events(**filters)


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def _names(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return _split(values)
    return [str(v) for v in values if str(v)]


class EventStreamWidget(TextForm, LiveStreamView, widgets.VBox):
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

    _what = "event stream"
    _name = "events"

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
        self._init_stream(stream_factory or _default_factory, max_rows)
        self._rows_cache: dict[int, tuple[Any, EventRow]] = {}  # id(event) -> (event, row)
        self._cache_lock = threading.Lock()
        self._shown_key: tuple[Any, ...] | None = None  # state and row ages of the view sent

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
        self._view = SafeHTML()
        self._style = theme_style(EVENTS_CSS)
        self._apply_button.on_click(lambda _: self.apply_filters())
        self._clear_button.on_click(lambda _: self.clear())
        self._pause_button.observe(self._on_pause_toggle, "value")
        self.children = [
            widgets.HBox([self._prefix_field, self._resource_field, self._apply_button]),
            widgets.HBox([self._pause_button, self._clear_button]),
            self._view,
            self._style,
        ]
        self.add_class("prefect-nbauth-events")
        self.add_class("pnb-w")
        self._go_live(max_updates_per_second, max_bytes_per_second, start)

    # ------------------------------------------------------------------ public

    @property
    def prefix(self) -> list[str]:
        return _split(self._prefix_field.value)

    @property
    def resource(self) -> list[str]:
        return _split(self._resource_field.value)

    @property
    def paused(self) -> bool:
        return self._pause_button.value

    @property
    def rows(self) -> list[EventRow]:
        """What the table holds now, newest first (live, even while the view is paused)."""
        with self._lock:
            events = list(self._items)
        return [self._row(e) for e in reversed(events)]

    def apply_filters(self) -> None:
        """Restart the stream with the filters in the fields, starting from an empty table."""
        with self._lock:
            self._items.clear()
            self.received = 0
        self.start()

    def pause(self) -> None:
        self._pause_button.value = True

    def resume(self) -> None:
        self._pause_button.value = False

    # --------------------------------------------------------------- internals

    def _filters(self) -> dict[str, Any]:
        return {"prefix": self.prefix or None, "resource": self.resource or None, "since": self.since}

    def _tick(self) -> None:
        # Once a second (watcher thread): the row ages and the stream's state go stale
        # without new events; re-render only when what is shown would change.
        if self._shown_key is not None and self._view_key() != self._shown_key:
            self._throttle.poke()

    def _view_key(self) -> tuple[Any, ...]:
        events = self._shown_items()
        state = getattr(self._stream, "state", None)
        now = datetime.now(timezone.utc)
        return (str(getattr(state, "value", state)),
                tuple(relative_time(self._row(e).occurred, now) for e in events))

    def _on_pause_toggle(self, change: dict[str, Any]) -> None:
        self._pause_button.description = "Resume" if change["new"] else "Pause"
        self._pause_button.icon = "play" if change["new"] else "pause"
        self._set_paused(change["new"])

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
        self._shown_key = self._view_key()
        return super()._flush()

    def _snapshot(self) -> tuple[list[EventRow], dict[str, Any]]:
        events, info = self._stream_info()
        with self._lock:
            live_keys = {id(e) for e in self._items} | {id(e) for e in events}
        rows = [self._row(e) for e in reversed(events)]
        with self._cache_lock:
            for key in [k for k in self._rows_cache if k not in live_keys]:
                del self._rows_cache[key]
        stats = info["stats"] if info["stats"] is not None else self._last_stats
        last_error = getattr(stats, "last_error", None)
        info.update({
            "live": getattr(stats, "live", 0),
            "reconciled": getattr(stats, "reconciled", 0),
            "duplicates": getattr(stats, "duplicates", 0),
            "malformed": getattr(stats, "malformed", 0),
            "reconnects": getattr(stats, "reconnects", 0),
            "last_error": str(last_error) if last_error else None,
        })
        return rows, info

    def _counters(self, info: dict[str, Any]) -> str:
        return (f"live {info['live']} · reconciled {info['reconciled']} · "
                f"duplicates dropped {info['duplicates']} · malformed {info['malformed']} · "
                f"reconnects {info['reconnects']}")

    def _render_html(self) -> str:
        rows, info = self._snapshot()
        state = info["state"]
        kind = {"connected": "ok", "reconnecting": "warn", "stopped": "off"}.get(state, "info")
        head = (f'<div class="pnb-state"><span class="pnb-dot pnb-{kind}" aria-hidden="true"></span>'
                f"<b>{esc(state)}</b> · "
                # Each counter stays on one line ("reconnects 0", never "reconnects" / "0").
                + " · ".join(f'<span class="pnb-nw">{esc(part)}</span>'
                             for part in self._counters(info).split(" · ")))
        if info["paused"]:
            head += f" · <b>paused</b> ({info['new_since_pause']} new)"
        head += "</div>"
        notes = ""
        if info["error"]:
            notes += f'<div class="pnb-note pnb-error"><span class="pnb-error">{esc(info["error"])}</span></div>'
        if info["last_error"]:
            raw = esc(cut(info["last_error"], 300))
            if state in ("connected", "reconciling", "stopped"):
                # Over: say so quietly; the details stay one click away. (How many reconnects
                # is the head's counter: one place, one wording.)
                notes += ('<details class="pnb-last-error pnb-muted"><summary>recovered from a connection '
                          f'problem (details)</summary><code>{raw}</code></details>')
            else:
                notes += (f'<div class="pnb-note pnb-warn pnb-last-error">{esc(friendly_error(info["last_error"]))}'
                          f' <details><summary>details</summary><code>{raw}</code></details></div>')
        if rows:
            now = datetime.now(timezone.utc)
            body = "".join(self._row_html(r, now) for r in rows)
            table = ('<div class="pnb-rows" role="table">'
                     '<div class="pnb-grid pnb-head" role="row"><span title="time (UTC on hover)">time</span>'
                     '<span title="event">event</span><span title="resource">resource</span>'
                     '<span title="payload: click a row to see it whole">payload</span></div>'
                     f"{body}</div>")
        else:
            table = '<div class="pnb-empty pnb-muted">No events yet.</div>'
        return f'<div class="pnb-events pnb-w">{head}{notes}{table}</div>'

    @staticmethod
    def _row_html(r: EventRow, now: datetime) -> str:
        # Kept small: the whole table is resent at every update, within a byte budget.
        # Cells are cut to one line; hover shows the time, event and resource whole,
        # and opening the row shows the id and the whole payload.
        when = _absolute(r.occurred) or r.time
        return (f'<details class="pnb-row"><summary class="pnb-grid" role="row">'
                f'<span class="pnb-time" title="{esc(when)}">{_text(relative_time(r.occurred, now) or r.time)}</span>'
                f'<span class="pnb-ev" title="{esc(r.event)}">{_text(r.event)}</span>'
                f'<span class="pnb-res" title="{esc(r.resource)}">{_text(r.resource)}</span>'
                f'<span class="pnb-pay">{_text(r.payload)}</span></summary>'
                f'<div class="pnb-detail">{_text(r.event)}<br>{_text(r.resource)}<br>id {_text(r.id)}'
                f'<pre>{_text(r.payload_full or "no payload")}</pre>'
                "</div></details>")

    def text_form(self) -> str:
        rows, info = self._snapshot()
        lines = [f"Prefect events: {info['state']} · {self._counters(info)}"
                 + (" · paused" if info["paused"] else "")]
        lines.append(f"  filter: prefix {', '.join(self.prefix) or 'any'}; "
                     f"resource {', '.join(self.resource) or 'any'}; newest {len(rows)} of at most {self.max_rows}")
        if info["error"]:
            lines.append(f"  ! {info['error']}")
        if info["last_error"]:
            lines.append(f"  last error: {cut(info['last_error'], 300)}")
        for r in rows:
            lines.append(f"  {r.time}  {r.event}  {r.resource}  {r.payload}".rstrip())
        return "\n".join(lines)


# Layout only (colours are in _base.THEME_CSS). Fixed columns that never push the
# output wider than its area; ids and names in the code font, on one line, cut
# with an ellipsis (whole in the hover text and in the row's expanded view).
EVENTS_CSS = (
    ".pnb-events{font-size:var(--jp-ui-font-size1)}"
    ".pnb-events .pnb-state{margin:2px 0 4px}"
    ".pnb-events .pnb-nw{white-space:nowrap}"
    ".pnb-events .pnb-rows{width:100%;max-width:100%;border-top:1px solid var(--jp-border-color2)}"
    ".pnb-events .pnb-grid{display:grid;grid-template-columns:6.5em minmax(0,4fr) minmax(0,3fr) minmax(0,3fr);"
    "column-gap:0;align-items:baseline}"
    ".pnb-events .pnb-grid>span{padding:3px 8px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
    "min-width:0}"
    ".pnb-events .pnb-head{font-weight:600;border-bottom:1px solid var(--jp-border-color2)}"
    ".pnb-events .pnb-ev,.pnb-events .pnb-res,.pnb-events .pnb-pay{font-family:var(--jp-code-font-family);"
    "font-size:var(--jp-code-font-size)}"
    ".pnb-events summary.pnb-grid{list-style:none}"
    ".pnb-events summary.pnb-grid::-webkit-details-marker{display:none}"
    ".pnb-events .pnb-row{border-bottom:1px solid var(--jp-border-color3)}"
    ".pnb-events .pnb-row>summary:hover{background:var(--jp-layout-color2)}"
    ".pnb-events .pnb-row[open]>summary{background:var(--jp-layout-color2)}"
    ".pnb-events .pnb-detail{padding:4px 8px 8px 6.5em}"
    ".pnb-events .pnb-detail{font-family:var(--jp-code-font-family);font-size:var(--jp-code-font-size);"
    "overflow-wrap:anywhere}"
    ".pnb-events .pnb-detail pre{margin:4px 0 0;white-space:pre-wrap;overflow-wrap:anywhere;"
    "font-family:var(--jp-code-font-family);font-size:var(--jp-code-font-size)}"
    ".pnb-events .pnb-last-error details{display:inline}"
    ".pnb-events code{overflow-wrap:anywhere}"
)
