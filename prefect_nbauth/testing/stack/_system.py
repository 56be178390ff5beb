"""What the scaled stack needs from the machine: Debian packages, its directories, stale sweeps."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from .._apt import apt_install, missing_packages
from .._process import pid_alive

__all__ = ["APT_PACKAGES", "ROOT_PREFIX", "ensure_system_packages", "make_dir", "service_user",
           "sweep_stale_roots"]

ROOT_PREFIX = "nbauth-scaled-"
APT_PACKAGES = {"postgresql": "/usr/lib/postgresql", "redis-server": "/usr/bin/redis-server",
                "nginx": "/usr/sbin/nginx"}


def ensure_system_packages() -> None:
    """Install Debian's postgresql, redis-server and nginx if missing (as root, with apt)."""
    apt_install(missing_packages(APT_PACKAGES), "the scaled stack")


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
