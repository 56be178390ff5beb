"""Rules on the REST API: without a credential, with a wrong one, with yours; open endpoints;
the health-check exemption of older servers."""

from __future__ import annotations

from ._evidence import PUBLIC_CANDIDATES, Evidence, refusal
from ._report import Finding, Outcome

__all__ = ["NON_ASCII_FIX", "health_exemption", "no_credential", "public_endpoints",
           "wrong_credential", "your_credential"]

NON_ASCII_FIX = ("If the server's PREFECT_SERVER_API_AUTH_STRING contains non-ASCII characters, "
                 "Prefect (3.6.22 and later) fails on every credential: give it an ASCII auth "
                 "string and restart it.")

_FIX_OPEN = ("Start the server with PREFECT_SERVER_API_AUTH_STRING='user:password' (or put an "
             "authenticating gateway in front), then log in with that auth string.")


def no_credential(seen: Evidence) -> Finding:
    check, title = "rest-no-credential", "REST without credentials"
    res = seen.rest["no_cred"]
    if res.status is None:
        return Finding(check, title, Outcome.NOT_APPLICABLE,
                       f"GET /admin/version gave no answer ({res.error}).")
    if refusal(res):
        return Finding(check, title, Outcome.PASS,
                       f"GET /admin/version without credentials was refused (HTTP {res.status}).")
    if 200 <= res.status < 300:
        return Finding(check, title, Outcome.FAIL,
                       "GET /admin/version answered HTTP 200 without any credential: the API "
                       "is open to anyone who can reach it.", _FIX_OPEN)
    return Finding(check, title, Outcome.FAIL if res.status >= 500 else Outcome.NOT_APPLICABLE,
                   f"GET /admin/version without credentials answered HTTP {res.status}, "
                   "neither a refusal nor an answer.",
                   "Check the server's logs." if res.status >= 500 else "")


def wrong_credential(seen: Evidence) -> Finding:
    check, title = "rest-wrong-credential", "REST with a wrong credential"
    wrong = seen.rest["wrong"]
    if wrong.status is None:
        return Finding(check, title, Outcome.NOT_APPLICABLE, f"No answer ({wrong.error}).")
    if refusal(wrong):
        return Finding(check, title, Outcome.PASS,
                       f"A random wrong credential was refused (HTTP {wrong.status}).")
    if wrong.status >= 500:
        return Finding(check, title, Outcome.FAIL,
                       f"A random wrong credential got HTTP {wrong.status} instead of 401: the "
                       "server's auth check itself fails.", NON_ASCII_FIX)
    if 200 <= wrong.status < 300:
        return Finding(check, title, Outcome.FAIL,
                       "A random wrong credential was accepted (HTTP 200).", _FIX_OPEN)
    return Finding(check, title, Outcome.NOT_APPLICABLE, f"Answered HTTP {wrong.status}.")


def your_credential(seen: Evidence) -> Finding:
    check, title = "your-credential", "Your credential"
    control, wrong = seen.rest.get("control"), seen.rest["wrong"]
    if control is None:
        return Finding(check, title, Outcome.NOT_APPLICABLE,
                       "No credential in force for this URL, so none was tried.")
    if control.status == 200:
        return Finding(check, title, Outcome.PASS,
                       "The server accepts the credential in force (GET /admin/version: 200).")
    if control.status is not None and control.status >= 500:
        return Finding(check, title, Outcome.FAIL,
                       f"The server answered HTTP {control.status} to your credential.", NON_ASCII_FIX)
    if control.status is None:
        broken = wrong.status is not None and wrong.status >= 500
        return Finding(check, title, Outcome.FAIL,
                       f"The server gave no answer to your credential ({control.error}).",
                       NON_ASCII_FIX if broken else "Check the server's logs; "
                       "prefect_nbauth.status() says what is sent.")
    return Finding(check, title, Outcome.FAIL,
                   f"The server refused the credential in force (HTTP {control.status}).",
                   "Log in again with the credential the server expects "
                   "(prefect_nbauth.login(…)); prefect_nbauth.status() says what is sent.")


def public_endpoints(seen: Evidence) -> Finding:
    answered = [name for name, *_ in PUBLIC_CANDIDATES
                if (res := seen.rest[f"public:{name}"]).status is not None and 200 <= res.status < 300]
    title = "Endpoints open without credentials"
    if answered:
        return Finding("public-endpoints", title, Outcome.FAIL,
                       f"Besides /health and /ready, these answered without credentials: "
                       f"{', '.join(answered)}.",
                       "Start the server with PREFECT_SERVER_API_AUTH_STRING, or put an "
                       "authenticating gateway in front of every path.")
    return Finding("public-endpoints", title, Outcome.PASS,
                   f"Only /health and /ready answer without credentials (tried {len(PUBLIC_CANDIDATES)} others).")


def health_exemption(seen: Evidence) -> Finding:
    title = "Health-check exemption"
    if seen.is_cloud or not refusal(seen.rest["no_cred"]):
        return Finding("health-exemption", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud has its own auth." if seen.is_cloud else
                       "The API answers without credentials anyway; nothing to bypass.")
    bypassed = []
    if seen.rest["host"].status == 200:
        bypassed.append("GET /admin/version answered 200 without credentials when the Host "
                        "header ended in '/health?'")
    if seen.rest["suffix"].status == 404:
        bypassed.append("GET /flows/name/…-health reached the API without credentials (404, not 401)")
    if bypassed:
        return Finding("health-exemption", title, Outcome.FAIL,
                       "; ".join(bypassed) + ": the auth check skips any GET whose path ends in "
                       "'health' or 'ready', so every GET endpoint is readable by anyone.",
                       "Upgrade the server to Prefect 3.6.22 or later; until then, have a proxy "
                       "in front reject Host headers that contain '/'.")
    return Finding("health-exemption", title, Outcome.PASS,
                   "A path ending in 'health' and a crafted Host header were both refused.")
