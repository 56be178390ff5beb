"""The tutorial notebooks, executed top to bottom against the real demo server.

The server is started by RUNNING ``binder/start`` (as Binder and ``./scripts/demo``
do), in a temporary HOME and demo directory, on a free port, without its web UI.
``binder/start`` execs a tiny command that prints its own environment as JSON: that
is exactly the environment a notebook kernel gets (the demo's URL and auth string,
no other ``PREFECT_*`` variable), and every notebook runs in a real kernel with it
(nbclient, through ``prefect_nbauth.testing.notebooks``). A notebook fails on any error
output, any stderr output, a timeout, a dead kernel, or the auth string (raw or
base64) in an output or in the widget state nbclient records. Afterwards the
kernels' IPython history (in the temporary HOME) is searched for the secret too.
The server is stopped with ``binder/stop`` at the end.

The committed ``.ipynb`` files are checked without a server: no outputs, a
kernelspec, no secret or key-looking string. Execution times are printed at the
end of the module and written to ``test-artifacts/notebook-times.json``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from constants import USER_CACHE

from prefect_nbauth.testing import free_port
from prefect_nbauth.testing.notebooks import execute_notebook, format_cell

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
AUTH_ENV = "PREFECT_NBAUTH_DEMO_AUTH_STRING"
SSO_PASSWORD_ENV = "PREFECT_NBAUTH_DEMO_SSO_PASSWORD"  # alice's, at notebook 06's identity provider
CELL_TIMEOUT = 240  # seconds per cell (a server restart in notebook 04 takes ~10-30 s)

# Strings that must never be committed in a notebook (or its helper): Prefect Cloud
# keys, binder/start's generated auth strings, JWTs, filled-in auth headers.
SECRET_PATTERNS = {
    "a Prefect Cloud key": re.compile(r"pn[ub]_[A-Za-z0-9_-]{8,}"),
    "a generated demo auth string": re.compile(r"demo:[A-Za-z0-9_-]{20,}"),
    "a JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."),
    "a Basic credential": re.compile(r"Basic [A-Za-z0-9+/]{12,}={0,2}"),
    "a Bearer token": re.compile(r"Bearer [A-Za-z0-9._~+/-]{12,}"),
}


def secret_forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode().rstrip("=")]


# --------------------------------------------------------------- binder/start

@dataclass
class DemoRun:
    """A demo server that binder/start started, and what it gave its command."""

    env: dict[str, str]  # the command's environment (what a kernel gets)
    caller_env: dict[str, str]  # what binder/start was run with
    home: Path
    demo_dir: Path
    port: int
    start_output: str  # binder/start's stderr

    @property
    def api_url(self) -> str:
        return self.env["PREFECT_NBAUTH_DEMO_API_URL"]

    @property
    def auth_string(self) -> str:
        return self.env[AUTH_ENV]


_PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def start_demo(root: Path, *, ui: bool = False, extra_env: dict[str, str] | None = None,
               timeout: float = 300) -> DemoRun:
    """Run ``binder/start python -c <print the environment>`` in a temporary HOME."""
    home, demo_dir = root / "home", root / "demo"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    caller = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    caller.update(HOME=str(home), XDG_CACHE_HOME=USER_CACHE, PREFECT_NBAUTH_DEMO_DIR=str(demo_dir), PREFECT_NBAUTH_DEMO_PORT=str(port),
                  PREFECT_NBAUTH_DEMO_PYTHON=sys.executable, PREFECT_NBAUTH_DEMO_UI="1" if ui else "0")
    caller.update(extra_env or {})
    done = subprocess.run(["bash", str(BINDER / "start"), sys.executable, "-c", _PRINT_ENV],
                          cwd=REPO, env=caller, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        subprocess.run(["bash", str(BINDER / "stop"), "--quiet-if-none"], env=caller, timeout=60)
        raise AssertionError(f"binder/start failed ({done.returncode}):\n{done.stderr[-3000:]}")
    env = json.loads(done.stdout.strip().splitlines()[-1])
    return DemoRun(env=env, caller_env=caller, home=home, demo_dir=Path(env["PREFECT_NBAUTH_DEMO_DIR"]),
                   port=port, start_output=done.stderr)


def stop_demo(run: DemoRun) -> None:
    subprocess.run(["bash", str(BINDER / "stop"), "--quiet-if-none"], env=run.caller_env,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


# ------------------------------------------------------ committed notebooks

def test_there_are_six_tutorial_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_login.ipynb", "02_modes_and_pitfalls.ipynb",
                                           "03_token_rotation.ipynb", "04_streaming_events.ipynb",
                                           "05_watch_a_run.ipynb", "06_sign_in_with_sso.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "metadata.kernelspec is missing"
    assert "widgets" not in nb.metadata, "widget state is committed"
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: commit notebooks without outputs"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "What it needs" in first.source, \
        "the first cell must say what the notebook needs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_in_the_form_jupyterlab_saves(path: Path) -> None:
    """Opened in JupyterLab and closed untouched, a tutorial must not show as modified (and be
    autosaved into the repository): its metadata is what the kernel tells JupyterLab, and the
    file is what JupyterLab's server writes (nbformat, sorted keys, one-space indent, a final
    newline). tests/browser/test_browser_demo_notebooks.py opens one in the demo to show it."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    assert text == nbformat.writes(nb, version=nbformat.NO_CONVERT) + "\n", "not as JupyterLab's server writes it"
    assert (nb.nbformat, nb.nbformat_minor) == (nbformat.current_nbformat, nbformat.current_nbformat_minor)
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert nb.metadata.kernelspec == {"display_name": spec.display_name, "language": spec.language,
                                      "name": "python3"}
    expected = dict(IPythonKernel.language_info)  # what the kernel tells JupyterLab on connecting
    shown = dict(nb.metadata.language_info)
    assert set(shown) == set(expected), "language_info is not the kernel's whole answer"
    assert {k: v for k, v in shown.items() if k != "version"} == {k: v for k, v in expected.items() if k != "version"}
    assert re.fullmatch(r"3\.\d+\.\d+", shown["version"])


