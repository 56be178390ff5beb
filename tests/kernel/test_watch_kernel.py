"""%prefect_watch and %prefect_logs in a real Jupyter kernel (nbclient), real server, flows
running in separate processes.

The server has Prefect's logs websocket on and the auth string ``nbuser:<canary>``; the
kernel gets it only through its environment. Two flow runs are created Pending; the
notebook watches each with ``%prefect_watch`` and starts it in another interpreter (as a
worker would): one logs 3,000 lines and completes, one fails. Each flow also logs the
auth string: the widgets show it masked, and neither the saved notebook (outputs and
widget state) nor the kernel's history holds it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.canaries import leak_forms
from prefect_nbauth.testing.logs import FLOWS, LOGS_ON, create_run

# A flow run in a fresh interpreter takes 10-60 s on a busy 2-core machine: more than the
# suite-wide 300 s for a fixture that starts a server, a kernel and two of them.
pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

LINES = 3000


@pytest.fixture(scope="module")
def watch_server(tmp_path_factory: pytest.TempPathFactory):
    canary = "CANARY" + secrets.token_hex(12)
    server = PrefectServer(tmp_path_factory.mktemp("watch-server"), auth_string=f"nbuser:{canary}",
                           extra_env=LOGS_ON)
    server.start()
    try:
        yield server, canary
    finally:
        server.stop()


def _cells(api_url: str, ok_run: str, failing_run: str) -> list[str]:
    start_flow = (
        "import os, subprocess, sys, tempfile, time, ipywidgets\n"
        "from prefect_nbauth.widgets import FlowRunWidget, LogStreamWidget\n"
        "def newest(cls):\n"
        "    return [w for w in ipywidgets.widgets.widget._instances.values() if isinstance(w, cls)][-1]\n"
        "def start_flow(run_id, lines, fail):\n"
        "    env = {k: v for k, v in os.environ.items() if not k.startswith('PREFECT_')}\n"
        "    env.update(PREFECT_API_URL=os.environ['NB_API_URL'], PREFECT_API_AUTH_STRING=os.environ['NB_TEST_AUTH'],\n"
        "               PREFECT__FLOW_RUN_ID=run_id, PREFECT_HOME=tempfile.mkdtemp(), LOG_LINES=str(lines),\n"
        "               LOG_FAIL='1' if fail else '0', LOG_CANARY=os.environ['NB_TEST_AUTH'])\n"
        "    return subprocess.Popen([sys.executable, '-m', 'prefect.flow_engine', os.environ['NB_FLOWS'] + ':burst'],\n"
        "                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    )
    report = (
        "w = newest(FlowRunWidget)\n"
        "assert w.wait(240), 'the watch did not end'\n"
        "process.wait(60)\n"
        "names = [c.name for c in w.watch.timeline]\n"
        "lines = [log.message for log in w.watch.logs if log.message.startswith('line ')]\n"
        "print('{tag}:', w.watch.state_name, names, w.watch.log_count, len(lines), len(set(lines)),\n"
        "      lines == sorted(lines), w.done)\n"
        "print(repr(w))\n"
        "print('STREAMS:', w.watch.log_stream.state, w.watch.log_stream.stats, w.watch.log_stream.error)"
    )
    return [
        "%load_ext prefect_nbauth",
        f"%prefect_login --url {api_url} --auth-string-env NB_TEST_AUTH",
        start_flow,
        f"%prefect_watch {ok_run}",
        f"process = start_flow('{ok_run}', {LINES}, False)",
        report.replace("{tag}", "WATCH OK"),
        f"%prefect_logs --flow-run {ok_run} --level WARNING",
        "logs_widget = newest(LogStreamWidget)\n"
        "deadline = time.monotonic() + 60\n"
        "while not any('credential is' in line[2] for line in logs_widget.lines()):\n"
        "    assert time.monotonic() < deadline\n"
        "    time.sleep(0.05)\n"
        "print('LOGS:', logs_widget.lines()[-1][1], logs_widget.lines()[-1][2])\n"
        "logs_widget.stop()",
        f"import prefect_nbauth\nfailing = prefect_nbauth.notebook.widgets.watch('{failing_run}')\nfailing",
        f"process = start_flow('{failing_run}', 5, True)",
        report.replace("{tag}", "WATCH FAILED"),
    ]


@pytest.fixture(scope="module")
def executed(watch_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    server, canary = watch_server
    ok_run = create_run(server.api_url, server.auth_headers())
    failing_run = create_run(server.api_url, server.auth_headers())
    root = tmp_path_factory.mktemp("watch-notebook")
    ipython_dir, prefect_home = root / "ipython", root / "prefect-home"
    ipython_dir.mkdir()
    prefect_home.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in _cells(server.api_url, ok_run, failing_run)]
    env = isolated_env(
        PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
        IPYTHONDIR=str(ipython_dir), NB_TEST_AUTH=server.auth_string or "", NB_API_URL=server.api_url,
        NB_FLOWS=str(FLOWS),
    )
    history = ipython_dir / "profile_default" / "history.sqlite"
    client = NotebookClient(nb, timeout=300, kernel_name="python3", ipython_hist_file=str(history),
                            resources={"metadata": {"path": str(root)}})
    client.execute(env=env)
    path = root / "executed.ipynb"
    nbformat.write(nb, str(path))
    return {"nb": nb, "path": path, "history": history, "canary": canary, "auth_string": server.auth_string}


def _stdout(nb: Any, marker: str) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout" and marker in out.get("text", ""):
                return out["text"]
    raise AssertionError(f"no output with {marker!r}")


def test_watch_follows_a_run_from_pending_to_completed_with_all_its_logs(executed) -> None:
    text = _stdout(executed["nb"], "WATCH OK:")
    # state, timeline, all 3,000 lines once and in order, the watch ended by itself
    assert "WATCH OK: Completed ['Pending', 'Running', 'Completed'] " in text, text
    assert f" {LINES} {LINES} True True" in text, text
    assert "Flow run " in text and ": Completed (final)" in text and "logs: " in text


def test_watch_follows_a_failing_run_to_failed(executed) -> None:
    text = _stdout(executed["nb"], "WATCH FAILED:")
    assert "WATCH FAILED: Failed ['Pending', 'Running', 'Failed'] " in text, text
    assert "this flow fails on purpose" in text


def test_logs_magic_and_no_secret_anywhere(executed) -> None:
    text = _stdout(executed["nb"], "LOGS:")
    assert "LOGS: WARNING the credential is ****" in text, text
    saved = Path(executed["path"]).read_text()
    assert "application/vnd.jupyter.widget-view+json" in saved
    raw = b"".join(p.read_bytes() for p in executed["history"].parent.glob("history.sqlite*"))
    for form in sorted(leak_forms(executed["auth_string"]) | leak_forms(executed["canary"])):
        assert form not in saved, "the secret is in the saved notebook"
        assert form.encode() not in raw, "the secret is in the kernel's history"
