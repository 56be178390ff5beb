"""The reduced core and kernel suite the version matrix runs inside each Prefect venv.

Run by tests/test_versions_matrix.py with the python of a venv from tests/prefect_versions.py
(prefect_nbauth comes from the repository through PYTHONPATH):

    python tests/versions_checks.py core   API_URL     # auth string in NBAUTH_MATRIX_AUTH
    python tests/versions_checks.py kernel API_URL
    python tests/versions_checks.py floor  API_URL     # a Prefect below the floor

Each prints one JSON object as its last stdout line: every check by name with "pass", "fail"
or the error it raised, plus what status() said. A check that fails does not stop the others:
the point is the whole row of the matrix. Exit code 0 unless the script itself broke.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

API_URL = sys.argv[2] if len(sys.argv) > 2 else ""
AUTH = os.environ.get("NBAUTH_MATRIX_AUTH", "")
# How long an emitted event may take to be readable before it counts as lost. The server
# persists events every ~0.5 s; the emitter is drained first, so a delivered event shows at once.
ARRIVAL_WAIT = float(os.environ.get("NBAUTH_MATRIX_ARRIVAL_WAIT", "12"))


def _headers() -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode()}


def _events_named(name: str) -> list[dict[str, Any]]:
    import httpx

    body = {"filter": {"event": {"name": [name]},
                       "occurred": {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}},
            "limit": 10}
    response = httpx.post(f"{API_URL}/events/filter", json=body, headers=_headers(), timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def _wait_for(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def _drain_emitter() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)


def core() -> dict[str, Any]:
    import prefect

    out: dict[str, Any] = {"client": prefect.__version__, "checks": {}}
    checks: dict[str, str] = out["checks"]

    def check(name: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - recorded in the matrix, not hidden
            checks[name] = f"error: {type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        checks[name] = "pass" if result else "fail"
        return result

    import prefect_nbauth as nb

    check("login", lambda: nb.login(API_URL, auth_string=AUTH).mode.value == "basic")
    st = nb.status()
    out["status"] = {"mode": st.mode.value, "server_version": st.server_version,
                     "server_auth": st.server_auth, "warnings": list(st.warnings)}

    def audit() -> bool:
        report = nb.audit()
        finding = report.finding("client-server-versions")
        out["audit"] = {"outcome": finding.outcome.value, "detail": finding.detail, "fix": finding.fix}
        return True

    check("audit", audit)

    from prefect import flow, task

    task_run_ids: list[Any] = []

    @task(persist_result=False)
    def plus_one(x: int) -> int:
        from prefect.context import TaskRunContext

        task_run_ids.append(TaskRunContext.get().task_run.id)
        return x + 1

    @flow(persist_result=False, name="nbauth-matrix")
    def hello(x: int) -> int:
        return plus_one(x)

    state = None

    def run_flow() -> bool:
        nonlocal state
        state = hello(1, return_state=True)
        return state.is_completed() and state.result() == 2

    check("flow", run_flow)
    flow_run_id = state.state_details.flow_run_id if state is not None else None

    def sync_client() -> bool:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            return client.read_flow_run(flow_run_id).state.is_completed()

    async def _async_client() -> bool:
        from prefect import get_client

        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state.is_completed()

    check("sync_client", sync_client)
    check("async_client", lambda: asyncio.run(_async_client()))

    name = f"nbauth.matrix.{uuid.uuid4().hex[:10]}"
    arrived: dict[str, bool] = {}

    def completed_event(kind: str, run_id: Any) -> bool:
        """Flow-run state events come from the server; task-run ones from the client's emitter."""
        import httpx

        body = {"filter": {"resource": {"id": [f"prefect.{kind}-run.{run_id}"]},
                           "event": {"name": [f"prefect.{kind}-run.Completed"]},
                           "occurred": {"since": "2020-01-01T00:00:00Z",
                                        "until": "2100-01-01T00:00:00Z"}}, "limit": 5}
        r = httpx.post(f"{API_URL}/events/filter", json=body, headers=_headers(), timeout=10)
        r.raise_for_status()
        return bool(r.json()["events"])

    def emit_and_read_back() -> bool:
        """One arrival window for both: our emit_event and the flow run's own Completed event."""
        from prefect.events import emit_event

        emit_event(event=name, resource={"prefect.resource.id": "nbauth.matrix"})
        _drain_emitter()

        def all_three() -> bool:
            if not arrived.get("emit"):
                arrived["emit"] = bool(_events_named(name))
            if not arrived.get("flow") and flow_run_id is not None:
                arrived["flow"] = completed_event("flow", flow_run_id)
            if not arrived.get("task") and task_run_ids:
                arrived["task"] = completed_event("task", task_run_ids[0])
            return all(arrived.get(k) for k in ("emit", "flow", "task"))

        _wait_for(all_three, ARRIVAL_WAIT)
        return arrived["emit"]

    check("emit_readback", emit_and_read_back)
    check("flow_run_events", lambda: arrived.get("flow", False))
    check("task_run_events", lambda: arrived.get("task", False))

    def stream() -> bool:
        """Our stream_events, fed through REST (POST /events), not through Prefect's emitter."""
        import httpx

        prefix = f"nbauth.matrix.stream.{uuid.uuid4().hex[:8]}."
        with nb.stream_events(prefix=prefix, reconcile_interval=2.0) as events:
            seen: list[str] = []
            handle = events.run_in_background(lambda e: seen.append(e.event))
            try:
                _wait_for(lambda: events.state.value in ("connected", "reconciling"), 60)
                posted = [f"{prefix}{i}" for i in range(3)]
                now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
                r = httpx.post(f"{API_URL}/events", headers=_headers(), timeout=10, json=[
                    {"id": str(uuid.uuid4()), "occurred": now, "event": n,
                     "resource": {"prefect.resource.id": "nbauth.matrix"}} for n in posted])
                r.raise_for_status()
                _wait_for(lambda: sorted(seen) == posted, 60)
                return sorted(seen) == posted
            finally:
                handle.stop()

    check("stream_events", stream)
    check("logout", lambda: nb.logout().mode.value == "none")
    return out


