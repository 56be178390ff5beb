"""The IPython magics in a real IPython shell (``InteractiveShell``), in a fresh interpreter each.

Each scenario loads the extension into a shell whose history goes to a real SQLite
file, runs magic lines the way a user would (``run_cell``), and reports what each
printed or raised. Bad input must raise ``UsageError`` with one line; a secret
typed on a line must be refused and scrubbed from that history file.
"""

from __future__ import annotations

import base64
import json

import pytest
from constants import AUTH_STRING
from test_widgets import CLOUD_BOT_KEY, CLOUD_USER_KEY, cloud  # noqa: F401  (module fixture)

PASSWORD = AUTH_STRING.split(":", 1)[1]

SHELL = """
import contextlib, io, json, os, sqlite3, sys
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
from prefect_nbauth.testing.probes import *

HISTORY = os.path.abspath("history.sqlite")
config = Config()
config.HistoryManager.hist_file = HISTORY
ip = InteractiveShell.instance(config=config)

def run(line):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = ip.run_cell(line, store_history=True)
    error = result.error_in_exec or result.error_before_exec
    return {"error": type(error).__name__ if error else None,
            "message": str(error) if error else None,
            "out": out.getvalue(), "err": err.getvalue()}

def history_text():
    ip.history_manager.writeout_cache()
    rows = sqlite3.connect(HISTORY).execute("SELECT source, source_raw FROM history").fetchall()
    return json.dumps(rows) + json.dumps([v for k, v in ip.user_ns.items()
                                          if k.startswith("_i") and isinstance(v, str)])

ip.run_line_magic("load_ext", "prefect_nbauth")
ip.run_line_magic("load_ext", "prefect_nbauth")  # twice is harmless
"""


def test_bad_input_gives_one_clear_usage_error_line(run_scenario):
    cases = {
        "%prefect_login --bogus": "unrecognized arguments: --bogus",
        "%prefect_login --auth-string-env SET_VAR --api-key-env SET_VAR": "not both",
        # The name is not repeated: it may be a secret typed where a variable name belongs.
        "%prefect_login --auth-string-env NOT_SET_ANYWHERE": "no environment variable of the name given",
        "%prefect_login --auth-string-env EMPTY_VAR": "EMPTY_VAR is empty",
        "%prefect_login --url ftp://example.com/api --auth-string-env SET_VAR": "is not an http(s) URL",
        "%prefect_login --url http://127.0.0.1:4200/api http://127.0.0.1:4201/api": "not both",
        "%prefect_login --workspace acme/prod --auth-string-env SET_VAR": "--workspace is for Prefect Cloud",
        "%prefect_login --from-env --url http://127.0.0.1:4200/api": "do not combine",
        "%prefect_login --from-env": "found no credential",
        "%prefect_login --no-widget --auth-string-env SET_VAR": "nothing is asked",
        "%prefect_login --header-env cf-access-token": "write NAME=VAR",
        "%prefect_login --timeout 0 --auth-string-env SET_VAR": "more than zero",
        "%prefect_login --timeout nan --auth-string-env SET_VAR": "finite number",
        "%prefect_login --url http://127.0.0.1:1/api --auth-string-env SET_VAR":
            "Login failed (ServerUnreachableError)",
        "%prefect_login --api-key-env SET_VAR --url http://127.0.0.1:1/api": "Login failed (ConfigurationError)",
        "%prefect_refresh": "Nothing to refresh",
        "%prefect_refresh now": "unrecognized arguments",
        "%prefect_status --bogus": "unrecognized arguments",
        "%prefect_logout --everything": "unrecognized arguments",
        "%prefect_events --max-rows 5000": "from 1 to 1000",
        "%prefect_events --max-rows many": "invalid int value",
        "%prefect_events --since yesterday": "a duration ago",
        "%prefect_events --since 10m": "needs a Jupyter front end",  # a terminal shell
        "%prefect_login --url 'http://unbalanced": "cannot parse the line",
        # The SSO device sign-in: both halves, a URL, nothing else; an unreachable issuer said plainly.
        "%prefect_login --url http://127.0.0.1:1/api --sso http://127.0.0.1:1": "Give both --sso ISSUER",
        "%prefect_login --sso http://127.0.0.1:1 --client-id prefect": "needs the Prefect API URL",
        "%prefect_login --url http://127.0.0.1:1/api --sso http://127.0.0.1:1 --client-id prefect "
        "--auth-string-env SET_VAR": "do not combine it with --auth-string-env",
        "%prefect_login --url http://127.0.0.1:1/api --sso login.example.com --client-id prefect":
            "The issuer must be an http(s) URL",
        "%prefect_login --url http://127.0.0.1:1/api --sso http://127.0.0.1:1 --client-id prefect --persist":
            "secret store",
        "%prefect_login --url http://127.0.0.1:1/api --sso http://127.0.0.1:1 --client-id prefect":
            "Login failed (IssuerUnreachableError): Could not connect to the identity provider",
    }
    result = run_scenario(SHELL + f"""
os.environ["SET_VAR"] = "someone:something"
os.environ["EMPTY_VAR"] = ""
emit({{line: run(line) for line in {list(cases)!r}}})
""")
    for line, expected in cases.items():
        got = result[line]
        assert got["error"] == "UsageError", (line, got)
        assert expected in got["message"], (line, got["message"])
        assert "\n" not in got["message"], (line, got["message"])
        assert "Traceback" not in got["err"], (line, got["err"])
        assert "something" not in got["message"]


