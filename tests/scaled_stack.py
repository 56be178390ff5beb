"""A real scaled-out Prefect on loopback: PostgreSQL + Redis + N API replicas + services + NGINX.

The layout follows Prefect's guide "How to scale self-hosted Prefect":

* Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``), a fresh cluster made by ``initdb``
  in a temporary directory, listening on a free port of 127.0.0.1 (password auth,
  SCRAM). PostgreSQL refuses to run as root, so as root it runs as ``nobody``;
  ``fsync=off`` because the cluster is thrown away at the end;
* ``redis-server`` on a free loopback port, append-only file on (a restart keeps the
  streams, as a production Redis does);
* the schema migrated ONCE (``prefect server database upgrade -y``) before any replica
  starts, then ``PREFECT_SERVER_DATABASE_MIGRATE_ON_START=false`` everywhere, so the
  replicas never race on migrations;
* ``replicas`` API servers ``prefect server start --no-services`` and one
  ``prefect server services start`` (event persister, task-run recorder, ...);
* Debian's NGINX in front (single process, run unprivileged): round robin over the
  replicas, websocket upgrades for ``/api/events/in``, ``/api/events/out`` and
  ``/api/logs/out``, and an ``X-Prefect-Replica`` response header naming the replica
  that answered (on the websocket's 101 too, so a test can tell which replica holds a
  socket). NGINX does no authentication: every replica enforces
  ``PREFECT_SERVER_API_AUTH_STRING`` itself.

Messaging variants:

* ``"redis"`` (the correct setup): ``PREFECT_MESSAGING_BROKER`` / ``_CACHE =
  prefect_redis.messaging``, ``PREFECT_SERVER_EVENTS_CAUSAL_ORDERING =
  prefect_redis.ordering``, ``PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE =
  prefect_redis.lease_storage``, ``PREFECT_REDIS_MESSAGING_HOST/PORT``, and Docket on
  Redis too. Every replica's ``/events/out`` sees every event.
* ``"memory"`` (the common mistake: Redis forgotten): Prefect's in-memory broker, which
  lives inside one process. A separate services process would then never see an
  event, so in this variant each replica runs its own services (``prefect server
  start`` without ``--no-services``): it persists the events IT ingested into the shared
  PostgreSQL, and its ``/events/out`` shows only those. No Redis process runs.

Clean-up: every process runs in its own session (process group) with
``PR_SET_PDEATHSIG=SIGKILL`` set AFTER the switch to the unprivileged user (a uid change
clears it), so it dies with the process that started it even if that one is SIGKILLed
(call :meth:`ScaledStack.start` from the main thread: the signal follows the spawning
thread). :meth:`ScaledStack.stop` stops everything (NGINX, replicas, services, Redis,
PostgreSQL with a fast shutdown) and deletes the directory; an ``atexit`` hook does the
same. A directory left by a SIGKILLed owner (its ``owner.pid`` is dead) is swept by the
next start.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx

__all__ = ["RunningStack", "ScaledStack", "ensure_system_packages", "sweep_stale_roots", "main"]

ROOT_PREFIX = "nbauth-scaled-"
_PR_SET_PDEATHSIG = 1
_LIVE: "set[ScaledStack]" = set()
_LIVE_LOCK = threading.Lock()

# The test suite's quiet-server settings (see tests/servers.py), minus what a scaled
# stack must keep: the event persister flushes every 0.5 s so REST sees events soon.
_QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}

APT_PACKAGES = {"postgresql": "/usr/lib/postgresql", "redis-server": "/usr/bin/redis-server",
                "nginx": "/usr/sbin/nginx"}


# ------------------------------------------------------------------ system


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


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise RuntimeError("Debian's PostgreSQL is missing: apt-get install postgresql")
    return Path(found[-1]).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def sweep_stale_roots(tmp: str | None = None) -> list[str]:
    """Delete stack directories whose owner process is gone (it was SIGKILLed); return them."""
    removed = []
    for root in glob.glob(os.path.join(tmp or tempfile.gettempdir(), ROOT_PREFIX + "*")):
        try:
            owner = int(Path(root, "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


# ------------------------------------------------------------------ processes


def _child_setup(uid: int | None, gid: int | None) -> Callable[[], None]:
    def setup() -> None:  # between fork and exec: drop privileges, THEN ask to die with the parent
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:
            pass

    return setup


class Process:
    """One child process in its own process group; stopped group-wide."""

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

    def start(self) -> "Process":
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
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_child_setup(uid, gid))
        self.started_pids.append(self.proc.pid)
        return self

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


def _wait(predicate: Callable[[], bool], timeout: float, what: str, process: Process | None = None) -> None:
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


# ------------------------------------------------------------------ services


@dataclass
class Replica:
    """One ``prefect server start`` API replica."""

    index: int
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def address(self) -> str:  # as NGINX's $upstream_addr names it
        return f"127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class ScaledStack:
    """The whole stack; ``with ScaledStack(auth_string=...) as stack: stack.api_url``."""

    auth_string: str = field(repr=False)  # never in a repr or a traceback
    messaging: str = "redis"  # "redis" | "memory"
    replicas_count: int = 2
    python: str = sys.executable
    tmp: str | None = None
    start_timeout: float = 300.0

    root: Path = field(init=False)
    replicas: list[Replica] = field(init=False, default_factory=list)
    services: Process | None = field(init=False, default=None)
    postgres: Process | None = field(init=False, default=None)
    redis: Process | None = field(init=False, default=None)
    nginx: Process | None = field(init=False, default=None)
    postgres_version: str = field(init=False, default="")
    startup_seconds: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.messaging not in ("redis", "memory"):
            raise ValueError("messaging must be 'redis' or 'memory'")
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.nginx_port = free_port()
        self._db_password = secrets.token_hex(16)
        self._started = False

    def __hash__(self) -> int:
        return id(self)

    # ------------------------------------------------------------ public
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def api_url(self) -> str:
        """The load balancer: what notebook users talk to."""
        return self.url + "/api"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://prefect:{self._db_password}@127.0.0.1:{self.pg_port}/prefect"

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://prefect:{self._db_password}@127.0.0.1:{self.pg_port}/prefect"

    def auth_headers(self) -> dict[str, str]:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(self.auth_string.encode()).decode()}

    def processes(self) -> list[Process]:
        procs = [self.postgres, self.redis, self.services, self.nginx, *(r.process for r in self.replicas)]
        return [p for p in procs if p is not None]

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.pid is not None]

    def started_pids(self) -> list[int]:
        """Every pid the stack ever started (also after stop(): to check none is left)."""
        return [pid for p in self.processes() for pid in p.started_pids]

    def replica_at(self, address: str) -> Replica:
        """The replica NGINX names ``address`` (``X-Prefect-Replica``, ``$upstream_addr``)."""
        for replica in self.replicas:
            if address.strip().endswith(replica.address):
                return replica
        raise KeyError(address)

    def upstreams_since(self, offset: int) -> tuple[Counter[str], int]:
        """Replicas named in NGINX's access log after byte ``offset``; and the new offset."""
        path = self.root / "nginx" / "access.log"
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return Counter(), offset
        seen: Counter[str] = Counter()
        for line in data.decode(errors="replace").splitlines():
            seen[line.rsplit(" ", 1)[-1]] += 1
        return seen, offset + len(data)

    def describe(self) -> dict[str, Any]:
        """What is running where (no secret: the auth string and DB password are left out)."""
        return {
            "api_url": self.api_url, "root": str(self.root), "messaging": self.messaging,
            "replicas": [{"api_url": r.api_url, "pid": r.process.pid} for r in self.replicas],
            "services_pid": self.services.pid if self.services else None,
            "postgres": {"port": self.pg_port, "pid": self.postgres.pid if self.postgres else None,
                         "version": self.postgres_version},
            "redis": ({"port": self.redis_port, "pid": self.redis.pid}
                      if self.redis is not None else None),
            "nginx": {"port": self.nginx_port, "pid": self.nginx.pid if self.nginx else None},
            "pids": self.pids(), "startup_seconds": round(self.startup_seconds, 1),
        }

    def start(self) -> "ScaledStack":
        if self._started:
            raise RuntimeError("this stack was already started")
        self._started = True
        t0 = time.monotonic()
        ensure_system_packages()
        sweep_stale_roots(self.tmp)
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=self.tmp))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._start_postgres()
            if self.messaging == "redis":
                self._start_redis()
            self._migrate()
            for index in range(self.replicas_count):
                self._spawn_replica(index)
            if self.messaging == "redis":
                self._spawn_services()
            deadline = time.monotonic() + self.start_timeout
            for replica in self.replicas:
                _wait(replica.healthy, deadline - time.monotonic(), f"replica {replica.index}", replica.process)
            self._start_nginx()
            self._wait_pipeline(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every process (front to back) and delete the directory. Idempotent."""
        for process in [self.nginx, *(r.process for r in self.replicas), self.services, self.redis]:
            if process is not None:
                process.stop(grace=15)
        if self.postgres is not None:
            self.postgres.stop(grace=30)
        if getattr(self, "root", None) is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def __enter__(self) -> "ScaledStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------- fault injection
    def kill_replica(self, replica: Replica) -> None:
        """SIGKILL the replica's process group: no flush, sockets reset."""
        replica.process.kill()

    def start_replica(self, replica: Replica, timeout: float = 180) -> None:
        replica.process.start()
        _wait(replica.healthy, timeout, f"replica {replica.index}", replica.process)

    def restart_redis(self, timeout: float = 60) -> None:
        """Stop Redis (SHUTDOWN: the append-only file is kept) and start it on the same port."""
        assert self.redis is not None, "the in-memory variant has no Redis"
        self.redis.stop(grace=15)
        self._launch_redis()

    # ------------------------------------------------------------ internals
    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PREFECT_")}
        env.update(_QUIET_ENV)
        env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=self.database_url,
            PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
            PREFECT_SERVER_API_AUTH_STRING=self.auth_string,
            # Replicas and services talk to one database: allow a few more connections each.
            PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE="10",
        )
        if self.messaging == "redis":
            env.update(
                PREFECT_MESSAGING_BROKER="prefect_redis.messaging",
                PREFECT_MESSAGING_CACHE="prefect_redis.messaging",
                PREFECT_SERVER_EVENTS_CAUSAL_ORDERING="prefect_redis.ordering",
                PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect_redis.lease_storage",
                PREFECT_REDIS_MESSAGING_HOST="127.0.0.1",
                PREFECT_REDIS_MESSAGING_PORT=str(self.redis_port),
                PREFECT_SERVER_DOCKET_URL=f"redis://127.0.0.1:{self.redis_port}/1",
            )
        env.update(extra)
        return env

    def _dir(self, name: str, owner: str | None = None) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(0o700)
        return path

    @property
    def _service_user(self) -> str | None:
        # PostgreSQL refuses to run as root; NGINX runs unprivileged too (loopback port > 1024).
        return "nobody" if os.geteuid() == 0 else None

    def _start_postgres(self) -> None:
        pg = _pg_bin()
        self.root.chmod(0o755)
        user = self._service_user
        data = self._dir("pgdata", user)
        sock = self._dir("pgsock", user)
        pwfile = self._dir("pgpw", user) / "pw"
        pwfile.write_text(self._db_password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        log = self.root / "postgres.log"
        init = Process("initdb", [str(pg / "initdb"), "-D", str(data), "-U", "prefect", "--pwfile", str(pwfile),
                                  "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8",
                                  "--no-sync", "--no-instructions"],
                       env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}, cwd=sock, log=log,
                       user=user)
        init.start()
        assert init.proc is not None
        if init.proc.wait(timeout=120) != 0:
            raise RuntimeError(f"initdb failed:\n{init.log_tail()}")
        pwfile.unlink()
        self.postgres = Process(
            "postgres",
            [str(pg / "postgres"), "-D", str(data), "-p", str(self.pg_port), "-k", str(sock),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "shared_buffers=128MB"],
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}, cwd=sock, log=log, user=user,
            stop_signal=signal.SIGINT)  # SIGINT = fast shutdown
        self.postgres.start()
        env = {"PATH": os.environ.get("PATH", ""), "PGPASSWORD": self._db_password}

        def ready() -> bool:
            return subprocess.run([str(pg / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)],
                                  env=env, timeout=10).returncode == 0

        _wait(ready, 60, "PostgreSQL", self.postgres)
        psql = [str(pg.parent / "bin" / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "prefect",
                "-d", "postgres", "-Atq", "-c"]
        subprocess.run([*psql, "CREATE DATABASE prefect"], env=env, check=True, capture_output=True, timeout=60)
        self.postgres_version = subprocess.run([*psql, "SHOW server_version"], env=env, check=True,
                                               capture_output=True, text=True, timeout=60).stdout.strip()

    def _launch_redis(self) -> None:
        self.redis = Process(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(self.root / "redis"),
             "--save", "", "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes",
             "--logfile", ""],
            env={"PATH": os.environ.get("PATH", "")}, cwd=self.root / "redis", log=self.root / "redis.log")
        self.redis.start()

        def ready() -> bool:
            import socket

            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        _wait(ready, 60, "Redis", self.redis)

    def _start_redis(self) -> None:
        self._dir("redis")
        self._launch_redis()

    def _prefect(self, *args: str) -> list[str]:
        return [self.python, "-m", "prefect", *args]

    def _migrate(self) -> None:
        home = self._dir("migrate-home")
        log = self.root / "migrate.log"
        proc = Process("migrate", self._prefect("server", "database", "upgrade", "-y"),
                       env=self._env(PREFECT_HOME=str(home)), cwd=home, log=log)
        proc.start()
        assert proc.proc is not None
        try:
            rc = proc.proc.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if rc != 0:
            raise RuntimeError(f"prefect server database upgrade failed:\n{proc.log_tail()}")

    def _spawn_replica(self, index: int) -> None:
        home = self._dir(f"replica-{index}")
        port = free_port()
        argv = self._prefect("server", "start", "--host", "127.0.0.1", "--port", str(port))
        if self.messaging == "redis":
            argv.append("--no-services")
        # Block types are registered at start-up by INSERTs: two replicas starting at once
        # race on the unique slug and one dies. Only the first replica registers them.
        env = self._env(PREFECT_HOME=str(home),
                        PREFECT_SERVER_REGISTER_BLOCKS_ON_START="true" if index == 0 else "false")
        process = Process(f"replica-{index}", argv, env=env, cwd=home, log=home / "server.log")
        self.replicas.append(Replica(index, port, process))
        process.start()

    def _spawn_services(self) -> None:
        home = self._dir("services")
        self.services = Process("services", self._prefect("server", "services", "start"),
                                env=self._env(PREFECT_HOME=str(home)), cwd=home, log=home / "services.log")
        self.services.start()

    def _start_nginx(self) -> None:
        user = self._service_user
        base = self._dir("nginx", user)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            self._dir(f"nginx/{sub}", user)
        servers = "\n".join(f"        server {r.address} max_fails=1 fail_timeout=3s;" for r in self.replicas)
        conf = NGINX_CONF.format(base=base, port=self.nginx_port, servers=servers)
        (base / "nginx.conf").write_text(conf)
        self.nginx = Process("nginx", ["/usr/sbin/nginx", "-p", str(base), "-c", str(base / "nginx.conf"),
                                       "-e", str(base / "error.log")],
                             env={"PATH": os.environ.get("PATH", "")}, cwd=base, log=self.root / "nginx.log",
                             user=user, stop_signal=signal.SIGQUIT)  # SIGQUIT = graceful
        self.nginx.start()

        def ready() -> bool:
            try:
                return httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, 30, "NGINX", self.nginx)

    def _wait_pipeline(self, deadline: float) -> None:
        """One event in through the balancer, read back over REST: ingest -> broker -> persister -> DB."""
        from websockets.sync.client import connect

        # Through NGINX with Redis (any replica will do); straight to every replica in the
        # in-memory variant, where each replica persists only what it ingested itself.
        targets = [self.url] if self.messaging == "redis" else [r.url for r in self.replicas]
        ids = [str(uuid.uuid4()) for _ in targets]
        body = {"filter": {"id": {"id": ids},
                           "occurred": {"since": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()}},
                "limit": 10}
        for target, event_id in zip(targets, ids, strict=True):
            event = {"id": event_id, "occurred": datetime.now(timezone.utc).isoformat(),
                     "event": "nbauth.stack.ready", "resource": {"prefect.resource.id": "nbauth.stack"}}
            ws = connect(target.replace("http://", "ws://") + "/api/events/in",
                         subprotocols=["prefect"], open_timeout=10)  # type: ignore[list-item]
            try:
                ws.send(json.dumps({"type": "auth", "token": self.auth_string}))
                if json.loads(ws.recv(timeout=10)).get("type") != "auth_success":
                    raise RuntimeError("the stack refused its own auth string on /events/in")
                ws.send(json.dumps(event))
            finally:
                ws.close()
        with httpx.Client(headers=self.auth_headers(), timeout=10, trust_env=False) as client:
            while True:
                response = client.post(f"{self.api_url}/events/filter", json=body)
                if response.status_code == 200 and len(response.json()["events"]) == len(ids):
                    return
                for process in self.processes():
                    process.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("the stack did not persist a probe event in time; services log:\n"
                                       + (self.services.log_tail() if self.services else ""))
                time.sleep(0.25)


