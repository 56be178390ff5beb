"""Drive the toolkit's widgets as a front end does, and record all they send to it.

:func:`install_recording_comm` makes every widget created afterwards record each message it
would send over IOPub (state updates, custom messages), so a test can scan everything a
browser would have received for a secret (:mod:`.canaries`); :func:`all_state_json` is
the synced state of a widget tree. :func:`front_end_update`, :func:`page_sends` and
:func:`type_secret` deliver what a page would send, without a browser. Needs the
``notebook`` extra (ipywidgets); nothing is imported until used.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

__all__ = ["all_state_json", "all_widgets", "customs_of", "front_end_update", "install_recording_comm",
           "page_sends", "type_secret", "updates_of"]


def install_recording_comm() -> list[dict[str, Any]]:
    """Make every widget created from now on record its front-end messages; returns the log."""
    import comm
    from comm.base_comm import BaseComm

    log: list[dict[str, Any]] = []
    lock = threading.Lock()

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                        buffers: Any = None, **keys: Any) -> None:
            text = json.dumps(data, default=str)
            with lock:
                log.append({"type": msg_type, "comm_id": self.comm_id, "data": data, "json": text,
                            "bytes": len(text), "time": time.monotonic()})

    comm.create_comm = lambda *args, **kwargs: RecordingComm(*args, **kwargs)
    return log


def all_widgets(root: Any) -> list[Any]:
    found, stack = [], [root]
    while stack:
        w = stack.pop()
        found.append(w)
        stack.extend(getattr(w, "children", ()) or ())
    return found


def all_state_json(root: Any) -> str:
    """The synced state of a widget and all its descendants, as one JSON text."""
    return json.dumps([w.get_state() for w in all_widgets(root)], default=str)


def front_end_update(widget: Any, **state: Any) -> None:
    """Deliver a state update the way a front end's comm message arrives."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                        "buffers": []})


def page_sends(widget: Any, content: dict[str, Any]) -> None:
    """Deliver a custom message (``model.send(content)`` in the page) the way it arrives."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def type_secret(field: Any, value: str, *, enter: bool = False, reply_to: int | None = None) -> None:
    """What secret_input.js sends when the user types ``value`` and presses Enter (or answers
    request ``reply_to``): the value sealed with the box's public key, as the page seals it."""
    page_sends(field, {"kind": "sealed", "sealed": field.seal(value), "enter": enter,
                       "reply_to": reply_to, "view": "v1"})


def customs_of(log: list[dict[str, Any]], widget: Any) -> list[dict[str, Any]]:
    """The custom messages the kernel sent to ``widget``'s pages."""
    return [m["data"]["content"] for m in log if m["comm_id"] == widget.model_id and m["type"] == "comm_msg"
            and (m["data"] or {}).get("method") == "custom"]


def updates_of(log: list[dict[str, Any]], widget: Any) -> list[dict[str, Any]]:
    return [m for m in log if m["comm_id"] == widget.model_id and m["type"] == "comm_msg"
            and (m["data"] or {}).get("method") == "update"]
