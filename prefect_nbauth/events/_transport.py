"""The two ways an event stream talks to Prefect, and what their failures mean.

- :func:`open_socket` opens ``/events/out`` with the credential in force now:
  every header of :func:`socket_credential` on the upgrade request (Basic or
  Bearer ``Authorization`` and gateway headers), the ``prefect`` subprotocol,
  then Prefect's ``{"type": "auth", "token": …}`` message and the filter.
- :class:`RestEvents` reads ``POST /events/filter`` and ``GET
  /events/filter/next`` with the same headers.

Both raise one of three things: :class:`AuthRejected` (the server refused the
credential: HTTP 401/403, or a websocket close 1008), :class:`Retryable`
(anything that may pass: refused connection, timeout, HTTP 5xx, a connection cut
mid-frame) or a terminal :class:`PrefectAuthError` (not a Prefect API, a filter
the server refuses). :class:`CredentialKeeper` turns an ``AuthRejected`` into
one refresh, and a second rejection into :class:`AuthenticationError`.

No message built here contains a secret: anything that came from elsewhere goes
through :func:`redact` with the credential's values first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from .._exceptions import (
    AuthenticationError,
    ConfigurationError,
    CredentialProviderError,
    NotPrefectServerError,
    PrefectAuthError,
)
from .._redaction import scrub_text
from .._secrets import redact
from .._websocket import SILENT, connect_without_redirects, ws_url

__all__ = [
    "AuthRejected",
    "wait_for",
    "CredentialKeeper",
    "RestEvents",
    "Retryable",
    "Socket",
    "open_socket",
    "socket_url",
]

logger = logging.getLogger("prefect_nbauth.events")

MAX_FRAME = 16 * 1024 * 1024  # Prefect allows events of 1.5 MB; never loop on "frame too big"


async def wait_for(awaitable: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for`` that never swallows a cancellation.

    On Python < 3.12, ``asyncio.wait_for`` returns the inner result when the
    outer task is cancelled just as the inner one finishes, and the
    cancellation is lost: a stream asked to stop would run on.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        raise asyncio.TimeoutError
    return task.result()


class AuthRejected(Exception):
    """The server refused the credential; ``how`` says how (no secret in it)."""

    def __init__(self, how: str, status_code: int | None = None) -> None:
        super().__init__(how)
        self.how = how
        self.status_code = status_code


class Retryable(Exception):
    """A failure that may pass: try again after a backoff."""


def _secrets_of(credential: Any) -> list[str]:
    values = [v for v in credential.headers.values()]
    values += [v.split(" ", 1)[-1] for v in credential.headers.values() if " " in v]
    if credential.auth_token:
        values.append(credential.auth_token)
    return values


def scrub(text: str, credential: Any) -> str:
    """Others' text without the credential (every form), any secret in force, or an auth frame."""
    if credential is not None:
        text = redact(text, *_secrets_of(credential))
    return scrub_text(text)


def fingerprint(credential: Any) -> str:
    """Identifies a credential without keeping another copy of its values around."""
    digest = hashlib.sha256()
    for name, value in sorted(credential.headers.items()):
        digest.update(f"{name.lower()}\0{value}\0".encode())
    digest.update(f"token\0{credential.auth_token or ''}".encode())
    return digest.hexdigest()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def socket_url(api_url: str) -> str:
    return ws_url(api_url, "events/out")


def tls_settings() -> tuple[Any, ssl.SSLContext | None]:
    """(httpx verify, websocket SSL context): one context, as Prefect's own clients trust (:mod:`._tls`)."""
    from .._tls import ssl_context

    context = ssl_context()
    return context, context


def user_agent() -> str:
    import prefect

    from .. import __version__

    return f"prefect-nbauth/{__version__} prefect/{prefect.__version__}"


# ------------------------------------------------------------------ credential


