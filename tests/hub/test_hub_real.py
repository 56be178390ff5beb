"""A team on a real JupyterHub 6.1.1 (+ oauthenticator 17.4.0, configurable-http-proxy 5.3.0,
LocalProcessSpawner with real Unix users), signed in through the real oidc-provider's
sign-in page in Chromium, each kernel logged in to Prefect with ``%prefect_login --hub``
through the real SSO gateway (nginx + njs) in front of a real Prefect server.

One Hub for the module (the ``team`` session fixture); the load runs once, in all three
kernels at once, and the tests after it read its figures."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.hub import CellError, HubTeam
from prefect_nbauth.testing.hub.kernel_work import flow_name

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[2]
LOAD_SECONDS = 32  # more than three lifetimes of the provider's 10 s access tokens

_LOAD = """
import json
from prefect_nbauth.testing.hub import kernel_work
print("RESULT " + json.dumps(kernel_work.run({person!r}, duration={duration})))
"""


def _result(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def load(team: HubTeam) -> dict[str, dict[str, Any]]:
    """The load in every person's kernel at once; each kernel's figures."""
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def run(person: str) -> None:
        try:
            results[person] = _result(team.kernels[person].run(
                _LOAD.format(person=team.name(person), duration=LOAD_SECONDS), timeout=300))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in team.people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_each_kernel_logs_in_as_its_person_with_nothing_typed(team: HubTeam) -> None:
    for person in team.people:
        output = team.login_output[person]
        assert f"via JupyterHub as {team.name(person)}" in output, output


def test_every_request_reaches_prefect_under_the_right_person(team: HubTeam, load: dict[str, Any]) -> None:
    rows = team.gateway.access_log()
    for person in team.people:
        mine = [r for r in rows if f"/flows/name/{flow_name(team.name(person), '')}" in r.path]
        assert len(mine) >= load[person]["calls"] > 0
        assert {r.user for r in mine if r.status == 200} == {team.name(person)}
    # Nothing reached Prefect without a person: every answered request carried a valid token.
    assert all(r.user for r in rows if r.status < 400 and r.path.startswith("/api/") and
               r.path not in ("/api/health", "/api/ready"))


def test_three_token_lifetimes_without_a_failed_call_or_a_lost_event(team: HubTeam, load: dict[str, Any]) -> None:
    for person in team.people:
        figures = load[person]
        assert figures["failed"] == 0, figures["errors"]
        assert figures["calls"] > 50
        assert figures["emitted"] > 50 and figures["streamed"] == figures["emitted"]
        assert figures["duplicates"] == 0
        assert figures["refreshes"] >= 3  # each token was replaced through the Hub, ahead of expiry
        assert len(figures["fingerprints"]) >= 4


def test_bob_cannot_read_alices_auth_state_nor_send_her_token(team: HubTeam, load: dict[str, Any]) -> None:
    alice, bob = team.name("alice"), team.name("bob")
    # bob's server's own token, as his kernel has it, asking for alice's user model:
    answer = team.kernels["bob"].run(f"""
import os, httpx
r = httpx.get(os.environ["JUPYTERHUB_API_URL"] + "/users/{alice}",
              headers={{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}})