@pytest.mark.parametrize("path", [*NOTEBOOKS, NOTEBOOK_DIR / "_demo.py"], ids=lambda p: p.name)
def test_no_secret_is_committed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for what, pattern in SECRET_PATTERNS.items():
        found = pattern.findall(text)
        assert not found, f"{path.name} contains {what}: {found[0][:12]}…"


def test_demo_helper_says_how_to_start_the_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import _demo; _demo.find_demo()"], cwd=NOTEBOOK_DIR,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "DemoNotFound" in done.stderr and "./scripts/demo" in done.stderr


# ------------------------------------------------------- executed notebooks

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    # Nobody clicks here: a scripted alice approves notebook 06's sign-in, as in --headless.
    run = start_demo(tmp_path_factory.mktemp("notebook-demo"), extra_env={"PREFECT_NBAUTH_DEMO_SSO_APPROVE": "1"})
    try:
        yield run
    finally:
        stop_demo(run)


TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_times(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not TIMES:
        return
    lines = [f"  {name}: {seconds:.1f} s" for name, seconds in TIMES.items()]
    lines.append(f"  all: {sum(TIMES.values()):.1f} s (kernel start-up included)")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\nNotebook execution times:\n" + "\n".join(lines))
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "notebook-times.json").write_text(json.dumps(TIMES, indent=2) + "\n")


@pytest.mark.server
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(demo: DemoRun, path: Path, tmp_path: Path) -> None:
    history = demo.home / ".ipython" / "profile_default" / "history.sqlite"  # as a user's kernel keeps it
    history.parent.mkdir(parents=True, exist_ok=True)
    temp = tmp_path / "tmp"  # the kernel's temporary folder: a notebook removes what it makes there
    temp.mkdir()
    report = execute_notebook(path, env={**demo.env, "TMPDIR": str(temp)}, timeout=CELL_TIMEOUT,
                              secret_env=[AUTH_ENV, SSO_PASSWORD_ENV], history_file=history)
    assert [p.name for p in temp.iterdir() if p.name.startswith("nbauth-")] == [], "left behind"
    TIMES[path.name] = report.seconds
    problems = list(report.problems)
    for cell in report.cells:
        for out in cell.outputs:
            if out.kind == "stderr":
                problems.append(f"cell {cell.index} wrote to stderr: {out.text.strip()[:300]}")
    if problems:
        shown = "\n".join(filter(None, (format_cell(c, max_lines=20) for c in report.cells)))
        pytest.fail(f"{path.name}: " + "; ".join(problems) + f"\n--- what the cells showed ---\n{shown}")
    assert report.code_cells_run == report.code_cells


@pytest.mark.server
def test_the_kernels_history_holds_no_secret(demo: DemoRun) -> None:
    # After the notebooks ran (same module, same HOME): IPython saved every line.
    history = demo.home / ".ipython" / "profile_default" / "history.sqlite"
    if not TIMES or not history.exists():
        pytest.skip("no notebook ran in this session")
    con = sqlite3.connect(f"file:{history}?mode=ro", uri=True)
    try:
        rows = [" ".join(map(str, row)) for table in ("history", "output_history")
                for row in con.execute(f"SELECT * FROM {table}")]
    finally:
        con.close()
    text = "\n".join(rows)
    assert "%prefect_login" in text  # the history is the kernels' indeed
    raw = b"".join(p.read_bytes() for p in history.parent.glob("history.sqlite*"))
    for form in [*secret_forms(demo.auth_string), *secret_forms(demo.env[SSO_PASSWORD_ENV])]:
        assert form not in text and form.encode() not in raw
