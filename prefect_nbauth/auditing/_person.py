"""audit() when a person signed in behind an SSO gateway (``login(sso=DeviceSignIn(...))``).

Such a gateway checks each person's token and adds Prefect's own credential itself:
Prefect then sees every request as the gateway's, and who made it is known only at the
gateway. That is the design, not a flaw, as long as the gateway refuses what carries no
valid token. So the finding says who Prefect sees and who you are at the gateway, and
FAILs when the gateway lets a request with no token at all through (anyone who can reach
it would act as the gateway, with full access to Prefect).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._report import Finding, Outcome

if TYPE_CHECKING:
    from ._evidence import Evidence

__all__ = ["person_at_gateway"]


def _signed_in_person(api_url: str) -> str | None:
    """Who the login in force for ``api_url`` signed in as, through its Authorization header."""
    from ..session import current_login

    login = current_login()
    if login is None or login.credential.api_url.rstrip("/") != api_url.rstrip("/"):
        return None
    for token in login.tokens.values():
        if token.slot.lower() == "header authorization":
            return token.provider.identity()
    return None


def person_at_gateway(seen: Evidence) -> Finding | None:
    """The rule: judged only for a person's sign-in (a provider that knows who) at this URL."""
    person = _signed_in_person(seen.prober.api_url)
    if person is None:
        return None
    check, title = "gateway-person", "Who Prefect sees behind the SSO gateway"
    no_token, control = seen.rest["no_cred"], seen.rest.get("control")
    if no_token.status is not None and 200 <= no_token.status < 300:
        return Finding(
            check, title, Outcome.FAIL,
            f"The gateway lets a request with no token through (GET /admin/version without any "
            f"credential: HTTP {no_token.status}): anyone who can reach it acts as the gateway, with "
            f"full access to Prefect. You are {person} at the gateway, but so is nobody in particular.",
            "Make the gateway refuse every request without a valid token (nginx auth_request, "
            "Traefik forwardAuth, oauth2-proxy), except GET /api/health and /api/ready.")
    if control is None or control.status != 200:
        shown = "no answer" if control is None or control.status is None else f"HTTP {control.status}"
        return Finding(check, title, Outcome.NOT_APPLICABLE,
                       f"Your sign-in as {person} was not accepted through the gateway ({shown}).")
    if seen.advertised == "BASIC":
        return Finding(
            check, title, Outcome.PASS,
            f"Requests arrive at Prefect as the gateway: it adds Prefect's auth string itself (you "
            f"hold none), so Prefect cannot tell people apart; you are {person} at the gateway, "
            f"which refused a request with no token (HTTP {no_token.status}). Who did what is in "
            "the gateway's log.")
    return Finding(
        check, title, Outcome.PASS,
        f"Prefect checks no credential of its own (its /ui-settings does not say BASIC): the gateway "
        f"is the only check, and it refused a request with no token (HTTP {no_token.status}); you "
        f"are {person} at the gateway.",
        "Keep Prefect reachable only through the gateway (a private network or loopback).")
