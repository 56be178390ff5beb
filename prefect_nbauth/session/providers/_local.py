"""The providers for tokens that live on this machine: a value, a variable, a file, a command,
a function. Each overrides :meth:`~._base.CredentialProvider.fetch` only."""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, Union

from ..._exceptions import CredentialProviderError
from ..._redaction import redact, scrub_text
from ..._secrets import Secret
from ._base import MAX_TOKEN_LENGTH, CredentialProvider, callable_name

__all__ = ["CallableToken", "CommandToken", "EnvToken", "FileToken", "StaticToken", "as_provider"]


class StaticToken(CredentialProvider):
    """A fixed value (what a plain string becomes)."""

    def __init__(self, value: str | Secret, *, ttl: float | None = None) -> None:
        self._value = Secret(value)
        self.ttl = ttl

    def describe(self) -> str:
        return "the given value"

    refreshable = False

    def fetch(self) -> Any:
        return self._value


class EnvToken(CredentialProvider):
    """An environment variable, read again at every refresh."""

    def __init__(self, name: str, *, ttl: float | None = None) -> None:
        self.name = name
        self.ttl = ttl

    def describe(self) -> str:
        return f"environment variable {self.name}"

    def fetch(self) -> Any:
        value = os.environ.get(self.name)
        if value is None:
            raise CredentialProviderError(f"Environment variable {self.name} is not set.")
        return value


class FileToken(CredentialProvider):
    """A file, read again at each refresh (Kubernetes projected tokens, Vault agent sinks).

    An unchanged file gives the same token back, whose expiry does not move
    (:meth:`CredentialProvider.obtain`): a refresh ahead of expiry retries until the
    file is rewritten.
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float | None = None) -> None:
        self.path = Path(path).expanduser()
        self.ttl = ttl

    def describe(self) -> str:
        return f"file {self.path}"

    def fetch(self) -> Any:
        try:
            if self.path.stat().st_size > MAX_TOKEN_LENGTH:
                raise CredentialProviderError(f"The token file {self.path} is too large to hold a token.")
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialProviderError(f"The token file {self.path} does not exist (any more).") from None
        except UnicodeDecodeError:
            raise CredentialProviderError(f"The token file {self.path} is not UTF-8 text.") from None
        except OSError as exc:
            raise CredentialProviderError(f"Cannot read the token file {self.path}: {exc.strerror}.") from None


class CommandToken(CredentialProvider):
    """A command whose standard output is the token (``gcloud auth print-identity-token``)."""

    def __init__(self, command: str | Sequence[str], *, ttl: float | None = None,
                 timeout: float = 30.0) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise CredentialProviderError("The token command is empty.")
        self.ttl = ttl
        self.timeout = timeout

    def describe(self) -> str:
        return f"command {self.argv[0]!r}"

    def fetch(self) -> Any:
        try:
            done = subprocess.run(self.argv, capture_output=True, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise CredentialProviderError(f"The token command {self.argv[0]!r} was not found on PATH.") from None
        except subprocess.TimeoutExpired:
            raise CredentialProviderError(
                f"The token command {self.argv[0]!r} did not finish within {self.timeout:g} s.") from None
        except OSError as exc:
            raise CredentialProviderError(
                f"The token command {self.argv[0]!r} could not run: {exc.strerror}.") from None
        out = done.stdout.decode("utf-8", "replace")
        # stderr can help ("not logged in"), but it might echo the token: scrub what stdout held.
        err = redact(done.stderr.decode("utf-8", "replace").strip(), out.strip())[-300:]
        if done.returncode != 0:
            raise CredentialProviderError(
                f"The token command {self.argv[0]!r} exited with status {done.returncode}"
                + (f": {err}" if err else ".")
            )
        if not out.strip() and err:
            # Exit 0, nothing on stdout, a complaint on stderr: say what it said. (Output on
            # stderr beside a token on stdout is normal: gcloud prints warnings there.)
            raise CredentialProviderError(
                f"The token command {self.argv[0]!r} printed no token, only on stderr: {err}")
        return out


class CallableToken(CredentialProvider):
    """A Python function (sync or async) that returns a token.

    It may return the token string, ``(token, expires_at)`` with a timezone-aware
    datetime or seconds from now, or a :class:`Token`.
    """

    def __init__(self, func: Callable[[], Union[Any, Awaitable[Any]]], *, ttl: float | None = None,
                 timeout: float = 30.0) -> None:
        if not callable(func):
            raise CredentialProviderError("CallableToken needs a function.")
        self.func = func
        self.ttl = ttl
        self.timeout = timeout

    def describe(self) -> str:
        return f"function {callable_name(self.func)}"

    def fetch(self) -> Any:
        # Run it on its own thread so a hung function cannot hang a refresh for ever:
        # after the timeout we stop waiting (the thread is a daemon and is abandoned).
        result: list[Any] = []
        error: list[BaseException] = []

        def call() -> None:
            try:
                value = self.func()
                if inspect.isawaitable(value):
                    async def wait(v: Awaitable[Any] = value) -> Any:
                        return await v
                    value = asyncio.run(wait())
                result.append(value)
            except BaseException as exc:  # noqa: BLE001 - reported below
                error.append(exc)

        worker = threading.Thread(target=call, name="prefect-nbauth-provider", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise CredentialProviderError(f"{self.describe()} did not return within {self.timeout:g} s.")
        if error:
            exc = error[0]
            # The function's own message helps ("vault sealed"), but it is someone else's
            # text: it may quote a token, so the credentials in force are masked in it.
            raise CredentialProviderError(
                f"{self.describe()} raised {type(exc).__name__}: {scrub_text(str(exc))[:200]}"
            ) from None
        return result[0]


def as_provider(value: Any) -> CredentialProvider:
    """A plain string becomes a StaticToken; a provider stays itself; a function is called."""
    if isinstance(value, CredentialProvider):
        return value
    if isinstance(value, (str, Secret)):
        return StaticToken(value)
    if callable(value):
        return CallableToken(value)
    raise CredentialProviderError(
        f"Expected a string or a credential provider, got {type(value).__name__}.")
