"""The Hub's and the kernels' Python, readable by the Unix users the Hub spawns.

``LocalProcessSpawner`` starts each person's server as that person: their Python, site
packages and this project must be readable by them. A venv under ``/root`` (a pyenv, the
repository's ``.venv``) is not, so :func:`ensure_hub_env` builds one from Debian's
``/usr/bin/python3`` (``python3-venv``) under ``/opt/prefect-nbauth/`` (0755), with

* ``jupyterhub`` and ``oauthenticator`` at the pinned versions (:data:`JUPYTERHUB_VERSION`,
  :data:`OAUTHENTICATOR_VERSION`), ``jupyter_server`` for ``jupyterhub-singleuser`` and
  ``ipykernel`` for the kernels;
* this project (the code under test, installed from its source tree, not editable: the
  spawned users may not be able to read the tree) with the Prefect version of the
  running test process, so the kernels run what the tests test;
* ``configurable-http-proxy`` (npm, :data:`CHP_VERSION`) beside it.

Idempotent and keyed: the dependencies are installed once per pin set (a ``.complete``
marker written last), the project again whenever its source changes (a content hash).
A file lock makes parallel test processes install once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from .._apt import apt_install

__all__ = ["CHP_VERSION", "HubEnv", "JUPYTERHUB_VERSION", "OAUTHENTICATOR_VERSION", "ensure_hub_env"]

JUPYTERHUB_VERSION = "6.1.1"
OAUTHENTICATOR_VERSION = "17.4.0"
CHP_VERSION = "5.3.0"
BASE_PYTHON = "/usr/bin/python3"
ROOT = Path(os.environ.get("NBAUTH_HUB_ENV_ROOT", "/opt/prefect-nbauth"))
INSTALL_TIMEOUT = 1200.0


class HubEnv:
    """Paths inside a built Hub environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.python = self.venv / "bin" / "python"
        self.bin = self.venv / "bin"
        self.chp = root / "node" / "node_modules" / ".bin" / "configurable-http-proxy"

    def version(self, package: str) -> str:
        out = subprocess.run(
            [str(self.python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True, text=True, check=True)
        return out.stdout.strip()


def _pins() -> list[str]:
    prefect = metadata.version("prefect")
    return [f"jupyterhub=={JUPYTERHUB_VERSION}", f"oauthenticator=={OAUTHENTICATOR_VERSION}",
            "jupyter_server>=2.14", "ipykernel>=6.29", f"prefect=={prefect}"]


def _project_root() -> Path:
    """The source tree of the code under test (holding pyproject.toml)."""
    here = Path(__file__).resolve().parents[3]
    if not (here / "pyproject.toml").exists():
        raise RuntimeError(
            "the Hub environment installs this project from its source tree, which is not beside "
            f"the installed package ({here}): run the Hub tests from a checkout")
    return here


def _source_hash(project: Path) -> str:
    digest = hashlib.sha256()
    files = [project / "pyproject.toml", *sorted((project / "prefect_nbauth").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _copy_project(project: Path, into: Path) -> Path:
    """pyproject.toml, README.md and the package (no caches) copied under ``into``."""
    tree = into / "prefect-nbauth"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(project / name, tree / name)
    shutil.copytree(project / "prefect_nbauth", tree / "prefect_nbauth",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tree


def _run(argv: list[str], **kwargs: object) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT,
                   **kwargs)  # type: ignore[call-overload]


def ensure_hub_env() -> HubEnv:
    """Build (or reuse) the world-readable Hub + kernel environment; see the module docstring."""
    _ensure_debian_venv()
    pins = _pins()
    key = hashlib.sha256(json.dumps([pins, CHP_VERSION, sys.version_info[:2]]).encode()).hexdigest()[:12]
    env = HubEnv(ROOT / f"hub-{key}")
    ROOT.mkdir(parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    project = _project_root()
    with open(ROOT / f".hub-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = env.root / ".complete"
        if not (marker.exists() and marker.read_text() == json.dumps(pins)):
            shutil.rmtree(env.root, ignore_errors=True)
            env.root.mkdir(parents=True)
            env.root.chmod(0o755)
            _run([BASE_PYTHON, "-m", "venv", str(env.venv)])
            _run([str(env.python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
            _run([str(env.python), "-m", "pip", "install", "-q", *pins])
            _install_chp(env)
            marker.write_text(json.dumps(pins))
        stamp = env.root / ".project"
        source = _source_hash(project)
        if not (stamp.exists() and stamp.read_text() == source):
            with tempfile.TemporaryDirectory(prefix="nbauth-hub-src-") as copy:
                # From a copy of what the package is built from: pip builds in the tree it is
                # given (a build/ folder), which must not be the checkout's, nor go stale there.
                source_tree = _copy_project(project, Path(copy))
                _run([str(env.python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
                      str(source_tree)], cwd=str(env.root))
                # The project's own dependencies come with it (pip keeps the pinned Prefect).
                _run([str(env.python), "-m", "pip", "install", "-q", str(source_tree), *pins],
                     cwd=str(env.root))
            stamp.write_text(source)
        # Everything readable (and directories enterable) by the spawned users; writable by root only.
        _run(["chmod", "-R", "a+rX,go-w", str(env.root)])
    return env


def _ensure_debian_venv() -> None:
    """Debian's python3 with its venv module (``apt-get install`` when missing and root)."""
    works = Path(BASE_PYTHON).exists() and subprocess.run(
        [BASE_PYTHON, "-c", "import ensurepip, venv"], capture_output=True, check=False).returncode == 0
    if not works:
        apt_install(["python3", "python3-venv"], f"the Hub environment (built from {BASE_PYTHON} with its venv module)")


def _install_chp(env: HubEnv) -> None:
    if shutil.which("npm") is None:
        raise RuntimeError("configurable-http-proxy needs npm, which is missing: apt-get install npm")
    node_dir = env.root / "node"
    node_dir.mkdir()
    (node_dir / "package.json").write_text(json.dumps({"name": "prefect-nbauth-hub-proxy", "private": True}))
    _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(node_dir),
          f"configurable-http-proxy@{CHP_VERSION}"])
