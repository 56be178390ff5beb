"""The interactive demo as ``./scripts/demo`` runs it: ``binder/start`` with the UI behind
jupyter-server-proxy under Jupyter's base URL (as on Binder), and ``scripts/lab.py``
running JupyterLab. All real: a Prefect server, JupyterLab, kernels it starts (driven
over their connection files), a JupyterLab terminal (over its websocket).

* the output ends with ONE block of clickable URLs, and each answers 200 (binder/start's own
  block is for Binder, where nothing else prints one);
* ``status()`` in a kernel says the server requires an auth string (its
  ``/ui-settings`` lives under ``{base}prefect/``, not at the root: it used to say
  "no answer"), and so does the status widget; ``audit()`` (``%prefect_audit``) reads it
  at the same place and agrees (it used to say "no /ui-settings at its root");
* a flow's "View at ..." link is the proxied UI and answers 200 (it used to point at
  the API server's root, which answers 404);
* the auth string for the login form can be read in a JupyterLab terminal, and the
  server accepts it; no output of the demo holds it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from constants import USER_CACHE
from test_notebooks import BINDER, REPO, free_port, secret_forms

pytestmark = pytest.mark.server

READY = "==== prefect-nbauth demo is ready"


@dataclass
class LabDemo:
    proc: subprocess.Popen[str]
    caller_env: dict[str, str]
    jupyter: str  # http://127.0.0.1:PORT
    token: str
    output: str  # stdout up to and including the final block
    errors: Path  # binder/start's and lab.py's stderr
    urls: dict[str, str]  # label -> URL, from the final block
    runtime_dir: Path


def _wait_for_block(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # blocks until JupyterLab is up (lab.py prints then)
        if not line:
            break
        lines.append(line)
        if line.startswith("====") and any(READY in x for x in lines[:-1]):
            return "".join(lines)
    raise AssertionError(f"no final block in the demo's output:\n{''.join(lines)[-3000:]}")


@pytest.fixture(scope="module")
def lab_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDemo]:
    root = tmp_path_factory.mktemp("lab-demo")
    home = root / "home"
    home.mkdir()
    lab_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "JUPYTER"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=USER_CACHE, PREFECT_NBAUTH_DEMO_DIR=str(root / "demo"), PREFECT_NBAUTH_DEMO_PORT=str(free_port()),
               PREFECT_NBAUTH_DEMO_PYTHON=sys.executable, PREFECT_NBAUTH_DEMO_UI="1",
               PREFECT_NBAUTH_DEMO_JUPYTER_BASE_URL="/",  # what scripts/demo sets with the proxy
               PREFECT_NBAUTH_DEMO_SUMMARY="0",  # ... and always
               PREFECT_NBAUTH_DEMO_JUPYTER_URL=f"http://127.0.0.1:{lab_port}",
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), IPYTHONDIR=str(root / "ipython"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    errors = root / "stderr.log"
    with open(errors, "w") as err:
        proc = subprocess.Popen(
            ["bash", str(BINDER / "start"), sys.executable, "scripts/lab.py", str(lab_port),
             "notebooks/01_login.ipynb", f"--ServerApp.root_dir={REPO}"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True)
    try:
        output = _wait_for_block(proc, timeout=300)
        urls = dict(re.findall(r"^  ([A-Za-z ]+):\s+(http\S+)", output, re.MULTILINE))
        token = re.search(r"token=([0-9a-f]+)", urls["JupyterLab"]).group(1)  # type: ignore[union-attr]
        yield LabDemo(proc, env, f"http://127.0.0.1:{lab_port}", token, output, errors, urls, root / "runtime")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        subprocess.run(["bash", str(BINDER / "stop"), "--quiet-if-none"], env=env, capture_output=True, timeout=60)


def _client(demo: LabDemo) -> httpx.Client:
    return httpx.Client(timeout=60, trust_env=False, headers={"Authorization": f"token {demo.token}"})


def _run_in_kernel(demo: LabDemo, code: str, timeout: float = 240) -> str:
    """Start a kernel through JupyterLab (so it gets what the demo's kernels get), run
    code over the kernel's websocket as the browser does, return its stdout+stderr."""
    import uuid

    from websockets.sync.client import connect

    with _client(demo) as client:
        kernel = client.post(f"{demo.jupyter}/api/kernels", json={"name": "python3"}).json()
    try:
        ws_url = (f"ws://{demo.jupyter.split('://', 1)[1]}/api/kernels/{kernel['id']}/channels"
                  f"?token={demo.token}")
        msg_id = uuid.uuid4().hex
        request = {"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                              "msg_type": "execute_request", "version": "5.3"},
                   "parent_header": {}, "metadata": {}, "channel": "shell",
                   "content": {"code": code, "silent": False, "store_history": False,
                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}
        out: list[str] = []
        status = None
        idle = False
        with connect(ws_url, open_timeout=120, max_size=None) as ws:
            ws.send(json.dumps(request))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                assert left > 0, "".join(out)[-3000:]
                msg = json.loads(ws.recv(timeout=left))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append("\n".join(msg["content"]["traceback"]))
                elif kind == "execute_reply":
                    status = msg["content"]["status"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                # The reply (shell) and the idle status (iopub) are on different channels: either
                # may come first, and waiting for idle *after* the reply could wait forever.
                if idle and status is not None:
                    break
        text = "".join(out)
        assert status == "ok", text[-3000:]
        return text
    finally:
        with _client(demo) as client:
            client.delete(f"{demo.jupyter}/api/kernels/{kernel['id']}")


def test_the_demo_ends_with_one_block_of_clickable_urls(lab_demo: LabDemo) -> None:
    block = lab_demo.output[lab_demo.output.index(READY):]
    assert lab_demo.output.rstrip().endswith("=" * 20)
    assert set(lab_demo.urls) >= {"JupyterLab", "Prefect UI", "Prefect API"}
    assert lab_demo.urls["Prefect UI"] == f"{lab_demo.jupyter}/prefect/"
    assert "printenv PREFECT_NBAUTH_DEMO_AUTH_STRING" in block
    with httpx.Client(timeout=60, trust_env=False, follow_redirects=True) as browser:
        lab = browser.get(lab_demo.urls["JupyterLab"])  # the token logs the browser in (a cookie)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        ui = browser.get(lab_demo.urls["Prefect UI"], headers={"Accept": "text/html"})
        assert ui.status_code == 200 and "<!DOCTYPE html>" in ui.text
        assert browser.get(lab_demo.urls["Prefect API"] + "/health").status_code == 200
    # ONE block in all: binder/start's own "server ready" block (with its other way to stop)
    # is not printed under ./scripts/demo.
    errors = lab_demo.errors.read_text()
    assert "====" not in errors and "binder/stop" not in errors, errors[-2000:]
    assert [line[:4] for line in lab_demo.output.splitlines() if line.startswith("====")] == ["===="] * 2
    script = (REPO / "scripts" / "demo").read_text()
    assert "\nexport PREFECT_NBAUTH_DEMO_SUMMARY=0\n" in script


def test_status_behind_the_proxy_says_the_server_requires_an_auth_string(lab_demo: LabDemo) -> None:
    out = _run_in_kernel(lab_demo, """
import json, os
os.environ["PREFECT_API_URL"] = os.environ["PREFECT_NBAUTH_DEMO_API_URL"]  # as notebook 01 does
import prefect_nbauth
from prefect_nbauth.widgets import AuthStatusWidget
st = prefect_nbauth.status()
w = AuthStatusWidget(watch=False)
assert w.wait_idle(120)
print("RESULT" + json.dumps({"server_auth": st.server_auth, "warnings": list(st.warnings),
                             "widget": w._summary.value, "logout_disabled": w._logout_button.disabled}))
""")
    result = json.loads(out.split("RESULT", 1)[1].splitlines()[0])
    assert result["server_auth"] == "BASIC"
    assert any("requires an auth string" in w for w in result["warnings"]), result["warnings"]
    assert not any("rejects the credential in force" in w for w in result["warnings"])
    assert "it requires an auth string" in result["widget"] and "no answer" not in result["widget"]
    # Words for a person in the widget's warning: no Python call, no doubled period.
    assert "auth_string=" not in result["widget"] and "…." not in result["widget"]
    assert "Log in with the server&#x27;s auth string" in result["widget"]  # HTML-escaped
    assert result["logout_disabled"] is True


def test_the_audit_and_the_status_agree_behind_the_proxy(lab_demo: LabDemo) -> None:
    """%prefect_audit reads /ui-settings where status() does (under {base}prefect/, not at the root)."""
    out = _run_in_kernel(lab_demo, """
import json, os
os.environ["PREFECT_API_URL"] = os.environ["PREFECT_NBAUTH_DEMO_API_URL"]
import prefect_nbauth
from prefect_nbauth.auditing import audit
from prefect_nbauth.widgets import AuthStatusWidget
prefect_nbauth.login(os.environ["PREFECT_NBAUTH_DEMO_API_URL"],
                     auth_string=os.environ["PREFECT_NBAUTH_DEMO_AUTH_STRING"])
report = audit()
w = AuthStatusWidget(watch=False)
assert w.wait_idle(120)
finding = report.finding("advertised-auth")
print("RESULT" + json.dumps({"audit_auth": report.server_auth, "outcome": str(finding.outcome),
                             "detail": finding.detail, "status_auth": prefect_nbauth.status().server_auth,
                             "widget": w._summary.value}))
""")
    result = json.loads(out.split("RESULT", 1)[1].splitlines()[0])
    assert result["status_auth"] == "BASIC" and "auth BASIC" in result["widget"]
    assert result["audit_auth"] == "BASIC", result
    assert result["outcome"] == "pass" and "advertises an auth string (BASIC)" in result["detail"], result


def test_view_at_links_open_the_proxied_ui(lab_demo: LabDemo) -> None:
    out = _run_in_kernel(lab_demo, """
import os
os.environ["PREFECT_API_URL"] = os.environ["PREFECT_NBAUTH_DEMO_API_URL"]
import prefect_nbauth
from prefect import flow
prefect_nbauth.login(os.environ["PREFECT_NBAUTH_DEMO_API_URL"],
                     auth_string=os.environ["PREFECT_NBAUTH_DEMO_AUTH_STRING"])

import logging

class Keep(logging.Handler):  # what Prefect logs, whichever stream the front end shows it on
    def emit(self, record):
        print(record.getMessage())

logging.getLogger("prefect.flow_runs").addHandler(Keep())

@flow(name="ux-view-at")
def hello() -> int:
    return 1

hello()
""")
    links = re.findall(r"View at (\S+)", out)
    assert links, "no 'View at' in the output:\n" + out[-3000:]
    link = links[0]
    assert link.startswith(f"{lab_demo.jupyter}/prefect/runs/flow-run/"), link
    with httpx.Client(timeout=60, trust_env=False, follow_redirects=True) as browser:
        browser.get(lab_demo.urls["JupyterLab"])  # logged in to Jupyter, as the person is
        page = browser.get(link, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<!DOCTYPE html>" in page.text
    assert "Not Found" not in page.text


def test_the_auth_string_for_the_form_is_in_a_jupyterlab_terminal(lab_demo: LabDemo) -> None:
    from websockets.sync.client import connect

    with _client(lab_demo) as client:
        name = client.post(f"{lab_demo.jupyter}/api/terminals").json()["name"]
    try:
        ws_url = f"ws://127.0.0.1:{lab_demo.jupyter.rsplit(':', 1)[1]}/terminals/websocket/{name}?token={lab_demo.token}"
        seen = ""
        with connect(ws_url, open_timeout=60) as ws:
            ws.send(json.dumps(["stdin", "printenv PREFECT_NBAUTH_DEMO_AUTH_STRING\r"]))
            deadline = time.monotonic() + 60
            while not re.search(r"demo:[A-Za-z0-9_-]{24}", seen):
                assert time.monotonic() < deadline, seen[-500:]
                kind, *rest = json.loads(ws.recv(timeout=60))
                if kind == "stdout":
                    seen += rest[0]
        auth = re.search(r"demo:[A-Za-z0-9_-]{24}", seen).group(0)  # type: ignore[union-attr]
    finally:
        with _client(lab_demo) as client:
            client.delete(f"{lab_demo.jupyter}/api/terminals/{name}")
    api = lab_demo.urls["Prefect API"]
    basic = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    with httpx.Client(timeout=60, trust_env=False) as client:
        assert client.get(f"{api}/admin/version", headers=basic).status_code == 200  # it logs in
    # ... and no output of the demo, nor its state directory, holds it.
    for form in secret_forms(auth):
        assert form not in lab_demo.output and form not in lab_demo.errors.read_text()
        for path in (Path(lab_demo.caller_env["PREFECT_NBAUTH_DEMO_DIR"])).rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert form.encode() not in path.read_bytes(), f"{path} holds the auth string"
