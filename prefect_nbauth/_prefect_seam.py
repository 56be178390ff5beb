"""Every place where prefect_nbauth reaches into Prefect beyond its documented API.

Prefect builds its settings once, at ``import prefect``, into a process-global
``SettingsContext`` (``prefect.context.GLOBAL_SETTINGS_CONTEXT``). Every
``get_client()``, flow run, events client and events subscriber reads its URL
and credential from the current settings context when it is *created*. There is
no supported way to swap the process-wide settings of a running interpreter:
``refresh_global_settings_context()`` re-reads the environment (so it would
mean putting the secret into ``os.environ``, where every child process and
``%env`` sees it) and ``temporary_settings()`` only affects one context.

So login replaces that global with a copy of the settings that carries the new
credential. It is a single module attribute, which Prefect itself swaps in
``_temporary_global_settings_context`` and ``refresh_global_settings_context``.
The background services that cache a client built from the old settings
(the events worker behind ``emit_event`` and the API log worker) are drained so
that their next use builds a client from the new settings.

``tests/test_prefect_seam.py`` fails loudly if a Prefect upgrade moves any of this.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

from ._prefect_compat import require_seams
from ._urls import same_origin

__all__ = [
    "cloud_api_url",
    "active_settings_context",
    "global_settings_context",
    "install_global_settings_context",
    "local_settings_context_active",
    "restart_background_services",
    "settings_with_credential",
]

logger = logging.getLogger("prefect_nbauth")


def global_settings_context() -> Any:
    import prefect.context

    return prefect.context.GLOBAL_SETTINGS_CONTEXT


def active_settings_context() -> Any:
    """The settings context Prefect uses in the calling context (a flow run's, or the global)."""
    import prefect.context

    return prefect.context.get_settings_context()


def local_settings_context_active() -> bool:
    """True inside ``temporary_settings()``/``use_profile()``/a flow run's copy of settings.

    Those contexts shadow the global one, so a login made there only applies
    outside of them.
    """
    import prefect.context

    current = prefect.context.SettingsContext.__var__.get(None)
    return current is not None and current is not prefect.context.GLOBAL_SETTINGS_CONTEXT


def cloud_api_url(settings: Any = None) -> str:
    """Prefect Cloud's API base (``PREFECT_CLOUD_API_URL``, no trailing slash) of ``settings``,
    by default the process's (login() never changes it)."""
    if settings is None:
        settings = global_settings_context().settings
    return str(settings.cloud.api_url).rstrip("/")


def install_global_settings_context(context: Any) -> None:
    import prefect.context

    prefect.context.GLOBAL_SETTINGS_CONTEXT = context


def settings_with_credential(
    base_context: Any,
    *,
    api_url: str | None,
    auth_string: str | None,
    api_key: str | None,
    custom_headers: dict[str, str],
) -> Any:
    """A new SettingsContext equal to ``base_context`` but for the credential settings.

    ``model_copy(update=…)`` rather than ``Settings.copy_with_update``: the latter
    re-validates through pydantic-settings, which deep-merges dictionaries with
    the environment, so custom headers set in ``PREFECT_CLIENT_CUSTOM_HEADERS``
    could never be removed.
    """
    import prefect.context
    from pydantic import SecretStr

    settings = base_context.settings
    require_seams(settings, custom_headers=bool(custom_headers), rotating=False)  # no silent copies
    api = settings.api.model_copy(
        update={
            "url": api_url,
            "auth_string": SecretStr(auth_string) if auth_string is not None else None,
            "key": SecretStr(api_key) if api_key is not None else None,
        }
    )
    client = settings.client.model_copy(update={"custom_headers": dict(custom_headers)})
    new_settings = settings.model_copy(update={"api": api, "client": client})
    return prefect.context.SettingsContext(profile=base_context.profile, settings=new_settings)


def _queue_services() -> list[Any]:
    services: list[Any] = []
    try:
        from prefect.events.worker import EventsWorker

        services.append(EventsWorker)
    except ImportError:  # pragma: no cover - depends on the Prefect version
        pass
    try:
        from prefect.logging.handlers import APILogWorker

        services.append(APILogWorker)
    except ImportError:  # pragma: no cover
        pass
    return services


def restart_background_services(timeout: float = 10.0) -> None:
    """Flush and stop Prefect's client-holding background services.

    ``EventsWorker.instance()`` returns the running worker whose events client
    was built with the credential in force when it started; after a stop the
    next ``emit_event`` builds a fresh one from the current settings. Events
    queued before the switch are delivered with the old credential first.

    ``drain_all`` returns an awaitable when called on a thread with a running
    event loop (a notebook cell), so it runs on a short-lived worker thread.
    """
    services = [s for s in _queue_services() if getattr(s, "_instances", None)]
    if not services:
        return

    def drain() -> None:
        for service in services:
            try:
                service.drain_all(timeout=timeout, at_exit=False)
            except Exception:  # noqa: BLE001 - a failed flush must not break login
                logger.debug("draining %s failed", service.__name__, exc_info=True)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prefect-nbauth") as pool:
        pool.submit(drain).result(timeout=timeout + 5)


# ------------------------------------------------------------------ rotation
#
# Prefect has no hook for a per-request credential in the clients it creates
# itself (a flow run's client, the events worker's). ``get_client(httpx_settings=
# {"auth": ...})`` is the supported seam, but only for clients the user creates.
# So the two httpx client classes Prefect builds all its clients from get our
# httpx ``Auth`` as their default ``auth`` (a documented httpx extension point);
# an explicit ``auth=`` passed by anyone still wins.

_WRAPPED = "__prefect_nbauth_wrapped__"


def install_client_auth(auth: Any) -> None:
    """Make ``auth`` the default httpx Auth of every Prefect HTTP client created from now on."""
    from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient

    for cls in (PrefectHttpxAsyncClient, PrefectHttpxSyncClient):
        original = cls.__init__
        if getattr(original, _WRAPPED, False):
            continue

        def __init__(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            kwargs.setdefault("auth", auth)
            __original(self, *args, **kwargs)

        setattr(__init__, _WRAPPED, True)
        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]


_REFRESH: list[Any] = [lambda client: None]  # the refresh in force (see install_socket_refresh)
_ON_REJECTED: list[Any] = [None]  # the handler in force (login may install it again)


def socket_client_classes() -> list[Any]:
    """Prefect's websocket clients that capture their credential once: events in and out, logs out."""
    from prefect.events.clients import PrefectEventsClient, PrefectEventSubscriber

    classes: list[Any] = [PrefectEventsClient, PrefectEventSubscriber]
    try:  # its logs subscriber, where this Prefect has one, reuses its upgrade headers too
        from prefect.logging.clients import PrefectLogsSubscriber

        classes.append(PrefectLogsSubscriber)
    except ImportError:  # pragma: no cover - a Prefect without live logs (3.6.13 and older)
        pass
    return classes


def install_socket_refresh(refresh: Any, on_rejected: Any = None) -> None:
    """Call ``refresh(client)`` before every (re)connect of Prefect's events and logs clients.

    Prefect's events publisher and subscriber, and its logs subscriber
    (``get_logs_subscriber``), capture their credential (the
    auth message token, the upgrade request's headers) when they are created and
    reuse it on every reconnect. ``refresh`` updates those from the current
    settings, so a reconnect after a rotation presents the new token; it returns
    what was presented. When the (re)connect fails, ``await on_rejected(exc,
    presented)`` decides: True (an auth refusal, and a new credential is in
    force) means present the new one and connect once more; otherwise the error
    goes to Prefect as before (its publisher keeps the unconfirmed events and
    resends them on its next successful reconnect).

    The wrappers are installed once per class and read both callbacks from
    module slots at call time, so the latest install is the one in force (a
    closure would keep whichever callback wrapped the class first).
    """
    _REFRESH[0] = refresh
    if on_rejected is not None:
        _ON_REJECTED[0] = on_rejected
    for cls in socket_client_classes():
        original = cls._reconnect
        if getattr(original, _WRAPPED, False):
            continue

        async def _reconnect(self: Any, __original: Any = original) -> None:
            presented = _REFRESH[0](self)
            try:
                await __original(self)
            except Exception as exc:
                handler = _ON_REJECTED[0]
                if handler is None or not await handler(exc, presented):
                    raise
                _REFRESH[0](self)
                await __original(self)

        setattr(_reconnect, _WRAPPED, True)
        _reconnect.__wrapped__ = original  # type: ignore[attr-defined]
        cls._reconnect = _reconnect


def refresh_socket_client(client: Any, api_url: str, extra_headers: dict[str, str] | None = None) -> None:
    """Point an events or logs client's captured credential at the settings in force now.

    ``extra_headers``: gateway headers that login() keeps out of the settings.
    """
    from prefect.events.clients import PrefectCloudEventsClient
    from prefect.settings import get_current_settings

    if getattr(client, "_api_url", None) != api_url:
        return  # a client for some other server: not ours to touch
    settings = get_current_settings()
    auth_string = settings.api.auth_string.get_secret_value() if settings.api.auth_string else None
    api_key = settings.api.key.get_secret_value() if settings.api.key else None
    if hasattr(client, "_auth_token"):
        client._auth_token = auth_string
    if getattr(client, "_api_key", None) is not None and api_key:
        client._api_key = api_key

    connect = getattr(client, "_connect", None)
    if connect is None:
        return
    from ._headers import request_headers

    cloud_key = api_key if isinstance(client, PrefectCloudEventsClient) else None
    fresh = request_headers(
        # Prefect's Cloud events client spells it "bearer"; its publisher sends Basic too.
        auth_string=auth_string if hasattr(client, "_unconfirmed_events") and not cloud_key else None,
        api_key=cloud_key,
        bearer="bearer", headers={**(settings.client.custom_headers or {}), **(extra_headers or {})})
    replaced = {"authorization", *(k.lower() for k in fresh)}
    headers = {k: v for k, v in dict(connect.additional_headers or {}).items() if k.lower() not in replaced}
    connect.additional_headers = {**headers, **fresh}


# ------------------------------------------------------- gateway headers off the settings
#
# Prefect keeps custom headers in ``client.custom_headers``, a plain dict that
# ``get_current_settings().model_dump_json()`` prints in clear (its auth string and key
# are SecretStr). So login() keeps gateway headers out of the settings and these hooks
# add them where Prefect would have: the httpx Auth above (every HTTP request), every
# websocket Prefect opens (``websocket_connect`` looks ``connect`` up per call), and the
# server-version check its events/logs clients make with a client of their own.

_SOCKET_HEADERS = "__prefect_nbauth_socket_headers__"


def _no_headers(url: str) -> dict[str, str]:
    return {}


_headers_for: Any = _no_headers


def install_gateway_headers(headers_for: Any) -> None:
    """``headers_for(url) -> {name: value}``: headers to add to Prefect's requests to ``url``."""
    global _headers_for
    _headers_for = headers_for
    import importlib

    # A private Prefect module: typed as Any on purpose (attributes checked at run time).
    prefect_websockets: Any = importlib.import_module("prefect._internal.websockets")

    connect = prefect_websockets.connect
    if not getattr(connect, _SOCKET_HEADERS, False):
        class GatewayHeadersConnect(connect):  # type: ignore[misc, valid-type]
            def __init__(self, uri: str, *args: Any, **kwargs: Any) -> None:
                extra = _headers_for(uri)
                if extra:
                    wanted = {n.lower() for n in extra}
                    given = dict(kwargs.get("additional_headers") or {})
                    kwargs["additional_headers"] = {
                        **{k: v for k, v in given.items() if k.lower() not in wanted}, **extra}
                super().__init__(uri, *args, **kwargs)

        setattr(GatewayHeadersConnect, _SOCKET_HEADERS, True)
        prefect_websockets.connect = GatewayHeadersConnect

    import prefect.events.clients as events_clients
    import prefect.logging.clients as logging_clients

    for module in (events_clients, logging_clients):
        original = getattr(module, "check_server_version", None)
        if original is None or getattr(original, _SOCKET_HEADERS, False):
            continue

        async def check_server_version(api_url: str, *args: Any, __original: Any = original,
                                       **kwargs: Any) -> Any:
            extra = _headers_for(api_url)
            if not extra:
                return await __original(api_url, *args, **kwargs)
            from prefect.settings import PREFECT_CLIENT_CUSTOM_HEADERS, get_current_settings, temporary_settings

            # Only for this check, in this task's context: the headers as Prefect expects them.
            headers = {**(get_current_settings().client.custom_headers or {}), **extra}
            with temporary_settings(updates={PREFECT_CLIENT_CUSTOM_HEADERS: headers}):
                return await __original(api_url, *args, **kwargs)

        setattr(check_server_version, _SOCKET_HEADERS, True)
        check_server_version.__wrapped__ = original  # type: ignore[attr-defined]
        module.check_server_version = check_server_version  # type: ignore[attr-defined]


# Prefect's clients follow redirects: its httpx clients drop only ``Authorization`` on a
# cross-origin hop (gateway headers go along), and its websockets (which follow up to 10
# redirects) then send the raw token in their first message to wherever they landed.

_GUARDED = "__prefect_nbauth_redirect_guard__"


def _strip_credentials_off_origin(request: Any) -> None:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    api_url = settings.api.url
    if not api_url or same_origin(request.url, api_url):
        return
    for name in ["Authorization", *(settings.client.custom_headers or {}), *_headers_for(str(api_url))]:
        request.headers.pop(name, None)


def install_redirect_guard() -> None:
    """No credential leaves the API's origin through a redirect, on HTTP or websockets."""
    import importlib

    # A private Prefect module: typed as Any on purpose (attributes checked at run time).
    prefect_websockets: Any = importlib.import_module("prefect._internal.websockets")
    from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient

    async def strip_async(request: Any) -> None:
        _strip_credentials_off_origin(request)

    for cls, hook in ((PrefectHttpxAsyncClient, strip_async),
                      (PrefectHttpxSyncClient, _strip_credentials_off_origin)):
        original = cls.__init__
        if getattr(original, _GUARDED, False):
            continue

        def __init__(self: Any, *args: Any, __original: Any = original, __hook: Any = hook,
                     **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            self.event_hooks["request"].append(__hook)  # httpx runs these on every redirect hop

        setattr(__init__, _GUARDED, True)
        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    from ._websocket import without_redirects

    # websocket_connect() looks the class up per call; without_redirects() is idempotent.
    prefect_websockets.connect = without_redirects(prefect_websockets.connect)
