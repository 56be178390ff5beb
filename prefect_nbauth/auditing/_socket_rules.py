"""Rules on each event socket (``/events/out``, ``/events/in``, ``/logs/out``).

Per socket: does the credential in force get in, and is it refused without the
``prefect`` subprotocol, without the auth message, and with a random wrong token.
"""

from __future__ import annotations

import functools

from ._evidence import SOCKET_PATHS, Evidence, Rule, refusal
from ._prober import SocketAnswer, where
from ._report import Finding, Outcome
from ._rest_rules import NON_ASCII_FIX

__all__ = ["SOCKET_RULES", "judge_socket", "socket_probe", "socket_your_credential"]

# (probe, how the title says it), in report order
_PROBES = (
    ("no-subprotocol", "without the 'prefect' subprotocol"),
    ("no-auth", "without an auth message"),
    ("wrong-token", "with a random wrong token"),
)
_UPGRADE = "Upgrade the server to Prefect 3.6.22 or later (the first with no known auth defect)."


def _check(path: str, suffix: str) -> str:
    return f"socket-{path.replace('/', '-')}-{suffix}"


def _crashed(res: SocketAnswer | None) -> bool:
    """Accepted, then closed without a proper close code: the server failed, it did not refuse."""
    return (res is not None and res.kind == "accepted"
            and (res.answer in ("closed None", "closed 1006") or res.answer.startswith("closed 1011")))


def socket_your_credential(seen: Evidence, path: str) -> Finding | None:
    """A FAIL when ``path`` refused the auth message of the credential in force; else nothing."""
    control = seen.sockets.get(f"{path}:control")
    # Accepted with the 'prefect' subprotocol and closed 1008: the socket is there and
    # Prefect refused the auth message of the credential in force.
    if not (control is not None and control.kind == "accepted"
            and control.subprotocol == "prefect" and control.answer.startswith("closed 1008")):
        return None
    return Finding(_check(path, "your-credential"), f"Socket /{path} with your credential", Outcome.FAIL,
                   f"/{path} refused the auth message of the credential in force "
                   f"({control.answer}): events and live streams fail.",
                   "Log in with the auth string the server was started with "
                   "(prefect_nbauth.login(URL, auth_string=…)).")


def _absent(seen: Evidence, path: str) -> str:
    """Why ``path`` seems not to be there ("" when it is): it refuses your credential too."""
    control = seen.sockets.get(f"{path}:control")
    # Refusing everyone, you included, proves nothing: the socket may not exist there.
    # A control that crashed (non-ASCII server auth string) still shows the socket exists,
    # so the refusals stand; the crash itself is reported by the wrong-token probe.
    if control is None or _crashed(control) or socket_your_credential(seen, path) is not None:
        return ""
    if control.kind in ("refused", "redirect", "error") or (
            control.kind == "accepted" and control.answer != "auth_success"):
        older = " (it is not in Prefect 3.4.0 and older)" if path == "logs/out" else ""
        return (f"/{path} refuses your credential too ({_describe_socket(control)}); the "
                f"server probably has no such socket{older}, or a proxy blocks websockets.")
    return ""


def socket_probe(seen: Evidence, path: str, probe: str) -> Finding:
    """The verdict on one refusal probe of ``path`` (``probe`` is one of :data:`_PROBES`)."""
    res = seen.sockets[f"{path}:{probe}"]
    title = f"Socket /{path} {dict(_PROBES)[probe]}"
    outcome, detail = judge_socket(probe, res)
    absent = _absent(seen, path)
    if outcome is Outcome.PASS and absent:
        outcome, detail = Outcome.NOT_APPLICABLE, absent
    fix = ""
    if outcome is Outcome.FAIL:
        if _crashed(res) and res.subprotocol == "prefect":
            fix = NON_ASCII_FIX
        elif refusal(seen.rest["no_cred"]):  # the server checks credentials on REST
            fix = _UPGRADE
        else:
            fix = ("Start the server with PREFECT_SERVER_API_AUTH_STRING: sockets are "
                   "checked only then.")
    return Finding(_check(path, probe), title, outcome, detail, fix)


def _describe_socket(res: SocketAnswer) -> str:
    if res.kind == "refused":
        return f"refused, HTTP {res.status}" if res.status else f"refused, {res.answer}"
    if res.kind == "redirect":
        return f"redirected (HTTP {res.status}) to {where(res.location)}"
    if res.kind == "error":
        return res.error
    if _crashed(res):
        code = res.answer.split(" ", 2)[1]
        return ("accepted, then dropped with no close code" if code == "None"
                else f"accepted, then closed with code {code}, a server error")
    return res.answer or "accepted"


def judge_socket(probe: str, res: SocketAnswer) -> tuple[Outcome, str]:
    """What one socket probe's answer means: refused is a pass, accepted a fail, unclear n/a."""
    if res.kind == "error":
        return Outcome.NOT_APPLICABLE, f"Could not tell: {res.error}."
    if res.kind == "refused":
        return Outcome.PASS, f"Refused at the handshake ({_describe_socket(res)})."
    if res.kind == "redirect":
        return Outcome.PASS, (f"Not accepted: redirected (HTTP {res.status}) to "
                              f"{where(res.location)}; see the redirect check.")
    # Accepted at the handshake.
    if probe == "no-subprotocol":
        return Outcome.FAIL, ("Accepted a socket that skipped the 'prefect' subprotocol, so it "
                              "never asks for the auth message: anyone who can reach the server "
                              "can use it.")
    if res.subprotocol != "prefect":
        return Outcome.FAIL, ("Accepted the socket without the 'prefect' auth handshake (it did "
                              "not select the subprotocol): it never checks a token.")
    if res.answer == "auth_success":
        what = "a random wrong token" if probe == "wrong-token" else "a socket without an auth message"
        return Outcome.FAIL, f"Answered auth_success to {what}."
    if _crashed(res):
        return Outcome.FAIL, (f"The server failed instead of refusing ({_describe_socket(res)}): "
                              "its token check itself is broken.")
    if res.answer.startswith("closed"):
        return Outcome.PASS, f"Closed the socket ({res.answer})."
    if res.answer == "silent":
        return Outcome.NOT_APPLICABLE, "Accepted the socket but gave no answer in time; could not tell."
    return Outcome.FAIL, f"Accepted the socket and answered with a {res.answer} instead of refusing."


def _rules_for(path: str) -> tuple[Rule, ...]:
    """The rules of one socket, in report order: your credential (only when refused), then each probe."""
    mine: Rule = functools.partial(socket_your_credential, path=path)
    probes: tuple[Rule, ...] = tuple(functools.partial(socket_probe, path=path, probe=probe)
                                     for probe, _ in _PROBES)
    return (mine, *probes)


SOCKET_RULES: tuple[Rule, ...] = tuple(rule for path in SOCKET_PATHS for rule in _rules_for(path))
