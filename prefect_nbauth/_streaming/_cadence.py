"""How often a stream asks the REST API, and the late-delivery bound that follows from it.

The websocket brings items at once; REST reads make a stream complete (an item
the socket never carried: dropped from Prefect's full subscriber queue,
published on another replica's in-memory broker, lost in a reconnect). A read
costs the server a query, so a stream reads when there is reason to:

- *hot*: every :data:`QUICK` seconds for a while after a reconnect, a burst, or
  a read that found missed items (a recovery is under way);
- *flowing*: every ``flowing`` seconds while items flow, that is while one was
  delivered within the last ``idle`` seconds;
- *idle*: every ``idle`` seconds otherwise.

A change of pace never puts the next read off; a flow that starts brings it
forward (:class:`Schedule`: the engine moves it to ``flowing`` seconds from
now when :meth:`Cadence.note` says a flow started). So an item the socket
never carries is delivered at most :meth:`Cadence.bound` seconds (the bound in
force when the server could first return it), plus the time of one read, after
REST can return it.
"""

from __future__ import annotations

import math
import time
from typing import Callable

__all__ = ["QUICK", "Cadence", "Schedule"]

QUICK = 0.5  # seconds between reads while hot


class Cadence:
    """The pace of one stream's REST reads: hot, flowing or idle (see the module docstring)."""

    def __init__(self, *, flowing: float, idle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.flowing = flowing
        self.idle = idle
        self._clock = clock
        self._flowing_until = -1.0
        self._hot_until = -1.0

    def note(self) -> bool:
        """Items flow now; True when this starts a flow (the next read should come sooner)."""
        now = self._clock()
        started = now >= self._flowing_until
        self._flowing_until = now + self.idle
        return started

    def heat(self, seconds: float) -> None:
        """Read every :data:`QUICK` seconds for the next ``seconds`` (a recovery is under way)."""
        self._hot_until = max(self._hot_until, self._clock() + seconds)

    def is_flowing(self) -> bool:
        return self._clock() < self._flowing_until

    def is_hot(self) -> bool:
        return self._clock() < self._hot_until

    def bound(self) -> float:
        """Seconds within which a read follows any moment now: ``flowing`` or ``idle``."""
        return self.flowing if self.is_flowing() else self.idle

    def interval(self) -> float:
        """Seconds from the end of one read to the start of the next."""
        if self.is_hot():
            return min(QUICK, self.flowing)
        return self.bound()


class Schedule:
    """When the next read is due: woken now, brought forward, or after an interval; never put off.

    The reader loop asks :meth:`wait` how long to sleep (``None``: until woken),
    calls :meth:`begin` when it starts a read and :meth:`done` when it ended,
    each with the interval in force then. The next read follows the shorter of
    the two: a flow that ends while a read runs must not stretch the bound for
    an item that appeared during that read. After a failed read, no read (not
    even a woken one) comes before its backoff.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.due = False  # a read as soon as the loop is free
        self.next_at = math.inf  # the scheduled read
        self.not_before = 0.0
        self._begun_interval = math.inf

    def wake(self) -> None:
        self.due = True

    def within(self, seconds: float) -> bool:
        """The next read at most ``seconds`` from now; True when that brought it forward."""
        at = self._clock() + seconds
        if at < self.next_at:
            self.next_at = at
            return True
        return False

    def wait(self) -> float | None:
        """Seconds until a read is due (0: now; None: not before a wake-up)."""
        due = max(self._clock() if self.due else self.next_at, self.not_before)
        if math.isinf(due):
            return None
        return max(0.0, due - self._clock())

    def begin(self, interval: float) -> None:
        """A read begins, with ``interval`` in force now."""
        self.due = False
        self._begun_interval = interval

    def done(self, interval: float, *, failed: bool = False) -> None:
        """A read ended: the next one ``interval`` seconds from now (after a failure: its backoff)."""
        now = self._clock()
        if failed:
            self.next_at = self.not_before = now + interval
        else:
            self.next_at = now + min(interval, self._begun_interval)
            self.not_before = 0.0
