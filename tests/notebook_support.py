"""What the kernel and browser tests share: a server with a canary auth string, a notebook
run in a real kernel (nbclient), and the places a leaked secret would land.

A test that proves "no secret in the saved notebook or the kernel's history" starts a
:func:`canary_protected_server`, runs its cells (:func:`build_notebook`, :func:`execute`, or a real
JupyterLab in the browser tests), then scans with :func:`assert_no_trace`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect_nbauth.testing._server import PrefectServer, isolated_env

__all__ = [
    "KERNELSPEC",
    "START_FLOW",
    "assert_no_trace",
    "build_notebook",
    "canary_protected_server",
    "execute",
    "history_bytes",
    "notebook_env",
    "run_notebook",
    "stdout_with",
    "text_outputs",
]

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# Defines start_flow(run_id, lines, fail, **env) in a notebook: starts a Pending flow run of
# prefect_nbauth.testing.logs.FLOWS in another interpreter, as a worker would. The kernel's environment
# gives NB_API_URL, NB_TEST_AUTH (also logged by the flow, as a canary) and NB_FLOWS.
START_FLOW = (
    "import os, subprocess, sys, tempfile\n"
    "def start_flow(run_id, lines, fail, **extra):\n"
    "    env = {k: v for k, v in os.environ.items() if not k.startswith('PREFECT_')}\n"
    "    env.update(PREFECT_API_URL=os.environ['NB_API_URL'], PREFECT_API_AUTH_STRING=os.environ['NB_TEST_AUTH'],\n"
    "               PREFECT__FLOW_RUN_ID=run_id, LOG_LINES=str(lines),\n"
    # the flow's own PREFECT_HOME beside the notebook (a test's temporary folder), not in /tmp
    "               PREFECT_HOME=tempfile.mkdtemp(prefix='flow-home-', dir=os.getcwd()),\n"
    "               LOG_FAIL='1' if fail else '0', LOG_CANARY=os.environ['NB_TEST_AUTH'], **extra)\n"
    "    return subprocess.Popen([sys.executable, '-m', 'prefect.flow_engine', os.environ['NB_FLOWS'] + ':burst'],\n"
    "                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
)


@contextmanager
def canary_protected_server(home: Path, **extra_env: str) -> Iterator[tuple[PrefectServer, str]]:
    """A real Prefect server requiring ``nbuser:<canary>``, a fresh random password: (server, canary)."""
    canary = "CANARY" + secrets.token_hex(12)
    with PrefectServer(home, auth_string=f"nbuser:{canary}", extra_env=extra_env) as server:
        yield server, canary


def notebook_env(root: Path, **extra: str) -> dict[str, str]:
    """An environment for a kernel: none of our ``PREFECT_*``, no ephemeral server, and its
    own ``PREFECT_HOME`` (``root/prefect-home``) and ``IPYTHONDIR`` (``root/ipython``)."""
    ipython_dir, prefect_home = root / "ipython", root / "prefect-home"
    ipython_dir.mkdir(exist_ok=True)
    prefect_home.mkdir(exist_ok=True)
    return isolated_env(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                        IPYTHONDIR=str(ipython_dir), **extra)


def build_notebook(cells: Iterable[str | tuple[str, dict[str, Any]]]) -> Any:
    """A notebook of code cells (source, or (source, cell metadata)) with a kernelspec, so
    that neither nbclient nor JupyterLab has to ask which kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in cells:
        source, metadata = (cell, {}) if isinstance(cell, str) else cell
        code = nbformat.v4.new_code_cell(source)
        code.metadata.update(metadata)
        nb.cells.append(code)
    return nb


def execute(nb: Any, path: Path, env: dict[str, str], *, timeout: int) -> Path:
    """Run ``nb`` in a real python3 kernel in ``path``'s folder, save it to ``path`` (outputs
    and widget state), and return the kernel's history database (under ``IPYTHONDIR``)."""
    import nbformat
    from nbclient import NotebookClient

    history = Path(env["IPYTHONDIR"]) / "profile_default" / "history.sqlite"
    # nbclient keeps history in memory by default; a user's kernel writes this file.
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", ipython_hist_file=str(history),
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # raises CellExecutionError on any error output
    nbformat.write(nb, str(path))
    return history


def run_notebook(cells: Iterable[str | tuple[str, dict[str, Any]]], root: Path, *, timeout: int,
                 **env: str) -> tuple[Any, Path, Path]:
    """Run ``cells`` in a real kernel with :func:`notebook_env` ``(root, **env)``, saved to
    ``root/executed.ipynb``: (the notebook, its path, the kernel's history database)."""
    nb = build_notebook(cells)
    path = root / "executed.ipynb"
    history = execute(nb, path, notebook_env(root, **env), timeout=timeout)
    return nb, path, history


def stdout_with(nb: Any, marker: str) -> str:
    """The first stdout output holding ``marker``."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout" and marker in out.get("text", ""):
                return str(out["text"])
    raise AssertionError(f"no output with {marker!r}")


def text_outputs(nb: Any) -> str:
    """Every output as text: streams, tracebacks and display data."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + "\n".join(out.get("traceback", [])) + str(out.get("data", "")))
    return "\n".join(parts)


def history_bytes(history: Path) -> bytes:
    """IPython's history database as stored on disk, its ``-wal``/``-journal`` files included."""
    return b"".join(p.read_bytes() for p in history.parent.glob("history.sqlite*"))


def assert_no_trace(forms: Iterable[str], *, saved: str, history: Path | None = None) -> None:
    """No form of the secret in the saved notebook's text, nor in the kernel's history files."""
    raw = history_bytes(history) if history is not None else b""
    for form in forms:
        assert form not in saved, "the secret is in the saved notebook"
        assert form.encode() not in raw, "the secret is in the kernel's history"
