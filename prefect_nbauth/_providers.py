"""Credential providers: where a token comes from, and when it stops being valid.

The protocol (the one thing a user writes): subclass :class:`CredentialProvider` and
override :meth:`~CredentialProvider.fetch`, which returns the token as a ``str``, a
``(str, seconds_to_live)`` or ``(str, aware datetime)`` pair, or a :class:`Token`
(``async def fetch`` works too)::

    class VaultToken(CredentialProvider):
        def fetch(self):
            lease = vault.read("secret/prefect-gateway")
            return lease["token"], lease["lease_duration"]

Everything else happens outside the override, in :meth:`CredentialProvider.obtain`,
which the toolkit calls and a subclass may not replace: the result is normalised and
checked (one line of UTF-8 text, not empty, not huge), its expiry found (what the
provider says, else a JWT's ``exp`` read without verifying, else ``ttl``), and any
failure becomes a :class:`CredentialProviderError` naming the provider, never the
token. Timing, single-flight refresh and retries are :class:`RefreshingToken`'s.

Providers are used wherever ``login()`` takes a secret: ``auth_string=``,
``api_key=``, or the value of a header in ``headers=``; a plain string becomes a
:class:`StaticToken`, a plain function a :class:`CallableToken`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, Union

from . import _redaction
from ._exceptions import CredentialProviderError, PrefectAuthError
from ._redaction import scrub_text
from ._secrets import Secret, redact
from ._status import expiry_of, jwt_claims

__all__ = [
    "CommandToken",
    "CallableToken",
    "CredentialProvider",
    "EnvToken",
    "FileToken",
    "StaticToken",
    "Token",
]

MAX_TOKEN_LENGTH = 64 * 1024


@dataclass(frozen=True)
class Token:
    """A credential value and what is known about its lifetime."""

    value: Secret
    expires_at: datetime | None = None
    obtained_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def remaining(self, now: datetime | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or datetime.now(timezone.utc))).total_seconds()

    def expired(self, now: datetime | None = None) -> bool:
        left = self.remaining(now)
        return left is not None and left <= 0


#: What :meth:`CredentialProvider.fetch` may return.
FetchResult = Union[str, Secret, bytes, "tuple[Any, Any]", Token]


class CredentialProvider:
    """Where a token comes from. Subclass it and override :meth:`fetch` (see the module docstring).

    Optional hooks, each with a safe default: :meth:`describe` (names the source in
    messages, never the token), :meth:`identity` (who the token speaks for, shown by
    ``status()``), :meth:`close` (called by ``logout()``: revoke what can be revoked),
    and the class attribute :attr:`refreshable`.
    """

    #: Seconds a single fetch may take before it counts as failed (providers that run
    #: something external honour it).
    timeout: float = 30.0
    #: A lifetime the user knows and the token does not say, in seconds.
    ttl: float | None = None
    #: False for a fixed value: fetching again would give the same token.
    refreshable: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # One override point: a subclass that replaced obtain() would skip every check,
        # and one written for the old protocol (_fetch) would silently never be called.
        if "obtain" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides obtain(); override fetch() instead "
                            "(obtain() checks and times what fetch() returns).")
        if "_fetch" in cls.__dict__:
            raise TypeError(f"{cls.__name__} defines _fetch(); the method to override is fetch().")

    # ------------------------------------------------------------- the protocol
    def fetch(self) -> Any:
        """Return the current token: ``str``, ``(str, seconds | aware datetime)`` or :class:`Token`.

        Called when a login starts and each time the token must be replaced (ahead of
        its expiry, after the server refused it, on ``prefect_nbauth.refresh()``);
        never twice at once for one login. Raise :class:`CredentialProviderError` with
        a message that says what to do; never put the token in it.
        """
        raise CredentialProviderError(
            f"{self.describe()} does not implement fetch(): a credential provider overrides "
            "fetch() and returns the token.")

    def describe(self) -> str:
        """Where the token comes from, for messages (``"file /run/token"``); never the token."""
        return type(self).__name__

    def identity(self) -> str | None:
        """Who the token speaks for (``"alice@example.com"``), when the provider knows; else None."""
        return None

    def close(self) -> str | None:
        """``logout()`` calls this: end what the provider holds (revoke a refresh token…).

        Returns a sentence saying what was done (``"revoked the refresh token at …"``),
        or None when there was nothing to do.
        """
        return None

    # ------------------------------------------------------- done for the provider
    def obtain(self, previous: Token | None = None) -> Token:
        """Fetch, then normalise and check: the :class:`Token` the toolkit will use.

        ``previous`` is the token in use: when the provider gives the same value back
        without saying anything new about its lifetime, that token is returned as it
        is (the same token does not live longer for having been read again).
        """
        failure: PrefectAuthError | None = None
        try:
            raw = _resolve(self.fetch(), self)
        except CredentialProviderError as exc:
            failure = CredentialProviderError(_redaction.scrub_text(str(exc)))
        except PrefectAuthError:
            raise
        except Exception as exc:  # noqa: BLE001 - a provider's bug becomes our error, named
            failure = CredentialProviderError(
                f"{self.describe()} failed: {type(exc).__name__}: {scrub_text(str(exc))[:200]}")
        if failure is not None:
            # Raised outside the except block: the provider's own exception (whose text and
            # frames may hold the token) is not kept as the context of ours.
            raise failure
        return _token_of(raw, self, previous)

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _resolve(result: Any, provider: CredentialProvider) -> Any:
    """An awaitable result (``async def fetch``) is run to completion on a thread of its own:
    the caller may be on a running event loop (a notebook cell), where ``asyncio.run`` fails."""
    if not inspect.isawaitable(result):
        return result
    done: list[Any] = []
    failed: list[BaseException] = []

    async def wait() -> Any:
        return await result

    def run() -> None:
        try:
            done.append(asyncio.run(wait()))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=run, name="prefect-nbauth-provider", daemon=True)
    worker.start()
    worker.join(provider.timeout)
    if worker.is_alive():
        raise CredentialProviderError(f"{provider.describe()} did not return within {provider.timeout:g} s.")
    if failed:
        raise failed[0]
    return done[0]


def _token_of(raw: Any, provider: CredentialProvider, previous: Token | None) -> Token:
    """What fetch() returned, as a checked Token with the best known expiry."""
    if isinstance(raw, Token):
        if not isinstance(raw.value, Secret):
            raise CredentialProviderError(f"{provider.describe()} returned a Token whose value is not a Secret.")
        _check(raw.value.reveal(), provider)
        _redaction.remember_secret(raw.value)
        return raw
    expires_at: Any = None
    said_expiry = False
    if isinstance(raw, tuple):
        if len(raw) != 2:
            raise CredentialProviderError(
                f"{provider.describe()} returned a tuple of {len(raw)}; return a token, or (token, seconds).")
        raw, expires_at = raw
        said_expiry = expires_at is not None
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float, datetime, type(None))):
            raise CredentialProviderError(
                f"{provider.describe()} returned ({type(raw).__name__}, {type(expires_at).__name__}); "
                "the second item must be seconds to live or a timezone-aware datetime.")
        if isinstance(expires_at, (int, float)):
            expires_at = datetime.now(timezone.utc) + timedelta(seconds=float(expires_at))
    value = clean_token(raw, provider)
    if expires_at is None:
        expires_at = expiry_of(jwt_claims(value))
        said_expiry = expires_at is not None
    if (not said_expiry and previous is not None and previous.value == value):
        return previous  # the same token, read again: its expiry does not move
    if expires_at is None and provider.ttl is not None:
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=provider.ttl)
    if expires_at is not None and expires_at.tzinfo is None:
        raise CredentialProviderError(
            f"{provider.describe()} gave a naive expiry time; give it a timezone (UTC).")
    return Token(Secret(value), expires_at)


def clean_token(raw: Any, provider: CredentialProvider) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialProviderError(f"{provider.describe()} returned bytes that are not UTF-8 text.") from None
    if isinstance(raw, Secret):
        raw = raw.reveal()
    if not isinstance(raw, str):
        raise CredentialProviderError(
            f"{provider.describe()} returned {type(raw).__name__}, not a token string.")
    # Files and command output end with a newline; tokens never contain whitespace at the ends.
    value = raw.strip()
    _check(value, provider)
    _redaction.remember_secret(value)
    return value


def _check(value: str, provider: CredentialProvider) -> None:
    if not value:
        raise CredentialProviderError(f"{provider.describe()} returned an empty token.")
    if len(value) > MAX_TOKEN_LENGTH:
        raise CredentialProviderError(
            f"{provider.describe()} returned {len(value)} characters; that is not a token.")
    if any(c in value for c in "\r\n\0"):
        raise CredentialProviderError(
            f"{provider.describe()} returned several lines; a token is one line.")


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


def callable_name(func: Any) -> str:
    """A callable's qualified name, never its repr: ``functools.partial(fetch, refresh_token)``
    has a repr that shows its bound arguments (a refresh token), so a partial is named by
    the function it wraps, and anything without a name by its type."""
    import functools

    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__qualname__", None)
    if not isinstance(name, str):
        name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        name = f"{type(func).__qualname__} object"
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) and module not in ("__main__", "builtins") else name


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
