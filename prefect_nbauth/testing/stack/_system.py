"""What the scaled stack needs from the machine: Debian packages, its directories, stale sweeps."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .._process import pid_alive

__all__ = ["APT_PACKAGES", "ROOT_PREFIX", "ensure_system_packages", "make_dir", "service_user",
           "sweep_stale_roots"]

ROOT_PREFIX = "nbauth-scaled-"
APT_PACKAGES = {"postgresql": "/usr/lib/postgresql", "redis-server": "/usr/bin/redis-server",
                "nginx": "/usr/sbin/nginx"}


def ensure_system_packages() -> None:
    """Install Debian's postgresql, redis-server and nginx if missing (as root, with apt)."""
    missing = [pkg for pkg, path in APT_PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"the scaled stack needs Debian's {' '.join(missing)}: "
                           f"apt-get install {' '.join(missing)} (as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    # Debian starts the packaged daemons on install; the stack runs its own on other ports.


def sweep_stale_roots(tmp: str | None = None) -> list[str]:
    """Delete stack directories whose owner process is gone (it was SIGKILLed); return them."""
    removed = []
    for root in glob.glob(os.path.join(tmp or tempfile.gettempdir(), ROOT_PREFIX + "*")):
        try:
            owner = int(Path(root, "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if not pid_alive(owner):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def service_user() -> str | None:
    """Who PostgreSQL and NGINX run as: PostgreSQL refuses root, so ``nobody`` when we are root."""
    return "nobody" if os.geteuid() == 0 else None


def make_dir(path: Path, owner: str | None = None) -> Path:
    """``path`` (created), owned by ``owner`` and private to it when one is given."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)
    return path
