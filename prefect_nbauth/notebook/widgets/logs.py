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

import logging
from typing import Any

import ipywidgets as widgets

from ._base import TextForm, clock_time, cut, esc
from ._live import LiveStreamView, StreamFactory

__all__ = ["LogStreamWidget", "level_name", "log_line"]

DEFAULT_MAX_LINES = 500
MAX_LINES_LIMIT = 10_000
MESSAGE_CHARS = 2000  # one log line shown at most this long (tracebacks are long)

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


def level_name(level: Any) -> str:
    if isinstance(level, int):
        name = logging.getLevelName(level)
        return name if isinstance(name, str) and not name.startswith("Level ") else str(level)
    return str(level)


def log_line(log: Any) -> tuple[str, str, str]:
    """(time HH:MM:SS.mmm UTC, level name, message) of a Prefect log."""
    _, when = clock_time(getattr(log, "timestamp", None))
    return when, level_name(getattr(log, "level", "")), cut(str(getattr(log, "message", "")), MESSAGE_CHARS)


def _default_factory(**filters: Any) -> Any:
    from ...logs import stream_logs

    return stream_logs(**filters)


class LogStreamWidget(TextForm, LiveStreamView, widgets.VBox):
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

    _what = "log stream"
    _name = "logs"

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
        self._init_stream(stream_factory or _default_factory, max_lines)

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
        self._go_live(max_updates_per_second, max_bytes_per_second, start)

    # ------------------------------------------------------------------ public
    @property
    def level(self) -> str:
        return self._level_field.value

    @property
    def text_filter(self) -> str:
        return self._text_field.value

    @property
    def following(self) -> bool:
        return self._follow_button.value

    def lines(self) -> list[tuple[str, str, str]]:
        """What the view shows now, oldest first: (time, level, message), text filter applied."""
        return self._filtered(self._shown_items())

    def pause(self) -> None:
        self._follow_button.value = False

    def resume(self) -> None:
        self._follow_button.value = True

    # --------------------------------------------------------------- internals
    def _filters(self) -> dict[str, Any]:
        return {"flow_run_id": self.flow_run_id, "task_run_id": self.task_run_id,
                "level": self.level, "since": self.since}

    def _reset_for_start(self) -> None:
        super()._reset_for_start()
        self._items.clear()  # a restart (a new level) starts the view empty
        self.received = 0

    def _on_follow_toggle(self, change: dict[str, Any]) -> None:
        self._follow_button.description = "Following" if change["new"] else "Paused"
        self._follow_button.icon = "pause" if change["new"] else "play"
        self._set_paused(not change["new"])

    def _filtered(self, logs: list[Any]) -> list[tuple[str, str, str]]:
        needle = self._text_field.value.strip().lower()
        lines = [log_line(log) for log in logs]
        if needle:
            lines = [line for line in lines if needle in line[2].lower() or needle in line[1].lower()]
        return lines

    def _snapshot(self) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
        logs, info = self._stream_info()
        stats = info["stats"]
        last_error = getattr(stats, "last_error", None)
        info.update({
            "live": getattr(stats, "live", 0),
            "reconciled": getattr(stats, "reconciled", 0),
            "reconnects": getattr(stats, "reconnects", 0),
            "last_error": str(last_error) if last_error else None,
            "kept": len(logs),
        })
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
                      f"{esc(cut(info['last_error'], 300))}</div>")
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
            out.append(f"  note: {cut(info['last_error'], 300)}")
        for when, level, message in lines[-50:]:
            out.append(f"  {when} {level:<8} {message}".rstrip())
        if len(lines) > 50:
            out.insert(1, f"  (last 50 of {len(lines)} lines)")
        return "\n".join(out)
