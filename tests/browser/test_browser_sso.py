"""Sign in with SSO in JupyterLab, approved on "a phone": two Chromium contexts, real parts throughout.

JupyterLab runs ``%prefect_login --url GATEWAY --sso ISSUER --client-id ID``: the device
sign-in widget shows the link and the code, and the cell is done; another cell runs
meanwhile (the kernel is free). A second browser context, a phone-sized one, opens the
link, signs in as alice with her password on the identity provider's real page
(oidc-provider) and allows. The kernel's sign-in completes by itself; the sign-in widget
and the status widget say alice. Screenshots: ``test-artifacts/browser-sso-*.png``.
"""

from __future__ import annotations

from typing import Any

import nbformat
from lab_support import ARTIFACTS, BROWSER_MARKS, JupyterLab, notebook_page, run_cell
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

        phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            person = phone.new_page()
            approve_device(person, href, "alice", sso_stack.passwords["alice"])
            person.screenshot(path=str(ARTIFACTS / "browser-sso-phone-approved.png"), full_page=True)
        finally:
            phone.close()

        expect(sso.locator(".pnb-sso-state")).to_have_attribute("data-state", "signed-in", timeout=120_000)
        expect(sso.locator(".pnb-sso-state")).to_contain_text("Signed in as alice")
        expect(status.locator(".pnb-identity td")).to_have_text("alice", timeout=60_000)
        expect(status.locator(".pnb-credential td")).to_contain_text(f"SSO sign-in at {sso_stack.idp.issuer} as alice")
        page.screenshot(path=str(ARTIFACTS / "browser-sso-signed-in.png"), full_page=True)
