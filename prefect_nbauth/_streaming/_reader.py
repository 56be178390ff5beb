"""The REST side of a stream: reads with the stream's credential, and what an answer means.

:class:`RestReader` holds what ``/events/filter`` and ``/logs/filter`` reads
share: one httpx client without redirects, the credential from the stream's
:class:`~._credential.CredentialKeeper` on every request (one refresh per
rejection), and the answers every Prefect read treats alike (:meth:`check`):
HTTP 5xx/408/425/429 may pass, 422 is a filter the server refuses, a redirect
is a wrong API URL. The products read their own pages on top.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from .._exceptions import ConfigurationError, NotPrefectServerError
from .._urls import shown_origin
from ._credential import CredentialKeeper
from ._failures import Retryable, scrub
from ._subscription import user_agent
from ._time import to_us

__all__ = ["RestReader", "stamp_us"]


def stamp_us(raw: Any, key: str) -> int | None:
    """The ISO time at ``raw[key]`` (``occurred``, ``timestamp``) in µs, or None if there is none."""
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


class RestReader:
    """Reads under one API URL with the stream's credential; one refresh on 401/403.

    ``filter_path`` is the read whose 401/403 means "refused for auth" (a 403
    elsewhere, such as a stale page token, is the product's to interpret), and
    ``auth_paths`` the other reads that are refused the same way; ``what`` names
    its pages in messages ("event", "log").
    """

    filter_path = "/events/filter"
    auth_paths: tuple[str, ...] = ()
    what = "event"

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

    async def request(self, method: str, path: str, body: Any, params: Any = None) -> tuple[httpx.Response, Any]:
        """(response, credential used); a refused ``filter_path`` read is refreshed once and retried."""
        credential = self.keeper.current or await self.keeper.get()
        checked = path == self.filter_path or path in self.auth_paths
        while True:
            response = await self._send(method, path, body, params, credential)
            if response.status_code in (401, 403) and checked:
                # One refresh; the keeper raises AuthenticationError if the fresh one fails too.
                credential = await self.keeper.rejected(
                    credential, f"HTTP {response.status_code} from {path}", response.status_code)
                continue
            break
        if checked:
            self.keeper.accepted(credential)
        return response, credential

    async def _send(self, method: str, path: str, body: Any, params: Any, credential: Any) -> httpx.Response:
        url = self.api_url + path
        self.requests += 1
        try:
            return await self._client.request(method, url, json=body, params=params,
                                              headers=credential.raw_headers())
        except httpx.TimeoutException:
            raise Retryable(f"{shown_origin(url)} did not answer {path} in time") from None
        except httpx.HTTPError as exc:
            text = scrub(str(exc), credential) or type(exc).__name__
            raise Retryable(f"cannot reach {shown_origin(url)} ({text})") from None

    def check(self, response: httpx.Response, path: str, credential: Any, hint: str) -> Any:
        """The JSON of a read, or Retryable / ConfigurationError / NotPrefectServerError.

        ``hint`` ends the 422 message: which filter field an older server may not know.
        """
        status = response.status_code
        where = f"{self.api_url}{path}"
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(f"{where} answered HTTP {status}")
        if status == 422:
            detail = scrub(response.text, credential)[:300]
            raise ConfigurationError(
                f"The server refused the {self.what} filter (HTTP 422 from {where}): {detail}. An older "
                f"Prefect server may not know every filter field{hint}; remove the one it names."
            )
        if 300 <= status < 400:
            raise NotPrefectServerError(
                f"{where} redirected (HTTP {status}); credentials are not forwarded across "
                "redirects. Use the final API URL (often https:// instead of http://)."
            )
        try:
            return response.json() if status == 200 else None
        except ValueError:
            return None

    def not_prefect(self, response: httpx.Response, path: str, expected: str) -> NotPrefectServerError:
        kind = response.headers.get("content-type", "?").split(";")[0]
        return NotPrefectServerError(
            f"{self.api_url}{path} answered HTTP {response.status_code} ({kind}), not {expected}. Check "
            "that the API URL points at a Prefect API (it usually ends in /api)."
        )
