"""The one egress: every text we show, store, raise or log passes :func:`scrub_text`.

It knows every secret this process has seen. A :class:`~._secrets.Secret` registers
its value here the moment it is made, and past the public API every secret is a
``Secret`` (arguments at the boundary, provider tokens, refresh tokens, client
secrets, header values, the values a login is validating), so "seen" needs no
bookkeeping by callers. A header value with a scheme (``Bearer <tok>``) also
registers the bare credential, and a Basic value the string it encodes.

Recognised, in any text:

- **whole**, in every form a library, a server or a log line may apply
  (:func:`secret_forms`: raw, the password after a ``:``, base64, percent, JSON and
  Python escaping, hex; case-insensitive). A form shorter than 8 characters is
  matched only as a word of its own, so a short secret never masks the middle of
  ordinary words;
- **in part**: any run of :data:`PARTIAL_RUN` characters or more of a secret (or of
  its base64/percent/JSON form), case-insensitive, so that an echo cut short (a
  websocket close reason limited to 123 bytes, a 422 body quoting the first 40
  characters) is caught too. Only runs that look random count (a digit beside
  letters, or a capital after a small letter): no run of words, such as ``Settings``,
  ``gateway-check`` or ``password``, is ever masked by it; nor runs of a URL's host;
- **by shape**, whatever the value: the token of an auth frame
  (``{"type": "auth", "token": …}``) and the value of an ``Authorization`` header line.

Applied by construction where text leaves: our exceptions render through it
(``PrefectAuthError.__str__``), ``AuthStatus``, audit findings, refresh and stream
errors are scrubbed when made, the widgets' HTML passes it, every log record of the
process passes it as it is created (:func:`install`), and the public API boundary
scrubs every attribute of an exception on its way out.

``CONTAIN = False`` switches the egress (and the boundary, :mod:`._boundary`) off;
the containment tests use it to show that they fail without it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = [
    "CONTAIN",
    "PARTIAL_RUN",
    "install",
    "redact",
    "redact_structure",
    "remember_secret",
    "scrub_fields",
    "scrub_text",
    "secret_forms",
    "set_in_force",
    "validating",
]

#: The switch of the whole containment design (egress and boundary). Tests only.
CONTAIN = True

#: The shortest run of a secret recognised on its own: long enough that it identifies the
#: secret (8 characters mixing two kinds), short enough to catch a truncated echo.
PARTIAL_RUN = 8

#: A form shorter than this is matched only as a whole word.
_WHOLE_WORD_BELOW = 8
#: Remembered secrets besides those in force: rotated-out tokens still in flight, a failed
#: login's values echoed a moment later. The oldest are forgotten first.
_SEEN_LIMIT = 256
_SCHEMES = ("basic", "bearer", "token")


# ------------------------------------------------------------------ forms of one secret


def secret_forms(value: str) -> set[str]:
    """Every form in which ``value`` may come back in someone else's text.

    The raw value and its password part (after the first ``:``), each in the encodings a
    server, a library or a log line may apply: base64 (standard and URL-safe, padded and
    unpadded; Basic auth), percent-encoding (URLs, form bodies), JSON and Python-repr
    escaping (frames, error bodies, log lines) and hex. Forms of fewer than 3 characters
    are left out: a secret that short is not protected by masking anyway.
    """
    forms: set[str] = set()
    for base in _bases(value):
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
    return {f for f in forms if len(f) >= 3}


def _bases(value: str) -> set[str]:
    bases = {value}
    if ":" in value:
        bases.add(value.split(":", 1)[1])
    return bases


def _partial_forms(value: str) -> set[str]:
    """The forms whose runs are recognised in part (the ones echoes are cut from).

    None for a URL (a value with ``://``: one pasted where a secret belongs): runs of its
    host and port would mask every mention of that server. Its password is registered
    on its own (:func:`_with_bare`), and recognised in part.
    """
    if "://" in value:
        return set()
    out: set[str] = set()
    for base in _bases(value):
        raw = base.encode("utf-8", "surrogatepass")
        out.update({base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")})
    # In plain text, only the password part of ``user:password``: the user name is shown on
    # purpose (status(), "logged in as"), and runs of it must not mask it there.
    plain = value.split(":", 1)[1] if ":" in value else value
    out.update({plain, quote(plain, safe=""), json.dumps(plain)[1:-1]})
    return out


def _looks_random(run: str) -> bool:
    """A run that identifies a secret, not a word: a digit beside letters, or a capital after a
    small letter (``Kd9f``, ``tatus-Er``). ``Settings``, ``gateway-``, ``2026-12-04`` never are."""
    has_letter = any(c.isalpha() for c in run)
    if has_letter and any(c.isdigit() for c in run):
        return True
    return any(a.islower() and b.isupper() for a, b in zip(run, run[1:], strict=False))


def _alternative(form: str) -> str:
    escaped = re.escape(form)
    if len(form) < _WHOLE_WORD_BELOW:
        return rf"(?<![0-9A-Za-z]){escaped}(?![0-9A-Za-z])"
    return escaped


class Forms:
    """Finds secrets in text, whole (every form, case-insensitive) and in part; masks them.

    One pass looks every run of :data:`PARTIAL_RUN` characters up in an index of the runs
    of every form (most text holds no secret: that is all it costs). Each run found is an
    anchor: the match is extended left and right along its form as long as the text
    agrees, then masked if it is the whole form, or, for a form recognised in part
    (``runs_of``), if the anchor looks random (:func:`_looks_random`). Forms shorter than the run
    are few and matched by a regex, as whole words.
    """

    def __init__(self, forms: set[str], runs_of: Iterable[str] = ()) -> None:
        partial = {f.lower() for f in runs_of}
        short = sorted((f for f in forms if len(f) < PARTIAL_RUN), key=len, reverse=True)
        self.short = re.compile("|".join(_alternative(f) for f in short), re.IGNORECASE) if short else None
        # run -> [(form, offset of the run in it, whether the form counts in part)]
        self.index: dict[str, list[tuple[str, int, bool]]] = {}
        for form in {f.lower() for f in forms if len(f) >= PARTIAL_RUN} | partial:
            in_part = form in partial
            for i in range(len(form) - PARTIAL_RUN + 1):
                self.index.setdefault(form[i:i + PARTIAL_RUN], []).append((form, i, in_part))
        self.empty = not self.index and self.short is None
        # "****" must not complete a secret made of '*' with its neighbours: then use a
        # filler that appears in no form.
        chars = set("".join(forms))
        self.filler = next((c for c in "*#~\u2022\u00b7" if c not in chars), "?") * 4

    def sub(self, text: str) -> str:
        if self.empty or not text:
            return text
        if self.short is not None:
            text = self.short.sub(self.filler, text)
        spans = self._spans(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], self.filler]
            last = end
        out.append(text[last:])
        return "".join(out)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """The stretches of ``text`` that are secrets, merged, in order."""
        lowered, index, size = text.lower(), self.index, PARTIAL_RUN
        found: list[tuple[int, int]] = []
        covered_to = 0
        for i in range(len(lowered) - size + 1):
            entries = index.get(lowered[i:i + size])
            if entries is None or i + size <= covered_to:
                continue
            for form, offset, in_part in entries:
                start, end = i, i + size
                while start > 0 and offset - (i - start) > 0 and lowered[start - 1] == form[offset - (i - start) - 1]:
                    start -= 1
                tail = offset + size
                while end < len(lowered) and tail + (end - i - size) < len(form) \
                        and lowered[end] == form[tail + (end - i - size)]:
                    end += 1
                whole = end - start == len(form)
                if whole or (in_part and _looks_random(text[i:i + size])):
                    if not whole:  # a run found in part keeps the spaces around it readable
                        while lowered[start].isspace():
                            start += 1
                        while lowered[end - 1].isspace():
                            end -= 1
                    found.append((start, end))
                    covered_to = max(covered_to, end)
        found.sort()
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def compile_forms(forms: set[str], runs_of: Iterable[str] = ()) -> Forms:
    """One matcher of any of ``forms`` (whole) and of runs of ``runs_of`` (in part)."""
    return Forms(forms, runs_of)


def redact(text: str, *secrets: str | None) -> str:
    """Replace every form (:func:`secret_forms`) and every long run of each secret in ``text``."""
    values = [s for s in secrets if s]
    if not values or not CONTAIN:
        return text
    forms: set[str] = set()
    partial: set[str] = set()
    for value in values:
        forms |= secret_forms(value)
        partial |= _partial_forms(value)
    return compile_forms(forms, partial).sub(text)


# ------------------------------------------------------------- every secret seen here

_lock = threading.Lock()
_in_force: dict[str, tuple[str, ...]] = {}  # owner ("login", …) -> raw values, never forgotten while in force
_validating: dict[int, tuple[str, ...]] = {}  # a login attempt in progress -> its raw values
_seen: OrderedDict[str, None] = OrderedDict()  # every other secret made, most recent last
_pattern: Forms | None = None  # built lazily from all of the above; None = stale
_installed = False


def _raw(value: Any) -> str | None:
    reveal = getattr(value, "reveal", None)
    value = reveal() if callable(reveal) else value
    return value if isinstance(value, str) and value else None


def _with_bare(value: str) -> list[str]:
    """The value, and what a header value with a scheme carries (``Bearer <tok>``, ``Basic <b64>``)."""
    out = [value]
    if "://" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            password = None
        if password:
            out.append(unquote(password))
    scheme, space, rest = value.partition(" ")
    rest = rest.strip()
    if space and rest and scheme.lower() in _SCHEMES:
        out.append(rest)
        if scheme.lower() == "basic":
            try:
                out.append(base64.b64decode(rest, validate=True).decode("utf-8"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                pass
    return [v for v in out if len(v) >= 3 and "****" not in v]


def _add_seen(values: Iterable[str]) -> bool:
    added = False
    for value in values:
        for one in _with_bare(value):
            if one in _seen:
                _seen.move_to_end(one)
                continue
            _seen[one] = None
            added = True
            while len(_seen) > _SEEN_LIMIT:
                _seen.popitem(last=False)
    return added


def remember_secret(value: Any) -> None:
    """Recognise ``value`` from now on (a :class:`~._secrets.Secret` does this when it is made)."""
    raw = _raw(value)
    if not raw:
        return
    global _pattern
    with _lock:
        if _add_seen([raw]):
            _pattern = None
    install()  # from the first secret on, every log record of the process is scrubbed


def set_in_force(owner: str, values: Iterable[Any]) -> None:
    """``values`` are now the secrets ``owner`` holds (never forgotten while they are)."""
    new = tuple(v for raw in (_raw(x) for x in values) if raw for v in _with_bare(raw))
    global _pattern
    with _lock:
        old = _in_force.get(owner, ())
        _add_seen(v for v in old if v not in new)
        if new:
            _in_force[owner] = new
        else:
            _in_force.pop(owner, None)
        _pattern = None
    install()


@contextmanager
def validating(values: Iterable[Any]) -> Iterator[None]:
    """Recognise ``values`` while a login attempt runs (and, after it, as seen secrets)."""
    raw = tuple(v for r in (_raw(x) for x in values) if r for v in _with_bare(r))
    key = id(raw)
    global _pattern
    with _lock:
        _validating[key] = raw
        _pattern = None
    install()
    try:
        yield
    finally:
        with _lock:
            _validating.pop(key, None)
            _add_seen(raw)
            _pattern = None


def _current_pattern() -> Forms | None:
    global _pattern
    with _lock:
        if _pattern is None:
            values = {v for group in _in_force.values() for v in group}
            values |= {v for group in _validating.values() for v in group}
            values |= set(_seen)
            forms: set[str] = set()
            partial: set[str] = set()
            for value in values:
                forms |= secret_forms(value)
                partial |= _partial_forms(value)
            _pattern = compile_forms(forms, partial)
        return None if _pattern.empty else _pattern


# ------------------------------------------------------------------------- the egress

_Q = r"""["'\\]*"""  # any quoting or escaping around a JSON key or value
# An auth frame: {"type": "auth", "token": …}, as text, JSON in a repr, or escaped again.
_AUTH_FRAME = re.compile(_Q + r"type" + _Q + r"\s*:\s*" + _Q + r"auth" + _Q + r"(?=\s*[,}])", re.I)
_FRAME_TOKEN = re.compile(
    r"(" + _Q + r"token" + _Q + r"\s*:\s*).*?(?=\]\s*$|'\s*\[\d+ bytes\]|$)", re.I | re.S)
# Authorization: <scheme> <value>  /  'authorization': '…'  /  (b'authorization', b'…')
_AUTH_HEADER = re.compile(
    r"(\b(?:proxy-)?authorization" + _Q + r"\s*(?:[:=]|,\s*b?)\s*" + _Q + r")"
    r"((?:basic|bearer|token|digest)\s+)?([^\s\"'\\,;}\])]+)", re.I)


def redact_structure(text: str) -> str:
    """Mask the token of an auth frame and the value of an Authorization header, by shape."""
    lowered = text.lower()
    if "auth" not in lowered:
        return text
    if _AUTH_FRAME.search(text):
        masked = _FRAME_TOKEN.sub(r'\1"****"}', text)
        if masked == text:  # the token key itself was cut out of a shortened frame
            start = _AUTH_FRAME.search(text).end()  # type: ignore[union-attr]
            masked = text[:start] + ", ****"
        text = masked
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) or "") + "****", text)
    return text


