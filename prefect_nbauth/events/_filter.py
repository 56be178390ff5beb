"""What an event stream asks for: user input checked and turned into Prefect's EventFilter.

Everything here runs before a connection is opened, so a mistake raises
:class:`ConfigurationError` at ``stream_events(...)``, not minutes later in a
background thread. The same filter goes to the websocket and to every REST
query; only ``occurred`` differs between them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from .._exceptions import ConfigurationError
from .._streaming import TimedFilter, check_since, iso_us, to_us

__all__ = ["StreamFilter", "build_filter"]

# Prefect's websocket filter (and Prefect's own subscriber) needs an ``until``;
# a year ahead keeps events from emitters whose clock runs fast.
FAR_FUTURE = timedelta(days=365)


def _strings(name: str, value: object) -> list[str] | None:
    """``None``, one string or a sequence of strings → a list (never empty)."""
    if value is None:
        return None
    items: list[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (bytes, bytearray)) or (
            not isinstance(value, Sequence) and not isinstance(value, (set, frozenset))):
        raise ConfigurationError(
            f"{name} must be a string or a list of strings, not {type(value).__name__}."
        )
    else:
        items = list(value)
    if not items:
        raise ConfigurationError(
            f"{name} is empty. Pass at least one value, or leave {name} out to match everything "
            "(Prefect treats an empty list as 'no condition', which is rarely what was meant)."
        )
    cleaned: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"{name} must contain strings, not {type(item).__name__}.")
        if not item.strip():
            raise ConfigurationError(f"{name} contains an empty or blank string.")
        if item != item.strip():
            raise ConfigurationError(f"{name} value {item!r} starts or ends with whitespace.")
        cleaned.append(item)
    return cleaned


def _labels(name: str, value: object) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{name} must be a mapping such as {{'prefect.resource.name': 'my-flow'}}, "
            f"not {type(value).__name__}."
        )
    if not value:
        raise ConfigurationError(f"{name} is empty; leave it out to match every resource.")
    result: dict[str, list[str]] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"{name} keys must be non-empty strings, not {key!r}.")
        result[key] = _strings(f"{name}[{key!r}]", item) or []
    return result


# Parts of an EventFilter a caller may pass through ``filter=``; ``occurred`` and
# ``order`` belong to the stream (since= and delivery order).
_STREAM_OWNED = ("occurred", "order")


def _advanced(value: object) -> dict[str, Any]:
    from prefect.events.filters import EventFilter
    from pydantic import ValidationError

    if value is None:
        return {}
    if isinstance(value, EventFilter):
        data = value.model_dump(mode="json", exclude_unset=True)
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        raise ConfigurationError(
            f"filter must be a prefect.events.filters.EventFilter or a dict, not {type(value).__name__}."
        )
    for key in _STREAM_OWNED:
        if key in data:
            raise ConfigurationError(
                f"filter must not set {key!r}: the stream sets it itself "
                f"({'use since=' if key == 'occurred' else 'events come in delivery order'})."
            )
    try:
        EventFilter.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'filter'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ConfigurationError(
            f"filter is not a valid Prefect EventFilter ({problems}). Known fields: event, resource, "
            "related, any_resource, id, text."
        ) from None
    return data


class StreamFilter(TimedFilter):
    """The validated filter of one stream: an EventFilter template (without occurred/order) and a start."""

    def __init__(self, body: dict[str, Any], since: datetime) -> None:
        super().__init__(body, since)
        self._related_match = _related_matcher(body.get("related"))

    def query(self, since_us: int, until_us: int, *, ids: Sequence[str] | None = None,
              order: str = "ASC") -> dict[str, Any]:
        """The JSON EventFilter for a REST query over ``[since_us, until_us]`` (inclusive)."""
        body = dict(self._body)
        body["occurred"] = {"since": iso_us(since_us), "until": iso_us(until_us)}
        body["order"] = order
        if ids is not None:
            body["id"] = {"id": list(ids)}
        return body

    def socket_filter(self, now: datetime) -> dict[str, Any]:
        body = dict(self._body)
        body["occurred"] = {"since": self.since.isoformat(), "until": (now + FAR_FUTURE).isoformat()}
        body["order"] = "ASC"
        return body

    def accepts_live(self, event: Any) -> bool:
        """Checks Prefect's server skips on the live socket (it does not apply ``related``)."""
        return self._related_match(event)


