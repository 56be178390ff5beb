"""No secret anywhere: every public path, driven with a canary, in a real kernel.

A dedicated real Prefect server requires ``nbuser:CANARY<random>``. A real
Jupyter kernel (nbclient), whose HOME, PREFECT_HOME and IPYTHONDIR are fresh
temporary folders and which gets the secret only through its environment, goes
through every public path: ``login``/``refresh``/``logout`` (plain, providers,
``persist=True``), every magic, every widget, every error path (wrong password
in the magic and the form, server down, a provider failing with the token in
its own message), ``status()``/``audit()`` reprs and JSON, events streamed
into the widget, a flow run, with logging at DEBUG on every logger, and
uncaught tracebacks, a secret typed on a magic's line while ``%logstart`` writes,
a flow whose ``ProcessPoolTaskRunner`` task starts a program, and ``persist=True``
with gateway headers (refused). Then, in every form the secret could take (raw, the
password alone, base64 for HTTP Basic), zero occurrences in:

- the saved ``.ipynb``: outputs and the widget-state metadata;
- IPython's history database;
- the log records of the kernel (all loggers, DEBUG);
- exception messages and tracebacks (they are outputs);
- every file written under HOME (the ``%logstart`` file included), except the profile
  ``persist=True`` wrote, which must be readable by its owner only;
- the ``PREFECT_*`` environment a task runner's worker hands to what its task starts;
- what Prefect's ``prefect config view`` prints for that profile;

and, for a plain Python process, its stdout and stderr.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from notebook_support import build_notebook, canary_protected_server, execute, history_bytes, text_outputs

from prefect_nbauth.testing._server import isolated_env
from prefect_nbauth.testing.canaries import leak_forms

pytestmark = pytest.mark.server

RAISES = {"tags": ["raises-exception"]}


@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory):
    with canary_protected_server(tmp_path_factory.mktemp("canary-server")) as (server, _):
        yield server


def _cells(url: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("""
import json, logging, os, sys, time
records = []
class Keep(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.DEBUG)
        self.sink = sink   # its own reference: still valid while the kernel shuts down
    def emit(self, record):
        self.sink.append(self.format(record))
