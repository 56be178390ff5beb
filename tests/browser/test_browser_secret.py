"""The login form's secret box in a real browser while the kernel is busy, and after it restarts.

Issue 10, item 3: with an ipywidgets ``Password``, a password typed while the
kernel is busy sat in the page's widget model, and Ctrl+S saved it into the
``.ipynb`` (``metadata.widgets``); after a kernel restart it stayed in every
later save and in the checkpoint. The form's secret boxes are now
``SecretInput`` (an anywidget with no value trait): this drives JupyterLab in
Debian's chromium exactly as a person would:

Widget messages are queued behind the running cell (JupyterLab's
``commsOverSubshells`` is turned off, as with a kernel without subshells): the
kernel really cannot see the secret while the cell runs.

1. ``%prefect_status`` and ``%prefect_login`` shown; Log in with an empty box
   shows an error, whose colour is measured (light theme), then the theme is
   switched to JupyterLab Dark and measured again (WCAG AA: 4.5:1).
2. A cell makes the kernel busy (it waits for a file this test creates). The
   canary auth string is typed into the secret box, Enter, Ctrl+S: the saved
   notebook (widget state included) and its checkpoint hold no form of the canary.
3. The kernel is freed: the login typed during the busy cell completes (the form
   and the status widget say logged in), and a second save is clean too.
4. The kernel is made busy again, the canary typed again, Enter, Ctrl+S; then the
   kernel is restarted from the Kernel menu and the notebook saved again: every
   save and checkpoint is clean.

The canary is the session server's auth string (``constants.AUTH_STRING``:
``@``, ``:``, ``#``, ``%``, ``&``, ``!``, so each encoding differs from the raw
text); reusing that server keeps this test to about a minute. The forms scanned:
raw, the password alone, base64 (padded and unpadded, of the auth string and of
the password), percent-encoded, JSON-escaped.
Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
from constants import AUTH_STRING
from lab_support import ARTIFACTS, BROWSER_MARKS, JupyterLab, notebook_page, run_cell
from notebook_support import build_notebook, history_bytes

from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing._server import PrefectServer
from prefect_nbauth.testing.canaries import leak_forms

pytestmark = BROWSER_MARKS

AA = 4.5  # WCAG AA contrast for normal text

# Computed-style contrast of an element's text against the first opaque background behind it
# (WCAG relative luminance; a translucent text colour is composited over that background).
CONTRAST_JS = """
(el) => {
  const parse = (s) => {
    const m = s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c && c[3] > 0) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255, 1];
  const fg = parse(getComputedStyle(el).color);
  const mix = [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
  const lum = (c) => {
    const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const a = lum(mix), b = lum(bg.slice(0, 3));
  return { ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), color: getComputedStyle(el).color,
           background: `rgb(${bg.slice(0, 3).join(", ")})` };
}
"""

# Each message kind of the form, drawn with the form's real stylesheet in the theme in force.
PROBE_JS = """
([box, contrast]) => {
  const measure = eval(contrast);
  const out = {};
  for (const kind of ["error", "ok", "info", "choose"]) {
    const div = document.createElement("div");
    div.className = `pnb-${kind}`;
    div.innerHTML = '<span class="pnb-lead">probe</span>';
    box.appendChild(div);
    out[kind] = measure(div.firstChild);
    div.remove();
  }
  return out;
}
"""


def _notebook(api_url: str, gates: list[Path]) -> Any:
    busy = ("import pathlib, time\n"
            "gate = pathlib.Path({path!r})\n"
            "while not gate.exists():  # the test creates it: busy until then\n"
            "    time.sleep(0.05)\n"
            "print('freed', gate.name)")
    return build_notebook([
        "%load_ext prefect_nbauth\n%prefect_status",
        f"%prefect_login --url {api_url}",
        *(busy.format(path=str(g)) for g in gates),
    ])


def test_secret_typed_while_the_kernel_is_busy_is_never_saved(auth_server: PrefectServer,
                                                              lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    server = auth_server  # the session's server: no second Prefect start for this test
    auth_string = server.auth_string or ""
    assert auth_string == AUTH_STRING
    forms = sorted(leak_forms(auth_string))
    ARTIFACTS.mkdir(exist_ok=True)
    work = lab.work
    gates = [lab.root / "gate-1", lab.root / "gate-2"]
    notebook = work / "secret_box.ipynb"
    nbformat.write(_notebook(server.api_url, gates), str(notebook))
    checkpoint = work / ".ipynb_checkpoints" / "secret_box-checkpoint.ipynb"
    scans: list[str] = []

    def scan(when: str) -> dict[str, Any]:
        """Everything under the notebook directory (notebook, checkpoint), for every form of the secret."""
        files = sorted(p for p in work.rglob("*") if p.is_file())
        assert notebook in files and checkpoint in files, files
        for path in files:
            text = path.read_text(errors="replace")
            for form_ in forms:
                assert form_ not in text, f"{when}: a form of the secret is in {path.name}"
        scans.append(when)
        saved = json.loads(notebook.read_text())
        return saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})

    def save(page: Any, when: str) -> dict[str, Any]:
        def mtimes() -> tuple[int, int]:
            return (notebook.stat().st_mtime_ns, checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0)

        before = mtimes()
        page.keyboard.press("Control+s")  # JupyterLab's save (and checkpoint), bound on the whole page
        wait_until(lambda: all(a != b for a, b in zip(mtimes(), before)), 60, f"the save and checkpoint {when}")
        return scan(when)

    # JupyterLab 4.6 sends widget messages to a kernel subshell ("commsOverSubshells", with
    # ipykernel 7), where they are handled at once even while a cell runs. Older kernels, other
    # front ends, or this setting turned off queue them behind the running cell: the case of
    # the issue, and the one this test reproduces.
    kernels_settings = lab.root / "settings" / "@jupyterlab" / "apputils-extension" / "kernels-settings.jupyterlab-settings"
    kernels_settings.parent.mkdir(parents=True, exist_ok=True)
    kernels_settings.write_text(json.dumps({"commsOverSubshells": "disabled"}))
    contrast: dict[str, Any] = {}
    started = time.monotonic()
    lab.start()
    print(f"jupyterlab started in {time.monotonic() - started:.1f}s")
    with notebook_page(lab, notebook.name, width=1100, height=900, timeout_ms=90_000,
                       failure_shot=ARTIFACTS / "browser-secret-failure.png") as page:
        idle = page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
        busy = page.locator(".jp-StatusBar-TextItem", has_text="| Busy")

        run_cell(page, 0)
        status = page.locator(".prefect-nbauth-status")
        expect(status.locator(".pnb-mode")).to_have_text("none")
        run_cell(page, 1)
        form = page.locator(".prefect-nbauth-login")
        box = form.locator(".pnb-auth-string input[type=password]")
        message = form.locator(".pnb-login-message")
        expect(box).to_be_visible()

        # 1. An error in the light theme, then in the dark theme: measured, not guessed.
        form.locator("button.pnb-login-button").click()
        expect(message.locator(".pnb-error")).to_contain_text("Type the auth string")
        contrast["light error"] = message.locator(".pnb-error .pnb-lead").evaluate(CONTRAST_JS)
        contrast["light kinds"] = page.evaluate(PROBE_JS, [message.element_handle(), CONTRAST_JS])
        page.screenshot(path=str(ARTIFACTS / "browser-secret-light-error.png"), full_page=True)
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel:text-is('Theme')").hover()
        page.locator(".lm-Menu-itemLabel:text-is('JupyterLab Dark')").click()
        page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
        page.keyboard.press("Escape")
        wait_until(lambda: message.locator(".pnb-error .pnb-lead").evaluate(CONTRAST_JS)["ratio"]
               != contrast["light error"]["ratio"], 30, "the dark theme's colours")
        contrast["dark error"] = message.locator(".pnb-error .pnb-lead").evaluate(CONTRAST_JS)
        contrast["dark kinds"] = page.evaluate(PROBE_JS, [message.element_handle(), CONTRAST_JS])

        # A wrong password, Enter (the kernel is idle): one sentence, the details folded away.
        box.fill("nbuser:wrong-password")
        box.press("Enter")
        expect(message.locator(".pnb-error .pnb-lead")).to_have_text("The server refused this credential.",
                                                                     timeout=60_000)
        details = message.locator("details.pnb-details")
        expect(details.locator("pre")).to_be_hidden()  # collapsed
        page.screenshot(path=str(ARTIFACTS / "browser-secret-dark-error.png"), full_page=True)
        details.locator("summary").click()
        expect(details.locator("pre")).to_contain_text("AuthenticationError")

        # 2. The kernel is busy; the secret is typed, Enter, Ctrl+S.
        run_cell(page, 2)
        expect(busy).to_be_visible()
        box.fill(auth_string)
        box.press("Enter")
        expect(box).to_have_value("")  # cleared in the page the moment it was sent
        state = save(page, "busy kernel")
        # The kernel has not seen the secret yet: the form still shows the wrong password's error.
        expect(message.locator(".pnb-error .pnb-lead")).to_have_text("The server refused this credential.")
        expect(busy).to_be_visible()
        models = state.get("state", {})
        boxes = [m for m in models.values()
                 if m["state"].get("_anywidget_id", "").endswith(".SecretInput")]
        assert boxes, "the saved widget state does not cover the secret boxes"
        assert all("value" not in m["state"] for m in boxes)

        # 3. The kernel frees up: the login typed during the busy cell completes.
        gates[0].touch()
        expect(message).to_contain_text("Logged in to", timeout=90_000)
        expect(message).to_contain_text(f"as {auth_string.split(':')[0]}")
        expect(status.locator(".pnb-mode")).to_have_text("basic", timeout=30_000)
        contrast["dark ok"] = message.locator(".pnb-ok .pnb-lead").evaluate(CONTRAST_JS)
        form.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-secret-dark-logged-in.png"), full_page=True)
        save(page, "after the login")

        # 4. Busy again, typed again, saved; then the kernel restarts, and it is saved again.
        run_cell(page, 3)
        expect(busy).to_be_visible()
        box.fill(auth_string)
        box.press("Enter")
        expect(box).to_have_value("")
        save(page, "busy kernel, second time")
        expect(message).to_contain_text("Logged in to")  # not "Connecting…": still queued
        expect(busy).to_be_visible()
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        expect(idle).to_be_visible(timeout=90_000)  # the new kernel; the busy one is gone
        save(page, "after the kernel restart")
    lab.stop()  # shuts the kernel down: its history is written out

    assert scans == ["busy kernel", "after the login", "busy kernel, second time", "after the kernel restart"]
    raw = history_bytes(lab.root / "ipython" / "profile_default" / "history.sqlite")
    assert raw, "no kernel history to scan"
    for form_ in forms:
        assert form_.encode() not in raw, "a form of the secret is in the kernel's history"
    # Theme colours (issue 15): every message kind reaches WCAG AA in light and in dark.
    (ARTIFACTS / "browser-secret-contrast.json").write_text(json.dumps(contrast, indent=1))
    for theme in ("light", "dark"):
        for kind, measured in contrast[f"{theme} kinds"].items():
            assert measured["ratio"] >= AA, (theme, kind, measured)
    assert contrast["light error"]["ratio"] >= AA and contrast["dark error"]["ratio"] >= AA, contrast
    assert contrast["dark ok"]["ratio"] >= AA, contrast
