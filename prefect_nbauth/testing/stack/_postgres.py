"""The stack's PostgreSQL: a fresh Debian cluster (``initdb``) on a loopback port, thrown away after."""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
from pathlib import Path

from .._process import Process
from .._wait import wait_until
from ._system import make_dir

__all__ = ["Postgres", "pg_bin"]


def pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise RuntimeError("Debian's PostgreSQL is missing: apt-get install postgresql")
    return Path(found[-1]).parent


class Postgres:
    """A cluster in ``root`` on 127.0.0.1:``port`` with a ``prefect`` database (password auth, SCRAM).

    ``fsync=off``: the cluster is deleted at the end, durability buys nothing here.
    """

    def __init__(self, root: Path, port: int, password: str, user: str | None) -> None:
        self.root, self.port, self.user = root, port, user
        self._password = password
        self.process: Process | None = None
        self.version = ""

    @property
    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", ""), "PGPASSWORD": self._password}

    def start(self) -> Process:
        pg = pg_bin()
        self.root.chmod(0o755)
        data = make_dir(self.root / "pgdata", self.user)
        sock = make_dir(self.root / "pgsock", self.user)
        pwfile = make_dir(self.root / "pgpw", self.user) / "pw"
        pwfile.write_text(self._password + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        log = self.root / "postgres.log"
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
        init = Process("initdb", [str(pg / "initdb"), "-D", str(data), "-U", "prefect", "--pwfile", str(pwfile),
                                  "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8",
                                  "--no-sync", "--no-instructions"],
                       env=env, cwd=sock, log=log, user=self.user)
        if init.run(timeout=120) != 0:
            raise RuntimeError(f"initdb failed:\n{init.log_tail()}")
        pwfile.unlink()
        self.process = Process(
            "postgres",
            [str(pg / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "shared_buffers=128MB"],
            env=env, cwd=sock, log=log, user=self.user,
            stop_signal=signal.SIGINT, stop_grace=30)  # SIGINT = fast shutdown
        self.process.start()

        def ready() -> bool:
            return subprocess.run([str(pg / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                  env=self._env, timeout=10).returncode == 0

        wait_until(ready, 60, "PostgreSQL to accept connections", interval=0.5, process=self.process)
        self.psql("CREATE DATABASE prefect", database="postgres")
        self.version = self.psql("SHOW server_version", database="postgres")
        return self.process

    def psql(self, sql: str, *, database: str = "prefect", timeout: float = 3600) -> str:
        """Run ``sql`` with ``psql`` as the ``prefect`` role; its unaligned output, stripped."""
        argv = [str(pg_bin() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "prefect",
                "-d", database, "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql]
        return subprocess.run(argv, env=self._env, check=True, capture_output=True, text=True,
                              timeout=timeout).stdout.strip()
