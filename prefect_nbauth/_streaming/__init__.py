"""The stream engine that the event stream (``events/``) and the log stream (``logs/``) share.

One idea, written once: a websocket for latency and REST reads for
completeness, on one event loop, with the credential in force taken anew on
every (re)connect and read.

- ``_engine``: :class:`StreamEngine`, the lifecycle, socket loop, reader loop
  and change notification; a product subclasses it and says what differs;
- ``_cadence``: when the reader loop reads (hot, flowing, idle) and the
  late-delivery bound that follows;
- ``_shell``: :class:`Stream`, the public iterator / background shell;
- ``_subscription``: the websocket handshake (auth message, filter frame);
- ``_reader``: REST reads with the stream's credential, and what an answer means;
- ``_credential``: the stream's view of the credential (one refresh per rejection);
- ``_failures``: what failures mean (AuthRejected, Retryable), said without secrets;
- ``_outbox``: the bounded hand-over to the consumer;
- ``_options``: option checks and the default backoff; ``_time``: exact µs times.

Nothing here imports ``events/`` or ``logs/`` (``tests/unit/test_layout.py``).
"""

from ._cadence import QUICK, Cadence, Schedule
from ._delivered import DeliveredModel, StateName, StatsSnapshot
from ._engine import StreamEngine
from ._failures import AuthRejected, Retryable, describe, scrub
from ._options import (
    EngineOptions,
    api_url_to_stream,
    check_backoff,
    check_count,
    check_seconds,
    exponential_backoff,
    resolve_idle_interval,
)
from ._reader import RestReader, stamp_us
from ._shell import BackgroundStream, Stream
from ._time import TimedFilter, check_since, from_us, iso_us, to_us

__all__ = [
    "QUICK",
    "AuthRejected",
    "BackgroundStream",
    "Cadence",
    "DeliveredModel",
    "EngineOptions",
    "RestReader",
    "Retryable",
    "Schedule",
    "StateName",
    "StatsSnapshot",
    "Stream",
    "StreamEngine",
    "TimedFilter",
    "api_url_to_stream",
    "check_backoff",
    "check_count",
    "check_seconds",
    "check_since",
    "describe",
    "exponential_backoff",
    "from_us",
    "iso_us",
    "resolve_idle_interval",
    "scrub",
    "stamp_us",
    "to_us",
]
