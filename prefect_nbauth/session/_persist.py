"""login(persist=True) and logout(forget=True): the credential in the active Prefect profile.

The profiles file is made readable by its owner only before a secret is written
into it; forgetting removes the credential settings and keeps the rest.

Only what ``prefect config view`` masks is ever written: the auth string and the API key
(``SecretStr`` settings, shown as ``********`` without ``--show-secrets``). Gateway headers
would have to go to ``PREFECT_CLIENT_CUSTOM_HEADERS``, a plain dictionary that
``prefect config view`` prints in clear, so ``persist=True`` with headers is refused
(:func:`check_persistable`) before anything is sent or changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .._exceptions import ConfigurationError, PrefectAuthError
from .._inputs import Credential

__all__ = ["HEADERS_NOT_SAVED", "check_persistable", "forget_credential", "save_credential"]

HEADERS_NOT_SAVED = (
    "persist=True cannot save gateway headers: Prefect keeps them in PREFECT_CLIENT_CUSTOM_HEADERS, "
    "which `prefect config view` prints in clear (it masks only the auth string and the API key). "
    "Nothing was changed. Log in without persist=True (the headers then last for this process), "
    "and keep the token where a provider reads it again next time (EnvToken, FileToken, "
    "CommandToken)."
)


def check_persistable(persist: bool, headers: Mapping[str, Any]) -> None:
    """Refuse, before any request, to save what Prefect would show in clear."""
    if persist and headers:
        raise ConfigurationError(HEADERS_NOT_SAVED)


def save_credential(profile_name: str, credential: Credential) -> str:
    """Save the credential to the active profile; the file is made owner-only first."""
    check_persistable(True, credential.headers)
    from prefect.settings import get_current_settings
    from prefect.settings.profiles import load_profiles, save_profiles

    path = Path(get_current_settings().profiles_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create or tighten the file BEFORE the secret is written into it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        profiles = load_profiles(include_defaults=False)
        if profile_name not in profiles.names:
            profiles = load_profiles()  # the active profile may only exist in Prefect's defaults
        updates: dict[Any, Any] = {  # setting names: Prefect's update_profile accepts them
            "PREFECT_API_URL": credential.api_url,
            "PREFECT_API_AUTH_STRING": credential.auth_string.reveal() if credential.auth_string else None,
            "PREFECT_API_KEY": credential.api_key.reveal() if credential.api_key else None,
            # Never headers (check_persistable); clears what an older version saved there.
            "PREFECT_CLIENT_CUSTOM_HEADERS": None,
        }
        profiles.update_profile(profile_name, updates)
        save_profiles(profiles)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise PrefectAuthError(
            f"Could not save the credential to profile {profile_name!r} in {path}: "
            f"{exc.strerror or exc}. Nothing was changed; log in without persist=True, or fix "
            "the file's permissions."
        ) from None
    return profile_name


def forget_credential(profile_name: str) -> None:
    from prefect.settings.profiles import load_profiles, save_profiles

    profiles = load_profiles(include_defaults=False)
    if profile_name in profiles.names:
        cleared: dict[Any, Any] = {"PREFECT_API_AUTH_STRING": None, "PREFECT_API_KEY": None,
                                   "PREFECT_CLIENT_CUSTOM_HEADERS": None}
        profiles.update_profile(profile_name, cleared)
        save_profiles(profiles)