class CredentialKeeper:
    """The stream's view of the credential: current one, one refresh per rejection.

    Shared by the websocket and the REST reads of one stream, so that both
    rejecting the same credential costs one refresh. A credential obtained
    *because* of a rejection is "fresh"; if a fresh one is rejected too, the
    stream ends with AuthenticationError. When a refresh yields nothing new (a
    plain auth string that the server no longer accepts), it waits up to
    ``wait`` seconds for one to appear (``prefect_nbauth.login(...)`` with the
    new value) before giving up.
    """

    def __init__(self, api_url: str, *, wait: float, on_wait: Callable[[str], None]) -> None:
        self.api_url = api_url
        self.wait = wait
        self._on_wait = on_wait
        self._fresh: set[str] = set()
        self._lock = asyncio.Lock()
        self._failed: AuthenticationError | None = None
        self.current: Any = None

    async def _read(self) -> Any:
        from .._session import socket_credential

        try:
            credential = await asyncio.to_thread(socket_credential)
        except CredentialProviderError as exc:
            # A provider that fails now (OAuth2 endpoint down) may work again: retry.
            raise Retryable(f"the credential provider failed: {exc}") from None
        self._check_url(credential)
        return credential

    async def get(self) -> Any:
        credential = await self._read()
        self.current = credential
        return credential

    def _check_url(self, credential: Any) -> None:
        url = (credential.api_url or "").rstrip("/")
        if url != self.api_url:
            where = url or "no API URL"
            raise ConfigurationError(
                f"The Prefect API in force changed from {self.api_url} to {where} while this "
                "event stream ran; a stream stays with one server. Start a new one with "
                "stream_events(...)."
            )

    def accepted(self, credential: Any) -> None:
        self._fresh.discard(fingerprint(credential))

    def _fail(self, how: str, status_code: int | None, why: str) -> AuthenticationError:
        self._failed = AuthenticationError(
            f"The Prefect API at {self.api_url} rejected the event stream's credential ({how}) "
            f"{why}. Log in again with prefect_nbauth.login(...) (or fix the credential "
            "provider), then start a new stream with stream_events(...).",
            status_code=status_code,
        )
        return self._failed

    async def rejected(self, used: Any, how: str, status_code: int | None = None) -> Any:
        """``used`` was refused: return a credential to retry with, or raise AuthenticationError."""
        from .._session import refresh_socket_credential

        async with self._lock:
            if self._failed is not None:
                raise self._failed
            used_print = fingerprint(used)
            if used_print in self._fresh:
                raise self._fail(how, status_code, "right after it was refreshed")
            current = await self._read()
            if fingerprint(current) == used_print:
                changed = await asyncio.to_thread(refresh_socket_credential, used)
                if changed:
                    current = await self._read()
            if fingerprint(current) == used_print and self.wait > 0:
                self._on_wait(
                    f"The server rejected the credential ({how}) and refreshing gave no new one; "
                    f"waiting up to {self.wait:g} s for prefect_nbauth.login(...) with a valid one."
                )
                deadline = time.monotonic() + self.wait
                while time.monotonic() < deadline:
                    await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
                    current = await self._read()
                    if fingerprint(current) != used_print:
                        break
            if fingerprint(current) == used_print:
                waited = f" and no new credential appeared within {self.wait:g} s" if self.wait > 0 else ""
                raise self._fail(how, status_code, f"and a refresh gave no new credential{waited}")
            self._fresh.add(fingerprint(current))
            self.current = current
            return current


# ------------------------------------------------------------------- websocket


class Socket:
    """An authenticated, filtered ``/events/out`` connection."""

    def __init__(self, connection: Any, credential: Any) -> None:
        self.connection = connection
        self.credential = credential

    async def close(self) -> None:
        try:
            await self.connection.close()
        except Exception:  # noqa: BLE001 - closing a broken socket
            pass


def _close_code(exc: BaseException) -> int | None:
    rcvd = getattr(exc, "rcvd", None)
    return getattr(rcvd, "code", None)


def classify_closed(exc: BaseException, credential: Any) -> Exception:
    """A ConnectionClosed while streaming or in the handshake → AuthRejected or Retryable."""
    code = _close_code(exc)
    if code == 1008:
        return AuthRejected("websocket closed with 1008 policy violation", None)
    reason = getattr(getattr(exc, "rcvd", None), "reason", "") or ""
    detail = f"code {code}" if code is not None else "no close frame: the connection was cut"
    if reason:
        detail += f", {scrub(reason, credential)[:200]}"
    return Retryable(f"websocket closed ({detail})")


