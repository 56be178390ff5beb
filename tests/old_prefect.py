"""An old Prefect server (3.2.15) in its own virtual environment, for the auth audit tests.

Prefect servers before spring 2025 did not check event websockets even when an auth
string was set (Prefect issue #17687, fixed by PR #17741, first released in 3.3.5).
3.2.15 is the last 3.2 release; it starts today only with the pins below.

The venv lives in ``<repo>/.old-prefect-venv/`` (git-ignored) and is reused between
runs: a ``.complete`` marker holding the pin list is written only after a successful
install, so an interrupted install is redone and a changed pin list reinstalls.
If the install fails (no network, no registry), the fixture skips with the reason.

Run ``python tests/old_prefect.py`` to build the venv ahead of a test run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from constants import AUTH_STRING

from prefect_nbauth.testing._server import PrefectServer, isolated_env

__all__ = ["OLD_PREFECT_VERSION", "OLD_PREFECT_PINS", "ensure_old_prefect", "old_auth_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = Path(os.environ.get("NBAUTH_OLD_PREFECT_VENV", REPO_ROOT / ".old-prefect-venv"))
OLD_PREFECT_VERSION = "3.2.15"
OLD_PREFECT_PINS = (
    f"prefect=={OLD_PREFECT_VERSION}",
    "fastapi<0.116",
    "pydantic<2.11",
    "pydantic-settings<2.9",
    "starlette<0.47",
    "websockets<14",
    "sqlalchemy<2.1",
    "importlib_metadata",
)
INSTALL_TIMEOUT = 900.0
_MARKER = ".complete"
_lock = threading.Lock()
_failure: str | None = None  # remembered for the session: do not retry a failed install


class OldPrefectUnavailable(RuntimeError):
    """The 3.2.15 venv could not be created; the message says why."""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _marker_text() -> str:
    return json.dumps({"pins": list(OLD_PREFECT_PINS), "python": sys.version.split()[0]})


def _tail(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def ensure_old_prefect(venv: Path = VENV_DIR) -> Path:
    """Return the python of a venv with Prefect 3.2.15, creating it if needed.

    Raises OldPrefectUnavailable with pip's own last lines when it cannot be built.
    """
    global _failure
    with _lock:
        if _failure is not None:
            raise OldPrefectUnavailable(_failure)
        python = _python(venv)
        marker = venv / _MARKER
        if python.exists() and marker.exists() and marker.read_text() == _marker_text():
            return python
        try:
            _install(venv)
        except OldPrefectUnavailable as exc:
            _failure = str(exc)
            raise
        marker.write_text(_marker_text())
        return python


def _install(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    env = isolated_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(_python(venv)), "-m", "pip", "install", "--quiet", *OLD_PREFECT_PINS],
    ]
    deadline = time.monotonic() + INSTALL_TIMEOUT
    for argv in steps:
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            shutil.rmtree(venv, ignore_errors=True)
            raise OldPrefectUnavailable(
                f"installing prefect=={OLD_PREFECT_VERSION} took more than {INSTALL_TIMEOUT:g} s"
            ) from None
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise OldPrefectUnavailable(
                f"could not install prefect=={OLD_PREFECT_VERSION} into {venv} "
                f"(is PyPI reachable?): `{' '.join(argv[-3:])}` exited {done.returncode}:\n"
                f"{_tail(done.stderr or done.stdout)}"
            )
    check = subprocess.run(
        [str(_python(venv)), "-c", "import prefect; print(prefect.__version__)"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    if check.returncode != 0 or check.stdout.strip() != OLD_PREFECT_VERSION:
        shutil.rmtree(venv, ignore_errors=True)
        raise OldPrefectUnavailable(
            f"the venv was built but `import prefect` gave {check.stdout.strip()!r}:\n"
            f"{_tail(check.stderr)}"
        )


@pytest.fixture(scope="session")
def old_prefect_python() -> Path:
    """The python of the Prefect 3.2.15 venv; skips the test when it cannot be built."""
    try:
        return ensure_old_prefect()
    except OldPrefectUnavailable as exc:
        pytest.skip(f"Prefect {OLD_PREFECT_VERSION} is unavailable: {exc}")


@pytest.fixture(scope="module")
def old_auth_server(old_prefect_python: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect 3.2.15 server enforcing ``PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING``.

    Module-scoped, so it is stopped when the module that uses it ends and never runs beside
    the session's two 3.9 servers for long. Use it with
    ``from old_prefect import old_auth_server, old_prefect_python  # noqa: F401``.
    """
    server = PrefectServer(tmp_path_factory.mktemp("old-auth-server-home"),
                           auth_string=AUTH_STRING, python=str(old_prefect_python))
    try:
        server.start(timeout=180)
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        print(ensure_old_prefect())
    except OldPrefectUnavailable as exc:
        sys.exit(str(exc))
    print(f"ready in {time.monotonic() - t0:.0f} s")
