"""LogStreamWidget: Prefect logs, live, in the notebook's own theme.

Built like :class:`~prefect_nbauth.notebook.widgets.events.EventStreamWidget`: the stream
(``prefect_nbauth.stream_logs``) runs on its own thread and only appends to a
ring buffer; a :class:`~prefect_nbauth.notebook.widgets._throttle.Throttle` renders the
whole view as ONE HTML update, at most ``max_updates_per_second`` times a second
and within ``max_bytes_per_second``. Level colours are JupyterLab's theme
variables (``--jp-error-color0``…), so the view reads in light and dark themes;
the scroll box is anchored at the bottom (``column-reverse``), so it follows the
newest line unless paused.
"""

from __future__ import annotations

import collections
import logging
import threading
from datetime import datetime, timezone
from typing import Any, Callable

import ipywidgets as widgets

from ..._session import api_url_in_force
from ._base import TextForm, esc
from ._throttle import Throttle
from ._watch import WATCHER

__all__ = ["LogStreamWidget", "level_name", "log_line"]

DEFAULT_MAX_LINES = 500
MAX_LINES_LIMIT = 10_000
MESSAGE_CHARS = 2000  # one log line shown at most this long (tracebacks are long)
_MESSAGE_OVERHEAD = 300

# Theme variables, with fallbacks for front ends without JupyterLab's CSS.
LEVEL_COLOURS = {
    "DEBUG": "var(--jp-ui-font-color2, #757575)",
    "INFO": "var(--jp-info-color0, #0277bd)",
    "WARNING": "var(--jp-warn-color0, #e65100)",
    "ERROR": "var(--jp-error-color0, #c62828)",
    "CRITICAL": "var(--jp-error-color0, #c62828)",
}
STATE_COLOURS = {
    "connected": "var(--jp-success-color0, #2e7d32)",
    "polling": "var(--jp-info-color0, #0277bd)",
    "reconnecting": "var(--jp-warn-color0, #e65100)",
    "stopped": "var(--jp-ui-font-color2, #757575)",
}
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

StreamFactory = Callable[..., Any]


def level_name(level: Any) -> str:
    if isinstance(level, int):
        name = logging.getLevelName(level)
        return name if isinstance(name, str) and not name.startswith("Level ") else str(level)
    return str(level)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_line(log: Any) -> tuple[str, str, str]:
    """(time HH:MM:SS.mmm UTC, level name, message) of a Prefect log."""
    stamp = getattr(log, "timestamp", None)
    if isinstance(stamp, datetime):
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(timezone.utc)
        when = stamp.strftime("%H:%M:%S.%f")[:-3]
    else:
        when = ""
    return when, level_name(getattr(log, "level", "")), _cut(str(getattr(log, "message", "")), MESSAGE_CHARS)


def _default_factory(**filters: Any) -> Any:
    from ...logs._stream import stream_logs

    return stream_logs(**filters)