async def open_socket(api_url: str, credential: Any, filter_body: dict[str, Any], *,
                      ssl_context: ssl.SSLContext | None, open_timeout: float = 10.0) -> Socket:
    """Connect, authenticate and subscribe; raise AuthRejected, Retryable or a terminal error."""
    from websockets import Subprotocol
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    connect = connect_without_redirects()
    url = socket_url(api_url)
    try:
        connection = await connect(
            url,
            logger=SILENT,
            additional_headers=dict(credential.headers),
            subprotocols=[Subprotocol("prefect")],
            open_timeout=open_timeout,
            ping_interval=10,
            ping_timeout=20,
            close_timeout=2,
            max_size=MAX_FRAME,
            max_queue=1024,
            user_agent_header=user_agent(),
            **({"ssl": ssl_context} if ssl_context is not None and url.startswith("wss://") else {}),
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthRejected(f"HTTP {status} on the websocket upgrade", status) from None
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(f"websocket upgrade answered HTTP {status}") from None
        raise Retryable(
            f"{url} answered the websocket upgrade with HTTP {status}, not 101; events arrive "
            "by polling the REST API until it accepts"
        ) from None
    except ConnectionClosed as exc:
        raise classify_closed(exc, credential) from None
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
        text = scrub(str(exc), credential) or type(exc).__name__
        raise Retryable(f"cannot open {url}: {text}") from None

    try:
        if connection.subprotocol == "prefect":
            await connection.send(json.dumps({"type": "auth", "token": credential.auth_token}))
            raw = await wait_for(connection.recv(), open_timeout)
            try:
                answer = json.loads(raw)
            except (TypeError, ValueError):
                answer = None
            if not isinstance(answer, dict) or answer.get("type") != "auth_success":
                await connection.close()
                if isinstance(answer, dict) and "auth" in str(answer.get("type", "")):
                    raise AuthRejected("the server answered the auth message with "
                                       f"{str(answer.get('type'))[:40]!r}")
                raise NotPrefectServerError(
                    f"{url} accepted a websocket but did not answer Prefect's auth handshake "
                    "(expected auth_success). Check that the API URL points at a Prefect API."
                )
        # A server without the 'prefect' subprotocol predates websocket auth: filter first.
        await connection.send(json.dumps({"type": "filter", "filter": filter_body, "backfill": False}))
    except ConnectionClosed as exc:
        raise classify_closed(exc, credential) from None
    except asyncio.TimeoutError:
        await connection.close()
        raise Retryable(f"no answer to the auth message within {open_timeout:g} s") from None
    except OSError as exc:
        raise Retryable(f"websocket failed during the handshake: {scrub(str(exc), credential)}") from None
    return Socket(connection, credential)


# ------------------------------------------------------------------------ REST


class RestEvents:
    """``/events/filter`` reads with the stream's credential; one refresh on 401/403."""

    PAGE = 50  # Prefect's server refuses more (HTTP 422)

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

    async def count(self, filter_body: dict[str, Any]) -> int:
        page = await self._request("POST", "/events/filter", {"filter": filter_body, "limit": 1})
        return int(page["total"])

    async def page(self, filter_body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", "/events/filter", {"filter": filter_body, "limit": self.PAGE})

    async def next_page(self, next_url: str) -> dict[str, Any] | None:
        """Follow a ``next_page`` link, rebuilt on our own API URL (never another host)."""
        from urllib.parse import parse_qs

        token = parse_qs(urlsplit(next_url).query).get("page-token", [None])[0]
        if not token:
            return None
        return await self._request("GET", "/events/filter/next", None, params={"page-token": token})

    async def _request(self, method: str, path: str, body: Any, params: Any = None) -> dict[str, Any]:
        credential = self.keeper.current or await self.keeper.get()
        while True:
            response = await self._send(method, path, body, params, credential)
            if response.status_code in (401, 403) and path == "/events/filter":
                # One refresh; the keeper raises AuthenticationError if the fresh one fails too.
                credential = await self.keeper.rejected(
                    credential, f"HTTP {response.status_code} from {path}", response.status_code)
                continue
            break
        self.keeper.accepted(credential)
        return self._parse(response, path, credential)

    async def _send(self, method: str, path: str, body: Any, params: Any, credential: Any) -> httpx.Response:
        url = self.api_url + path
        self.requests += 1
        try:
            return await self._client.request(method, url, json=body, params=params,
                                              headers=dict(credential.headers))
        except httpx.TimeoutException:
            raise Retryable(f"{origin(url)} did not answer {path} in time") from None
        except httpx.HTTPError as exc:
            text = scrub(str(exc), credential) or type(exc).__name__
            raise Retryable(f"cannot reach {origin(url)} ({text})") from None

    def _parse(self, response: httpx.Response, path: str, credential: Any) -> dict[str, Any]:
        status = response.status_code
        where = f"{self.api_url}{path}"
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(f"{where} answered HTTP {status}")
        if status == 403:  # a page token the server no longer accepts
            raise Retryable(f"{where} refused a page token (HTTP 403)")
        if status == 422:
            detail = scrub(response.text, credential)[:300]
            raise ConfigurationError(
                f"The server refused the event filter (HTTP 422 from {where}): {detail}. An older "
                "Prefect server may not know every filter field; remove the one it names."
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
        if status != 200 or not isinstance(data, dict) or "events" not in data or "total" not in data:
            kind = response.headers.get("content-type", "?").split(";")[0]
            raise NotPrefectServerError(
                f"{where} answered HTTP {status} ({kind}), not a Prefect events page. Check that "
                "the API URL points at a Prefect API (it usually ends in /api)."
            )
        return data


def describe(exc: BaseException, credential: Any = None) -> str:
    """A one-line, secret-free description for stats.last_error."""
    if isinstance(exc, (Retryable, AuthRejected, PrefectAuthError)):
        return scrub(str(exc), credential)
    return scrub(f"{type(exc).__name__}: {exc}", credential)[:300]
