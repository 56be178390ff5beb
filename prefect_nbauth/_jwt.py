"""Reading a JWT's claims WITHOUT verifying it: only to show who and until when.

Nothing here decides whether a token is valid; servers and gateways do that. The
toolkit reads a token's ``exp`` to plan its refresh and its ``email``/``sub`` to say
who it speaks for.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

__all__ = ["expiry_of", "jwt_claims"]


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, read WITHOUT verifying it: only to show expiry and subject."""
    if token.lower().startswith("bearer "):
        token = token[7:]
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def expiry_of(claims: dict[str, Any] | None) -> datetime | None:
    if not claims:
        return None
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        try:
            return datetime.fromtimestamp(exp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None
