"""Checks on what a user hands us, done before any request leaves the process.

Each check either returns a cleaned value or raises :class:`ConfigurationError`
with a message that names the problem and the fix. None of them ever puts the
secret itself into a message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

from . import _headers
from ._exceptions import ConfigurationError
from ._secrets import Secret, auth_string_user

__all__ = [
    "Credential",
    "check_api_key",
    "check_api_url",
    "check_auth_string",
    "check_headers",
    "check_url",
    "is_cloud_url",
    "is_loopback_url",
    "looks_like_header_name",
    "plain_http_warning",
]

# RFC 9110 token characters: what a header name may consist of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

# Headers Prefect sets itself and silently refuses to let custom headers replace
# (client/base.py); accepting them would look like it worked and do nothing.
_PROTECTED_HEADERS = frozenset({"user-agent", "prefect-csrf-token", "prefect-csrf-client"})


@dataclass(frozen=True)
class Credential:
    """What a login sends: at most one of the three Prefect credentials, plus headers.

    Secrets are held as :class:`Secret`, so printing a Credential is safe.
    """

    api_url: str
    auth_string: Secret | None = None
    api_key: Secret | None = None
    headers: dict[str, Secret] = field(default_factory=dict)
    workspace: str | None = None

    @property
    def username(self) -> str | None:
        """The user name of an auth string, when it names one (:func:`._secrets.auth_string_user`)."""
        return auth_string_user(self.auth_string.reveal()) if self.auth_string is not None else None

    def authorization(self) -> str | None:
        """The Authorization header value Prefect will send for this credential."""
        return _headers.authorization(auth_string=self.auth_string, api_key=self.api_key,
                                      headers=self.headers)

    def request_headers(self, *, prefect_credential: bool = True) -> dict[str, str]:
        """Every header Prefect's client will send for this credential, raw."""
        return _headers.request_headers(auth_string=self.auth_string, api_key=self.api_key,
                                        headers=self.headers, prefect_credential=prefect_credential)

    def secrets(self) -> list[str]:
        """Raw values to scrub from any text that might echo them (every form is derived)."""
        values = [s.reveal() for s in (self.auth_string, self.api_key) if s is not None]
        values += [v.reveal() for v in self.headers.values()]
        auth = self.authorization()
        if auth:
            values.append(auth.split(" ", 1)[-1])
        return values


def _looks_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"


def shown_url(url: str) -> str:
    """What of a rejected URL may be shown: ``scheme://host[:port]`` at most, never user info.

    A URL without a scheme may be a secret pasted into the wrong argument
    (``login(getpass())``): nothing of it is shown.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the value given"
    if not parts.scheme or not host or not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme, re.I):
        return "the value given"
    host = f"[{host}]" if ":" in host else host
    return f"'{parts.scheme}://{host}" + (f":{port}" if port else "") + "'"


def _text(value: object, must_be: str) -> str:
    """The raw text of ``value`` (a str, or a Secret revealed), else ConfigurationError.

    ``must_be`` starts the message ("api_key must be a string"); the type's name ends it,
    never the value.
    """
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigurationError(f"{must_be}, not {type(value).__name__}.")
    return value


def check_api_url(url: object) -> str:
    """Return ``url`` without a trailing slash, or raise ConfigurationError.

    A message never repeats the URL beyond its scheme and host (see :func:`shown_url`).
    """
    return check_url(url, what="API URL")


def check_url(url: object, *, what: str) -> str:
    """The checks of :func:`check_api_url` for any URL a credential travels to (a token endpoint…)."""
    if isinstance(url, Secret):
        url = url.reveal()
    if (url is None or url == "") and what == "API URL":
        raise ConfigurationError(
            "No Prefect API URL. Pass api_url='http://HOST:4200/api' (self-hosted) or "
            "set PREFECT_API_URL; for Prefect Cloud pass only api_key=… and a workspace."
        )
    url = _text(url, f"The {what} must be a string")
    _check_url_characters(url, what)
    parts = _split_api_url(url, what)
    _check_host_name(parts.hostname or "", what)
    cleaned = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
    import httpx

    try:
        httpx.URL(cleaned)
    except (httpx.InvalidURL, UnicodeError):
        raise ConfigurationError(
            f"The {what} ({shown_url(url)}) is not a valid URL; check the host name."
        ) from None
    return cleaned


def _check_url_characters(url: str, what: str) -> None:
    if url != url.strip() or any(c.isspace() for c in url):
        raise ConfigurationError(
            f"The {what} contains whitespace; remove it (a copy-paste often adds a newline)."
        )
    if _looks_quoted(url):
        raise ConfigurationError(f"The {what} is wrapped in quotes; remove them.")
    if not url.isprintable():
        raise ConfigurationError(f"The {what} contains control characters; type it again.")


def _split_api_url(url: str, what: str) -> SplitResult:
    """``url`` split, once it is known to be http(s) with a host, a valid port and no user info."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigurationError(
            f"The {what} cannot be parsed. A URL looks like 'http://127.0.0.1:4200/api'."
        ) from None
    try:
        has_userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        has_userinfo = "@" in parts.netloc
    if has_userinfo or "@" in parts.netloc:
        raise ConfigurationError(
            f"The {what} holds a user name or password: put credentials in their own "
            "argument (auth_string=…, api_key=…, client_secret=…), not in the URL, which is "
            "shown in logs. (If that was a password, change it: it may be in this "
            "notebook's history.)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"The {what} ({shown_url(url)}) is not an http(s) URL with a host. A URL looks "
            "like 'http://127.0.0.1:4200/api'. (If you passed a secret as the first argument, "
            "pass it as auth_string=… or api_key=… instead.)"
        )
    try:
        _ = parts.port  # urlsplit parses the port lazily; an invalid one raises here
    except ValueError:
        raise ConfigurationError(
            f"The {what} for {parts.scheme}://{_shown_host(parts.hostname)} has an invalid port "
            "(a number from 1 to 65535 after the host's ':')."
        ) from None
    return parts