class LogStreamWidget(TextForm, widgets.VBox):
    """Live Prefect logs with the stream's state and counters.

    Args:
        flow_run_id: one run id (or a list) to follow; none = every run's logs.
        task_run_id: task run id(s).
        level: minimum level (``"INFO"``, ``"WARNING"``, …, or a number).
        since: where to start (``"10m"``, a timedelta, an aware datetime); default: a
            run's whole history when a run id is given, else now.
        max_lines: lines kept (a ring buffer), 1–10,000.
        max_updates_per_second, max_bytes_per_second: the front-end budget.
        start: start streaming now (else call :meth:`start`).
        stream_factory: ``factory(**filters)`` returning a stream with ``state``,
            ``stats`` and ``run_in_background``; defaults to ``stream_logs``.
    """

    _throttle: Throttle

    def __init__(
        self,
        flow_run_id: Any = None,
        *,
        task_run_id: Any = None,
        level: str | int | None = None,
        since: Any = None,
        max_lines: int = DEFAULT_MAX_LINES,
        max_updates_per_second: float = 10.0,
        max_bytes_per_second: float = 100_000.0,
        start: bool = True,
        stream_factory: StreamFactory | None = None,
        title: str = "Prefect logs",
    ) -> None:
        if not isinstance(max_lines, int) or isinstance(max_lines, bool) or not 1 <= max_lines <= MAX_LINES_LIMIT:
            raise ValueError(f"max_lines must be an integer from 1 to {MAX_LINES_LIMIT}, not {max_lines!r}.")
        super().__init__()
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id
        self.since = since
        self.max_lines = max_lines
        self.title = title
        self._factory: StreamFactory = stream_factory or _default_factory
        self._lock = threading.Lock()
        self._logs: collections.deque[Any] = collections.deque(maxlen=max_lines)
        self._frozen: list[Any] | None = None
        self._generation = 0
        self._stream: Any = None
        self._handle: Any = None
        self._error: str | None = None
        self._wanted = False
        self.received = 0
        self.updates_sent = 0
        self._received_at_pause = 0

        initial = level_name(level).upper() if level is not None else "INFO"
        options = LEVELS if initial in LEVELS else [*LEVELS, initial]
        self._level_field = widgets.Dropdown(options=options, value=initial, description="Level",
                                             layout=widgets.Layout(width="180px"))
        self._text_field = widgets.Text(value="", description="Filter", placeholder="text in the shown lines",
                                        continuous_update=True, layout=widgets.Layout(width="40%"))
        self._follow_button = widgets.ToggleButton(value=True, description="Following", icon="pause",
                                                   tooltip="Pause to freeze the view; logs keep arriving")
        self._clear_button = widgets.Button(description="Clear", icon="trash", tooltip="Empty the view")
        self._view = widgets.HTML()
        self._level_field.observe(lambda _: self.start(), "value")
        self._text_field.observe(lambda _: self._throttle.poke(), "value")
        self._follow_button.observe(self._on_follow_toggle, "value")
        self._clear_button.on_click(lambda _: self.clear())
        self.children = [
            widgets.HBox([self._level_field, self._text_field, self._follow_button, self._clear_button]),
            self._view,
        ]
        self.add_class("prefect-nbauth-logs")
        self._throttle = Throttle(self._flush, max_per_second=max_updates_per_second,
                                  max_bytes_per_second=max_bytes_per_second, name="prefect-nbauth-logs-view")
        self._view.value = self._render_html()
        if start:
            self.start()
        WATCHER.add(self)

    # ------------------------------------------------------------------ public
    @property
    def level(self) -> str:
        return self._level_field.value

    @property
    def text_filter(self) -> str:
        return self._text_field.value

    @property
    def stream(self) -> Any:
        return self._stream

    @property
    def following(self) -> bool:
        return self._follow_button.value

    def lines(self) -> list[tuple[str, str, str]]:
        """What the view shows now, oldest first: (time, level, message), text filter applied."""
        with self._lock:
            logs = list(self._frozen if self._frozen is not None else self._logs)
        return self._filtered(logs)

    def start(self) -> None:
        """(Re)start the stream with the current level; the view starts empty."""
        self._stop_stream()
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._error = None
            self._wanted = True
            self._logs.clear()
            self.received = 0
        filters = {"flow_run_id": self.flow_run_id, "task_run_id": self.task_run_id,
                   "level": self.level, "since": self.since}
        stream = handle = None
        try:
            stream = self._factory(**filters)
            handle = stream.run_in_background(
                on_event=lambda log, g=generation: self._on_log(log, g),
                on_change=lambda _stream, g=generation: self._on_change(g),
            )
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            with self._lock:
                self._error = f"Could not start the log stream: {exc}"
        with self._lock:
            if generation == self._generation:
                self._stream, self._handle = stream, handle
        self._throttle.poke()

    def stop(self) -> None:
        """Stop streaming (the lines stay)."""
        self._wanted = False
        self._stop_stream()
        self._throttle.poke()

    def pause(self) -> None:
        self._follow_button.value = False

    def resume(self) -> None:
        self._follow_button.value = True

    def clear(self) -> None:
        with self._lock:
            self._logs.clear()
            self.received = 0
            self._received_at_pause = 0
            if self._frozen is not None:
                self._frozen = []
        self._throttle.poke()

    def close(self) -> None:
        if "_throttle" in self.__dict__:
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
            self._generation += 1
        if handle is not None:
            try:
                handle.stop()
            except Exception:  # noqa: BLE001
                pass

    def _state_changed(self) -> None:
        """After a login: restart a stream that never ran, ended, or follows another API URL."""
        with self._lock:
            stream, error, wanted = self._stream, self._error, self._wanted
        if not wanted:
            return
        url = api_url_in_force()
        stream_url = getattr(stream, "api_url", None)
        state = str(getattr(getattr(stream, "state", None), "value", ""))
        if (stream is None and error is not None) or state == "stopped" or (
                stream_url and url and stream_url.rstrip("/") != str(url).rstrip("/")):
            threading.Thread(target=self.start, name="prefect-nbauth-logs-restart", daemon=True).start()

    def _tick(self) -> None:
        pass

    def _on_log(self, log: Any, generation: int) -> None:
        if generation != self._generation:
            return
        self._logs.append(log)
        self.received += 1
        self._throttle.poke()

    def _on_change(self, generation: int) -> None:
        if generation == self._generation:
            self._throttle.poke()

    def _on_follow_toggle(self, change: dict[str, Any]) -> None:
        with self._lock:
            if change["new"]:
                self._frozen = None
            else:
                self._frozen = list(self._logs)
                self._received_at_pause = self.received
        self._follow_button.description = "Following" if change["new"] else "Paused"
        self._follow_button.icon = "pause" if change["new"] else "play"
        self._throttle.poke()

    def _filtered(self, logs: list[Any]) -> list[tuple[str, str, str]]:
        needle = self._text_field.value.strip().lower()
        lines = [log_line(log) for log in logs]
        if needle:
            lines = [line for line in lines if needle in line[2].lower() or needle in line[1].lower()]
        return lines

    def _flush(self) -> int:
        if self._view.comm is None and self.comm is None:
            return 0
        text = self._render_html()
        if text == self._view.value:
            return 0
        self._view.value = text
        self.updates_sent += 1
        return len(text.encode("utf-8")) + _MESSAGE_OVERHEAD

    def _snapshot(self) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
        with self._lock:
            logs = list(self._frozen if self._frozen is not None else self._logs)
            stream, error = self._stream, self._error
            paused = self._frozen is not None
            new_since_pause = self.received - self._received_at_pause if paused else 0
            received = self.received
        stats = getattr(stream, "stats", None)
        state = getattr(stream, "state", None)
        last_error = getattr(stats, "last_error", None)
        info = {
            "state": str(getattr(state, "value", state)) if state is not None else "stopped",
            "live": getattr(stats, "live", 0),
            "reconciled": getattr(stats, "reconciled", 0),
            "reconnects": getattr(stats, "reconnects", 0),
            "last_error": str(last_error) if last_error else None,
            "error": error, "paused": paused, "new_since_pause": new_since_pause,
            "received": received, "kept": len(logs),
        }
        return self._filtered(logs), info

    def _counters(self, info: dict[str, Any]) -> str:
        return (f"{info['received']} lines (live {info['live']} · reconciled {info['reconciled']}) · "
                f"reconnects {info['reconnects']}")

    def _render_html(self) -> str:
        lines, info = self._snapshot()
        state = info["state"]
        colour = STATE_COLOURS.get(state, "var(--jp-brand-color1, #1565c0)")
        head = (f'<div class="pnb-state"><b>{esc(self.title)}</b> · <b style="color:{colour}">● {esc(state)}</b>'
                f" · {esc(self._counters(info))}")
        if info["paused"]:
            head += f" · <b>paused</b> ({info['new_since_pause']} new)"
        if self._text_field.value.strip():
            head += f" · {len(lines)} of {info['kept']} match"
        head += "</div>"
        notes = ""
        if info["error"]:
            notes += f'<div class="pnb-error" style="color:var(--jp-error-color0,#c62828)">{esc(info["error"])}</div>'
        if info["last_error"] and state not in ("connected",):
            notes += (f'<div class="pnb-last-error" style="color:var(--jp-ui-font-color2,#757575)">'
                      f"{esc(_cut(info['last_error'], 300))}</div>")
        if lines:
            body = "".join(
                f'<div class="pnb-log pnb-{esc(level.lower())}"><span style="color:var(--jp-ui-font-color2,#757575)">'
                f'{esc(when)}</span> <b style="color:{LEVEL_COLOURS.get(level, "inherit")}">{esc(level)}</b> '
                f'<span style="white-space:pre-wrap">{esc(message)}</span></div>'
                for when, level, message in lines)
            # column-reverse keeps the box scrolled to the newest (bottom) line.
            view = ('<div class="pnb-log-box" style="display:flex;flex-direction:column-reverse;'
                    f'max-height:24em;overflow-y:auto"><div>{body}</div></div>')
        else:
            view = '<div class="pnb-empty">No logs yet.</div>'
        return (f'<div class="pnb-logs" style="font-family:var(--jp-code-font-family,monospace);'
                f'font-size:var(--jp-code-font-size,12px);color:var(--jp-content-font-color1,inherit)">'
                f"{head}{notes}{view}</div>")

    def text_form(self) -> str:
        lines, info = self._snapshot()
        out = [f"{self.title}: {info['state']} · {self._counters(info)}" + (" · paused" if info["paused"] else "")]
        if info["error"]:
            out.append(f"  ! {info['error']}")
        if info["last_error"] and info["state"] != "connected":
            out.append(f"  note: {_cut(info['last_error'], 300)}")
        for when, level, message in lines[-50:]:
            out.append(f"  {when} {level:<8} {message}".rstrip())
        if len(lines) > 50:
            out.insert(1, f"  (last 50 of {len(lines)} lines)")
        return "\n".join(out)