keep = Keep(records)
keep.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
loud = logging.StreamHandler(sys.stderr)
loud.setLevel(logging.DEBUG)
root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(keep)
root.addHandler(loud)
for name in ("prefect", "prefect_nbauth", "websockets", "httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.DEBUG)
logging.getLogger("prefect").addHandler(keep)   # Prefect's loggers do not propagate
from prefect_nbauth.testing import wait_until as wait_for
""", {}),
        ("import prefect_nbauth as nb\nprint(repr(nb.status()))\nprint(nb.status())", {}),
        ('get_ipython().run_line_magic("logstart", os.path.join(os.environ["HOME"], "session.log") + " append")',
         {}),
        ("%load_ext prefect_nbauth", {}),
        (f"%prefect_login --url {url} --auth-string-env NB_CANARY_AUTH", {}),
        ("%prefect_status", {}),
        # Typed on the line (built here so that the cell itself holds no secret): refused,
        # and scrubbed from the history and the %logstart file, where IPython wrote it first.
        (f"""
typed = get_ipython().run_cell("%prefect_login --url {url} --auth-string " + os.environ["NB_CANARY_AUTH"],
                               store_history=True)
print("TYPED:", type(typed.error_in_exec).__name__)
""", {}),
        ("%prefect_status --text", {}),
        ("%prefect_refresh", {}),
        ("%prefect_audit", {}),
        (f"%prefect_login --url {url} --auth-string-env NB_WRONG_AUTH", RAISES),
        (f"%prefect_login --url {url} --auth-string-env NB_CANARY_AUTH --api-key-env NB_CANARY_AUTH", RAISES),
        # The login form, the secret delivered the way a front end delivers it.
        (f"""
import ipywidgets
from prefect_nbauth.widgets import LoginWidget, AuthStatusWidget, EventStreamWidget
form = LoginWidget(api_url={url!r})
display(form)
def type_and_click(value):
    form._auth_string._handle_msg({{'content': {{'data': {{'method': 'custom',  # as secret_input.js sends it
        'content': {{'kind': 'secret', 'value': value, 'enter': False, 'reply_to': None}}}}}}, 'buffers': []}})
    form._button.click()
    assert form.wait(60)
type_and_click(os.environ["NB_WRONG_AUTH"])
print("WRONG:", form.message)
type_and_click(os.environ["NB_CANARY_AUTH"])
print("RIGHT:", form.message)
status_widget = AuthStatusWidget()
display(status_widget)
print(repr(form), repr(status_widget))
""", {}),
        ("nb.login('http://127.0.0.1:9/api', auth_string=os.environ['NB_CANARY_AUTH'])", RAISES),
        ("""
def renew():
    raise RuntimeError("could not renew " + os.environ["NB_CANARY_AUTH"])
nb.login(nb.status(check_server=False).api_url, auth_string=renew)
""", RAISES),
        ("""
from prefect import flow
from prefect.events import emit_event
@flow(persist_result=False)
def canary_flow():
    return 1
print("FLOW:", canary_flow())
""", {}),
        ("""
import subprocess
from prefect import task
from prefect.task_runners import ProcessPoolTaskRunner
@task
def what_the_task_starts_inherits():
    env = subprocess.run(["env"], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in env.splitlines() if line.startswith("PREFECT_"))
@flow(task_runner=ProcessPoolTaskRunner(max_workers=1), persist_result=False)
def pool_flow():
    return what_the_task_starts_inherits.submit().result()
child_env = pool_flow()
child_hits = sum(1 for value in child_env.values() for form in os.environ["NB_CANARY_FORMS"].split(",") if form in value)
print("CHILD ENV:", json.dumps({"names": sorted(child_env), "hits": child_hits}))
""", {}),
        ("%prefect_events --prefix canary. --max-rows 3", {}),
        ("""
events = [w for w in ipywidgets.widgets.widget._instances.values() if isinstance(w, EventStreamWidget)][-1]
wait_for(lambda: events.stream is not None and str(getattr(events.stream.state, 'value', '')) == 'connected')
for i in range(5):
    emit_event(event="canary.ping", resource={"prefect.resource.id": f"canary.{i}"}, payload={"i": i})
wait_for(lambda: len(events.rows) == 3 and 'canary.4' in events._view.value)
print(repr(events))
""", {}),
        ("""
report = nb.audit()
display(report)
print(report)
print(nb.status().to_json())
print(repr(nb.status()))
""", {}),
        ("""
s = nb.login(nb.status(check_server=False).api_url, auth_string=nb.EnvToken("NB_CANARY_AUTH"), persist=True)
print(s)
print(nb.refresh())
""", {}),
        ("""
nb.login(nb.status(check_server=False).api_url, auth_string=nb.EnvToken("NB_CANARY_AUTH"),
         headers={"X-Gateway-Token": os.environ["NB_CANARY_AUTH"]}, persist=True)
""", RAISES),
        ("%prefect_logout", {}),
        ("""
canary_forms = os.environ["NB_CANARY_FORMS"].split(",")
hits = sum(1 for r in records for f in canary_forms if f in r)
for logger in (root, logging.getLogger("prefect")):   # quiet again before the kernel shuts down
    logger.removeHandler(keep)
root.removeHandler(loud)
print("LOG RECORDS:", len(records), "HITS:", hits)
""", {}),
    ]


@pytest.fixture(scope="module")
def run(canary_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("canary-home")
    (home / ".ipython").mkdir()
    (home / ".prefect").mkdir()
    auth = canary_server.auth_string
    nb = build_notebook((textwrap.dedent(source).strip(), metadata)
                        for source, metadata in _cells(canary_server.api_url))
    env = isolated_env(
        HOME=str(home), PREFECT_HOME=str(home / ".prefect"), IPYTHONDIR=str(home / ".ipython"),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", PREFECT_API_URL=canary_server.api_url,
        NB_CANARY_AUTH=auth, NB_WRONG_AUTH=auth + "-wrong", NB_CANARY_FORMS=",".join(sorted(leak_forms(auth))),
    )
    saved = home / "canary.ipynb"
    history = execute(nb, saved, env, timeout=240)
    return {"nb": nb, "saved": saved, "home": home, "history": history, "auth": auth}


def test_every_path_ran(run: dict[str, Any]) -> None:
    text = text_outputs(run["nb"])
    for expected in ("Prefect auth: none", "Login failed (AuthenticationError)", "UsageError",
                     "WRONG: ", "RIGHT: Logged in", "ServerUnreachableError", "CredentialProviderError",
                     "could not renew", "FLOW: 1", "Prefect events: ", "canary.4", "PASS",
                     "saved to", "LOG RECORDS:", "TYPED: UsageError", "Refused: do not type a secret",
                     "CHILD ENV:", "persist=True cannot save gateway headers"):
        assert expected in text, expected
    records = int(text.split("LOG RECORDS: ")[1].split()[0])
    assert records > 100  # DEBUG logging really ran through all of it
    state = run["nb"].metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert {s["model_name"] for s in state.values()} >= {"AnyModel", "HTMLModel", "ButtonModel"}  # AnyModel: the secret boxes


def test_no_secret_in_notebook_history_logs_or_tracebacks(run: dict[str, Any]) -> None:
    saved = Path(run["saved"]).read_text()
    history = history_bytes(run["history"])
    rows = sqlite3.connect(run["history"]).execute("SELECT source_raw FROM history").fetchall()
    assert len(rows) >= 15
    text = text_outputs(run["nb"])
    assert "HITS: 0" in text
    for form in sorted(leak_forms(run["auth"])):
        assert form not in saved, "in the saved notebook (outputs, tracebacks or widget state)"
        assert form.encode() not in history, "in IPython's history database"


def test_no_secret_in_files_under_home_except_the_owner_only_profile(run: dict[str, Any]) -> None:
    home: Path = run["home"]
    profile = home / ".prefect" / "profiles.toml"
    assert profile.is_file() and run["auth"] in profile.read_text()  # persist=True wrote it...
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600  # ...for its owner only
    leaks = []
    for path in home.rglob("*"):
        if not path.is_file() or path == profile or path == run["saved"]:
            continue
        data = path.read_bytes()
        if any(form.encode() in data for form in sorted(leak_forms(run["auth"]))):
            leaks.append(str(path.relative_to(home)))
    assert leaks == []


def test_a_plain_process_prints_no_secret(canary_server, tmp_path: Path) -> None:
    auth = canary_server.auth_string
    code = textwrap.dedent("""
        import logging, os, sys, traceback
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        import prefect_nbauth as nb
        url = os.environ["URL"]
        for kwargs in (dict(auth_string=os.environ["AUTH"] + "-wrong"),
                       dict(auth_string='"' + os.environ["AUTH"] + '"'),
                       dict(api_key=os.environ["AUTH"])):
            try:
                nb.login(url, **kwargs)
            except nb.PrefectAuthError:
                traceback.print_exc()
        print(nb.login(url, auth_string=os.environ["AUTH"]))
        print(repr(nb.status()), nb.status().to_json())
        print(nb.audit())
        from prefect_nbauth.testing.probes import read_flows_sync, events_roundtrip
        print(read_flows_sync(), events_roundtrip())
        nb.logout()
    """)
    env = isolated_env(PREFECT_HOME=str(tmp_path), URL=canary_server.api_url, AUTH=auth,
                       PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "200 received" in done.stdout
    assert "AuthenticationError" in done.stderr and "ConfigurationError" in done.stderr
    for form in sorted(leak_forms(auth)):
        assert form not in done.stdout and form not in done.stderr


def test_no_secret_in_what_a_task_runner_worker_hands_to_its_children(run: dict[str, Any]) -> None:
    line = next(line for line in text_outputs(run["nb"]).splitlines() if line.startswith("CHILD ENV: "))
    child = json.loads(line[len("CHILD ENV: "):])
    assert "PREFECT_API_URL" in child["names"]  # Prefect's settings reached the task's children...
    assert "PREFECT_API_AUTH_STRING" not in child["names"] and child["hits"] == 0  # ...the secret did not


def test_the_logstart_file_holds_the_typed_line_scrubbed(run: dict[str, Any]) -> None:
    log = (Path(run["home"]) / "session.log").read_text()
    assert "--auth-string ****" in log  # IPython logged the line; the secret was scrubbed from it
    for form in sorted(leak_forms(run["auth"])):
        assert form not in log


def test_prefect_config_view_shows_no_secret(run: dict[str, Any]) -> None:
    home: Path = run["home"]
    env = isolated_env(HOME=str(home), PREFECT_HOME=str(home / ".prefect"),
                       PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false")
    shown = subprocess.run([sys.executable, "-m", "prefect", "config", "view"], env=env, cwd=home,
                           capture_output=True, text=True, timeout=120, check=True).stdout
    assert "PREFECT_API_AUTH_STRING='********' (from profile)" in shown  # persist=True saved it
    for form in sorted(leak_forms(run["auth"])):
        assert form not in shown
