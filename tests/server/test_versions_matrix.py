"""The version matrix: Prefect clients and servers of several releases, each in its own venv.

Every cell of docs/compatibility.md is one of these tests. The clients run
tests/versions_checks.py (login/status/logout, a flow, the sync and async clients, emit +
read back, the flow run's own events, ``stream_events``, and the magics in a real kernel)
with the python of a venv from tests/prefect_versions.py; the servers are real
``prefect server start`` processes enforcing an auth string:

- 3.9.1 (this venv) against clients 3.3.7 (below the floor), 3.4.8 (the floor), 3.5.0,
  3.6.13 (the last before the emitter handshake) and 3.9.1;
- 3.4.8 (the oldest server the docs claim) and 3.6.13 against the 3.9.1 client, and the
  3.4.8 server against the 3.4.8 client.

All scenarios run side by side from one module fixture (they mostly wait on sockets), and
each test asserts one row. Marked ``versions``: ``pytest -m versions`` runs only these.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import prefect_nbauth.testing._server as servers_module
from constants import AUTH_STRING
from prefect_versions import (
    BELOW_FLOOR,
    FLOOR,
    PRE_HANDSHAKE,
    PRE_HANDSHAKE_36,
    PrefectVenvUnavailable,
    ensure_all,
)

from prefect_nbauth.testing._server import PrefectServer, isolated_env

# The module fixture builds the venvs (minutes on a cold pip cache) and runs every scenario.
pytestmark = [pytest.mark.server, pytest.mark.versions, pytest.mark.timeout(1500)]
# Scenarios mostly wait (servers, sockets, the arrival window), but each imports Prefect.
PARALLEL = int(os.environ.get("NBAUTH_MATRIX_PARALLEL", "6"))

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).resolve().parents[1] / "versions_checks.py"
NEWEST = "3.9.1"
# Flow-run state events are written by the server itself, so they arrive whatever the emitter.
CORE = ("login", "audit", "flow", "sync_client", "async_client", "flow_run_events", "stream_events",
        "logout")


def _run(python: Path | str, mode: str, api_url: str, home: Path, timeout: float = 420) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "cwd").mkdir(exist_ok=True)
    env = isolated_env(
        PREFECT_HOME=str(home / "prefect-home"), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
        PYTHONUNBUFFERED="1", NBAUTH_MATRIX_AUTH=AUTH_STRING, IPYTHONDIR=str(home / "ipython"),
        # Only the venv's own ipykernel spec: no user or system kernelspec may pick another python.
        JUPYTER_DATA_DIR=str(home / "jupyter-data"), JUPYTER_PATH=str(home / "jupyter-data"),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT)]),
    )
    t0 = time.monotonic()
    done = subprocess.run([str(python), str(CHECKS), mode, api_url], cwd=str(home / "cwd"), env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"{python} {mode} printed no JSON (exit {done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}") from None
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["stderr_tail"] = done.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def venvs() -> dict[str, Path]:
    try:
        found = ensure_all()
    except PrefectVenvUnavailable as exc:
        if os.environ.get("CI"):
            raise  # in CI a missing venv is a failure, not a skip
        pytest.skip(f"a Prefect venv could not be built: {exc}")
    found[NEWEST] = Path(sys.executable)
    return found


def _seed_prefect_command(python: Path) -> None:
    """Check ``python -m prefect`` with a timeout that scales, then tell servers.py it works.

    servers.py probes each interpreter once with a 120 s limit; a venv's first import on a
    machine shared by many test runs can take longer than that (bytecode is written then).
    """
    subprocess.run([str(python), "-c", "import prefect.__main__"], env=isolated_env(),
                   capture_output=True, timeout=900, check=True)
    servers_module._COMMAND_CACHE[str(python)] = [str(python), "-m", "prefect"]


@pytest.fixture(scope="module")
def old_servers(venvs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[dict[str, PrefectServer]]:
    servers = {v: PrefectServer(tmp_path_factory.mktemp(f"server-{v}"), auth_string=AUTH_STRING,
                                python=str(venvs[v])) for v in (FLOOR, PRE_HANDSHAKE_36)}
    try:
        # One after the other, from this thread: each server dies with the thread that started
        # it (PR_SET_PDEATHSIG in servers.py), so a pool thread must not start one.
        for version, server in servers.items():
            _seed_prefect_command(venvs[version])
            server.start(timeout=600)
        yield servers
    finally:
        for s in servers.values():
            s.stop()


@pytest.fixture(scope="module")
def matrix(venvs: dict[str, Path], old_servers: dict[str, PrefectServer], auth_server: PrefectServer,
           tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(client, server, mode) -> what versions_checks.py reported; all runs side by side."""
    servers = {NEWEST: auth_server, **old_servers}
    runs = [
        (BELOW_FLOOR, NEWEST, "floor"),
        (FLOOR, NEWEST, "core"), (PRE_HANDSHAKE, NEWEST, "core"), (PRE_HANDSHAKE_36, NEWEST, "core"),
        (NEWEST, NEWEST, "core"),
        (NEWEST, FLOOR, "core"), (NEWEST, PRE_HANDSHAKE_36, "core"), (FLOOR, FLOOR, "core"),
        (FLOOR, NEWEST, "kernel"), (PRE_HANDSHAKE_36, NEWEST, "kernel"), (NEWEST, NEWEST, "kernel"),
    ]
    root = tmp_path_factory.mktemp("matrix")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {(c, s, m): pool.submit(_run, venvs[c], m, servers[s].api_url,
                                          root / f"{m}-client{c}-server{s}")
                   for c, s, m in runs}
        results = {key: f.result() for key, f in futures.items()}
    summary = {f"client {c} / server {s} / {m}": {
        k: r.get(k) for k in ("checks", "status", "audit", "login", "error", "seconds") if k in r}
        for (c, s, m), r in results.items()}
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "versions-matrix.json").write_text(json.dumps(summary, indent=2))
    print("MATRIX", json.dumps(summary))
    return results


