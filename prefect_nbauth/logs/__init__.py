"""The log stream: every matching Prefect log exactly once, in order per run, authenticated.

Built on the shared stream engine (:mod:`prefect_nbauth._streaming`), like the
event stream, not on top of it. What is the log stream's own:

- ``_stream``: the public API (:func:`stream_logs`, :class:`LogStream`);
- ``_engine``: REST as the ordered truth, the ``/logs/out`` websocket as a
  doorbell, polling where the server has no live logs;
- ``_reconcile``: keyset reads of ``POST /logs/filter``;
- ``_filter``: input checks and the ``LogFilter`` sent to the server.
"""
from __future__ import annotations

from ._filter import build_log_filter
from ._stream import LogStream, LogStreamState, LogStreamStats, stream_logs

__all__ = ["LogStream", "LogStreamState", "LogStreamStats", "build_log_filter", "stream_logs"]
