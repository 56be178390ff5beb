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

from ...logs import RunNames
from ._base import SafeHTML, TextForm, clock_time, cut, cut_middle, esc, theme_style
from ._live import LiveStreamView, StreamFactory

__all__ = ["LOG_CSS", "LogStreamWidget", "level_name", "log_line", "log_row_html", "log_text_line"]

DEFAULT_MAX_LINES = 500
MAX_LINES_LIMIT = 10_000
MESSAGE_CHARS = 6000  # one log line shown at most this long, start and end kept (tracebacks are long)

# The log view's layout and colours, sent once per widget (a hidden style child), not with
# each update. Single-spaced monospace rows: ipywidgets' HTML widget sets its content's
# line-height to the 28 px height of an input control (--jp-widgets-inline-height), which
# double-spaces 13 px log lines; the view resets it. A row is a flex line: time, level, then
# the message column, which keeps a traceback's own line breaks and indentation. Colours are
# THEME_CSS's classes (readable in light and dark themes): errors in the error colour,
# warnings marked by an orange bar (orange text is not readable on white), debug muted.
LOG_CSS = """
.pnb-w.pnb-logs, .pnb-w.pnb-run { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 13px); line-height: var(--jp-code-line-height, 1.3846); }
.pnb-log { display: flex; gap: 0.6em; align-items: baseline; border-left: 3px solid transparent; padding-left: 4px; }
.pnb-log > .pnb-t { white-space: nowrap; }
.pnb-log > .pnb-l { min-width: 4.5em; font-weight: 600; }
.pnb-log > .pnb-msg { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; flex: 1; }
.pnb-log.pnb-lv-warning { border-left-color: var(--jp-warn-color1); }
.pnb-log.pnb-lv-error, .pnb-log.pnb-lv-critical { border-left-color: var(--jp-error-color1); }
.pnb-log-box { display: flex; flex-direction: column-reverse; overflow-y: auto; }
.pnb-run-error { border-left: 3px solid var(--jp-error-color1); padding: 2px 0 2px 8px; margin: 4px 0; }
.pnb-run-error > .pnb-msg { white-space: pre-wrap; overflow-wrap: anywhere; }
"""
LEVEL_CLASSES = {"DEBUG": "pnb-muted", "ERROR": "pnb-error", "CRITICAL": "pnb-error"}
STATE_KINDS = {"connected": "ok", "polling": "info", "reconnecting": "warn", "stopped": "off"}
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def level_name(level: Any) -> str:
    if isinstance(level, int):
        name = logging.getLevelName(level)
        return name if isinstance(name, str) and not name.startswith("Level ") else str(level)
    return str(level)


def log_line(log: Any) -> tuple[str, str, str]:
    """(time HH:MM:SS.mmm UTC, level name, message) of a Prefect log."""
    _, when = clock_time(getattr(log, "timestamp", None))
    return when, level_name(getattr(log, "level", "")), cut_middle(str(getattr(log, "message", "")), MESSAGE_CHARS)


def log_row_html(line: tuple[str, str, str], source: str) -> str:
    """One log line as a row (:data:`LOG_CSS`): time, level, then the run it is from and the message."""
    when, level, message = line
    src = f'<span class="pnb-src pnb-muted">{esc(source)}</span> ' if source else ""
    return (f'<div class="pnb-log pnb-lv-{esc(level.lower())}"><span class="pnb-t pnb-muted">{esc(when)}</span>'
            f'<span class="pnb-l {LEVEL_CLASSES.get(level, "")}">{esc(level)}</span>'
            f'<span class="pnb-msg">{src}{esc(message)}</span></div>')


def log_text_line(line: tuple[str, str, str], source: str) -> str:
    """The text form of one log line (a terminal, a saved notebook without widgets)."""
    when, level, message = line
    return f"{when} {level:<8} " + (f"{source} · " if source else "") + message


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
        self._names = RunNames(on_change=lambda: self._throttle.poke())  # "task prepare-3f1" beside a line
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
        self._view = SafeHTML()
        self._level_field.observe(lambda _: self.start(), "value")
        self._text_field.observe(lambda _: self._throttle.poke(), "value")
        self._follow_button.observe(self._on_follow_toggle, "value")
        self._clear_button.on_click(lambda _: self.clear())
        self.children = [
            theme_style(LOG_CSS),
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
        return [line for line, _ in self._filtered(self._shown_items())]

    def close(self) -> None:
        if "_names" in self.__dict__:
            self._names.close()
        super().close()

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

    def _on_item(self, item: Any, generation: int) -> None:
        self._names.want(item)  # O(1): the run's name is read in the background
        super()._on_item(item, generation)

    def _filtered(self, logs: list[Any]) -> list[tuple[tuple[str, str, str], str]]:
        """(line, the run it is from) of each log shown, the text filter applied to all three."""
        needle = self._text_field.value.strip().lower()
        shown = [(log_line(log), self._names.label(log)) for log in logs]
        if needle:
            shown = [(line, source) for line, source in shown
                     if needle in line[2].lower() or needle in line[1].lower() or needle in source.lower()]
        return shown

    def _snapshot(self) -> tuple[list[tuple[tuple[str, str, str], str]], dict[str, Any]]:
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
        kind = STATE_KINDS.get(state, "info")
        head = (f'<div class="pnb-state"><b>{esc(self.title)}</b> · '
                f'<span class="pnb-dot pnb-{kind}" aria-hidden="true"></span><b>{esc(state)}</b>'
                f" · {esc(self._counters(info))}")
        if info["paused"]:
            head += f" · <b>paused</b> ({info['new_since_pause']} new)"
        if self._text_field.value.strip():
            head += f" · {len(lines)} of {info['kept']} match"
        head += "</div>"
        notes = ""
        if info["error"]:
            notes += f'<div class="pnb-note pnb-error"><span class="pnb-error">{esc(info["error"])}</span></div>'
        if info["last_error"] and state not in ("connected",):
            notes += f'<div class="pnb-last-error pnb-muted">{esc(cut(info["last_error"], 300))}</div>'
        if lines:
            body = "".join(log_row_html(line, source) for line, source in lines)
            # column-reverse keeps the box scrolled to the newest (bottom) line.
            view = f'<div class="pnb-log-box" style="max-height:30em"><div>{body}</div></div>'
        else:
            view = '<div class="pnb-empty pnb-muted">No logs yet.</div>'
        return f'<div class="pnb-logs pnb-w">{head}{notes}{view}</div>'

    def text_form(self) -> str:
        lines, info = self._snapshot()
        out = [f"{self.title}: {info['state']} · {self._counters(info)}" + (" · paused" if info["paused"] else "")]
        if info["error"]:
            out.append(f"  ! {info['error']}")
        if info["last_error"] and info["state"] != "connected":
            out.append(f"  note: {cut(info['last_error'], 300)}")
        for line, source in lines[-50:]:
            out.append(f"  {log_text_line(line, source)}".rstrip())
        if len(lines) > 50:
            out.insert(1, f"  (last 50 of {len(lines)} lines)")
        return "\n".join(out)
