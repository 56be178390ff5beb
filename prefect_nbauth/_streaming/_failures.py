"""What a stream's failures mean, said without secrets.

Everything a stream does to reach Prefect raises one of three things:
:class:`AuthRejected` (the server refused the credential: HTTP 401/403, or a
websocket close 1008), :class:`Retryable` (anything that may pass: a refused
connection, a timeout, HTTP 5xx, a connection cut mid-frame) or a terminal
:class:`~prefect_nbauth.PrefectAuthError` (not a Prefect API, a filter the
server refuses). No message built here contains a secret: text that came from
elsewhere goes through :func:`scrub` with the credential's values first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._exceptions import PrefectAuthError
from .._redaction import redact, scrub_text

__all__ = ["AuthRejected", "Retryable", "classify_closed", "describe", "scrub", "wait_for"]


async def wait_for(awaitable: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for`` that never swallows a cancellation.

    On Python < 3.12, ``asyncio.wait_for`` returns the inner result when the
    outer task is cancelled just as the inner one finishes, and the
    cancellation is lost: a stream asked to stop would run on.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        raise asyncio.TimeoutError
    return task.result()


class AuthRejected(Exception):
    """The server refused the credential; ``how`` says how (no secret in it)."""

    def __init__(self, how: str, status_code: int | None = None) -> None:
        super().__init__(how)
        self.how = how
        self.status_code = status_code


class Retryable(Exception):
    """A failure that may pass: try again after a backoff."""


def scrub(text: str, credential: Any) -> str:
    """Others' text without the credential (every form), any secret in force, or an auth frame."""
    if credential is not None:
        text = redact(text, *(value.reveal() for value in credential.secrets()))
    return scrub_text(text)


def _close_code(exc: BaseException) -> int | None:
    rcvd = getattr(exc, "rcvd", None)
    return getattr(rcvd, "code", None)


def classify_closed(exc: BaseException, credential: Any) -> Exception:
    """A ConnectionClosed while streaming or in the handshake → AuthRejected or Retryable."""
    code = _close_code(exc)
    if code == 1008:
        return AuthRejected("websocket closed with 1008 policy violation", None)
    reason = getattr(getattr(exc, "rcvd", None), "reason", "") or ""
    detail = f"code {code}" if code is not None else "no close frame: the connection was cut"
    if reason:
        detail += f", {scrub(reason, credential)[:200]}"
    return Retryable(f"websocket closed ({detail})")


def describe(exc: BaseException, credential: Any = None) -> str:
    """A one-line, secret-free description for stats.last_error."""
    if isinstance(exc, (Retryable, AuthRejected, PrefectAuthError)):
        return scrub(str(exc), credential)
    return scrub(f"{type(exc).__name__}: {exc}", credential)[:300]