def floor() -> dict[str, Any]:
    import prefect

    out: dict[str, Any] = {"client": prefect.__version__, "checks": {}}
    import prefect_nbauth as nb

    out["checks"]["import"] = "pass"
    for name, call in (("login", lambda: nb.login(API_URL, auth_string=AUTH)),
                       ("status", lambda: nb.status())):
        try:
            call()
            out[name] = {"raised": None}
        except Exception as exc:  # noqa: BLE001 - the type and message are the result
            out[name] = {"raised": type(exc).__name__, "message": str(exc),
                         "is_configuration_error": isinstance(exc, nb.ConfigurationError)}
    return out


def kernel() -> dict[str, Any]:
    """The magics in a real ipykernel of this venv, driven by nbclient."""
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import sys, prefect\nprint('KERNEL:', sys.executable, prefect.__version__)",
        "%load_ext prefect_nbauth",
        f"%prefect_login --url {API_URL} --auth-string-env NBAUTH_MATRIX_AUTH",
        ("import prefect_nbauth\nst = prefect_nbauth.status()\n"
        "print('STATUS:', st.mode.value, st.server_version, len(st.warnings))"),
        "%prefect_status",
        ("from prefect import flow\n\n@flow(persist_result=False)\ndef hello(name: str) -> str:\n"
        "    return f'hello {name}'\n\nprint('FLOW:', hello('kernel'))"),
        ("from prefect import get_client\nasync with get_client() as c:\n"
        "    print('ASYNC:', (await c.hello()).status_code)"),
        "%prefect_logout",
        "print('AFTER:', prefect_nbauth.status(check_server=False).mode.value)",
    ]
    with tempfile.TemporaryDirectory() as root:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        client = NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": root}})
        error = None
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - recorded
            error = f"{type(exc).__name__}: {str(exc)[-1500:]}"
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    texts += [o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", [])]
    return {"error": error, "stdout": "\n".join(texts)}


if __name__ == "__main__":
    result = {"core": core, "kernel": kernel, "floor": floor}[sys.argv[1]]()
    sys.stdout.flush()
    print("\n" + json.dumps(result))
