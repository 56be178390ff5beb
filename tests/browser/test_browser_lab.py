"""A real browser: JupyterLab on 127.0.0.1, Debian's chromium driven by Playwright.

What only a browser shows: the widgets render (not ``VBox(...)`` text), the
password typed into the login form reaches the kernel, the status widget shown
BEFORE the login switches to mode "basic" and the user by itself, and event rows
appear in the event widget. Screenshots go to ``test-artifacts/`` (gitignored).
JupyterLab is configured to save widget state into the notebook, and the saved
notebook and the kernel's IPython history are scanned for the server's canary
password: zero hits.

Chromium: ``/usr/bin/chromium`` (Debian's package), through Playwright's
``executable_path``; Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import nbformat
from lab_support import ARTIFACTS, BROWSER_MARKS, JupyterLab, notebook_page, run_cell, save_notebook
from notebook_support import assert_no_trace, build_notebook

from prefect_nbauth.testing.canaries import forms_of

pytestmark = BROWSER_MARKS


def _notebook(api_url: str) -> Any:
    return build_notebook([
        "%load_ext prefect_nbauth\n%prefect_status",
        f"%prefect_login --url {api_url}",
        "%prefect_events --prefix nbauth.browser. --max-rows 10",
        "from prefect.events import emit_event\n"
        "for i in range(5):\n"
        "    emit_event(event='nbauth.browser.ping', resource={'prefect.resource.id': f'nbauth.browser.{i}'},\n"
        "               payload={'i': i})",
    ])


def test_login_status_and_events_in_jupyterlab_with_chromium(canary_server, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    server, canary = canary_server
    ARTIFACTS.mkdir(exist_ok=True)
    notebook = lab.work / "prefect_login.ipynb"
    nbformat.write(_notebook(server.api_url), str(notebook))
    lab.start()  # the kernel gets NO secret: the auth string is typed into the page
    shots: dict[str, Path] = {}
    with notebook_page(lab, notebook.name, width=1280, height=1000, timeout_ms=90_000,
                       failure_shot=ARTIFACTS / "browser-failure.png") as page:
        run_cell(page, 0)  # %load_ext + %prefect_status: mode none
        status = page.locator(".prefect-nbauth-status")
        expect(status.locator(".pnb-mode")).to_have_text("none")
        run_cell(page, 1)  # %prefect_login: the form
        form = page.locator(".prefect-nbauth-login")
        password = form.locator(".pnb-auth-string input[type=password]")
        expect(password).to_be_visible()
        password.fill(server.auth_string or "")
        form.locator("button.pnb-login-button").click()
        expect(form.locator(".pnb-login-message")).to_contain_text("Logged in to", timeout=60_000)
        expect(form.locator(".pnb-login-message")).to_contain_text("as nbuser")
        expect(password).to_have_value("")  # emptied once read
        # The status widget of the first cell followed the login by itself.
        expect(status.locator(".pnb-mode")).to_have_text("basic", timeout=30_000)
        expect(status.locator(".pnb-identity")).to_contain_text("nbuser")
        expect(status.locator(".pnb-server")).to_contain_text("Prefect 3.", timeout=30_000)
        shots["login"] = ARTIFACTS / "browser-login-status.png"
        page.screenshot(path=str(shots["login"]), full_page=True)

        run_cell(page, 2)  # %prefect_events
        events = page.locator(".prefect-nbauth-events")
        expect(events.locator(".pnb-state")).to_contain_text("connected", timeout=60_000)
        run_cell(page, 3)  # emit five events from the kernel
        for i in range(5):
            expect(events.locator(f".pnb-res:text-is('nbauth.browser.{i}')")).to_be_visible(timeout=60_000)
        expect(events.locator(".pnb-state")).to_contain_text("live ")
        events.scroll_into_view_if_needed()
        shots["events"] = ARTIFACTS / "browser-events.png"
        page.screenshot(path=str(shots["events"]), full_page=True)

        expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(1)  # unsaved
        save_notebook(page)

    lab.stop()  # shuts the kernel down: its history is written out

    saved = notebook.read_text()
    state = json.loads(saved)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert "AnyModel" in {s["model_name"] for s in state.values()}  # the scan covers the form's secret boxes
    assert "basic" in saved and "nbuser" in saved
    history = lab.root / "ipython" / "profile_default" / "history.sqlite"
    rows = sqlite3.connect(history).execute("SELECT source_raw FROM history").fetchall()
    assert any("%prefect_login" in r[0] for r in rows)
    assert_no_trace(forms_of(canary, server.auth_string or canary), saved=saved, history=history)
    for shot in shots.values():
        assert shot.stat().st_size > 10_000
