"""What every websocket we open (or let Prefect open) to the API has in common.

- :data:`SILENT`: the logger our connections log to. websockets logs every
  handshake header (``Authorization``) and every frame (Prefect's auth message
  with the raw token) at DEBUG on its own logger; this one is outside the
  logging tree and drops everything, so no logging configuration can switch
  that on;
- :func:`without_redirects`: a websockets ``connect`` class that never follows a
  redirect. websockets' asyncio client follows up to 10, and Prefect's auth
  message would then carry the raw token to wherever the redirect pointed.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["SILENT", "connect_without_redirects", "without_redirects"]

SILENT = logging.Logger("prefect_nbauth.websocket", level=logging.CRITICAL + 1)
SILENT.propagate = False

_NO_REDIRECTS = "__prefect_nbauth_no_redirects__"


def without_redirects(connect: Any) -> Any:
    """A subclass of websockets' asyncio ``connect`` (or Prefect's) that refuses every redirect."""
    if getattr(connect, _NO_REDIRECTS, False):
        return connect

    class NoRedirects(connect):  # type: ignore[misc]
        def process_redirect(self, exc: Exception) -> Exception:
            return exc  # the 3xx stays an InvalidStatus: the token is never sent elsewhere

    setattr(NoRedirects, _NO_REDIRECTS, True)
    return NoRedirects


def connect_without_redirects() -> Any:
    """websockets' asyncio ``connect``, minus redirects."""
    from websockets.asyncio.client import connect

    return without_redirects(connect)
