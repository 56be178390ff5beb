"""The Debian packages the harnesses run on (nginx, PostgreSQL, Redis, Python's venv): one way to get them.

Installed with ``apt-get`` when missing and this process is root (CI, a container);
otherwise the error names the packages and the command that installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["apt_install", "missing_packages"]


def missing_packages(provides: Mapping[str, str | Path]) -> list[str]:
    """The packages of ``provides`` (a Debian package -> a file it installs) whose file is absent."""
    return [package for package, path in provides.items() if not Path(path).exists()]


def apt_install(packages: Sequence[str], needed_for: str) -> None:
    """Install the Debian ``packages`` (nothing to do when empty), as root, with ``apt-get``.

    Not root, or no ``apt-get``: a ``RuntimeError`` saying what ``needed_for`` needs and how
    to install it. A failed install is a ``RuntimeError`` too (apt's own errors are above it).
    """
    if not packages:
        return
    command = f"apt-get install {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{needed_for} needs the Debian packages {' '.join(packages)}, which are missing, "
                           "and this machine has no apt-get: install them (or their equivalents) by hand")
    if os.geteuid() != 0:
        raise RuntimeError(f"{needed_for} needs the Debian packages {' '.join(packages)}, which are missing: "
                           f"install them as root (`sudo {command}`), or run this as root to have it done")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed with status {done.returncode} (its errors are above), "
                               f"so {needed_for} cannot have {' '.join(packages)}")
    # Debian starts a packaged daemon (nginx, postgresql, redis-server) on install: the
    # harnesses run their own, on free loopback ports, and never talk to it.
