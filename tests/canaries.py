"""The forms a leaked secret can take, and the check every secret-scanning test uses.

One definition for the whole suite: a test that scans an output, a saved notebook,
a history file or a log record for a canary looks for every form here.
"""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import quote

from constants import AUTH_STRING

__all__ = ["assert_no_secret", "forms_of", "leak_forms", "leaks", "make_canary"]


def make_canary(user: str | None = "nbuser") -> str:
    """A fresh secret with the characters that escape differently everywhere (``"``, ``'``, ``\\``)."""
    core = 'p"q\'r\\s-CANARY' + secrets.token_hex(20)  # 55 characters
    return f"{user}:{core}" if user else core


def leak_forms(secret: str) -> set[str]:
    """Raw, password-only, base64 (padded, unpadded, URL-safe), percent-encoded and JSON-escaped."""
    out: set[str] = set()
    values = {secret, secret.split(":", 1)[1]} if ":" in secret else {secret}
    for value in values:
        raw = value.encode()
        b64 = base64.b64encode(raw).decode()
        out |= {value, b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
                quote(value, safe=""), quote(value), json.dumps(value)[1:-1]}
    return {form for form in out if form}


def forms_of(*secret_values: str) -> list[str]:
    """Every form of every one of ``secret_values``, sorted (a stable order for scans)."""
    return sorted(set().union(*(leak_forms(s) for s in secret_values)))


def leaks(text: str, *secret_values: str) -> list[str]:
    """The forms of ``secret_values`` found in ``text`` (case-insensitive: hosts come back lower-cased)."""
    lowered = text.lower()
    return sorted(f for s in secret_values for f in leak_forms(s) if f.lower() in lowered)


def assert_no_secret(text: str, *secret_values: str) -> None:
    found = leaks(text, *(secret_values or (AUTH_STRING,)))
    assert not found, f"secret (as {found!r}) in: {text}"