def _check_host_name(host: str, what: str) -> None:
    for label in host.split("."):
        if len(label) > 63:
            raise ConfigurationError(
                f"The {what}'s host name has a part longer than 63 characters, which DNS "
                "forbids. Check the URL (was something pasted into it?)."
            )
    if len(host) > 253:
        raise ConfigurationError(f"The {what}'s host name is longer than DNS allows (253 characters).")


def _shown_host(host: str | None) -> str:
    if not host:
        return "?"
    return f"[{host}]" if ":" in host else host


def check_auth_string(value: object) -> Secret:
    """Validate a self-hosted server auth string (usually ``user:password``).

    Prefect's server compares the WHOLE decoded value and never splits it on
    ``:``, so a string without ``:`` works too (no user name is known then).
    """
    value = _text(value, "auth_string must be a string (usually 'user:password')")
    if value == "":
        raise ConfigurationError(
            "The auth string is empty. Pass the value of the server's "
            "PREFECT_SERVER_API_AUTH_STRING, in the form 'user:password'."
        )
    if "\0" in value:
        raise ConfigurationError(
            "The auth string contains a NUL character (\\0), which HTTP headers cannot carry. "
            "Type it again, or check how it was read."
        )
    if any(c in value for c in "\r\n\t"):
        raise ConfigurationError(
            "The auth string contains a newline or tab (often from a copy-paste or a "
            "file read without .strip()). Remove it and try again."
        )
    if value != value.strip():
        raise ConfigurationError(
            "The auth string starts or ends with a space. Prefect compares it exactly, "
            "so remove the space (it probably came from a copy-paste)."
        )
    if _looks_quoted(value):
        raise ConfigurationError(
            "The auth string is wrapped in quotes, and Prefect keeps quotes literally, "
            "so it would never match. Remove the quotes. (If the server really was "
            "started with a quoted PREFECT_SERVER_API_AUTH_STRING, fix the server.)"
        )
    if not value.isascii():
        raise ConfigurationError(
            "The auth string contains non-ASCII characters. Prefect's server cannot "
            "compare those: it answers HTTP 500 to every request when its own auth "
            "string is non-ASCII, and never accepts one from a client. Choose an ASCII "
            "password (punctuation such as @ : # % & ! is fine)."
        )
    if not value.isprintable():
        raise ConfigurationError(
            "The auth string contains control characters, which HTTP headers cannot carry. "
            "Type it again."
        )
    return Secret(value)


