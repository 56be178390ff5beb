"""Credential providers: where a token comes from, and when it stops being valid.

A provider is anything with ``fetch() -> Token``. They are used wherever
``login()`` takes a secret: ``auth_string=``, ``api_key=``, or the value of a
header in ``headers=``. ``login()`` wraps a plain string in :class:`StaticToken`.

Expiry, in order of trust: what the issuer says (OAuth2 ``expires_in``), the
``exp`` claim of a JWT (read without verifying: we only need the time), or a
``ttl`` the user gives. Without any of these a token is assumed to last until
the server rejects it; a 401 then triggers a refresh.

Every failure raises :class:`CredentialProviderError` naming the provider,
never the token.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, Union

import httpx

from ._exceptions import CredentialProviderError
from ._redaction import scrub_text
from ._secrets import Secret, redact
from ._status import expiry_of, jwt_claims

__all__ = [
    "CommandToken",
    "CallableToken",
    "CredentialProvider",
    "EnvToken",
    "FileToken",
    "OAuth2ClientCredentials",
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


def _clean(raw: Any, provider: "CredentialProvider") -> str:
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
    if not value:
        raise CredentialProviderError(f"{provider.describe()} returned an empty token.")
    if len(value) > MAX_TOKEN_LENGTH:
        raise CredentialProviderError(
            f"{provider.describe()} returned {len(value)} characters; that is not a token.")
    if any(c in value for c in "\r\n\0"):
        raise CredentialProviderError(
            f"{provider.describe()} returned several lines; a token is one line.")
    return value


class CredentialProvider:
    """Base class: subclasses implement :meth:`_fetch` and :meth:`describe`."""

    #: Seconds a single fetch may take before it counts as failed.
    timeout: float = 30.0
    #: A lifetime the user knows and the token does not say, in seconds.
    ttl: float | None = None

    def describe(self) -> str:
        return type(self).__name__

    def _fetch(self) -> Any:
        raise NotImplementedError

    def fetch(self) -> Token:
        raw = self._fetch()
        expires_at = None
        if isinstance(raw, Token):
            return raw
        if isinstance(raw, tuple) and len(raw) == 2:
            raw, expires_at = raw
            if isinstance(expires_at, (int, float)):
                expires_at = datetime.now(timezone.utc) + timedelta(seconds=float(expires_at))
        value = _clean(raw, self)
        if expires_at is None:
            expires_at = expiry_of(jwt_claims(value))
        if expires_at is None and self.ttl is not None:
            expires_at = datetime.now(timezone.utc) + timedelta(seconds=self.ttl)
        if expires_at is not None and expires_at.tzinfo is None:
            raise CredentialProviderError(
                f"{self.describe()} gave a naive expiry time; give it a timezone (UTC).")
        return Token(Secret(value), expires_at)

    @property
    def refreshable(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class StaticToken(CredentialProvider):
    """A fixed value (what a plain string becomes)."""

    def __init__(self, value: str | Secret, *, ttl: float | None = None) -> None:
        self._value = Secret(value)
        self.ttl = ttl

    def describe(self) -> str:
        return "the given value"

    def _fetch(self) -> Any:
        return self._value

    @property
    def refreshable(self) -> bool:
        return False


class EnvToken(CredentialProvider):
    """An environment variable, read again at every refresh."""

    def __init__(self, name: str, *, ttl: float | None = None) -> None:
        self.name = name
        self.ttl = ttl

    def describe(self) -> str:
        return f"environment variable {self.name}"

    def _fetch(self) -> Any:
        value = os.environ.get(self.name)
        if value is None:
            raise CredentialProviderError(f"Environment variable {self.name} is not set.")
        return value


class FileToken(CredentialProvider):
    """A file, read again when it changes (Kubernetes projected tokens, Vault agent sinks)."""

    def __init__(self, path: str | os.PathLike[str], *, ttl: float | None = None) -> None:
        self.path = Path(path).expanduser()
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], Token] | None = None

    def describe(self) -> str:
        return f"file {self.path}"

    def fetch(self) -> Token:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise CredentialProviderError(f"The token file {self.path} does not exist (any more).") from None
        except OSError as exc:
            raise CredentialProviderError(f"Cannot read the token file {self.path}: {exc.strerror}.") from None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        token = super().fetch()
        with self._lock:
            self._cache = (key, token)
        return token

    def _fetch(self) -> Any:
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

    def _fetch(self) -> Any:
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

    def _fetch(self) -> Any:
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


class OAuth2ClientCredentials(CredentialProvider):
    """An OAuth2 client-credentials grant (RFC 6749 §4.4), as OAuth2 proxies and IdPs issue.

    The protocol handling (request body, response validation, error codes) is
    oauthlib's; httpx carries it. The token's lifetime comes from ``expires_in``.
    """

    def __init__(self, token_url: str, client_id: str, client_secret: str | Secret, *,
                 scope: str | Sequence[str] | None = None, audience: str | None = None,
                 timeout: float = 30.0, verify: Any = True) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = Secret(client_secret)
        self.scope = scope.split() if isinstance(scope, str) else (list(scope) if scope else None)
        self.audience = audience
        self.timeout = timeout
        self.verify = verify

    def describe(self) -> str:
        return f"OAuth2 token endpoint {self.token_url}"

    def fetch(self) -> Token:
        from oauthlib.oauth2 import BackendApplicationClient
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error

        client = BackendApplicationClient(client_id=self.client_id)
        extra = {"audience": self.audience} if self.audience else {}
        body = client.prepare_request_body(scope=self.scope, include_client_id=False, **extra)
        started = time.time()
        try:
            response = httpx.post(
                self.token_url, content=body, timeout=self.timeout, verify=self.verify,
                follow_redirects=False,
                auth=(self.client_id, self.client_secret.reveal()),
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CredentialProviderError(
                f"{self.describe()} could not be reached: {type(exc).__name__}.") from None
        if response.status_code >= 500:
            raise CredentialProviderError(
                f"{self.describe()} is failing (HTTP {response.status_code}); try again later.")
        try:
            # RFC 6749 §5.1: the answer is JSON. oauthlib would also try form
            # encoding, which turns an HTML login page into "missing_token".
            if not isinstance(json.loads(response.text), dict):
                raise ValueError("not a JSON object")
        except ValueError:
            raise CredentialProviderError(
                f"{self.describe()} answered HTTP {response.status_code} with something that is not "
                "an OAuth2 token response (expected a JSON object). Check the token URL.") from None
        try:
            token = client.parse_request_body_response(response.text, scope=self.scope)
        except OAuth2Error as exc:
            raise CredentialProviderError(
                f"{self.describe()} refused the request (HTTP {response.status_code}, {exc.error}"
                + (f": {exc.description}" if exc.description else "")
                + "). Check the client id, secret and scope.") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialProviderError(
                f"{self.describe()} answered HTTP {response.status_code} with something that is not "
                f"an OAuth2 token response ({type(exc).__name__}).") from None
        value = _clean(token.get("access_token"), self)
        return Token(Secret(value), expiry_from_response(value, token.get("expires_in"), started))


#: Issuers count lifetimes in whole seconds and floor the issue time (oidc-provider
#: does): a token answered with ``"expires_in": 5`` may end up to a second sooner.
WHOLE_SECOND_ROUNDING = 1.0


def expiry_from_response(value: str, expires_in: Any, requested_at: float) -> datetime | None:
    """When a token from a token endpoint stops working, as seen by our clock.

    A JWT's ``exp`` is the issuer's own statement and already includes its
    rounding; the clock skew between issuer and us is left to the refresh
    margin (``RefreshingToken.margin_for``). An opaque token only has
    ``expires_in``: counted from when the request was SENT (the token cannot
    have been issued earlier, so network time never makes it look longer) and
    less :data:`WHOLE_SECOND_ROUNDING` when it is a whole number of seconds.
    """
    from_jwt = expiry_of(jwt_claims(value))
    if from_jwt is not None:
        return from_jwt
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        lifetime = float(expires_in)
        if lifetime.is_integer():
            lifetime = max(lifetime / 2, lifetime - WHOLE_SECOND_ROUNDING)
        return datetime.fromtimestamp(requested_at + lifetime, tz=timezone.utc)
    return None


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
