"""SecretInput: a password box whose value never enters widget state, nor a message in clear.

An ipywidgets ``Password`` keeps what is typed in its synced ``value`` trait:
the page's model holds it from the first key, and JupyterLab saves models into
the notebook (``metadata.widgets``) on Ctrl+S. If the kernel is busy it cannot
empty the box in time; if the kernel restarts, the page keeps the stale model
and every later save keeps the password.

This widget has no value trait at all. The page (``secret_input.js``, an
anywidget ESM module) keeps the typed text in its ``<input>`` only and sends it
to the kernel once, as a custom message, when the user presses Enter or when
the kernel asks for it (:meth:`SecretInput.request`, sent by the login form's
Log in button); the input is cleared the moment it is read. So widget state
cannot contain the secret whatever the kernel is doing, and nothing survives a
kernel restart (a message queued for a dead kernel goes with it).

The message itself carries the value **sealed** for this kernel (:mod:`._sealing`):
the kernel gives the page a public key (the ``public_key`` trait), the page
encrypts with WebCrypto, and only the kernel's private key opens it. A kernel
started with ``--debug``, the Jupyter server's log or a proxy logging websocket
frames see ciphertext only. WebCrypto exists only in a secure context (https, or
http on localhost / 127.0.0.1); on any other page the box is disabled and says
why (``insecure_text``), and nothing typed there is sent (docs/login-form.md).

Messages (the ``content`` of an ipywidgets custom message):

* page → kernel ``{"kind": "sealed", "sealed": {…} | None, "enter": bool, "reply_to": int | None,
  "view": str}`` (``sealed`` is None for an empty box, or when the page could not seal:
  then ``"failed": True``);
* page → kernel ``{"kind": "view", "state": "open" | "closed", "view": str, "secure": bool}``:
  a page can answer requests (the kernel waits for answers only when one can);
* kernel → page ``{"kind": "request", "id": int}`` and ``{"kind": "clear"}``.

A value in clear (``{"kind": "secret", "value": …}``, what this box sent before) is
dropped unread and reported (``on_problem``): it has already crossed in clear, and
accepting it would let a stale page keep doing so.

Without a browser (scripts, tests), :meth:`SecretInput.receive` takes a value as the
page's message would deliver it, and :meth:`SecretInput.seal` seals as the page does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Bool, Unicode

from ..._secrets import Secret
from ._sealing import SealingKey, seal_for

__all__ = ["INSECURE_PAGE", "SecretInput"]

_HERE = Path(__file__).resolve().parent
HELD_PLACEHOLDER = "received, hidden (type again to replace)"
INSECURE_BOX = "not sent from this page: the connection is not secure (see below)"
#: What the form says when a page showing it is not a secure context.
INSECURE_PAGE = (
    "This page is served over plain http from a host other than this computer, so the browser "
    "cannot encrypt a secret for the kernel (and the connection itself is not encrypted): the "
    "secret boxes are switched off. Open Jupyter over https, or through an SSH tunnel to "
    "localhost (ssh -L 8888:localhost:8888 HOST, then http://localhost:8888); or put the "
    "secret in the kernel's environment and run %prefect_login --auth-string-env VAR "
    "(or --api-key-env VAR).")
CLEAR_REFUSED = ("A page sent a secret unencrypted (an old copy of the page?). It was dropped "
                 "unread: reload the page and type it again.")
SEAL_FAILED = "The page could not encrypt the secret for the kernel; reload the page and type it again."

#: ``on_value(field, enter)`` after a value arrived; ``on_reply(field, request_id)`` after an answer;
#: ``on_problem(field, text)`` when a page cannot send safely (insecure page, clear text, sealing failed).
ValueCallback = Callable[["SecretInput", bool], None]
ReplyCallback = Callable[["SecretInput", int], None]
ProblemCallback = Callable[["SecretInput", str], None]


class SecretInput(anywidget.AnyWidget):
    """A password box for the login form; see the module docstring.

    The kernel keeps the last value received in a private :class:`Secret`
    (:attr:`secret`), never in a trait. ``held`` (synced) only says whether
    there is one, so the page can show "received, hidden". Boxes of one form
    share its ``sealing_key``; a box made alone makes its own, dropped on close.
    """

    # Read once at import, as strings: no file watcher, works from a wheel or a zip.
    _esm = (_HERE / "secret_input.js").read_text(encoding="utf-8")
    _css = (_HERE / "login.css").read_text(encoding="utf-8")

    description = Unicode("", help="The label left of the box.").tag(sync=True)
    placeholder = Unicode("", help="Shown in the empty box.").tag(sync=True)
    held_placeholder = Unicode(HELD_PLACEHOLDER, help="Shown while the kernel holds a value.").tag(sync=True)
    insecure_placeholder = Unicode(INSECURE_BOX, help="Shown, box disabled, on a page that "
                                   "cannot seal (not a secure context).").tag(sync=True)
    held = Bool(False, help="Whether the kernel holds a value (never the value itself).").tag(sync=True)
    disabled = Bool(False).tag(sync=True)
    public_key = Unicode("", help="The kernel's public key (SPKI, base64) the page seals with.").tag(sync=True)

    def __init__(self, *, sealing_key: SealingKey | None = None, on_value: ValueCallback | None = None,
                 on_reply: ReplyCallback | None = None, on_problem: ProblemCallback | None = None,
                 **kwargs: Any) -> None:
        own_key = sealing_key is None
        key = SealingKey() if sealing_key is None else sealing_key
        super().__init__(public_key=key.public_spki, **kwargs)
        self._sealing_key = key
        self._owns_key = own_key
        self._secret_lock = threading.Lock()
        self._secret: Secret | None = None
        self._views: set[str] = set()
        self._insecure_views: set[str] = set()
        self._requests = 0
        self._on_value = on_value
        self._on_reply = on_reply
        self._on_problem = on_problem
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

    @property
    def insecure_views(self) -> int:
        """How many pages showing this box are not secure contexts (they send nothing)."""
        return len(self._insecure_views)

    def receive(self, value: str | Secret, *, enter: bool = False, reply_to: int | None = None) -> None:
        """Take a value as the page's message delivers it (Enter, or the answer to request ``reply_to``).

        An empty value keeps what was held (the page answers a request with an
        empty box after Enter already sent the value).
        """
        secret = value if isinstance(value, Secret) else Secret(value) if isinstance(value, str) else None
        if secret is None:
            return  # not from our page: ignore rather than store something odd
        if secret.reveal():
            with self._secret_lock:
                self._secret = secret
            self.held = True
            if self._on_value is not None:
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

    def seal(self, value: str) -> dict[str, str]:
        """``value`` sealed for this box's kernel, as the page seals it (for scripts and tests)."""
        return seal_for(self.public_key, value)

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
            if self._owns_key:
                self._sealing_key.drop()
        super().close()

    def __repr__(self) -> str:
        return f"<SecretInput {self.description or 'secret'}: {'held' if self._secret else 'empty'}>"

    # --------------------------------------------------------------- internals

    def _problem(self, text: str) -> None:
        if self._on_problem is not None:
            self._on_problem(self, text)

    def _handle_page_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Custom messages from the page (see the module docstring); anything else is ignored."""
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        reply_to = content.get("reply_to")
        reply_to = reply_to if isinstance(reply_to, int) and not isinstance(reply_to, bool) else None
        if kind == "sealed":
            sealed = content.get("sealed")
            secret = self._sealing_key.open(sealed) if sealed is not None else None
            if (sealed is not None and secret is None) or content.get("failed"):
                self._problem(SEAL_FAILED)
            self.receive(secret or "", enter=bool(content.get("enter")), reply_to=reply_to)
        elif kind == "secret":
            content.clear()  # not read, and not kept here (it has already crossed the wire in clear)
            self._problem(CLEAR_REFUSED)
            if reply_to is not None:
                self.receive("", reply_to=reply_to)
        elif kind == "view" and isinstance(content.get("view"), str):
            view = content["view"]
            if content.get("state") == "open":
                if content.get("secure") is False:
                    self._insecure_views.add(view)
                    self._problem(INSECURE_PAGE)
                else:
                    self._views.add(view)
            else:
                self._views.discard(view)
                self._insecure_views.discard(view)
