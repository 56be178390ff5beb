"""The session magics: log this kernel in, see what it sends, refresh, log out.

- ``%prefect_login``   log in: the login form, a prompt, or non-interactively from
  environment variables (``--auth-string-env``, ``--api-key-env``, ``--header-env``,
  ``--from-env``);
- ``%prefect_status``  the auth status widget (updates itself);
- ``%prefect_refresh`` refresh the credential now and check it;
- ``%prefect_logout``  back to the settings before the first login.

A secret is never accepted on the line (see :mod:`._secret_lines`).
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from IPython.core.error import StdinNotImplementedError
from IPython.core.magic import Magics, line_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..._exceptions import ConfigurationError, PrefectAuthError
from ..._inputs import check_api_url
from ..._secrets import Secret
from .._login_origin import MAGIC, via
from ._base import display, has_widgets, parse, prefect_magics, timeout_or_usage, usage
from ._secret_lines import SECRET_ON_LINE, env_value, scrub_history, secrets_on_line

__all__ = ["PrefectSessionMagics"]


def _login_or_usage(**kwargs: Any) -> Any:
    from ...session import login

    try:
        with via(MAGIC):
            return login(**kwargs)
    except PrefectAuthError as exc:
        usage(f"Login failed ({type(exc).__name__}): {exc}")


def _checked_url(args: Any) -> str | None:
    """The API URL given as --url or as the positional, checked."""
    if args.url and args.url_arg:
        usage("Give the API URL once (--url URL or URL), not both.")
    url = args.url or args.url_arg
    if url is None:
        return None
    try:
        return check_api_url(url)
    except ConfigurationError as exc:
        usage(f"--url: {exc}")


def _credential_flags(args: Any, url: str | None) -> list[str]:
    """The credential options given, after refusing combinations that cannot mean anything."""
    flags = [f for f, v in (("--auth-string-env", args.auth_string_env), ("--api-key-env", args.api_key_env),
                            ("--header-env", args.header_env)) if v]
    if args.auth_string_env and args.api_key_env:
        usage("Give either --auth-string-env (self-hosted server) or --api-key-env (Prefect Cloud), "
              "not both: Prefect would send only the auth string.")
    if args.from_env and (flags or url):
        usage("--from-env adopts the URL and credential from the environment; do not combine it "
              f"with {', '.join(flags + (['--url'] if url else []))}.")
    if args.no_widget and (flags or args.from_env):
        usage("--no-widget is for the interactive prompt; with "
              f"{', '.join(flags or ['--from-env'])} nothing is asked. Drop one of them.")
    if args.workspace and not (args.api_key_env or args.from_env or not flags):
        usage("--workspace is for Prefect Cloud: use it with --api-key-env VAR.")
    return flags


@prefect_magics
class PrefectSessionMagics(Magics):
    """Log this kernel in to Prefect and watch its credential; see each magic's ``?`` help."""

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
    @argument("--sso", metavar="ISSUER", help="sign in as yourself at this OpenID provider (device sign-in), "
                                              "for a Prefect behind an SSO gateway")
    @argument("--client-id", metavar="ID", help="with --sso: the public client registered for the device sign-in")
    @argument("--scope", metavar="SCOPE", action="append", default=[],
              help="with --sso: a scope to ask for instead of openid profile email offline_access; repeatable")
    @argument("--persist-file", metavar="PATH",
              help="with --sso: keep the refresh token in this file (mode 0600) instead of the secret store")
    @argument("--no-widget", action="store_true", help="prompt (getpass) instead of showing the form")
    @argument("--hub", action="store_true",
              help="under JupyterHub: log in as the person signed in to the Hub, with the access "
                   "token the Hub keeps fresh, sent to the gateway at the API URL")
    @argument("--hub-header", metavar="NAME", default="Authorization",
              help="with --hub: the header the gateway reads the token from (default Authorization: Bearer)")
    @argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    @line_magic
    def prefect_login(self, line: str = "") -> None:
        """Log this kernel in to Prefect (every client, flow and event stream in it).

        Without a credential option it shows the login form (self-hosted auth string,
        Prefect Cloud API key with a workspace chooser, gateway headers, or Sign in with
        SSO, filled in from PREFECT_NBAUTH_SSO_ISSUER and PREFECT_NBAUTH_SSO_CLIENT_ID);
        in a terminal, or with --no-widget, it prompts with getpass. For scripts and CI:

            %prefect_login --url http://HOST:4200/api --auth-string-env PREFECT_AUTH
            %prefect_login --api-key-env PREFECT_KEY --workspace acme/prod
            %prefect_login --url https://prefect.example.com/api --header-env cf-access-token=CF_TOKEN
            %prefect_login --from-env
            %prefect_login --hub       # under JupyterHub: as the person signed in to the Hub
            %prefect_login --url https://prefect.example.com/api --sso https://login.example.com --client-id prefect

With --sso it signs you in at your organisation's identity provider (OpenID device
sign-in): it shows a link and a code, you approve on any device, and the cell does
not wait meanwhile. --persist keeps the refresh token in the platform's secret store
(--persist-file PATH: in that file) so a new kernel signs in without asking.

        Never type a secret on this line: IPython stores every line in its history
        file. Such a line is refused.
        """
        bad = secrets_on_line(line)
        if bad:
            scrub_history(self.shell, bad)
            usage(SECRET_ON_LINE)
        args = parse(self.prefect_login, line, "prefect_login")
        url = _checked_url(args)
        args.timeout = timeout_or_usage(args.timeout)
        credential_flags = _credential_flags(args, url)
        if args.hub:
            self._login_with_hub(url, args, credential_flags)
            return
        if args.sso or args.client_id or args.persist_file or args.scope:
            self._sso_login(url, args, credential_flags)
            return
        if args.from_env:
            self._login_from_env(args)
            return
        if credential_flags:
            self._login_with_env_vars(url, args)
            return
        if has_widgets(self.shell) and not args.no_widget:
            from ..widgets.login import LoginWidget

            display(LoginWidget(api_url=url, workspace=args.workspace, persist=args.persist,
                                timeout=args.timeout))
            return
        self._prompt_login(url, args)

    def _sso_login(self, url: str | None, args: Any, credential_flags: list[str]) -> None:
        """--sso ISSUER --client-id ID: the device sign-in, as a widget (or printed, then waited for)."""
        from ...session import DeviceSignIn

        if not (args.sso and args.client_id):
            usage("Give both --sso ISSUER (the identity provider's URL) and --client-id ID (its public client).")
        if url is None:
            usage("--sso needs the Prefect API URL behind the SSO gateway: --url https://HOST/api.")
        if credential_flags or args.from_env or args.workspace:
            usage("--sso signs you in at your identity provider; do not combine it with "
                  f"{', '.join(credential_flags or ['--from-env' if args.from_env else '--workspace'])}.")
        persist: Any = args.persist_file or bool(args.persist)
        try:
            provider = DeviceSignIn(args.sso, args.client_id, persist=persist, timeout=args.timeout,
                                    **({"scopes": args.scope} if args.scope else {}))
        except PrefectAuthError as exc:
            usage(f"{type(exc).__name__}: {exc}")
        if has_widgets(self.shell) and not args.no_widget:
            from ..widgets.sso import DeviceSignInWidget

            display(DeviceSignInWidget(url, provider=provider, timeout=args.timeout))
            return
        print(_login_or_usage(api_url=url, sso=provider, timeout=args.timeout))  # prints the link and code once

    def _login_with_env_vars(self, url: str | None, args: Any) -> None:
        """--auth-string-env / --api-key-env / --header-env: each names a variable, never a value."""
        headers = {}
        for spec in args.header_env:
            name, eq, var = spec.partition("=")
            if not eq or not name or not var:
                usage(f"--header-env {spec}: write NAME=VAR, e.g. --header-env cf-access-token=CF_TOKEN "
                      "(VAR is an environment variable holding the value).")
            headers[name] = env_value(var, "--header-env", self.shell)
        status = _login_or_usage(
            api_url=url,
            auth_string=(env_value(args.auth_string_env, "--auth-string-env", self.shell)
                         if args.auth_string_env else None),
            api_key=env_value(args.api_key_env, "--api-key-env", self.shell) if args.api_key_env else None,
            headers=headers or None,
            workspace=args.workspace, persist=args.persist, timeout=args.timeout,
        )
        print(status)

    def _login_with_hub(self, url: str | None, args: Any, credential_flags: list[str]) -> None:
        """--hub: the Hub's access token for this server's owner, as a gateway's bearer token."""
        from ...session import login_with_hub

        if args.persist:
            usage("--persist is not for --hub: the Hub's token lives minutes, and every kernel asks the Hub "
                  "for a fresh one itself.")
        if credential_flags or args.from_env or args.workspace:
            usage("--hub logs in with the Hub's token for you; do not combine it with "
                  f"{', '.join(credential_flags or ['--from-env' if args.from_env else '--workspace'])}.")
        try:
            status = login_with_hub(url, header=args.hub_header, timeout=args.timeout)
        except PrefectAuthError as exc:
            usage(f"Login failed ({type(exc).__name__}): {exc}")
        print(status)

    def _login_from_env(self, args: Any) -> None:
        env = os.environ
        auth_string = Secret(env["PREFECT_API_AUTH_STRING"]) if env.get("PREFECT_API_AUTH_STRING") else None
        api_key = Secret(env["PREFECT_API_KEY"]) if env.get("PREFECT_API_KEY") else None
        raw_headers = Secret(env["PREFECT_CLIENT_CUSTOM_HEADERS"]) if env.get("PREFECT_CLIENT_CUSTOM_HEADERS") else None
        if auth_string and api_key:
            usage("--from-env: both PREFECT_API_AUTH_STRING and PREFECT_API_KEY are set; Prefect would "
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
                usage("--from-env: PREFECT_CLIENT_CUSTOM_HEADERS must be a JSON object of strings, "
                      'e.g. {"cf-access-token": "…"}.')
        if not (auth_string or api_key or headers):
            usage("--from-env found no credential: none of PREFECT_API_AUTH_STRING, PREFECT_API_KEY, "
                  "PREFECT_CLIENT_CUSTOM_HEADERS is set in this kernel's environment.")
        if args.workspace and not api_key:
            usage("--workspace is for Prefect Cloud, and PREFECT_API_KEY is not set.")
        status = _login_or_usage(
            api_url=env.get("PREFECT_API_URL") or None, auth_string=auth_string, api_key=api_key,
            headers=headers, workspace=args.workspace, persist=args.persist, timeout=args.timeout)
        print(status)

    def _prompt_login(self, url: str | None, args: Any) -> None:
        from ..._inputs import is_cloud_url
        from ...session import api_url_in_force, cloud_api_url, list_workspaces

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
                        usage(str(exc))
            if url is None or is_cloud_url(url, cloud):
                key = Secret(getpass.getpass("Prefect Cloud API key (pnu_… or pnb_…): "))
                workspace = args.workspace
                if not workspace:
                    try:
                        handles = list_workspaces(key, timeout=args.timeout)
                    except PrefectAuthError as exc:
                        usage(f"Login failed ({type(exc).__name__}): {exc}")
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
            usage("This front end cannot prompt for input. Use --auth-string-env VAR or --api-key-env VAR, "
                  "or the login form (%prefect_login without --no-widget).")
        print(status)

    @no_var_expand
    @magic_arguments()
    @argument("--no-check", action="store_true", help="do not ask the server (version, acceptance)")
    @argument("--text", action="store_true", help="print the text summary instead of the widget")
    @line_magic
    def prefect_status(self, line: str = "") -> None:
        """Show what Prefect in this kernel sends: mode, API URL, identity, where each value came
        from, server version, expiry, warnings; with Refresh and Log out buttons. The widget
        updates itself when the credential changes (login, refresh, logout in another cell).
        """
        args = parse(self.prefect_status, line, "prefect_status")
        if has_widgets(self.shell) and not args.text:
            from ..widgets.status import AuthStatusWidget

            display(AuthStatusWidget(check_server=not args.no_check))
            return
        from ...session import status

        print(status(check_server=not args.no_check))

    @no_var_expand
    @magic_arguments()
    @line_magic
    def prefect_refresh(self, line: str = "") -> None:
        """Refresh the credential now (rotating tokens are fetched again) and check it."""
        parse(self.prefect_refresh, line, "prefect_refresh")
        from ...session import refresh

        try:
            print(refresh())
        except PrefectAuthError as exc:
            usage(f"Refresh failed ({type(exc).__name__}): {exc}")

    @no_var_expand
    @magic_arguments()
    @argument("--forget", action="store_true",
              help="also remove the credential that --persist saved to the Prefect profile")
    @line_magic
    def prefect_logout(self, line: str = "") -> None:
        """Go back to exactly the settings in force before the first login."""
        args = parse(self.prefect_logout, line, "prefect_logout")
        from ...session import logout

        try:
            print(logout(forget=args.forget))
        except PrefectAuthError as exc:
            usage(f"Logout failed ({type(exc).__name__}): {exc}")
