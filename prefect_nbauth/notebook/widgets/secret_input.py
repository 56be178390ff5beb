"""SecretInput: a password box whose value never enters widget state.

An ipywidgets ``Password`` keeps what is typed in its synced ``value`` trait:
the page's model holds it from the first key, and JupyterLab saves models into
the notebook (``metadata.widgets``) on Ctrl+S. If the kernel is busy it cannot
empty the box in time; if the kernel restarts, the page keeps the stale model
and every later save keeps the password.

This widget has no value trait at all. The page (``secret_input.js``, an
anywidget ESM module) keeps the typed text in its ``<input>`` only and sends it
to the kernel once, as a custom message, when the user presses Enter or when
the kernel asks for it (:meth:`SecretInput.request`, sent by the login form's
Log in button); the input is cleared the moment it is sent. So widget state
cannot contain the secret whatever the kernel is doing, and nothing survives a
kernel restart (a message queued for a dead kernel goes with it).

Messages (the ``content`` of an ipywidgets custom message):

* page → kernel ``{"kind": "secret", "value": str, "enter": bool, "reply_to": int | None}``;
* page → kernel ``{"kind": "view", "state": "open" | "closed", "view": str}``: a page
  can answer requests (the kernel waits for answers only when one can);
* kernel → page ``{"kind": "request", "id": int}`` and ``{"kind": "clear"}``.

Without a browser (scripts, tests), :meth:`SecretInput.receive` does what the
page's message does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Bool, Unicode

from ..._secrets import Secret

__all__ = ["SecretInput"]

_HERE = Path(__file__).resolve().parent
HELD_PLACEHOLDER = "received, hidden (type again to replace)"

#: ``on_value(field, enter)`` after a value arrived; ``on_reply(field, request_id)`` after an answer.
ValueCallback = Callable[["SecretInput", bool], None]
ReplyCallback = Callable[["SecretInput", int], None]


class SecretInput(anywidget.AnyWidget):
    """A password box for the login form; see the module docstring.

    The kernel keeps the last value received in a private :class:`Secret`
    (:attr:`secret`), never in a trait. ``held`` (synced) only says whether
    there is one, so the page can show "received, hidden".
    """

    # Read once at import, as strings: no file watcher, works from a wheel or a zip.
    _esm = (_HERE / "secret_input.js").read_text(encoding="utf-8")
    _css = (_HERE / "login.css").read_text(encoding="utf-8")

    description = Unicode("", help="The label left of the box.").tag(sync=True)
    placeholder = Unicode("", help="Shown in the empty box.").tag(sync=True)
    held_placeholder = Unicode(HELD_PLACEHOLDER, help="Shown while the kernel holds a value.").tag(sync=True)
    held = Bool(False, help="Whether the kernel holds a value (never the value itself).").tag(sync=True)
    disabled = Bool(False).tag(sync=True)

    def __init__(self, *, on_value: ValueCallback | None = None, on_reply: ReplyCallback | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secret_lock = threading.Lock()
        self._secret: Secret | None = None
        self._views: set[str] = set()
        self._requests = 0
        self._on_value = on_value
        self._on_reply = on_reply
        self.on_msg(self._handle_page_message)

    # ------------------------------------------------------------------ public

    @property
    def secret(self) -> Secret | None:
        """The value last received (kept until :meth:`take` or :meth:`forget`)."""
        return self._secret

    @property
    def views(self) -> int:
        """How many pages showing this box said they can answer a :meth:`request`."""
        return len(self._views)

    def receive(self, value: str, *, enter: bool = False, reply_to: int | None = None) -> None:
        """Take a value as the page sends it (Enter, or the answer to request ``reply_to``).

        An empty value keeps what was held (the page answers a request with an
        empty box after Enter already sent the value).
        """
        if not isinstance(value, str):
            return  # not from our page: ignore rather than store something odd
        if value:
            with self._secret_lock:
                self._secret = Secret(value)
            self.held = True
        if value and self._on_value is not None:
            self._on_value(self, enter)
        if reply_to is not None and self._on_reply is not None:
            self._on_reply(self, reply_to)

    def request(self) -> int:
        """Ask every page showing this box for what it holds; returns the request id."""
        with self._secret_lock:
            self._requests += 1
            rid = self._requests
        self.send({"kind": "request", "id": rid})
        return rid

    def take(self) -> Secret | None:
        """Return the held value and forget it."""
        with self._secret_lock:
            secret, self._secret = self._secret, None
        self.held = False
        return secret

    def forget(self) -> None:
        """Drop the held value and empty the box in every page."""
        self.take()
        if self.comm is not None:
            self.send({"kind": "clear"})

    def close(self) -> None:
        if "_secret_lock" in self.__dict__:
            with self._secret_lock:
                self._secret = None
        super().close()

    def __repr__(self) -> str:
        return f"<SecretInput {self.description or 'secret'}: {'held' if self._secret else 'empty'}>"

    # --------------------------------------------------------------- internals

    def _handle_page_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Custom messages from the page (see the module docstring); anything else is ignored."""
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        if kind == "secret":
            reply_to = content.get("reply_to")
            value = content.get("value")
            self.receive(value if isinstance(value, str) else "", enter=bool(content.get("enter")),
                         reply_to=reply_to if isinstance(reply_to, int) else None)
        elif kind == "view" and isinstance(content.get("view"), str):
            if content.get("state") == "open":
                self._views.add(content["view"])
            else:
                self._views.discard(content["view"])
