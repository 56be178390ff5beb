"""Real ``prefect server start`` processes for tests.

Each :class:`PrefectServer` runs the real Prefect server CLI on ``127.0.0.1`` with a
SQLite database inside its own ``PREFECT_HOME``. Nothing is mocked: REST, the auth
middleware, websockets (``/api/events/in``, ``/api/events/out``, ``/api/logs/out``) and
event persistence are Prefect's own code.

Clean-up guarantees (the server is a :class:`~._process.Process`):

* the server runs in its own session / process group; :meth:`PrefectServer.stop` sends
  SIGTERM to the group, then SIGKILL after a grace period;
* on Linux the child gets ``PR_SET_PDEATHSIG=SIGKILL`` so it dies with the process
  that spawned it, even if that process is SIGKILLed (note: the signal fires when the
  *thread* that called ``start()`` exits, so call ``start()`` from a long-lived thread,
  normally the main thread);
* a server still running when the interpreter exits is stopped then.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from .._headers import basic
from ._process import Process
from ._wait import wait_until

__all__ = [
    "PrefectServer",
    "UNCHANGED",
    "auth_server",
    "basic_auth_header",
    "free_port",
    "isolated_env",
    "new_auth_string",
]


class _Unchanged:
    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Sentinel for :meth:`PrefectServer.restart`: keep the current auth string."""

# Settings that make a test server start faster and idle with less CPU without
# touching what the tests rely on (REST API, auth middleware, websockets, the event
# persister, the events/logs stream distributors, the task-run recorder).
FAST_SERVER_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The UI is served from a copy of the static bundle made at start-up; skip it.
    "PREFECT_SERVER_UI_ENABLED": "false",
    # Loop services that only act on deployments / flow runs in particular states.
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED": "false",
    # Automations (reactive/proactive triggers + actions) are not under test.
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    # Logs every event at INFO/DEBUG; pure overhead here.
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
    # Persist received events every 0.5 s instead of 5 s, so tests that read events
    # back through POST /api/events/filter wait less.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}

def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def basic_auth_header(auth_string: str) -> dict[str, str]:
    """The ``Authorization`` header Prefect clients send for an auth string (:func:`.._headers.basic`)."""
    return {"Authorization": basic(auth_string)}


