"""Where a signed-in person's refresh token may be kept between kernels, when asked.

Nothing is kept by default: a restarted kernel asks the person to sign in again. With
``persist=True`` the refresh token goes to the platform's secret store through the
``keyring`` package (macOS Keychain, Windows Credential Locker, the Secret Service on
a Linux desktop); where there is none (a container, a server) that is refused with
the reason, unless the person names a file, which is written with mode 0600. Never
Prefect's settings, a profile, ``.env`` or ``os.environ``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from ..._exceptions import ConfigurationError
from ..._secrets import Secret

__all__ = ["FileStore", "KeyringStore", "RefreshTokenStore", "store_for"]

SERVICE = "prefect-nbauth"


class RefreshTokenStore(Protocol):
    def load(self) -> Secret | None: ...
    def save(self, token: Secret) -> None: ...
    def delete(self) -> None: ...
    def describe(self) -> str: ...


class KeyringStore:
    """The platform's secret store, through ``keyring``; one entry per issuer and client."""

    def __init__(self, backend: Any, issuer: str, client_id: str) -> None:
        self._backend = backend
        self._user = f"{issuer} {client_id}"

    def describe(self) -> str:
        return f"the platform secret store ({type(self._backend).__name__}, service {SERVICE!r})"

    def load(self) -> Secret | None:
        value = self._backend.get_password(SERVICE, self._user)
        return Secret(value) if value else None

    def save(self, token: Secret) -> None:
        self._backend.set_password(SERVICE, self._user, token.reveal())

    def delete(self) -> None:
        try:
            self._backend.delete_password(SERVICE, self._user)
        except Exception:  # noqa: BLE001 - keyring raises PasswordDeleteError when there is none
            pass


class FileStore:
    """A file the person named, readable by them only (0600), holding only this refresh token."""

    def __init__(self, path: str | os.PathLike[str], issuer: str, client_id: str) -> None:
        self.path = Path(path).expanduser()
        self._issuer, self._client_id = issuer, client_id

    def describe(self) -> str:
        return f"file {self.path} (mode 0600)"

    def load(self) -> Secret | None:
        try:
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigurationError(
                    f"The refresh token file {self.path} is readable by others (mode {mode:04o}); "
                    "it is not used. Remove it (or chmod 600 it) and sign in again.")
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        if (not isinstance(data, dict) or data.get("issuer") != self._issuer
                or data.get("client_id") != self._client_id or not data.get("refresh_token")):
            return None  # another sign-in's file: not ours to use
        return Secret(str(data["refresh_token"]))

    def save(self, token: Secret) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # also when the partial file existed with another mode
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"issuer": self._issuer, "client_id": self._client_id,
                           "refresh_token": token.reveal()}, fh)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, self.path)  # atomic: the file always holds one whole token

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def store_for(persist: bool | str | os.PathLike[str], issuer: str, client_id: str) -> RefreshTokenStore | None:
    """The store ``persist`` asks for: None (nothing kept), the platform's secret store, or a file."""
    if persist is False or persist is None:
        return None
    if persist is True:
        return KeyringStore(_platform_keyring(), issuer, client_id)
    if isinstance(persist, (str, os.PathLike)):
        return FileStore(persist, issuer, client_id)
    raise ConfigurationError("persist must be False, True (the platform's secret store) or a file path.")


def _platform_keyring() -> Any:
    file_hint = "Or name a file instead: persist='~/.config/prefect-nbauth/sso-refresh-token' (written with mode 0600)."
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        raise ConfigurationError(
            "persist=True keeps the refresh token in the platform's secret store through the keyring "
            f"package, which is not installed (pip install keyring). {file_hint}") from None
    backend = keyring.get_keyring()
    chained = getattr(backend, "backends", None)
    usable = chained if chained is not None else [backend]
    if not usable or all(isinstance(b, fail.Keyring) or getattr(b, "priority", 1) <= 0 for b in usable):
        raise ConfigurationError(
            "persist=True keeps the refresh token in the platform's secret store, and this machine has "
            f"none that keyring can use (it found {type(backend).__module__}.{type(backend).__name__}; "
            f"a container or a server usually has none). {file_hint}")
    return backend
