"""The widgets as people see them: JupyterLab light, JupyterLab dark and Notebook 7.

One JupyterLab server (it also serves Notebook 7's ``/notebooks/`` pages: the
``notebook`` package is in the test extra), Debian's chromium through Playwright, a
real auth-protected Prefect server. For each front end a notebook shows the status
widget before the login (the server requires an auth string), the login form after a
refused password, the status widget after ``%prefect_login``, and the event table with
long names and payloads (one row expanded). Each widget's output area is saved to
``test-artifacts/theme-<front end>-<widget>.png`` and measured in the page:

* **contrast**: for every visible element inside the output area that holds text
  (or an input's value), the text colour from ``getComputedStyle`` composited over
  the effective background (the element's and its ancestors' background colours,
  alpha included) reaches 4.5:1 (3:1 for large text), WCAG AA. Disabled controls
  are exempt, as WCAG exempts inactive components.
* **overflow**: no element is wider than the output area (outside a scroll box), and
  no text is clipped unless with an ellipsis and a way to see it whole (a title, or a
  row that expands).

The check is generic (every text element of the output area; the login form is found by
its cell), so it covers whatever draws the form's choices (issue 25 item 14: ipywidgets'
Tab drew them at 4.43:1 light, 4.23:1 dark; the form's ChoiceBar passes). Results are
also recorded in ``test-artifacts/theme-report.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from constants import AUTH_STRING
from lab_support import (
    ARTIFACTS,
    BROWSER_MARKS,
    MEASURE_JS,
    JupyterLab,
    chromium,
    end_sessions,
    new_page,
    screenshot_on_failure,
)
from notebook_support import build_notebook

from prefect_nbauth.testing._server import PrefectServer, isolated_env

pytestmark = [
    *BROWSER_MARKS,
    pytest.mark.timeout(1200),  # three front ends in the first test's fixture, on a busy machine
]

FRONT_ENDS = {  # name -> (URL path prefix, JupyterLab theme)
    "lab-light": ("lab/tree", "JupyterLab Light"),
    "lab-dark": ("lab/tree", "JupyterLab Dark"),
    "notebook7": ("notebooks", "JupyterLab Light"),
}
WIDGETS = {"status": ".prefect-nbauth-status", "events": ".prefect-nbauth-events"}
SECRET_ENV = "NBAUTH_UX_AUTH_STRING"

def _notebook(api_url: str) -> Any:
    return build_notebook([
        "%load_ext prefect_nbauth\n%prefect_status",
        "%prefect_login",
        f"%prefect_login --url {api_url} --auth-string-env {SECRET_ENV}",
        "%prefect_events --prefix nbauth.ux. --max-rows 10",
        "import uuid\nfrom prefect.events import emit_event\n"
        "for i, name in enumerate(['flow-run.Completed', 'flow-run.Running', 'task-run.Pending']):\n"
        "    emit_event(event=f'nbauth.ux.{name}',\n"
        "               resource={'prefect.resource.id': f'prefect.flow-run.{uuid.uuid4()}'},\n"
        "               payload={'intended': {'from': 'PENDING', 'to': 'COMPLETED'}, 'note': 'x' * 200, 'i': i})",
    ])


def _run_cell(page: Any, index: int) -> None:
    """Run one cell; run it again if the kernel dropped it (it was not connected yet)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for attempt in range(4):
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():  # a late "Select Kernel" dialog swallows clicks: accept its choice
            dialog.first.click()
        try:  # "[*]:" while it runs, "[3]:" after: either way the kernel has it
            cell.locator(".jp-InputArea-editor").click(timeout=20_000)
            page.keyboard.press("Shift+Enter")
            page.wait_for_function("(el) => /\\[(\\*|\\d+)\\]/.test(el.textContent)", arg=prompt.element_handle(),
                                   timeout=20_000 * (attempt + 1))
            return
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError (a dialog, a dropped run): again
            if attempt == 3:
                raise


def _set_theme(settings: Path, theme: str) -> None:
    # Read by the page when it loads (JupyterLab and Notebook 7 share the user settings).
    path = settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": theme}))


def _measure(page: Any, selector: str, name: str) -> dict[str, Any]:
    widget = page.locator(selector).first
    widget.scroll_into_view_if_needed()
    area = widget.locator("xpath=ancestor-or-self::div[contains(@class,'jp-OutputArea-output')][1]")
    area.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    return widget.evaluate(MEASURE_JS)


