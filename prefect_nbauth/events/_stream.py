"""stream_events(): every matching Prefect event exactly once, live, authenticated.

This module is the public face of the event stream: :class:`EventStream` (the
shared stream shell, :mod:`prefect_nbauth._streaming._shell`, over the event
engine) and :func:`stream_events`, which checks its input and builds an engine
(:mod:`._engine`). The package docstring maps the other modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

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
from ._engine import EventStreamState, EventStreamStats, _Engine, _Options
from ._filter import build_filter

if TYPE_CHECKING:
    from prefect.events.schemas.events import ReceivedEvent  # noqa: F401 - the item type named in the base class

__all__ = ["EventStream", "stream_events"]


class EventStream(Stream["ReceivedEvent", EventStreamState, EventStreamStats]):
    """A running (or not yet started) event subscription; see :func:`stream_events`.

    Iterate it with ``async for`` (on the current event loop) or ``for`` (on a
    background thread), or hand it callbacks with :meth:`run_in_background`.
    A stream runs once; close it with :meth:`close`/:meth:`aclose` or a
    ``with``/``async with`` block. ``state`` is a :class:`EventStreamState`,
    ``stats`` a :class:`EventStreamStats`.
    """

    def __init__(self, engine: _Engine) -> None:
        super().__init__(engine)


@public()
def stream_events(
    *,
    prefix: str | Sequence[str] | None = None,
    resource: str | Sequence[str] | None = None,
    labels: Mapping[str, str | Sequence[str]] | None = None,
    related: str | Sequence[str] | None = None,
    since: datetime | None = None,
    reconcile_interval: float = 5.0,
    idle_interval: float | None = None,
    lookback: float = 300.0,
    filter: Any = None,
    credential_wait: float = 60.0,
    buffer: int = 10_000,
    max_tracked: int = 200_000,
    backoff: Callable[[], Iterator[float]] | None = None,
) -> EventStream:
    """Stream Prefect events: every matching event exactly once, live, authenticated.

    ::

        async for event in prefect_nbauth.stream_events(prefix="prefect.flow-run."):
            print(event.occurred, event.event, event.resource.id)

        for event in prefect_nbauth.stream_events(resource="prefect.flow-run.*"):  # sync code
            ...

        handle = prefect_nbauth.stream_events().run_in_background(print)  # widgets
        handle.stop()

    Filters (all optional, combined with AND; a list inside one means any of):
    ``prefix`` event-name prefixes; ``resource`` resource ids (``*`` and ``?``
    are wildcards, ``!`` negates); ``labels`` resource labels, e.g.
    ``{"prefect.resource.name": ["etl*"]}``; ``related`` ids of related
    resources; ``since`` an aware datetime to start from (default: now; the
    past is read back first); ``filter`` any other ``EventFilter`` field (a
    ``prefect.events.filters.EventFilter`` or a dict).

    **Delivery contract.** While the stream runs, every event that the Prefect
    server persists, that matches the filter and whose ``occurred`` is at or
    after ``since``, is delivered exactly once, provided it is persisted within
    ``lookback`` seconds (default 300) of its ``occurred`` time, or the server
    was unreachable in between; across events Prefect's server drops (its
    queue holds 256 per subscriber), reconnects, a server restart and token
    rotation. Missed events are read back from ``POST /events/filter`` at a
    (re)connect, after a burst, every ``reconcile_interval`` seconds (5) while
    events flow, else every ``idle_interval`` (30, or ``reconcile_interval``
    if longer): an event the websocket never carries arrives that long
    (``stats.late_bound``), plus one read, after the server can return it;
    ``event.delivery`` is ``"live"`` or ``"reconciled"``. See docs/events.md.

    The credential in force is taken anew on every (re)connect; a rejection
    costs one refresh, then up to ``credential_wait`` seconds for a new
    ``login()``, then ``AuthenticationError``. ``stream.state``: an
    :class:`EventStreamState`, ``stream.stats``: an :class:`EventStreamStats`. It
    reconnects for ever with ``backoff`` (a zero-argument callable returning
    delays; jittered, capped at 5 s by default) and ends when closed or on an
    error (``stream.error``, raised by the iterator). ``ConfigurationError``
    at once for bad input or no API URL in force.
    """
    reconcile_interval = check_seconds("reconcile_interval", reconcile_interval, minimum=0.01)
    idle_interval = resolve_idle_interval(idle_interval, reconcile_interval)
    lookback = check_seconds("lookback", lookback, minimum=1.0)
    if lookback <= reconcile_interval:
        raise ConfigurationError(
            f"lookback ({lookback:g} s) must be longer than reconcile_interval "
            f"({reconcile_interval:g} s): each pass re-checks the last `lookback` seconds."
        )
    credential_wait = check_seconds("credential_wait", credential_wait, allow_zero=True)
    buffer = check_count("buffer", buffer, 1)
    max_tracked = check_count("max_tracked", max_tracked, 1000)
    backoff_factory = check_backoff(backoff)
    sfilter = build_filter(prefix=prefix, resource=resource, labels=labels, related=related,
                           since=since, filter=filter)
    api_url = api_url_to_stream("is nothing to stream from")
    options = _Options(
        reconcile_interval=reconcile_interval, lookback=lookback, credential_wait=credential_wait,
        buffer=buffer, max_tracked=max_tracked, backoff=backoff_factory,
        ghost_after=max(60.0, 4 * reconcile_interval), idle_interval=idle_interval,
    )
    return EventStream(_Engine(sfilter, api_url, options))
