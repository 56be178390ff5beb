"""One venv per Prefect version, for the version-matrix tests (tests/test_versions_matrix.py).

Each venv lives in ``<repo>/.prefect-versions/<version>/`` (git-ignored) and is reused: a
``.complete`` marker holding the pin list is written only after a successful install and an
``import prefect`` that reports the right version, so an interrupted install is redone and a
changed pin list reinstalls. prefect_nbauth itself is not installed there: scenarios put the
repository on ``PYTHONPATH``, so every venv runs the code under test.

The same venv serves as a client and, for the old releases, as a server: servers before
3.6.29 start today only with ``fastapi<0.116`` (and 3.4.x with ``importlib_metadata``), per
PREFECT_FACTS.md. The client-side libraries (httpx, websockets, pydantic) are the newest the
release allows, as a fresh ``pip install prefect==X`` gives a user.

Run ``python tests/prefect_versions.py 3.4.8 3.6.13`` to build venvs ahead of a test run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect_nbauth.testing._server import isolated_env

__all__ = [
    "BELOW_FLOOR",
    "FLOOR",
    "MATRIX_VERSIONS",
    "PrefectVenvUnavailable",
    "ensure_all",
    "ensure_prefect_venv",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
VENVS_DIR = Path(os.environ.get("NBAUTH_PREFECT_VENVS", REPO_ROOT / ".prefect-versions"))

FLOOR = "3.4.8"  # the lowest declared client (pyproject.toml), also the oldest server claimed
BELOW_FLOOR = "3.3.7"  # the last release below the floor: must refuse with a clear error
PRE_HANDSHAKE = "3.5.0"  # a client whose emitter lacks the 'prefect' subprotocol
PRE_HANDSHAKE_36 = "3.6.13"  # the last 3.6 release before the emitter handshake
MATRIX_VERSIONS = (BELOW_FLOOR, FLOOR, PRE_HANDSHAKE, PRE_HANDSHAKE_36)

# What a scenario or kernel needs beside Prefect (prefect_nbauth's own deps and nbclient).
_COMMON = ("httpx>=0.27", "ipywidgets>=8.1,<9", "oauthlib>=3.2")
_KERNEL = ("ipykernel>=6.29", "nbclient>=0.10", "nbformat>=5.10")
_SERVER_PINS = ("fastapi<0.116", "importlib_metadata")


def pins_for(version: str) -> tuple[str, ...]:
    if version == BELOW_FLOOR:  # only imported: login()/status() must refuse
        return (f"prefect=={version}", *_COMMON)
    return (f"prefect=={version}", *_SERVER_PINS, *_COMMON, *_KERNEL)


INSTALL_TIMEOUT = 900.0
_MARKER = ".complete"
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()
_failures: dict[str, str] = {}  # remembered for the session: a failed install is not retried


class PrefectVenvUnavailable(RuntimeError):
    """A Prefect venv could not be created; the message carries pip's last lines."""


def venv_python(version: str) -> Path:
    venv = VENVS_DIR / version
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _marker_text(version: str) -> str:
    return json.dumps({"pins": list(pins_for(version)), "python": sys.version.split()[0]})


def _tail(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def ensure_prefect_venv(version: str) -> Path:
    """The python of a venv with Prefect ``version``, created if missing or stale."""
    with _locks_lock:
        lock = _locks.setdefault(version, threading.Lock())
    with lock, _file_lock(VENVS_DIR / f"{version}.lock"):
        if version in _failures:
            raise PrefectVenvUnavailable(_failures[version])
        venv = VENVS_DIR / version
        python, marker = venv_python(version), venv / _MARKER
        if python.exists() and marker.exists() and marker.read_text() == _marker_text(version):
            return python
        try:
            _install(version, venv)
        except PrefectVenvUnavailable as exc:
            _failures[version] = str(exc)
            raise
        marker.write_text(_marker_text(version))
        return python


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One builder per venv across processes: scripts/test may prebuild while pytest waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: in-process lock only
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_all(versions: tuple[str, ...] = MATRIX_VERSIONS) -> dict[str, Path]:
    """Build the venvs side by side (pip waits on the network and on unzipping, not the CPU)."""
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        futures = {v: pool.submit(ensure_prefect_venv, v) for v in versions}
    return {v: f.result() for v, f in futures.items()}


def _install(version: str, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    env = isolated_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    python = venv_python(version)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *pins_for(version)],
    ]
    deadline = time.monotonic() + INSTALL_TIMEOUT
    for argv in steps:
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            shutil.rmtree(venv, ignore_errors=True)
            raise PrefectVenvUnavailable(
                f"installing prefect=={version} took more than {INSTALL_TIMEOUT:g} s") from None
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise PrefectVenvUnavailable(
                f"could not install prefect=={version} into {venv} (is the package index "
                f"reachable?): exit {done.returncode}:\n{_tail(done.stderr or done.stdout)}")
    check = subprocess.run([str(python), "-c", "import prefect; print(prefect.__version__)"], check=False,
                           env=env, capture_output=True, text=True, timeout=300)
    if check.returncode != 0 or check.stdout.strip() != version:
        shutil.rmtree(venv, ignore_errors=True)
        raise PrefectVenvUnavailable(
            f"the prefect=={version} venv was built but `import prefect` gave "
            f"{check.stdout.strip()!r}:\n{_tail(check.stderr)}")


if __name__ == "__main__":
    t0 = time.monotonic()
    wanted = tuple(sys.argv[1:]) or MATRIX_VERSIONS
    try:
        for v, p in ensure_all(wanted).items():
            print(v, p)
    except PrefectVenvUnavailable as exc:
        sys.exit(str(exc))
    print(f"ready in {time.monotonic() - t0:.0f} s")
