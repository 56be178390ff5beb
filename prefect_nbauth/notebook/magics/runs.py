"""IPython magics for flow runs: ``%prefect_logs`` and ``%prefect_watch``.

Registered by ``%load_ext prefect_nbauth`` (``magics.load_ipython_extension``).
Like every magic of this package they are ``@no_var_expand``, parse with
``magic_arguments``, sit behind the public API boundary (``@prefect_magics``) and
refuse a mistake with a ``UsageError`` that says what to do.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..._exceptions import PrefectAuthError
from ._base import display, has_widgets, parse, prefect_magics, usage

__all__ = ["PrefectRunMagics"]


@prefect_magics
class PrefectRunMagics(Magics):
    """``%prefect_logs`` and ``%prefect_watch``."""

    @no_var_expand
    @magic_arguments()
    @argument("--flow-run", metavar="ID", action="append", default=[],
              help="a flow run id to follow (repeat for several; default: every run)")
    @argument("--task-run", metavar="ID", action="append", default=[], help="a task run id to follow")
    @argument("--level", metavar="LEVEL", default="INFO",
              help="minimum level: DEBUG, INFO, WARNING, ERROR, CRITICAL (default INFO)")
    @argument("--since", metavar="WHEN",
              help="start that long ago (30s, 10m, 2h, 1d); default: a run's whole history, else now")
    @argument("--max-lines", type=int, default=500, metavar="N", help="lines to keep (1-10000, default 500)")
    @line_magic
    def prefect_logs(self, line: str = "") -> None:
        """Show Prefect logs live: level colours, follow/pause, a text filter.

        Every matching log once and in order, from the logs websocket where the server
        streams logs, else by polling the REST API (the widget says which). Updates at
        most 10 times a second.
        """
        from ...logs import build_log_filter
        from ..widgets.logs import MAX_LINES_LIMIT, LogStreamWidget

        args = parse(self.prefect_logs, line, "prefect_logs")
        if not 1 <= args.max_lines <= MAX_LINES_LIMIT:
            usage(f"--max-lines must be from 1 to {MAX_LINES_LIMIT}.")
        filters = {"flow_run_id": args.flow_run or None, "task_run_id": args.task_run or None,
                   "level": args.level, "since": args.since}
        try:
            build_log_filter(**filters)  # a mistake is reported here, not inside the widget
        except PrefectAuthError as exc:
            usage(f"%prefect_logs: {exc}")
        if not has_widgets(self.shell):
            usage("%prefect_logs shows a live widget and needs a Jupyter front end; in a terminal "
                  "iterate prefect_nbauth.stream_logs(...) instead.")
        display(LogStreamWidget(**filters, max_lines=args.max_lines))

    @no_var_expand
    @magic_arguments()
    @argument("run_id", metavar="RUN_ID", help="the flow run id (or an expression naming a flow run)")
    @argument("--level", metavar="LEVEL", default="INFO", help="minimum log level shown (default INFO)")
    @line_magic
    def prefect_watch(self, line: str = "") -> None:
        """Watch one flow run: name, live state, state timeline, task runs and logs.

        RUN_ID is a flow run id, or the name of a variable holding what ``run_deployment()``
        or ``my_flow(return_state=True)`` returned. The widget stops following once the
        run reaches a final state.
        """
        from ..widgets.run import FlowRunWidget, run_id_of

        args = parse(self.prefect_watch, line, "prefect_watch")
        target: Any = args.run_id
        user_ns = self.shell.user_ns if self.shell is not None else {}
        if target.isidentifier() and target in user_ns:
            target = user_ns[target]
        try:
            run_id = run_id_of(target)
        except PrefectAuthError as exc:
            usage(f"%prefect_watch: {exc}")
        if not has_widgets(self.shell):
            usage("%prefect_watch shows a live widget and needs a Jupyter front end; in a terminal "
                  "use prefect_nbauth.watch(run).wait() and print it.")
        display(FlowRunWidget(run_id, level=args.level))
