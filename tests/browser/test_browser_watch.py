"""%prefect_watch in JupyterLab with Debian's chromium: a run followed to Completed, one to Failed.

Uses the JupyterLab harness of ``lab_support`` (the ``lab`` fixture). The kernel gets the server's
auth string through its environment (``%prefect_login --auth-string-env``); two flow
runs are created Pending and started from the notebook in separate interpreters, as a
worker would. What only a browser shows: the watch widget renders, its state badge turns
Completed (and Failed), the timeline and the logs appear. Screenshots go to
``test-artifacts/browser-watch-*.png`` (gitignored). The saved notebook (with widget
state) holds no trace of the auth string, which the flows also log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_support import ARTIFACTS, BROWSER_MARKS, JupyterLab, notebook_page, run_cell, save_notebook
from notebook_support import START_FLOW, assert_no_trace, build_notebook, canary_protected_server

from prefect_nbauth.testing.canaries import forms_of
from prefect_nbauth.testing.logs import FLOWS, LOGS_ON, create_run

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(900)]


def _notebook(api_url: str, ok_run: str, failing_run: str) -> Any:
    return build_notebook([
        f"%load_ext prefect_nbauth\n%prefect_login --url {api_url} --auth-string-env NB_TEST_AUTH",
        START_FLOW,
        f"%prefect_watch {ok_run}",
        f"process = start_flow('{ok_run}', 300, False, LOG_TASKS='2')",
        f"%prefect_watch {failing_run}",
        f"process = start_flow('{failing_run}', 5, True, LOG_TASKS='2')",
    ])


@pytest.fixture(scope="module")
def watch_server(tmp_path_factory: pytest.TempPathFactory):
    with canary_protected_server(tmp_path_factory.mktemp("browser-watch-server"), **LOGS_ON) as (server, canary):
        yield server, canary


def test_watch_widget_in_jupyterlab_follows_runs_to_completed_and_failed(watch_server, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    server, canary = watch_server
    ok_run = create_run(server.api_url, server.auth_headers())
    failing_run = create_run(server.api_url, server.auth_headers())
    ARTIFACTS.mkdir(exist_ok=True)
    notebook = lab.work / "watch.ipynb"
    nbformat.write(_notebook(server.api_url, ok_run, failing_run), str(notebook))
    lab.env.update(NB_TEST_AUTH=server.auth_string or "", NB_API_URL=server.api_url, NB_FLOWS=str(FLOWS))
    lab.start()
    shots: list[Path] = []
    with notebook_page(lab, notebook.name, width=1280, height=1400, timeout_ms=120_000,
                       failure_shot=ARTIFACTS / "browser-watch-failure.png") as page:
        for index in (0, 1, 2):
            run_cell(page, index)
        runs = page.locator(".prefect-nbauth-run")
        first = runs.nth(0)
        expect(first.locator(".pnb-run-head .pnb-badge")).to_have_text("Pending")
        run_cell(page, 3)  # the flow starts in another process
        expect(first.locator(".pnb-run-head .pnb-badge")).to_have_text("Completed", timeout=240_000)
        expect(first.locator(".pnb-following")).to_have_text("final", timeout=120_000)
        expect(first.locator(".pnb-run-logs-head")).to_contain_text("logs: 30", timeout=60_000)
        expect(first).to_contain_text("line 00299")
        expect(first.locator(".pnb-timeline")).to_contain_text("Running")
        expect(first).to_contain_text("task runs (2)")
        first.scroll_into_view_if_needed()
        shots.append(ARTIFACTS / "browser-watch-completed.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        run_cell(page, 4)
        run_cell(page, 5)
        second = runs.nth(1)
        expect(second.locator(".pnb-run-head .pnb-badge")).to_have_text("Failed", timeout=240_000)
        expect(second.locator(".pnb-following")).to_have_text("final", timeout=120_000)
        expect(second).to_contain_text("this flow fails on purpose")
        second.scroll_into_view_if_needed()
        shots.append(ARTIFACTS / "browser-watch-failed.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        save_notebook(page)
    lab.stop()

    saved = notebook.read_text()
    assert "Completed" in saved and "Failed" in saved and "the credential is ****" in saved
    assert_no_trace(forms_of(canary, server.auth_string or canary), saved=saved)
    for shot in shots:
        assert shot.stat().st_size > 10_000
