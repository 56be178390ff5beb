"""The one way magics read a run id: ``%prefect_watch`` and ``%prefect_logs --flow-run/--task-run``.

Each accepts the same three things: a run id literal (a UUID), the name of a variable
in the notebook, and IPython's ``$name``. The magics are ``@no_var_expand`` (a ``$x``
holding a secret must never be expanded into the line), so ``$name`` is looked up
here, for a run id only: the variable may hold the id (``str``/``UUID``), the
``FlowRun`` that ``run_deployment()`` returned, or the ``State`` of
``my_flow(return_state=True)``. An error names what would work and never shows the
variable's value (it may be anything, a secret included).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ..._exceptions import ConfigurationError
from ...runs import run_id_of
from ._base import usage

__all__ = ["flow_run_id", "task_run_id"]

_WHAT_WORKS = {
    "flow": ("a flow run id (a UUID), or the name of a variable holding one or holding what "
             "run_deployment() or my_flow(return_state=True) returned, as NAME or $NAME"),
    "task": "a task run id (a UUID), or the name of a variable holding one, as NAME or $NAME",
}


def _lookup(namespace: dict[str, Any], text: str, magic: str, kind: str) -> tuple[str | None, Any]:
    """(variable name or None, what ``text`` names): the variable's value, or the literal."""
    text = text.strip()
    name = text[1:] if text.startswith("$") else text
    if name.isidentifier() and name in namespace:
        return name, namespace[name]
    if text.startswith("$"):
        usage(f"%{magic}: there is no variable {name!r} in this notebook" if name.isidentifier() else
              f"%{magic}: ${name} is not a variable name")
    try:
        return None, UUID(text)
    except ValueError:
        usage(f"%{magic}: the run given is neither a run id nor the name of a variable in this "
              f"notebook. Give {_WHAT_WORKS[kind]}.")


def _task_id_of(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        return UUID(value.strip())
    details = getattr(value, "state_details", None)  # a task's State
    if details is not None and getattr(details, "task_run_id", None) is not None:
        return UUID(str(details.task_run_id))
    if getattr(value, "task_key", None) is not None and getattr(value, "id", None) is not None:  # a TaskRun
        return UUID(str(value.id))
    raise ValueError


def flow_run_id(namespace: dict[str, Any], text: str, magic: str) -> UUID:
    """The flow run ``text`` names (a literal, ``NAME`` or ``$NAME``), or a UsageError saying what works."""
    name, value = _lookup(namespace, text, magic, "flow")
    try:
        return run_id_of(value)
    except (ConfigurationError, ValueError, TypeError, AttributeError):  # said without the value
        usage(f"%{magic}: the variable {name!r} holds a {type(value).__name__}, which names no flow run. "
              f"Give {_WHAT_WORKS['flow']}.")


def task_run_id(namespace: dict[str, Any], text: str, magic: str) -> UUID:
    """The task run ``text`` names (a literal, ``NAME`` or ``$NAME``), or a UsageError saying what works."""
    name, value = _lookup(namespace, text, magic, "task")
    try:
        return _task_id_of(value)
    except (ValueError, TypeError, AttributeError):
        usage(f"%{magic}: the variable {name!r} holds a {type(value).__name__}, which names no task run. "
              f"Give {_WHAT_WORKS['task']}.")
