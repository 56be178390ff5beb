"""The websocket of a stream: ``/events/out`` or ``/logs/out``, authenticated and filtered.

:func:`open_socket` opens the socket under the API URL with the credential in
force now: every header of :func:`~prefect_nbauth.session.socket_credential`
on the upgrade request (Basic or Bearer ``Authorization`` and gateway headers),
the ``prefect`` subprotocol, then Prefect's ``{"type": "auth", "token": …}``
message and the filter frame. Both sockets share this handshake; what differs
(the path, the filter) is the caller's.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

from .._exceptions import NotPrefectServerError
from .._urls import ws_url
from .._websocket import SILENT, connect_without_redirects
from ._failures import AuthRejected, Retryable, classify_closed, scrub, wait_for

__all__ = ["Socket", "open_socket", "socket_url", "tls_settings", "user_agent"]

MAX_FRAME = 16 * 1024 * 1024  # Prefect allows events of 1.5 MB; never loop on "frame too big"


def socket_url(api_url: str, path: str = "/events/out") -> str:
    return ws_url(api_url, path)


def tls_settings() -> tuple[Any, ssl.SSLContext | None]:
    """(httpx verify, websocket SSL context): one context, as Prefect's own clients trust (:mod:`.._tls`)."""
    from .._tls import ssl_context

    context = ssl_context()
    return context, context


def user_agent() -> str:
    import prefect

    from .._version import __version__

    return f"prefect-nbauth/{__version__} prefect/{prefect.__version__}"


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


async def open_socket(api_url: str, credential: Any, filter_body: dict[str, Any], *,
                      ssl_context: ssl.SSLContext | None, open_timeout: float = 10.0,
                      path: str = "/events/out") -> Socket:
    """Connect, authenticate and subscribe; raise AuthRejected, Retryable or a terminal error.

    ``path`` is the socket under the API URL: ``/events/out``, or ``/logs/out`` (same handshake).
    """
    from websockets.exceptions import ConnectionClosed

    url = socket_url(api_url, path)
    connection = await _connect(url, credential, ssl_context, open_timeout)
    try:
        if connection.subprotocol == "prefect":
            await _authenticate(connection, credential, url, open_timeout)
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


async def _connect(url: str, credential: Any, ssl_context: ssl.SSLContext | None, open_timeout: float) -> Any:
    """The upgrade, without redirects, with every header of the credential."""
    from websockets import Subprotocol
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    connect = connect_without_redirects()
    try:
        return await connect(
            url,
            logger=SILENT,
            additional_headers=credential.raw_headers(),
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


async def _authenticate(connection: Any, credential: Any, url: str, open_timeout: float) -> None:
    """Prefect's auth message; anything but ``auth_success`` is a refusal or not Prefect."""
    await connection.send(json.dumps({"type": "auth", "token": credential.raw_auth_token()}))
    raw = await wait_for(connection.recv(), open_timeout)
    try:
        answer = json.loads(raw)
    except (TypeError, ValueError):
        answer = None
    if isinstance(answer, dict) and answer.get("type") == "auth_success":
        return
    await connection.close()
    if isinstance(answer, dict) and "auth" in str(answer.get("type", "")):
        raise AuthRejected(f"the server answered the auth message with {str(answer.get('type'))[:40]!r}")
    raise NotPrefectServerError(
        f"{url} accepted a websocket but did not answer Prefect's auth handshake "
        "(expected auth_success). Check that the API URL points at a Prefect API."
    )
