"""Reconciliation: find, by counting, the persisted events the websocket missed.

A pass covers a window ``[lo, hi]`` of ``occurred`` times (µs, inclusive, the
same bounds Prefect's SQL uses). Its *deficit* is

    server count of matching events in the window            (POST /events/filter, limit 1: "total")
  - events this stream delivered and knows the server has    (confirmed, from the ledger)
  - live-delivered events the server has meanwhile persisted (the same query with an id list)

which is exactly the number of persisted, matching events not yet delivered.
The counts are taken in that order so that anything persisted meanwhile can
only make the deficit too large (one extra read), never too small.

A zero deficit costs two or three small requests, however many events the
window holds; that is what makes a regular pass cheap. A positive deficit is
located by halving the window until the missing events are dense or few, then
read in ``occurred`` order with keyset pages of 50 (``since`` = the last page's
newest time; a run of 50 events with one timestamp is paged through with the
server's ``next_page`` link).

Live events the server never persists (it was killed before its persister
flushed) would stay "unconfirmed" for ever; once older than ``ghost_after``
they are checked in halves and the ones the server does not have are set aside
as ghosts (still deduplicated, no longer counted).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, Sequence
from uuid import UUID

from .._streaming import stamp_us
from ._filter import StreamFilter
from ._ledger import Ledger
from ._pages import RestEvents

__all__ = ["Reconciler"]

logger = logging.getLogger("prefect_nbauth.events")

ID_CHUNK = 500  # ids per "how many of these do you have?" count
DIRECT_FETCH = 500  # a window this small is read outright (10 pages)
DENSE = 4  # ... and so is one where at least 1 in DENSE events is missing


class Reconciler:
    def __init__(self, *, rest: RestEvents, ledger: Ledger, sfilter: StreamFilter,
                 take: Callable[[Sequence[dict[str, Any]]], Awaitable[int]],
                 ghost_after: float, on_recovering: Callable[[bool], None]) -> None:
        self.rest = rest
        self.ledger = ledger
        self.sfilter = sfilter
        self._take = take  # delivers unknown events of a page, confirms known ones; returns # delivered
        self.ghost_after = ghost_after
        self._on_recovering = on_recovering
        self.ghosts = 0

    async def run_pass(self, lo: int, hi: int) -> int:
        """Deliver every persisted event in [lo, hi] not delivered yet; return how many."""
        if hi < lo:
            return 0
        deficit, total = await self.deficit(lo, hi)
        if deficit <= 0:
            return 0
        logger.debug("reconciliation: %d of %d persisted events not delivered yet", deficit, total)
        self._on_recovering(True)
        try:
            delivered = await self._recover(lo, hi, deficit, total)
        finally:
            self._on_recovering(False)
        logger.debug("reconciliation: delivered %d", delivered)
        return delivered

    # ------------------------------------------------------------- counting
    async def _count_ids(self, chunk: Sequence[tuple[int, UUID, float]]) -> int:
        ids = [str(item[1]) for item in chunk]
        return await self.rest.count(self.sfilter.query(chunk[0][0], chunk[-1][0], ids=ids))

    async def deficit(self, lo: int, hi: int) -> tuple[int, int]:
        """(persisted matching events in [lo, hi] not delivered, server total)."""
        pending = self.ledger.unconfirmed_in(lo, hi)
        horizon = time.monotonic() - self.ghost_after
        old = [p for p in pending if p[2] < horizon]
        recent = [p for p in pending if p[2] >= horizon]
        persisted_unconfirmed = 0
        for start in range(0, len(old), ID_CHUNK):
            chunk = old[start:start + ID_CHUNK]
            await self._resolve(chunk, await self._count_ids(chunk))
        for start in range(0, len(recent), ID_CHUNK):
            chunk = recent[start:start + ID_CHUNK]
            have = await self._count_ids(chunk)
            if have >= len(chunk):
                self.ledger.confirm_all(item[1] for item in chunk)
            else:
                persisted_unconfirmed += have  # some not persisted yet; recount next pass
        total = await self.rest.count(self.sfilter.query(lo, hi))
        return total - self.ledger.count_confirmed(lo, hi) - persisted_unconfirmed, total

    async def _resolve(self, chunk: Sequence[tuple[int, UUID, float]], have: int) -> None:
        """Split old unconfirmed events into confirmed and ghosts."""
        if have >= len(chunk):
            self.ledger.confirm_all(item[1] for item in chunk)
            return
        if have <= 0:
            for item in chunk:
                self.ledger.mark_ghost(item[1])
            self.ghosts += len(chunk)
            return
        half = len(chunk) // 2
        for part in (chunk[:half], chunk[half:]):
            await self._resolve(part, await self._count_ids(part))

    # ------------------------------------------------------------- reading
    async def _recover(self, lo: int, hi: int, deficit: int, total: int) -> int:
        if deficit <= 0:
            return 0
        if total <= DIRECT_FETCH or deficit * DENSE >= total or hi - lo < 2000:
            return await self.fetch_range(lo, hi)
        mid = lo + (hi - lo) // 2
        delivered = 0
        for a, b in ((lo, mid), (mid + 1, hi)):
            sub_deficit, sub_total = await self.deficit(a, b)
            delivered += await self._recover(a, b, sub_deficit, sub_total)
        return delivered

    async def fetch_range(self, lo: int, hi: int) -> int:
        """Read every matching event in [lo, hi], oldest first; return how many were new."""
        delivered = 0
        cursor = lo
        page_size = self.rest.PAGE
        while True:
            page = await self.rest.page(self.sfilter.query(cursor, hi))
            events = page["events"]
            delivered += await self._take(events)
            if len(events) < page_size:
                return delivered
            newest = stamp_us(events[-1], "occurred")
            if newest is not None and newest > cursor:
                cursor = newest  # keyset: the next page starts at (and re-reads) this time
                continue
            # A full page of one timestamp: keyset cannot move; page through it by offset.
            link = page.get("next_page")
            moved = False
            while link:
                following = await self.rest.next_page(link)
                if not following:
                    break
                page = following
                events = page["events"]
                delivered += await self._take(events)
                newest = stamp_us(events[-1], "occurred") if events else None
                if newest is not None and newest > cursor:
                    cursor, moved = newest, True
                    break
                link = page.get("next_page")
            if not moved:
                return delivered

