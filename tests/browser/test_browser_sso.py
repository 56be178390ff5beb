"""Sign in with SSO in JupyterLab, approved on "a phone": two Chromium contexts, real parts throughout.

1. JupyterLab runs ``%prefect_login --url GATEWAY --sso ISSUER --client-id ID``: the device
   sign-in widget shows the link and the code, and the cell is done; another cell runs
   meanwhile (the kernel is free). A second browser context, a phone-sized one, opens the
   link, signs in as alice with her password on the identity provider's real page
   (oidc-provider) and allows. The kernel's sign-in completes by itself; the sign-in widget
   and the status widget say alice.
2. The same from the login form (``%prefect_login --url GATEWAY``): the person picks "Sign
   in with SSO", types the issuer and the client id, clicks Sign in; the form shows the
   link and the code (their contrast measured: 4.5:1 or more), another cell runs
   meanwhile, the phone approves, the form and the status widget say alice.

Screenshots: ``test-artifacts/browser-sso-*.png``.
"""

from __future__ import annotations

from typing import Any

import nbformat
from lab_support import ARTIFACTS, BROWSER_MARKS, MEASURE_JS, JupyterLab, end_sessions, notebook_page, run_cell
from notebook_support import build_notebook

from prefect_nbauth.testing.idp import approve_device

pytestmark = [*BROWSER_MARKS]


def test_sign_in_with_sso_in_jupyterlab_approved_on_a_phone(sso_stack: Any, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    cfg = sso_stack.cfg()
    nbformat.write(build_notebook([
        "%load_ext prefect_nbauth\n%prefect_status",
        f"%prefect_login --url {cfg['api_url']} --sso {cfg['issuer']} --client-id {cfg['client_id']}",
        "print('the kernel is free:', 6 * 7)",
    ]), str(lab.work / "sso.ipynb"))
    lab.start()
    with notebook_page(lab, "sso.ipynb", width=1100, height=900, timeout_ms=90_000,
                       failure_shot=ARTIFACTS / "browser-sso-failure.png") as page:
        run_cell(page, 0)
        status = page.locator(".prefect-nbauth-status")
        expect(status.locator(".pnb-mode")).to_have_text("none")
        run_cell(page, 1)
        sso = page.locator(".prefect-nbauth-sso")
        link = sso.locator("a.pnb-sso-link")
        expect(link).to_be_visible()
        code = sso.locator(".pnb-sso-code").inner_text()
        href = link.get_attribute("href") or ""
        assert href.startswith(sso_stack.idp.issuer) and href.endswith(f"user_code={code}")
        assert link.get_attribute("target") == "_blank"  # clickable, in a new tab
        expect(sso.locator(".pnb-sso-state")).to_have_attribute("data-state", "waiting")
        run_cell(page, 2)  # while the sign-in waits for the person
        expect(page.locator(".jp-OutputArea-output", has_text="the kernel is free: 42")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-sso-waiting.png"), full_page=True)

        _approve_on_a_phone(page, href, sso_stack.passwords["alice"], "browser-sso-phone-approved.png")

        expect(sso.locator(".pnb-sso-state")).to_have_attribute("data-state", "signed-in", timeout=120_000)
        expect(sso.locator(".pnb-sso-state")).to_contain_text("Signed in as alice")
        expect(status.locator(".pnb-identity td")).to_have_text("alice", timeout=60_000)
        expect(status.locator(".pnb-credential td")).to_contain_text(f"SSO sign-in at {sso_stack.idp.issuer} as alice")
        page.screenshot(path=str(ARTIFACTS / "browser-sso-signed-in.png"), full_page=True)
        end_sessions(page)  # one kernel at a time


def _approve_on_a_phone(page: Any, href: str, password: str, shot: str) -> None:
    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        person = phone.new_page()
        approve_device(person, href, "alice", password)
        person.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    finally:
        phone.close()


def test_sign_in_with_sso_chosen_in_the_login_form(sso_stack: Any, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    cfg = sso_stack.cfg()
    nbformat.write(build_notebook([
        "%load_ext prefect_nbauth\n%prefect_status",
        f"%prefect_login --url {cfg['api_url']}",
        "print('the kernel is free:', 6 * 7)",
    ]), str(lab.work / "sso-form.ipynb"))
    lab.start()
    with notebook_page(lab, "sso-form.ipynb", width=1100, height=900, timeout_ms=90_000,
                       failure_shot=ARTIFACTS / "browser-sso-form-failure.png") as page:
        run_cell(page, 0)
        status = page.locator(".prefect-nbauth-status")
        expect(status.locator(".pnb-mode")).to_have_text("none")
        run_cell(page, 1)
        form = page.locator(".prefect-nbauth-login")
        choice = form.get_by_role("tab", name="Sign in with SSO")
        choice.click()  # the person picks it
        expect(choice).to_have_attribute("aria-selected", "true")
        form.locator(".pnb-sso-issuer input").fill(cfg["issuer"])
        form.locator(".pnb-sso-client-id input").fill(cfg["client_id"])
        button = form.locator("button.pnb-login-button")
        expect(button).to_have_text("Sign in")  # what the button does for this choice
        button.click()

        link = form.locator("a.pnb-sso-link")
        expect(link).to_be_visible()
        code = form.locator(".pnb-sso-code").inner_text()
        href = link.get_attribute("href") or ""
        assert href.startswith(sso_stack.idp.issuer) and href.endswith(f"user_code={code}")
        assert link.get_attribute("target") == "_blank"
        expect(form.locator(".pnb-login-message")).to_contain_text("Waiting for you to approve")
        expect(form.locator("button.pnb-sso-cancel")).to_be_visible()
        measured = form.evaluate(MEASURE_JS)  # the form, with the link and the code in it
        assert measured["texts"] >= 5 and measured["contrast"] == [], measured["contrast"]
        assert measured["overflow"] == [], measured["overflow"]
        run_cell(page, 2)  # while the sign-in waits for the person
        expect(page.locator(".jp-OutputArea-output", has_text="the kernel is free: 42")).to_be_visible()
        form.screenshot(path=str(ARTIFACTS / "browser-sso-form-waiting.png"))

        _approve_on_a_phone(page, href, sso_stack.passwords["alice"], "browser-sso-form-phone-approved.png")

        message = form.locator(".pnb-login-message")
        expect(message).to_contain_text("as alice", timeout=120_000)
        expect(message).to_contain_text("Logged in to")
        expect(link).to_have_count(0)  # the link and the code are gone with the wait
        expect(status.locator(".pnb-identity td")).to_have_text("alice", timeout=60_000)
        expect(status.locator(".pnb-credential td")).to_contain_text(f"SSO sign-in at {sso_stack.idp.issuer} as alice")
        page.screenshot(path=str(ARTIFACTS / "browser-sso-form-signed-in.png"), full_page=True)
        end_sessions(page)
