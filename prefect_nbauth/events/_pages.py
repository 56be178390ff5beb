"""The event stream's REST reads: ``POST /events/filter`` and ``GET /events/filter/next``.

Both go through :class:`~prefect_nbauth._streaming._reader.RestReader` (the
stream's credential, one refresh per rejection, Prefect's answers read alike).
What is the event stream's own: a page of 50 at most, the server's ``total``
(what makes a quiet reconciliation pass cheap), and ``next_page`` links, which
are followed on our own API URL, never on the host the link names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .._streaming import RestReader, Retryable

__all__ = ["RestEvents"]


class RestEvents(RestReader):
    """``/events/filter`` reads with the stream's credential; one refresh on 401/403."""

    PAGE = 50  # Prefect's server refuses more (HTTP 422)
    filter_path = "/events/filter"
    what = "event"

    async def count(self, filter_body: dict[str, Any]) -> int:
        page = await self._read("POST", "/events/filter", {"filter": filter_body, "limit": 1})
        return int(page["total"])

    async def page(self, filter_body: dict[str, Any]) -> dict[str, Any]:
        return await self._read("POST", "/events/filter", {"filter": filter_body, "limit": self.PAGE})

    async def next_page(self, next_url: str) -> dict[str, Any] | None:
        """Follow a ``next_page`` link, rebuilt on our own API URL (never another host)."""
        token = parse_qs(urlsplit(next_url).query).get("page-token", [None])[0]
        if not token:
            return None
        return await self._read("GET", "/events/filter/next", None, params={"page-token": token})

    async def _read(self, method: str, path: str, body: Any, params: Any = None) -> dict[str, Any]:
        response, credential = await self.request(method, path, body, params)
        return self._parse(response, path, credential)

    def _parse(self, response: httpx.Response, path: str, credential: Any) -> dict[str, Any]:
        if response.status_code == 403:  # a page token the server no longer accepts
            raise Retryable(f"{self.api_url}{path} refused a page token (HTTP 403)")
        data = self.check(response, path, credential, "")
        if not isinstance(data, dict) or "events" not in data or "total" not in data:
            raise self.not_prefect(response, path, "a Prefect events page")
        return data
