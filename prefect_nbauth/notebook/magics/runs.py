"""IPython magics for flow runs: ``%prefect_logs`` and ``%prefect_watch``.

Registered by ``%load_ext prefect_nbauth`` (``magics.load_ipython_extension``).
Like every magic of this package they are ``@no_var_expand``, parse with
``magic_arguments``, sit behind the public API boundary (``@prefect_magics``) and
refuse a mistake with a ``UsageError`` that says what to do.
"""

from __future__ import annotations

from IPython.core.magic import Magics, line_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..._exceptions import PrefectAuthError
from ._base import display, has_widgets, parse, prefect_magics, usage
from ._run_ids import flow_run_id, task_run_id

__all__ = ["PrefectRunMagics"]


@prefect_magics
class PrefectRunMagics(Magics):
    """``%prefect_logs`` and ``%prefect_watch``."""

    @no_var_expand
    @magic_arguments()
    @argument("--flow-run", metavar="RUN", action="append", default=[],
              help="a flow run to follow: its id, or a variable holding it (NAME or $NAME); repeat for "
                   "several (default: every run)")
    @argument("--task-run", metavar="RUN", action="append", default=[],
              help="a task run to follow: its id, or a variable holding it (NAME or $NAME)")
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
        namespace = self.shell.user_ns if self.shell is not None else {}
        flow_runs = [flow_run_id(namespace, text, "prefect_logs") for text in args.flow_run]
        task_runs = [task_run_id(namespace, text, "prefect_logs") for text in args.task_run]
        filters = {"flow_run_id": flow_runs or None, "task_run_id": task_runs or None,
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
    @argument("run_id", metavar="RUN", help="the flow run: its id, or a variable holding it (NAME or $NAME)")
    @argument("--level", metavar="LEVEL", default="INFO", help="minimum log level shown (default INFO)")
    @line_magic
    def prefect_watch(self, line: str = "") -> None:
        """Watch one flow run: name, live state, state timeline, task runs and logs.

        RUN is a flow run id, or the name of a variable (``NAME`` or ``$NAME``) holding
        one or holding what ``run_deployment()`` or ``my_flow(return_state=True)``
        returned. The widget stops following once the run reaches a final state.
        """
        from ..widgets.run import FlowRunWidget

        args = parse(self.prefect_watch, line, "prefect_watch")
        run_id = flow_run_id(self.shell.user_ns if self.shell is not None else {}, args.run_id, "prefect_watch")
        if not has_widgets(self.shell):
            usage("%prefect_watch shows a live widget and needs a Jupyter front end; in a terminal "
                  "use prefect_nbauth.watch(run).wait() and print it.")
        display(FlowRunWidget(run_id, level=args.level))
