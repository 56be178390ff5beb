"""The stack's Prefect processes: the one-off migration, the API replicas, the services process.

The schema is migrated ONCE (``prefect server database upgrade -y``) before any replica
starts, then ``PREFECT_SERVER_DATABASE_MIGRATE_ON_START=false`` everywhere, so the
replicas never race on migrations. With Redis messaging the replicas run
``--no-services`` and one ``prefect server services start`` does the rest; with the
in-memory broker each replica must run its own services (the broker lives inside one
process, a separate services process would never see an event).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from .._process import Process
from .._server import FAST_SERVER_ENV, free_port

__all__ = ["Replica", "migrate", "prefect_env", "replica", "services"]


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


def prefect_env(*, database_url: str, auth_string: str, messaging: str, redis_port: int,
                **extra: str) -> dict[str, str]:
    """The environment of every Prefect process of the stack (no ``PREFECT_*`` of ours leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PREFECT_")}
    env.update(FAST_SERVER_ENV)
    env.update(
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
        PREFECT_SERVER_API_AUTH_STRING=auth_string,
        # Replicas and services talk to one database: allow a few more connections each.
        PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE="10",
    )
    if messaging == "redis":
        env.update(
            PREFECT_MESSAGING_BROKER="prefect_redis.messaging",
            PREFECT_MESSAGING_CACHE="prefect_redis.messaging",
            PREFECT_SERVER_EVENTS_CAUSAL_ORDERING="prefect_redis.ordering",
            PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect_redis.lease_storage",
            PREFECT_REDIS_MESSAGING_HOST="127.0.0.1",
            PREFECT_REDIS_MESSAGING_PORT=str(redis_port),
            PREFECT_SERVER_DOCKET_URL=f"redis://127.0.0.1:{redis_port}/1",
        )
    env.update(extra)
    return env


def _prefect(python: str, *args: str) -> list[str]:
    return [python, "-m", "prefect", *args]


def migrate(python: str, home: Path, env: dict[str, str], log: Path, timeout: float) -> None:
    """``prefect server database upgrade -y`` once, before any replica starts."""
    proc = Process("migrate", _prefect(python, "server", "database", "upgrade", "-y"),
                   env=dict(env, PREFECT_HOME=str(home)), cwd=home, log=log)
    if proc.run(timeout=timeout) != 0:
        raise RuntimeError(f"prefect server database upgrade failed:\n{proc.log_tail()}")


def replica(index: int, python: str, home: Path, env: dict[str, str], *, with_services: bool) -> Replica:
    """API replica ``index`` on a free port (not started yet)."""
    port = free_port()
    argv = _prefect(python, "server", "start", "--host", "127.0.0.1", "--port", str(port))
    if not with_services:
        argv.append("--no-services")
    # Block types are registered at start-up by INSERTs: two replicas starting at once
    # race on the unique slug and one dies. Only the first replica registers them.
    env = dict(env, PREFECT_HOME=str(home),
               PREFECT_SERVER_REGISTER_BLOCKS_ON_START="true" if index == 0 else "false")
    return Replica(index, port, Process(f"replica-{index}", argv, env=env, cwd=home, log=home / "server.log",
                                        stop_grace=15))


def services(python: str, home: Path, env: dict[str, str]) -> Process:
    """``prefect server services start`` (event persister, task-run recorder, ...), not started yet."""
    return Process("services", _prefect(python, "server", "services", "start"),
                   env=dict(env, PREFECT_HOME=str(home)), cwd=home, log=home / "services.log", stop_grace=15)
