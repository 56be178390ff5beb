"""Real Unix users for a real JupyterHub's ``LocalProcessSpawner``, made and removed by the test.

Each person gets a home directory (0700, as ``useradd`` makes it) and a user group.
Names carry a per-run suffix (``alice-3f9c``) so a machine's own accounts are never
touched and two runs never collide. :meth:`UnixUsers.remove` ends what those users still
run (the processes the Hub started for them, found by uid, each ended by its pid), then
``userdel --remove``. Needs root and ``useradd``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from .._wait import wait_until

__all__ = ["UnixUsers", "processes_of"]


def processes_of(uid: int) -> list[int]:
    """The pids of the processes running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _end_processes(name: str, uid: int) -> None:
    """SIGTERM every process of ``uid``, then SIGKILL what is left after 10 s (and wait 10 s more)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_of(uid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        with contextlib.suppress(TimeoutError):  # then SIGKILL; then userdel regardless
            wait_until(lambda: not processes_of(uid), 10, f"{name}'s processes to end", interval=0.1)


class UnixUsers:
    """``people`` (e.g. alice, bob, carol) as Unix users named ``<person>-<suffix>``."""

    def __init__(self, people: list[str]) -> None:
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            raise RuntimeError("real Hub users need root and useradd (Debian's passwd package)")
        self.suffix = secrets.token_hex(2)
        self.names = {person: f"{person}-{self.suffix}" for person in people}
        self._made: list[str] = []

    def create(self) -> UnixUsers:
        for name in self.names.values():
            subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name],
                           check=True, stdin=subprocess.DEVNULL, capture_output=True)
            self._made.append(name)
            Path(pwd.getpwnam(name).pw_dir).chmod(0o700)
        return self

    def uid(self, person: str) -> int:
        return pwd.getpwnam(self.names[person]).pw_uid

    def remove(self) -> None:
        for name in list(self._made):
            try:
                uid = pwd.getpwnam(name).pw_uid
            except KeyError:
                self._made.remove(name)
                continue
            _end_processes(name, uid)
            subprocess.run(["userdel", "--remove", name], check=False, stdin=subprocess.DEVNULL,
                           capture_output=True)
            self._made.remove(name)

    def __enter__(self) -> UnixUsers:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()
