"""What the processes Prefect starts receive of a login's credential (issue 21, case 9).

Real ``prefect server start`` with an auth string, real ``ProcessPoolTaskRunner`` workers
(spawned interpreters), real task workers (``prefect.task_worker.serve``) in another
process and in the logged-in one. The rules are :mod:`prefect_nbauth._children`'s.
"""

from __future__ import annotations

from constants import AUTH_STRING

from prefect_nbauth.testing.canaries import leaks


def test_a_process_pool_task_authenticates_and_what_it_starts_inherits_no_credential(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import os, subprocess
        import prefect_nbauth as nb
        from prefect import flow, task
        from prefect.context import serialize_context
        from prefect.task_runners import ProcessPoolTaskRunner
        from prefect_nbauth.testing.probes import emit, read_flows_sync

        @task
        def in_the_worker():
            # The worker itself must still authenticate (its task run's states go through it).
            return {{"flows": read_flows_sync(),
                    "environ": {{k: v for k, v in os.environ.items() if k.startswith("PREFECT_")}},
                    "env": subprocess.run(["env"], capture_output=True, text=True).stdout}}

        runner = ProcessPoolTaskRunner(max_workers=1)

        @flow(task_runner=runner, persist_result=False)
        def pool_flow():
            return in_the_worker.submit().result()

        if __name__ == "__main__":  # the pool's workers are spawned: they import this file
            nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
            own_child = subprocess.run(["env"], capture_output=True, text=True).stdout  # login() left os.environ alone
            got = pool_flow()
            got["own child"] = own_child
            got["cached_env"] = repr(runner._cached_env)  # what the runner keeps for its next task
            got["context_in_memory"] = repr(serialize_context())  # the worker's channel: a pipe
            emit(got)
        """,
        timeout=240,
    )
    assert result["flows"] == 200  # the worker authenticated, through its pickled settings context
    assert "PREFECT_API_URL" in result["environ"]  # Prefect's settings did reach the task's environment...
    assert "PREFECT_API_AUTH_STRING" not in result["environ"]  # ...the credential did not
    assert leaks(result["env"], AUTH_STRING) == [], "a program the task started inherited the credential"
    assert leaks(result["cached_env"], AUTH_STRING) == []
    assert leaks(result["own child"], AUTH_STRING) == []
    assert leaks(result["context_in_memory"], AUTH_STRING) != []  # kept where the worker needs it


def test_a_deferred_task_stores_no_credential_and_task_workers_still_run_it(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import base64, json, os, pathlib, subprocess, sys, threading
        from prefect import task

        @task
        def add(x):
            return {{"sum": x + 1, "pid": os.getpid()}}

        if sys.argv[1:] == ["worker"]:  # this same file, as a task worker in its own process
            from prefect.task_worker import serve
            serve(add)
            sys.exit(0)

        import prefect_nbauth as nb
        from prefect.task_worker import serve
        from prefect_nbauth.testing.canaries import leaks
        from prefect_nbauth.testing.probes import emit

        home = pathlib.Path(os.environ["PREFECT_HOME"])
        out = {{}}
        # A task worker in its own process, with its own credential and the same storage.
        env = dict(os.environ, PREFECT_API_URL={auth_server.api_url!r}, PREFECT_API_AUTH_STRING={AUTH_STRING!r})
        worker = subprocess.Popen([sys.executable, __file__, "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
            out["other process"] = add.delay(41).result(timeout=120)
            out["worker pid"] = worker.pid
        finally:
            worker.terminate()
            worker.wait(30)
        # A task worker in this (logged-in) process.
        threading.Thread(target=serve, args=(add,), kwargs={{"timeout": 120}}, daemon=True).start()
        out["this process"] = add.delay(1).result(timeout=120)
        stored = []
        for path in sorted((home / "storage").rglob("*")):
            if path.is_file():
                text = path.read_text(errors="replace")
                decoded = base64.b64decode(json.loads(text)["result"]).decode("latin-1")
                stored.append({{"file": leaks(text, {AUTH_STRING!r}),
                               "pickled": leaks(decoded, {AUTH_STRING!r}),
                               "has context": "settings_context" in decoded}})
        out["stored"] = stored
        emit(out)
        """,
        timeout=300,
    )
    assert result["other process"] == {"sum": 42, "pid": result["worker pid"]}
    assert result["this process"]["sum"] == 2 and result["this process"]["pid"] != result["worker pid"]
    assert sum(s["has context"] for s in result["stored"]) == 2  # the two stored contexts (and results)
    assert [s for s in result["stored"] if s["file"] or s["pickled"]] == [], result["stored"]
