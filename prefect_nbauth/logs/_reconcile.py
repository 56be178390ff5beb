"""Reading logs back from REST: keyset reads over ``POST /logs/filter``.

Prefect's log API has no count (unlike ``/events/filter``'s ``total``), no id
filter and one sort key (``timestamp``). What it does have, measured on 3.9.1:
a log is committed by the same request that publishes it to the live socket,
``limit`` up to 200, ``offset``, and ``timestamp.after_``/``before_`` (both
inclusive). So completeness comes from keyset reads: from a watermark upward,
a page of 200 at a time, the next page starting at (and re-reading) the newest
timestamp of the last one; logs already delivered are recognised by id. A full
page of one single timestamp cannot move the keyset; it is paged through by
offset within that timestamp.

:class:`RestLogs` is the shared :class:`~prefect_nbauth._streaming._reader.RestReader`
(the stream's credential, one refresh per rejection) with the log pages on top.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import httpx

from .._streaming import RestReader, Retryable, stamp_us
from ._filter import LogStreamFilter

__all__ = ["RestLogs", "read_range", "timestamp_us"]

PAGE = 200  # Prefect's server refuses more (HTTP 422)


def timestamp_us(raw: Any) -> int | None:
    return stamp_us(raw, "timestamp")


class RestLogs(RestReader):
    """``/logs/filter`` (and ``/admin/settings``) reads with the stream's credential."""

    filter_path = "/logs/filter"
    auth_paths = ("/flow_runs/filter", "/task_runs/filter")  # run states (see ._runs)
    what = "log"

    async def page(self, filter_body: dict[str, Any], offset: int = 0) -> list[dict[str, Any]]:
        body = {"logs": filter_body, "limit": PAGE, "offset": offset, "sort": "TIMESTAMP_ASC"}
        response, credential = await self.request("POST", "/logs/filter", body)
        return self._parse(response, credential)

    async def live_logs_enabled(self) -> bool | None:
        """Whether the server streams logs on ``/logs/out`` (None: it does not say).

        Prefect 3.9 answers the socket's handshake even with log streaming off
        (the default) and then sends nothing; its settings say which it is.
        """
        try:
            response, _ = await self.request("GET", "/admin/settings", None)
        except Retryable:
            return None
        if response.status_code != 200:
            return None
        try:
            server = response.json().get("server")
        except (ValueError, AttributeError):
            return None
        if not isinstance(server, dict):
            return None
        logs = server.get("logs")
        if not isinstance(logs, dict):
            return False  # a server from before log streaming: REST only
        return bool(logs.get("stream_out_enabled")) and bool(logs.get("stream_publishing_enabled"))

    def _parse(self, response: httpx.Response, credential: Any) -> list[dict[str, Any]]:
        data = self.check(response, "/logs/filter", credential, " (text=)")
        if not isinstance(data, list):
            raise self.not_prefect(response, "/logs/filter", "a list of Prefect logs")
        return data


async def read_range(rest: RestLogs, sfilter: LogStreamFilter, lo_us: int, hi_us: int | None,
                     take: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> int:
    """Read every matching log with ``lo_us <= timestamp (<= hi_us)``, oldest first.

    Each page goes to ``take`` (which drops what was already delivered); returns
    the number of pages read.
    """
    cursor = lo_us
    pages = 0
    while True:
        page = await rest.page(sfilter.query(cursor, hi_us))
        pages += 1
        await take(page)
        if len(page) < PAGE:
            return pages
        newest = max((ts for ts in map(timestamp_us, page) if ts is not None), default=None)
        if newest is not None and newest > cursor:
            cursor = newest  # keyset: the next page starts at (and re-reads) this time
            continue
        # A full page of one timestamp: walk it by offset, then step past it.
        offset = PAGE
        while True:
            page = await rest.page(sfilter.query(cursor, cursor), offset=offset)
            pages += 1
            await take(page)
            if len(page) < PAGE:
                break
            offset += PAGE
        if hi_us is not None and cursor >= hi_us:
            return pages
        cursor += 1
