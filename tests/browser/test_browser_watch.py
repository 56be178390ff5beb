"""%prefect_watch in JupyterLab with Debian's chromium: a run followed to Completed, one to Failed.

Reuses the JupyterLab harness of ``test_browser_lab``. The kernel gets the server's
auth string through its environment (``%prefect_login --auth-string-env``); two flow
runs are created Pending and started from the notebook in separate interpreters, as a
worker would. What only a browser shows: the watch widget renders, its state badge turns
Completed (and Failed), the timeline and the logs appear. Screenshots go to
``test-artifacts/browser-watch-*.png`` (gitignored). The saved notebook (with widget
state) holds no trace of the auth string, which the flows also log.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from canaries import leak_forms
from logs_support import FLOWS, LOGS_ON, create_run
from test_browser_lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, JupyterLab, _run_cell
from test_browser_lab import pytestmark as _browser_marks

from prefect_nbauth.testing._server import PrefectServer, isolated_env

pytestmark = [*_browser_marks, pytest.mark.timeout(900)]

START_FLOW = (
    "import os, subprocess, sys, tempfile\n"
    "def start_flow(run_id, lines, fail):\n"
    "    env = {k: v for k, v in os.environ.items() if not k.startswith('PREFECT_')}\n"
    "    env.update(PREFECT_API_URL=os.environ['NB_API_URL'], PREFECT_API_AUTH_STRING=os.environ['NB_TEST_AUTH'],\n"
    "               PREFECT__FLOW_RUN_ID=run_id, PREFECT_HOME=tempfile.mkdtemp(), LOG_LINES=str(lines),\n"
    "               LOG_FAIL='1' if fail else '0', LOG_CANARY=os.environ['NB_TEST_AUTH'], LOG_TASKS='2')\n"
    "    return subprocess.Popen([sys.executable, '-m', 'prefect.flow_engine', os.environ['NB_FLOWS'] + ':burst'],\n"
    "                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
)


def _notebook(api_url: str, ok_run: str, failing_run: str) -> dict[str, Any]:
    sources = [
        f"%load_ext prefect_nbauth\n%prefect_login --url {api_url} --auth-string-env NB_TEST_AUTH",
        START_FLOW,
        f"%prefect_watch {ok_run}",
        f"process = start_flow('{ok_run}', 300, False)",
        f"%prefect_watch {failing_run}",
        f"process = start_flow('{failing_run}', 5, True)",
    ]
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(sources)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.fixture(scope="module")
def watch_server(tmp_path_factory: pytest.TempPathFactory):
    canary = "CANARY" + secrets.token_hex(12)
    server = PrefectServer(tmp_path_factory.mktemp("browser-watch-server"), auth_string=f"nbuser:{canary}",
                           extra_env=LOGS_ON)
    server.start()
    try:
        yield server, canary
    finally:
        server.stop()


def test_watch_widget_in_jupyterlab_follows_runs_to_completed_and_failed(watch_server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, canary = watch_server
    ok_run = create_run(server.api_url, server.auth_headers())
    failing_run = create_run(server.api_url, server.auth_headers())
    ARTIFACTS.mkdir(exist_ok=True)
    work, ipython_dir, prefect_home = tmp_path / "work", tmp_path / "ipython", tmp_path / "prefect-home"
    for d in (work, ipython_dir, prefect_home):
        d.mkdir()
    notebook = work / "watch.ipynb"
    notebook.write_text(json.dumps(_notebook(server.api_url, ok_run, failing_run), indent=1))
    env = isolated_env(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                       IPYTHONDIR=str(ipython_dir), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"), NB_TEST_AUTH=server.auth_string or "",
                       NB_API_URL=server.api_url, NB_FLOWS=str(FLOWS))
    lab = JupyterLab(tmp_path, env)
    shots: list[Path] = []
    try:
        lab.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.set_default_timeout(120_000)
                expect.set_options(timeout=120_000)
                page.goto(f"{lab.url}/lab/tree/{notebook.name}")
                page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
                expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
                for index in (0, 1, 2):
                    _run_cell(page, index)
                runs = page.locator(".prefect-nbauth-run")
                first = runs.nth(0)
                expect(first.locator(".pnb-run-head .pnb-badge")).to_have_text("Pending")
                _run_cell(page, 3)  # the flow starts in another process
                expect(first.locator(".pnb-run-head .pnb-badge")).to_have_text("Completed", timeout=240_000)
                expect(first.locator(".pnb-following")).to_have_text("final", timeout=120_000)
                expect(first.locator(".pnb-run-logs-head")).to_contain_text("logs: 30", timeout=60_000)
                expect(first).to_contain_text("line 00299")
                expect(first.locator(".pnb-timeline")).to_contain_text("Running")
                expect(first).to_contain_text("task runs (2)")
                first.scroll_into_view_if_needed()
                shots.append(ARTIFACTS / "browser-watch-completed.png")
                page.screenshot(path=str(shots[-1]), full_page=True)

                _run_cell(page, 4)
                _run_cell(page, 5)
                second = runs.nth(1)
                expect(second.locator(".pnb-run-head .pnb-badge")).to_have_text("Failed", timeout=240_000)
                expect(second.locator(".pnb-following")).to_have_text("final", timeout=120_000)
                expect(second).to_contain_text("this flow fails on purpose")
                second.scroll_into_view_if_needed()
                shots.append(ARTIFACTS / "browser-watch-failed.png")
                page.screenshot(path=str(shots[-1]), full_page=True)

                dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
                page.keyboard.press("Control+s")
                expect(dirty).to_have_count(0, timeout=60_000)
            except BaseException:
                page.screenshot(path=str(ARTIFACTS / "browser-watch-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        lab.stop()

    saved = notebook.read_text()
    assert "Completed" in saved and "Failed" in saved and "the credential is ****" in saved
    for form in sorted(leak_forms(canary) | leak_forms(server.auth_string or canary)):
        assert form not in saved, "the secret is in the saved notebook"
    for shot in shots:
        assert shot.stat().st_size > 10_000
