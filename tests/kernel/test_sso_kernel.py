"""``%prefect_login --sso`` in a real kernel: a minute of work as alice, and no secret left anywhere.

The kernel (nbclient) runs the magic, which shows the device sign-in widget and returns;
alice approves in Chromium (a DeviceApprover in this process, reading the code off the
provider as she would off the widget). Then, for 60 s through nginx's SSO gateway with
5-second access tokens (12 lifetimes, a refresh-token rotation each): two REST threads, a
flow, ``emit_event`` every 100 ms and ``stream_events``; 0 failed calls and every event
delivered; then logout, after which the provider refuses the old refresh token.

The canary scan: every access token, refresh token and ID token the kernel held, and
alice's password, appear in none of the outputs, the saved notebook (widget state
included), IPython's history, or the kernel's log records at DEBUG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from notebook_support import assert_no_trace, history_bytes, run_notebook, text_outputs

from prefect_nbauth.testing.canaries import leak_forms
from prefect_nbauth.testing.idp import DeviceApprover

pytestmark = [pytest.mark.kernel, pytest.mark.idp, pytest.mark.browser]

DURATION = 60


def _cells(cfg: dict[str, Any]) -> list[str]:
    return [
        """
import json, logging, os, sys
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
# What the sign-in held, for the test's scan afterwards (written to a file of the test's, never shown).
from prefect_nbauth.session.providers import _device
held = []
_keep = _device.DeviceSignIn._keep
def _recording_keep(self, h, **kw):
    held.append([h.access.value.reveal(), h.refresh.reveal() if h.refresh else "", h.id_token.reveal() if h.id_token else ""])
    return _keep(self, h, **kw)
_device.DeviceSignIn._keep = _recording_keep
""",
        "%load_ext prefect_nbauth",
        f"%prefect_login --url {cfg['api_url']} --sso {cfg['issuer']} --client-id {cfg['client_id']}",
        """
import prefect_nbauth as nb
from prefect_nbauth.testing import wait_until
wait_until(lambda: nb.status(check_server=False).logged_in, timeout=120, what="the sign-in")
print(nb.status(check_server=False))
""",
        "%prefect_status",
        # A status widget that does not follow later changes: its saved state is what it said now.
        "from prefect_nbauth.widgets import AuthStatusWidget\nAuthStatusWidget(check_server=False, watch=False)",
        f"""
from prefect_nbauth.testing.idp import sso_load
cfg = {cfg!r}
work = sso_load.work(cfg, duration={DURATION}, rest_threads=2)
print("WORK", json.dumps(work))
""",
        """
print("LOGOUT", json.dumps(sso_load.log_out(cfg)))
with open(os.environ["NB_SSO_SCAN"], "w") as fh:
    json.dump({"held": held, "records": records}, fh)
print("records:", len(records))
""",
    ]


def _printed(nb: Any, marker: str) -> dict[str, Any]:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(marker + " "):
                    return dict(json.loads(line[len(marker) + 1:]))
    raise AssertionError(f"no {marker} line in the outputs:\n{text_outputs(nb)[-3000:]}")


@pytest.mark.timeout(900)  # a minute of work, then up to two minutes for every event to be stored and streamed
def test_prefect_login_sso_a_minute_of_work_and_no_secret_anywhere(sso_stack: Any, tmp_path: Path) -> None:
    password = sso_stack.passwords["alice"]
    scan = tmp_path / "scan.json"
    with DeviceApprover(sso_stack.idp, "alice", password) as alice:
        nb, path, history = run_notebook(_cells(sso_stack.cfg()), tmp_path, timeout=600, NB_SSO_SCAN=str(scan))
    assert len(alice.approved) == 1 and not alice.errors, (alice.approved, alice.errors)

    work = _printed(nb, "WORK")
    work["idp"] = sso_stack.idp.stats()  # shown if an assertion fails
    assert work["identity"] == "alice", work
    assert work["failed"] == 0 and work["calls"] > 0 and work["flow"] == "COMPLETED", work
    assert work["emitted"] > 0 and work["stored"] == work["emitted"] == work["streamed"], work
    assert work["refreshes"] >= 10 and work["refresh_token_rotations"] >= 3, work  # ≥ 10 token lifetimes
    logout = _printed(nb, "LOGOUT")
    assert logout["revoked_at_logout"] is True and logout["old_refresh_token_refused"] is True, logout

    saved = path.read_text()
    assert "Signed in as alice" in saved  # the sign-in widget's last word, in its saved state
    assert "pnb-identity" in saved and "<td>alice</td>" in saved  # the status widget says alice

    seen = json.loads(scan.read_text())
    secrets = {value for triple in seen["held"] for value in triple if value} | {password}
    assert len(seen["held"]) >= 10  # the sign-in and every refresh: all of them are looked for
    forms = sorted({form for value in secrets for form in leak_forms(value)})
    assert_no_trace(forms, saved=saved + text_outputs(nb), history=history)
    logs = "\n".join(seen["records"])
    assert len(seen["records"]) > 100  # DEBUG was on: the scan read something
    assert not [form for form in forms if form in logs], "a secret is in the kernel's DEBUG log records"
    assert history_bytes(history)  # the kernel wrote its history
