"""The whole scaled stack, started in order and stopped front to back (see the package docstring)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from ..._urls import ws_url
from .._extras import require
from .._process import Process, forget_at_exit, stop_at_exit
from .._server import basic_auth_header, free_port
from .._wait import wait_until
from . import _replicas
from ._nginx import start_nginx, upstreams_since
from ._postgres import Postgres
from ._redis import start_redis
from ._replicas import Replica
from ._system import ROOT_PREFIX, ensure_system_packages, make_dir, service_user, sweep_stale_roots

__all__ = ["RunningStack", "ScaledStack"]


@dataclass
class ScaledStack:
    """The whole stack; ``with ScaledStack(auth_string=...) as stack: stack.api_url``."""

    auth_string: str = field(repr=False)  # never in a repr or a traceback
    messaging: str = "redis"  # "redis" | "memory"
    replicas_count: int = 2
    python: str = sys.executable
    tmp: str | None = None
    start_timeout: float = 300.0

    root: Path = field(init=False, repr=False)  # set by start()
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
        self._pg: Postgres | None = None
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

    def auth_headers(self) -> dict[str, str]:
        return basic_auth_header(self.auth_string)

    def psql(self, sql: str, timeout: float = 3600) -> str:
        """Run ``sql`` on the stack's ``prefect`` database with ``psql``; its output."""
        if self._pg is None:
            raise RuntimeError("the stack's PostgreSQL is not running")
        return self._pg.psql(sql, timeout=timeout)

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
        return upstreams_since(self.root / "nginx" / "access.log", offset)

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

    def start(self) -> ScaledStack:
        if self._started:
            raise RuntimeError("this stack was already started")
        if self.messaging == "redis" and self.python == sys.executable:
            # Before anything starts: without it every replica dies at start-up, obscurely.
            require("prefect_redis", "test", "the scaled stack's Redis messaging")
        self._started = True
        t0 = time.monotonic()
        ensure_system_packages()
        sweep_stale_roots(self.tmp)
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=self.tmp))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        stop_at_exit(self)  # its processes are stopped at exit by themselves; this removes the directory
        try:
            self._start_backends()
            deadline = time.monotonic() + self.start_timeout
            for replica in self.replicas:
                self._wait_healthy(replica, deadline - time.monotonic())
            self.nginx = start_nginx(self.root / "nginx", self.nginx_port, [r.address for r in self.replicas],
                                     user=service_user(), log=self.root / "nginx.log", healthy=self._healthy)
            self._wait_pipeline(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every process (front to back) and delete the directory. Idempotent."""
        for process in [self.nginx, *(r.process for r in self.replicas), self.services, self.redis, self.postgres]:
            if process is not None:
                process.stop()
        if getattr(self, "root", None) is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        forget_at_exit(self)

    def __enter__(self) -> ScaledStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------- fault injection
    def kill_replica(self, replica: Replica) -> None:
        """SIGKILL the replica's process group: no flush, sockets reset."""
        replica.process.kill()

    def start_replica(self, replica: Replica, timeout: float = 180) -> None:
        replica.process.start()
        self._wait_healthy(replica, timeout)

    def restart_redis(self, timeout: float = 60) -> None:
        """Stop Redis (SHUTDOWN: the append-only file is kept) and start it on the same port."""
        assert self.redis is not None, "the in-memory variant has no Redis"
        self.redis.stop()
        self.redis = start_redis(self.root / "redis", self.redis_port, self.root / "redis.log", timeout)

    # ------------------------------------------------------------ internals
    @staticmethod
    def _wait_healthy(replica: Replica, timeout: float) -> None:
        wait_until(replica.healthy, timeout, f"replica {replica.index} to answer /api/health", interval=0.5,
                   process=replica.process)

    def _env(self) -> dict[str, str]:
        return _replicas.prefect_env(database_url=self.database_url, auth_string=self.auth_string,
                                     messaging=self.messaging, redis_port=self.redis_port)

    def _start_backends(self) -> None:
        """PostgreSQL, Redis, the migration, then every replica and the services process spawned."""
        self._pg = Postgres(self.root, self.pg_port, self._db_password, service_user())
        try:
            self._pg.start()
        finally:  # also a half-started cluster must be stopped by stop()
            self.postgres = self._pg.process
        self.postgres_version = self._pg.version
        if self.messaging == "redis":
            self.redis = start_redis(make_dir(self.root / "redis"), self.redis_port, self.root / "redis.log")
        env = self._env()
        _replicas.migrate(self.python, make_dir(self.root / "migrate-home"), env, self.root / "migrate.log",
                          self.start_timeout)
        for index in range(self.replicas_count):
            replica = _replicas.replica(index, self.python, make_dir(self.root / f"replica-{index}"), env,
                                        with_services=self.messaging != "redis")
            self.replicas.append(replica)
            replica.process.start()
        if self.messaging == "redis":
            self.services = _replicas.services(self.python, make_dir(self.root / "services"), env)
            self.services.start()

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_pipeline(self, deadline: float) -> None:
        """One event in through the balancer, read back over REST: ingest -> broker -> persister -> DB."""
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

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
            ws = connect(ws_url(target + "/api", "events/in"),
                         subprotocols=[Subprotocol("prefect")], open_timeout=10)
            try:
                ws.send(json.dumps({"type": "auth", "token": self.auth_string}))
                if json.loads(ws.recv(timeout=10)).get("type") != "auth_success":
                    raise RuntimeError("the stack refused its own auth string on /events/in")
                ws.send(json.dumps(event))
            finally:
                ws.close()
        with httpx.Client(headers=self.auth_headers(), timeout=10, trust_env=False) as client:

            def persisted() -> bool:
                response = client.post(f"{self.api_url}/events/filter", json=body)
                if response.status_code == 200 and len(response.json()["events"]) == len(ids):
                    return True
                for process in self.processes():
                    process.check_alive("waiting for the stack to persist a probe event")
                return False

            # The services process persists events with Redis: its log is the one to show.
            wait_until(persisted, deadline - time.monotonic(), "the stack to persist a probe event",
                       interval=0.25, process=self.services)


@dataclass
class RunningStack:
    """A stack another process started (``scripts/scaled-stack``), seen through its JSON line."""

    info: dict[str, Any]
    auth_string: str = field(repr=False)

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def replicas(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(index=i, api_url=r["api_url"]) for i, r in enumerate(self.info["replicas"])]

    def auth_headers(self) -> dict[str, str]:
        return basic_auth_header(self.auth_string)
