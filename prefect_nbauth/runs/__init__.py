"""Watching one flow run: its state, timeline, task runs and logs, live (on the event and log streams)."""

from ._watch import RunWatch, StateChange, TaskRunInfo, run_id_of, watch

__all__ = ["RunWatch", "StateChange", "TaskRunInfo", "run_id_of", "watch"]
