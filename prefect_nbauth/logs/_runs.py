"""Which runs a log stream follows are active: where there is something to read.

On a server without live logs (Prefect's default: ``/logs/out`` is off), a log
stream must poll ``POST /logs/filter``. Polling every second for a run that
finished hours ago (or, unfiltered, for a server where nothing runs) is what
made an idle log stream cost a request a second. Prefect's events websocket
is on by default and announces every flow-run and task-run state change
(``prefect.flow-run.Running``, ``...Completed``; the new state's type is the
resource label ``prefect.state-type``), so the stream listens to it and polls
fast only while a run it follows is active:

- *active*: ``PENDING``, ``RUNNING`` or ``CANCELLING``;
- *just final*: for :data:`TAIL` seconds after a run became final, because
  Prefect's client ships logs in batches (every 2 s, and once more when the
  process exits): the last lines reach the server after the final state;
- anything else (``SCHEDULED``, ``PAUSED``, final for longer) is not active.

A stream on given runs reads their states over REST when its events socket
connects (before that it cannot know which are running), and re-reads the
ones it believes active every ``recheck`` seconds (a dropped "final" event
must not keep it polling for ever). An unfiltered stream learns from events
alone: it hears about a run when that run (or one of its task runs) changes
state.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from .._streaming import Retryable
from ._filter import LogStreamFilter

__all__ = ["ACTIVE", "FINAL", "TAIL", "RunActivity", "read_run_states", "signal_filter"]

ACTIVE = frozenset({"PENDING", "RUNNING", "CANCELLING"})
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
TAIL = 10.0  # seconds a run counts as active after it became final (its last log batches)

_FLOW = "prefect.flow-run."
_TASK = "prefect.task-run."
_FAR_FUTURE = timedelta(days=365)


def _runs_of(sfilter: LogStreamFilter) -> tuple[list[str], list[str]]:
    body = sfilter.describe()
    flows = list((body.get("flow_run_id") or {}).get("any_") or [])
    tasks = list((body.get("task_run_id") or {}).get("any_") or [])
    return flows, tasks


def signal_filter(sfilter: LogStreamFilter, now: datetime) -> dict[str, Any]:
    """The ``/events/out`` filter that announces state changes of the runs whose logs ``sfilter`` wants.

    Task runs when the log filter names task runs (a log must match both), else
    the named flow runs, else every flow run and task run.
    """
    flows, tasks = _runs_of(sfilter)
    body: dict[str, Any] = {
        "occurred": {"since": (now - timedelta(minutes=1)).isoformat(), "until": (now + _FAR_FUTURE).isoformat()},
        "order": "ASC",
    }
    if tasks:
        body["event"] = {"prefix": [_TASK]}
        body["resource"] = {"id": [_TASK + run for run in tasks]}
    elif flows:
        body["event"] = {"prefix": [_FLOW]}
        body["resource"] = {"id": [_FLOW + run for run in flows]}
    else:
        body["event"] = {"prefix": [_FLOW, _TASK]}
    return body


def state_of_event(message: Any) -> tuple[str, str | None] | None:
    """``(resource id, state type)`` of an ``/events/out`` frame about a run, else None."""
    if type(message) is not dict or message.get("type") != "event":
        return None
    event = message.get("event")
    resource = event.get("resource") if type(event) is dict else None
    if type(resource) is not dict:
        return None
    resource_id = resource.get("prefect.resource.id")
    if not isinstance(resource_id, str) or not resource_id.startswith((_FLOW, _TASK)):
        return None
    state = resource.get("prefect.state-type")
    return resource_id, state if isinstance(state, str) and state else None


class RunActivity:
    """What the stream knows of its runs' states; :meth:`active` says whether to poll fast."""

    def __init__(self, sfilter: LogStreamFilter, *, recheck: float, tail: float = TAIL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        flows, tasks = _runs_of(sfilter)
        # The runs whose states a REST read can tell (None: every run, learned from events).
        self.named: list[str] | None = ([_TASK + run for run in tasks] or [_FLOW + run for run in flows]) or None
        self.tail = tail
        self.recheck = recheck
        self._clock = clock
        self._active: set[str] = set()
        self._told: set[str] = set()  # runs an event spoke of since the last REST read began
        self._tail_until = -1.0
        self.states_due = self.named is not None  # read the named runs' states when the socket is up
        self._next_recheck = float("inf")

    def active(self) -> bool:
        return bool(self._active) or self._clock() < self._tail_until

    @property
    def active_count(self) -> int:
        return len(self._active)

    def from_event(self, resource_id: str, state: str | None) -> bool:
        """A state change the events socket announced; True when it is a reason to read soon."""
        if state is None:
            return False
        self._told.add(resource_id)
        return self._set(resource_id, state, age=0.0)

    def _set(self, resource_id: str, state: str, age: float) -> bool:
        """Record a state that began ``age`` seconds ago; True for a run that starts (when none
        was active) or has just ended (its last log batches follow): reasons to read soon."""
        was = self.active()
        reason = False
        if state in ACTIVE:
            self._active.add(resource_id)
            reason = not was
        else:
            self._active.discard(resource_id)
            if state in FINAL and age < self.tail:
                self._tail_until = max(self._tail_until, self._clock() + self.tail - age)
                reason = True
        if not self._active:
            self._next_recheck = float("inf")
        elif self._next_recheck == float("inf"):
            self._next_recheck = self._clock() + self.recheck
        return reason

    def ids_to_read(self) -> list[str] | None:
        """Run resource ids whose states to read over REST now (None: nothing to read)."""
        if self.states_due and self.named is not None:
            return list(self.named)
        if self._active and self._clock() >= self._next_recheck:
            return sorted(self._active)
        return None

    def reading(self) -> None:
        """A REST read of states begins: events from now on are newer than its answers."""
        self._told.clear()

    def from_rest(self, states: Iterable[tuple[str, str, float]]) -> bool:
        """``(resource id, state type, seconds since that state began)`` read over REST.

        States an event announced while the read ran are newer and are kept.
        True when the answers are a reason to read logs soon.
        """
        self.states_due = False
        reason = False
        for resource_id, state, age in states:
            if resource_id not in self._told:
                reason = self._set(resource_id, state, age) or reason
        self._next_recheck = self._clock() + self.recheck if self._active else float("inf")
        return reason

    def gap(self) -> None:
        """State changes may have gone unheard (the events socket was down): active for a tail."""
        self._tail_until = max(self._tail_until, self._clock() + self.tail)

    def unknown(self) -> None:
        """The states could not be read: assume the named runs active until a read or event says."""
        self._active.update(self.named or ())  # (states_due stays: the next pass reads them again)


async def read_run_states(rest: Any, resource_ids: list[str]) -> list[tuple[str, str, float]]:
    """The state type and age of each run (``prefect.flow-run.<id>``/``prefect.task-run.<id>``).

    One ``POST /flow_runs/filter`` and/or ``POST /task_runs/filter``; Retryable
    on anything but a list of runs.
    """
    now = datetime.now(timezone.utc)
    found: list[tuple[str, str, float]] = []
    for prefix, path, key in ((_FLOW, "/flow_runs/filter", "flow_runs"), (_TASK, "/task_runs/filter", "task_runs")):
        ids = [rid[len(prefix):] for rid in resource_ids if rid.startswith(prefix)]
        if not ids:
            continue
        body = {key: {"id": {"any_": ids}}, "limit": len(ids)}
        response, credential = await rest.request("POST", path, body)
        data = rest.check(response, path, credential, "")
        if not isinstance(data, list):
            raise Retryable(f"{rest.api_url}{path} did not answer with a list of runs")
        for run in data:
            state = run.get("state") if isinstance(run, dict) else None
            if not isinstance(state, dict) or not isinstance(state.get("type"), str):
                continue
            age = 0.0
            stamp = state.get("timestamp")
            if isinstance(stamp, str):
                try:
                    age = (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
                except ValueError:
                    pass
            found.append((prefix + str(run.get("id")), state["type"], age))
    return found
