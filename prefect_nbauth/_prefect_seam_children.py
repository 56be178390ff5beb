"""Where prefect_nbauth reaches into how Prefect hands settings to the processes it starts.

See :mod:`._prefect_seam` for the rules every reach into Prefect follows (installed
once per class, callbacks read from a module slot at call time, ``__wrapped__`` kept);
``tests/unit/test_prefect_seam.py`` fails loudly if a Prefect upgrade moves any of this.
What the filters decide is :mod:`._children`'s.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install_child_filters"]


# ------------------------------------------------------- what Prefect's children receive
#
# ``ProcessPoolTaskRunner.submit`` builds each task's environment as
# ``settings.to_environment_variables(exclude_unset=True) | os.environ`` and the worker
# applies it to its ``os.environ`` while the task runs, so everything the task starts
# inherits the settings, the credential included. The worker does not need it there: it
# authenticates with the settings context it receives, pickled, over the pool's pipe
# (``serialize_context()`` -> ``hydrated_context``). ``Task.delay()``/``apply_async()``
# write ``serialize_context()`` into result storage (a file under PREFECT_HOME by
# default) for a task worker, which reads it back with ``read_parameters``.

_CHILDREN = "__prefect_nbauth_children__"
# The filters in force: a task's environment, a context to store, a context read back.
_CHILD_FILTERS: list[Any] = [lambda env: env, lambda context: context, lambda context: context]


def install_child_filters(environment: Any, stored_context: Any, loaded_context: Any) -> None:
    """``environment(env) -> env`` for a process-pool task's environment,
    ``stored_context(context) -> context`` for the context ``Task.delay()`` stores,
    ``loaded_context(context) -> context`` for one a task worker in this process reads back.

    Installed once per class; the filters are read from a module slot at call time. A
    piece this Prefect lacks is skipped (``tests/unit/test_prefect_seam.py`` says so loudly).
    """
    _CHILD_FILTERS[:] = [environment, stored_context, loaded_context]
    import importlib

    # Modules and attributes replaced by name: typed as Any on purpose (checked at run time).
    tasks_module: Any = importlib.import_module("prefect.tasks")
    task_worker_module: Any = importlib.import_module("prefect.task_worker")
    # ProcessPoolTaskRunner is not in every supported Prefect (3.4.8 has none).
    ProcessPoolTaskRunner: Any = getattr(importlib.import_module("prefect.task_runners"),
                                         "ProcessPoolTaskRunner", None)
    resolve = getattr(ProcessPoolTaskRunner, "_resolve_futures_and_submit", None)
    if resolve is not None and not getattr(resolve, _CHILDREN, False):
        def _resolve_futures_and_submit(self: Any, *args: Any, __original: Any = resolve,
                                        **kwargs: Any) -> Any:
            if kwargs.get("env") is not None:
                kwargs["env"] = _CHILD_FILTERS[0](kwargs["env"])  # a new dict: never mutated
            return __original(self, *args, **kwargs)

        setattr(_resolve_futures_and_submit, _CHILDREN, True)
        _resolve_futures_and_submit.__wrapped__ = resolve  # type: ignore[attr-defined]
        ProcessPoolTaskRunner._resolve_futures_and_submit = _resolve_futures_and_submit

        submit = ProcessPoolTaskRunner.submit

        def submit_(self: Any, *args: Any, __original: Any = submit, **kwargs: Any) -> Any:
            try:
                return __original(self, *args, **kwargs)
            finally:
                # The runner caches the environment it built (raw credential included)
                # for its next submit: keep only the filtered one.
                cached = getattr(self, "_cached_env", None)
                if cached is not None:
                    self._cached_env = _CHILD_FILTERS[0](cached)

        setattr(submit_, _CHILDREN, True)
        submit_.__wrapped__ = submit  # type: ignore[attr-defined]
        ProcessPoolTaskRunner.submit = submit_

    # prefect.tasks imports serialize_context by name and calls it only to store a deferred
    # task's context (Task.delay / apply_async); other callers (the process pool,
    # with_context, subprocess flow runs) hand it to a child over a pipe and are not touched.
    serialize = getattr(tasks_module, "serialize_context", None)
    if serialize is not None and not getattr(serialize, _CHILDREN, False):
        def serialize_context(*args: Any, __original: Any = serialize, **kwargs: Any) -> Any:
            return _CHILD_FILTERS[1](__original(*args, **kwargs))

        setattr(serialize_context, _CHILDREN, True)
        serialize_context.__wrapped__ = serialize  # type: ignore[attr-defined]
        tasks_module.serialize_context = serialize_context

    read = getattr(task_worker_module, "read_parameters", None)  # called by name in the worker
    if read is not None and not getattr(read, _CHILDREN, False):
        async def read_parameters(*args: Any, __original: Any = read, **kwargs: Any) -> Any:
            data = await __original(*args, **kwargs)
            if isinstance(data, dict) and isinstance(data.get("context"), dict):
                data = {**data, "context": _CHILD_FILTERS[2](data["context"])}
            return data

        setattr(read_parameters, _CHILDREN, True)
        read_parameters.__wrapped__ = read  # type: ignore[attr-defined]
        task_worker_module.read_parameters = read_parameters
