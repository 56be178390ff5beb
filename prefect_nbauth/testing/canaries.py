"""Canary secrets and the forms a leaked secret can take: scan any text for them.

Give the code under test a fresh :func:`make_canary` as its secret, then look for it in
everything it produced (outputs, a saved notebook, a history file, log records) with
:func:`leaks` / :func:`assert_no_secret`. A secret rarely leaks verbatim: it shows up
base64-encoded in a Basic header, percent-encoded in a URL, JSON-escaped in a widget
state, or as the password half of ``user:password``; every one of those forms is checked.
"""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import quote

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
    """``AssertionError`` (naming the form, never showing the text's secret twice) if any leaked."""
    if not secret_values:
        raise TypeError("assert_no_secret() needs at least one secret value to look for")
    found = leaks(text, *secret_values)
    assert not found, f"secret (as {found!r}) in: {text}"
