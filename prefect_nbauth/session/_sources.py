"""Where each credential setting comes from, read the way Prefect reads it.

Prefect's precedence (``settings/base.py``): init > environment > ``.env`` >
secrets dir > ``prefect.toml`` > ``pyproject.toml`` > the active profile.
Prefect reads all of these once, at import. This module reads them *now*, so
:func:`prefect_nbauth.status` can say both where the value in force came from
and which source has changed since (the classic ``os.environ[...] = …`` in a
running kernel, which Prefect never sees).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CREDENTIAL_SETTINGS", "SettingSpec", "SourceValue", "effective_values", "read_sources"]


@dataclass(frozen=True)
class SettingSpec:
    name: str  # the environment variable, e.g. PREFECT_API_KEY
    path: tuple[str, ...]  # the attribute path on Settings, e.g. ("api", "key")
    secret: bool


CREDENTIAL_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("PREFECT_API_URL", ("api", "url"), secret=False),
    SettingSpec("PREFECT_API_AUTH_STRING", ("api", "auth_string"), secret=True),
    SettingSpec("PREFECT_API_KEY", ("api", "key"), secret=True),
    SettingSpec("PREFECT_CLIENT_CUSTOM_HEADERS", ("client", "custom_headers"), secret=True),
)


@dataclass(frozen=True)
class SourceValue:
    source: str  # "environment variable", ".env", "prefect.toml", "pyproject.toml", "profile NAME"
    value: Any  # raw: str, or dict for custom headers


def _normalise(spec: SettingSpec, value: Any) -> Any:
    """Bring a raw source value into the form Settings holds, for comparison."""
    if value is None:
        return None
    if spec.name == "PREFECT_CLIENT_CUSTOM_HEADERS":
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                return value  # Prefect would refuse it at import; keep it for the message
        return dict(value) if isinstance(value, dict) else value
    return str(value)


def _lookup(table: dict[str, Any], spec: SettingSpec) -> Any:
    node: Any = table
    for key in spec.path:
        if not isinstance(node, dict) or key not in node:
            node = None
            break
        node = node[key]
    if node is not None:
        return node
    return table.get(spec.name)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        import tomllib  # Python 3.11+

        table: dict[str, Any] = tomllib.loads(text)
        return table
    except ImportError:  # Python 3.10: Prefect itself depends on `toml`
        import toml

        try:
            return dict(toml.loads(text))
        except toml.TomlDecodeError:
            return {}
    except ValueError:  # tomllib.TOMLDecodeError
        return {}


def _read_dotenv(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # a dependency of pydantic-settings, hence of Prefect

    return dict(dotenv_values(path))


def _profile_settings(profile_name: str) -> dict[str, Any]:
    try:
        from prefect.settings.profiles import load_profiles

        profile = load_profiles()[profile_name]
    except Exception:  # noqa: BLE001 - an unreadable profiles file is reported elsewhere
        return {}
    return {getattr(k, "name", str(k)): v for k, v in profile.settings.items()}


def read_sources(profile_name: str, cwd: Path | None = None) -> dict[str, list[SourceValue]]:
    """For each credential setting, every source that defines it now, highest precedence first."""
    cwd = cwd or Path.cwd()
    env = dict(os.environ)
    dotenv = _read_dotenv(cwd / ".env")
    prefect_toml = _read_toml(cwd / "prefect.toml")
    pyproject = _read_toml(cwd / "pyproject.toml").get("tool", {}).get("prefect", {})
    profile = _profile_settings(profile_name)

    found: dict[str, list[SourceValue]] = {}
    for spec in CREDENTIAL_SETTINGS:
        values: list[SourceValue] = []
        for source, value in (
            ("environment variable", env.get(spec.name)),
            (".env", dotenv.get(spec.name)),
            ("prefect.toml", _lookup(prefect_toml, spec)),
            ("pyproject.toml", _lookup(pyproject, spec)),
            (f"profile {profile_name}", profile.get(spec.name)),
        ):
            # Prefect ignores empty environment values (env_ignore_empty) for most
            # settings; treat an empty string as "not set" everywhere.
            if value is not None and value != "":
                values.append(SourceValue(source, _normalise(spec, value)))
        found[spec.name] = values
    return found


def _reveal(value: Any) -> Any:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else value


def effective_values(settings: Any) -> dict[str, Any]:
    """The credential settings Prefect sends, raw, from a settings object (``get_current_settings()``)."""
    values: dict[str, Any] = {}
    for spec in CREDENTIAL_SETTINGS:
        node: Any = settings
        for part in spec.path:
            node = getattr(node, part)
        value = _reveal(node)
        if spec.name == "PREFECT_CLIENT_CUSTOM_HEADERS":
            value = dict(value or {}) or None
        values[spec.name] = value
    return values
