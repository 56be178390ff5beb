"""Checks that the Prefect internals login() changes exist, before anything is changed.

``_prefect_seam`` copies Prefect's settings with ``model_copy(update=…)``, which silently
accepts a field the model does not have: the copy would carry a credential that nobody
reads. And it patches a few classes by attribute name. A Prefect release that renames any of
these must fail here, at login(), with a ConfigurationError naming the Prefect version and
the missing piece, not with an AttributeError later or, worse, a login that does nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._exceptions import ConfigurationError
from ._versions import CLIENT_FLOOR, client_version

__all__ = ["missing_seams", "model_has_field", "require_seams"]


def model_has_field(model: Any, name: str) -> bool:
    """Whether a pydantic model (instance or class) declares ``name`` as a field."""
    fields = getattr(type(model) if not isinstance(model, type) else model, "model_fields", None)
    return isinstance(fields, dict) and name in fields


def _has(module: str, *attrs: str) -> bool:
    try:
        node: Any = importlib.import_module(module)
    except ImportError:
        return False
    for attr in attrs:
        if not hasattr(node, attr):
            return False
        node = getattr(node, attr)
    return True


def missing_seams(settings: Any, *, custom_headers: bool, rotating: bool) -> list[str]:
    """The Prefect internals a login with these options needs and this Prefect lacks."""
    missing: list[str] = []
    api = getattr(settings, "api", None)
    for field in ("url", "auth_string", "key"):
        if api is None or not model_has_field(api, field):
            missing.append(f"Settings.api.{field}")
    client = getattr(settings, "client", None)
    if custom_headers and (client is None or not model_has_field(client, "custom_headers")):
        missing.append("Settings.client.custom_headers (PREFECT_CLIENT_CUSTOM_HEADERS)")
    if not _has("prefect.context", "GLOBAL_SETTINGS_CONTEXT"):
        missing.append("prefect.context.GLOBAL_SETTINGS_CONTEXT")
    for cls in ("PrefectHttpxAsyncClient", "PrefectHttpxSyncClient"):
        if not _has("prefect.client.base", cls):
            missing.append(f"prefect.client.base.{cls}")
    if not _has("prefect._internal.websockets", "connect", "process_redirect"):
        missing.append("prefect._internal.websockets.connect.process_redirect")
    if rotating:
        for cls in ("PrefectEventsClient", "PrefectEventSubscriber"):
            if not _has("prefect.events.clients", cls, "_reconnect"):
                missing.append(f"prefect.events.clients.{cls}._reconnect")
    return missing


def require_seams(settings: Any, *, custom_headers: bool, rotating: bool) -> None:
    """Raise ConfigurationError (nothing changed yet) when a needed Prefect internal is missing."""
    missing = missing_seams(settings, custom_headers=custom_headers, rotating=rotating)
    if missing:
        raise ConfigurationError(
            f"prefect_nbauth cannot log in with Prefect {client_version()}: it lacks "
            f"{', '.join(missing)}. Nothing was changed. prefect_nbauth is tested with Prefect "
            f"{CLIENT_FLOOR} up to the newest 3.x release (docs/compatibility.md); install one "
            "of those, or report the Prefect version that moved this."
        )
