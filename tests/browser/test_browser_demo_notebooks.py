"""The demo does not rewrite the tracked tutorials: a tutorial opened in the demo's JupyterLab
and closed untouched leaves ``git status`` clean.

A copy of the repository as git tracks it (a fresh clone, committed), JupyterLab started
the way ``./scripts/demo`` starts it (``scripts/lab.py``, which gives JupyterLab the demo's
defaults: autosave off, no news pop-up), Debian's chromium through Playwright. The notebook
opens, its kernel starts and tells JupyterLab its ``language_info``: a committed notebook
whose metadata differs (``{"name": "python"}`` alone, as it used to be) shows as modified
at once, and JupyterLab would autosave it into the repository two minutes later. Here the
tab stays clean, closing it asks nothing, and ``git status`` shows nothing afterwards.
No Prefect server is needed: nothing runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from constants import USER_CACHE
from lab_support import ARTIFACTS, BROWSER_MARKS, chromium, new_page, screenshot_on_failure
from repo_copy import copy_tracked

from prefect_nbauth.testing._server import free_port

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(600)]

NOTEBOOK = "notebooks/01_login.ipynb"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
                          cwd=repo, capture_output=True, text=True, check=True).stdout


def _lab_url(proc: subprocess.Popen[str]) -> str:
    """The JupyterLab line of scripts/lab.py's block (it prints once JupyterLab answers)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.match(r"^  JupyterLab:\s+(http\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("scripts/lab.py printed no JupyterLab URL:\n" + "".join(seen)[-3000:])


def test_a_tutorial_opened_and_closed_in_the_demo_leaves_git_status_clean(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    repo = copy_tracked(tmp_path / "repo")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "as cloned")
    home, demo = tmp_path / "home", tmp_path / "demo"
    home.mkdir()
    demo.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "JUPYTER"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=USER_CACHE, PREFECT_NBAUTH_DEMO_DIR=str(demo), IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),  # nobody's own settings: the demo's only
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    proc = subprocess.Popen([sys.executable, "scripts/lab.py", str(free_port()), NOTEBOOK, f"--ServerApp.root_dir={repo}"],
                            cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = _lab_url(proc)
        base, token = url.split("/lab/", 1)[0], url.rsplit("token=", 1)[1]
        with httpx.Client(timeout=60, trust_env=False, headers={"Authorization": f"token {token}"}) as client:
            def setting(plugin: str, key: str) -> object:
                """What JupyterLab uses: the user's value, else the default (overrides applied)."""
                answer = client.get(f"{base}/lab/api/settings/{plugin}").json()
                return answer["settings"].get(key, answer["schema"]["properties"][key]["default"])

            assert setting("@jupyterlab/docmanager-extension:plugin", "autosave") is False
            assert setting("@jupyterlab/apputils-extension:notification", "fetchNews") == "false"
        ARTIFACTS.mkdir(exist_ok=True)
        with chromium() as browser:
            page = new_page(browser, width=1280, height=900, timeout_ms=120_000)
            with screenshot_on_failure(page, ARTIFACTS / "demo-notebooks-failure.png"):
                page.goto(url)
                page.wait_for_selector(".jp-Notebook .jp-CodeCell .jp-InputArea-editor")
                # The kernel answered (its language_info is in): the moment a difference would show.
                expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
                tab = page.locator(".lm-TabBar-tab.jp-mod-current", has_text="01_login.ipynb")
                expect(tab).to_have_count(1)
                expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))
                tab.locator(".lm-TabBar-tabCloseIcon").click()
                expect(page.locator(".lm-TabBar-tab", has_text="01_login.ipynb")).to_have_count(0)
                expect(page.locator(".jp-Dialog")).to_have_count(0)  # no "save your changes?"
                assert page.get_by_text("official Jupyter news").count() == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in the demo's terminal
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    assert _git(repo, "status", "--porcelain") == "", "the demo changed files in the repository"
