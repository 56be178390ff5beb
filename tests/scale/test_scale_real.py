"""The toolkit against a scaled-out Prefect: PostgreSQL + Redis + two API replicas + services
behind NGINX (``prefect_nbauth.testing.stack``), everything real, on loopback.

Marked ``scale``. The Redis stack (the correct setup) is started once for the module; the
in-memory-messaging variant (the common mistake) is started and removed by
``scripts/scaled-stack`` itself, which also proves the script leaves nothing behind.
Every fault case prints Prefect's own subscriber's figures beside ours (``-s`` shows them)
and writes them to ``test-artifacts/scale-figures.json``.

CI sizes (the benchmark ``benchmarks/scale_out.py`` runs the full ones): a burst of
``SCALE_BURST`` events (default 1,000; the issue's 10,000 in the benchmark), replica kill
and Redis restart under a 100 events/s emitter, 600 events in the in-memory variant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from constants import AUTH_STRING

import prefect_nbauth as nb
from prefect_nbauth.testing._process import die_with_parent, pid_alive
from prefect_nbauth.testing.stack import RunningStack, ScaledStack
from prefect_nbauth.testing.stack.cases import (
    case_burst,
    case_in_memory,
    case_redis_restart,
    case_replica_kill,
    print_figures,
)

pytestmark = [
    pytest.mark.scale,
    pytest.mark.timeout(600),
    # prefect-redis 0.3 (the test extra installs it only there) needs Python 3.11.
    pytest.mark.skipif(sys.version_info < (3, 11), reason="prefect-redis needs Python 3.11 or newer"),
]

REPO = Path(__file__).resolve().parents[2]
BURST = int(os.environ.get("SCALE_BURST", "1000"))
FIGURES: dict[str, Any] = {}


def _record(label: str, result: dict[str, Any]) -> None:
    print_figures(label, result)
    FIGURES[label] = result
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "scale-figures.json").write_text(json.dumps(FIGURES, indent=2))


def _assert_exactly_once(result: dict[str, Any]) -> None:
    ours = result["ours"]
    assert result["persisted"] > 0
    assert ours["missing"] == 0 and ours["delivered"] == result["persisted"], result
    assert ours["duplicates"] == 0 and ours["extra"] == 0 and ours["error"] is None, result


@pytest.fixture
def login_to():
    try:
        yield lambda url: nb.login(url, auth_string=AUTH_STRING)
    finally:
        nb.logout()


# --------------------------------------------------- the Redis stack


_LAUNCHED: dict[str, subprocess.Popen[str]] = {}


def _launch_script() -> subprocess.Popen[str]:
    """``scripts/scaled-stack --messaging memory`` in the background (the last test reads it)."""
    env = dict(os.environ, SCALED_STACK_AUTH_STRING=AUTH_STRING)
    return subprocess.Popen([str(REPO / "scripts" / "scaled-stack"), "--messaging", "memory", "--until-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=die_with_parent())


def _end_script(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def stack() -> Iterator[ScaledStack]:
    stack = ScaledStack(auth_string=AUTH_STRING, messaging="redis")
    try:
        stack.start()
        print(f"[scale] stack up in {stack.startup_seconds:.1f} s: {stack.describe()}")
        # The in-memory variant (the module's last test) starts meanwhile: its start-up
        # overlaps the waits of the tests below (emitters, persister flushes, passes).
        _LAUNCHED["memory"] = _launch_script()
        yield stack
    finally:
        unused = _LAUNCHED.pop("memory", None)
        if unused is not None:
            _end_script(unused)
        pids, root = stack.pids(), getattr(stack, "root", None)
        stack.stop()
        leftovers = [pid for pid in pids if pid_alive(pid)]
        assert leftovers == [] and (root is None or not root.exists()), (leftovers, root)


def test_a_stack_that_fails_to_start_leaves_nothing_behind(tmp_path):
    """PostgreSQL and Redis are up when the Prefect step fails: both go, and the directory too."""
    broken = ScaledStack(auth_string=AUTH_STRING, python=str(tmp_path / "no-such-python"))
    with pytest.raises(FileNotFoundError):
        broken.start()
    started = broken.started_pids()
    assert broken.postgres is not None and broken.redis is not None and len(started) >= 2
    assert AUTH_STRING not in repr(broken)
    assert [pid for pid in started if pid_alive(pid)] == []
    assert not broken.root.exists()


LOGIN_SCENARIO = """
import prefect_nbauth as nb
from prefect_nbauth.auditing import audit
from prefect_nbauth.testing.probes import *
r = {{}}
r["before"] = [read_flows_sync(), read_flows_async()]
r["login"] = nb.login({api!r}, auth_string={auth!r}).to_dict()
r["status"] = nb.status().to_dict()
r["after"] = [read_flows_sync(), read_flows_async(), run_flow(), events_roundtrip()]
r["more"] = [read_flows_sync() for _ in range(6)]
report = audit()
r["audit"] = {{f["check"]: f["outcome"] for f in report.to_dict()["findings"]}}
r["audit_text"] = str(report)
r["logout"] = nb.logout().to_dict()
r["again"] = [read_flows_sync(), read_flows_async(), run_flow()]
emit(r)
"""


def test_login_status_flow_clients_and_audit_through_the_balancer(stack, run_scenario):
    _, offset = stack.upstreams_since(0)
    result = run_scenario(LOGIN_SCENARIO.format(api=stack.api_url, auth=AUTH_STRING),
                          env={"PREFECT_API_URL": stack.api_url}, timeout=240)
    assert result["before"] == [401, 401]
    assert result["after"] == [200, 200, 200, "received"], result["after"]
    assert result["more"] == [200] * 6
    assert result["again"] == [401, 401, 401]
    assert result["login"]["mode"] == "basic" and result["login"]["identity"] == "admin@corp"
    status = result["status"]
    assert status["server_version"] == "3.9.1" and status["server_auth"] == "BASIC", status
    assert status["warnings"] == [], status
    failed = [check for check, outcome in result["audit"].items() if outcome == "fail"]
    assert failed == [], result["audit_text"]
    for path in ("events-out", "events-in", "logs-out"):
        assert result["audit"][f"socket-{path}-wrong-token"] == "pass"
    assert AUTH_STRING not in result["audit_text"]
    # Round robin really spread the scenario's requests over both replicas.
    seen, _ = stack.upstreams_since(offset)
    served = {address for address in seen if any(address.endswith(r.address) for r in stack.replicas)}
    assert served == {r.address for r in stack.replicas}, seen


ROTATION_SCENARIO = """
import time, uuid
import prefect_nbauth as nb
from prefect_nbauth.testing import RotatingGateway
from prefect_nbauth.testing.probes import emit, flow_across_rotations
from prefect_nbauth.testing.events import Collector, emit_events
from prefect_nbauth.testing import wait_until
from prefect_nbauth.events import stream_events