# The login form is found by its cell, not by its classes: whatever widget replaces
# today's is measured the same way.
LOGIN_AREA = ".jp-Notebook .jp-Cell >> nth=1 >> .jp-OutputArea-output"


def _drive(page: Any, url: str, name: str, expect: Any) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    expect(page.locator("body[data-jp-theme-name]")).to_have_count(1)
    # A cell run before the kernel is connected is dropped: wait until it is idle.
    idle = """() => document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        || Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).some((e) => /\\| Idle/.test(e.textContent))"""
    # A "Select Kernel" dialog may come first (it swallows clicks): accept its choice.
    page.wait_for_function(f"() => document.querySelector('.jp-Dialog .jp-mod-accept') || ({idle})()")
    if page.locator(".jp-Dialog .jp-mod-accept").count():
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
        expect(page.locator(".jp-Dialog")).to_have_count(0)
    page.wait_for_function(idle)
    _run_cell(page, 0)  # the status widget, before any login
    status = page.locator(WIDGETS["status"])
    expect(status.locator(".pnb-server")).to_contain_text("requires an auth string", timeout=90_000)
    expect(status.locator("button", has_text="Log out")).to_be_disabled()
    results["status-before"] = _measure(page, WIDGETS["status"], f"theme-{name}-status-before-login")

    _run_cell(page, 1)  # the login form, with a refused password
    login = page.locator(LOGIN_AREA).first
    expect(login.locator("button, input").first).to_be_visible()  # rendered
    login.locator("input[type=password]").first.fill("nbuser:wrong-password")
    login.locator("button", has_text="Log in").first.click()
    expect(login).to_contain_text("The server refused this credential.", timeout=60_000)
    expect(login.get_by_role("tab")).to_have_count(4)  # the choices are measured with the rest
    results["login"] = _measure(page, LOGIN_AREA, f"theme-{name}-login-refused")
    # The choices on their own (issue 25 item 14), the chosen one and the others.
    results["login-choices"] = login.evaluate(MEASURE_JS, "[role=tab], [role=tab] *")
    # "Sign in with SSO": its boxes and its note (its link and code: tests/browser/test_browser_sso.py).
    login.get_by_role("tab", name="Sign in with SSO").click()
    expect(login.locator(".pnb-sso-issuer input")).to_be_visible()
    results["login-sso"] = _measure(page, LOGIN_AREA, f"theme-{name}-login-sso")
    login.get_by_role("tab", name="Self-hosted server").click()  # as it was, for the README picture
    expect(login.locator(".pnb-auth-string input")).to_be_visible()

    _run_cell(page, 2)  # %prefect_login --auth-string-env: the status widget follows
    expect(status.locator(".pnb-mode")).to_have_text("basic", timeout=90_000)
    expect(status.locator(".pnb-server")).to_contain_text("Prefect 3.", timeout=90_000)
    expect(status.locator("button", has_text="Log out")).to_be_enabled()
    results["status"] = _measure(page, WIDGETS["status"], f"theme-{name}-status")

    _run_cell(page, 3)
    events = page.locator(WIDGETS["events"])
    expect(events.locator(".pnb-state")).to_contain_text("connected", timeout=90_000)
    _run_cell(page, 4)
    expect(events.locator(".pnb-row")).to_have_count(3, timeout=90_000)
    events.locator(".pnb-row summary").first.click()  # one row expanded: the whole payload
    expect(events.locator(".pnb-row[open] .pnb-detail")).to_contain_text("x" * 200)
    results["events"] = _measure(page, WIDGETS["events"], f"theme-{name}-events")
    page.screenshot(path=str(ARTIFACTS / f"theme-{name}-page.png"), full_page=True)
    return results


