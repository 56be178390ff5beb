"""stream_logs(): every matching Prefect log exactly once, in order per run, authenticated.

This module is the public face of the log stream: :class:`LogStream` (the
shared stream shell, :mod:`prefect_nbauth._streaming._shell`, over the log
engine, :mod:`._engine`) and :func:`stream_logs`, which checks its input.
docs/logs.md says what Prefect's log API gives and how the contract is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .._boundary import public
from .._exceptions import ConfigurationError
from .._streaming import (
    Stream,
    api_url_to_stream,
    check_backoff,
    check_count,
    check_seconds,
    resolve_idle_interval,
)
from ._engine import LogStreamState, LogStreamStats, _LogEngine, _Options
from ._filter import build_log_filter

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Log  # noqa: F401 - the item type named in the base class

__all__ = ["LogStream", "LogStreamState", "LogStreamStats", "stream_logs"]


# LogStream and EventStream are siblings on one shell (they used to be parent and child):
# a log stream is not an event stream, and `isinstance(stream, EventStream)` must not say so.
class LogStream(Stream["Log", LogStreamState, LogStreamStats]):
    """A running (or not yet started) log subscription; see :func:`stream_logs`.

    Iterate it with ``async for`` or ``for``, or hand it callbacks with
    :meth:`run_in_background` (``on_event`` receives each log). ``state`` is a
    :class:`LogStreamState`, ``stats`` a :class:`LogStreamStats`.
    """

    _starter = "prefect_nbauth.stream_logs(...)"
    _thread_name = "prefect-nbauth-logs"

    def __init__(self, engine: _LogEngine) -> None:
        super().__init__(engine)


@public()
def stream_logs(
    flow_run_id: Any = None,
    task_run_id: Any = None,
    level: str | int | None = None,
    since: datetime | timedelta | str | None = None,
    *,
    text: str | None = None,
    poll_interval: float = 1.0,
    reconcile_interval: float = 5.0,
    idle_interval: float | None = None,
    lookback: float = 120.0,
    settle: float = 3.0,
    credential_wait: float = 60.0,
    buffer: int = 10_000,
    backoff: Callable[[], Iterator[float]] | None = None,
) -> LogStream:
    """Stream Prefect logs: every matching log exactly once, in order per run, authenticated.

    ::

        async for log in prefect_nbauth.stream_logs(flow_run_id=run.id):
            print(log.timestamp, log.level, log.message)

        for log in prefect_nbauth.stream_logs(level="WARNING", since="10m"):  # sync code
            ...

        handle = prefect_nbauth.stream_logs(flow_run_id=run.id).run_in_background(print)
        handle.stop()

    Filters (combined with AND): ``flow_run_id`` / ``task_run_id`` one run id or
    a list; ``level`` a minimum level (``"INFO"``, ``"warning"``, ``20``);
    ``text`` Prefect's log search (``"error -debug"``); ``since`` an aware
    datetime, a timedelta or ``"10m"``/``"2h"`` (default: the run's whole
    history when a run id is given, else now).

    **Delivery contract.** While the stream runs, every log the server
    persists that matches the filter, with a timestamp at or after ``since``, is
    delivered exactly once (deduplicated by id), provided it is persisted within
    ``lookback`` seconds (default 120) of its timestamp; across the logs
    Prefect's websocket drops (a queue of 256 per subscriber), websocket cuts,
    server restarts, token rotation, and servers without live logs (Prefect's
    default). docs/logs.md has the whole contract.

    - *Order.* In timestamp order as the server has them; a log persisted more
      than ``settle`` seconds (3) after a later one of its flow run comes later,
      ``log.late == True``. ``log.delivery``: ``"live"`` or ``"reconciled"``.
    - *Latency.* With live logs on, a line comes at the socket's speed when
      the socket is known to be in order (else after a REST read). Without
      them the stream reads REST every ``poll_interval`` (1 s) while a run it
      follows is active (Prefect's events websocket says when), else as below.
    - *How late.* A log the websocket never carries comes ``stats.late_bound``
      (plus one read) after REST has it: ``poll_interval`` as above, else
      ``reconcile_interval`` (5 s) while logs flow, else ``idle_interval`` (30 s).
    - *Secrets.* The credential in force is masked in every message delivered.

    ``stream.state`` is a :class:`LogStreamState`, ``stream.stats`` a
    :class:`LogStreamStats`. Authentication is :func:`stream_events`'s (the
    credential in force on every (re)connect and read; one refresh, then up to
    ``credential_wait`` seconds for a new login, then ``AuthenticationError``).
    Raises ``ConfigurationError`` at once for bad input or no API URL in force.
    """
    poll_interval = check_seconds("poll_interval", poll_interval, minimum=0.05)
    reconcile_interval = check_seconds("reconcile_interval", reconcile_interval, minimum=0.05)
    idle_interval = resolve_idle_interval(idle_interval, reconcile_interval)
    lookback = check_seconds("lookback", lookback, minimum=1.0)
    settle = check_seconds("settle", settle, allow_zero=True)
    if lookback <= settle:
        raise ConfigurationError(f"lookback ({lookback:g} s) must be longer than settle ({settle:g} s).")
    credential_wait = check_seconds("credential_wait", credential_wait, allow_zero=True)
    buffer = check_count("buffer", buffer, 1)
    backoff_factory = check_backoff(backoff)
    sfilter = build_log_filter(flow_run_id=flow_run_id, task_run_id=task_run_id, level=level,
                               text=text, since=since)
    api_url = api_url_to_stream("are no logs to stream")
    options = _Options(
        poll_interval=poll_interval, reconcile_interval=reconcile_interval, lookback=lookback,
        settle=settle, credential_wait=credential_wait, buffer=buffer, backoff=backoff_factory,
        idle_interval=idle_interval,
    )
    return LogStream(_LogEngine(sfilter, api_url, options))