gateway = RotatingGateway({api!r}, upstream_auth_string={auth!r}, token_lifetime=2)
gateway.start()
try:
    nb.login(gateway.api_url, headers={{"Authorization": nb.OAuth2ClientCredentials(
        gateway.token_url, gateway.client_id, gateway.client_secret)}})
    name = "nbauth.scale.rot." + uuid.uuid4().hex[:6] + "."
    collector = Collector()
    stream = stream_events(prefix=name)
    handle = stream.run_in_background(collector.add)
    wait_until(lambda: stream.state.value == "connected", 60)

    ids = emit_events({api!r}, {auth!r}, name + "a", 100)
    state = flow_across_rotations(gateway, 3)
    ids += emit_events({api!r}, {auth!r}, name + "b", 100)
    collector.wait_ids(ids, 120)
    passes = stream.stats.passes
    wait_until(lambda: stream.stats.passes >= passes + 2, 60)  # REST passes across new tokens too
    handle.stop()
    emit({{"state": state.type.value, "calls": state.result() if state.is_completed() else None,
          "gateway": gateway.counters(), "dupes": collector.duplicates(),
          "exact": sorted(collector.ids()) == sorted(ids), "error": repr(stream.error),
          "status": nb.status(check_server=False).to_dict()}})
finally:
    nb.logout()
    gateway.stop()
