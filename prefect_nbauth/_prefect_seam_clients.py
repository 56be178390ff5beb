"""Where prefect_nbauth reaches into the credential Prefect's clients keep once created.

See :mod:`._prefect_seam` for the rules every reach into Prefect follows;
``tests/unit/test_prefect_seam.py`` fails loudly if a Prefect upgrade moves any of this.
Which clients are pointed where, and when, is :mod:`._open_clients`'s.
"""

from __future__ import annotations

from typing import Any, Iterable

from ._prefect_seam import logger, socket_client_classes
from ._urls import is_under

__all__ = ["client_api_url", "client_authorization", "http_client_classes", "install_open_client_hook",
           "point_client_at", "settings_authorization"]


# ------------------------------------------------------- clients opened while logged in
#
# A Prefect client takes its credential from the settings when it is created and keeps
# it: ``PrefectClient`` fixes ``Authorization`` in its httpx client's headers, the events
# and logs clients keep the raw token (``_auth_token``, Cloud's ``_api_key``) and the
# upgrade headers of their ``websocket_connect`` (and of the last connection made). When
# a login ends, the clients opened under it are pointed at the settings in force then.

_OPENED = "__prefect_nbauth_opened__"
_ON_OPENED: list[Any] = [lambda client: None]  # the hook in force (see install_open_client_hook)


def http_client_classes() -> list[Any]:
    """The two httpx client classes every Prefect REST client is built on."""
    from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient

    return [PrefectHttpxAsyncClient, PrefectHttpxSyncClient]


def install_open_client_hook(on_opened: Any) -> None:
    """Call ``on_opened(client)`` after each Prefect HTTP, events or logs client is created."""
    _ON_OPENED[0] = on_opened
    for cls in (*http_client_classes(), *socket_client_classes()):
        original = cls.__init__
        if getattr(original, _OPENED, False):
            continue

        def __init__(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            try:
                _ON_OPENED[0](self)
            except Exception:  # noqa: BLE001 - bookkeeping must never break a client
                logger.debug("recording an opened client failed", exc_info=True)

        setattr(__init__, _OPENED, True)
        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        cls.__init__ = __init__


def settings_authorization(settings: Any) -> str | None:
    """The ``Authorization`` a Prefect REST client made with ``settings`` carries (or None)."""
    from ._headers import authorization

    api = settings.api
    return authorization(auth_string=api.auth_string.get_secret_value() if api.auth_string else None,
                         api_key=api.key.get_secret_value() if api.key else None)


def client_api_url(client: Any) -> str | None:
    """The API URL a Prefect HTTP client (its base URL) or events/logs client talks to."""
    url = getattr(client, "_api_url", None) or getattr(client, "base_url", None)
    return str(url) if url else None


def client_authorization(client: Any) -> str | None:
    """The ``Authorization`` an HTTP client fixed at creation, or an events client's raw token."""
    if hasattr(client, "_auth_token"):
        return getattr(client, "_api_key", None) or client._auth_token  # type: ignore[no-any-return]
    headers = getattr(client, "headers", None)
    return headers.get("Authorization") if headers is not None else None


def _drop_headers(headers: Any, names: set[str]) -> Any:
    if headers is None:
        return None
    if isinstance(headers, dict):
        return {k: v for k, v in headers.items() if k.lower() not in names}
    for name in [k for k in list(headers.keys()) if k.lower() in names]:
        if name in headers:
            del headers[name]
    return headers


def point_client_at(client: Any, settings: Any, *, drop: Iterable[str] = ()) -> None:
    """Make a client present what a client created now from ``settings`` would (maybe nothing).

    ``drop``: header names to remove besides ``Authorization`` (an ended login's gateway
    headers, which the upgrade request of a websocket carried).
    """
    names = {"authorization", *(n.lower() for n in drop)}
    api_url = client_api_url(client)
    covered = bool(settings.api.url and api_url and is_under(api_url, str(settings.api.url)))
    auth_string = settings.api.auth_string.get_secret_value() if covered and settings.api.auth_string else None
    api_key = settings.api.key.get_secret_value() if covered and settings.api.key else None
    if not hasattr(client, "_auth_token"):  # an httpx client
        _drop_headers(client.headers, names)
        value = settings_authorization(settings) if covered else None
        if value:
            client.headers["Authorization"] = value
        return
    from prefect.events.clients import PrefectCloudEventsClient

    client._auth_token = auth_string
    cloud_key = getattr(client, "_api_key", None) is not None
    if cloud_key:
        client._api_key = api_key
    connect = getattr(client, "_connect", None)
    if connect is not None:
        headers = _drop_headers(dict(connect.additional_headers or {}), names)
        if isinstance(client, PrefectCloudEventsClient) and api_key:
            headers["Authorization"] = f"bearer {api_key}"
        elif hasattr(client, "_unconfirmed_events") and auth_string:  # the publisher sends Basic too
            from ._headers import basic

            headers["Authorization"] = basic(auth_string)
        connect.additional_headers = headers
    # The handshake of the connection already made: recorded, never sent again.
    for connection in {id(c): c for c in (getattr(connect, "connection", None),
                                          getattr(client, "_websocket", None)) if c is not None}.values():
        _drop_headers(getattr(getattr(connection, "request", None), "headers", None), names)
