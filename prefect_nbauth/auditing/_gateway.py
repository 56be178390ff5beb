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

from typing import TYPE_CHECKING

from ._report import Finding, Outcome

if TYPE_CHECKING:
    from ._evidence import Evidence
    from ._prober import HttpAnswer

__all__ = ["prefect_check", "prefect_check_finding"]


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
