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
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from canaries import leak_forms

from prefect_nbauth.testing._server import PrefectServer, free_port, isolated_env

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"

try:
    import playwright.sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(apt-get install chromium); ./scripts/test installs it when run as root"),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="the playwright Python package is not installed "
                       "(pip install -e '.[test]')"),
]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrefectServer, str]]:
    canary = "CANARY" + secrets.token_hex(12)
    server = PrefectServer(tmp_path_factory.mktemp("browser-canary-server"), auth_string=f"nbuser:{canary}")
    server.start()
    try:
        yield server, canary
    finally:
        server.stop()


def _write_settings(settings_dir: Path) -> None:
    files = {
        # Save widget state into the notebook, so the scan covers it.
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
        # No news toast, no update check: no outside requests, cleaner screenshots.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, content in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def _notebook(api_url: str) -> dict[str, Any]:
    sources = [
        "%load_ext prefect_nbauth\n%prefect_status",
        f"%prefect_login --url {api_url}",
        "%prefect_events --prefix nbauth.browser. --max-rows 10",
        "from prefect.events import emit_event\n"
        "for i in range(5):\n"
        "    emit_event(event='nbauth.browser.ping', resource={'prefect.resource.id': f'nbauth.browser.{i}'},\n"
        "               payload={'i': i})",
    ]
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(sources)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1 with a throw-away config, settings and root directory."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = root / "jupyterlab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        settings, workspaces = self.root / "settings", self.root / "workspaces"
        _write_settings(settings)
        workspaces.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={self.root / 'work'}",
                f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
                "--ServerApp.open_browser=False", "--LabApp.news_url=None"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if client.get(f"{self.url}/api/status").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JupyterLab did not start:\n{self.tail()}")
                try:
                    self.proc.wait(0.2)  # returns early if it dies
                except subprocess.TimeoutExpired:
                    pass

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # shuts kernels down (history is written out)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _run_cell(page: Any, index: int) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def test_login_status_and_events_in_jupyterlab_with_chromium(canary_server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, canary = canary_server
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-failure.png").unlink(missing_ok=True)  # only a failing run leaves one
    work, ipython_dir, prefect_home = tmp_path / "work", tmp_path / "ipython", tmp_path / "prefect-home"
    for d in (work, ipython_dir, prefect_home):
        d.mkdir()
    notebook = work / "prefect_login.ipynb"
    notebook.write_text(json.dumps(_notebook(server.api_url), indent=1))
    # The kernel gets NO secret: the auth string is typed into the page.
    env = isolated_env(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                       IPYTHONDIR=str(ipython_dir), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    lab = JupyterLab(tmp_path, env)
    shots: dict[str, Path] = {}
    try:
        lab.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(90_000)
                expect.set_options(timeout=90_000)  # a 2-core machine: first imports take seconds
                page.goto(f"{lab.url}/lab/tree/{notebook.name}")
                page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
                # A cell run before the kernel is connected is dropped: wait for "Idle".
                expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()

                _run_cell(page, 0)  # %load_ext + %prefect_status: mode none
                status = page.locator(".prefect-nbauth-status")
                expect(status.locator(".pnb-mode")).to_have_text("none")
                _run_cell(page, 1)  # %prefect_login: the form
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

                _run_cell(page, 2)  # %prefect_events
                events = page.locator(".prefect-nbauth-events")
                expect(events.locator(".pnb-state")).to_contain_text("connected", timeout=60_000)
                _run_cell(page, 3)  # emit five events from the kernel
                for i in range(5):
                    expect(events.locator(f".pnb-res:text-is('nbauth.browser.{i}')")).to_be_visible(timeout=60_000)
                expect(events.locator(".pnb-state")).to_contain_text("live ")
                events.scroll_into_view_if_needed()
                shots["events"] = ARTIFACTS / "browser-events.png"
                page.screenshot(path=str(shots["events"]), full_page=True)

                dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
                expect(dirty).to_have_count(1)  # unsaved outputs
                page.keyboard.press("Control+s")  # JupyterLab's save, bound on the whole page
                expect(dirty).to_have_count(0, timeout=60_000)  # saved
            except BaseException:
                page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        lab.stop()

    saved = notebook.read_text()
    state = json.loads(saved)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert "AnyModel" in {s["model_name"] for s in state.values()}  # the scan covers the form's secret boxes
    assert "basic" in saved and "nbuser" in saved
    history = ipython_dir / "profile_default" / "history.sqlite"
    rows = sqlite3.connect(history).execute("SELECT source_raw FROM history").fetchall()
    assert any("%prefect_login" in r[0] for r in rows)
    raw = b"".join(p.read_bytes() for p in history.parent.glob("history.sqlite*"))
    for form_ in sorted(leak_forms(canary) | leak_forms(server.auth_string or canary)):
        assert form_ not in saved, "the secret is in the saved notebook"
        assert form_.encode() not in raw, "the secret is in the kernel's history"
    for shot in shots.values():
        assert shot.stat().st_size > 10_000
