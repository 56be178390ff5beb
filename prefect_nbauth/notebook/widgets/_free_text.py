"""The login form's free-text boxes: none keeps, sends back or repeats a secret pasted into it.

A free-text box (the API URL, a header's name, the SSO issuer and client id) is a plain
ipywidgets ``Text``: what is typed is synced widget state, which the page keeps and
JupyterLab saves into the notebook. People paste tokens into the wrong box. So every free-text box of the form is
a :class:`GuardedText` with a *check* that says, for a value, whether it is plainly
not what the box is for and may be a secret. Such a value is

* emptied the moment the kernel sees it (``while typing``) or on Log in,
* not sent back: ipywidgets' echo of a value to every page is off for these boxes, and
* never repeated: the message that says so does not quote it, and nothing else of
  the form shows it (a URL at most as ``scheme://host``, a header by its row).

One mechanism for every such box: a new free-text box is a ``GuardedText`` with its
own check (``tests/kernel/test_widgets.py`` pastes a canary into every ``Text`` of
the form and fails on any that keeps or echoes it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ipywidgets as widgets
from traitlets import Unicode

from ..._exceptions import ConfigurationError
from ._login_messages import check_url_box, has_userinfo

__all__ = ["GuardedText", "Refusal", "client_id_refusal", "header_name_refusal", "issuer_refusal", "url_refusal"]


@dataclass(frozen=True)
class Refusal:
    """Why a box's value cannot be used; ``clear``: it may be a secret, empty the box."""

    message: str  # never quotes the value
    clear: bool = True


#: ``check(value, submitting)``: a refusal, or None. ``submitting`` is False while the
#: person types (refuse only what can never become valid), True on Log in.
Check = Callable[[str, bool], "Refusal | None"]


