"""audit() behind a gateway: probe Prefect's own check, not only the gateway's.

A gateway (an OAuth2 proxy, IAP, nginx with an introspection check) refuses
every request without its own token. Probes that replace the whole credential
with random values are then refused by the gateway, and say nothing about
Prefect behind it. So, when the credential in force has headers of a gateway
besides Prefect's own credential, the audit repeats the wrong-credential probes
with the gateway's headers KEPT and only Prefect's credential wrong (the Basic
header and the websocket auth message).

What that finds:

* Prefect refuses (401 on REST, close 1008 on sockets): Prefect checks its own
  credential behind the gateway.
* REST answers 200 to a wrong auth string: the gateway replaces the client's
  ``Authorization`` with its own Basic header (or Prefect checks none). Anyone
  the gateway lets through is the server's admin whatever auth string they
  send; a wrong or leaked auth string goes unnoticed (``login()`` succeeds with
  ``'svc:definitely-WRONG'``). That is a FAIL with what it means.
"""

from __future__ import annotations

import base64
import secrets
from typing import TYPE_CHECKING

from ._report import Finding, Outcome

if TYPE_CHECKING:  # _prober imports this module: the types only, to keep imports one-way
    from ._evidence import Evidence
    from ._prober import HttpAnswer

__all__ = ["gateway_headers", "prefect_check", "prefect_check_finding", "wrong_prefect_headers"]


def _is_prefect_authorization(value: str, token: str | None) -> bool:
    if not token:
        return False
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(rest.strip()).decode("utf-8") == token
        except (ValueError, UnicodeDecodeError):
            return False
    return scheme.lower() == "bearer" and rest.strip() == token


def gateway_headers(headers: dict[str, str], token: str | None) -> dict[str, str]:
    """The headers in force that are not Prefect's own credential (a gateway's)."""
    return {name: value for name, value in headers.items()
            if not (name.lower() == "authorization" and _is_prefect_authorization(value, token))}


def wrong_prefect_headers(headers: dict[str, str], token: str | None) -> dict[str, str]:
    """The gateway's headers as they are, and a random wrong Prefect Basic credential."""
    kept = gateway_headers(headers, token)
    if not any(n.lower() == "authorization" for n in kept):
        raw = f"nbauth-audit:{secrets.token_urlsafe(18)}".encode()
        kept["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    return kept


def prefect_check(seen: Evidence) -> Finding | None:
    """The rule: judged only when the REST probe behind the gateway ran (see ``Prober``)."""
    wrong = seen.rest.get("gateway:wrong")
    return None if wrong is None else prefect_check_finding(wrong, seen.rest.get("control"))


def prefect_check_finding(wrong: HttpAnswer, control: HttpAnswer | None) -> Finding:
    """The finding for GET /admin/version with the gateway's headers and a wrong Prefect credential."""
    check, title = "gateway-prefect-credential", "Prefect's own check behind the gateway"
    if wrong.status is None:
        return Finding(check, title, Outcome.NOT_APPLICABLE, f"No answer ({wrong.error}).")
    if wrong.status in (401, 403):
        return Finding(check, title, Outcome.PASS,
                       "With the gateway's headers kept and only the Prefect credential wrong, "
                       f"the request was refused (HTTP {wrong.status}): Prefect checks its own "
                       "credential behind the gateway.")
    if 200 <= wrong.status < 300 and control is not None and control.status == 200:
        return Finding(
            check, title, Outcome.FAIL,
            "With the gateway's headers kept, a random wrong Prefect credential was accepted "
            f"(HTTP {wrong.status}): the gateway replaces the Prefect credential with its own "
            "(or Prefect checks none). Anyone the gateway lets through has full access to the "
            "Prefect API whatever auth string they send, and a wrong or leaked auth string "
            "goes unnoticed: login() succeeds with it.",
            "If the gateway is meant to be the only check, log in without an auth string and "
            "keep the server unreachable except through the gateway. Otherwise have the "
            "gateway pass the client's Authorization header through, and start the server "
            "with PREFECT_SERVER_API_AUTH_STRING.")
    return Finding(check, title, Outcome.NOT_APPLICABLE,
                   f"With the gateway's headers and a wrong Prefect credential: HTTP {wrong.status}.")
