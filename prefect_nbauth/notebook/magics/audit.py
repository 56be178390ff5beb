"""``%prefect_audit``: does the API this kernel talks to really refuse what it should?"""

from __future__ import annotations

from IPython.core.magic import Magics, line_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..._exceptions import PrefectAuthError
from ._base import display, parse, prefect_magics, timeout_or_usage, usage
from ._secret_lines import has_userinfo, is_url, scrub_history

__all__ = ["PrefectAuditMagics"]


@prefect_magics
class PrefectAuditMagics(Magics):
    """``%prefect_audit``."""

    @no_var_expand
    @magic_arguments()
    @argument("url_arg", nargs="?", metavar="URL",
              help="probe this API URL from outside instead (the credential is never sent to it)")
    @argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")
    @line_magic
    def prefect_audit(self, line: str = "") -> None:
        """Audit the Prefect API this kernel talks to: does it really refuse what it should?

        REST and each event websocket without credentials, with a wrong one and with yours;
        endpoints open without auth; plain http, TLS verification, the auth mode the server
        advertises; known auth defects of its version. Shown as a table (text elsewhere).
        """
        args = parse(self.prefect_audit, line, "prefect_audit")
        if args.url_arg and (has_userinfo(args.url_arg) or not is_url(args.url_arg)):
            scrub_history(self.shell, [args.url_arg])
            usage("Refused: give %prefect_audit an http(s) API URL without credentials in it (a "
                  "password in the URL lands in the history file; it was scrubbed from this "
                  "session's history: rotate it if it was real). Log in first, then run "
                  "%prefect_audit alone.")
        args.timeout = timeout_or_usage(args.timeout)
        from ...auditing import audit

        try:
            report = audit(args.url_arg, timeout=args.timeout)
        except PrefectAuthError as exc:
            usage(f"Audit failed ({type(exc).__name__}): {exc}")
        display(report)
