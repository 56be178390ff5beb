"""Secrets contained by construction (issue 10), in a real kernel against a real server.

A real Prefect server requires an auth string with ``"``, ``'`` and ``\\`` in it,
over 46 characters. In front of it (for the rotation part) sits the loopback
OAuth2-gateway emulation ``RotatingGateway`` issuing 6-second JWTs in an
``X-Gateway-Token`` header (an emulation: no real gateway is reachable here). A real
Jupyter kernel (nbclient), whose HOME/PREFECT_HOME/IPYTHONDIR are fresh folders and
which gets the secrets only through its environment, runs with ``%xmode Verbose``
(tracebacks show every frame's local variables) and DEBUG logging on every logger, and:

- fails to log in: wrong password, server down, non-ASCII, provider raising (after a
  login, with the secret in its own message), ``headers={'Authorization': 'Bearer ' + …}``,
  ``%prefect_login --auth-string-env VAR --timeout nan``, ``status(timeout=-1)``;
  after each, a post-mortem debugger walks up the frames printing ``args`` (what
  ``%debug`` → ``up`` → ``args`` shows; ``%debug`` itself needs a terminal's stdin),
  and the exception is rendered with ``TracebackException(capture_locals=True)``
  and rich's ``show_locals``;
- logs in through the gateway with an OAuth2 provider, streams events with
  ``stream_events`` while ``emit_event`` publishes and the credential is refreshed
  30 times (plus the background rotation of 6 s tokens; shorter ones expire before a probe answers on a loaded machine).

Then every form of each secret (raw, password alone, base64 padded and unpadded,
percent-encoded, JSON-escaped; case-insensitively) must be absent from: the saved
notebook (outputs, tracebacks, widget state), IPython's history database, the
kernel's log records, and every file under HOME.

``NBAUTH_TEST_CONTAINMENT_OFF=1`` switches containment off in the kernel (see
``test_containment.py``); the test then fails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from notebook_support import build_notebook, execute, history_bytes, text_outputs

from prefect_nbauth.testing._gateway import RotatingGateway
from prefect_nbauth.testing._server import PrefectServer, free_port, isolated_env
from prefect_nbauth.testing.canaries import leak_forms, leaks, make_canary

pytestmark = pytest.mark.server

RAISES = {"tags": ["raises-exception"]}

SETUP = r"""
import io, json, logging, os, pdb, sys, time, traceback
records = []
class Keep(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.DEBUG)
        self.sink = sink
    def emit(self, record):
        self.sink.append(self.format(record))
keep = Keep(records)
keep.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(keep)
for name in ("prefect", "prefect_nbauth", "websockets", "httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.DEBUG)
logging.getLogger("prefect").addHandler(keep)   # Prefect's loggers do not propagate
import prefect_nbauth as nb
if os.environ.get("NBAUTH_TEST_CONTAINMENT_OFF") == "1":
    from prefect_nbauth import _redaction
    _redaction.CONTAIN = False

def wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)

def postmortem():
    '''What %debug (up, args), capture_locals and rich show_locals would show.'''
    from rich.console import Console
    from rich.traceback import Traceback
    exc, tb = sys.last_value, sys.last_traceback
    out = io.StringIO()
    p = pdb.Pdb(stdin=io.StringIO("args\n" + "up\nargs\np locals()\n" * 10 + "q\n"), stdout=out)
    p.use_rawinput = False
    p.reset()
    p.interaction(None, tb)
    text = out.getvalue()
    text += "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    console = Console(file=io.StringIO(), width=300, color_system=None)
    console.print(Traceback.from_exception(type(exc), exc, tb, show_locals=True))
    text += console.file.getvalue()
    print("POSTMORTEM", type(exc).__name__, len(text))
    print(text)
"""


def _cells(url: str, gw: RotatingGateway) -> list[tuple[str, dict[str, Any]]]:
    down = f"http://127.0.0.1:{free_port()}/api"
    pm = ("postmortem()", {})
    return [
        (SETUP, {}),
        ("%load_ext prefect_nbauth\n%xmode Verbose", {}),
        (f"nb.login({url!r}, auth_string=os.environ['NB_WRONG'])", RAISES), pm,
        (f"nb.login({down!r}, auth_string=os.environ['NB_AUTH'], timeout=5)", RAISES), pm,
        (f"nb.login({url!r}, auth_string=os.environ['NB_AUTH'] + 'é')", RAISES), pm,
        (f"nb.login({url!r}, headers={{'Authorization': 'Bearer ' + os.environ['NB_AUTH']}})", RAISES), pm,
        (f"%prefect_login --url {url} --auth-string-env NB_AUTH --timeout nan", RAISES),
        (f"%prefect_login --url {url} --auth-string-env NB_AUTH", {}),
        ("nb.status(timeout=-1)", RAISES), pm,
        (f"""
def renew():
    raise RuntimeError("vault refused " + os.environ["NB_AUTH"])
