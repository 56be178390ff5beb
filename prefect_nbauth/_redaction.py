"""Keep the credential in force out of every log line of the process.

Our own code never logs a secret. Other libraries do, at DEBUG: websockets logs
every handshake header (``Authorization: Basic …``) and every frame, which for
Prefect's events clients includes ``{"type": "auth", "token": <raw auth
string>}``. A user who turns on DEBUG logging to debug a notebook should not
find their password in the output.

So, once a credential is logged in, the log-record factory scrubs it (in raw,
Basic/base64 and Bearer forms) from every record as it is created, whichever
logger and handler it goes to. Records are only built for enabled levels, so
the cost is a substring search per emitted line.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from typing import Any, Callable

from ._secrets import redact

__all__ = ["forget_secrets", "install", "remember_secret", "scrub_text"]

_lock = threading.Lock()
# The most recent secrets: the current ones and a few rotated-out tokens that may
# still be in flight in a retry or a reconnect.
_secrets: deque[str] = deque(maxlen=32)
_installed = False
_previous_factory: Callable[..., logging.LogRecord] | None = None


def remember_secret(value: str | None) -> None:
    """Scrub ``value`` (and its Basic/base64 form) from log records from now on."""
    if not value or len(value) < 4:
        return
    forms = {value, base64.b64encode(value.encode("utf-8")).decode("ascii")}
    with _lock:
        for form in forms:
            if form not in _secrets:
                _secrets.append(form)
    install()


def scrub_text(text: str) -> str:
    """``text`` with every remembered secret masked (for messages built from others' text)."""
    with _lock:
        secrets = list(_secrets)
    return redact(text, *secrets) if secrets else text


def forget_secrets() -> None:
    with _lock:
        _secrets.clear()


def _scrub(record: logging.LogRecord) -> None:
    with _lock:
        secrets = list(_secrets)
    if not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
        return
    if any(s in message for s in secrets):
        record.msg = redact(message, *secrets)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = str(record.exc_info[1])
        if any(s in text for s in secrets):
            # The traceback text is rendered later from exc_info: pre-render it scrubbed.
            import traceback

            rendered = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(rendered, *secrets)
            record.exc_info = None


def install() -> None:
    global _installed, _previous_factory
    with _lock:
        if _installed:
            return
        _previous_factory = logging.getLogRecordFactory()
        previous = _previous_factory

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