print("STATUS", r.status_code, "access_token" in r.text, "auth_state" in r.text)
""")
    status, leaked_token, leaked_state = answer.split("STATUS ")[1].split()
    assert status in ("403", "404") and leaked_token == leaked_state == "False"
    with pytest.raises(CellError, match=r"HTTP 40[34]"):
        team.kernels["bob"].run(f"from prefect_nbauth import JupyterHubToken\n"
                                f"JupyterHubToken(user={alice!r}).fetch()")
    # bob's kernel only ever held tokens the Hub gave for bob: none of alice's.
    assert not set(load["alice"]["fingerprints"]) & set(load["bob"]["fingerprints"])
    assert {r.user for r in team.gateway.access_log()
            if f"/flows/name/{flow_name(bob, '')}" in r.path} == {bob}


def test_revoked_at_the_provider_alice_is_signed_out_then_back_after_signing_in(
        team: HubTeam, load: dict[str, Any]) -> None:
    alice = team.name("alice")
    kernel = team.kernels["alice"]
    kernel.run("from prefect import get_client\nclient = get_client(sync_client=True)\n"
               "client.read_flows(limit=1)")
    assert team.idp.revoke_user(alice) >= 1
    # Within a token lifetime the Hub tries to refresh, the provider refuses: signed out.
    said = wait_until(lambda: _signed_out_message(kernel), 90, "alice's kernel to say she is signed out")
    assert f"{alice} is signed out" in said and "Sign in to JupyterHub again" in said
    assert said.startswith("CredentialProviderError")  # no traceback of ours: the one message
    # bob is not affected.
    team.kernels["bob"].run("from prefect import get_client\nget_client(sync_client=True).read_flows(limit=1)")
    team.sign_in("alice")  # the Hub sends her to the provider's page again
    wait_until(lambda: _works(kernel), 90, "alice's kernel to work again")
    out = kernel.run("import prefect_nbauth\nprint(prefect_nbauth.status(check_server=False))")
    assert "signed out" not in out


def _signed_out_message(kernel: Any) -> str | None:
    try:
        kernel.run("client.read_flows(limit=1)")
    except CellError as exc:
        said = str(exc).split("\n", 1)[0]  # the error's own line, not the traceback's source lines
        return said if "signed out" in said else None
    return None


def _works(kernel: Any) -> bool:
    try:
        kernel.run("client.read_flows(limit=1)")
        return True
    except CellError:
        return False


def test_the_login_forms_first_choice_under_the_hub_logs_in_as_the_person(team: HubTeam) -> None:
    """The real form in carol's kernel: "Use my Hub sign-in (carol)" first and chosen; Log in."""
    carol = team.name("carol")
    out = team.kernels["carol"].run(
        "from prefect_nbauth.widgets import LoginWidget\n"
        "form = LoginWidget()\n"
        "print('CHOICES', [c.title() for c in form._choices], form.mode)\n"
        "form.submit(); form.wait(60)\n"
        "print('RESULT', form.result)\n"
        "print('MESSAGE', form.message)")
    assert f"CHOICES ['Use my Hub sign-in ({carol})', 'Self-hosted server'" in out and "] hub" in out
    assert f"via JupyterHub as {carol}" in out and f"as {carol}" in out.split("MESSAGE", 1)[1]


def test_kernels_over_ipc_are_not_reported_and_a_tcp_kernel_on_the_shared_host_is(team: HubTeam) -> None:
    """The shipped config runs kernels over IPC; a kernel over TCP on this host (where the
    team's accounts now exist) is reported by status() and audit()."""
    from jupyter_client.manager import KernelManager

    out = team.kernels["alice"].run(
        "import prefect_nbauth\nfrom prefect_nbauth import _kernel_channels\n"
        "print('TRANSPORT', _kernel_channels.kernel_transport()[0])\n"
        "print(prefect_nbauth.status(check_server=False))")
    assert "TRANSPORT ipc" in out and "channels listen on TCP" not in out
    manager = KernelManager(kernel_name="python3", transport="tcp")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply: list[str] = []
        client.execute_interactive(
            "import prefect_nbauth\nprint(prefect_nbauth.status(check_server=False))",
            output_hook=lambda m: reply.append(m["content"].get("text", "")), timeout=120)
        text = "".join(reply)
        assert "channels listen on TCP" in text and "--KernelManager.transport=ipc" in text
        assert "3 other account(s)" in text or "other account(s)" in text
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_the_tutorial_cell_logs_in_under_the_hub(team: HubTeam) -> None:
    """The cell of notebooks/01_login.ipynb tagged 'jupyterhub', as committed, in bob's kernel."""
    import nbformat

    notebook = nbformat.read(REPO / "notebooks" / "01_login.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "jupyterhub" in c.metadata.get("tags", []))
    out = team.kernels["bob"].run("import os\n" + cell.source)
    assert f"via JupyterHub as {team.name('bob')}" in out
