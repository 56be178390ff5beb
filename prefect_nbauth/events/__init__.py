"""The event stream: every matching Prefect event exactly once, live, authenticated.

- ``_stream``: the public API (:func:`stream_events`, :class:`EventStream`) and the
  engine that ties the parts together on one event loop;
- ``_transport``: the websocket and REST reads, what their failures mean, and the
  stream's view of the credential (one refresh per rejection);
- ``_reconcile``: counting passes that find what the websocket missed;
- ``_ledger``: bounded memory of what was delivered;
- ``_filter``: input checks and the ``EventFilter`` sent to the server.
"""

from __future__ import annotations

from ._stream import (
    BackgroundStream,
    EventStream,
    StreamState,
    StreamStats,
    exponential_backoff,
    stream_events,
)

__all__ = [
    "BackgroundStream",
    "EventStream",
    "StreamState",
    "StreamStats",
    "exponential_backoff",
    "stream_events",
]