def test_a_secret_typed_on_the_line_is_refused_and_scrubbed_from_history(run_scenario):
    canary = "CANARYline0123456789"
    lines = [
        f"%prefect_login --auth-string admin:{canary}",
        f"%prefect_login --auth-string=admin:{canary}",
        f"%prefect_login --api-key pnu_{canary}",
        f"%prefect_login admin:{canary}",
        f"%prefect_login http://127.0.0.1:4200/api pnu_{canary}",
        f"%prefect_login --url http://admin:{canary}@127.0.0.1:4200/api",
        f"%prefect_login --auth-string-env admin:{canary}",
        f"%prefect_login --header-env Authorization=Bearer {canary}",
        f"%prefect_login --password {canary}",
    ]
    result = run_scenario(SHELL + f"""
results = [run(line) for line in {lines!r}]
# $VAR and {{x}} reach the magic literally (@no_var_expand): never the variable's value.
ip.user_ns["MY_SECRET"] = "pnu_{canary}expanded"
results.append(run("%prefect_login --api-key-env $MY_SECRET"))
results.append(run("%prefect_login --api-key-env {{MY_SECRET}}"))
help_out = run("%prefect_login?")["out"]
emit({{"results": results, "history": history_text(), "help": help_out,
       "rows": sqlite3.connect(HISTORY).execute("SELECT count(*) FROM history").fetchone()[0]}})
""")
    *refused, by_name, braces = result["results"]
    for line, got in zip(lines, refused):
        assert got["error"] == "UsageError", (line, got)
        assert got["message"].startswith("Refused: do not type a secret"), (line, got["message"])
        assert "--auth-string-env VAR" in got["message"] and "\n" not in got["message"]
    assert by_name["error"] == "UsageError" and "no environment variable of the name" in by_name["message"]
    assert "MY_SECRET" not in by_name["message"]
    assert braces["error"] == "UsageError" and braces["message"].startswith("Refused")
    assert canary not in by_name["message"] + braces["message"]
    assert result["rows"] >= len(lines)  # the lines were stored, scrubbed
    assert canary not in result["history"], "a secret stayed in the IPython history"
    assert "****" in result["history"]
    assert "--auth-string-env" in result["help"] and "Never type a secret" in result["help"]


@pytest.mark.server
def test_magics_log_in_check_refresh_and_log_out_against_a_real_server(auth_server, run_scenario):
    header = "Basic " + base64.b64encode(AUTH_STRING.encode()).decode()
    url = auth_server.api_url
    result = run_scenario(SHELL + f"""
import getpass
out = {{}}
out["login"] = run("%prefect_login --url {url} --auth-string-env NB_AUTH")
from prefect_nbauth.notebook._login_origin import login_origin
out["origin"] = login_origin()  # what the status widget says: "via %prefect_login"
out["checks"] = [read_flows_sync(), run_flow()]
out["status"] = run("%prefect_status --text")
out["wrong"] = run("%prefect_login --url {url} --auth-string-env NB_WRONG")
out["after wrong"] = [read_flows_sync(), status_dict(check_server=False)["identity"]]
out["refresh"] = run("%prefect_refresh")
out["logout"] = run("%prefect_logout")
out["after logout"] = read_flows_sync()

os.environ["PREFECT_API_AUTH_STRING"] = os.environ["NB_AUTH"]   # set after import prefect
out["from env"] = run("%prefect_login --from-env")
out["after from env"] = read_flows_sync()
del os.environ["PREFECT_API_AUTH_STRING"]
run("%prefect_logout")

out["header"] = run("%prefect_login --url {url} --header-env Authorization=NB_HEADER")
out["after header"] = [read_flows_sync(), status_dict(check_server=False)["mode"]]
run("%prefect_logout")

out["dollar"] = run("%prefect_login --url {url} --auth-string-env $NB_AUTH")
run("%prefect_logout")

prompts = []
def fake_getpass(prompt="Password: "):
    prompts.append(prompt)
    return os.environ["NB_AUTH"]
getpass.getpass = fake_getpass   # a terminal: %prefect_login prompts
out["prompt"] = run("%prefect_login --url {url}")
out["prompts"] = prompts
out["after prompt"] = read_flows_sync()
ip.history_manager.end_session()
out["history"] = history_text()
emit(out)
""", env={"PREFECT_API_URL": url, "NB_AUTH": AUTH_STRING, "NB_WRONG": "admin@corp:wrong",
          "NB_HEADER": header})
    login = result["login"]
    assert login["error"] is None, login
    assert "Prefect auth: basic (logged in with prefect_nbauth)" in login["out"] and "admin@corp" in login["out"]
    assert result["origin"] == "%prefect_login"
    assert result["checks"] == [200, 200]
    assert "Prefect auth: basic" in result["status"]["out"] and "3." in result["status"]["out"]
    wrong = result["wrong"]
    assert wrong["error"] == "UsageError" and wrong["message"].startswith("Login failed (AuthenticationError)")
    assert result["after wrong"] == [200, "admin@corp"]  # the previous login still works
    assert result["refresh"]["error"] is None and "basic" in result["refresh"]["out"]
    assert result["logout"]["error"] is None and "Prefect auth: none" in result["logout"]["out"]
    assert result["after logout"] == 401
    assert result["from env"]["error"] is None and "basic" in result["from env"]["out"]
    assert result["after from env"] == 200
    assert result["header"]["error"] is None, result["header"]
    assert result["after header"] == [200, "headers"]
    assert result["dollar"]["error"] is None and "basic" in result["dollar"]["out"]
    assert result["prompt"]["error"] is None and result["prompts"] == ["Auth string (user:password): "]
    assert result["after prompt"] == 200
    everything = repr(result)
    assert PASSWORD not in everything and header.split()[1] not in everything


