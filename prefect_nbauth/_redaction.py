"""Keep every credential in force out of every log line and echoed message.

Our own code never logs a secret. Other libraries do, at DEBUG: websockets logs
every handshake header (``Authorization: Basic …``) and every frame, which for
Prefect's events clients includes ``{"type": "auth", "token": <raw auth
string>}`` (JSON-escaped inside a Python repr, and cut in the middle when the
frame is long). A server may echo a secret back in any encoding. A user who
turns on DEBUG logging to debug a notebook must not find their password in it.

Two rules, applied to every log record as it is created (whichever logger and
handler it goes to) and to every message we build from others' text
(:func:`scrub_text`):

- by value: every form (:func:`._secrets.secret_forms`: raw, password part,
  base64, percent, JSON, repr, hex; case-insensitive) of each secret we know:
  all secrets IN FORCE (kept by owner, never evicted while in force), the one
  being validated by a login attempt, and the most recent rotated-out ones
  (still in flight in a retry or reconnect);
- by structure, whatever the value: the token of an auth frame and the value of
  an ``Authorization`` header line, in any quoting, so that a form we did not
  think of (or a frame cut short) cannot slip through.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from ._secrets import Forms, Secret, compile_forms, secret_forms

__all__ = [
    "install",
    "redact_structure",
    "remember_secret",
    "scrub_text",
    "set_in_force",
    "validating",
]

_lock = threading.Lock()
_in_force: dict[str, tuple[str, ...]] = {}  # owner ("login", a token slot…) -> raw values
_validating: dict[int, tuple[str, ...]] = {}  # a login attempt in progress -> its raw values
# Rotated-out and validated secrets: a rotated token may still be in flight, and a
# failed login's secret may still be echoed in a message built a moment later.
_recent: deque[str] = deque(maxlen=64)
_pattern: Forms | None = None  # built lazily from all of the above; None = stale
_installed = False

_Q = r"""["'\\]*"""  # any quoting or escaping around a JSON key or value
# An auth frame: {"type": "auth", "token": …}, as text, JSON in a repr, or escaped again.
_AUTH_FRAME = re.compile(_Q + r"type" + _Q + r"\s*:\s*" + _Q + r"auth" + _Q + r"(?=\s*[,}])", re.I)
_FRAME_TOKEN = re.compile(
    r"(" + _Q + r"token" + _Q + r"\s*:\s*).*?(?=\]\s*$|'\s*\[\d+ bytes\]|$)", re.I | re.S)
# Authorization: <scheme> <value>  /  'authorization': '…'  /  (b'authorization', b'…')
_AUTH_HEADER = re.compile(
    r"(\b(?:proxy-)?authorization" + _Q + r"\s*(?:[:=]|,\s*b?)\s*" + _Q + r")"
    r"((?:basic|bearer|token|digest)\s+)?([^\s\"'\\,;}\])]+)", re.I)


def _add_recent(values: Iterable[str]) -> None:
    for value in values:
        if value and value not in _recent:
            _recent.append(value)


def _raw(value: str | Secret | None) -> str | None:
    return value.reveal() if isinstance(value, Secret) else value


def set_in_force(owner: str, values: Iterable[str | Secret | None]) -> None:
    """``values`` are now the secrets ``owner`` holds; its previous ones become recent."""
    new = tuple(v for v in (_raw(x) for x in values) if v)
    global _pattern
    with _lock:
        old = _in_force.get(owner, ())
        _add_recent(v for v in old if v not in new)
        if new:
            _in_force[owner] = new
        else:
            _in_force.pop(owner, None)
        _pattern = None
    install()


def remember_secret(value: str | Secret | None) -> None:
    """Scrub ``value`` from now on, for a while (it joins the recent secrets)."""
    raw = _raw(value)
    if not raw:
        return
    global _pattern
    with _lock:
        _add_recent([raw])
        _pattern = None
    install()


@contextmanager
def validating(values: Iterable[str | Secret | None]) -> Iterator[None]:
    """Scrub ``values`` while a login attempt runs (nothing is in force for them yet)."""
    raw = tuple(v for v in (_raw(x) for x in values) if v)
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
            _add_recent(raw)
            _pattern = None


def _current_pattern() -> Forms | None:
    global _pattern
    with _lock:
        if _pattern is None:
            values = {v for group in _in_force.values() for v in group}
            values |= {v for group in _validating.values() for v in group}
            values |= set(_recent)
            forms: set[str] = set()
            for value in values:
                forms |= secret_forms(value)
            _pattern = compile_forms(forms)
        return None if _pattern.empty else _pattern


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
    """``text`` without any known secret, in any form, nor any auth frame token or header value."""
    if not isinstance(text, str) or not text:
        return text
    pattern = _current_pattern()
    if pattern is not None:
        text = pattern.sub(text)
    return redact_structure(text)


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
