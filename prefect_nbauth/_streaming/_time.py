"""Times as a stream handles them: exact microseconds, a checked ``since``, a start-time filter.

Windows and keyset reads compare times at 1 µs, the precision Prefect stores,
so they are integers here, never floats.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["TimedFilter", "check_since", "from_us", "iso_us", "to_us"]

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding: windows are compared at 1 µs)."""
    value = value.astimezone(timezone.utc)
    days = value.toordinal() - _EPOCH_ORDINAL
    seconds = days * 86400 + value.hour * 3600 + value.minute * 60 + value.second
    return seconds * 1_000_000 + value.microsecond


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


def iso_us(us: int) -> str:
    return from_us(us).isoformat(timespec="microseconds")


def check_since(since: object, now: datetime) -> datetime:
    """An aware datetime, not in the future, in UTC; else ConfigurationError."""
    if not isinstance(since, datetime):
        raise ConfigurationError(
            f"since must be a datetime with a timezone, not {type(since).__name__}; for example "
            "datetime.now(timezone.utc) - timedelta(minutes=5)."
        )
    if since.tzinfo is None or since.tzinfo.utcoffset(since) is None:
        raise ConfigurationError(
            "since is a naive datetime (no timezone), so it is ambiguous: Prefect stores event "
            "times in UTC. Pass an aware one, e.g. datetime.now(timezone.utc) - timedelta(minutes=5)."
        )
    since = since.astimezone(timezone.utc)
    if since > now:
        raise ConfigurationError(
            f"since ({since.isoformat(timespec='seconds')}) is in the future (now is "
            f"{now.isoformat(timespec='seconds')} UTC); the stream would wait for it silently. "
            "Leave since out to start now."
        )
    return since


class TimedFilter:
    """A validated filter: the server's filter fields as JSON (without the time bounds) and a start."""

    def __init__(self, body: dict[str, Any], since: datetime) -> None:
        self._body = body  # the stream owns the time fields; each query adds its own
        self.since = since
        self.since_us = to_us(since)

    def describe(self) -> dict[str, Any]:
        return dict(self._body)