def check_api_key(value: object) -> Secret:
    """Validate a Prefect Cloud API key (``pnu_…`` or ``pnb_…``)."""
    value = _text(value, "api_key must be a string")
    if value == "":
        raise ConfigurationError(
            "The API key is empty. Create one in Prefect Cloud (profile menu, API keys) "
            "and pass it with api_key=… or the environment variable PREFECT_API_KEY."
        )
    if _looks_quoted(value):
        raise ConfigurationError("The API key is wrapped in quotes; remove them.")
    if any(c.isspace() for c in value):
        raise ConfigurationError(
            "The API key contains whitespace or a newline; an API key never does. "
            "Copy it again, or .strip() the value you read from a file."
        )
    if not value.isascii() or not value.isprintable():
        raise ConfigurationError("The API key contains characters no API key has; copy it again.")
    return Secret(value)


def check_headers(headers: object) -> dict[str, Secret]:
    """Validate custom headers for a gateway; values are treated as secrets."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ConfigurationError(
            "headers must be a dict such as {'cf-access-token': '…'}, "
            f"not {type(headers).__name__}."
        )
    cleaned: dict[str, Secret] = {}
    for name, value in headers.items():
        _check_header_name(name, cleaned)
        cleaned[name] = _check_header_value(name, value)
    return cleaned


def looks_like_header_name(name: object) -> bool:
    """A word such as ``X-Gateway-Token``: letters and digits in dash-separated parts of at most
    20 characters, none of them a long mix of letters and digits, 64 characters at most.

    A token pasted into a header's name (a name and its value swapped) fails this, and is
    then treated as a secret: refused, and never shown.
    """
    if not isinstance(name, str) or not _PLAIN_HEADER_NAME.fullmatch(name) or len(name) > 64:
        return False
    parts = name.split("-")
    return all(len(p) <= 20 and not (len(p) >= 12 and any(c.isdigit() for c in p)) for p in parts)


_PLAIN_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*")


def _check_header_name(name: object, earlier: dict[str, Secret]) -> None:
    if isinstance(name, Secret) or (isinstance(name, str) and _HEADER_NAME.match(name)
                                    and not looks_like_header_name(name)):
        raise ConfigurationError(
            "A header name looks like a secret, not a name (were a name and its value swapped?). "
            "It is not shown here. Header names are words such as X-Gateway-Token; the token "
            "goes in the value: headers={'X-Gateway-Token': token}.")
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise ConfigurationError(
            f"{name!r} is not a valid HTTP header name (letters, digits and - only, "
            "no spaces or colons)."
        )
    if name.lower() in _PROTECTED_HEADERS:
        raise ConfigurationError(
            f"Prefect manages the {name!r} header itself and ignores a custom value; "
            "remove it from headers."
        )
    if name.lower() in (n.lower() for n in earlier):
        raise ConfigurationError(f"The header {name!r} is given twice (names are case-insensitive).")


def _check_header_value(name: str, value: object) -> Secret:
    value = _text(value, f"The value of header {name!r} must be a string")
    if value == "":
        raise ConfigurationError(f"The value of header {name!r} is empty.")
    if any(c in value for c in "\r\n\0"):
        raise ConfigurationError(
            f"The value of header {name!r} contains a line break, which HTTP forbids; "
            "remove it (.strip() a token read from a file)."
        )
    if value != value.strip():
        raise ConfigurationError(
            f"The value of header {name!r} starts or ends with whitespace; remove it."
        )
    if not value.isascii() or not value.isprintable():
        raise ConfigurationError(
            f"The value of header {name!r} contains non-ASCII or control characters, "
            "which HTTP headers cannot carry."
        )
    return Secret(value)


def is_cloud_url(url: str | None, cloud_api_url: str) -> bool:
    """True when ``url`` lies under Prefect Cloud's API base: same origin, path on a segment boundary."""
    from ._urls import is_under

    return bool(url) and is_under(str(url), cloud_api_url)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str) -> str | None:
    """A warning when a credential would cross a network unencrypted."""
    if urlsplit(url).scheme == "http" and not is_loopback_url(url):
        host = urlsplit(url).hostname
        return (
            f"Credentials are sent over plain http to {host}, which is not this machine: "
            "anyone on the network path can read them. Put the server behind https."
        )
    return None


def check_timeout(value: object, name: str = "timeout", *, allow_zero: bool = False) -> float:
    """A finite number of seconds (> 0, or >= 0 with ``allow_zero``), else ConfigurationError."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name} must be a number of seconds, such as 10, not {type(value).__name__}.")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ConfigurationError(f"{name} must be a finite number of seconds, such as 10.")
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigurationError(
            f"{name} must be {'zero or more' if allow_zero else 'more than zero'} seconds.")
    return number
