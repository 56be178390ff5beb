"""The rule on the auth mode the server advertises (``GET /ui-settings``) versus what this
process sends, and how to say in words what it sends."""

from __future__ import annotations

from ._evidence import Evidence, refusal
from ._report import Finding, Outcome

__all__ = ["advertised_auth", "client_sends"]


def client_sends(headers: dict[str, str]) -> str:
    """What these headers carry, in words ("an auth string (HTTP Basic)"), never their values."""
    auth = next((v for n, v in headers.items() if n.lower() == "authorization"), None)
    others = [n for n in headers if n.lower() != "authorization"]
    if auth is None:
        what = "no credential" if not others else "gateway headers"
    elif auth.lower().startswith("basic "):
        what = "an auth string (HTTP Basic)"
    elif auth.lower().startswith("bearer "):
        what = "a bearer token (API key)"
    else:
        what = "a custom Authorization header"
    if auth is not None and others:
        what += " and gateway headers " + ", ".join(others)
    elif auth is None and others:
        what += " " + ", ".join(others)
    return what


def advertised_auth(seen: Evidence) -> Finding:
    title = "Advertised auth mode"
    advertised, p = seen.advertised, seen.prober
    if not seen.is_cloud and advertised is None and refusal(seen.ui):
        return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                       f"GET /ui-settings was refused (HTTP {seen.ui.status}): something in front of "
                       "the server (a gateway) guards it, so the auth mode the server advertises "
                       "could not be read.")
    if seen.is_cloud or advertised is None:
        return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud does not advertise an auth mode." if seen.is_cloud else
                       "The server does not say which auth it wants (no /ui-settings at its root, nor "
                       "under the UI's path in PREFECT_UI_URL).")
    basic = any(n.lower() == "authorization" and v.lower().startswith("basic ")
                for n, v in p.real_headers.items())
    if advertised == "BASIC":
        if not p.use_credential:
            return Finding("advertised-auth", title, Outcome.NOT_APPLICABLE,
                           "The server advertises an auth string (BASIC); no credential of yours "
                           "was compared with it.")
        if basic:
            return Finding("advertised-auth", title, Outcome.PASS,
                           "The server advertises an auth string (BASIC) and this process sends one.")
        return Finding("advertised-auth", title, Outcome.FAIL,
                       f"The server advertises an auth string (BASIC), but this process sends "
                       f"{client_sends(p.real_headers)}: every request gets HTTP 401.",
                       "Log in with prefect_nbauth.login(URL, auth_string='user:password').")
    # The server says it checks nothing.
    if refusal(seen.rest["no_cred"]):
        return Finding("advertised-auth", title, Outcome.PASS,
                       "Prefect itself checks no auth string, but something in front of it refuses "
                       "requests without credentials (a gateway); keep the server unreachable "
                       "except through it.")
    if p.use_credential and basic:
        return Finding("advertised-auth", title, Outcome.FAIL,
                       "This process sends an auth string, but the server advertises no auth and "
                       "ignores it: anyone who can reach the server can use it.",
                       "Start the server with PREFECT_SERVER_API_AUTH_STRING set to the same value.")
    return Finding("advertised-auth", title, Outcome.PASS,
                   "The server advertises no auth and this process sends none: consistent (that "
                   "the server is open is reported by the REST checks).")
