"""The checks behind status(): small independent rules over one set of facts.

:mod:`._diagnosis` gathers :class:`Facts` once (what Prefect in this process sends,
where each value came from, what the server answered); every rule here reads
them and yields warnings, each a sentence that says what to do. A rule never
depends on another's result, so adding a check is adding one function to
:data:`RULES`, whose order is the order the warnings are shown in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from .. import _versions
from .._exceptions import ConfigurationError
from .._inputs import check_api_key, check_auth_string, is_cloud_url, plain_http_warning
from ._auth_status import AuthMode

__all__ = ["RULES", "Facts", "Origin", "warnings_for"]


@dataclass(frozen=True)
class Origin:
    """Where one setting's value in force came from, and what is wrong with that."""

    source: str | None  # shown in AuthStatus.sources; None: the setting is not in force
    warning: str | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the rules may look at, read once under the session lock."""

    settings: Any  # the Prefect Settings in force
    url: str | None
    auth_string: str | None
    api_key: str | None
    custom_headers: dict[str, str]
    cloud_api_url: str
    mode: AuthMode
    auth_header_name: str | None  # a custom header named Authorization (any case)
    login: Any  # the login in force (_state.Login), or None
    ours: bool  # the settings in force are the ones login() installed
    replaced: bool  # a login exists but something replaced its settings
    local_context: bool  # inside a flow run, use_profile() or temporary_settings()
    origins: dict[str, Origin] = field(default_factory=dict)
    expires_at: datetime | None = None  # the earliest known expiry of a token in force
    header_subject: str | None = None  # email/sub of a JWT in the custom headers
    rotating: bool = False
    server: dict[str, Any] | str | None = None  # the probe's answer; a str is a failure; None: not asked
    server_version: str | None = None
    server_auth: str | None = None

    @property
    def our_login(self) -> Any:
        """The login, when the settings in force are the ones it installed; else None."""
        return self.login if self.ours else None

    def source_of(self, name: str) -> str:
        origin = self.origins.get(name)
        return origin.source if origin and origin.source else "set"


Rule = Callable[[Facts], Iterable[str]]


def settings_replaced(f: Facts) -> Iterator[str]:
    if f.replaced:
        yield ("Something replaced the settings that login() installed (for example "
               "prefect.context.refresh_global_settings_context()); Prefect no longer uses the "
               "login. Log in again.")


def inside_local_context(f: Facts) -> Iterator[str]:
    if f.local_context:
        yield ("This code runs inside a Prefect settings context (a flow run, use_profile() or "
               "temporary_settings()); shown are that context's settings, and login() changes "
               "only the process-wide ones used outside it.")


def sources_out_of_step(f: Facts) -> Iterator[str]:
    """Values set after ``import prefect`` (which reads settings once) and so ignored."""
    for origin in f.origins.values():
        if origin.warning:
            yield origin.warning


def auth_string_and_api_key(f: Facts) -> Iterator[str]:
    if f.auth_string and f.api_key:
        yield (f"Both an auth string ({f.source_of('PREFECT_API_AUTH_STRING')}) and an API key "
               f"({f.source_of('PREFECT_API_KEY')}) are set. Prefect sends only the auth "
               "string, as HTTP Basic, and ignores the API key. Unset the one you do not mean.")


def header_replaces_credential(f: Facts) -> Iterator[str]:
    if f.auth_header_name and (f.auth_string or f.api_key):
        replaced = "auth string" if f.auth_string else "API key"
        yield (f"A custom {f.auth_header_name} header (PREFECT_CLIENT_CUSTOM_HEADERS) replaces the "
               f"{replaced}: Prefect sends the custom header, not the {replaced}.")


def server_setting_on_client(f: Facts) -> Iterator[str]:
    if os.environ.get("PREFECT_SERVER_API_AUTH_STRING") and not f.auth_string:
        yield ("PREFECT_SERVER_API_AUTH_STRING is set in this environment but the client setting "
               "PREFECT_API_AUTH_STRING is not. The SERVER setting only tells a server what to "
               "require; clients send PREFECT_API_AUTH_STRING. Log in with that auth string instead.")


def _cannot_work(what: str, value: str | None, check: Callable[[str], object]) -> Iterator[str]:
    if value:
        try:
            check(value)
        except ConfigurationError as exc:
            yield f"The {what} in force cannot work: {exc}"


def unusable_auth_string(f: Facts) -> Iterator[str]:
    yield from _cannot_work("auth string", f.auth_string, check_auth_string)


def unusable_api_key(f: Facts) -> Iterator[str]:
    yield from _cannot_work("API key", f.api_key, check_api_key)


def api_key_off_cloud(f: Facts) -> Iterator[str]:
    if f.api_key and f.url and f.mode is AuthMode.API_KEY and not is_cloud_url(f.url, f.cloud_api_url):
        yield (f"An API key is set, but {f.url} is not Prefect Cloud ({f.cloud_api_url}). A "
               "self-hosted server ignores Bearer keys; it wants PREFECT_API_AUTH_STRING.")


def plain_http(f: Facts) -> Iterator[str]:
    if f.url and f.mode is not AuthMode.NONE and (warning := plain_http_warning(f.url)):
        yield warning


def plain_http_token_endpoint(f: Facts) -> Iterator[str]:
    """A provider fetching its token over plain http from another machine (an OAuth2 endpoint…)."""
    if f.our_login is None:
        return
    for token in f.our_login.tokens.values():
        url = getattr(token.provider, "token_url", None)
        if isinstance(url, str) and (warning := plain_http_warning(url)):
            yield f"The {token.slot} comes from {token.provider.describe()}: {warning}"


def tls_checks_off(f: Facts) -> Iterator[str]:
    if f.settings.api.tls_insecure_skip_verify:
        yield ("TLS certificate checks are off (PREFECT_API_TLS_INSECURE_SKIP_VERIFY): anyone who "
               "can intercept the connection can read the credential. Point "
               "PREFECT_API_SSL_CERT_FILE at your CA instead.")


def no_api_url(f: Facts) -> Iterator[str]:
    if f.url:
        return
    server = f.settings.server
    if server.ephemeral.enabled or getattr(server, "allow_ephemeral_mode", False):
        yield ("No PREFECT_API_URL is in force: Prefect starts a temporary local server for "
               "this process, and nothing is authenticated. Log in to use a real server.")
    else:
        yield "No PREFECT_API_URL is in force; Prefect API calls will fail. Log in first."


def token_health(f: Facts) -> Iterator[str]:
    """Per token of our login: an unknown expiry, a failing refresh."""
    if f.our_login is None:
        return
    for token in f.our_login.tokens.values():
        info = token.snapshot()
        # Gateway tokens nearly always expire; one whose expiry we cannot know is
        # refreshed late (after a 401). Auth strings and keys rarely expire: no noise.
        if (token.provider.refreshable and info["expires_at"] is None and not info["last_error"]
                and token.slot.startswith("header ")):
            yield (f"The {info['slot']} from {info['provider']} has no known expiry (no "
                   "expires_in, no JWT exp claim, no ttl=): it is refreshed only when the "
                   "server rejects it. Pass ttl=… to the provider to refresh it ahead of time.")
        if info["last_error"]:
            yield (f"Refreshing the {info['slot']} from {info['provider']} failed "
                   f"({info['failures']} time(s)): {info['last_error']} The previous token stays "
                   "in use while it is valid; retries continue in the background.")


def token_expiry(f: Facts) -> Iterator[str]:
    """A fixed token that has expired or soon will (rotating ones are renewed ahead of time)."""
    if f.expires_at is None or f.rotating:
        return
    when = f.expires_at.isoformat(timespec="seconds")
    now = datetime.now(timezone.utc)
    if f.expires_at <= now:
        yield (f"The token in the custom headers expired at {when}; requests will be rejected. "
               "Log in again with a fresh token.")
    elif f.expires_at - now < timedelta(minutes=5):
        yield f"The token in the custom headers expires soon ({when})."


def server_answer(f: Facts) -> Iterator[str]:
    """What the server said about the credential in force (only when it was asked)."""
    if isinstance(f.server, str):
        yield f.server
        return
    if f.server is None:
        return
    if f.server.get("auth") == "BASIC" and f.mode is AuthMode.NONE:
        yield ("The server requires an auth string (its /ui-settings says BASIC) but none is "
               "set here, so every request gets HTTP 401. Log in with the server's auth string (the "
               "value of its PREFECT_SERVER_API_AUTH_STRING).")
    elif f.server.get("rejection"):
        yield f"The server rejects the credential in force: {f.server['rejection']}"
    if f.server.get("auth") == "none" and f.mode is AuthMode.BASIC:
        yield ("The server does not check auth strings (its /ui-settings says auth is off): "
               "anyone who can reach it can use it.")


def version_pairing(f: Facts) -> Iterator[str]:
    yield from _versions.compatibility_warnings(f.server_version, f.server_auth,
                                                auth_string_set=bool(f.auth_string))


#: Every check, in the order its warnings are shown.
RULES: tuple[Rule, ...] = (
    settings_replaced,
    inside_local_context,
    sources_out_of_step,
    auth_string_and_api_key,
    header_replaces_credential,
    server_setting_on_client,
    unusable_auth_string,
    unusable_api_key,
    api_key_off_cloud,
    plain_http,
    plain_http_token_endpoint,
    tls_checks_off,
    no_api_url,
    token_health,
    token_expiry,
    server_answer,
    version_pairing,
)


def warnings_for(facts: Facts, rules: Iterable[Rule] = RULES) -> tuple[str, ...]:
    """Every rule's warnings, in order, each sentence once."""
    return tuple(dict.fromkeys(w for rule in rules for w in rule(facts)))
