"""Child processes for the harnesses: each in its own process group, dying with its parent.

Every server a harness starts (Prefect, PostgreSQL, Redis, NGINX, the OpenID provider)
runs in its own session, so stopping it signals the whole group (workers, backends,
uvicorn helpers), and with ``PR_SET_PDEATHSIG=SIGKILL`` on Linux, so it dies with the
process that spawned it even when that one is SIGKILLed. The signal follows the
spawning *thread*: start long-lived children from a long-lived thread (the main one).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["Process", "die_with_parent", "kill_group", "pid_alive", "wait_for"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(uid: int | None = None, gid: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: drop to ``uid``/``gid`` if given, THEN ask for SIGKILL when the parent dies.

    The order matters: a uid change clears the parent-death signal.
    """
    def setup() -> None:  # runs in the child between fork and exec
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        if not sys.platform.startswith("linux"):
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:  # an extra guarantee only: the group is still stopped by stop()
            pass

    return setup


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def kill_group(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL after ``grace`` seconds; reaps it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


class Process:
    """One child process in its own process group (optionally as ``user``); stopped group-wide."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path,
                 user: str | None = None, stop_signal: int = signal.SIGTERM) -> None:
        self.name, self.argv, self.env, self.cwd, self.log_path = name, argv, env, cwd, log
        self.user = user
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_pids: list[int] = []  # every pid this process ever had (restarts included)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Process:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        uid = gid = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            uid, gid = entry.pw_uid, entry.pw_gid
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {self.argv}\n".encode())
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=str(self.cwd), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent(uid, gid))
        self.started_pids.append(self.proc.pid)
        return self

    def run(self, timeout: float) -> int:
        """Start, wait for the exit (killed on timeout) and return the exit status."""
        self.start()
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, grace: float = 15.0) -> None:
        """``stop_signal`` to the group, SIGKILL after ``grace`` s, then reap. Idempotent."""
        self._end(self.stop_signal, grace)

    def kill(self) -> None:
        self._end(signal.SIGKILL, 0)

    def _end(self, sig: int, grace: float) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            self._signal(sig)
            try:
                proc.wait(timeout=grace if sig != signal.SIGKILL else 30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=30)
        # Stragglers of the group (PostgreSQL backends, uvicorn helpers): the group id is the
        # leader's pid, which is reaped now but cannot be reused while group members live.
        self._signal(signal.SIGKILL)
        self.proc = None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "<no log>"

    def check_alive(self) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} exited during start-up; log tail ({self.log_path}):\n"
                               f"{self.log_tail()}")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, process: Process | None = None) -> None:
    """Poll ``predicate`` (backing off to 0.5 s) until true; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not predicate():
        if process is not None:
            process.check_alive()
        if time.monotonic() > deadline:
            tail = f"; log tail:\n{process.log_tail()}" if process is not None else ""
            raise TimeoutError(f"{what} not ready after {timeout:g} s{tail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
