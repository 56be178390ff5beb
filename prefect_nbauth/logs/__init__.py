"""The log stream: every matching Prefect log exactly once, in order per run, authenticated.

Built on the shared stream engine (:mod:`prefect_nbauth._streaming`), like the
event stream, not on top of it. What is the log stream's own:

- ``_stream``: the public API (:func:`stream_logs`, :class:`LogStream`);
- ``_engine``: REST as the ordered truth, live lines from ``/logs/out`` at the
  socket's speed when it is in order, polling where the server has no live logs;
- ``_live``: when the logs socket is known to be in order (Prefect's queue of 256);
- ``_runs``: which followed runs are active (Prefect's events socket), so a stream
  without live logs polls only where there is something to read;
- ``_reconcile``: keyset reads of ``POST /logs/filter``;
- ``_filter``: input checks and the ``LogFilter`` sent to the server;
- ``_sources``: which run a log line is from, by name (for views of logs).
"""
from __future__ import annotations

from ._filter import build_log_filter
from ._sources import RunNames, source_label
from ._stream import LogStream, LogStreamState, LogStreamStats, stream_logs

__all__ = ["LogStream", "LogStreamState", "LogStreamStats", "RunNames", "build_log_filter", "source_label",
           "stream_logs"]