def _readme_picture(page: Any) -> None:
    """docs/img/widgets.png is a copy of this: the three widgets, without the code around them."""
    page.locator(".prefect-nbauth-events .pnb-row[open] summary").first.click()  # fold the row again
    page.add_style_tag(content=".jp-Cell-inputWrapper, .jp-Notebook .jp-Cell:nth-child(3) .jp-Cell-outputWrapper,"
                               " .jp-Notebook .jp-Cell:nth-child(5) .jp-Cell-outputWrapper { display: none !important; }"
                               " .jp-OutputPrompt, .jp-Collapser { visibility: hidden; }")
    sidebar = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if sidebar.count():
        sidebar.first.click()  # fold the file browser away
    page.set_viewport_size({"width": 1000, "height": 1400})
    top = """() => {
        document.querySelectorAll('.jp-WindowedPanel-outer, .jp-NotebookPanel-notebook').forEach((e) => e.scrollTop = 0);
        const first = document.querySelector('.prefect-nbauth-status');
        return first && first.getBoundingClientRect().top >= 0 && first.getBoundingClientRect().top < 300;
    }"""
    page.wait_for_function(top)
    areas = [page.locator(sel).first.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
             for sel in WIDGETS.values()]
    boxes = [area.bounding_box() for area in [*areas, page.locator(LOGIN_AREA).first]]
    left = min(b["x"] for b in boxes) - 8
    clip = {"x": max(0, left), "y": max(0, min(b["y"] for b in boxes) - 8),
            "width": max(b["x"] + b["width"] for b in boxes) - left + 8}
    clip["height"] = max(b["y"] + b["height"] for b in boxes) - clip["y"] + 8
    page.screenshot(path=str(ARTIFACTS / "readme-widgets.png"), clip=clip)


@pytest.fixture(scope="module")
def measured(auth_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("theme-*-failure.png"):  # only a failing run leaves one
        stale.unlink()
    tmp = tmp_path_factory.mktemp("themes")
    work = tmp / "work"
    work.mkdir()
    settings = tmp / "settings"
    for name in FRONT_ENDS:
        nbformat.write(_notebook(auth_server.api_url), str(work / f"{name}.ipynb"))
    env = isolated_env(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=auth_server.api_url,
                       PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", IPYTHONDIR=str(tmp / "ipython"),
                       JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
                       JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
                       **{SECRET_ENV: AUTH_STRING})
    lab = JupyterLab(tmp, env)
    report: dict[str, Any] = {}
    try:
        lab.start()
        with chromium() as browser:
            for name, (prefix, theme) in FRONT_ENDS.items():
                _set_theme(settings, theme)
                page = new_page(browser, width=1000, height=900, timeout_ms=90_000)
                try:
                    with screenshot_on_failure(page, ARTIFACTS / f"theme-{name}-failure.png"):
                        url = f"{lab.url}/{prefix}/{name}.ipynb" + ("?reset" if prefix.startswith("lab") else "")
                        report[name] = _drive(page, url, name, expect)
                        theme_attr = page.evaluate("document.body.dataset.jpThemeName")
                        assert theme_attr == theme, f"{name}: the page shows {theme_attr}, not {theme}"
                        if name == "lab-light":
                            _readme_picture(page)
                finally:
                    end_sessions(page)  # one kernel at a time on a 2-core machine
                    page.close()
    finally:
        lab.stop()
        (ARTIFACTS / "theme-report.json").write_text(json.dumps(report, indent=1))
    return report


CASES = [(fe, w) for fe in FRONT_ENDS
         for w in ("status-before", "status", "events", "login", "login-choices", "login-sso")]


@pytest.mark.parametrize(("front_end", "widget"), CASES, ids=[f"{fe}-{w}" for fe, w in CASES])
def test_every_text_reaches_wcag_aa_contrast(measured: dict[str, Any], front_end: str, widget: str) -> None:
    result = measured[front_end][widget]
    assert result["texts"] >= 3, f"measured only {result['texts']} text elements"
    assert result["contrast"] == [], "\n".join(result["contrast"])


@pytest.mark.parametrize(("front_end", "widget"), CASES, ids=[f"{fe}-{w}" for fe, w in CASES])
def test_nothing_overflows_its_output_area(measured: dict[str, Any], front_end: str, widget: str) -> None:
    result = measured[front_end][widget]
    assert result["overflow"] == [], "\n".join(result["overflow"])
    assert result["clipped"] == [], "clipped without an ellipsis and a way to see it whole:\n" + \
        "\n".join(result["clipped"])


def test_the_screenshots_are_there(measured: dict[str, Any]) -> None:
    for name in FRONT_ENDS:
        for shot in ("status-before-login", "login-refused", "login-sso", "status", "events", "page"):
            path = ARTIFACTS / f"theme-{name}-{shot}.png"
            assert path.stat().st_size > 2_000, path
    assert os.path.getsize(ARTIFACTS / "readme-widgets.png") > 10_000
