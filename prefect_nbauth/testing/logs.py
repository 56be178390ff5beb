"""Flow runs that log, in a separate process, for tests and benchmarks of log streams.

* :func:`create_run` creates a flow run (Pending) over REST, so a test can subscribe
  to its logs before it starts; :func:`set_run_state` moves it (the server emits the
  state-change event, as for a run on a worker);
* :class:`FlowProcess` runs it in a separate process, as a worker would
  (``python -m prefect.flow_engine .../_log_flows.py:burst``: ``lines`` lines at full
  speed, optional task runs, a failure or a secret logged on request);
* :func:`persisted_logs` reads back every log of a run (REST, offset pages of 200);
  :func:`post_logs` writes logs as Prefect's log handler does.
* :data:`LOGS_ON`: the server settings that turn Prefect's logs websocket on.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ._process import Process
from ._server import isolated_env

__all__ = ["FLOWS", "FlowProcess", "LOGS_ON", "create_run", "line_numbers", "persisted_logs", "post_logs",
           "set_run_state"]

# The flow file FlowProcess runs (Prefect loads an entrypoint by path: it ships in this package).
FLOWS = Path(__file__).resolve().parent / "_log_flows.py"

# Prefect 3.9.1 ships its logs websocket off; the server settings that turn it on.
LOGS_ON = {
    "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
}


def _post(client: httpx.Client, path: str, body: dict[str, Any], attempts: int = 6) -> Any:
    """POST, retrying a 503 as Prefect's own client does.

    Prefect's server answers 503 for errors a client may retry (SQLite busy or locked, which
    a loaded machine produces); seen at set-up of tests/kernel/test_watch_kernel.py.
    """
    for attempt in range(attempts):
        response = client.post(path, json=body)
        if response.status_code != 503 or attempt == attempts - 1:
            response.raise_for_status()
            return response.json()
        time.sleep(0.5 * 2 ** attempt)  # backing off between attempts, as Prefect's client does
    raise AssertionError("unreachable")


def create_run(api_url: str, headers: dict[str, str], name: str = "nbauth-log-burst",
               state: str = "PENDING") -> str:
    """A flow run of a new flow ``name``, Pending (or ``state``): subscribe to its logs, then start it."""
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        flow = _post(client, "/flows/", {"name": name})
        run = _post(client, "/flow_runs/", {"flow_id": flow["id"], "state": {"type": state}})
        return str(run["id"])


def set_run_state(api_url: str, headers: dict[str, str], run_id: str, state: str) -> None:
    """Force a flow run into ``state`` (``RUNNING``, ``COMPLETED``...); the server emits its event."""
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        _post(client, f"/flow_runs/{run_id}/set_state", {"state": {"type": state}, "force": True})


class FlowProcess:
    """A flow run executing in its own interpreter, as on a worker (a :class:`~._process.Process`)."""

    def __init__(self, api_url: str, auth_string: str | None, run_id: str, *, lines: int,
                 tasks: int = 0, fail: bool = False, canary: str | None = None) -> None:
        self._home = tempfile.TemporaryDirectory(prefix="flow-home-")
        env = isolated_env(
            PREFECT_HOME=self._home.name, PREFECT_API_URL=api_url, PREFECT__FLOW_RUN_ID=run_id,
            PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", LOG_LINES=str(lines), LOG_TASKS=str(tasks),
            LOG_FAIL="1" if fail else "0", PYTHONUNBUFFERED="1",
        )
        if auth_string is not None:
            env["PREFECT_API_AUTH_STRING"] = auth_string
        if canary is not None:
            env["LOG_CANARY"] = canary
        self._output: str | None = None  # its output's tail, kept when close() removes the home
        self.process = Process("the flow run", [sys.executable, "-m", "prefect.flow_engine", f"{FLOWS}:burst"],
                               env=env, log=Path(self._home.name) / "flow.log").start()

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running interpreter (``None`` once closed)."""
        return self.process.proc

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def output(self) -> str:
        return self._output if self._output is not None else self.process.log_tail(4000)

    def close(self) -> None:
        if self._output is None:
            self.process.kill()
            self._output = self.process.log_tail(4000)
            self._home.cleanup()

    def __enter__(self) -> "FlowProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def persisted_logs(api_url: str, headers: dict[str, str], run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        while True:
            page = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}},
                                                     "limit": 200, "offset": len(found)})
            page.raise_for_status()
            found += page.json()
            if len(page.json()) < 200:
                return found


def line_numbers(messages: list[str]) -> list[int]:
    """The N of every ``line NNNNN`` message, in the order given."""
    return [int(m.split()[-1]) for m in messages if m.startswith("line ")]


def post_logs(api_url: str, headers: dict[str, str], run_id: str, messages: list[str]) -> None:
    """Write logs of a run straight into ``POST /logs/`` (what Prefect's log handler does).

    Their timestamps rise by a microsecond each, so their order is theirs: logs are
    ordered by timestamp, and ``datetime.now()`` in a loop gives some of them the same one.
    """
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    body = [{"name": "nbauth.test", "level": 20, "message": message, "flow_run_id": run_id,
             "timestamp": (now + timedelta(microseconds=i)).isoformat()} for i, message in enumerate(messages)]
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        client.post("/logs/", json=body).raise_for_status()