"""


def test_rotation_through_the_balancer(stack, run_scenario):
    """The OAuth2 gateway emulation (2-second JWTs) in front of NGINX; flows and the stream go on."""
    result = run_scenario(ROTATION_SCENARIO.format(api=stack.api_url, auth=AUTH_STRING), timeout=300)
    assert result["state"] == "COMPLETED" and result["calls"] >= 3, result
    assert result["gateway"]["issued"] >= 4, result["gateway"]
    assert result["dupes"] == {} and result["exact"], result
    assert result["error"] == "None"
    assert result["status"]["mode"] == "headers" and not result["status"]["warnings"]


def test_burst_through_the_balancer_is_delivered_exactly_once(stack, login_to):
    login_to(stack.api_url)
    result = case_burst(stack, BURST)
    _record("burst", result)
    _assert_exactly_once(result)
    assert result["emitted"] == result["persisted"] == BURST


def test_replica_holding_the_stream_killed_and_restarted(stack, login_to):
    login_to(stack.api_url)
    result = case_replica_kill(stack, rate=100, before=300, after=300)
    _record("replica_kill", result)
    _assert_exactly_once(result)
    assert result["ours"]["reconnects"] >= 1
    # Events from both sides of the kill reached the server and our stream.
    assert result["persisted"] >= result["sent_before_kill"] // 2
    assert all(r.healthy() for r in stack.replicas)


def test_redis_restarted_under_a_steady_emitter(stack, login_to):
    login_to(stack.api_url)
    result = case_redis_restart(stack, rate=100, before=200, after=300)
    _record("redis_restart", result)
    _assert_exactly_once(result)
    # The stack persisted events sent after the restart: Prefect recovered from it.
    assert result["persisted"] >= 400, result


def test_stack_refuses_wrong_credentials_at_every_door(stack):
    """NGINX adds no auth of its own: each replica enforces the auth string (REST and sockets)."""
    import httpx
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    for _ in range(4):  # both replicas, round robin
        assert httpx.get(f"{stack.api_url}/flows/filter", timeout=10).status_code in (401, 405)
        assert httpx.post(f"{stack.api_url}/flows/filter", json={}, timeout=10,
                          headers={"Authorization": "Basic d3Jvbmc="}).status_code == 401
        ws = connect(stack.api_url.replace("http", "ws") + "/events/out", subprotocols=["prefect"])
        ws.send(json.dumps({"type": "auth", "token": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# --------------------------------------------------- in-memory variant, via the script


@pytest.fixture
def script_stack() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc = _LAUNCHED.pop("memory", None) or _launch_script()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the stack is up (or the script failed)
        assert line, f"scripts/scaled-stack exited with {proc.wait()} before the stack was up"
        yield proc, json.loads(line)
    finally:
        _end_script(proc)


def test_in_memory_messaging_script_stack_exactly_once_then_nothing_left(script_stack, login_to):
    proc, info = script_stack
    assert info["messaging"] == "memory" and len(info["replicas"]) == 2 and info["redis"] is None
    assert all(pid_alive(pid) for pid in info["pids"]) and Path(info["root"]).is_dir()
    stack = RunningStack(info, AUTH_STRING)
    login_to(stack.api_url)
    result = case_in_memory(stack, 600)  # type: ignore[arg-type]
    _record("in_memory_messaging", result)
    _assert_exactly_once(result)
    # Both replicas ingested events, and Prefect's subscriber (one replica's queue) missed
    # what the other one ingested: the failure this variant exists to show.
    assert len(result["ingested_per_replica"]) == 2, result
    assert result["prefect"]["delivered"] < result["persisted"], result
    # SIGTERM the script: every process it started is gone, and its directory too.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0
    assert proc.stdout is not None and json.loads(proc.stdout.read().strip().splitlines()[-1]) == {"stopped": True}
    assert [pid for pid in info["pids"] if pid_alive(pid)] == []
    assert not Path(info["root"]).exists()
