"""When a live log line may be delivered as it comes: the logs websocket is known to be in order.

Prefect's ``/logs/out`` sends each subscriber the logs in the order the server
publishes them, through a queue of :data:`BACKLOG`; a log is dropped when the
queue is full. A dropped log can only be one published while 256 others waited
in the queue, and those 256 are sent after the moment of the drop, back to
back, and are the 256 frames received just before the next log that got
through. So a frame whose 256 predecessors arrived within ``window`` seconds
of each other may follow a gap; any other frame follows its predecessors
without one. (A frame after a burst of 256 that dropped nothing waits for a
read too: the gate cannot tell.)

:class:`LiveGate` keeps that account and the stream's *sync*: a read of the
REST API that began while this very connection was up, ended with no live
frame waiting for REST, found nothing the socket had not announced, and saw no
possible overflow meanwhile, makes the stream *in sync*. While in sync, a live
line that no possible overflow precedes is delivered at once, at the socket's
speed, and REST confirms behind it; otherwise lines wait for a read (REST
stays the ordered truth). A reconnect, a possible overflow, a consumer that
held the socket back, or a read that found a log the socket missed ends the
sync until the next clean read.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

__all__ = ["BACKLOG", "LiveGate"]

BACKLOG = 256  # Prefect's queue per subscriber (server/logs/stream.py SUBSCRIPTION_BACKLOG)


class LiveGate:
    """Whether live log frames can be delivered as they come (see the module docstring)."""

    def __init__(self, *, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._arrivals: deque[float] = deque(maxlen=BACKLOG)
        self._epoch = 0  # one per connection
        self._troubles = 0  # possible overflows and other reasons to distrust the socket
        self.synced = False

    def connected(self) -> None:
        """A new connection: a new, empty server queue; not in sync before a read says so."""
        self._epoch += 1
        self._arrivals.clear()
        self.synced = False

    def disconnected(self) -> None:
        self.synced = False

    def arrived(self) -> bool:
        """Count a frame; False when a log may have been dropped just before it."""
        arrivals = self._arrivals
        overflow = len(arrivals) == BACKLOG and arrivals[-1] - arrivals[0] < self.window
        arrivals.append(self._clock())
        if overflow:
            self.distrust()
        return not overflow

    def distrust(self) -> None:
        """Something says the socket may have missed a log: out of sync until a clean read."""
        self._troubles += 1
        self.synced = False

    def read_begins(self, up: bool) -> tuple[int, int] | None:
        """A REST read begins; its token for :meth:`read_ends` (None: no socket to sync with)."""
        return (self._epoch, self._troubles) if up else None

    def read_ends(self, token: tuple[int, int] | None, *, up: bool, held: bool, unannounced: int) -> None:
        """A REST read ended: in sync if it was clean (see the module docstring)."""
        clean = token is not None and up and token == (self._epoch, self._troubles)
        self.synced = clean and not held and unannounced == 0
