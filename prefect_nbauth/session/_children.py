"""What the processes Prefect starts receive of the login's credential.

``login()`` puts the credential into Prefect's settings (never into ``os.environ``), and
Prefect hands settings to a child process in two ways: as environment variables, which
everything the child starts inherits, and as a pickled settings context
(``serialize_context()``), which only Prefect's own code in the child reads.

While a login is in force:

- a ``ProcessPoolTaskRunner`` worker gets the credential only in the settings context
  it is sent over the pool's pipe, which is what authenticates it; the environment its
  task runs with carries no ``PREFECT_API_AUTH_STRING`` or ``PREFECT_API_KEY`` unless this
  process's own ``os.environ`` has them (then every child had them anyway), so a program
  the task starts (``subprocess.run(["env"])``) inherits nothing;
- a deferred task (``Task.delay()``, ``apply_async()``) stores its context in result
  storage (a file under ``PREFECT_HOME`` by default) for a task worker: the stored context
  holds no auth string or API key. A task worker in another process runs it with its own
  credential; one in a process logged in to the same API (this kernel) with that login's.

See docs/security.md ("What a child process receives") for the launchers this does not
change, and why.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from .. import _prefect_seam as seam
from .. import _prefect_seam_children as children_seam
from .._urls import is_under

__all__ = ["CREDENTIAL_VARIABLES", "child_environment", "install", "loaded_context", "stored_context"]

#: The settings that carry a Prefect credential, as environment variables.
CREDENTIAL_VARIABLES = ("PREFECT_API_AUTH_STRING", "PREFECT_API_KEY")
_SETTING_OF = {"PREFECT_API_AUTH_STRING": "auth_string", "PREFECT_API_KEY": "key"}

_in_force: list[Callable[[], bool]] = [lambda: False]


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the credential variables that came from the settings, not ``os.environ``."""
    if not _in_force[0]():
        return dict(env)
    return {k: v for k, v in env.items() if k not in CREDENTIAL_VARIABLES or k in os.environ}


def stored_context(context: Any) -> Any:
    """A serialized context without the settings' auth string and API key (a new dict)."""
    api = _api_of(context)
    if api is None or not _in_force[0]():
        return context
    return _with_api(context, {k: v for k, v in api.items() if k not in _SETTING_OF.values()})


def _api_of(context: Any) -> dict[str, Any] | None:
    settings_context = context.get("settings_context") if isinstance(context, dict) else None
    settings = settings_context.get("settings") if isinstance(settings_context, dict) else None
    api = settings.get("api") if isinstance(settings, dict) else None
    return api if isinstance(api, dict) else None


def _with_api(context: dict[str, Any], api: dict[str, Any]) -> dict[str, Any]:
    settings_context = context["settings_context"]
    settings = {**settings_context["settings"], "api": api}
    return {**context, "settings_context": {**settings_context, "settings": settings}}


def loaded_context(context: Any) -> Any:
    """A stored context read back by a task worker in this process: the login's credential
    again when it is for the login's API and carries none (what :func:`stored_context` took)."""
    api = _api_of(context)
    if api is None or not _in_force[0]() or any(api.get(k) for k in _SETTING_OF.values()):
        return context
    settings = seam.global_settings_context().settings
    if not (api.get("url") and settings.api.url and is_under(str(api["url"]), str(settings.api.url))):
        return context
    credential = {field: secret.get_secret_value() for field in _SETTING_OF.values()
                  if (secret := getattr(settings.api, field)) is not None}
    return _with_api(context, {**api, **credential})


def install(login_in_force: Callable[[], bool]) -> None:
    """Apply the rules above whenever ``login_in_force()`` is true."""
    _in_force[0] = login_in_force
    children_seam.install_child_filters(child_environment, stored_context, loaded_context)