@pytest.mark.server
def test_cloud_magics_need_a_workspace_when_the_key_has_several(cloud, run_scenario):  # noqa: F811
    result = run_scenario(SHELL + """
out = {}
out["several"] = run("%prefect_login --api-key-env USER_KEY")
out["chosen"] = run("%prefect_login --api-key-env USER_KEY --workspace acme/dev")
out["checks"] = [read_flows_sync(), status_dict(check_server=False)["workspace"]]
out["bot"] = run("%prefect_login --api-key-env BOT_KEY")
out["history"] = history_text()
emit(out)
""", env={"PREFECT_CLOUD_API_URL": cloud.api_url, "USER_KEY": CLOUD_USER_KEY, "BOT_KEY": CLOUD_BOT_KEY})
    several = result["several"]
    assert several["error"] == "UsageError" and "acme/dev" in several["message"] and "acme/prod" in several["message"]
    assert result["chosen"]["error"] is None and "api-key" in result["chosen"]["out"]
    assert result["checks"] == [200, "acme/dev"]
    assert result["bot"]["error"] is None and "etl-bot" in result["bot"]["out"]
    everything = repr(result)
    assert CLOUD_USER_KEY not in everything and CLOUD_BOT_KEY not in everything


def test_prefect_audit_shows_the_report_and_refuses_bad_lines(auth_server, run_scenario):
    result = run_scenario(SHELL + f"""
os.environ["NB_AUTH"] = {AUTH_STRING!r}
out = {{}}
out["login"] = run("%prefect_login --url {auth_server.api_url} --auth-string-env NB_AUTH")
out["audit"] = run("%prefect_audit")
out["userinfo"] = run("%prefect_audit http://u:p@127.0.0.1:9/api")
out["down"] = run("%prefect_audit http://127.0.0.1:9/api --timeout 1")
out["help"] = "prefect_audit" in ip.find_line_magic("prefect_audit").__name__
out["history"] = history_text()
emit(out)
""")
    assert result["login"]["error"] is None, result["login"]
    audit = result["audit"]
    assert audit["error"] is None, audit
    assert "PASS" in audit["out"] and "FAIL" not in audit["out"], audit["out"]
    assert result["userinfo"]["error"] == "UsageError"
    assert result["down"]["error"] == "UsageError" and "Audit failed" in result["down"]["message"]
    for value in result.values():
        assert PASSWORD not in json.dumps(value)


def test_a_secret_typed_on_the_line_is_scrubbed_from_the_logstart_file(run_scenario):
    canary = "CANARYlog0123456789abcdef"
    lines = [f"%prefect_login --auth-string admin:{canary}", f"%prefect_login --auth-string-env {canary}",
             f"%prefect_login pnu_{canary}"]
    result = run_scenario(SHELL + f"""
logs = {{}}
# "over" opens the file with "w" and logs the transformed line; "append" opens it with "a",
# and -r -t log the raw line under a timestamp.
for mode, flags in (("over", ""), ("append", "-r -t")):
    path = os.path.abspath(f"session-{{mode}}.log")
    ip.run_line_magic("logstart", f"{{flags}} {{path}} {{mode}}".strip())
    run("before = 1")
    refused = [run(line)["message"] for line in {lines!r}]
    run("after = 2")
    ip.run_line_magic("logstop", "")
    logs[mode] = {{"text": open(path, encoding="utf-8").read(), "refused": refused}}
emit(logs)
""")
    for mode, log in result.items():
        assert canary not in log["text"], (mode, log["text"])
        assert log["text"].count("****") >= len(lines), (mode, log["text"])
        assert "before = 1" in log["text"] and "after = 2" in log["text"], (mode, log["text"])
        assert "\x00" not in log["text"], mode  # IPython's handle went on at the new end
        first, by_name, positional = log["refused"]
        assert first.startswith("Refused") and "history and log file" in first
        assert "no environment variable" in by_name and "log file" in by_name
        assert positional.startswith("Refused")
