"""FlowRunWidget: one flow run, live: name, state badge, timeline, task runs, logs.

A view of :class:`prefect_nbauth.runs.RunWatch`, rendered like the other
widgets: one HTML update at most ``max_updates_per_second`` times a second on
a :class:`Throttle` thread, colours from JupyterLab's theme variables, a
readable text form (the watch's summary). It stops following by itself once
the run is final and its last log lines are in.
"""

from __future__ import annotations

import threading
from datetime import timezone
from typing import Any

import ipywidgets as widgets

from ...logs import source_label
from ...runs import RunWatch, run_id_of
from ._base import SafeHTML, TextForm, cut_middle, esc, theme_style
from ._live import ThrottledView
from .logs import LOG_CSS, log_line, log_row_html

ERROR_CHARS = 20_000  # a failed run's error is shown whole up to this (start and end kept)

__all__ = ["FlowRunWidget", "run_id_of"]

STATE_BADGE = {
    "COMPLETED": "var(--jp-success-color0, #2e7d32)",
    "FAILED": "var(--jp-error-color0, #c62828)",
    "CRASHED": "var(--jp-error-color0, #c62828)",
    "CANCELLED": "var(--jp-ui-font-color2, #757575)",
    "CANCELLING": "var(--jp-warn-color0, #e65100)",
    "RUNNING": "var(--jp-brand-color1, #1565c0)",
    "PENDING": "var(--jp-ui-font-color2, #757575)",
    "SCHEDULED": "var(--jp-ui-font-color2, #757575)",
    "PAUSED": "var(--jp-warn-color0, #e65100)",
}


# Both themes' error red (#d32f2f) reads with white letters only (4.98:1; black: 4.22:1); the
# other badges take the theme's inverse text colour (white on light, black on dark).
WHITE_TEXT = {"FAILED", "CRASHED"}


def _badge(state_type: str | None, name: str | None) -> str:
    colour = STATE_BADGE.get(state_type or "", "var(--jp-ui-font-color2, #757575)")
    text = "#fff" if state_type in WHITE_TEXT else "var(--jp-ui-inverse-font-color0,#fff)"
    return (f'<span class="pnb-badge" style="background:{colour};color:{text};'
            f'border-radius:8px;padding:0 8px">{esc(name or "unknown")}</span>')


class FlowRunWidget(TextForm, ThrottledView, widgets.VBox):
    """Watch one flow run (an id, the ``FlowRun`` of ``run_deployment()`` or the ``State``
    of ``my_flow(return_state=True)``) until it is final."""

    def __init__(self, run: Any, *, level: str | int | None = "INFO", max_log_lines: int = 500,
                 max_updates_per_second: float = 10.0, max_bytes_per_second: float = 100_000.0,
                 quiet: float = 3.0) -> None:
        super().__init__()
        self.run_id = run_id_of(run)
        self.max_log_lines = max_log_lines
        self._view = SafeHTML()
        self.children = [theme_style(LOG_CSS), self._view]
        self.add_class("prefect-nbauth-run")
        self._start_throttle("prefect-nbauth-run-view", max_updates_per_second, max_bytes_per_second)
        self.watch = RunWatch(self.run_id, level=level, quiet=quiet, max_logs=max(10_000, max_log_lines),
                              on_change=lambda _w: self._throttle.poke())
        self._view.value = self._render_html()
        self.watch.start()
        self._closer = threading.Thread(target=self._close_when_done, name="prefect-nbauth-run-done",
                                        daemon=True)
        self._closer.start()

    @property
    def done(self) -> bool:
        return self.watch.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.watch.wait(timeout)

    def stop(self) -> None:
        self.watch.stop()
        self._throttle.poke()

    def close(self) -> None:
        if "watch" in self.__dict__:
            self.watch.stop()
            self._throttle.close()
        self._view.close()
        super().close()

    def _close_when_done(self) -> None:
        self.watch.wait()
        self._throttle.poke()  # the final view; the throttle thread stays for later redraws

    def _render_html(self) -> str:
        w = self.watch
        with w._lock:
            timeline = list(w.timeline)
            tasks = sorted(w.tasks.values(), key=lambda t: t.name)
            logs = list(w.logs[-self.max_log_lines:])
            count = w.log_count
            failure = w.failure_log() if w.done.is_set() else None
        names = w.run_names()
        following = "final" if w.done.is_set() else "following"
        head = (f'<div class="pnb-run-head"><b>{esc(w.name or w.run_id)}</b> '
                f'<span class="pnb-muted">{esc(w.flow_name or "")} · '
                f"{esc(w.run_id)}</span> {_badge(w.state_type, w.state_name)} "
                f'<span class="pnb-following pnb-muted">{following}</span></div>')
        steps = " → ".join(
            f'{_badge(c.type, c.name)} <span class="pnb-muted">'
            f"{c.at.astimezone(timezone.utc):%H:%M:%S}</span>" for c in timeline)
        timeline_html = f'<div class="pnb-timeline">{steps or "no state yet"}</div>'
        if tasks:
            rows = "".join(f"<tr><td>{esc(t.name)}</td><td>{_badge(t.state_type, t.state_name)}</td></tr>"
                           for t in tasks)
            tasks_html = f'<details open><summary>task runs ({len(tasks)})</summary><table>{rows}</table></details>'
        else:
            tasks_html = '<div class="pnb-tasks">no task runs</div>'
        lines = "".join(log_row_html(log_line(log), source_label(log, names)) for log in logs)
        logs_html = (f'<div class="pnb-run-logs-head">logs: {count} lines'
                     + (f" (last {len(logs)} shown)" if count > len(logs) else "") + "</div>"
                     f'<div class="pnb-log-box" style="max-height:24em"><div>{lines}</div></div>')
        error = (f'<div class="pnb-note pnb-error"><span class="pnb-error">{esc(w.error)}</span></div>'
                 if w.error else "")
        return (f'<div class="pnb-run pnb-w">{head}{timeline_html}{tasks_html}{error}'
                f"{_failure_html(failure, names)}{logs_html}</div>")

    def text_form(self) -> str:
        return self.watch.summary() if "watch" in self.__dict__ else "<FlowRunWidget>"


def _failure_html(log: Any, names: Any) -> str:
    """A failed run's error (its last ERROR line, a traceback), whole, above the scrolling logs."""
    if log is None:
        return ""
    source = source_label(log, names)
    return ('<div class="pnb-run-error"><b>error</b>'
            + (f' <span class="pnb-src pnb-muted">{esc(source)}</span>' if source else "")
            + f'<div class="pnb-msg">{esc(cut_middle(str(getattr(log, "message", "")), ERROR_CHARS))}</div></div>')