def isolated_env(**overrides: str) -> dict[str, str]:
    """A copy of ``os.environ`` with every ``PREFECT_*`` variable removed, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PREFECT_")}
    env.update(overrides)
    return env


def _prefect_command(python: str) -> list[str]:
    """``[python, -m, prefect]`` if that works for ``python``, else the ``prefect`` script next to it."""
    probe = subprocess.run(
        [python, "-c", "import prefect.__main__"],
        env=isolated_env(),
        capture_output=True,
        timeout=120,
    )
    if probe.returncode == 0:
        return [python, "-m", "prefect"]
    script = Path(python).with_name("prefect")
    if script.exists():
        return [str(script)]
    raise RuntimeError(
        f"cannot run Prefect with {python}: {probe.stderr.decode(errors='replace')[-2000:]}"
    )


_COMMAND_CACHE: dict[str, list[str]] = {}

# A fresh SQLite database costs ~8 s of Alembic migrations at start-up (the bulk of a
# cold start). After the first cold start per interpreter we snapshot the freshly
# migrated database (sqlite backup API, safe on a live WAL database) and seed later
# *new* homes with a copy, so they start in about the time of a restart.
_TEMPLATE_DIR: Path | None = None
_TEMPLATE_DB: dict[str, Path] = {}
_DB_URL_VARS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


def _snapshot_db(src: Path, dst: Path) -> None:
    import sqlite3

    tmp = dst.with_suffix(".tmp")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    os.replace(tmp, dst)


def _remove_template_dir() -> None:
    if _TEMPLATE_DIR is not None:
        shutil.rmtree(_TEMPLATE_DIR, ignore_errors=True)


class PrefectServer:
    """A real `prefect server start` on 127.0.0.1 with SQLite in its own PREFECT_HOME."""

    def __init__(
        self,
        home: Path,
        *,
        auth_string: str | None = None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.home = Path(home)
        self.auth_string = auth_string
        self.port = port if port is not None else free_port()
        self.extra_env = dict(extra_env or {})
        self.python = python
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "server.log"
        self.startup_seconds: float | None = None  # duration of the last start()
        self.use_template_db = True  # seed a NEW home with a pre-migrated database
        self._process: Process | None = None

    # -- public API ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Basic`` for the current auth string (empty dict if open)."""
        return basic_auth_header(self.auth_string) if self.auth_string is not None else {}

    def env(self) -> dict[str, str]:
        """The environment the server process is started with."""
        env = isolated_env(PREFECT_HOME=str(self.home), **FAST_SERVER_ENV)
        if self.auth_string is not None:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120) -> None:
        """Spawn the server and return once ``GET /api/health`` answers 200."""
        if self.running:
            raise RuntimeError(f"server on port {self.port} is already running")
        self.stop()  # a run that ended by itself: reaped, its group swept
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = _COMMAND_CACHE.get(self.python)
        if cmd is None:
            cmd = _COMMAND_CACHE[self.python] = _prefect_command(self.python)
        argv = [*cmd, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]

        t0 = time.monotonic()
        db_path = self.home / "prefect.db"
        own_sqlite = self.use_template_db and not any(v in self.env() for v in _DB_URL_VARS)
        fresh_db = own_sqlite and not db_path.exists()
        template = _TEMPLATE_DB.get(self.python)
        if fresh_db and template is not None:
            shutil.copyfile(template, db_path)
            fresh_db = False
        self._process = Process(f"Prefect server on port {self.port}", argv, env=self.env(), cwd=self.home,
                                log=self.log_path).start()
        try:
            self._wait_healthy(t0 + timeout)
        except BaseException:
            self.kill()
            raise
        self.startup_seconds = time.monotonic() - t0
        if fresh_db and self.python not in _TEMPLATE_DB:
            self._save_template(db_path)

    def _save_template(self, db_path: Path) -> None:
        global _TEMPLATE_DIR
        import tempfile

        try:
            if _TEMPLATE_DIR is None:
                _TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="prefect-db-template-"))
                atexit.register(_remove_template_dir)
            dst = _TEMPLATE_DIR / f"template-{len(_TEMPLATE_DB)}.db"
            _snapshot_db(db_path, dst)
            _TEMPLATE_DB[self.python] = dst
        except Exception:  # an optimisation only: never fail a start because of it
            pass

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the process group, wait, SIGKILL after ``grace`` seconds. Idempotent."""
        if self._process is not None:
            self._process.stop(grace)

    def kill(self) -> None:
        """SIGKILL the process group immediately and wait for the process to die."""
        if self._process is not None:
            self._process.kill()

    def restart(self, *, auth_string: str | None = UNCHANGED, timeout: float = 120) -> None:
        """Stop (if running) and start again on the same port, home and database."""
        self.stop()
        if auth_string is not UNCHANGED:
            self.auth_string = auth_string
        self.start(timeout=timeout)

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no log>"

    def __enter__(self) -> "PrefectServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        auth = "auth" if self.auth_string is not None else "open"
        return f"<PrefectServer {self.api_url} {auth} {state}>"

    # -- internals ----------------------------------------------------------

    def _wait_healthy(self, deadline: float) -> None:
        url = f"{self.api_url}/health"
        with httpx.Client(timeout=2.0, trust_env=False) as client:

            def healthy() -> bool:
                try:
                    return client.get(url).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(healthy, deadline - time.monotonic(), f"{url} to answer 200", interval=0.5,
                       process=self._process)


def remove_home(home: Path) -> None:
    """Delete a server's PREFECT_HOME (only call once it is stopped)."""
    shutil.rmtree(home, ignore_errors=True)


def new_auth_string(user: str = "nbauth") -> str:
    """A fresh ``user:password`` with punctuation Prefect must not split on (``@ : # % & !``)."""
    import secrets

    return f"{user}:{secrets.token_urlsafe(18)}@#%&!"


@contextlib.contextmanager
def auth_server(auth_string: str | None = None, *, home: Path | None = None,
                extra_env: dict[str, str] | None = None,
                timeout: float = 120) -> Iterator[PrefectServer]:
    """A real Prefect server that requires ``auth_string`` (a fresh one by default).

    The server runs on a free 127.0.0.1 port with its own ``PREFECT_HOME`` (a
    temporary directory unless ``home`` is given, removed afterwards) and stops
    when the block ends, also on an error. ``server.api_url`` and
    ``server.auth_string`` are what a client needs; the auth string is never printed.
    """
    import tempfile

    own_home = home is None
    base = Path(tempfile.mkdtemp(prefix="prefect-nbauth-server-")) if home is None else Path(home)
    server = PrefectServer(base, auth_string=auth_string or new_auth_string(),
                           extra_env=extra_env)
    try:
        server.start(timeout=timeout)
        yield server
    finally:
        server.stop()
        if own_home:
            remove_home(base)
