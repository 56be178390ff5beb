"""Masking: the only way a secret is ever shown.

A secret is wrapped in :class:`Secret` as soon as it enters the library, so that
an accidental ``repr``, f-string, log line or pickled traceback shows the masked
form. Code that needs the raw value calls :meth:`Secret.reveal` at the last
moment (building a header), which is easy to grep for. Making a ``Secret``
registers its value with the egress (:mod:`._redaction`), which from then on
recognises it in any text that leaves the package.
"""

from __future__ import annotations

import re
from typing import Any

from . import _redaction

__all__ = ["Secret", "auth_string_user", "mask", "mask_auth_string"]

# Keep the recognisable prefix of Prefect Cloud keys: it tells a user which kind
# of key they pasted without revealing anything usable.
_KEY_PREFIX = re.compile(r"^(pn[ub]_)")


def mask(value: str | None, *, visible: int = 4) -> str:
    """Return a form of ``value`` that is safe to show: ``****``, or ``pnu_****abcd``.

    Nothing of a password is ever shown. Only a long Prefect Cloud key keeps
    its prefix and last four characters (out of 40 random ones: harmless, and
    it tells a user which key is in force); an Authorization value keeps its
    scheme (``Basic ****``): a Basic value's tail decodes to the password's tail.
    """
    if value is None:
        return "<unset>"
    if value == "":
        return "<empty>"
    scheme, space, rest = value.partition(" ")
    if space and scheme.lower() in _SCHEMES:
        return f"{scheme} ****"
    match = _KEY_PREFIX.match(value)
    if match:
        prefix = match.group(1)
        rest = value[len(prefix):]
        if len(rest) >= 16 and rest.isalnum() and rest.isascii():
            return f"{prefix}****{rest[-visible:]}"
        return f"{prefix}****"
    return "****"


def mask_auth_string(value: str | None) -> str:
    """``user:****`` when the auth string names a user (:func:`auth_string_user`), else ``****``."""
    if not value:
        return mask(value)
    user = auth_string_user(value)
    return f"{user}:****" if user else "****"


#: What a user name in an auth string looks like: lower-case letters, digits and . _ - @ +.
_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,63}")
#: A generated hex token: 6 or more hex digits, letters and digits mixed.
_HEX_TOKEN = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{6,}")


def auth_string_user(value: str | None) -> str | None:
    """The user name of an auth string ``user:password``, or None when it has none.

    Prefect compares the whole string, so the part before a ``:`` is a user name only by
    convention. It is shown (``admin:****``, "logged in as admin") only when it looks like
    one: up to 64 lower-case letters, digits and ``. _ - @ +``, and not a run of hex
    digits mixing letters and digits, as ``secrets.token_hex()`` makes. A random string
    that merely contains a ``:`` (``Zq7x:kd9…``, ``9f86d081:…``) shows nothing of either side.
    """
    if not value or ":" not in value:
        return None
    user = value.split(":", 1)[0]
    if not _USER_NAME.fullmatch(user) or _HEX_TOKEN.fullmatch(user):
        return None
    return user


_SCHEMES = ("basic", "bearer", "token")


class Secret:
    """A string that refuses to be shown.

    ``str()``, ``repr()``, ``format()`` and pickling all give the masked form;
    equality compares the raw values in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value
        _redaction.remember_secret(value)

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
