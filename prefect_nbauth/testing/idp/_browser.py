"""A person at the provider's pages, played by Debian's Chromium through Playwright.

    with chromium() as browser:
        page = browser.new_page()
        approve_device(page, flow.verification_uri_complete, "alice", idp.password("alice"))

:func:`approve_device` is what a person does with the link a notebook shows (RFC 8628):
open it (the code is filled in), confirm the code, sign in, allow. :func:`sign_in` is the
part every flow shares (the authorization-code flow of a web application such as
JupyterHub lands on the same pages). Chromium is ``/usr/bin/chromium`` through
Playwright's ``executable_path``; Playwright never downloads a browser here. Playwright
is imported when used (the ``test`` extra has it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "DeviceApprover", "SignInRefused", "approve_device", "chromium", "sign_in"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class SignInRefused(RuntimeError):
    """The provider's page said no (wrong password, unknown or expired code); the page's words."""


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, launched by Playwright; closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _refused(page: Any) -> None:
    error = page.locator("#error")
    if error.count():
        raise SignInRefused(error.inner_text())


def sign_in(page: Any, user: str, password: str, *, allow: bool = True) -> None:
    """On the provider's interaction pages: type the user name and password if asked, then allow or deny.

    Returns once the consent page is answered (what follows is the client's: a redirect
    to a web application, or the device flow's "signed in" page). A second sign-in in the
    same browser context skips the password (the provider's session cookie). A refused
    password raises :class:`SignInRefused` and leaves the sign-in page open for another try.
    """
    page.wait_for_selector("#sign-in, #allow, #error")
    if page.locator("#sign-in").count():
        page.fill("#login", user)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("#sign-in")
        page.wait_for_selector("#allow, #error")
    _refused(page)
    page.click("#allow" if allow else "#deny")


def approve_device(page: Any, verification_uri_complete: str, user: str, password: str, *,
                   confirm: bool = True, allow: bool = True) -> None:
    """Open the notebook's link, confirm the code, sign in as ``user``, allow; wait for "signed in".

    ``confirm=False`` cancels on the code page, ``allow=False`` denies on the consent
    page: the device client then gets ``access_denied``.
    """
    page.goto(verification_uri_complete)
    page.wait_for_selector("#confirm, #error")  # the link's code is submitted by the page itself
    _refused(page)
    if not confirm:
        page.click("#abort")
        page.wait_for_selector("#error")
        return
    page.click("#confirm")
    sign_in(page, user, password, allow=allow)
    page.wait_for_selector("#done, #error")
    if allow:
        _refused(page)


class DeviceApprover:
    """A person who approves every device sign-in as ``user``, in Chromium, while it runs.

    For code that signs in somewhere the test cannot reach (a kernel, a benchmark's
    interpreter, a notebook run headless): the codes come from the provider
    (:meth:`~prefect_nbauth.testing.idp.OidcProvider.new_device_codes`, what the person would
    read off the screen), and each is approved on the real pages in a fresh browser
    context (a new device: the password is asked every time). ``approved`` lists
    ``(user_code, seconds from its discovery to approval)``; ``errors`` what went wrong. Only
    sign-ins started after :meth:`start` are approved.

        with DeviceApprover(idp, "alice", idp.password("alice")):
            run_the_notebook()
    """

    def __init__(self, idp: Any, user: str, password: str, *, poll: float = 0.2) -> None:
        self.idp, self.user, self._password, self.poll = idp, user, password, poll
        self.approved: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="device-approver", daemon=True)

    def __repr__(self) -> str:
        return f"DeviceApprover(user={self.user!r}, approved={len(self.approved)})"

    def start(self) -> DeviceApprover:
        self._thread.start()
        self._ready.wait(120)  # Chromium launched (or failed: see errors)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def __enter__(self) -> DeviceApprover:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            with chromium() as browser:
                # Sign-ins started before this person arrived are not theirs to approve: on a
                # provider shared by several tests they may have ended long ago (cancelled,
                # expired), and "That code is not valid" would be reported as this one's error.
                self.idp.new_device_codes()
                self._ready.set()
                while not self._stop.wait(self.poll):
                    for code in self.idp.new_device_codes():
                        seen = time.monotonic()
                        context = browser.new_context()
                        try:
                            approve_device(context.new_page(), code["verification_uri_complete"], self.user,
                                           self._password)
                            self.approved.append((code["user_code"], time.monotonic() - seen))
                        except Exception as exc:  # noqa: BLE001 - reported to the test
                            self.errors.append(f"{code['user_code']}: {type(exc).__name__}: {exc}")
                        finally:
                            context.close()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._ready.set()
