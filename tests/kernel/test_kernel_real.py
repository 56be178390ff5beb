"""A real Jupyter kernel (nbclient) against a real auth-protected Prefect server.

The server's auth string is ``nbuser:<canary>``, a fresh random value; the kernel
gets it only through its environment (``NB_TEST_AUTH``). The notebook loads the
extension, logs in through the login widget (the secret delivered the way a
front end delivers it) and through ``%prefect_login --auth-string-env``, shows
the status widget, runs a flow and, when ``prefect_nbauth.events._stream`` is there,
streams events into the event widget. Then the saved ``.ipynb`` (outputs AND
the widget-state metadata nbclient records from every comm message) and the
kernel's IPython history database are scanned for the canary: zero hits.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from prefect_nbauth.testing._server import PrefectServer, isolated_env
from prefect_nbauth.testing.canaries import leak_forms

pytestmark = pytest.mark.server



@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory):
    canary = "CANARY" + secrets.token_hex(12)
    server = PrefectServer(tmp_path_factory.mktemp("kernel-canary-server"), auth_string=f"nbuser:{canary}")
    server.start()
    try:
        yield server, canary
    finally:
        server.stop()


def _cells(api_url: str) -> list[str]:
    cells = [
        "%load_ext prefect_nbauth\n%load_ext prefect_nbauth",
        "%prefect_status --no-check",
        f"%prefect_login --url {api_url}",
        # Deliver the secret exactly as JupyterLab does when the user types it and clicks.
        "import os, time, ipywidgets\n"
        "from prefect_nbauth.widgets import AuthStatusWidget, EventStreamWidget, LoginWidget\n"
        "def newest(cls):\n"
        "    return [w for w in ipywidgets.widgets.widget._instances.values() if isinstance(w, cls)][-1]\n"
        "from prefect_nbauth.testing import wait_until as wait_for\n"
        "form = newest(LoginWidget)\n"
        "form._auth_string._handle_msg({'content': {'data': {'method': 'custom', 'content': {\n"
        "    'kind': 'secret', 'value': os.environ['NB_TEST_AUTH'], 'enter': False, 'reply_to': None}}},\n"
        "    'buffers': []})  # what the secret box's page sends (widgets/secret_input.js)\n"
        "form._button.click()\n"
        "assert form.wait(60)\n"
        "print('FORM:', form.message)",
        # The status widget shown before the login followed it by itself.
        "first_status = [w for w in ipywidgets.widgets.widget._instances.values()\n"
        "                if isinstance(w, AuthStatusWidget)][0]\n"
        "wait_for(lambda: first_status.status.mode.value == 'basic', 20)\n"
        "print('FIRST STATUS WIDGET:', first_status.status.mode.value, first_status.status.identity)",
        "%prefect_logout",
        f"%prefect_login --url {api_url} --auth-string-env NB_TEST_AUTH",
        "import prefect_nbauth\nst = prefect_nbauth.status()\nprint('STATUS:', st.mode.value, st.identity, st.server_version)",
        "%prefect_status",
        "from prefect import flow\n\n@flow(persist_result=False)\ndef hello(name: str) -> str:\n"
        "    return f'hello {name}'\n\nprint('FLOW:', hello('kernel'))",
        "%prefect_events --prefix nbauth.kernel. --max-rows 5",
        "from prefect.events import emit_event\n"
        "events_widget = newest(EventStreamWidget)\n"
        "state = lambda: str(getattr(events_widget.stream.state, 'value', events_widget.stream.state))\n"
        "wait_for(lambda: events_widget.stream is not None and state() == 'connected', 60)\n"
        "for i in range(8):\n"
        "    emit_event(event='nbauth.kernel.ping', resource={'prefect.resource.id': f'nbauth.kernel.{i}'},\n"
        "               payload={'i': i})\n"
        "wait_for(lambda: len(events_widget.rows) == 5 and events_widget.rows[0].resource == 'nbauth.kernel.7', 60)\n"
        "wait_for(lambda: 'nbauth.kernel.7' in events_widget._view.value, 10)\n"
        "print('EVENTS:', [r.resource for r in events_widget.rows])\n"
        "print(repr(events_widget))",
    ]
    return cells


@pytest.fixture(scope="module")
def executed(canary_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    server, canary = canary_server
    root = tmp_path_factory.mktemp("kernel-notebook")
    ipython_dir, prefect_home = root / "ipython", root / "prefect-home"
    ipython_dir.mkdir()
    prefect_home.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in _cells(server.api_url)]
    env = isolated_env(
        PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
        IPYTHONDIR=str(ipython_dir), NB_TEST_AUTH=server.auth_string or "",
    )
    # nbclient keeps history in memory by default; a user's kernel writes this file.
    history = ipython_dir / "profile_default" / "history.sqlite"
    client = NotebookClient(nb, timeout=180, kernel_name="python3", ipython_hist_file=str(history),
                            resources={"metadata": {"path": str(root)}})
    client.execute(env=env)  # raises CellExecutionError on any error output
    path = root / "executed.ipynb"
    nbformat.write(nb, str(path))
    return {"nb": nb, "path": path, "history": history, "canary": canary,
            "auth_string": server.auth_string, "api_url": server.api_url}


def _stdout(nb: Any, marker: str) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout" and marker in out.get("text", ""):
                return out["text"]
    raise AssertionError(f"no output with {marker!r}")


def test_login_status_and_flow_in_a_real_kernel(executed: dict[str, Any]) -> None:
    nb, api_url = executed["nb"], executed["api_url"]
    assert f"FORM: Logged in to {api_url} as nbuser" in _stdout(nb, "FORM:")
    assert "FIRST STATUS WIDGET: basic nbuser" in _stdout(nb, "FIRST STATUS WIDGET:")
    assert "Prefect auth: basic (via login())" in _stdout(nb, "Prefect auth: basic")
    assert "STATUS: basic nbuser 3." in _stdout(nb, "STATUS:")
    assert "FLOW: hello kernel" in _stdout(nb, "FLOW:")
    # The widgets were displayed as widgets, with a readable text form beside them.
    displays = [out for cell in nb.cells for out in cell.get("outputs", [])
                if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    texts = [d["data"]["text/plain"] for d in displays]
    assert any(t.startswith("Prefect auth: ") for t in texts)
    assert any(t.startswith("Prefect login form") for t in texts)
    assert not any(t.startswith(("VBox(", "LoginWidget(")) for t in texts)


def test_events_stream_into_the_widget_in_a_real_kernel(executed: dict[str, Any]) -> None:
    text = _stdout(executed["nb"], "EVENTS:")
    assert "EVENTS: ['nbauth.kernel.7', 'nbauth.kernel.6', 'nbauth.kernel.5', 'nbauth.kernel.4', " \
           "'nbauth.kernel.3']" in text
    # Connected, or in one of its periodic REST reconciliation passes at that instant.
    assert "Prefect events: connected" in text or "Prefect events: reconciling" in text, text


def test_no_secret_in_the_saved_notebook_or_the_kernel_history(executed: dict[str, Any]) -> None:
    text = Path(executed["path"]).read_text()
    state = executed["nb"].metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = {s["model_name"] for s in state.values()}
    assert {"AnyModel", "HTMLModel", "ButtonModel"} <= models  # the scan covers real widget state
    boxes = [s["state"] for s in state.values() if s["state"].get("_anywidget_id", "").endswith(".SecretInput")]
    assert boxes and all("value" not in box for box in boxes)  # the secret boxes have no value trait

    history = executed["history"]
    assert history.is_file()
    rows = sqlite3.connect(history).execute("SELECT source, source_raw FROM history").fetchall()
    assert len(rows) >= 8  # the kernel stored the cells it ran
    history_text = json.dumps(rows)
    raw_bytes = b"".join(p.read_bytes() for p in history.parent.glob("history.sqlite*"))
    for form in sorted(leak_forms(executed["auth_string"]) | leak_forms(executed["canary"])):
        assert form not in text, "the secret is in the saved notebook"
        assert form not in history_text and form.encode() not in raw_bytes, "the secret is in the history"
