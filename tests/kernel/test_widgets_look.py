"""What the status and event widgets show, without a browser (issue 15).

Theme colours, the "Log out" button's state, the server line of the status widget,
the event table's layout (fixed columns, one-line cells cut with an ellipsis and
whole on hover and in the expanded row, relative times with the absolute time on
hover), counters kept after ``stop()`` and a state that never goes stale. What
only a browser can measure (contrast, overflow) is in ``test_browser_themes.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from test_widgets import FakeFactory, make_event

from prefect_nbauth.session._auth_status import AuthMode, AuthStatus
from prefect_nbauth.testing import wait_until

# A colour that is not a JupyterLab variable: hex, rgb()/hsl(), or a CSS colour name.
_FIXED_COLOUR = re.compile(
    r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?)\(|"
    r"(?:color|background(?:-color)?|border(?:-[a-z]+)*)\s*:\s*(?:[^;\"'}]*\s)?"
    r"(?:white|black|red|green|blue|orange|gr[ae]y|purple)\b")


def _fixed_colours(text: str) -> list[str]:
    return [m.group(0) for m in _FIXED_COLOUR.finditer(text)]


def _status(**kw: Any) -> AuthStatus:
    base: dict[str, Any] = {"mode": AuthMode.NONE, "api_url": "http://127.0.0.1:4200/api"}
    base.update(kw)
    return AuthStatus(**base)


# ----------------------------------------------------------------- themes

def test_widget_css_uses_only_jupyterlab_theme_variables(comm_log: Any) -> None:  # noqa: F811
    from prefect_nbauth.notebook.widgets._base import THEME_CSS
    from prefect_nbauth.notebook.widgets.events import EVENTS_CSS
    from prefect_nbauth.notebook.widgets.status import _STATUS_CSS, _status_html
    from prefect_nbauth.widgets import AuthStatusWidget, EventStreamWidget

    status = AuthStatusWidget(check_server=False, watch=False)
    status._set_message("boom", "error")
    factory = FakeFactory()
    events = EventStreamWidget(stream_factory=factory)
    stream = factory.streams[0]
    stream.emit(make_event("nbauth.look", "nbauth.r", n=1))
    stream.stats.last_error = "[Errno 111] Connect call failed ('127.0.0.1', 4200)"
    stream.state = "reconnecting"
    warned = _status_html(_status(warnings=("careful",), server_auth="BASIC"), checking=False, checked=True,
                          check_server=True)
    try:
        html = "\n".join([THEME_CSS, EVENTS_CSS, _STATUS_CSS, status._summary.value, status._message.value,
                          events._render_html(), warned, status._style.value, events._style.value])
        assert _fixed_colours(html) == []
        assert "var(--jp-error-color0)" in THEME_CSS and 'data-jp-theme-light="false"' in THEME_CSS
        # The old hard-coded colours are gone.
        for old in ("#c62828", "#2e7d32", "#555", "#1565c0", "#e65100"):
            assert old not in html
    finally:
        status.close()
        events.close()


def test_the_colour_check_catches_fixed_colours() -> None:
    assert _fixed_colours('<b style="color:#2e7d32">') == ["#2e7d32"]
    assert _fixed_colours("background:white;") and _fixed_colours("color: rgb(0,0,0)")
    assert _fixed_colours("color: var(--jp-content-font-color1)") == []


# ----------------------------------------------------------- status widget

def test_log_out_is_disabled_until_someone_logs_in(comm_log: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from prefect_nbauth.notebook.widgets import status as status_module
    from prefect_nbauth.widgets import AuthStatusWidget

    widget = AuthStatusWidget(check_server=False, watch=False)
    try:
        assert not widget.status.logged_in
        assert widget._logout_button.disabled, "Log out must be disabled when nobody is logged in"
        assert not widget._refresh_button.disabled
        monkeypatch.setattr(status_module, "status", lambda **kw: _status(mode=AuthMode.BASIC, logged_in=True,
                                                                           credential="auth string u:****"))
        widget.update()
        assert not widget._logout_button.disabled
        monkeypatch.setattr(status_module, "status", lambda **kw: _status())
        widget.update()
        assert widget._logout_button.disabled
    finally:
        widget.close()


def test_status_says_the_server_requires_an_auth_string_not_no_answer() -> None:
    from prefect_nbauth.notebook.widgets.status import _status_html

    html = _status_html(_status(server_auth="BASIC", warnings=("The server requires an auth string …",)),
                        checking=False, checked=True, check_server=True)
    server = re.search(r'class="pnb-server"><th>Server</th><td>([^<]*)<', html)
    assert server and "requires an auth string" in server.group(1)
    assert "no answer" not in html
    rejected = _status_html(_status(mode=AuthMode.BASIC, warnings=("The server rejects the credential in force: x",)),
                            checking=False, checked=True, check_server=True)
    assert "refuses the credential" in rejected and "no answer" not in rejected
    silent = _status_html(_status(warnings=("Server check failed: timeout",)), checking=False, checked=True,
                          check_server=True)
    assert "no answer" in silent


# ------------------------------------------------------------ event widget

def test_relative_times() -> None:
    from prefect_nbauth.notebook.widgets.events import relative_time

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert relative_time(now - timedelta(seconds=2), now) == "just now"
    assert relative_time(now - timedelta(seconds=17), now) == "15s ago"
    assert relative_time(now - timedelta(minutes=3, seconds=5), now) == "3m ago"
    assert relative_time(now - timedelta(hours=5), now) == "5h ago"
    assert relative_time(now - timedelta(days=2), now) == "2d ago"
    assert relative_time(None, now) == ""


@pytest.fixture
def event_widget(comm_log: Any) -> Iterator[tuple[Any, Any]]:  # noqa: F811
    """An event widget on a fake stream (it shows what the test emits): (widget, stream); closed after."""
    from prefect_nbauth.widgets import EventStreamWidget

    factory = FakeFactory()
    widget = EventStreamWidget(stream_factory=factory)
    try:
        yield widget, factory.streams[0]
    finally:
        widget.close()


def test_event_rows_are_fixed_columns_cut_with_an_ellipsis_and_whole_on_demand(event_widget: tuple[Any, Any]) -> None:
    from prefect_nbauth.notebook.widgets.events import EVENTS_CSS

    widget, stream = event_widget
    name, resource = "prefect.flow-run.Completed", "prefect.flow-run." + "0" * 36
    stream.emit(make_event(name, resource, message="x" * 300))
    wait_until(lambda: name in widget._view.value, 5, "the row")
    view = widget._view.value
    row = re.search(r'<details class="pnb-row"><summary class="pnb-grid" role="row">(.*?)</summary>'
                    r'<div class="pnb-detail">(.*?)</div></details>', view, re.S)
    assert row, view
    cells = re.findall(r'<span class="(pnb-[a-z]+)"(?: title="([^"]*)")?>([^<]*)</span>', row.group(1))
    assert [c[0] for c in cells] == ["pnb-time", "pnb-ev", "pnb-res", "pnb-pay"]
    time_cell = cells[0]
    assert time_cell[2] == "just now" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC", time_cell[1])
    assert cells[1][1] == cells[1][2] == name and cells[2][1] == resource
    assert cells[3][2].endswith("…")  # the preview is cut...
    assert "x" * 300 in row.group(2)  # ...the expanded row holds the whole payload
    assert name in row.group(2) and resource in row.group(2)  # and the whole name and resource
    # Fixed columns that cannot push the table wider than its area; one line per cell.
    assert "grid-template-columns:6.5em minmax(0,4fr) minmax(0,3fr) minmax(0,3fr)" in EVENTS_CSS
    assert "white-space:nowrap;overflow:hidden;text-overflow:ellipsis" in EVENTS_CSS
    assert ".pnb-events .pnb-ev,.pnb-events .pnb-res,.pnb-events .pnb-pay{font-family:var(--jp-code-font-family)" \
        in EVENTS_CSS
    assert "padding:3px 8px" in EVENTS_CSS
    assert "<table" not in view and "<td" not in view


def test_counters_stay_after_stop(event_widget: tuple[Any, Any]) -> None:
    widget, stream = event_widget
    stream.stats.reconnects = 2
    for i in range(3):
        stream.emit(make_event(f"nbauth.kept-{i}"))
    wait_until(lambda: "live 3" in widget._view.value, 5, "the counters")
    widget.stop()
    wait_until(lambda: "<b>stopped</b>" in widget._view.value, 5, "the stopped state")
    view = widget._view.value
    assert "live 3" in view and "reconnects 2" in view and "nbauth.kept-2" in view
    assert "live 3" in repr(widget)
    widget.start()  # a new stream counts from zero
    wait_until(lambda: "live 0" in widget._view.value, 5, "the new stream's counters")


def test_the_state_shown_follows_the_stream_and_errors_read_like_sentences(event_widget: tuple[Any, Any]) -> None:
    widget, stream = event_widget
    raw = "[Errno 111] Connect call failed ('127.0.0.1', 4200)"
    wait_until(lambda: "<b>connected</b>" in widget._view.value, 5, "connected")
    stream.stats = SimpleNamespace(**{**vars(stream.stats), "last_error": raw, "reconnects": 1})
    stream.state = "reconnecting"
    stream.on_change(stream)  # type: ignore[misc]
    wait_until(lambda: "<b>reconnecting</b>" in widget._view.value, 5, "reconnecting")
    view = widget._view.value
    lead = view.split("<details", 1)[0]
    assert "The server does not answer (connection refused); retrying." in lead
    assert "Errno" not in lead and "Errno 111" in view  # the raw text is one click away
    # The stream reconnects and its change notice is lost (or late): the widget
    # still shows the stream's state within a few seconds, and the error as past.
    stream.state = "connected"
    wait_until(lambda: "<b>connected</b>" in widget._view.value, 10, "the state to catch up by itself")
    view = widget._view.value
    assert "<b>reconnecting</b>" not in view and "does not answer" not in view
    assert "recovered from a connection problem" in view
    # One wording for reconnects: the counter in the head, never a second count beside it.
    assert view.count("reconnect") == 1 and "reconnects 1" in view
    stream.stats = SimpleNamespace(**{**vars(stream.stats), "reconnects": 0})  # the first connect failed
    stream.on_change(stream)  # type: ignore[misc]
    wait_until(lambda: "reconnects 0" in widget._view.value, 10, "the counter")
    view = widget._view.value
    assert view.count("reconnect") == 1 and "recovered from a connection problem" in view


def test_row_ages_move_on_without_new_events(event_widget: tuple[Any, Any]) -> None:
    from prefect.events.schemas.events import Event

    widget, stream = event_widget
    old = datetime.now(timezone.utc) - timedelta(seconds=3)
    stream.emit(Event(event="nbauth.ageing", resource={"prefect.resource.id": "r"}, occurred=old))
    wait_until(lambda: ">just now<" in widget._view.value, 5, "just now")
    wait_until(lambda: ">5s ago<" in widget._view.value, 15, "the age to move on by itself")
