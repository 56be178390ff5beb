"""login(persist=True) and logout(forget=True): the credential in the active Prefect profile.

The profiles file is made readable by its owner only before a secret is written
into it; forgetting removes the credential settings and keeps the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._exceptions import PrefectAuthError
from .._inputs import Credential

__all__ = ["forget_credential", "save_credential"]


def save_credential(profile_name: str, credential: Credential) -> str:
    """Save the credential to the active profile; the file is made owner-only first."""
    from prefect.settings import get_current_settings
    from prefect.settings.profiles import load_profiles, save_profiles

    path = Path(get_current_settings().profiles_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create or tighten the file BEFORE the secret is written into it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        import json

        profiles = load_profiles(include_defaults=False)
        if profile_name not in profiles.names:
            profiles = load_profiles()  # the active profile may only exist in Prefect's defaults
        updates: dict[Any, Any] = {  # setting names: Prefect's update_profile accepts them
            "PREFECT_API_URL": credential.api_url,
            "PREFECT_API_AUTH_STRING": credential.auth_string.reveal() if credential.auth_string else None,
            "PREFECT_API_KEY": credential.api_key.reveal() if credential.api_key else None,
            "PREFECT_CLIENT_CUSTOM_HEADERS": json.dumps(
                {n: v.reveal() for n, v in credential.headers.items()}) if credential.headers else None,
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