def _event_loss(warnings: list[str]) -> list[str]:
    return [w for w in warnings if w.startswith("Events are lost")]


def _assert_core(result: dict[str, Any], client: str) -> None:
    assert result["client"] == client
    failed = {k: v for k, v in result["checks"].items() if k in CORE and v != "pass"}
    assert not failed, f"{failed}\n{result['stderr_tail']}"


def test_below_the_floor_login_and_status_raise_one_configuration_error(matrix: Any) -> None:
    result = matrix[(BELOW_FLOOR, NEWEST, "floor")]
    assert result["client"] == BELOW_FLOOR
    assert result["checks"]["import"] == "pass"
    for call in ("login", "status"):
        raised = result[call]
        assert raised["raised"] == "ConfigurationError" and raised["is_configuration_error"], raised
        assert BELOW_FLOOR in raised["message"] and FLOOR in raised["message"], raised["message"]
        assert AUTH_STRING not in raised["message"]


@pytest.mark.parametrize("client", [FLOOR, PRE_HANDSHAKE, PRE_HANDSHAKE_36])
def test_a_client_before_the_handshake_works_but_loses_events_and_status_says_so(
        matrix: Any, client: str) -> None:
    result = matrix[(client, NEWEST, "core")]
    _assert_core(result, client)
    assert result["status"]["server_version"] == NEWEST
    # Prefect's own emitter is refused by the auth server: its events never arrive ...
    assert result["checks"]["emit_readback"] == "fail"
    assert result["checks"]["task_run_events"] == "fail"
    # ... and status() says so, with the upgrade that fixes it.
    [warning] = _event_loss(result["status"]["warnings"])
    assert client in warning and "upgrade the client to Prefect 3.6.14" in warning
    assert result["audit"]["outcome"] == "fail"
    assert result["audit"]["fix"] == "Upgrade the client to Prefect 3.6.14 or newer."


def test_the_newest_client_against_the_newest_server_works_and_warns_nothing(matrix: Any) -> None:
    result = matrix[(NEWEST, NEWEST, "core")]
    _assert_core(result, NEWEST)
    assert result["checks"]["emit_readback"] == "pass"
    assert result["checks"]["task_run_events"] == "pass"
    assert _event_loss(result["status"]["warnings"]) == []  # the advice, followed, clears it
    assert result["audit"]["outcome"] == "pass"


@pytest.mark.parametrize("server", [FLOOR, PRE_HANDSHAKE_36])
def test_the_newest_client_against_an_old_server_loses_events_and_status_says_so(
        matrix: Any, old_servers: dict[str, PrefectServer], server: str) -> None:
    result = matrix[(NEWEST, server, "core")]
    _assert_core(result, NEWEST)
    assert result["status"]["server_version"] == server
    assert result["checks"]["emit_readback"] == "fail"
    assert result["checks"]["task_run_events"] == "fail"
    [warning] = _event_loss(result["status"]["warnings"])
    assert server in warning and "upgrade the server to Prefect 3.6.14" in warning
    assert result["audit"]["outcome"] == "fail"
    assert result["audit"]["fix"].startswith("Upgrade the server to Prefect 3.6.14")


@pytest.mark.parametrize("server", [FLOOR, PRE_HANDSHAKE_36])
def test_the_old_server_writes_part_of_the_auth_string_into_its_log(
        matrix: Any, old_servers: dict[str, PrefectServer], server: str) -> None:
    """What the warning claims about the server log, seen in the real server's log.

    The server logs the pydantic ValidationError of the auth message, whose input is shown
    shortened from the front: the password part of the auth string is there in clear.
    """
    assert matrix[(NEWEST, server, "core")]["checks"]["emit_readback"] == "fail"
    password = AUTH_STRING.split(":", 1)[1]
    log = old_servers[server].log_tail(10**7)
    assert "ValidationError" in log or "validation error" in log
    assert password in log


def test_the_floor_client_against_the_floor_server_works_end_to_end(matrix: Any) -> None:
    result = matrix[(FLOOR, FLOOR, "core")]
    _assert_core(result, FLOOR)
    assert result["checks"]["emit_readback"] == "pass"
    assert result["checks"]["task_run_events"] == "pass"
    assert _event_loss(result["status"]["warnings"]) == []
    assert result["audit"]["outcome"] == "pass"


@pytest.mark.parametrize("client", [FLOOR, PRE_HANDSHAKE_36, NEWEST])
def test_the_magics_work_in_a_real_kernel_of_that_version(matrix: Any, client: str) -> None:
    result = matrix[(client, NEWEST, "kernel")]
    assert result["error"] is None, result["error"]
    out = result["stdout"]
    assert "KERNEL: " in out and f" {client}\n" in out, out  # the kernel ran that venv's Prefect
    assert f"STATUS: basic {NEWEST}" in out
    assert "FLOW: hello kernel" in out
    assert "ASYNC: 200" in out
    assert "AFTER: none" in out
    assert ("Events are lost" in out) == (client != NEWEST)  # %prefect_status shows the warning
