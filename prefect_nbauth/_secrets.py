"""Masking: the only way a secret is ever shown.

A secret is wrapped in :class:`Secret` as soon as it enters the library, so that
an accidental ``repr``, f-string, log line or pickled traceback shows the masked
form. Code that needs the raw value calls :meth:`Secret.reveal` at the last
moment (building a header), which is easy to grep for.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Secret", "mask", "redact"]

# Keep the recognisable prefix of Prefect Cloud keys: it tells a user which kind
# of key they pasted without revealing anything usable.
_KEY_PREFIX = re.compile(r"^(pn[ub]_)")


def mask(value: str | None, *, visible: int = 4) -> str:
    """Return a form of ``value`` that is safe to show: ``pnu_****abcd``.

    Short values show nothing at all: revealing four characters of an
    eight-character password gives half of it away.
    """
    if value is None:
        return "<unset>"
    if value == "":
        return "<empty>"
    prefix = ""
    match = _KEY_PREFIX.match(value)
    if match:
        prefix = match.group(1)
    rest = value[len(prefix):]
    if len(rest) < 16:
        return f"{prefix}****"
    return f"{prefix}****{rest[-visible:]}"


def redact(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each secret in ``text`` by its masked form.

    Used on text that came from elsewhere (a server's error body, an
    exception message from httpx) before it reaches a user.
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= 3:
            masked = text.replace(secret, mask(secret))
            if secret in masked:
                # The mask completed the secret with its neighbours ("aa***" less "a***").
                # A filler that shares no character with the secret cannot.
                filler = next((c for c in "*#~\u2022\u00b7" if c not in secret), "?")
                masked = text.replace(secret, filler * 4)
            text = masked
    return text


class Secret:
    """A string that refuses to be shown.

    ``str()``, ``repr()``, ``format()`` and pickling all give the masked form;
    equality compares the raw values in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The raw value. Call it only where the value leaves for the server."""
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: Any) -> bool:
        import hmac

        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other.encode("utf-8"))

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, cloudpickle of a flow's closure) must not
        # carry the raw value anywhere.
        return (Secret, (self.masked,))