nb.login({url!r}, auth_string=renew)
""", RAISES), pm,
        (f"""
from prefect.events import emit_event
status = nb.login({gw.api_url!r}, auth_string=os.environ['NB_AUTH'], headers={{
    'X-Gateway-Token': nb.OAuth2ClientCredentials({gw.token_url!r}, {gw.client_id!r}, os.environ['NB_GW_SECRET'])}})
print(status)
got = []
handle = nb.stream_events(prefix='contain.').run_in_background(got.append)
wait_for(lambda: getattr(handle.stream.state, 'value', '') == 'connected')
for i in range(30):
    emit_event(event='contain.ping', resource={{'prefect.resource.id': f'contain.{{i}}'}})
    nb.refresh()
wait_for(lambda: len({{e.resource.id for e in got}}) >= 30)
print("STREAMED", len({{e.resource.id for e in got}}), handle.stream.stats)
handle.stop()
print(nb.status())
print(repr(nb.status()))
""", {}),
        ("""
forms = json.loads(os.environ["NB_FORMS"])
lowered = [r.lower() for r in records]
hits = [f for f in forms if any(f.lower() in r for r in lowered)]
for logger in (root, logging.getLogger("prefect")):
    logger.removeHandler(keep)
for name in ("", "prefect", "websockets", "httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.WARNING)
print("LOG RECORDS:", len(records), "HITS:", len(hits))
""", {}),
    ]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    auth = make_canary()
    wrong = make_canary()
    server = PrefectServer(tmp_path_factory.mktemp("containment-server"), auth_string=auth)
    server.start()
    gw = RotatingGateway(server.api_url, upstream_auth_string=auth, header="X-Gateway-Token", token_lifetime=6.0)
    gw.start()
    try:
        home = tmp_path_factory.mktemp("containment-home")
        (home / ".ipython").mkdir()
        (home / ".prefect").mkdir()
        nb = build_notebook((textwrap.dedent(source).strip(), metadata)
                            for source, metadata in _cells(server.api_url, gw))
        all_forms = sorted(leak_forms(auth) | leak_forms(wrong) | leak_forms(gw.client_secret))
        env = isolated_env(
            HOME=str(home), PREFECT_HOME=str(home / ".prefect"), IPYTHONDIR=str(home / ".ipython"),
            PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false", NB_AUTH=auth, NB_WRONG=wrong,
            NB_GW_SECRET=gw.client_secret, NB_FORMS=json.dumps(all_forms),
        )
        if os.environ.get("NBAUTH_TEST_CONTAINMENT_OFF"):
            env["NBAUTH_TEST_CONTAINMENT_OFF"] = os.environ["NBAUTH_TEST_CONTAINMENT_OFF"]
        saved = home / "containment.ipynb"
        history = execute(nb, saved, env, timeout=300)
        yield {"nb": nb, "saved": saved, "home": home, "history": history,
               "secrets": [auth, wrong, gw.client_secret], "issued": gw.issued}
    finally:
        gw.stop()
        server.stop()


def test_every_case_ran(executed: dict[str, Any]) -> None:
    text = text_outputs(executed["nb"])
    for expected in ("AuthenticationError", "ServerUnreachableError", "non-ASCII", "UsageError",
                     "finite number", "Prefect auth: basic", "CredentialProviderError", "vault refused",
                     "timeout must be", "STREAMED", "LOG RECORDS:"):
        assert expected in text, expected
    import re

    walked = re.findall(r"^POSTMORTEM (\w+) \d+$", text, re.M)  # one per post-mortem cell
    assert sorted(walked) == sorted(["AuthenticationError", "ServerUnreachableError", "ConfigurationError",
                                     "AuthenticationError", "ConfigurationError", "CredentialProviderError"])
    assert "Exception reporting mode: Verbose" in text
    records = int(text.split("LOG RECORDS: ")[1].split()[0])
    assert records > 200  # DEBUG logging really ran through it all
    assert executed["issued"] >= 31  # the gateway issued a token for each of 30 refreshes, and more


def test_no_secret_in_outputs_notebook_history_logs_or_files(executed: dict[str, Any]) -> None:
    text = text_outputs(executed["nb"])
    assert "HITS: 0" in text, text.split("LOG RECORDS:")[1][:200]
    assert leaks(text, *executed["secrets"]) == [], "in the outputs (tracebacks with locals, debugger)"
    assert leaks(Path(executed["saved"]).read_text(), *executed["secrets"]) == [], "in the saved notebook"
    rows = sqlite3.connect(executed["history"]).execute("SELECT source, source_raw FROM history").fetchall()
    assert len(rows) >= 10
    history = history_bytes(executed["history"]).decode("latin-1")
    assert leaks(history, *executed["secrets"]) == [], "in IPython's history database"
    found = []
    for path in Path(executed["home"]).rglob("*"):
        if path.is_file() and leaks(path.read_bytes().decode("latin-1"), *executed["secrets"]):
            found.append(str(path.relative_to(executed["home"])))
    assert found == []
