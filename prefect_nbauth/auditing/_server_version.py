"""Rules on versions: the server's, against the auth defects Prefect fixed, and this client's
against the server's (the event-loss pairings in :mod:`.._versions`)."""

from __future__ import annotations

from typing import Any

from .. import _versions
from ._evidence import Evidence
from ._report import Finding, Outcome

__all__ = ["KNOWN_DEFECTS", "client_server_versions", "compatibility_finding", "server_version",
           "version_finding"]

# (first fixed version, what an older server does); each read in Prefect's released source.
KNOWN_DEFECTS: tuple[tuple[str, str], ...] = (
    ("3.3.5", "/events/out answers auth_success to any token (Prefect issue #17687, fixed by "
              "PR #17741 in 3.3.5)"),
    ("3.6.14", "/events/in takes events from anyone: it never asks for the auth message "
               "(fixed in 3.6.14)"),
    ("3.6.22", "a GET whose URL path ends in 'health' or 'ready' skips the auth check, and a "
               "crafted Host header makes any path look like one (fixed by PR #21063 in 3.6.22)"),
)


def _version_tuple(text: str | None) -> Any:
    if not text:
        return None
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with Prefect
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def version_finding(version: str | None, is_cloud: bool, had_credential: bool) -> Finding:
    """The ``server-version`` finding for a server that told ``version`` (None: it did not)."""
    title = "Server version"
    if is_cloud:
        return Finding("server-version", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud is maintained by Prefect; no self-hosted version to check.")
    parsed = _version_tuple(version)
    if parsed is None:
        why = ("the server did not tell it" if had_credential
               else "it is only told to a valid credential")
        return Finding("server-version", title, Outcome.NOT_APPLICABLE,
                       f"Version unknown: {why}.")
    from packaging.version import Version

    defects = [text for fixed, text in KNOWN_DEFECTS if parsed < Version(fixed)]
    if defects:
        return Finding("server-version", title, Outcome.FAIL,
                       f"Prefect {version} has known auth defects: " + "; ".join(defects) + ".",
                       "Upgrade the server to Prefect 3.6.22 or later.")
    return Finding("server-version", title, Outcome.PASS,
                   f"Prefect {version}: no known auth defect. (Since 3.6.22 a non-ASCII server "
                   "auth string makes every credentialed request fail with HTTP 500.)")


def server_version(seen: Evidence) -> Finding:
    return version_finding(seen.version, seen.is_cloud, seen.prober.use_credential)


def client_server_versions(seen: Evidence) -> Finding:
    return compatibility_finding(seen.version, seen.advertised, seen.is_cloud)


def compatibility_finding(server_version: str | None, server_auth: str | None,
                          is_cloud: bool) -> Finding:
    """The audit's ``client-server-versions`` finding: does this client's emitter reach the server?"""
    title = "Client and server versions"
    client = _versions.client_version()
    if is_cloud:
        return Finding("client-server-versions", title, Outcome.NOT_APPLICABLE,
                       "Prefect Cloud: no self-hosted server version to pair with.")
    if _versions.parse_version(server_version) is None:
        return Finding("client-server-versions", title, Outcome.NOT_APPLICABLE,
                       f"Client Prefect {client}; the server's version is unknown.")
    problems = _versions.compatibility_warnings(server_version, server_auth,
                                      auth_string_set=server_auth == "BASIC", client=client)
    if problems:
        sentence, _, fix = problems[0].rpartition("; ")
        return Finding("client-server-versions", title, Outcome.FAIL, sentence + ".",
                       fix[:1].upper() + fix[1:])
    return Finding("client-server-versions", title, Outcome.PASS,
                   f"Client Prefect {client} and server Prefect {server_version}: events from "
                   "emit_event() and flow runs reach the server.")
