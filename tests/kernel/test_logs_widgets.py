"""LogStreamWidget and the %prefect_logs / %prefect_watch magics, without a server.

The widget is driven by a fake stream (the shape of ``stream_logs``); a recording comm
captures what would go to the front end.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from test_widgets import FakeFactory

from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.widgets import all_state_json, front_end_update, updates_of

RUN = str(uuid.uuid4())


def make_log(i: int, level: int = 20, message: str | None = None, task_run_id: str | None = None) -> Any:
    from prefect_nbauth.logs._engine import _log_class

    return _log_class()(id=uuid.uuid4(), name="prefect.flow_runs", level=level,
                        message=message if message is not None else f"line {i:05d}",
                        timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=i),
                        flow_run_id=RUN, task_run_id=task_run_id)


def test_each_line_says_which_task_or_flow_it_is_from(comm_log: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect writes "Finished in state Completed()" for every task and for the flow: each
    line carries its run's name (read from the API once per run, in the background)."""
    from prefect_nbauth.logs import _sources
    from prefect_nbauth.widgets import LogStreamWidget

    named, unnamed = str(uuid.uuid4()), str(uuid.uuid4())
    asked: list[list[tuple[str, str]]] = []

    def read(wanted: Any) -> dict[tuple[str, str], str]:
        asked.append(list(wanted))
        known = {("task", named): "prepare-3f1", ("flow", RUN): "crazy-cat"}
        return {key: known[key] for key in wanted if key in known}

    monkeypatch.setattr(_sources, "_read_names", read)
    factory = FakeFactory()
    widget = LogStreamWidget(RUN, stream_factory=factory)
    stream = factory.streams[0]
    stream.emit(make_log(1, message="Finished in state Completed()", task_run_id=named))
    stream.emit(make_log(2, message="Finished in state Completed()", task_run_id=unnamed))
    stream.emit(make_log(3, message="Finished in state Completed()"))
    stream.emit(make_log(4, message="another line of the same task", task_run_id=named))
    wait_until(lambda: "flow crazy-cat" in widget._view.value and "task prepare-3f1" in widget._view.value, 10,
               "the runs' names in the view")
    view = widget._view.value
    assert f"task {unnamed[:8]}" in view  # not known (yet): its id's start, never nothing
    assert view.count('class="pnb-log ') == 4 and view.count('class="pnb-src ') == 4
    assert sorted(key for batch in asked for key in batch) == sorted(
        [("task", named), ("task", unnamed), ("flow", RUN)])  # each run asked for once
    text = repr(widget)
    assert "task prepare-3f1 · Finished in state Completed()" in text
    assert "flow crazy-cat · Finished in state Completed()" in text
    # The text filter finds a run by its name too.
    front_end_update(widget._text_field, value="prepare-3f1")
    assert [line[2] for line in widget.lines()] == ["Finished in state Completed()", "another line of the same task"]
    widget.close()


