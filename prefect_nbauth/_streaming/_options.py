"""The options both streams take, checked before anything connects.

A mistake raises :class:`ConfigurationError` at ``stream_events(...)`` or
``stream_logs(...)``, not minutes later in a background thread.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .._exceptions import ConfigurationError

__all__ = ["IDLE_INTERVAL", "EngineOptions", "api_url_to_stream", "check_backoff", "check_count",
           "check_seconds", "exponential_backoff", "resolve_idle_interval"]

IDLE_INTERVAL = 30.0  # seconds between REST checks of an idle stream, by default


@dataclass
class EngineOptions:
    """What every stream engine needs; each product adds its own fields."""

    reconcile_interval: float
    lookback: float
    credential_wait: float
    buffer: int
    backoff: Callable[[], Iterator[float]]


def exponential_backoff(initial: float = 0.1, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Delays before reconnecting: exponential, capped, with "equal jitter" (½–1× the step).

    A fresh iterator is taken after a connection stayed up for 10 s, which
    resets the delay; a server that accepts and drops at once is not hammered.
    """
    delay = initial
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(cap, delay * factor)


def check_seconds(name: str, value: object, *, minimum: float = 0.0, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, not {type(value).__name__}.")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds.")
    if value < minimum or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be at least {minimum:g} seconds (got {value:g}).")
    return value


def resolve_idle_interval(value: object, reconcile_interval: float) -> float:
    """``idle_interval`` checked; None means 30 s, or ``reconcile_interval`` when that is longer."""
    if value is None:
        return max(IDLE_INTERVAL, reconcile_interval)
    idle = check_seconds("idle_interval", value, minimum=0.01)
    if idle < reconcile_interval:
        raise ConfigurationError(
            f"idle_interval ({idle:g} s) must not be shorter than reconcile_interval "
            f"({reconcile_interval:g} s): an idle stream checks less often than a busy one."
        )
    return idle


def check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer of at least {minimum}.")
    return value


def check_backoff(backoff: Any) -> Callable[[], Iterator[float]]:
    """The caller's backoff factory, or the default one."""
    if backoff is None:
        return lambda: exponential_backoff()
    if not callable(backoff):
        raise ConfigurationError("backoff must be a callable returning an iterator of delays in seconds.")
    result: Callable[[], Iterator[float]] = backoff
    return result


def api_url_to_stream(what: str) -> str:
    """The API URL in force (no trailing slash), or ConfigurationError saying how to log in."""
    from ..session import socket_credential
    from ._subscription import socket_url

    credential = socket_credential()
    if not credential.api_url:
        raise ConfigurationError(
            f"No Prefect API URL is in force, so there {what}. Log in first: "
            "prefect_nbauth.login('http://HOST:4200/api', auth_string=...) or set PREFECT_API_URL."
        )
    socket_url(credential.api_url)  # an http(s) URL, or ConfigurationError
    url: str = credential.api_url.rstrip("/")
    return url
