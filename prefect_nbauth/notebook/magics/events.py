"""``%prefect_events``: the live event table."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from IPython.core.magic import Magics, line_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ._base import display, has_widgets, parse, prefect_magics, usage

__all__ = ["PrefectEventMagics", "parse_since"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str | None) -> datetime | None:
    """``--since``: a duration ago (30s, 10m, 2h, 1d) or an ISO time; naive means this machine's time."""
    if value is None:
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return datetime.now(timezone.utc) - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        usage(f"--since {value!r}: give a duration ago (30s, 10m, 2h, 1d) or an ISO time "
              "(2025-01-31T12:00:00Z).")
    return when if when.tzinfo is not None else when.astimezone()


@prefect_magics
class PrefectEventMagics(Magics):
    """``%prefect_events``."""

    @no_var_expand
    @magic_arguments()
    @argument("--prefix", nargs="+", action="extend", default=[], metavar="P",
              help="event-name prefixes, e.g. prefect.flow-run. (default: all events)")
    @argument("--resource", nargs="+", action="extend", default=[], metavar="R",
              help="resource ids (prefect.resource.id), * wildcards allowed (default: all)")
    @argument("--since", metavar="WHEN",
              help="also show events since then: a duration ago (30s, 10m, 2h, 1d) or an ISO time")
    @argument("--max-rows", type=int, default=20, metavar="N", help="rows to keep (1-1000, default 20)")
    @line_magic
    def prefect_events(self, line: str = "") -> None:
        """Show a live table of the newest Prefect events (with pause, clear and filters).

        Streaming runs on a background thread; the table updates at most 10 times a second.
        """
        from ..widgets.events import MAX_ROWS_LIMIT, EventStreamWidget

        args = parse(self.prefect_events, line, "prefect_events")
        if not 1 <= args.max_rows <= MAX_ROWS_LIMIT:
            usage(f"--max-rows must be from 1 to {MAX_ROWS_LIMIT}.")
        since = parse_since(args.since)
        if not has_widgets(self.shell):
            usage("%prefect_events shows a live widget and needs a Jupyter front end (JupyterLab, "
                  "Notebook, VS Code); in a terminal use prefect_nbauth's event stream directly.")
        display(EventStreamWidget(prefix=args.prefix or None, resource=args.resource or None,
                                   since=since, max_rows=args.max_rows))
