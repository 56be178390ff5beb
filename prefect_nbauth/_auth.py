"""The httpx Auth that every Prefect HTTP client in the process carries.

Prefect fixes a client's ``Authorization`` header when the client is created,
so a client opened before a token rotation (a running flow's, one held in a
variable) would keep sending the old token. This Auth instead sets the current
token on every request, and on HTTP 401 asks for one refresh and retries the
request once (the httpx auth-flow pattern: ``response = yield request``).

It does nothing unless a login with a refreshable credential is active, and
only touches requests to the logged-in API URL.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, Generator

import httpx

from ._exceptions import AuthenticationError

__all__ = ["NbAuth"]


class NbAuth(httpx.Auth):
    requires_request_body = True  # so a request can be sent a second time after a refresh

    def __init__(self, get_rotation: Any) -> None:
        # get_rotation() -> the active rotation (see _session._Rotation) or None
        self._get_rotation = get_rotation

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        rotation = self._get_rotation()
        if rotation is None or not rotation.covers(request):
            yield request
            return
        rotation.ensure_fresh()
        used = rotation.apply(request)
        response = yield request
        if response.status_code != 401:
            return
        if not rotation.refresh_after_rejection(used):
            return  # nothing refreshable: Prefect raises its usual 401 error
        # No response.close() here: httpx reads the rejected response into the
        # history itself once the flow yields the retry.
        used = rotation.apply(request)
        response = yield request
        if response.status_code == 401:
            raise AuthenticationError(rotation.rejected_twice_message(), status_code=401)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import anyio.to_thread

        rotation = self._get_rotation()
        if rotation is None or not rotation.covers(request):
            yield request
            return
        if rotation.needs_refresh():
            await anyio.to_thread.run_sync(rotation.ensure_fresh)
        used = rotation.apply(request)
        response = yield request
        if response.status_code != 401:
            return
        # The provider may block (a command, an HTTP call): never on the event loop.
        refreshed = await anyio.to_thread.run_sync(rotation.refresh_after_rejection, used)
        if not refreshed:
            return
        used = rotation.apply(request)
        response = yield request
        if response.status_code == 401:
            raise AuthenticationError(rotation.rejected_twice_message(), status_code=401)
