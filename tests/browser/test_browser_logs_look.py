"""How logs read in a real browser: the watch of a failed run and the log view, in JupyterLab
dark and Notebook 7 (light): both themes and both front ends. (JupyterLab light draws these
widgets with the same CSS as Notebook 7 light; ``test_browser_themes.py`` covers all three for
the other widgets.)

One real auth-protected Prefect server (logs websocket on), one flow run that logs a few
lines from two tasks and then fails, run to the end in its own interpreter before any page
opens. One JupyterLab (it also serves Notebook 7's ``/notebooks/`` pages) and Debian's
chromium through Playwright; each front end opens the same notebook (one kernel, warm after
the first), which shows ``%prefect_watch RUN`` and ``%prefect_logs --flow-run RUN``.
Measured in the page:

* **single spacing**: every one-line log row (``.pnb-log``) is at most 1.6 times its font
  size high (ipywidgets' HTML widget used to make each row 28 px high for 13 px text);
* **the error whole**: the failed run's traceback is shown outside the scrolling log box,
  from ``Traceback (most recent call last):`` to the ``RuntimeError``, nothing of it clipped;
* **which run**: each line names its task run or flow run (``task step-…``, ``flow NAME``),
  so the three "Finished in state …" lines can be told apart;
* **contrast**: every text of both widgets reaches WCAG AA (measured as in
  ``test_browser_themes.py``).

Screenshots of each widget go to ``test-artifacts/logs-look-<front end>-{watch-failed,logs}.png``
(gitignored) and the measurements to ``test-artifacts/logs-look-report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_support import ARTIFACTS, BROWSER_MARKS, JupyterLab, chromium, new_page, screenshot_on_failure
from notebook_support import build_notebook, canary_protected_server
from test_browser_themes import MEASURE_JS as CONTRAST_JS  # every text's contrast, WCAG AA

from prefect_nbauth.testing._server import isolated_env
from prefect_nbauth.testing.logs import LOGS_ON, FlowProcess, create_run

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(1200)]

FRONT_ENDS = {  # name -> (URL path prefix, JupyterLab theme)
    "lab-dark": ("lab/tree", "JupyterLab Dark"),
    "notebook7": ("notebooks", "JupyterLab Light"),
}
SECRET_ENV = "NBAUTH_LOGS_AUTH_STRING"

# One widget's rows, error block and labels, measured in the page.
MEASURE_JS = r"""
(root) => {
  const rows = Array.from(root.querySelectorAll('.pnb-log'));
  // Rows too short to wrap: their height is one line's.
  const oneLine = rows.filter((r) => r.querySelector('.pnb-msg').textContent.length < 50 &&
                                     !r.querySelector('.pnb-msg').textContent.includes('\n'));
  const heights = oneLine.map((r) => ({height: r.getBoundingClientRect().height,
                                       font: parseFloat(getComputedStyle(r).fontSize)}));
  const error = root.querySelector('.pnb-run-error');
  const clipped = (el) => {
    for (let e = el; e && e !== root.parentElement; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if ((cs.overflowY === 'auto' || cs.overflowY === 'hidden' || cs.overflowY === 'scroll') &&
          e.scrollHeight > e.clientHeight + 1) return true;
    }
    return false;
  };
  return {
    rows: rows.length,
    heights,
    sources: Array.from(root.querySelectorAll('.pnb-log .pnb-src')).map((e) => e.textContent),
    finished: rows.filter((r) => r.textContent.includes('Finished in state')).map(
      (r) => r.querySelector('.pnb-src') ? r.querySelector('.pnb-src').textContent : ''),
    error: error ? {text: error.textContent, clipped: clipped(error), inLogBox: !!error.closest('.pnb-log-box'),
                    height: error.getBoundingClientRect().height} : null,
  };
}
"""


def _notebook(api_url: str, run_id: str) -> Any:
    return build_notebook([
        f"%load_ext prefect_nbauth\n%prefect_login --url {api_url} --auth-string-env {SECRET_ENV}",
        f"%prefect_watch {run_id}",
        f"%prefect_logs --flow-run {run_id}",
    ])


def _set_theme(settings: Path, theme: str) -> None:
    path = settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": theme}))


def _open(page: Any, url: str, expect: Any) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    idle = """() => document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        || Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).some((e) => /\\| Idle/.test(e.textContent))"""
    page.wait_for_function(f"() => document.querySelector('.jp-Dialog .jp-mod-accept') || ({idle})()")
    _accept_dialog(page, expect)
    page.wait_for_function(idle)


def _accept_dialog(page: Any, expect: Any) -> None:
    """A "Select Kernel" dialog swallows clicks; it may also come after the status says Idle."""
    if page.locator(".jp-Dialog .jp-mod-accept").count():
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
        expect(page.locator(".jp-Dialog")).to_have_count(0)


def _run_until(page: Any, index: int, shown: str, expect: Any) -> None:
    """Run cell ``index`` until its output shows ``shown``: a run the kernel dropped (the
    page was not connected to it yet), or a click a late dialog took, is tried again;
    running a cell again replaces its output."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    for attempt in range(4):
        try:
            _accept_dialog(page, expect)
            cell.locator(".jp-InputArea-editor").click(timeout=20_000)
            page.keyboard.press("Shift+Enter")
            cell.locator(shown).first.wait_for(timeout=30_000 * (attempt + 1))
            return
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: a dropped run, again
            if attempt == 3:
                raise


