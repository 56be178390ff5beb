"""%prefect_watch and %prefect_logs in a real Jupyter kernel (nbclient), real server, flows
running in separate processes.

The server has Prefect's logs websocket on and the auth string ``nbuser:<canary>``; the
kernel gets it only through its environment. Two flow runs are created Pending; the
notebook watches each with ``%prefect_watch`` and starts it in another interpreter (as a
worker would): one logs 3,000 lines and completes, one fails. Each flow also logs the
auth string: the widgets show it masked, and neither the saved notebook (outputs and
widget state) nor the kernel's history holds it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from notebook_support import START_FLOW, assert_no_trace, canary_protected_server, run_notebook, stdout_with

from prefect_nbauth.testing.canaries import forms_of
from prefect_nbauth.testing.logs import FLOWS, LOGS_ON, create_run

# A flow run in a fresh interpreter takes 10-60 s on a busy 2-core machine: more than the
# suite-wide 300 s for a fixture that starts a server, a kernel and two of them.
pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

LINES = 3000


@pytest.fixture(scope="module")
def watch_server(tmp_path_factory: pytest.TempPathFactory):
    with canary_protected_server(tmp_path_factory.mktemp("watch-server"), **LOGS_ON) as (server, canary):
        yield server, canary


def _cells(api_url: str, ok_run: str, failing_run: str) -> list[str]:
    start_flow = (
        "import time, ipywidgets\n"
        "from prefect_nbauth.widgets import FlowRunWidget, LogStreamWidget\n"
        "def newest(cls):\n"
        "    return [w for w in ipywidgets.widgets.widget._instances.values() if isinstance(w, cls)][-1]\n"
        + START_FLOW
    )
    report = (
        "w = newest(FlowRunWidget)\n"
        "assert w.wait(240), 'the watch did not end'\n"
        "process.wait(60)\n"
        "names = [c.name for c in w.watch.timeline]\n"
        "lines = [log.message for log in w.watch.logs if log.message.startswith('line ')]\n"
        "print('{tag}:', w.watch.state_name, names, w.watch.log_count, len(lines), len(set(lines)),\n"
        "      lines == sorted(lines), w.done)\n"
        "print(repr(w))\n"
        "print('STREAMS:', w.watch.log_stream.state, w.watch.log_stream.stats, w.watch.log_stream.error)"
    )
    return [
        "%load_ext prefect_nbauth",
        f"%prefect_login --url {api_url} --auth-string-env NB_TEST_AUTH",
        start_flow,
        f"%prefect_watch {ok_run}",
        f"process = start_flow('{ok_run}', {LINES}, False)",
        report.replace("{tag}", "WATCH OK"),
        f"%prefect_logs --flow-run {ok_run} --level WARNING",
        "logs_widget = newest(LogStreamWidget)\n"
        "deadline = time.monotonic() + 60\n"
        "while not any('credential is' in line[2] for line in logs_widget.lines()):\n"
        "    assert time.monotonic() < deadline\n"
        "    time.sleep(0.05)\n"
        "print('LOGS:', logs_widget.lines()[-1][1], logs_widget.lines()[-1][2])\n"
        # The run's name beside each line, read from the API in the background.
        f"while '{ok_run[:8]}' in repr(logs_widget):\n"
        "    assert time.monotonic() < deadline\n"
        "    time.sleep(0.05)\n"
        "print('LABELLED:', repr(logs_widget).splitlines()[-1])\n"
        "logs_widget.stop()",
        f"import prefect_nbauth\nfailing = prefect_nbauth.widgets.FlowRunWidget('{failing_run}')\nfailing",
        f"process = start_flow('{failing_run}', 5, True)",
        report.replace("{tag}", "WATCH FAILED"),
    ]


@pytest.fixture(scope="module")
def executed(watch_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    server, canary = watch_server
    ok_run = create_run(server.api_url, server.auth_headers())
    failing_run = create_run(server.api_url, server.auth_headers())
    root = tmp_path_factory.mktemp("watch-notebook")
    nb, path, history = run_notebook(_cells(server.api_url, ok_run, failing_run), root, timeout=300,
                                     NB_TEST_AUTH=server.auth_string or "", NB_API_URL=server.api_url,
                                     NB_FLOWS=str(FLOWS))
    return {"nb": nb, "path": path, "history": history, "canary": canary, "auth_string": server.auth_string}


def test_watch_follows_a_run_from_pending_to_completed_with_all_its_logs(executed) -> None:
    text = stdout_with(executed["nb"], "WATCH OK:")
    # state, timeline, all 3,000 lines once and in order, the watch ended by itself
    assert "WATCH OK: Completed ['Pending', 'Running', 'Completed'] " in text, text
    assert f" {LINES} {LINES} True True" in text, text
    assert "Flow run " in text and ": Completed (final)" in text and "logs: " in text


def test_watch_follows_a_failing_run_to_failed(executed) -> None:
    text = stdout_with(executed["nb"], "WATCH FAILED:")
    assert "WATCH FAILED: Failed ['Pending', 'Running', 'Failed'] " in text, text
    assert "this flow fails on purpose" in text
    # The error whole, said to be the flow run's (by its name), its traceback line by line.
    error = re.search(r"\n  error \(flow ([a-z]+-[a-z]+)\):\n((?:    .*\n?)+)", text)
    assert error, text
    assert "    Traceback (most recent call last):" in error.group(2)
    assert "    RuntimeError: this flow fails on purpose" in error.group(2)
    assert f"flow {error.group(1)} · Finished in state Failed(" in text  # each line says its run


def test_the_logs_widget_says_which_run_each_line_is_from(executed) -> None:
    text = stdout_with(executed["nb"], "LABELLED:")
    assert re.search(r"LABELLED: +\S+ WARNING  flow [a-z]+-[a-z]+ · the credential is \*\*\*\*", text), text


def test_logs_magic_and_no_secret_anywhere(executed) -> None:
    text = stdout_with(executed["nb"], "LOGS:")
    assert "LOGS: WARNING the credential is ****" in text, text
    saved = Path(executed["path"]).read_text()
    assert "application/vnd.jupyter.widget-view+json" in saved
    assert_no_trace(forms_of(executed["auth_string"], executed["canary"]), saved=saved,
                    history=executed["history"])
