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
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from notebook_support import assert_no_trace, canary_protected_server, run_notebook, stdout_with

from prefect_nbauth.testing.canaries import forms_of

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory):
    with canary_protected_server(tmp_path_factory.mktemp("kernel-canary-server")) as (server, canary):
        yield server, canary


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
        "from prefect_nbauth.testing.widgets import type_secret\n"
        "type_secret(form.panels['auth-string'].parts['secret'], os.environ['NB_TEST_AUTH'])"
        "  # what the page sends: sealed\n"
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
    server, canary = canary_server
    root = tmp_path_factory.mktemp("kernel-notebook")
    nb, path, history = run_notebook(_cells(server.api_url), root, timeout=180,
                                     NB_TEST_AUTH=server.auth_string or "")
    return {"nb": nb, "path": path, "history": history, "canary": canary,
            "auth_string": server.auth_string, "api_url": server.api_url}


def test_login_status_and_flow_in_a_real_kernel(executed: dict[str, Any]) -> None:
    nb, api_url = executed["nb"], executed["api_url"]
    assert f"FORM: Logged in to {api_url} as nbuser" in stdout_with(nb, "FORM:")
    assert "FIRST STATUS WIDGET: basic nbuser" in stdout_with(nb, "FIRST STATUS WIDGET:")
    assert "Prefect auth: basic (logged in with prefect_nbauth)" in stdout_with(nb, "Prefect auth: basic")
    assert "STATUS: basic nbuser 3." in stdout_with(nb, "STATUS:")
    assert "FLOW: hello kernel" in stdout_with(nb, "FLOW:")
    # The widgets were displayed as widgets, with a readable text form beside them.
    displays = [out for cell in nb.cells for out in cell.get("outputs", [])
                if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    texts = [d["data"]["text/plain"] for d in displays]
    assert any(t.startswith("Prefect auth: ") for t in texts)
    assert any(t.startswith("Prefect login form") for t in texts)
    assert not any(t.startswith(("VBox(", "LoginWidget(")) for t in texts)


def test_events_stream_into_the_widget_in_a_real_kernel(executed: dict[str, Any]) -> None:
    text = stdout_with(executed["nb"], "EVENTS:")
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
    forms = forms_of(executed["auth_string"], executed["canary"])
    for form in forms:
        assert form not in history_text, "the secret is in the history"
    assert_no_trace(forms, saved=text, history=history)


@pytest.mark.parametrize("xmode", ["Context", "Verbose"])
def test_an_uncaught_error_shows_the_persons_call_and_no_frame_of_ours(tmp_path: Path, xmode: str) -> None:
    """Issue 25 item 10: an uncaught error in a real kernel reads as what failed and the
    person's own call last: no frame of ours (IPython always shows the innermost frame,
    which is the boundary's: ``PrefectAuthError._render_traceback_`` leaves it out), no
    frame below it, no note with frame names, also with ``%xmode Verbose`` (secrets in
    tracebacks: ``test_containment_kernel.py``)."""
    import re

    raising = {"tags": ["raises-exception"]}
    nb, _, _ = run_notebook([
        f"%xmode {xmode}\nimport prefect_nbauth as nb",
        ("nb.login('http://127.0.0.1:1/api', auth_string='nbuser:pw')  # the person's call", raising),
    ], tmp_path, timeout=120)
    error = next(out for out in nb.cells[1].outputs if out.get("output_type") == "error")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert error["ename"] == "ServerUnreachableError"
    assert "# the person's call" in shown and "Cell In[2], line 1" in shown, shown
    assert "prefect_nbauth/" not in shown and "httpx" not in shown and "httpcore" not in shown, shown
    assert "traceback cut" not in shown
    assert shown.rstrip().endswith("check the host and port."), shown  # the message, last
