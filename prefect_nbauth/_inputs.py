"""Checks on what a user hands us, done before any request leaves the process.

Each check either returns a cleaned value or raises :class:`ConfigurationError`
with a message that names the problem and the fix. None of them ever puts the
secret itself into a message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ._exceptions import ConfigurationError
from ._secrets import Secret, mask

__all__ = [
    "Credential",
    "check_api_key",
    "check_api_url",
    "check_auth_string",
    "check_headers",
    "is_cloud_url",
    "is_loopback_url",
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
        if self.auth_string is None:
            return None
        return self.auth_string.reveal().split(":", 1)[0]

    def authorization(self) -> str | None:
        """The Authorization header value Prefect will send for this credential."""
        import base64

        for name, value in self.headers.items():
            if name.lower() == "authorization":
                return value.reveal()
        if self.auth_string is not None:
            raw = self.auth_string.reveal().encode("utf-8")
            return "Basic " + base64.b64encode(raw).decode("ascii")
        if self.api_key is not None:
            return "Bearer " + self.api_key.reveal()
        return None

    def request_headers(self) -> dict[str, str]:
        """Every header Prefect's client will send for this credential, raw."""
        headers = {name: value.reveal() for name, value in self.headers.items()}
        auth = self.authorization()
        if auth is not None and not any(n.lower() == "authorization" for n in headers):
            headers["Authorization"] = auth
        return headers

    def secrets(self) -> list[str]:
        """Raw values to scrub from any text that might echo them."""
        values = [s.reveal() for s in (self.auth_string, self.api_key) if s is not None]
        values += [v.reveal() for v in self.headers.values()]
        auth = self.authorization()
        if auth:
            values.append(auth)
            values.append(auth.split(" ", 1)[-1])
        return values


def _looks_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"


def check_api_url(url: object) -> str:
    """Return ``url`` without a trailing slash, or raise ConfigurationError."""
    if url is None or url == "":
        raise ConfigurationError(
            "No Prefect API URL. Pass api_url='http://HOST:4200/api' (self-hosted) or "
            "set PREFECT_API_URL; for Prefect Cloud pass only api_key=… and a workspace."
        )
    if not isinstance(url, str):
        raise ConfigurationError(f"api_url must be a string, not {type(url).__name__}.")
    if url != url.strip() or any(c.isspace() for c in url):
        raise ConfigurationError(
            "The API URL contains whitespace; remove it (a copy-paste often adds a newline)."
        )
    if _looks_quoted(url):
        raise ConfigurationError("The API URL is wrapped in quotes; remove them.")
    if not url.isprintable():
        raise ConfigurationError("The API URL contains control characters; type it again.")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigurationError(
            "The API URL cannot be parsed. A Prefect API URL looks like 'http://127.0.0.1:4200/api'."
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{url!r} is not an http(s) URL. A Prefect API URL looks like "
            "'http://127.0.0.1:4200/api'."
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            "Put credentials in auth_string=… or api_key=…, not in the URL: Prefect "
            "ignores them there and the URL is shown in logs."
        )
    try:
        _ = parts.port  # urlsplit parses the port lazily; an invalid one raises here
    except ValueError:
        raise ConfigurationError(f"The API URL has an invalid port: {url!r}.") from None
    path = parts.path.rstrip("/")
    cleaned = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    import httpx

    try:
        httpx.URL(cleaned)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"The API URL is not a valid URL ({exc}).") from None
    return cleaned


def check_auth_string(value: object) -> Secret:
    """Validate a self-hosted server auth string (``user:password``)."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigurationError(
            f"auth_string must be a string 'user:password', not {type(value).__name__}."
        )
    if value == "":
        raise ConfigurationError(
            "The auth string is empty. Pass the value of the server's "
            "PREFECT_SERVER_API_AUTH_STRING, in the form 'user:password'."
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
    if ":" not in value:
        raise ConfigurationError(
            "The auth string has no ':'. It must be 'user:password', the same value "
            "as the server's PREFECT_SERVER_API_AUTH_STRING."
        )
    return Secret(value)


def check_api_key(value: object) -> Secret:
    """Validate a Prefect Cloud API key (``pnu_…`` or ``pnb_…``)."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigurationError(f"api_key must be a string, not {type(value).__name__}.")
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
    seen: set[str] = set()
    for name, value in headers.items():
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
        if name.lower() in seen:
            raise ConfigurationError(f"The header {name!r} is given twice (names are case-insensitive).")
        seen.add(name.lower())
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise ConfigurationError(
                f"The value of header {name!r} must be a string, not {type(value).__name__}."
            )
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
        cleaned[name] = Secret(value)
    return cleaned


def is_cloud_url(url: str | None, cloud_api_url: str) -> bool:
    """True when ``url`` lies under Prefect Cloud's API base (the same test Prefect uses)."""
    return bool(url) and url.startswith(cloud_api_url.rstrip("/"))  # type: ignore[union-attr]


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


def describe_secret(secret: Secret | None) -> str:
    return mask(secret.reveal()) if secret is not None else "<unset>"