@dataclass
class RunningStack:
    """A stack another process started (``scripts/scaled-stack``), seen through its JSON line."""

    info: dict[str, Any]
    auth_string: str = field(repr=False)

    @property
    def api_url(self) -> str:
        return self.info["api_url"]

    @property
    def replicas(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(index=i, api_url=r["api_url"]) for i, r in enumerate(self.info["replicas"])]

    def auth_headers(self) -> dict[str, str]:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(self.auth_string.encode()).decode()}


NGINX_CONF = """\
# Written by tests/scaled_stack.py: one unprivileged process, loopback only.
daemon off;
master_process off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    # Which replica answered each request (read by the tests: round robin really spreads).
    log_format upstream '$remote_addr [$time_local] "$request" $status $upstream_addr';
    access_log {base}/access.log upstream;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    client_max_body_size 20m;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream prefect_api {{
        # Round robin (NGINX's default). A refused connection marks a replica down for 3 s.
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        # Prefect's websockets: events in/out and live logs.
        location ~ ^/api/(events/in|events/out|logs/out)$ {{
            proxy_pass http://prefect_api;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            add_header X-Prefect-Replica $upstream_addr always;
        }}

        location / {{
            proxy_pass http://prefect_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
            add_header X-Prefect-Replica $upstream_addr always;
        }}
    }}
}}
"""


