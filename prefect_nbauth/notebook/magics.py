"""IPython magics: ``%load_ext prefect_nbauth``.

- ``%prefect_login``   log in: the login form, a prompt, or non-interactively from
  environment variables (``--auth-string-env``, ``--api-key-env``, ``--header-env``,
  ``--from-env``);
- ``%prefect_status``  the auth status widget (updates itself);
- ``%prefect_refresh`` refresh the credential now and check it;
- ``%prefect_logout``  back to the settings before the first login;
- ``%prefect_events``  the live event widget.

A secret is never accepted on a magic's line: IPython writes every line into its
history database (``~/.ipython/profile_default/history.sqlite``) and the notebook
keeps the cell. Such a line is refused, and scrubbed from this session's history.
All magics are ``@no_var_expand``: ``$VAR`` and ``{x}`` reach them literally, so
a variable holding a secret is never expanded into the line.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NoReturn
from urllib.parse import urlsplit

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .._boundary import public
from .._exceptions import ConfigurationError, PrefectAuthError
from .._inputs import check_api_url, check_timeout
from .._secrets import Secret

__all__ = ["PrefectMagics", "load_ipython_extension"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")  # $VAR or ${VAR}: the name, literally
_INPUT_VARS = re.compile(r"^_i(i{0,2}|\d+)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Options that would carry a secret on the line (refused, whatever their spelling).
_SECRET_OPTIONS = ("--auth-string", "--auth_string", "--api-key", "--api_key", "--key", "--password",
                   "--token", "--secret", "--header", "--headers")
_ENV_OPTIONS = ("--auth-string-env", "--api-key-env")

SECRET_ON_LINE = (
    "Refused: do not type a secret on a magic's line: IPython saves every line in its history "
    "database and the notebook keeps the cell (it was scrubbed from this session's history; delete "
    "it from the cell, and rotate it if it was real). Put it in an environment variable and use "
    "--auth-string-env VAR / --api-key-env VAR / --header-env NAME=VAR, or run %prefect_login "
    "alone for the login form."
)


def _var_name(value: str) -> str:
    """``VAR``, ``$VAR`` and ``${VAR}`` all name the variable VAR (the line is not expanded)."""
    match = _ENV_REF.match(value)
    return match.group(1) if match else value


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage(text: str) -> NoReturn:
    raise UsageError(_one_line(text))


def _parse(magic: Callable[..., Any], line: str, name: str) -> Any:
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:
        _usage(f"%{name}: {exc}. See %{name}? for the options.")
    except ValueError as exc:  # unbalanced quotes from arg_split
        _usage(f"%{name}: cannot parse the line ({exc}). See %{name}? for the options.")


def _tokens(line: str) -> list[str]:
    from IPython.utils.process import arg_split  # type: ignore[attr-defined]

    try:
        return arg_split(line, strict=False)
    except ValueError:
        return line.split()


def _has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.username or parts.password)
    except ValueError:
        return False


def _is_url(token: str) -> bool:
    return token.startswith(("http://", "https://"))


def secrets_on_line(line: str) -> list[str]:
    """The tokens of a ``%prefect_login`` line that are (or may well be) secrets."""
    tokens = _tokens(line)
    found: list[str] = []
    takes_value = {"--url", "--workspace", "--timeout", "--header-env", *_ENV_OPTIONS}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=")
        value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else None)
        consumed = 0 if eq else 1
        if token.startswith("-"):
            if name in _SECRET_OPTIONS:
                if value:
                    found.append(value)
                i += 1 + consumed
                continue
            if name in _ENV_OPTIONS and value is not None and not _ENV_NAME.match(_var_name(value)):
                found.append(value)  # a value where a variable NAME belongs
            elif name == "--header-env" and value is not None:
                _, _, var = value.partition("=")
                if var and not _ENV_NAME.match(_var_name(var)):
                    found.append(var)
            elif name == "--url" and value is not None and _has_userinfo(value):
                found.append(value)
            i += 1 + (consumed if name in takes_value else 0)
            continue
        # A positional: an API URL is fine (unless it carries credentials); anything
        # else is most likely "user:password" or a key pasted in.
        if not _is_url(token) or _has_userinfo(token):
            found.append(token)
        i += 1
    found += [t for t in tokens if t.startswith(("pnu_", "pnb_")) and t not in found]
    return found


def scrub_history(shell: Any, secrets: list[str]) -> None:
    """Best effort: remove ``secrets`` from this session's input history (memory and database)."""
    if not secrets:
        return
    variants = set()
    for s in secrets:
        variants.update({s, repr(s)[1:-1], s.replace("'", "\\'"), s.replace('"', '\\"')})
    ordered = sorted((v for v in variants if len(v) >= 3), key=len, reverse=True)

    def clean(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for v in ordered:
            text = text.replace(v, "****")
        return text

    hm = getattr(shell, "history_manager", None)
    if hm is None:
        return
    for lst in (getattr(hm, "input_hist_parsed", None), getattr(hm, "input_hist_raw", None)):
        if lst:
            for i in range(len(lst) - 1, max(-1, len(lst) - 5), -1):
                lst[i] = clean(lst[i])
    for attr in ("_i", "_ii", "_iii", "_i00"):
        if isinstance(getattr(hm, attr, None), str):
            setattr(hm, attr, clean(getattr(hm, attr)))
    ns = getattr(shell, "user_ns", {})
    for key in [k for k in ns if _INPUT_VARS.match(k)]:  # _i, _ii, _iii, _i<N>
        if isinstance(ns[key], str):
            ns[key] = clean(ns[key])
    lock = getattr(hm, "db_input_cache_lock", None)
    try:
        if lock is not None:
            with lock:
                hm.db_input_cache = [(ln, clean(a), clean(b)) for ln, a, b in hm.db_input_cache]
        db = getattr(hm, "db", None)
        session = getattr(hm, "session_number", None)
        if db is not None and session and hasattr(db, "execute"):
            with db:
                rows = db.execute("SELECT line, source, source_raw FROM history WHERE session=?",
                                  (session,)).fetchall()
                for line_no, source, raw in rows:
                    if clean(source) != source or clean(raw) != raw:
                        db.execute("UPDATE history SET source=?, source_raw=? WHERE session=? AND line=?",
                                   (clean(source), clean(raw), session, line_no))
    except Exception:  # noqa: BLE001 - best effort; the refusal itself is what matters
        pass


def _env_value(var: str, flag: str, shell: Any = None) -> Secret:
    """The value of the environment variable named ``var``, as a Secret.

    A name that is not a set variable may be the secret itself, typed where its
    variable's name belongs: it is never repeated in the message, and it is
    scrubbed from the history like any secret on the line.
    """
    name = _var_name(var)
    value = os.environ.get(name)
    if value is None:
        scrub_history(shell, [str(var), name])
        _usage(f"{flag}: no environment variable of the name given is set in this kernel (the "
               "name is not repeated here, in case it was a secret typed in its place; it was "
               "scrubbed from this session's history). Set the variable in the environment "
               "Jupyter starts kernels with (VAR=… jupyter lab), or run %prefect_login alone for "
               "the login form.")
    if value == "":
        _usage(f"{flag} {name}: the environment variable {name} is empty.")
    return Secret(value)


def _timeout_or_usage(value: Any) -> float:
    try:
        return check_timeout(value, "--timeout")
    except ConfigurationError as exc:
        _usage(str(exc))


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return datetime.now(timezone.utc) - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _usage(f"--since {value!r}: give a duration ago (30s, 10m, 2h, 1d) or an ISO time "
               "(2025-01-31T12:00:00Z).")
    return when if when.tzinfo is not None else when.astimezone()  # naive = this machine's time


def _has_widgets(shell: Any) -> bool:
    """Widgets can render only under a kernel (JupyterLab, Notebook, VS Code…), not in a terminal."""
    return getattr(shell, "kernel", None) is not None


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _login_or_usage(**kwargs: Any) -> Any:
    from .._session import login

    try:
        return login(**kwargs)
    except PrefectAuthError as exc:
        _usage(f"Login failed ({type(exc).__name__}): {exc}")


@magics_class
class PrefectMagics(Magics):
    """Log this kernel in to Prefect and watch it; see each magic's ``?`` help."""

    @no_var_expand
    @magic_arguments()
    @argument("url_arg", nargs="?", metavar="URL", help="the API URL (same as --url)")
    @argument("--url", metavar="URL", help="the Prefect API URL, e.g. http://HOST:4200/api")
    @argument("--auth-string-env", metavar="VAR",
              help="log in with the auth string (user:password) in environment variable VAR")
    @argument("--api-key-env", metavar="VAR", help="log in to Prefect Cloud with the API key in VAR")
    @argument("--header-env", metavar="NAME=VAR", action="append", default=[],
              help="send header NAME with the value of VAR (a gateway's token); repeatable")
    @argument("--workspace", metavar="W", help="the Cloud workspace, account/workspace")
    @argument("--persist", action="store_true", help="also save the credential to the Prefect profile")
    @argument("--from-env", action="store_true",
              help="adopt PREFECT_API_URL, PREFECT_API_AUTH_STRING, PREFECT_API_KEY and "
                   "PREFECT_CLIENT_CUSTOM_HEADERS as they are in os.environ now")
    @argument("--no-widget", action="store_true", help="prompt (getpass) instead of showing the form")
    @argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    @line_magic
    @public(lines=("line",))
    def prefect_login(self, line: str = "") -> None:
        """Log this kernel in to Prefect (every client, flow and event stream in it).

        Without a credential option it shows the login form (self-hosted auth string,
        Prefect Cloud API key with a workspace chooser, or gateway headers); in a
        terminal, or with --no-widget, it prompts with getpass. For scripts and CI:

            %prefect_login --url http://HOST:4200/api --auth-string-env PREFECT_AUTH
            %prefect_login --api-key-env PREFECT_KEY --workspace acme/prod
            %prefect_login --url https://prefect.example.com/api --header-env cf-access-token=CF_TOKEN
            %prefect_login --from-env

        Never type a secret on this line: IPython stores every line in its history
        file. Such a line is refused.
        """
        bad = secrets_on_line(line)
        if bad:
            scrub_history(self.shell, bad)
            _usage(SECRET_ON_LINE)
        args = _parse(self.prefect_login, line, "prefect_login")
        if args.url and args.url_arg:
            _usage("Give the API URL once (--url URL or URL), not both.")
        url = args.url or args.url_arg
        if url is not None:
            try:
                url = check_api_url(url)
            except ConfigurationError as exc:
                _usage(f"--url: {exc}")
        args.timeout = _timeout_or_usage(args.timeout)
        credential_flags = [f for f, v in (("--auth-string-env", args.auth_string_env),
                                           ("--api-key-env", args.api_key_env),
                                           ("--header-env", args.header_env)) if v]
        if args.auth_string_env and args.api_key_env:
            _usage("Give either --auth-string-env (self-hosted server) or --api-key-env (Prefect Cloud), "
                   "not both: Prefect would send only the auth string.")
        if args.from_env and (credential_flags or url):
            _usage("--from-env adopts the URL and credential from the environment; do not combine it "
                   f"with {', '.join(credential_flags + (['--url'] if url else []))}.")
        if args.no_widget and (credential_flags or args.from_env):
            _usage("--no-widget is for the interactive prompt; with "
                   f"{', '.join(credential_flags or ['--from-env'])} nothing is asked. Drop one of them.")
        if args.workspace and not (args.api_key_env or args.from_env or not credential_flags):
            _usage("--workspace is for Prefect Cloud: use it with --api-key-env VAR.")

        if args.from_env:
            self._login_from_env(args)
            return
        if credential_flags:
            headers = {}
            for spec in args.header_env:
                name, eq, var = spec.partition("=")
                if not eq or not name or not var:
                    _usage(f"--header-env {spec}: write NAME=VAR, e.g. --header-env cf-access-token=CF_TOKEN "
                           "(VAR is an environment variable holding the value).")
                headers[name] = _env_value(var, "--header-env", self.shell)
            status = _login_or_usage(
                api_url=url,
                auth_string=(_env_value(args.auth_string_env, "--auth-string-env", self.shell)
                             if args.auth_string_env else None),
                api_key=_env_value(args.api_key_env, "--api-key-env", self.shell) if args.api_key_env else None,
                headers=headers or None,
                workspace=args.workspace, persist=args.persist, timeout=args.timeout,
            )
            print(status)
            return
        if _has_widgets(self.shell) and not args.no_widget:
            from .widgets import LoginWidget

            _display(LoginWidget(api_url=url, workspace=args.workspace, persist=args.persist,
                                 timeout=args.timeout))
            return
        self._prompt_login(url, args)

    def _login_from_env(self, args: Any) -> None:
        env = os.environ
        auth_string = Secret(env["PREFECT_API_AUTH_STRING"]) if env.get("PREFECT_API_AUTH_STRING") else None
        api_key = Secret(env["PREFECT_API_KEY"]) if env.get("PREFECT_API_KEY") else None
        raw_headers = Secret(env["PREFECT_CLIENT_CUSTOM_HEADERS"]) if env.get("PREFECT_CLIENT_CUSTOM_HEADERS") else None
        if auth_string and api_key:
            _usage("--from-env: both PREFECT_API_AUTH_STRING and PREFECT_API_KEY are set; Prefect would "
                   "send only the auth string. Unset the one you do not mean.")
        headers: Any = None
        if raw_headers:
            try:
                headers = json.loads(raw_headers.reveal())
            except ValueError:
                headers = None
            if isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values()):
                headers = {n: Secret(v) for n, v in headers.items()}
            else:
                _usage("--from-env: PREFECT_CLIENT_CUSTOM_HEADERS must be a JSON object of strings, "
                       'e.g. {"cf-access-token": "…"}.')
        if not (auth_string or api_key or headers):
            _usage("--from-env found no credential: none of PREFECT_API_AUTH_STRING, PREFECT_API_KEY, "
                   "PREFECT_CLIENT_CUSTOM_HEADERS is set in this kernel's environment.")
        if args.workspace and not api_key:
            _usage("--workspace is for Prefect Cloud, and PREFECT_API_KEY is not set.")
        status = _login_or_usage(
            api_url=env.get("PREFECT_API_URL") or None, auth_string=auth_string, api_key=api_key,
            headers=headers, workspace=args.workspace, persist=args.persist, timeout=args.timeout)
        print(status)

    def _prompt_login(self, url: str | None, args: Any) -> None:
        from .._inputs import is_cloud_url
        from .._session import api_url_in_force
        from .._workspaces import cloud_api_url, list_workspaces

        cloud = cloud_api_url()
        try:
            if url is None:
                in_force = api_url_in_force()
                answer = input(f"Prefect API URL [{in_force or 'Prefect Cloud'}]: ").strip()
                url = answer or in_force or None
                if url is not None:
                    try:
                        url = check_api_url(url)
                    except ConfigurationError as exc:
                        _usage(str(exc))
            if url is None or is_cloud_url(url, cloud):
                key = Secret(getpass.getpass("Prefect Cloud API key (pnu_… or pnb_…): "))
                workspace = args.workspace
                if not workspace:
                    try:
                        handles = list_workspaces(key, timeout=args.timeout)
                    except PrefectAuthError as exc:
                        _usage(f"Login failed ({type(exc).__name__}): {exc}")
                    if len(handles) > 1:
                        print("This key can use:", ", ".join(handles))
                        workspace = input("Workspace: ").strip() or None
                status = _login_or_usage(api_url=url or cloud, api_key=key, workspace=workspace,
                                         persist=args.persist, timeout=args.timeout)
            else:
                secret = Secret(getpass.getpass("Auth string (user:password): "))
                status = _login_or_usage(api_url=url, auth_string=secret, persist=args.persist,
                                         timeout=args.timeout)
        except StdinNotImplementedError:
            _usage("This front end cannot prompt for input. Use --auth-string-env VAR or --api-key-env VAR, "
                   "or the login form (%prefect_login without --no-widget).")
        print(status)

    @no_var_expand
    @magic_arguments()
    @argument("--no-check", action="store_true", help="do not ask the server (version, acceptance)")
    @argument("--text", action="store_true", help="print the text summary instead of the widget")
    @line_magic
    @public(lines=("line",))
    def prefect_status(self, line: str = "") -> None:
        """Show what Prefect in this kernel sends: mode, API URL, identity, where each value came
        from, server version, expiry, warnings; with Refresh and Log out buttons. The widget
        updates itself when the credential changes (login, refresh, logout in another cell).
        """
        args = _parse(self.prefect_status, line, "prefect_status")
        if _has_widgets(self.shell) and not args.text:
            from .widgets import AuthStatusWidget

            _display(AuthStatusWidget(check_server=not args.no_check))
            return
        from .._session import status

        print(status(check_server=not args.no_check))

    @no_var_expand
    @magic_arguments()
    @line_magic
    @public(lines=("line",))
    def prefect_refresh(self, line: str = "") -> None:
        """Refresh the credential now (rotating tokens are fetched again) and check it."""
        _parse(self.prefect_refresh, line, "prefect_refresh")
        from .._session import refresh

        try:
            print(refresh())
        except PrefectAuthError as exc:
            _usage(f"Refresh failed ({type(exc).__name__}): {exc}")

    @no_var_expand
    @magic_arguments()
    @argument("--forget", action="store_true",
              help="also remove the credential that --persist saved to the Prefect profile")
    @line_magic
    @public(lines=("line",))
    def prefect_logout(self, line: str = "") -> None:
        """Go back to exactly the settings in force before the first login."""
        args = _parse(self.prefect_logout, line, "prefect_logout")
        from .._session import logout

        try:
            print(logout(forget=args.forget))
        except PrefectAuthError as exc:
            _usage(f"Logout failed ({type(exc).__name__}): {exc}")

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
    @public(lines=("line",))
    def prefect_events(self, line: str = "") -> None:
        """Show a live table of the newest Prefect events (with pause, clear and filters).

        Streaming runs on a background thread; the table updates at most 10 times a second.
        """
        from .widgets.events import MAX_ROWS_LIMIT, EventStreamWidget

        args = _parse(self.prefect_events, line, "prefect_events")
        if not 1 <= args.max_rows <= MAX_ROWS_LIMIT:
            _usage(f"--max-rows must be from 1 to {MAX_ROWS_LIMIT}.")
        since = _parse_since(args.since)
        if not _has_widgets(self.shell):
            _usage("%prefect_events shows a live widget and needs a Jupyter front end (JupyterLab, "
                   "Notebook, VS Code); in a terminal use prefect_nbauth's event stream directly.")
        _display(EventStreamWidget(prefix=args.prefix or None, resource=args.resource or None,
                                   since=since, max_rows=args.max_rows))


    @no_var_expand
    @magic_arguments()
    @argument("url_arg", nargs="?", metavar="URL",
              help="probe this API URL from outside instead (the credential is never sent to it)")
    @argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")
    @line_magic
    @public(lines=("line",))
    def prefect_audit(self, line: str = "") -> None:
        """Audit the Prefect API this kernel talks to: does it really refuse what it should?

        REST and each event websocket without credentials, with a wrong one and with yours;
        endpoints open without auth; plain http, TLS verification, the auth mode the server
        advertises; known auth defects of its version. Shown as a table (text elsewhere).
        """
        args = _parse(self.prefect_audit, line, "prefect_audit")
        if args.url_arg and (_has_userinfo(args.url_arg) or not _is_url(args.url_arg)):
            scrub_history(self.shell, [args.url_arg])
            _usage("Refused: give %prefect_audit an http(s) API URL without credentials in it (a "
                   "password in the URL lands in the history file; it was scrubbed from this "
                   "session's history: rotate it if it was real). Log in first, then run "
                   "%prefect_audit alone.")
        args.timeout = _timeout_or_usage(args.timeout)
        from ..auditing import audit

        try:
            report = audit(args.url_arg, timeout=args.timeout)
        except PrefectAuthError as exc:
            _usage(f"Audit failed ({type(exc).__name__}): {exc}")
        _display(report)


#: Every Magics class the extension registers; unloading removes exactly their magics.
MAGICS: tuple[type[Magics], ...] = (PrefectMagics,)


def _all_magics() -> tuple[type[Magics], ...]:
    from .magics_runs import RunMagics  # %prefect_logs, %prefect_watch

    return (*MAGICS, RunMagics)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext prefect_nbauth``); loading again is harmless."""
    for magics in _all_magics():
        ipython.register_magics(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext prefect_nbauth``: remove the magics again (``%load_ext`` brings them back)."""
    manager = ipython.magics_manager
    for magics in _all_magics():
        for kind, names in magics.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)
        manager.registry.pop(magics.__name__, None)
