"""Masking: the only way a secret is ever shown.

A secret is wrapped in :class:`Secret` as soon as it enters the library, so that
an accidental ``repr``, f-string, log line or pickled traceback shows the masked
form. Code that needs the raw value calls :meth:`Secret.reveal` at the last
moment (building a header), which is easy to grep for.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Secret", "compile_forms", "mask", "mask_auth_string", "redact", "secret_forms"]

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
    """``user:****`` when the auth string has a ``:`` (a user name is known), else ``****``."""
    if not value:
        return mask(value)
    if ":" in value:
        user = value.split(":", 1)[0]
        return f"{user}:****" if user else "****"
    return "****"


def secret_forms(value: str) -> set[str]:
    """Every form in which ``value`` may come back in someone else's text.

    The raw value and its password part (after the first ``:``), each in the
    encodings a server, a library or a log line may apply: base64 (standard and
    URL-safe, padded and unpadded; Basic auth), percent-encoding (URLs, form
    bodies), JSON and Python-repr escaping (frames, error bodies, log lines) and
    hex. Matching is case-insensitive (see :func:`redact`), which also covers a
    host name echoed back lower-cased.
    """
    import base64
    import json
    from urllib.parse import quote, quote_plus

    bases = {value}
    if ":" in value:
        bases.add(value.split(":", 1)[1])
    forms: set[str] = set()
    for base in bases:
        raw = base.encode("utf-8", "surrogatepass")
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            forms.update({text, text.rstrip("=")})
        forms.update({
            base, quote(base, safe=""), quote(base), quote_plus(base), raw.hex(),
            json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1],
            repr(base)[1:-1], repr(json.dumps(base))[2:-2],
            base.replace("'", "\\'"), base.replace('"', '\\"'),
        })
    # Very short forms would mask ordinary words; a password of 3 characters or less
    # is not protected by masking anyway.
    return {f for f in forms if len(f) >= _MIN_FORM}


_MIN_FORM = 3
_SCHEMES = ("basic", "bearer", "token")


def redact(text: str, *secrets: str | None) -> str:
    """Replace every form (:func:`secret_forms`) of each secret in ``text`` by ``****``.

    Used on text that came from elsewhere (a server's error body, an
    exception message from httpx) before it reaches a user.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    return compile_forms(forms).sub(text)


class Forms:
    """Matches any of a set of secret forms (case-insensitive) and masks them."""

    def __init__(self, forms: set[str]) -> None:
        ordered = sorted(forms, key=len, reverse=True)
        self.empty = not ordered
        self.pattern = re.compile("|".join(_alternative(f) for f in ordered) or r"(?!)", re.IGNORECASE)
        # "****" must not complete a secret made of '*' with its neighbours: then use a
        # filler that appears in no form.
        chars = set("".join(ordered))
        self.filler = next((c for c in "*#~\u2022\u00b7" if c not in chars), "?") * 4

    def sub(self, text: str) -> str:
        if self.empty or not text:
            return text
        return self.pattern.sub(self.filler, text)


#: A form shorter than this is matched only as a whole word: a three-letter secret ("tok")
#: must not mask the middle of ordinary words ("token").
_WHOLE_WORD_BELOW = 8


def _alternative(form: str) -> str:
    escaped = re.escape(form)
    if len(form) < _WHOLE_WORD_BELOW:
        return rf"(?<![0-9A-Za-z]){escaped}(?![0-9A-Za-z])"
    return escaped


def compile_forms(forms: set[str]) -> Forms:
    """One case-insensitive matcher of any of ``forms``, longest first."""
    return Forms(forms)


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
