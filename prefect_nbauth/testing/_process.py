"""The harnesses' child processes: the one way to start, watch and stop them.

Every long-lived process a harness starts (Prefect servers, PostgreSQL, Redis, nginx,
the OpenID provider, JupyterHub, a flow run) is a :class:`Process`:

* in its own session (process group), so that stopping it reaches the whole group
  (workers, backends, uvicorn helpers, the Hub's proxy);
* dying with its parent: ``PR_SET_PDEATHSIG=SIGKILL`` on Linux, set AFTER the switch to
  ``user`` (a uid change clears it), so it goes even when the test process is SIGKILLed.
  The signal follows the spawning *thread*: start long-lived children from a long-lived
  thread (the main one);
* writing its stdout and stderr to a log file (a header line each start), whose tail is
  in every error about it (:func:`~._wait.wait_until` with ``process=``);
* stopped by :meth:`Process.stop`: its stop signal, a SIGKILL to the group after the
  grace period, and only then the leader reaped, so that its pid (the group's id) cannot
  be given to another process before the last signal;
* stopped at exit when nobody stopped it. :func:`stop_at_exit` does the same for a harness
  whose ``stop()`` removes more than processes (a directory holding secrets).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Protocol, TypeVar

from ._wait import wait_until

__all__ = ["PrivateDirServer", "Process", "ProcessExited", "die_with_parent", "forget_at_exit", "pid_alive",
           "stop_at_exit"]

_PR_SET_PDEATHSIG = 1


class ProcessExited(RuntimeError):
    """A harness's process ended while it was needed (the message has the tail of its log)."""


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# What to stop at exit, oldest first: id -> (the pid that registered it, the part). The
# pid: a forked child inherits this table and its exit must not stop its parent's servers.
_AT_EXIT: dict[int, tuple[int, _Stoppable]] = {}
_AT_EXIT_LOCK = threading.Lock()


def stop_at_exit(part: _Stoppable) -> None:
    """Call ``part.stop()`` when this interpreter exits, unless :func:`forget_at_exit` came first."""
    with _AT_EXIT_LOCK:
        _AT_EXIT[id(part)] = (os.getpid(), part)


def forget_at_exit(part: _Stoppable) -> None:
    with _AT_EXIT_LOCK:
        _AT_EXIT.pop(id(part), None)


def _stop_everything_left() -> None:
    """Newest first: a stack's front (nginx) before its back (PostgreSQL), processes before
    the harness that removes their directory."""
    with _AT_EXIT_LOCK:
        parts = [part for pid, part in reversed(list(_AT_EXIT.values())) if pid == os.getpid()]
    for part in parts:
        try:
            part.stop()
        except Exception:  # pragma: no cover - best effort at exit: the next part still goes
            pass


atexit.register(_stop_everything_left)


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


