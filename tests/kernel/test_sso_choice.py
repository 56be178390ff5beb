"""The login form's "Sign in with SSO": the device sign-in as one choice of the form.

An identity provider played by httpx.MockTransport (``tests/fake_idp.py``: it answers
"authorization_pending" until the test lets the person approve), a real Prefect server
behind it (the session's open server: the access token goes to it as a Bearer header, as
to a gateway). What a person does in the page is played as the page's messages would
arrive. The same with oidc-provider, nginx's SSO gateway and Chromium:
``tests/browser/test_browser_sso.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_idp import CLIENT, ISSUER, FakeIdP

import prefect_nbauth as nb
from prefect_nbauth.notebook.widgets._login_choices import CHOICES, sso_choice
from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.canaries import leaks
from prefect_nbauth.testing.widgets import all_state_json, front_end_update
from prefect_nbauth.widgets import LoginWidget

PENDING = {"error": "authorization_pending"}
SSO_ENV = ("PREFECT_NBAUTH_SSO_ISSUER", "PREFECT_NBAUTH_SSO_CLIENT_ID", "PREFECT_NBAUTH_SSO_SCOPES")
HUB_ENV = {"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "not-a-real-token",
           "JUPYTERHUB_USER": "alice"}


@pytest.fixture(autouse=True)
def _no_sso_or_hub_around(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (*SSO_ENV, *HUB_ENV):
        monkeypatch.delenv(name, raising=False)
    yield
    nb.logout()


@pytest.fixture
def idp() -> FakeIdP:
    idp = FakeIdP()
    idp.polls = [PENDING] * 100_000  # the person has not approved yet: the test says when
    return idp


def _form(idp: Any, api_url: str, **kwargs: Any) -> LoginWidget:
    """The form with the SSO choice talking to ``idp`` (a MockTransport handler); the other choices as they are."""
    choices = [c for c in CHOICES if c.key != "sso"] + [sso_choice(transport=httpx.MockTransport(idp))]
    return LoginWidget(api_url=api_url, choices=choices, **kwargs)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def _fill(form: LoginWidget, issuer: str = ISSUER, client_id: str = CLIENT) -> None:
    panel = form.panels["sso"]
    front_end_update(panel.parts["issuer"], value=issuer)  # typed in the page
    front_end_update(panel.parts["client_id"], value=client_id)


def _approve(idp: FakeIdP) -> None:
    with idp.lock:
        idp.polls.clear()  # the next poll gets the tokens


def _state(form: LoginWidget) -> str:
    return all_state_json(form)


def test_offered_everywhere_first_and_prefilled_where_an_administrator_configured_it(
        comm_log: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    try:  # not configured: the last choice, not the default, nothing filled in
        assert form._bar.labels == ["Self-hosted server", "Prefect Cloud", "Gateway headers", "Sign in with SSO"]
        assert form.mode == "auth-string" and form._button.description == "Log in"
        assert form.panels["sso"].parts["issuer"].value == "" and form.panels["sso"].parts["client_id"].value == ""
        form.select("sso")
        assert form._button.description == "Sign in"  # the button says what the choice does
        form.select("headers")
        assert form._button.description == "Log in"
    finally:
        form.close()

    entra = "2f6c0a8e-1b3d-4c5e-9f70-a1b2c3d4e5f6"  # Microsoft Entra ID's client ids are UUIDs
    monkeypatch.setenv("PREFECT_NBAUTH_SSO_ISSUER", "https://login.example.test/realms/team")
    monkeypatch.setenv("PREFECT_NBAUTH_SSO_CLIENT_ID", entra)
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    try:  # configured: first, chosen, filled in (a UUID the administrator set is taken as it is)
        assert form._bar.labels[0] == "Sign in with SSO" and form.mode == "sso"
        assert form._button.description == "Sign in"
        panel = form.panels["sso"]
        assert panel.parts["issuer"].value == "https://login.example.test/realms/team"
        assert panel.parts["client_id"].value == entra
        front_end_update(panel.parts["client_id"], value="3a6c0a8e-1b3d-4c5e-9f70-a1b2c3d4e5f7")  # another UUID, typed
        assert panel.parts["client_id"].value == "" and "PREFECT_NBAUTH_SSO_CLIENT_ID" in form.message
        for usual in ("prefect-notebook", "0oa1b2c3d4e5f6g7h8i9", "yTtC8y0OqJaYhI0ymECbWqnDrSYyJXvr",
                      "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com"):
            front_end_update(panel.parts["client_id"], value=usual)
            assert panel.parts["client_id"].value == usual, usual  # Keycloak, Okta, Auth0, Google
    finally:
        form.close()

    form = LoginWidget(api_url="https://api.prefect.cloud/api/accounts/a/workspaces/w")
    try:  # a Prefect Cloud URL: the Cloud choice stays the default
        assert form._bar.labels[0] == "Sign in with SSO" and form.mode == "api-key"
    finally:
        form.close()

    for name, value in HUB_ENV.items():
        monkeypatch.setenv(name, value)
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    try:  # under a Hub: the Hub's sign-in first and chosen, the configured SSO next
        assert form._bar.labels[:2] == ["Use my Hub sign-in (alice)", "Sign in with SSO"] and form.mode == "hub"
    finally:
        form.close()


def test_sign_in_shows_link_and_code_in_the_form_and_ends_in_a_normal_login(
        comm_log: list[dict[str, Any]], idp: FakeIdP, open_server: Any) -> None:
    from prefect_nbauth.widgets import AuthStatusWidget

    status = AuthStatusWidget(check_server=False)
    form = _form(idp, open_server.api_url, mode="sso")
    try:
        _fill(form)
        started = time.perf_counter()
        form._button.click()
        returned_after = time.perf_counter() - started
        prompt = form.panels["sso"].parts["prompt"]
        wait_until(lambda: "ABCD-EFGH" in prompt.value, 30, "the code in the form")
        assert returned_after < 0.5 and form.busy  # the click only starts a worker: the kernel is free
        assert f'href="{ISSUER}/device?user_code=ABCD-EFGH"' in prompt.value and 'target="_blank"' in prompt.value
        assert form.panels["sso"].parts["cancel"].layout.display is None  # Cancel is offered
        assert "Waiting for you to approve" in form.message
        assert idp.device_answer["device_code"] not in _state(form)  # only what the person must read

        _approve(idp)
        assert form.wait(60)
        assert form.error is None and form.result is not None, form.message
        assert form.result.identity == "alice" and "as alice" in form.message, form.message
        assert prompt.value == "" and form.panels["sso"].parts["cancel"].layout.display == "none"
        wait_until(lambda: status.status.identity == "alice", 30, "the status widget to follow")
        assert "SSO sign-in at https://login.example.test as alice" in status.text_form()
        assert nb.status(check_server=False).identity == "alice"
        from prefect_nbauth.notebook._login_origin import login_origin

        assert login_origin() == "the login form"

        issued = [t for path, form_data in idp.requests if path == "/token" for t in form_data.get("device_code", [])]
        everything = _state(form) + all_state_json(status) + form.message + json.dumps([m["data"] for m in comm_log])
        for secret in [*issued, *idp.valid_refresh]:
            assert leaks(everything, secret) == []
    finally:
        form.close()
        status.close()


def test_cancel_a_second_sign_in_and_closing_the_form_each_end_the_wait(
        comm_log: list[dict[str, Any]], idp: FakeIdP) -> None:
    from prefect_nbauth.widgets import DeviceSignInWidget

    form = _form(idp, "http://127.0.0.1:9/api", mode="sso")
    other = _form(idp, "http://127.0.0.1:9/api", mode="sso")
    prompt = form.panels["sso"].parts["prompt"]
    try:
        _fill(form)
        form._button.click()
        wait_until(lambda: "ABCD-EFGH" in prompt.value, 30, "the code")
        form.panels["sso"].parts["cancel"].click()  # Cancel
        assert form.wait(30) and form.result is None and form.error is None
        assert form.message.startswith("Sign-in cancelled.") and "Nothing was changed" in form.message
        assert prompt.value == "" and not nb.status(check_server=False).logged_in

        form._button.click()  # again; then the device sign-in widget elsewhere in the kernel
        wait_until(lambda: "ABCD-EFGH" in prompt.value, 30, "the code")
        widget = DeviceSignInWidget("http://127.0.0.1:9/api", provider=nb.DeviceSignIn(
            ISSUER, CLIENT, transport=httpx.MockTransport(idp)))
        assert form.wait(30) and form.message.startswith("A newer sign-in in this kernel replaced this one.")
        wait_until(lambda: widget.state == "waiting", 30, "the widget's code")

        _fill(other)
        other._button.click()  # a sign-in from another form replaces the widget's
        assert widget.wait(30) and widget.state == "cancelled" and "newer sign-in" in widget.message
        wait_until(lambda: "ABCD-EFGH" in other.panels["sso"].parts["prompt"].value, 30, "the other form's code")
        other.close()  # closing the form ends its wait too
        assert other.wait(30) and "ABCD-EFGH" not in other.panels["sso"].parts["prompt"].value
        assert not nb.status(check_server=False).logged_in
    finally:
        form.close()
        other.close()


@pytest.mark.parametrize(("case", "expected"), [
    ("no issuer", "Type your identity provider's URL"),
    ("no client id", "Type the client id"),
    ("no API URL", "Type the API URL of the Prefect behind your SSO gateway"),
    ("persist", "never saved to the Prefect profile"),
    ("unreachable", "Could not reach your identity provider."),
    ("declined", "The sign-in was declined."),
    ("no device grant", "does not offer the device sign-in"),
])
def test_what_cannot_work_is_said_in_one_sentence_and_nothing_changes(
        comm_log: list[dict[str, Any]], idp: FakeIdP, case: str, expected: str) -> None:
    if case == "declined":
        idp.polls = [{"error": "access_denied"}]
    if case == "no device grant":
        del idp.discovery["device_authorization_endpoint"]
    form = _form(_refused if case == "unreachable" else idp, "" if case == "no API URL" else "http://127.0.0.1:9/api",
                 mode="sso", persist=case == "persist")
    try:
        _fill(form, issuer="" if case == "no issuer" else ISSUER, client_id="" if case == "no client id" else CLIENT)
        form._button.click()
        assert form.wait(60)
        assert expected in form.message, form.message
        assert form.result is None and not nb.status(check_server=False).logged_in
    finally:
        form.close()
