"""The log stream: every matching Prefect log exactly once, in order per run, authenticated.

- ``_stream``: :func:`stream_logs` and its engine (REST as the ordered truth, the
  ``/logs/out`` websocket as a doorbell, polling where the server has no live logs);
- ``_reconcile``: keyset reads of ``POST /logs/filter``;
- ``_filter``: input checks and the ``LogFilter`` sent to the server.

It reuses the event stream's transport, outbox and public shell (:mod:`..events`).
"""

from __future__ import annotations

from ._stream import LogStream, LogStreamState, LogStreamStats, stream_logs

__all__ = ["LogStream", "LogStreamState", "LogStreamStats", "stream_logs"]
