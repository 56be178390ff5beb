"""A kernel in a person's single-user server, driven through the Hub's proxy as a notebook would.

:class:`RemoteKernel` starts a kernel with the server's REST API (``POST
/user/<name>/api/kernels``) and runs cells over the kernel's websocket
(``/api/kernels/<id>/channels``, Jupyter's JSON message protocol): what JupyterLab
does, without the page. :meth:`RemoteKernel.run` returns what the cell printed and
raises :class:`CellError` (with the kernel's own traceback text) when it failed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

__all__ = ["CellError", "RemoteKernel"]


class CellError(RuntimeError):
    """A cell raised; the message is the kernel's ``ename: evalue`` and traceback."""


class RemoteKernel:
    """One kernel of ``user``'s server behind the Hub at ``hub_url``, reached with ``token``."""

    def __init__(self, hub_url: str, user: str, token: str) -> None:
        self.base = f"{hub_url}/user/{user}/api"
        self.user = user
        self._token = token
        self.kernel_id: str | None = None
        self._socket: Any = None
        self.session = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"RemoteKernel(user={self.user!r}, kernel_id={self.kernel_id!r})"

    def start(self, timeout: float = 120.0) -> RemoteKernel:
        from websockets.sync.client import connect

        reply = httpx.post(f"{self.base}/kernels", json={"name": "python3"}, timeout=timeout,
                           headers={"Authorization": f"token {self._token}"})
        reply.raise_for_status()
        self.kernel_id = reply.json()["id"]
        ws_url = self.base.replace("http://", "ws://") + f"/kernels/{self.kernel_id}/channels"
        self._socket = connect(ws_url, additional_headers={"Authorization": f"token {self._token}"},
                               open_timeout=timeout, max_size=None)
        self.run("None", timeout=timeout)  # the kernel answers: it is up
        return self

    def run(self, code: str, timeout: float = 300.0) -> str:
        """Execute ``code``; its stdout (and displayed text). Raises CellError on an error."""
        msg_id = uuid.uuid4().hex
        self._socket.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": self.session,
                       "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        error: str | None = None
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the cell did not finish within {timeout:g} s; "
                                   f"printed so far: {''.join(out)[-2000:]}")
            message = json.loads(self._socket.recv(timeout=left))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content.get("data", {}).get("text/plain", "") + "\n")
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}\n" + "\n".join(content.get("traceback", []))
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        if error is not None:
            raise CellError(f"{error}\nprinted: {''.join(out)[-2000:]}")
        return "".join(out)

    def shutdown(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.kernel_id is not None:
            try:
                httpx.delete(f"{self.base}/kernels/{self.kernel_id}", timeout=30,
                             headers={"Authorization": f"token {self._token}"})
            except httpx.HTTPError:
                pass
            self.kernel_id = None
