"""The event stream: every matching Prefect event exactly once, live, authenticated.

Built on the shared stream engine (:mod:`prefect_nbauth._streaming`: socket
loop, REST reads, credential keeper, outbox, public shell). What is the event
stream's own:

- ``_stream``: the public API (:func:`stream_events`, :class:`EventStream`);
- ``_engine``: what an event frame means, bursts, outage windows, when to pass;
- ``_pages``: ``/events/filter`` reads (counts, pages of 50, next-page links);
- ``_reconcile``: counting passes that find what the websocket missed;
- ``_ledger``: bounded memory of what was delivered;
- ``_filter``: input checks and the ``EventFilter`` sent to the server.
"""
from __future__ import annotations

from ._engine import EventStreamState, EventStreamStats
from ._stream import EventStream, stream_events

__all__ = ["EventStream", "EventStreamState", "EventStreamStats", "stream_events"]
