"""The harnesses' one way to start a process and wait on it.

``prefect_nbauth.testing._process.Process`` (own process group, dies with its parent, a log,
stopped group-wide, stopped at exit) and ``wait_until(..., process=)`` (ends when the process
does, with its log), checked with real processes: ``sh``, ``sleep`` and a Python interpreter.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prefect_nbauth.testing import isolated_env, wait_until
from prefect_nbauth.testing._process import Process, ProcessExited, pid_alive

# A leader that starts a child and says its pid; on SIGTERM it says so and exits.
LEADER = 'trap "echo leader got TERM; exit 0" TERM; sleep 300 & echo "child $!"; wait'


def _child_pid(log: Path) -> int:
    found = wait_until(lambda: re.search(r"child (\d+)", log.read_text()), 30, "the child's pid in the log")
    return int(found.group(1))


def test_a_process_runs_in_its_own_group_and_stop_ends_the_group(tmp_path: Path) -> None:
    log = tmp_path / "leader.log"
    process = Process("leader", ["sh", "-c", LEADER], log=log).start()
    leader, child = process.pid, _child_pid(log)
    assert leader is not None and os.getpgid(child) == leader != os.getpgid(0)
    assert process.running and pid_alive(child)

    process.stop()

    assert not pid_alive(leader)
    wait_until(lambda: not pid_alive(child), 30, "the child to end too: it got the group's signal")
    assert not process.running and process.pid is None
    assert "leader got TERM" in log.read_text()  # the stop signal first, not straight SIGKILL
    assert log.read_text().startswith("\n===== ")  # a header for each start


def test_a_process_dies_with_the_interpreter_that_started_it(tmp_path: Path) -> None:
    """SIGKILL the test process that started a harness: its server must not outlive it."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from prefect_nbauth.testing._process import Process
        process = Process("sleeper", ["sleep", "300"], log=Path({str(tmp_path / 'sleeper.log')!r})).start()
        print(process.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=isolated_env())
    try:
        assert parent.stdout is not None
        sleeper = int(parent.stdout.readline())
        assert pid_alive(sleeper)
        parent.kill()  # no atexit, no finally: only PR_SET_PDEATHSIG can end the sleeper
        parent.wait(30)
        wait_until(lambda: not pid_alive(sleeper), 30, "the orphaned sleeper to die")
    finally:
        parent.kill()
        parent.wait(30)


def test_what_nobody_stopped_is_stopped_at_exit_processes_before_their_harness(tmp_path: Path) -> None:
    log = tmp_path / "leader.log"
    code = textwrap.dedent(f"""
        import re
        from pathlib import Path
        from prefect_nbauth.testing import wait_until
        from prefect_nbauth.testing._process import Process, stop_at_exit

        class Harness:  # removes its directory in stop(), as the IdP and the Hub do
            def stop(self):
                Path({str(tmp_path / 'harness-stopped')!r}).write_text(str(process.running))

        harness = Harness()
        stop_at_exit(harness)
        process = Process("leader", ["sh", "-c", {LEADER!r}], log=Path({str(log)!r})).start()
        wait_until(lambda: re.search(r"child [0-9]+", process.log_tail()), 30, "the leader's trap and child")
        print(process.pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=isolated_env())
    assert done.returncode == 0, done.stderr
    leader, child = int(done.stdout), _child_pid(log)
    assert not pid_alive(leader)
    wait_until(lambda: not pid_alive(child), 30, "the leader's child to end")
    assert "leader got TERM" in log.read_text()  # stopped by stop(), not by the parent-death SIGKILL
    assert (tmp_path / "harness-stopped").read_text() == "False"  # newest first: the process, then its harness


def test_waiting_on_a_process_ends_when_it_exits_with_how_and_its_log(tmp_path: Path) -> None:
    failing = Process("the failing server", ["sh", "-c", "echo 'port 80: permission denied' >&2; exit 3"],
                      log=tmp_path / "failing.log").start()
    with pytest.raises(ProcessExited) as exited:  # at once: not after the 120 s
        wait_until(lambda: False, 120, "its port to open", process=failing)
    message = str(exited.value)
    assert message.startswith("the failing server exited with status 3 while waiting for its port to open;")
    assert "permission denied" in message and str(tmp_path / "failing.log") in message
    failing.stop()

    killed = Process("the killed server", ["sh", "-c", "kill -9 $$"], log=tmp_path / "killed.log").start()
    with pytest.raises(ProcessExited, match="the killed server was killed by signal 9 while waiting for"):
        wait_until(lambda: False, 120, "its port", process=killed)
    killed.stop()


def test_a_timeout_names_what_was_awaited_and_shows_the_process_log(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match=r"^timed out after 0\.2 s waiting for the flag$"):
        wait_until(lambda: False, 0.2, "the flag")
    sleeper = Process("sleeper", ["sh", "-c", "echo still starting; sleep 300"], log=tmp_path / "s.log").start()
    try:
        wait_until(lambda: "still starting" in sleeper.log_tail(), 30, "the first line")
        with pytest.raises(TimeoutError) as timed_out:
            wait_until(lambda: False, 0.2, "the port", interval=0.5, process=sleeper)
        assert str(timed_out.value).startswith("timed out after 0.2 s waiting for the port; log tail (")
        assert "still starting" in str(timed_out.value)
    finally:
        sleeper.stop()


def test_a_process_that_ran_leaves_nothing_running(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    process = Process("runner", ["sh", "-c", "sleep 300 & echo child $!; exit 4"], log=log)
    assert process.run(timeout=60) == 4
    child = _child_pid(log)
    wait_until(lambda: not pid_alive(child), 30, "the child it left to be killed")
    process.stop()


def test_a_process_restarts_after_it_died(tmp_path: Path) -> None:
    process = Process("sleeper", ["sleep", "300"], log=tmp_path / "s.log").start()
    first = process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not process.running, 30, "the first run to end")
    process.start()
    try:
        assert process.running and process.started_pids == [first, process.pid]
        assert not pid_alive(first)
    finally:
        process.stop()
