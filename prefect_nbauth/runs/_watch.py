"""watch(run): one flow run followed in one place: state, timeline, task runs, logs.

Three sources, all with the credential in force:

- the event stream (``stream_events``) for ``prefect.flow-run.*`` and
  ``prefect.task-run.*`` events of the run: the state badge and timeline, live;
- the log stream (``stream_logs``) for its logs, every line once and in order;
- a REST read of the run and its task runs every ``poll_interval`` seconds, so
  a missed event (or an old client that emits none) cannot leave the badge stale.

It ends by itself once the run is in a final state (Completed, Failed, Crashed,
Cancelled) and its last log lines are delivered: those reach the server after
the final state (Prefect's client posts logs in batches), so the watch waits
for the engine's own last line, "Finished in state ...", to be on the server
and then for one more full read of the log stream (see ``_all_in``); streams
stopped, ``done`` set, ``on_change`` called a last time. Prefect's own
``FlowRunSubscriber`` waits a fixed straggler timeout (3 s) instead, and loses
what its websockets drop.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from uuid import UUID

from .._boundary import public
from .._exceptions import ConfigurationError
from ..logs import source_label

__all__ = ["RunWatch", "StateChange", "TaskRunInfo", "run_id_of", "watch"]

logger = logging.getLogger("prefect_nbauth.watch")

FINAL_TYPES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _result_of(coroutine: Any) -> Any:
    """Run a coroutine to its end on a thread of its own (the caller's loop may be running)."""
    import asyncio

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="prefect-nbauth-run-deployment", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_id_of(run: Any) -> UUID:
    """The flow run id of a run id, a ``FlowRun`` (``run_deployment()``), a ``State``
    (``my_flow(return_state=True)``) or a future/object with ``flow_run_id``.

    Also the coroutine that Prefect's ``run_deployment(...)`` returns in a notebook cell
    (Jupyter runs cells in an event loop, where Prefect hands back a coroutine instead of
    the ``FlowRun``): it is run to its end here, so ``watch(run_deployment(...))`` works
    with or without ``await``.
    """
    if inspect.iscoroutine(run):
        run = _result_of(run)
    if isinstance(run, UUID):
        return run
    if isinstance(run, str):
        try:
            return UUID(run.strip())
        except ValueError:
            raise ConfigurationError(
                f"{run[:60]!r} is not a flow run id (a UUID); pass the id, or what run_deployment() "
                "or my_flow(return_state=True) returned."
            ) from None
    details = getattr(run, "state_details", None)
    if details is not None and getattr(details, "flow_run_id", None) is not None:
        return UUID(str(details.flow_run_id))
    for name in ("flow_run_id", "id"):
        value = getattr(run, name, None)
        if value is not None and (name == "flow_run_id" or hasattr(run, "flow_id")):
            return UUID(str(value))
    raise ConfigurationError(
        f"Cannot tell which flow run a {type(run).__name__} is: pass a flow run id, the FlowRun "
        "run_deployment() returns, or the State of my_flow(return_state=True)."
    )


@dataclass(frozen=True)
class StateChange:
    at: datetime
    type: str  # COMPLETED, RUNNING...
    name: str  # Completed, Running, Retrying...


@dataclass
class TaskRunInfo:
    id: str
    name: str
    state_type: str = "PENDING"
    state_name: str = "Pending"
    updated: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class RunWatch:
    """Follows one flow run; see :func:`watch`. Thread-safe snapshot accessors."""

    def __init__(self, run_id: UUID, *, level: str | int | None = None, poll_interval: float = 2.0,
                 quiet: float = 3.0, straggler_timeout: float = 60.0, max_logs: int = 10_000,
                 on_change: Callable[["RunWatch"], None] | None = None,
                 on_log: Callable[[Any], None] | None = None) -> None:
        self.run_id = run_id
        self.level = level
        self.poll_interval = poll_interval
        self.quiet = quiet
        self.straggler_timeout = straggler_timeout
        self.max_logs = max_logs
        self._on_change = on_change
        self._on_log = on_log
        self._lock = threading.Lock()
        self.name: str | None = None
        self.flow_name: str | None = None
        self.state_type: str | None = None
        self.state_name: str | None = None
        self.timeline: list[StateChange] = []
        self.tasks: dict[str, TaskRunInfo] = {}
        self.logs: list[Any] = []
        self.log_count = 0
        self.error: str | None = None
        self.done = threading.Event()
        self._final_at: float | None = None
        self._last_log_at = time.monotonic()
        self._stop = threading.Event()
        self._events_handle: Any = None
        self._logs_handle: Any = None
        self.log_stream: Any = None
        self.event_stream: Any = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- public
    @property
    def final(self) -> bool:
        return self.state_type in FINAL_TYPES

    def start(self) -> "RunWatch":
        # Imported here: `import prefect_nbauth` must stay light (streams import httpx/websockets).
        from ..events import stream_events
        from ..logs import stream_logs

        self._poll()  # name, state and tasks before anything is shown; raises on a wrong id
        now = datetime.now(timezone.utc)
        # The server's clock made `created`: never let a fast one put `since` in the future.
        since = min(self._created or now - timedelta(minutes=5), now - timedelta(seconds=1))
        rid = f"prefect.flow-run.{self.run_id}"
        self.event_stream = stream_events(prefix=["prefect.flow-run.", "prefect.task-run."], since=since,
                                          filter={"any_resource": {"id": [rid]}})
        self.log_stream = stream_logs(flow_run_id=self.run_id, level=self.level)
        self._events_handle = self.event_stream.run_in_background(self._on_event, lambda _s: self._changed())
        self._logs_handle = self.log_stream.run_in_background(self._on_log_item, lambda _s: self._changed())
        self._thread = threading.Thread(target=self._run, name="prefect-nbauth-watch-run", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following now (idempotent)."""
        self._stop.set()
        for handle in (self._events_handle, self._logs_handle):
            if handle is not None:
                handle.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run is final and its logs are in (or stop()); False on timeout."""
        return self.done.wait(timeout)

    def run_names(self) -> dict[tuple[str, str], str]:
        """The names this watch knows, for log labels (``logs._sources.source_label``)."""
        with self._lock:
            names = {("task", t.id): t.name for t in self.tasks.values()}
        if self.name:
            names["flow", str(self.run_id)] = self.name
        return names

    def failure_log(self) -> Any:
        """When the run failed or crashed: its last ERROR (or worse) log line, the error a person
        needs (Prefect logs the traceback there); else None. Call it with ``_lock`` held."""
        if self.state_type not in ("FAILED", "CRASHED"):
            return None
        return next((log for log in reversed(self.logs) if getattr(log, "level", 0) >= logging.ERROR), None)

    def summary(self) -> str:
        """The readable text form: name, state, timeline, task runs, last log lines."""
        with self._lock:
            timeline = list(self.timeline)
            tasks = sorted(self.tasks.values(), key=lambda t: t.name)
            logs = self.logs[-20:]
            count = self.log_count
            failure = self.failure_log()
        lines = [f"Flow run {self.name or self.run_id} ({self.flow_name or 'flow'}): "
                 f"{self.state_name or 'unknown'}" + (" (final)" if self.final else " (following)")]
        if timeline:
            lines.append("  timeline: " + " -> ".join(
                f"{c.name} {c.at.astimezone(timezone.utc):%H:%M:%S}" for c in timeline))
        if tasks:
            lines.append(f"  task runs ({len(tasks)}): " + ", ".join(f"{t.name} {t.state_name}" for t in tasks[:20])
                         + (" ..." if len(tasks) > 20 else ""))
        lines.append(f"  logs: {count} lines" + (f", last {len(logs)}:" if logs else ""))
        names = self.run_names()
        for log in logs:
            stamp = log.timestamp.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            source = source_label(log, names)
            lines.append(f"    {stamp} {logging.getLevelName(log.level):<8} " + (f"{source} · " if source else "")
                         + log.message[:300])
        if failure is not None:  # the error whole: a traceback's first frames and its exception
            source = source_label(failure, names)
            lines.append("  error" + (f" ({source})" if source else "") + ":")
            lines.extend(f"    {line}" for line in str(failure.message).splitlines())
        if self.error:
            lines.append(f"  ! {self.error}")
        for what, stream in (("logs", self.log_stream), ("events", self.event_stream)):
            if stream is not None and stream.error is not None:
                lines.append(f"  ! {what} stream ended: {stream.error}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    # ----------------------------------------------------------- internals
    _created: datetime | None = None
    _finished_seen_at: float | None = None
    _reads_at_finished = 0
    _next_finished_check = 0.0

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self)
            except Exception:  # noqa: BLE001 - a view callback must not stop the watch
                logger.exception("watch on_change raised")

    def _set_state(self, state_type: str, name: str, at: datetime) -> None:
        with self._lock:
            if self.timeline and self.timeline[-1].name == name and self.timeline[-1].type == state_type:
                return
            if any(c.name == name and c.type == state_type and abs((c.at - at).total_seconds()) < 1
                   for c in self.timeline):
                return
            self.timeline.append(StateChange(at, state_type, name))
            self.timeline.sort(key=lambda c: c.at)
            latest = self.timeline[-1]
            self.state_type, self.state_name = latest.type, latest.name
        if self.final and self._final_at is None:
            self._final_at = time.monotonic()

    def _on_event(self, event: Any) -> None:
        name = str(event.event)
        rid = str(event.resource.id)
        payload = event.payload or {}
        validated = payload.get("validated_state") or {}
        if not validated:
            self._changed()
            return  # not a state change (heartbeats, ...)
        state_name = name.rsplit(".", 1)[-1]
        state_type = str(validated.get("type") or state_name.upper())
        if name.startswith("prefect.flow-run.") and rid == f"prefect.flow-run.{self.run_id}":
            self._set_state(state_type, str(validated.get("name") or state_name), event.occurred)
        elif name.startswith("prefect.task-run.") and rid.startswith("prefect.task-run."):
            task_id = rid.split(".", 2)[-1]
            with self._lock:
                info = self.tasks.get(task_id) or TaskRunInfo(task_id, event.resource.get("prefect.resource.name")
                                                              or task_id[:8])
                if event.occurred >= info.updated or info.state_type == "PENDING":
                    info.state_type, info.state_name, info.updated = state_type, state_name, event.occurred
                self.tasks[task_id] = info
        self._changed()

    def _on_log_item(self, log: Any) -> None:
        with self._lock:
            self.logs.append(log)
            if len(self.logs) > self.max_logs:
                del self.logs[: len(self.logs) - self.max_logs]
            self.log_count += 1
            self._last_log_at = time.monotonic()
        if self._on_log is not None:
            self._on_log(log)
        self._changed()

    def _poll(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with get_client(sync_client=True) as client:
            try:
                run = client.read_flow_run(self.run_id)
            except Exception as exc:  # noqa: BLE001 - turned into a message that says what to do
                if "404" in str(exc) or "not found" in str(exc).lower():
                    raise ConfigurationError(f"There is no flow run {self.run_id} on this Prefect API.") from None
                raise
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[self.run_id])))
            if self.flow_name is None:
                try:
                    self.flow_name = client.read_flow(run.flow_id).name
                except Exception:  # noqa: BLE001 - the name is cosmetic
                    self.flow_name = None
        self.name = run.name
        self._created = run.created
        if run.state is not None:
            self._set_state(run.state.type.value, run.state.name or run.state.type.value.title(),
                            run.state.timestamp)
        with self._lock:
            for task in tasks:
                key = str(task.id)
                info = self.tasks.get(key) or TaskRunInfo(key, task.name)
                if task.state is not None and (task.state.timestamp >= info.updated or info.state_type == "PENDING"):
                    info.state_type = task.state.type.value
                    info.state_name = task.state.name or task.state.type.value.title()
                    info.updated = task.state.timestamp
                info.name = task.name
                self.tasks[key] = info
        self._changed()

    def _finished_line(self) -> datetime | None:
        """When the engine logged "Finished in state ..." (its last line), if it has."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTextSearch

        wanted = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.run_id]),
                           text=LogFilterTextSearch(query='"Finished in state"'))
        with get_client(sync_client=True) as client:
            found = client.read_logs(log_filter=wanted, limit=5)
        return max((log.timestamp for log in found), default=None)

    def _all_in(self) -> bool:
        """After the final state: are the run's last log lines delivered?

        Prefect's client posts logs in batches (every 2 s, and once more at exit), so the
        last lines reach the server AFTER the final state, later still on a busy machine.
        The engine's own last line is "Finished in state ...": once the server has it,
        everything the run logged before it is there too, and one full read of the log
        stream begun after that delivers it. Without that line (a crash, logging to the
        API off), ``straggler_timeout`` seconds of quiet after the final state decide.
        """
        assert self._final_at is not None
        stream = self.log_stream
        now = time.monotonic()
        if stream is None or stream.error is not None:
            return True
        if self._finished_seen_at is None and now >= self._next_finished_check:
            self._next_finished_check = now + 1.0
            try:
                if self._finished_line() is not None:
                    self._finished_seen_at = now
                    self._reads_at_finished = stream.stats.reads
            except Exception:  # noqa: BLE001 - the timeout below still ends the watch
                pass
        if self._finished_seen_at is not None:
            return stream.stats.reads >= self._reads_at_finished + 2 and now - self._last_log_at >= 0.5
        return now - self._final_at >= self.straggler_timeout and now - self._last_log_at >= self.quiet

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval if self._final_at is None else 0.25):
            if self._final_at is None:
                try:
                    self._poll()
                    self.error = None
                except Exception as exc:  # noqa: BLE001 - shown, the watch goes on
                    from .._streaming import describe

                    self.error = f"reading the run: {describe(exc)}"
                    self._changed()
                continue
            if self._all_in():
                try:
                    self._poll()  # task runs' final states
                except Exception:  # noqa: BLE001
                    pass
                break
        for handle in (self._events_handle, self._logs_handle):
            if handle is not None:
                handle.stop()
        self.done.set()
        self._changed()


@public()
def watch(run: Any, *, level: str | int | None = None, on_change: Callable[[RunWatch], None] | None = None,
          quiet: float = 3.0) -> RunWatch:
    """Follow one flow run until it is final: ``watch(run).wait()``, then ``print(...)``.

    ``run`` is a flow run id, the ``FlowRun`` that ``run_deployment()`` returns, or the
    ``State`` of ``my_flow(return_state=True)``. In a notebook,
    ``prefect_nbauth.widgets.FlowRunWidget(run)`` shows the same as a live widget (``%prefect_watch``).
    """
    return RunWatch(run_id_of(run), level=level, on_change=on_change, quiet=quiet).start()
