"""Which Prefect versions prefect_nbauth works with, and which pairings lose events.

Every fact here was measured with each Prefect client in its own venv against real servers
(``tests/test_versions_matrix.py`` runs them in CI) and read in Prefect's released source:

- ``PREFECT_CLIENT_CUSTOM_HEADERS`` (``ClientSettings.custom_headers``) first exists in 3.4.8,
  ``prefect._internal.websockets`` (whose redirects login() turns off) in 3.4.7. Older clients
  cannot carry a gateway header nor be guarded, so 3.4.8 is the floor.
- Prefect's event publisher (``PrefectEventsClient``, behind ``emit_event`` and the task-run
  state events the client-side task engine emits) opens ``/events/in`` with the ``prefect``
  subprotocol and an auth message only from 3.6.14 on. A server that enforces an auth string
  refuses older publishers (HTTP 403), and the client only logs it: the events are lost.
  Flow-run state events are written by the server itself and arrive either way.
- From 3.6.14 on the publisher always sends that auth message first, even with no auth
  string. Servers before 3.6.14 read it as an event, fail to validate it and drop the socket,
  so every emitted event is lost; with an auth string they also log the validation error,
  whose shortened input shows the end of the auth string (the password) in clear.
"""

from __future__ import annotations

from typing import Any

from ._exceptions import ConfigurationError

__all__ = [
    "CLIENT_FLOOR",
    "EMITTER_HANDSHAKE",
    "client_version",
    "compatibility_warnings",
    "parse_version",
    "require_supported_client",
]

CLIENT_FLOOR = "3.4.8"
# The release whose publisher speaks the ``prefect`` subprotocol + auth message on /events/in,
# and whose server accepts exactly that there (both sides changed together in 3.6.14).
EMITTER_HANDSHAKE = "3.6.14"


def parse_version(version: str | None) -> Any:
    """A comparable version, or None when ``version`` is not a plain Prefect 3 release number."""
    if not version or not isinstance(version, str):
        return None
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version.strip())
    except InvalidVersion:
        return None
    return parsed if parsed.major == 3 else None


def client_version() -> str:
    """The installed Prefect's version (``prefect.__version__``)."""
    import prefect

    return str(getattr(prefect, "__version__", "unknown"))


def require_supported_client(installed: str | None = None) -> None:
    """Raise ONE ConfigurationError naming both versions when the installed Prefect is too old.

    Called first by login() and status(), so an old Prefect never surfaces as an
    AttributeError or ModuleNotFoundError from deep inside a seam.
    """
    installed = installed if installed is not None else client_version()
    parsed = parse_version(installed)
    if parsed is not None and parsed >= parse_version(CLIENT_FLOOR):
        return
    if parsed is None and installed[:1].isdigit() and int(installed.split(".")[0]) >= 4:
        raise ConfigurationError(
            f"prefect_nbauth works with Prefect 3 ({CLIENT_FLOOR} or newer), but Prefect "
            f"{installed} is installed, which it was never tested with. Install "
            "'prefect>=3.6.14,<4', or a prefect_nbauth release made for Prefect 4."
        )
    raise ConfigurationError(
        f"prefect_nbauth needs Prefect {CLIENT_FLOOR} or newer, but Prefect {installed} is "
        "installed (it has no PREFECT_CLIENT_CUSTOM_HEADERS and no guardable websocket "
        f"connect). Upgrade the client: pip install -U 'prefect>={EMITTER_HANDSHAKE}' "
        f"({EMITTER_HANDSHAKE} or newer also delivers events to auth-protected servers)."
    )


def compatibility_warnings(server_version: str | None, server_auth: str | None, *,
                           auth_string_set: bool, client: str | None = None) -> list[str]:
    """One sentence per measured client x server pairing that loses events.

    ``server_auth`` is what the server advertises (``"BASIC"``, ``"none"``, ``"API key"`` for
    Cloud, or None when unknown); when unknown, an auth string in force stands for BASIC.
    Nothing is said when the server's version is unknown or not a Prefect 3 release (Cloud).
    """
    if server_auth == "API key":
        return []  # Prefect Cloud: its events endpoint authenticates by header, not handshake
    client = client if client is not None else client_version()
    c, s = parse_version(client), parse_version(server_version)
    if c is None or s is None:
        return []
    fixed = parse_version(EMITTER_HANDSHAKE)
    enforced = server_auth == "BASIC" or (server_auth is None and auth_string_set)
    warnings: list[str] = []
    if c < fixed <= s and enforced:
        warnings.append(
            f"Events are lost: this Prefect client ({client}) sends events without the "
            f"'prefect' websocket subprotocol that the {server_version} server requires when "
            "it enforces an auth string, so events from emit_event() and task runs are "
            f"refused (logged, not raised); upgrade the client to Prefect {EMITTER_HANDSHAKE} "
            "or newer."
        )
    if s < fixed <= c:
        leak = (" (writing part of your auth string into its own error log)" if enforced else "")
        warnings.append(
            f"Events are lost: the server runs Prefect {server_version}, which reads the auth "
            f"message this {client} client sends first on /events/in as a bad event and drops "
            f"the connection{leak}, so events from emit_event() and task runs never "
            f"arrive; upgrade the server to Prefect {EMITTER_HANDSHAKE} or newer (3.6.22 or newer fixes its "
            f"known auth defects too), or pin the client below {EMITTER_HANDSHAKE}."
        )
    return warnings
