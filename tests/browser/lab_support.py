"""JupyterLab on 127.0.0.1 and Debian's chromium through Playwright, for the browser tests.

Chromium is ``/usr/bin/chromium`` (Debian's package) through Playwright's
``executable_path``; Playwright never downloads a browser here. Each test gets its own
JupyterLab (the ``lab`` fixture of this folder's conftest.py) with a throw-away config,
settings, root directory, ``IPYTHONDIR`` and ``PREFECT_HOME``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_nbauth.testing._server import free_port

__all__ = [
    "ARTIFACTS",
    "BROWSER_MARKS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "MEASURE_JS",
    "JupyterLab",
    "chromium",
    "end_sessions",
    "new_page",
    "notebook_page",
    "open_notebook",
    "run_cell",
    "save_notebook",
    "screenshot_on_failure",
]

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"

try:
    import playwright.sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PLAYWRIGHT = False

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(apt-get install chromium); ./scripts/test installs it when run as root"),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="the playwright Python package is not installed "
                       "(pip install -e '.[test]')"),
]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# Measures one output area (only its elements matching the optional second argument);
# returns {"texts": n, "contrast": [failures], "overflow": [...], "clipped": [...]}.
MEASURE_JS = r"""
(root, only) => {
  const area = root.closest('.jp-OutputArea-output') || root;
  const parse = (c) => {
    const m = c && c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, bottom) => ({r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      const c = parse(cs.backgroundColor);
      const opacity = Number(cs.opacity);
      if (c && c.a > 0) { layers.push({...c, a: c.a * opacity}); if (c.a >= 1 && opacity >= 1) break; }
    }
    let bg = {r: 255, g: 255, b: 255, a: 1};  // the canvas
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    const cs = getComputedStyle(el);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && el.offsetParent !== null;
  };
  const ownText = (el) => {
    if (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') return el.type === 'password' ? '' : el.value;
    if (el.tagName === 'STYLE' || el.tagName === 'SCRIPT') return '';
    return Array.from(el.childNodes).filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
  };
  const describe = (el) => `${el.tagName.toLowerCase()}.${String(el.className).trim().split(/\s+/).slice(0, 3).join('.')}` +
      ` "${(ownText(el) || '').slice(0, 40)}"`;
  const areaBox = area.getBoundingClientRect();
  const out = {texts: 0, contrast: [], overflow: [], clipped: [], width: areaBox.width, lowest: null};
  for (const el of [area, ...area.querySelectorAll('*')]) {
    if (!visible(el) || (only && !el.matches(only))) continue;
    const cs = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    // Overflow: wider than the area, unless a scroll box inside the area holds it.
    if (box.right > areaBox.right + 1 || box.left < areaBox.left - 1) {
      let scrolled = false;
      for (let p = el.parentElement; p && p !== area; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX;
        if ((o === 'auto' || o === 'scroll' || o === 'hidden') && p.getBoundingClientRect().right <= areaBox.right + 1) {
          scrolled = true; break;
        }
      }
      if (!scrolled) out.overflow.push(`${describe(el)} spans ${Math.round(box.left - areaBox.left)}..` +
                                        `${Math.round(box.right - areaBox.left)} px of ${Math.round(areaBox.width)}`);
    }
    const text = ownText(el);
    if (!text) continue;
    // Clipped text: needs an ellipsis and a way to see it whole.
    if (el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA' && el.scrollWidth > el.clientWidth + 1 &&
        cs.overflowX !== 'visible') {
      const whole = (el.title && el.title.length >= text.length - 1) || el.closest('details') !== null;
      if (cs.textOverflow !== 'ellipsis' || !whole) out.clipped.push(describe(el));
    }
    if (el.closest('[disabled], :disabled, .mod-disabled')) continue;  // inactive: exempt (WCAG 1.4.3)
    out.texts += 1;
    const fg = parse(cs.color);
    const bg = background(el);
    const fgOnBg = over({...fg, a: fg.a * Number(cs.opacity)}, bg);
    const r = ratio(fgOnBg, bg);
    const size = parseFloat(cs.fontSize);
    const bold = Number(cs.fontWeight) >= 700;
    const needed = (size >= 24 || (size >= 18.66 && bold)) ? 3 : 4.5;
    if (out.lowest === null || r < out.lowest.ratio) out.lowest = {ratio: Math.round(r * 100) / 100, what: describe(el)};
    if (r < needed) out.contrast.push(`${describe(el)}: ${r.toFixed(2)}:1 (${cs.color} on ` +
                                      `rgb(${Math.round(bg.r)},${Math.round(bg.g)},${Math.round(bg.b)}))`);
  }
  return out;
}
"""


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


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1 with a throw-away config, settings and root directory.

    Notebooks go in ``work`` (``root/work``, the server's root directory).
    """

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.work = root / "work"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = root / "jupyterlab.log"
        self.extra_args: list[str] = []  # more command-line options for ``jupyter lab``
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        """Start it (once: a second call while it runs does nothing)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        settings, workspaces = self.root / "settings", self.root / "workspaces"
        _write_settings(settings)
        workspaces.mkdir(exist_ok=True)
        self.work.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={self.work}",
                f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
                "--ServerApp.open_browser=False", "--LabApp.news_url=None", *self.extra_args]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_started(self.proc, time.monotonic() + timeout)

    def _wait_started(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{self.tail()}")
                try:
                    if client.get(f"{self.url}/api/status").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JupyterLab did not start:\n{self.tail()}")
                try:
                    proc.wait(0.2)  # returns early if it dies
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


@contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """Debian's chromium, launched by Playwright (never a downloaded browser); closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, *, width: int, height: int, timeout_ms: int) -> Any:
    """A page whose waits (and ``expect``'s) last ``timeout_ms``: a shared 2-core machine
    takes seconds for a kernel's first imports."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    expect.set_options(timeout=timeout_ms)
    return page


@contextmanager
def screenshot_on_failure(page: Any, path: Path) -> Iterator[None]:
    """A whole-page screenshot at ``path`` if the block fails (only a failing run leaves one)."""
    path.unlink(missing_ok=True)
    try:
        yield
    except BaseException:
        page.screenshot(path=str(path), full_page=True)
        raise


def open_notebook(page: Any, lab: JupyterLab, name: str, *, origin: str | None = None) -> None:
    """Open ``name`` alone in JupyterLab (``?reset``: not beside the notebooks an earlier
    test left open in the workspace) and wait until its kernel is idle: a cell run before
    the kernel is connected is dropped. ``origin`` replaces ``lab.url``'s scheme://host:port."""
    from playwright.sync_api import expect

    page.goto(f"{origin or lab.url}/lab/tree/{name}?reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()


@contextmanager
def notebook_page(lab: JupyterLab, name: str, *, width: int, height: int, timeout_ms: int,
                  failure_shot: Path) -> Iterator[Any]:
    """Chromium on notebook ``name`` of a started ``lab``, its kernel idle; a screenshot at
    ``failure_shot`` if the block fails; the browser closed after."""
    with chromium() as browser:
        page = new_page(browser, width=width, height=height, timeout_ms=timeout_ms)
        with screenshot_on_failure(page, failure_shot):
            open_notebook(page, lab, name)
            yield page


def run_cell(page: Any, index: int) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def save_notebook(page: Any) -> None:
    """JupyterLab's save (Ctrl+S, bound on the whole page); returns once the tab is clean."""
    from playwright.sync_api import expect

    dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
    page.keyboard.press("Control+s")
    expect(dirty).to_have_count(0, timeout=60_000)


def end_sessions(page: Any) -> None:
    """Shut down every kernel session of the page's Jupyter server, from the page (its ``_xsrf``
    cookie: a request without it is refused with 403), so one kernel runs at a time."""
    page.evaluate("""async () => {
        const xsrf = decodeURIComponent((document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "");
        const sessions = await (await fetch("/api/sessions")).json();
        for (const s of sessions) {
            const done = await fetch(`/api/sessions/${s.id}`, {method: "DELETE", headers: {"X-XSRFToken": xsrf}});
            if (!done.ok) throw new Error(`DELETE session: ${done.status}`);
        }
    }""")
