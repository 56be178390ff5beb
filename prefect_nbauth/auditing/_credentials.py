"""What the probes send behind a gateway: its headers kept, only Prefect's own credential wrong."""

from __future__ import annotations

import base64
import secrets

__all__ = ["gateway_headers", "wrong_prefect_headers"]


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
