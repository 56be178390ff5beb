"""What a log stream asks for: user input checked and turned into Prefect's LogFilter.

Everything here runs before anything connects, so a mistake raises
:class:`ConfigurationError` at ``stream_logs(...)``. The same filter goes to
the websocket and to every REST read; only ``timestamp`` differs between them.

Measured on a 3.9.1 server: the live ``/logs/out`` socket applies ``level``,
``timestamp``, ``flow_run_id.any_`` and ``task_run_id`` (``any_``/``is_null_``)
but ignores ``text``; :attr:`LogStreamFilter.live_exact` says whether what the
socket sends is exactly what REST returns.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from .._exceptions import ConfigurationError
from .._streaming import TimedFilter, check_since, iso_us

__all__ = ["LogStreamFilter", "build_log_filter", "parse_level", "parse_since"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_level(level: object) -> int | None:
    """``"INFO"``, ``"warning"``, ``20`` or None → a numeric minimum level."""
    if level is None:
        return None
    if isinstance(level, bool):
        raise ConfigurationError("level must be a level name such as 'INFO' or a number such as 20.")
    if isinstance(level, int):
        if level < 0:
            raise ConfigurationError(f"level must be 0 or more (got {level}).")
        return level
    if isinstance(level, str):
        name = level.strip().upper()
        if name == "WARN":
            name = "WARNING"
        value = logging.getLevelName(name)
        if isinstance(value, int):
            return value
        if name.isdigit():
            return int(name)
        raise ConfigurationError(
            f"Unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number."
        )
    raise ConfigurationError(f"level must be a level name or a number, not {type(level).__name__}.")


def parse_since(since: object, now: datetime | None = None) -> datetime | None:
    """A datetime (aware), a timedelta (that long ago), ``"10m"``/``"2h"``/``"30s"``, or None."""
    now = now or datetime.now(timezone.utc)
    if since is None:
        return None
    if isinstance(since, timedelta):
        if since < timedelta(0):
            raise ConfigurationError("since as a timedelta means 'that long ago' and must not be negative.")
        return now - since
    if isinstance(since, str):
        text = since.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        if len(text) >= 2 and text[-1] in units:
            try:
                amount = float(text[:-1])
            except ValueError:
                amount = -1.0
            if amount >= 0:
                return now - timedelta(seconds=amount * units[text[-1]])
        raise ConfigurationError(
            f"since={since!r} is not understood: use a duration such as '30s', '10m', '2h' or '1d', "
            "a timedelta, or an aware datetime."
        )
    return check_since(since, now)


def _ids(name: str, value: object) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, UUID)) else value
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"{name} must be a run id (UUID or string) or a list of them.")
    if not items:
        raise ConfigurationError(f"{name} is empty; pass at least one id, or leave {name} out.")
    result = []
    for item in items:
        try:
            result.append(str(UUID(str(item))))
        except ValueError:
            raise ConfigurationError(
                f"{name} contains {str(item)[:60]!r}, which is not a run id (a UUID such as "
                "'0f8fad5b-d9cb-469f-a165-70867728950e')."
            ) from None
    return result


class LogStreamFilter(TimedFilter):
    """The validated filter of one log stream: a LogFilter template (without timestamp) and a start."""

    def __init__(self, body: dict[str, Any], since: datetime) -> None:
        super().__init__(body, since)
        # The socket ignores `text`: its frames then only say "something new", and the
        # logs themselves come from REST, which applies the whole filter.
        self.live_exact = "text" not in body

    def query(self, after_us: int, before_us: int | None = None) -> dict[str, Any]:
        body = dict(self._body)
        stamp: dict[str, str] = {"after_": iso_us(max(after_us, self.since_us))}
        if before_us is not None:
            stamp["before_"] = iso_us(before_us)
        body["timestamp"] = stamp
        return body

    def socket_filter(self) -> dict[str, Any]:
        body = {k: v for k, v in self._body.items() if k != "text"}
        body["timestamp"] = {"after_": iso_us(self.since_us)}
        return body


def build_log_filter(*, flow_run_id: object = None, task_run_id: object = None, level: object = None,
                     text: object = None, since: object = None,
                     now: datetime | None = None) -> LogStreamFilter:
    """Check every filter input; raise ConfigurationError before anything connects.

    ``since=None`` means the whole history of the given runs when a run id is
    given (watching a run that already started shows its first lines), and
    now otherwise.
    """
    now = now or datetime.now(timezone.utc)
    body: dict[str, Any] = {}
    flows = _ids("flow_run_id", flow_run_id)
    tasks = _ids("task_run_id", task_run_id)
    if flows:
        body["flow_run_id"] = {"any_": flows}
    if tasks:
        body["task_run_id"] = {"any_": tasks}
    minimum = parse_level(level)
    if minimum is not None:
        body["level"] = {"ge_": minimum}
    if text is not None:
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            raise ConfigurationError("text must be a non-empty search string of at most 200 characters.")
        body["text"] = {"query": text}
    start = parse_since(since, now)
    if start is None:
        start = _EPOCH if (flows or tasks) else now
    result = LogStreamFilter(body, start)
    from prefect.client.schemas.filters import LogFilter

    try:
        LogFilter.model_validate(result.query(result.since_us))
    except Exception as exc:  # noqa: BLE001 - reported as a configuration problem
        raise ConfigurationError(f"The log filter is not valid: {exc}") from None
    return result