def _glob(pattern: str) -> Callable[[str | None], bool]:
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in body) + r"\Z",
                       re.DOTALL)

    def match(value: str | None) -> bool:
        if value is None:
            return False
        found = regex.match(value) is not None
        return not found if negated else found

    return match


def _related_matcher(spec: Any) -> Callable[[Any], bool]:
    """A local version of the SQL Prefect's REST API applies for ``related``.

    Prefect's server filters the live websocket with each filter's ``includes()``,
    and its related-resource filter has none: a live subscriber asking for
    ``related`` gets every event. Here one related resource (role not empty,
    unless roles are given) must satisfy every condition, as in the SQL.
    Case-sensitive; an event this rejects but the REST API accepts arrives via
    reconciliation instead, so nothing is lost either way.
    """
    if not spec:
        return lambda event: True
    specs = spec if isinstance(spec, list) else [spec]
    checks: list[Callable[[Any], bool]] = []
    for item in specs:
        ids = set(item.get("id") or [])
        roles = set(item.get("role") or [])
        pairs = {tuple(p) for p in item.get("resources_in_roles") or []}
        labels = {k: [_glob(v) for v in ([vals] if isinstance(vals, str) else vals)]
                  for k, vals in (item.get("labels") or {}).items()}
        if not (ids or roles or pairs or labels):
            continue

        def check(event: Any, ids: set[Any] = ids, roles: set[Any] = roles, pairs: set[Any] = pairs,
                  labels: dict[str, Any] = labels) -> bool:
            for resource in event.related:
                rid, role = resource.get("prefect.resource.id"), resource.get("prefect.resource.role", "")
                if not roles and not role:
                    continue
                if ids and rid not in ids:
                    continue
                if roles and role not in roles:
                    continue
                if pairs and (rid, role) not in pairs:
                    continue
                if labels and not all(
                    any(m(resource.get(key)) for m in matchers) if matchers else False
                    for key, matchers in labels.items()
                ):
                    continue
                return True
            return False

        checks.append(check)
    return lambda event: all(check(event) for check in checks)


def build_filter(*, prefix: object = None, resource: object = None, labels: object = None,
                 related: object = None, since: object = None, filter: object = None,
                 now: datetime | None = None) -> StreamFilter:
    """Check every filter input; raise ConfigurationError before anything connects."""
    now = now or datetime.now(timezone.utc)
    body = _advanced(filter)
    prefixes = _strings("prefix", prefix)
    resource_ids = _strings("resource", resource)
    resource_labels = _labels("labels", labels)
    related_ids = _strings("related", related)

    def claim(key: str, what: str) -> None:
        if key in body and body[key] is not None:
            raise ConfigurationError(f"{what} and filter={{'{key}': …}} both set the {key} filter; pass one.")

    if prefixes:
        claim("event", "prefix=")
        body["event"] = {"prefix": prefixes}
    if resource_ids or resource_labels:
        claim("resource", "resource=/labels=")
        spec: dict[str, Any] = {}
        labels_out: dict[str, list[str]] = dict(resource_labels or {})
        if resource_ids:
            if "prefect.resource.id" in labels_out:
                raise ConfigurationError(
                    "resource= and labels={'prefect.resource.id': …} both filter the resource id; pass one."
                )
            if any("*" in r or "?" in r or r.startswith("!") for r in resource_ids):
                labels_out["prefect.resource.id"] = resource_ids  # wildcards: matched as labels
            else:
                spec["id"] = resource_ids
        if labels_out:
            spec["labels"] = labels_out
        body["resource"] = spec
    if related_ids:
        claim("related", "related=")
        if any("*" in r or "?" in r or r.startswith("!") for r in related_ids):
            body["related"] = {"labels": {"prefect.resource.id": related_ids}}
        else:
            body["related"] = {"id": related_ids}

    since_dt = now if since is None else check_since(since, now)
    result = StreamFilter(body, since_dt)
    # The assembled filter must still be one Prefect accepts.
    from prefect.events.filters import EventFilter

    try:
        EventFilter.model_validate(result.query(result.since_us, to_us(now)))
    except Exception as exc:  # noqa: BLE001 - reported as a configuration problem
        raise ConfigurationError(f"The event filter is not valid: {exc}") from None
    return result
