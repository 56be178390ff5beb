"""How the login in force was made, in a person's words: the login form, ``%prefect_login`` or ``login()``.

The core knows only that ``login()`` was called. The notebook's ways in say who they are
while they call it (``with via("the login form"): login(...)``, on the calling thread);
``login()`` tells its listeners (``session.subscribe``) on that same thread before it returns,
and the listener here records the name. The status widget shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..session import subscribe

__all__ = ["FORM", "MAGIC", "login_origin", "via"]

FORM = "the login form"
MAGIC = "%prefect_login"

_local = threading.local()
_lock = threading.Lock()
_origin: str | None = None


@contextmanager
def via(origin: str) -> Iterator[None]:
    """A login made in this block (on this thread) was made through ``origin``."""
    before = getattr(_local, "origin", None)
    _local.origin = origin
    try:
        yield
    finally:
        _local.origin = before


def _on_change(event: str) -> None:
    global _origin
    with _lock:
        if event == "login":
            _origin = getattr(_local, "origin", None) or "login()"
        elif event == "logout":
            _origin = None


def login_origin() -> str | None:
    """How the login in force was made (``"the login form"``, ``"%prefect_login"``, ``"login()"``);
    None when no login was seen since this module was imported."""
    with _lock:
        return _origin


subscribe(_on_change)
