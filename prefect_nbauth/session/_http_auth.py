"""The httpx Auth that every Prefect HTTP client in the process carries.

Prefect fixes a client's ``Authorization`` header when the client is created,
so a client opened before a token rotation (a running flow's, one held in a
variable) would keep sending the old token. This Auth instead sets the current
token on every request, and on HTTP 401 asks for one refresh and retries the
request (the httpx auth-flow pattern: ``response = yield request``); a retry refused
in turn is retried again only when the token had aged meanwhile (:mod:`._rotation`).

The flow is written once, as one generator (:meth:`NbAuth._flow`), as httpx's own
auths are. Refreshing may block (a command, an HTTP call to a token endpoint),
so the generator does not call the refresh itself: it yields a :class:`_Call`,
which the sync driver runs in place and the async driver on a worker thread,
never on the event loop.

It does nothing unless a login with a refreshable credential is active, and
only touches requests to the logged-in API URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncGenerator, Callable, Generator, Union

import httpx

from .._exceptions import AuthenticationError, CredentialProviderError

__all__ = ["NbAuth"]


@dataclass(frozen=True)
class _Call:
    """A blocking step of the flow, for the driver to run: ``func(*args)``."""

    func: Callable[..., Any]
    args: tuple[Any, ...] = ()

    def __call__(self) -> Any:
        return self.func(*self.args)


_Step = Union[httpx.Request, _Call]

#: Retries of one request after a refusal, whatever the rotation says (its own bound is
#: RefusalMemory.MAX_AGED; this one holds even when that memory has forgotten an entry).
MAX_RETRIES = 5


class NbAuth(httpx.Auth):
    requires_request_body = True  # so a request can be sent a second time after a refresh

    def __init__(self, get_rotation: Callable[[], Any]) -> None:
        # get_rotation() -> the active rotation (see _rotation.Rotation) or None
        self._get_rotation = get_rotation

    def _flow(self, request: httpx.Request) -> Generator[_Step, Any, None]:
        rotation = self._get_rotation()
        if rotation is None or not rotation.covers(request):
            yield request
            return
        if rotation.needs_refresh():
            yield _Call(rotation.ensure_fresh)
        used = rotation.apply(request)
        response = yield request
        retries = 0
        while True:
            if response.status_code != 401:
                rotation.succeeded(used)
                return
            # Obtained after a refusal and refused in turn before its age explains it: give up
            # (the rule, and its bound, are _rotation.RefusalMemory's).
            if retries == MAX_RETRIES or rotation.refused_again(used):
                raise AuthenticationError(rotation.rejected_twice_message(), status_code=401)
            retries += 1
            if not (yield _Call(rotation.refresh_after_rejection, (used,))):
                failure = getattr(rotation, "refresh_failure", None)
                if failure is not None:
                    # The refresh failed (the person is signed out…): its reason, not a bare 401.
                    raise CredentialProviderError(str(failure))
                return  # nothing refreshable: Prefect raises its usual 401 error
            # No response.close() here: httpx reads the rejected response into the
            # history itself once the flow yields the retry.
            used = rotation.apply(request)
            response = yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._flow(request)
        step = _advance(flow, None)
        while step is not None:
            step = _advance(flow, step() if isinstance(step, _Call) else (yield step))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import anyio.to_thread

        flow = self._flow(request)
        step = _advance(flow, None)
        while step is not None:
            if isinstance(step, _Call):
                step = _advance(flow, await anyio.to_thread.run_sync(step))
            else:
                step = _advance(flow, (yield step))


def _advance(flow: Generator[_Step, Any, None], sent: Any) -> _Step | None:
    """The flow's next step after ``sent`` (what the previous step gave), or None when it is done."""
    try:
        return flow.send(sent)
    except StopIteration:
        return None
