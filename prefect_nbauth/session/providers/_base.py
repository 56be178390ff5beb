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
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from ... import _redaction
from ..._exceptions import CredentialProviderError, PrefectAuthError
from ..._jwt import expiry_of, jwt_claims
from ..._redaction import scrub_text
from ..._secrets import Secret

__all__ = ["CredentialProvider", "FetchResult", "Token", "callable_name", "clean_token"]

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
        try:
            return f"<{self.describe()}>"
        except Exception:  # noqa: BLE001 - half-built (its __init__ raised): name the kind only
            return f"<{type(self).__name__}>"


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