def scrub_text(text: str) -> str:
    """``text`` without any secret seen here, whole or in part, nor an auth frame token or header value."""
    if not isinstance(text, str) or not text or not CONTAIN:
        return text
    pattern = _current_pattern()
    if pattern is not None:
        text = pattern.sub(text)
    return redact_structure(text)


def scrub_fields(record: Any) -> None:
    """Pass every text field of a (frozen) dataclass through the egress, in place.

    Called from the ``__post_init__`` of every record of text that leaves the package
    (``AuthStatus``, audit findings, stream stats): a field added later is covered too.
    """
    import dataclasses

    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, str):
            cleaned: Any = scrub_text(value)
        elif isinstance(value, tuple) and any(isinstance(v, str) for v in value):
            cleaned = tuple(scrub_text(v) if isinstance(v, str) else v for v in value)
        elif isinstance(value, dict) and any(isinstance(v, str) for v in value.values()):
            cleaned = {k: scrub_text(v) if isinstance(v, str) else v for k, v in value.items()}
        else:
            continue
        if cleaned != value:
            object.__setattr__(record, field.name, cleaned)


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
        return
    scrubbed = scrub_text(message)
    if scrubbed != message:
        record.msg = scrubbed
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        # The traceback text is rendered later from exc_info: pre-render it scrubbed.
        import traceback

        rendered = "".join(traceback.format_exception(*record.exc_info))
        cleaned = scrub_text(rendered)
        if cleaned != rendered:
            record.exc_text = cleaned
            record.exc_info = None


def install() -> None:
    """Scrub every log record of the process from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
