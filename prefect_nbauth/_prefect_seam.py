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

__all__ = [
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
    from pydantic import SecretStr

    import prefect.context

    settings = base_context.settings
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


def _queue_services() -> list[type]:
    services: list[type] = []
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
