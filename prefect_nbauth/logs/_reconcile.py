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

:class:`RestLogs` uses the stream's :class:`CredentialKeeper` exactly as
``RestEvents`` does (one refresh per rejection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Awaitable, Callable

import httpx

from .._exceptions import ConfigurationError, NotPrefectServerError
from ..events._filter import to_us
from ..events._transport import CredentialKeeper, Retryable, origin, scrub, user_agent
from ._filter import LogStreamFilter

__all__ = ["RestLogs", "read_range", "timestamp_us"]

PAGE = 200  # Prefect's server refuses more (HTTP 422)


def timestamp_us(raw: Any) -> int | None:
    value = raw.get("timestamp") if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


class RestLogs:
    """``/logs/filter`` (and ``/admin/settings``) reads with the stream's credential."""

    def __init__(self, api_url: str, keeper: CredentialKeeper, *, verify: Any, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.keeper = keeper
        self._client = httpx.AsyncClient(
            verify=verify, timeout=timeout, follow_redirects=False, trust_env=True,
            headers={"User-Agent": user_agent()},
        )
        self.requests = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def page(self, filter_body: dict[str, Any], offset: int = 0) -> list[dict[str, Any]]:
        body = {"logs": filter_body, "limit": PAGE, "offset": offset, "sort": "TIMESTAMP_ASC"}
        response, credential = await self._request("POST", "/logs/filter", body)
        return self._parse(response, credential)

    async def live_logs_enabled(self) -> bool | None:
        """Whether the server streams logs on ``/logs/out`` (None: it does not say).

        Prefect 3.9 answers the socket's handshake even with log streaming off
        (the default) and then sends nothing; its settings say which it is.
        """
        try:
            response, _ = await self._request("GET", "/admin/settings", None)
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

    async def _request(self, method: str, path: str, body: Any) -> tuple[httpx.Response, Any]:
        credential = self.keeper.current or await self.keeper.get()
        while True:
            response = await self._send(method, path, body, credential)
            if response.status_code in (401, 403) and path == "/logs/filter":
                credential = await self.keeper.rejected(
                    credential, f"HTTP {response.status_code} from {path}", response.status_code)
                continue
            break
        if path == "/logs/filter":
            self.keeper.accepted(credential)
        return response, credential

    async def _send(self, method: str, path: str, body: Any, credential: Any) -> httpx.Response:
        url = self.api_url + path
        self.requests += 1
        try:
            return await self._client.request(method, url, json=body, headers=dict(credential.headers))
        except httpx.TimeoutException:
            raise Retryable(f"{origin(url)} did not answer {path} in time") from None
        except httpx.HTTPError as exc:
            text = scrub(str(exc), credential) or type(exc).__name__
            raise Retryable(f"cannot reach {origin(url)} ({text})") from None

    def _parse(self, response: httpx.Response, credential: Any) -> list[dict[str, Any]]:
        status = response.status_code
        where = f"{self.api_url}/logs/filter"
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(f"{where} answered HTTP {status}")
        if status == 422:
            detail = scrub(response.text, credential)[:300]
            raise ConfigurationError(
                f"The server refused the log filter (HTTP 422 from {where}): {detail}. An older "
                "Prefect server may not know every filter field (text=); remove the one it names."
            )
        if 300 <= status < 400:
            raise NotPrefectServerError(
                f"{where} redirected (HTTP {status}); credentials are not forwarded across "
                "redirects. Use the final API URL (often https:// instead of http://)."
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if status != 200 or not isinstance(data, list):
            kind = response.headers.get("content-type", "?").split(";")[0]
            raise NotPrefectServerError(
                f"{where} answered HTTP {status} ({kind}), not a list of Prefect logs. Check that "
                "the API URL points at a Prefect API (it usually ends in /api)."
            )
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
