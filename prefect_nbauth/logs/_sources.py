"""Which run a log line comes from, in words: ``task prepare-3f1`` or ``flow crazy-cat``.

A Prefect log carries only ids (``flow_run_id``, ``task_run_id``), and a flow's engine
writes the same line for every task and for the flow ("Finished in state
Completed()"): without the run's name the lines cannot be told apart. Prefect's console
handler prefixes ``Task run 'NAME' -``; here the name is a label beside the message.

:func:`source_label` names a log from names already known (a run watch knows its
flow run and task runs). :class:`RunNames` learns names it does not know by reading
the API in the background, in batches, each id once; until a name is known the
label is the id's first 8 characters. Reads use the credential in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["RunNames", "source_label"]

logger = logging.getLogger("prefect_nbauth.logs")

Names = Mapping[tuple[str, str], str]  # ("task" | "flow", run id) -> run name


def _ids(log: Any) -> tuple[str | None, str | None]:
    task, flow = getattr(log, "task_run_id", None), getattr(log, "flow_run_id", None)
    return (str(task) if task else None), (str(flow) if flow else None)


def source_label(log: Any, names: Names) -> str:
    """``"task NAME"`` for a task run's line, ``"flow NAME"`` for a flow run's own, ``""`` for neither."""
    task, flow = _ids(log)
    if task is not None:
        return f"task {names.get(('task', task)) or task[:8]}"
    if flow is not None:
        return f"flow {names.get(('flow', flow)) or flow[:8]}"
    return ""


def _read_names(wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Names of the wanted runs from the API (the credential in force); missing ones are left out."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterId
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        return {}  # no API in force: Prefect would start a temporary server to answer
    tasks = [UUID(i) for kind, i in wanted if kind == "task"]
    flows = [UUID(i) for kind, i in wanted if kind == "flow"]
    found: dict[tuple[str, str], str] = {}
    with get_client(sync_client=True) as client:
        if tasks:
            for task_run in client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=tasks)),
                                                  limit=len(tasks)):
                found["task", str(task_run.id)] = task_run.name
        if flows:
            for flow_run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flows)),
                                                  limit=len(flows)):
                found["flow", str(flow_run.id)] = flow_run.name
    return found


class RunNames:
    """Run names for log labels, learnt in the background (see the module docstring).

    ``want(log)`` is O(1) and never blocks (call it for each log as it arrives);
    ``label(log)`` names the log with what is known now; ``on_change()`` is called
    (on the reader thread) when new names arrived. ``close()`` stops the reader.
    """

    BATCH = 200  # ids per API read (Prefect caps filter reads at 200)

    def __init__(self, on_change: Callable[[], None] | None = None, *,
                 read: Callable[[Iterable[tuple[str, str]]], Mapping[tuple[str, str], str]] | None = None) -> None:
        self._on_change = on_change
        self._read = read
        self._names: dict[tuple[str, str], str] = {}
        self._asked: set[tuple[str, str]] = set()
        self._wanted: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def want(self, log: Any) -> None:
        task, flow = _ids(log)
        key = ("task", task) if task is not None else ("flow", flow) if flow is not None else None
        if key is None or key in self._asked:
            return
        with self._lock:
            if key in self._asked or self._closed:
                return
            self._asked.add(key)
            self._wanted.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prefect-nbauth-run-names", daemon=True)
                self._thread.start()
        self._wake.set()

    def label(self, log: Any) -> str:
        return source_label(log, self._names)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _run(self) -> None:
        while self._wake.wait() and not self._closed:
            self._wake.clear()
            with self._lock:
                batch, self._wanted = self._wanted[: self.BATCH], self._wanted[self.BATCH:]
                if self._wanted:
                    self._wake.set()
            try:
                found = dict((self._read or _read_names)(batch))
            except Exception:  # noqa: BLE001 - a label falls back to the id; never breaks a view
                logger.debug("could not read run names", exc_info=True)
                continue
            self._names.update(found)  # one dict update: readers see old or new names
            if found and self._on_change is not None:
                self._on_change()