def _shoot(widget: Any, name: str) -> None:
    widget.scroll_into_view_if_needed()
    area = widget.locator("xpath=ancestor-or-self::div[contains(@class,'jp-OutputArea-output')][1]")
    area.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    tmp = tmp_path_factory.mktemp("logs-look")
    report: dict[str, Any] = {}
    with canary_protected_server(tmp / "server", **LOGS_ON) as (server, _canary):
        run_id = report["run_id"] = create_run(server.api_url, server.auth_headers())
        flow = FlowProcess(server.api_url, server.auth_string, run_id, lines=5, tasks=2, fail=True)
        flow.wait(300)  # it fails on purpose (the engine exits 0); then its logs are all on the server
        work, settings = tmp / "work", tmp / "settings"
        work.mkdir()
        # One notebook, one kernel for the three front ends: each opens the same file, and the
        # kernel of its session (started by the first) runs the cells again, warm.
        nbformat.write(_notebook(server.api_url, run_id), str(work / "logs-look.ipynb"))
        env = isolated_env(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                           IPYTHONDIR=str(tmp / "ipython"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
                           JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings),
                           JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
                           **{SECRET_ENV: server.auth_string or ""})
        lab = JupyterLab(tmp, env)
        try:
            lab.start()
            with chromium() as browser:
                for name, (prefix, theme) in FRONT_ENDS.items():
                    _set_theme(settings, theme)
                    page = new_page(browser, width=1100, height=1400, timeout_ms=120_000)
                    try:
                        with screenshot_on_failure(page, ARTIFACTS / f"logs-look-{name}-failure.png"):
                            url = f"{lab.url}/{prefix}/logs-look.ipynb" + ("?reset" if prefix.startswith("lab") else "")
                            _open(page, url, expect)
                            _run_until(page, 0, ".jp-OutputArea-output", expect)
                            _run_until(page, 1, ".prefect-nbauth-run", expect)
                            _run_until(page, 2, ".prefect-nbauth-logs", expect)
                            watch = page.locator(".prefect-nbauth-run").first
                            expect(watch.locator(".pnb-following")).to_have_text("final")
                            expect(watch.locator(".pnb-run-error")).to_contain_text("RuntimeError")
                            logs = page.locator(".prefect-nbauth-logs").first
                            expect(logs.locator(".pnb-log").filter(has_text="this flow fails on purpose")
                                   ).not_to_have_count(0)
                            # The names of the runs arrive from the API in the background.
                            for widget in (watch, logs):
                                expect(widget.locator(".pnb-src", has_text="task step-")).not_to_have_count(0)
                            _shoot(watch, f"logs-look-{name}-watch-failed")
                            _shoot(logs, f"logs-look-{name}-logs")
                            report[name] = {"watch": watch.evaluate(MEASURE_JS), "logs": logs.evaluate(MEASURE_JS),
                                            "theme": page.evaluate("document.body.dataset.jpThemeName")}
                            for widget, key in ((watch, "watch"), (logs, "logs")):
                                report[name][key]["contrast"] = widget.evaluate(CONTRAST_JS)
                    finally:
                        page.close()
        finally:
            lab.stop()
            (ARTIFACTS / "logs-look-report.json").write_text(json.dumps(report, indent=1))
    return report


CASES = [(fe, w) for fe in FRONT_ENDS for w in ("watch", "logs")]
IDS = [f"{fe}-{w}" for fe, w in CASES]


def test_each_front_end_shows_its_theme(measured: dict[str, Any]) -> None:
    assert {name: measured[name]["theme"] for name in FRONT_ENDS} == {
        name: theme for name, (_, theme) in FRONT_ENDS.items()}


@pytest.mark.parametrize(("front_end", "widget"), CASES, ids=IDS)
def test_log_rows_are_single_spaced(measured: dict[str, Any], front_end: str, widget: str) -> None:
    heights = measured[front_end][widget]["heights"]
    assert len(heights) >= 7, heights  # 5 lines, 2 tasks' lines and their "Finished" lines
    too_tall = [h for h in heights if h["height"] > 1.6 * h["font"]]
    assert too_tall == [], f"rows taller than 1.6 times their font: {too_tall[:3]}"


@pytest.mark.parametrize(("front_end", "widget"), CASES, ids=IDS)
def test_every_finished_line_says_which_task_or_flow_it_is_from(measured: dict[str, Any], front_end: str,
                                                               widget: str) -> None:
    finished = measured[front_end][widget]["finished"]
    tasks = sorted(s for s in finished if s.startswith("task step-"))
    flows = [s for s in finished if s.startswith("flow ")]
    assert len(tasks) == 2 and len(set(tasks)) == 2 and len(flows) == 1, finished
    assert flows[0] != f"flow {measured['run_id'][:8]}", "the flow run's name, not its id"


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_the_failed_runs_traceback_is_shown_whole(measured: dict[str, Any], front_end: str) -> None:
    error = measured[front_end]["watch"]["error"]
    assert error is not None, "no error block in the watch of a failed run"
    text = error["text"]
    assert "Traceback (most recent call last):" in text and "RuntimeError: this flow fails on purpose" in text
    assert text.index("Traceback") < text.index("RuntimeError: this flow fails on purpose")
    assert error["clipped"] is False and error["inLogBox"] is False


@pytest.mark.parametrize(("front_end", "widget"), CASES, ids=IDS)
def test_every_text_reaches_wcag_aa_contrast(measured: dict[str, Any], front_end: str, widget: str) -> None:
    """Errors in the theme's error colour, warnings marked by a bar, not by orange letters;
    a Failed badge in white letters (black ones on its red measured 4.22:1 in the dark theme)."""
    result = measured[front_end][widget]["contrast"]
    assert result["texts"] >= 10 and result["contrast"] == [], "\n".join(result["contrast"])


def test_the_screenshots_are_there(measured: dict[str, Any]) -> None:
    for name in FRONT_ENDS:
        for shot in ("watch-failed", "logs"):
            path = ARTIFACTS / f"logs-look-{name}-{shot}.png"
            assert path.stat().st_size > 5_000, path