class GuardedText(widgets.Text):
    """A ``Text`` box of the login form whose every value passes ``check`` (see the module docstring)."""

    # ipywidgets 8 echoes every value a page sends back to every page ("echo_update"),
    # before the kernel's check could empty the box: a pasted token would cross the comm
    # again, to every page showing the form. This box's value is never echoed.
    value = Unicode(help="String value").tag(sync=True, echo_update=False)

    def __init__(self, *, check: Check, report: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check = check
        self._report = report
        self.observe(self._changed, "value")
        self._changed({"new": self.value})  # a value given at creation (PREFECT_API_URL…) is checked too

    def _changed(self, change: dict[str, Any]) -> None:
        refusal = self._check((change["new"] or "").strip(), False)
        if refusal is not None and refusal.clear:
            self.value = ""  # the page is told at once; the refused text is not kept
            self._report(refusal.message)

    def checked(self) -> str:
        """The value to use on Log in (stripped); ConfigurationError (box emptied if need be) if it cannot work."""
        value = (self.value or "").strip()
        refusal = self._check(value, True)
        if refusal is not None:
            if refusal.clear:
                self.value = ""
            raise ConfigurationError(refusal.message)
        return value


def url_refusal(value: str, submitting: bool) -> Refusal | None:
    """The API URL box: a URL with a user name or password at once; on Log in, anything not an http(s) URL."""
    return _url_refusal(value, submitting, "The API URL", "http://127.0.0.1:4200/api")


ISSUER_QUERY_REFUSED = ("The issuer URL held a query or a fragment (?… or #…), which an issuer never has, so "
                        "it was cleared (it is not shown here, in case it held a secret). Type it as your "
                        "identity provider names it, such as https://login.example.com/realms/team.")


def issuer_refusal(value: str, submitting: bool) -> Refusal | None:
    """The SSO issuer box: as the API URL box, and on Log in no query or fragment (OpenID issuers have none)."""
    refusal = _url_refusal(value, submitting, "The issuer URL", "https://login.example.com")
    if refusal is not None or not submitting or not value:
        return refusal
    parts = urlsplit(value)
    return Refusal(ISSUER_QUERY_REFUSED) if parts.query or parts.fragment or "?" in value or "#" in value else None


def _url_refusal(value: str, submitting: bool, what: str, example: str) -> Refusal | None:
    if not value:
        return None
    if has_userinfo(value):
        return Refusal(check_url_box(value, what, example) or "")
    if not submitting:
        return None  # "http://12" is on its way to a URL
    problem = check_url_box(value, what, example)
    if problem is None:
        return None
    # A URL of another scheme is shown (scheme://host) and kept to be fixed; anything else may be a secret.
    return Refusal(problem, clear=not problem.startswith(f"{what} must start"))


# A header name as people write them: a letter, then letters, digits, "-" or "_".
# RFC 9110 allows more ("." "!" "#" …), but those are what tokens are made of (a JWT
# has dots, base64 has "+/="); a header needing them can be given to login(headers=).
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_MAX_NAME = 64  # the longest registered header names are about 40 characters
_MAX_WORD = 24  # "Authorization" is 13; a token is one long run
_MAX_DIGITS = 4  # "X-B3-TraceId" has 1; a token or a UUID has many

HEADER_NAME_REFUSED = ("The header name box held something that is not a header name, so it was "
                       "cleared (it is not shown here, in case it was a secret). A header name is "
                       "a short word such as cf-access-token or X-API-Key; the token itself goes in "
                       "the Value box.")


def header_name_refusal(value: str, submitting: bool) -> Refusal | None:
    """A header's Name box: refused (and emptied) as soon as it cannot be a header name."""
    if not value:
        return None
    words = re.split(r"[-_]", value)
    if (not _HEADER_NAME.fullmatch(value) or len(value) > _MAX_NAME
            or max(len(w) for w in words) > _MAX_WORD or sum(c.isdigit() for c in value) > _MAX_DIGITS):
        return Refusal(HEADER_NAME_REFUSED)
    return None


# A client id as identity providers issue them: "prefect-notebook" (Keycloak, Dex), "0oa1b2c3d4e5f6g7h8i9"
# (Okta), 32 letters and digits (Auth0), "1234-abc….apps.googleusercontent.com" (Google). A client id
# is public, but a person may paste a token into the box: whatever is shaped like one is refused.
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
_MAX_CLIENT_ID = 128
_MAX_CLIENT_RUN = 40  # Auth0's are 32; a token is one long run
_TOKEN_PREFIXES = ("eyj", "pnu_", "pnb_")  # a JWT's header, Prefect Cloud keys
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)

CLIENT_ID_REFUSED = ("The client id box held something that is not a client id, so it was cleared (it is not "
                     "shown here, in case it was a secret). A client id is the public name your identity "
                     "provider gave this app, such as prefect-notebook; ask whoever runs it.")
CLIENT_ID_UUID_REFUSED = ("The client id box held a UUID, so it was cleared (it is not shown here, in case it "
                          "was a secret: some keys are UUIDs). Client ids that are UUIDs (Microsoft Entra ID) "
                          "are taken from the environment variable PREFECT_NBAUTH_SSO_CLIENT_ID, or from "
                          "%prefect_login --sso ISSUER --client-id ID.")


def client_id_refusal(configured: str | None = None) -> Check:
    """The SSO client id box's check: refuses (and empties) what is shaped like a token.

    ``configured``: the client id an administrator set (``PREFECT_NBAUTH_SSO_CLIENT_ID``),
    accepted as it is even when it is a UUID (Microsoft Entra ID's are): a UUID typed
    into the box may as well be a key, so only that one is taken.
    """
    def check(value: str, submitting: bool) -> Refusal | None:
        if not value or value == (configured or "").strip():
            return None
        if _UUID.fullmatch(value):
            return Refusal(CLIENT_ID_UUID_REFUSED)
        runs = re.split(r"[._:@-]", value)
        if (not _CLIENT_ID.fullmatch(value) or len(value) > _MAX_CLIENT_ID
                or max(len(r) for r in runs) > _MAX_CLIENT_RUN or value.lower().startswith(_TOKEN_PREFIXES)):
            return Refusal(CLIENT_ID_REFUSED)
        return None

    return check
