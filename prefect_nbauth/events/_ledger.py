"""What a stream has delivered, in bounded memory: the basis of exactly-once.

Every delivered event is remembered by id with its ``occurred`` time (in µs)
and one of three states:

- *confirmed*: the REST API returned it, so the server has persisted it;
- *unconfirmed*: it came live over the websocket and the server may not have
  persisted it yet (Prefect persists in batches, seconds later);
- *ghost*: unconfirmed for so long that it was checked one by one and the
  server does not have it (it was received, sent live, then lost: a server
  killed before its persister flushed). Not counted, but still deduplicated.

Reconciliation compares, for a window of ``occurred`` times, the server's count
of matching events with ``confirmed + (unconfirmed that the server has)``; the
difference is exactly the number of persisted events this stream has not
delivered. Sorted confirmed times make a window count two bisections.

Memory: an entry is dropped once its ``occurred`` is below the reconciliation
floor (no query can return it again) and it arrived more than ``ttl`` seconds
ago (a live re-send of it is no longer plausible). ``max_tracked`` caps the
rest; past it the oldest entries go and the floor moves above them.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable
from uuid import UUID

__all__ = ["Ledger", "CONFIRMED", "UNCONFIRMED", "GHOST"]

CONFIRMED, UNCONFIRMED, GHOST = 0, 1, 2


class Ledger:
    __slots__ = ("_entries", "_confirmed", "_unconfirmed", "max_tracked")

    def __init__(self, max_tracked: int) -> None:
        # id -> [occurred_us, arrived (monotonic s), state]
        self._entries: dict[UUID, list[Any]] = {}
        self._confirmed: list[int] = []  # sorted occurred_us of confirmed entries
        self._unconfirmed: dict[UUID, int] = {}
        self.max_tracked = max_tracked

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, event_id: UUID) -> bool:
        return event_id in self._entries

    # ----------------------------------------------------------------- record
    def add(self, event_id: UUID, occurred_us: int, arrived: float, *, confirmed: bool) -> None:
        """Remember a delivered event (the caller checked it was not known)."""
        if confirmed:
            self._entries[event_id] = [occurred_us, arrived, CONFIRMED]
            bisect.insort(self._confirmed, occurred_us)
        else:
            self._entries[event_id] = [occurred_us, arrived, UNCONFIRMED]
            self._unconfirmed[event_id] = occurred_us

    def confirm(self, event_id: UUID) -> bool:
        """The server has this event; True when that is news."""
        entry = self._entries.get(event_id)
        if entry is None or entry[2] == CONFIRMED:
            return False
        if entry[2] == UNCONFIRMED:
            del self._unconfirmed[event_id]
        entry[2] = CONFIRMED
        bisect.insort(self._confirmed, entry[0])
        return True

    def confirm_all(self, event_ids: Iterable[UUID]) -> None:
        for event_id in event_ids:
            self.confirm(event_id)

    def mark_ghost(self, event_id: UUID) -> None:
        entry = self._entries.get(event_id)
        if entry is not None and entry[2] == UNCONFIRMED:
            del self._unconfirmed[event_id]
            entry[2] = GHOST

    def state(self, event_id: UUID) -> int | None:
        entry = self._entries.get(event_id)
        return None if entry is None else entry[2]

    # ------------------------------------------------------------------ query
    def count_confirmed(self, lo_us: int, hi_us: int) -> int:
        """Confirmed entries with ``lo_us <= occurred <= hi_us``."""
        return bisect.bisect_right(self._confirmed, hi_us) - bisect.bisect_left(self._confirmed, lo_us)

    def unconfirmed_in(self, lo_us: int, hi_us: int) -> list[tuple[int, UUID, float]]:
        """Unconfirmed entries in the window, oldest occurred first: (occurred, id, arrived)."""
        entries = self._entries
        found = [(ts, eid, entries[eid][1]) for eid, ts in self._unconfirmed.items() if lo_us <= ts <= hi_us]
        found.sort(key=lambda item: item[0])
        return found

    # ---------------------------------------------------------------- memory
    def evict(self, floor_us: int, arrived_before: float) -> int:
        """Forget entries below the floor that arrived before ``arrived_before``.

        Returns the lowest floor that keeps the ``max_tracked`` bound (>= floor_us).
        """
        entries = self._entries
        gone = [eid for eid, (ts, arrived, _) in entries.items() if ts < floor_us and arrived < arrived_before]
        for eid in gone:
            self._forget(eid)
        cut = bisect.bisect_left(self._confirmed, floor_us)
        if cut:
            del self._confirmed[:cut]
        if len(entries) <= self.max_tracked:
            return floor_us
        # Over the cap: drop the oldest by occurred and raise the floor past them, so no
        # query can return an event whose id is no longer remembered.
        excess = len(entries) - self.max_tracked
        oldest = sorted(entries.items(), key=lambda item: item[1][0])[:excess]
        new_floor = floor_us
        for eid, (ts, _, _) in oldest:
            new_floor = max(new_floor, ts + 1)
            self._forget(eid)
        cut = bisect.bisect_left(self._confirmed, new_floor)
        if cut:
            del self._confirmed[:cut]
        return new_floor

    def _forget(self, event_id: UUID) -> None:
        entry = self._entries.pop(event_id)
        if entry[2] == UNCONFIRMED:
            del self._unconfirmed[event_id]
        # confirmed times below the floor are trimmed in bulk by evict()
