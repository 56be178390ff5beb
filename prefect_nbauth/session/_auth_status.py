"""AuthStatus: what Prefect in this process sends, said without revealing it."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .._redaction import scrub_fields

__all__ = ["AuthMode", "AuthStatus"]


class AuthMode(str, enum.Enum):
    """How Prefect authenticates: the header that decides is the Authorization one."""

    NONE = "none"  # nothing sent
    BASIC = "basic"  # PREFECT_API_AUTH_STRING as HTTP Basic (self-hosted server)
    API_KEY = "api-key"  # PREFECT_API_KEY as a Bearer token (Prefect Cloud)
    HEADERS = "headers"  # custom headers decide (a gateway in front of Prefect)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AuthStatus:
    """A snapshot of the credential in force. Holds no secret, only masked forms.

    Attributes:
        mode: which kind of credential Prefect sends.
        api_url: the API URL Prefect talks to (None: it would start an ephemeral server).
        identity: who the server sees: the auth string's user, the Cloud actor, a token's subject.
        sources: for each setting in force (``PREFECT_API_URL``, ``PREFECT_API_AUTH_STRING``, …),
            where its value came from: ``"environment variable"``, ``".env"``,
            ``"prefect.toml"``, ``"pyproject.toml"``, ``"profile NAME"`` or ``"login()"``.
        expires_at: when the credential stops working, when that can be known.
        warnings: problems and conflicts, each a sentence that says what to do.
        server_version: the server's version, when it was reachable.
        credential: the credential, masked (``"auth string admin:****"``, ``"API key pnu_****abcd"``).
        workspace: the Prefect Cloud workspace handle, in api-key mode.
        server_auth: what the server says it enforces (``"BASIC"``/``"none"``), when it says.
        logged_in: whether the credential in force was set by ``login()`` (also through the
            login form or ``%prefect_login``).
        notes: what happened that is not a problem (after a logout: "revoked the refresh
            token at …"), each a sentence.
    """

    mode: AuthMode
    api_url: str | None
    identity: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    server_version: str | None = None
    credential: str = "none"
    workspace: str | None = None
    server_auth: str | None = None
    logged_in: bool = False
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        scrub_fields(self)  # warnings quote others' text (a provider's error, a server's answer)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode.value
        data["warnings"] = list(self.warnings)
        data["notes"] = list(self.notes)
        data["expires_at"] = self.expires_at.isoformat() if self.expires_at else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [
            f"Prefect auth: {self.mode.value}" + (" (logged in with prefect_nbauth)" if self.logged_in else ""),
            f"  API URL:     {self.api_url or '<none: Prefect would start a temporary server>'}",
            f"  credential:  {self.credential}",
        ]
        if self.identity:
            lines.append(f"  identity:    {self.identity}")
        if self.workspace:
            lines.append(f"  workspace:   {self.workspace}")
        if self.server_version:
            lines.append(f"  server:      Prefect {self.server_version}"
                         + (f", auth {self.server_auth}" if self.server_auth else ""))
        if self.expires_at:
            lines.append(f"  expires at:  {self.expires_at.isoformat(timespec='seconds')}")
        for name, source in self.sources.items():
            # "saved to" is where login(persist=True) wrote the credential, not a source.
            lines.append(f"  saved to:    {source}" if name == "saved to" else f"  {name} from {source}")
        for note in self.notes:
            lines.append(f"  - {note}")
        for warning in self.warnings:
            lines.append(f"  ! {warning}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