def test_a_traceback_keeps_its_lines_its_start_and_its_end(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.notebook.widgets.logs import MESSAGE_CHARS
    from prefect_nbauth.widgets import LogStreamWidget

    frames = "".join(f'  File "/srv/flows/step_{i}.py", line {i}, in step_{i}\n    do_step_{i}()\n'
                     for i in range(200))
    traceback = f"Encountered exception during execution:\nTraceback (most recent call last):\n{frames}" \
                "RuntimeError: this flow fails on purpose"
    assert len(traceback) > MESSAGE_CHARS
    factory = FakeFactory()
    widget = LogStreamWidget(RUN, stream_factory=factory)
    factory.streams[0].emit(make_log(1, level=40, message=traceback))
    wait_until(lambda: "RuntimeError" in widget._view.value, 5, "the traceback")
    view = widget._view.value
    assert "Traceback (most recent call last):" in view and "RuntimeError: this flow fails on purpose" in view
    assert "characters not shown" in view  # the middle, said
    assert '<span class="pnb-msg">' in view and '\n    do_step_0()\n' in view  # its own lines and indentation
    from prefect_nbauth.notebook.widgets.logs import LOG_CSS

    assert ".pnb-log > .pnb-msg { white-space: pre-wrap;" in LOG_CSS
    widget.close()


def test_log_widget_lines_levels_filter_pause(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import LogStreamWidget

    factory = FakeFactory()
    widget = LogStreamWidget(RUN, level="WARNING", max_lines=100, stream_factory=factory)
    stream = factory.streams[0]
    assert stream.filters == {"flow_run_id": RUN, "task_run_id": None, "level": "WARNING", "since": None}
    for i in range(150):
        stream.emit(make_log(i, level=40 if i % 10 == 0 else 30, message=f"line {i:05d} <b>x</b>"))
    lines = widget.lines()
    assert len(lines) == 100 and lines[0][2].startswith("line 00050") and lines[-1][2].startswith("line 00149")
    assert lines[-1][1] == "WARNING" and lines[-10][1] == "ERROR"
    wait_until(lambda: "line 00149" in widget._view.value, 5, "the newest line in the view")
    view = widget._view.value
    assert 'class="pnb-log pnb-lv-error"' in view and 'class="pnb-log pnb-lv-warning"' in view  # marked rows
    assert '<span class="pnb-l pnb-error">ERROR</span>' in view and 'class="pnb-log-box"' in view
    from prefect_nbauth.notebook.widgets.logs import LOG_CSS

    style = widget.children[0].value  # once per widget, not in every update
    assert LOG_CSS in style and "var(--jp-code-font-family" in style and "column-reverse" in style
    assert "&lt;b&gt;x&lt;/b&gt;" in view and "<b>x</b>" not in view  # escaped
    assert "<b>connected</b>" in view and "150 lines" in view
    # The text filter works on what is shown, at once.
    front_end_update(widget._text_field, value="00149")
    assert [line[2] for line in widget.lines()] == ["line 00149 <b>x</b>"]
    wait_until(lambda: "1 of 100 match" in widget._view.value, 5, "the filtered view")
    front_end_update(widget._text_field, value="")
    # Pause freezes the view; lines keep arriving underneath.
    widget.pause()
    stream.emit(make_log(150, level=30))
    assert widget.lines()[-1][2].startswith("line 00149") and widget.received == 151
    wait_until(lambda: "paused</b> (1 new)" in widget._view.value, 5, "the paused note")
    widget.resume()
    assert widget.lines()[-1][2] == "line 00150"
    # The level dropdown restarts the stream with the new level.
    front_end_update(widget._level_field, index=3)  # a Dropdown syncs its index
    wait_until(lambda: len(factory.streams) == 2, 5, "a restarted stream")
    assert factory.streams[1].filters["level"] == "ERROR" and stream.stopped.is_set()
    text = repr(widget)
    assert text.startswith("Prefect logs: connected")
    widget.close()


def test_log_widget_updates_are_batched_and_within_the_byte_budget(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import LogStreamWidget

    factory = FakeFactory()
    widget = LogStreamWidget(RUN, max_lines=200, stream_factory=factory, max_bytes_per_second=50_000)
    stream = factory.streams[0]
    wait_until(lambda: "connected" in widget._view.value, 5, "the connected state")
    start = time.monotonic()
    pace = threading.Event()
    n = 0
    while time.monotonic() - start < 2.0:  # 2,000 lines/s
        for _ in range(20):
            stream.emit(make_log(n, message=f"line {n:05d} " + "p" * 60))
            n += 1
        pace.wait(max(0.0, start + n / 2000 - time.monotonic()))
    wait_until(lambda: f"line {n - 1:05d}" in widget._view.value, 10, "the last line in the view")
    updates = [m for m in updates_of(comm_log, widget._view) if m["time"] >= start]
    window = time.monotonic() - start
    assert 2 <= len(updates) <= 10 * window + 1, (len(updates), window)
    assert sum(m["bytes"] for m in updates) <= 50_000 * window + max(m["bytes"] for m in updates)
    assert widget.received == n
    widget.close()


def test_log_widget_keeps_no_secret_in_widget_state(comm_log: list[dict[str, Any]]) -> None:
    """The stream masks the credential in messages; the widget shows only what it gets."""
    from prefect_nbauth.widgets import LogStreamWidget

    factory = FakeFactory()
    widget = LogStreamWidget(RUN, stream_factory=factory)
    factory.streams[0].emit(make_log(1, message="the credential is ****w#rd"))
    wait_until(lambda: "credential" in widget._view.value, 5, "the line")
    assert "p@ss" not in all_state_json(widget)
    widget.close()


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "prefect_nbauth")
    yield shell


def test_magics_refuse_bad_input_with_usage_errors(shell) -> None:
    from IPython.core.error import UsageError

    for line, expected in (("--flow-run not-a-uuid", "neither a run id nor the name of a variable"),
                           ("--level LOUD", "Unknown log level"),
                           ("--since yesterday", "not understood"), ("--max-lines 0", "--max-lines")):
        with pytest.raises(UsageError, match=expected):
            shell.run_line_magic("prefect_logs", line)
    with pytest.raises(UsageError, match="neither a run id nor the name of a variable"):
        shell.run_line_magic("prefect_watch", "nope-nope")
    # A valid line in a terminal (no kernel): it says a widget needs a front end.
    with pytest.raises(UsageError, match="needs a Jupyter front end"):
        shell.run_line_magic("prefect_logs", f"--flow-run {RUN} --level warning --since 10m")


@pytest.fixture
def shown(shell, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What the run magics would display, as (widget, arguments), with a kernel faked in."""
    from prefect_nbauth.notebook.widgets import logs, run

    seen: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    monkeypatch.setattr(run, "FlowRunWidget", lambda run_id, **kw: seen.append(("watch", {"run": run_id, **kw})))
    monkeypatch.setattr(logs, "LogStreamWidget", lambda **kw: seen.append(("logs", kw)))
    monkeypatch.setattr("prefect_nbauth.notebook.magics.runs.display", lambda obj: None)
    return seen


def test_every_magic_taking_a_run_id_accepts_a_literal_a_name_and_dollar_name(shell, shown) -> None:
    from prefect.client.schemas.objects import FlowRun, State, StateDetails, StateType, TaskRun

    rid, tid = uuid.uuid4(), uuid.uuid4()
    holders = {"as_text": str(rid), "as_uuid": rid, "as_flow_run": FlowRun(id=rid, flow_id=uuid.uuid4(), name="x"),
               "as_state": State(type=StateType.COMPLETED, state_details=StateDetails(flow_run_id=rid))}
    shell.user_ns.update(holders, task_text=str(tid),
                         task_run=TaskRun(id=tid, flow_run_id=rid, task_key="k", dynamic_key="0", name="t"))
    for text in [str(rid), *holders, *(f"${name}" for name in holders)]:
        shown.clear()
        shell.run_line_magic("prefect_watch", text)
        shell.run_line_magic("prefect_logs", f"--flow-run {text}")
        assert shown == [("watch", {"run": rid, "level": "INFO"}),
                         ("logs", {"flow_run_id": [rid], "task_run_id": None, "level": "INFO", "since": None,
                                   "max_lines": 500})], text
    for text in (str(tid), "task_text", "$task_text", "task_run", "$task_run"):
        shown.clear()
        shell.run_line_magic("prefect_logs", f"--task-run {text}")
        assert shown[0][1]["task_run_id"] == [tid], text


def test_a_run_argument_that_names_nothing_says_what_works_and_never_shows_the_value(shell, shown) -> None:
    from IPython.core.error import UsageError

    secret = "nbuser:" + uuid.uuid4().hex
    shell.user_ns.update(not_a_run=secret, a_number=42)
    for magic, prefix in (("prefect_watch", ""), ("prefect_logs", "--flow-run "), ("prefect_logs", "--task-run ")):
        for text, expected in (("$missing", "there is no variable 'missing' in this notebook"),
                               ("$not_a_run", "the variable 'not_a_run' holds a str, which names no"),
                               ("not_a_run", "the variable 'not_a_run' holds a str, which names no"),
                               ("$a_number", "the variable 'a_number' holds a int, which names no"),
                               ("nope-nope", "neither a run id nor the name of a variable")):
            with pytest.raises(UsageError) as caught:
                shell.run_line_magic(magic, prefix + text)
            message = str(caught.value)
            assert expected in message, (magic, text, message)
            assert secret not in message and secret.split(":")[1] not in message
            if "no variable" not in message:
                assert "as NAME or $NAME" in message  # what would work
    assert shown == []


def test_run_id_of_accepts_what_prefect_returns() -> None:
    from prefect.client.schemas.objects import FlowRun, State, StateDetails, StateType

    from prefect_nbauth import ConfigurationError
    from prefect_nbauth.runs import run_id_of

    rid = uuid.uuid4()
    assert run_id_of(str(rid)) == rid and run_id_of(rid) == rid
    assert run_id_of(FlowRun(id=rid, flow_id=uuid.uuid4(), name="x")) == rid
    assert run_id_of(State(type=StateType.COMPLETED, state_details=StateDetails(flow_run_id=rid))) == rid
    with pytest.raises(ConfigurationError, match="return_state=True"):
        run_id_of(object())


def test_run_id_of_takes_run_deployments_coroutine_inside_a_running_loop() -> None:
    """In a notebook cell Prefect's run_deployment() returns a coroutine (the cell runs in an
    event loop): watch(run_deployment(...)) works without the reader awaiting it."""
    import asyncio

    from prefect.client.schemas.objects import FlowRun

    from prefect_nbauth.runs import run_id_of

    rid = uuid.uuid4()

    async def arun_deployment() -> FlowRun:  # what Prefect's coroutine resolves to
        await asyncio.sleep(0)
        return FlowRun(id=rid, flow_id=uuid.uuid4(), name="x")

    async def a_notebook_cell() -> uuid.UUID:  # the kernel's loop is running here
        return run_id_of(arun_deployment())

    assert asyncio.run(a_notebook_cell()) == rid

    async def failing() -> FlowRun:
        raise LookupError("Deployment 'nope/nope' not found")

    with pytest.raises(LookupError, match="not found"):  # Prefect's own error, not a made-up one
        run_id_of(failing())