def _exited_unreaped(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once ``proc`` has exited (waiting up to ``timeout`` s), left a zombie: not reaped."""
    if proc.returncode is not None:
        return True
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], timeout)[0])  # readable once it has exited
        finally:
            os.close(fd)
    try:  # pragma: no cover - no pidfd (not Linux): reaped, the group outlives its leader's pid
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class Process:
    """One child process in its own process group (as ``user`` if given), logging to ``log``.

    ``env`` and ``cwd`` default to this process's own. :meth:`stop` sends ``stop_signal``
    to the group (to the leader alone with ``stop_group=False``: a leader that stops its
    own children, such as JupyterHub) and SIGKILLs the group after ``stop_grace`` seconds.
    """

    def __init__(self, name: str, argv: list[str], *, log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, user: str | None = None, stop_signal: int = signal.SIGTERM,
                 stop_grace: float = 10.0, stop_group: bool = True) -> None:
        self.name, self.argv, self.log_path = name, argv, Path(log)
        self.env = dict(env) if env is not None else None
        self.cwd, self.user = cwd, user
        self.stop_signal, self.stop_grace, self.stop_group = stop_signal, stop_grace, stop_group
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_pids: list[int] = []  # every pid this process ever had (restarts included)

    def __repr__(self) -> str:  # the name only: an argv or environment may hold a secret
        return f"<Process {self.name} pid={self.pid} {'running' if self.running else 'stopped'}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and not _exited_unreaped(self.proc, 0)

    def start(self) -> Process:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.stop()  # an earlier run that ended by itself: reap it, sweep its group
        uid = gid = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            uid, gid = entry.pw_uid, entry.pw_gid
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {self.argv}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=None if self.cwd is None else str(self.cwd),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent(uid, gid))
        self.started_pids.append(self.proc.pid)
        stop_at_exit(self)
        return self

    def exited(self, timeout: float = 0.0) -> bool:
        """Whether it has exited, waiting up to ``timeout`` s (returns as soon as it does)."""
        return self.proc is None or _exited_unreaped(self.proc, timeout)

    def wait(self, timeout: float) -> int:
        """Its exit status once it exits (``subprocess.TimeoutExpired`` after ``timeout`` s).

        What it left running in its group is killed: a harness's process leaves nothing behind.
        """
        proc = self.proc
        assert proc is not None, f"{self.name} was not started"
        if not _exited_unreaped(proc, timeout):
            raise subprocess.TimeoutExpired(self.argv, timeout)
        if proc.returncode is None:  # not reaped yet: the group id is still this group's
            self._signal(signal.SIGKILL)
        code = proc.wait()
        forget_at_exit(self)  # nothing left to stop
        return code

    def run(self, timeout: float) -> int:
        """Start, wait for the exit (killed on timeout) and return the exit status."""
        self.start()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, grace: float | None = None) -> None:
        """``stop_signal``, SIGKILL to the group after ``grace`` (default ``stop_grace``) s, reap. Idempotent."""
        self._end(self.stop_signal, self.stop_grace if grace is None else grace)

    def kill(self) -> None:
        """SIGKILL to the whole group at once, then reap."""
        self._end(signal.SIGKILL, 30)

    def check_alive(self, doing: str | None = None) -> None:
        """``ProcessExited`` (how it ended, while ``doing`` what, the tail of its log) unless it is running."""
        if not self.running:
            during = f"while {doing}" if doing else "during start-up"
            raise ProcessExited(f"{self.name} {self._how_it_ended()} {during}; "
                                f"log tail ({self.log_path}):\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "<no log>"

    def _end(self, sig: int, grace: float) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if not _exited_unreaped(proc, 0):
                self._signal(sig, group=self.stop_group or sig == signal.SIGKILL)
                if not _exited_unreaped(proc, grace):
                    self._signal(signal.SIGKILL)
                    _exited_unreaped(proc, 30)
            # Its stragglers (PostgreSQL backends, uvicorn helpers, nginx workers): the leader
            # is not reaped yet, so the group id is still this group's.
            self._signal(signal.SIGKILL)
            proc.wait(timeout=30)
        self.proc = None
        forget_at_exit(self)

    def _signal(self, sig: int, group: bool = True) -> None:
        assert self.proc is not None
        try:
            if group:
                os.killpg(self.proc.pid, sig)  # start_new_session: the leader's pid is the group's id
            else:
                os.kill(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _how_it_ended(self) -> str:
        proc = self.proc
        if proc is None:
            return "is not running"
        code = proc.returncode
        if code is None and hasattr(os, "waitid"):
            try:  # read the status without reaping (WNOWAIT)
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is not None:
                code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        if code is None:
            return "exited"
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


_S = TypeVar("_S", bound="PrivateDirServer")
_T = TypeVar("_T")


class PrivateDirServer:
    """A harness around one :class:`Process` run from a private temporary directory.

    The directory (0700) holds what the server is configured with, secrets included; it is
    removed by :meth:`stop`, the context manager, and at exit if nobody stopped the server.
    A subclass makes it with :meth:`_make_dir` in ``start()`` and keeps its process in ``_process``.
    """

    _dir: Path | None = None
    _process: Process | None = None

    def _make_dir(self, prefix: str) -> Path:
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        stop_at_exit(self)
        return self._dir

    def start(self: _S) -> _S:
        raise NotImplementedError

    def _wait_ready(self, condition: Callable[[], _T], timeout: float, what: str, interval: float) -> _T:
        """:func:`~._wait.wait_until` the server is ready; stopped (directory removed) if it never is."""
        try:
            return wait_until(condition, timeout, what, interval=interval, process=self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        forget_at_exit(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