def _stop_all() -> None:
    with _LIVE_LOCK:
        stacks = list(_LIVE)
    for stack in stacks:
        try:
            stack.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_stop_all)


# ------------------------------------------------------------------ script


def main(argv: Iterable[str] | None = None) -> int:
    """``scripts/scaled-stack``: start, print one JSON line, run until SIGTERM/SIGINT/EOF, stop."""
    import argparse

    parser = argparse.ArgumentParser(prog="scaled-stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messaging", choices=["redis", "memory"], default="redis")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--until-eof", action="store_true",
                        help="also stop when stdin is closed (for a parent process)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    auth = os.environ.get("SCALED_STACK_AUTH_STRING") or "admin:" + secrets.token_urlsafe(18)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    stack = ScaledStack(auth_string=auth, messaging=args.messaging, replicas_count=args.replicas)
    try:
        stack.start()
        info = stack.describe()
        if "SCALED_STACK_AUTH_STRING" not in os.environ:
            # Never printed: a file only root (the caller) can read, removed with the stack.
            path = stack.root / "auth_string"
            path.write_text(auth)
            path.chmod(0o600)
            info["auth_string_file"] = str(path)
        print(json.dumps(info), flush=True)
        if args.until_eof:
            threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    print(json.dumps({"stopped": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
