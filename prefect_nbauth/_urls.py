"""URLs, compared and converted in one place, never by string prefix.

``"https://gw.example.com.evil.net/x".startswith("https://gw.example.com")`` is
True: a string-prefix test would send a token for one host to another. Here a
URL is parsed (httpx), compared by origin (scheme, lower-cased host, port with
the scheme's default), and its path must lie under the base path on a segment
boundary (``/api`` covers ``/api`` and ``/api/flows``, not ``/apix``).

The other things every module needs of a URL live here too: the ``ws(s)://``
form of an ``http(s)://`` one, and the origin as it may be shown
(scheme, host and port: never user info, path or query).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

__all__ = ["is_under", "origin", "same_origin", "shown_origin", "to_ws", "ws_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SOCKET_SCHEMES = {"ws": "http", "wss": "https"}
_HTTP_SCHEMES = {v: k for k, v in _SOCKET_SCHEMES.items()}  # http -> ws


def origin(url: object) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of ``url`` (ws/wss count as http/https), or None if unparseable."""
    import httpx

    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError, UnicodeError):
        return None
    scheme = _SOCKET_SCHEMES.get(parsed.scheme, parsed.scheme)
    if not parsed.host:
        return None
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme)


def same_origin(url: object, other: object) -> bool:
    here = origin(url)
    return here is not None and here == origin(other)


def is_under(url: object, base: object) -> bool:
    """True when ``url`` has ``base``'s origin and its path is ``base``'s path or below it."""
    import httpx

    if not same_origin(url, base):
        return False
    path = httpx.URL(str(url)).path if not isinstance(url, httpx.URL) else url.path
    prefix = httpx.URL(str(base)).path.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def shown_origin(url: str, base: str | None = None) -> str:
    """``scheme://host[:port]`` of ``url`` (resolved against ``base`` when relative), for messages.

    Never the user info, path or query: a hostile server's redirect target or a URL with
    a password in it is shown by where it points, not by what it carries.
    """
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "an invalid location"
    if not host or not parts.scheme:
        return "an invalid location"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def to_ws(url: str) -> str:
    """``http(s)://…`` -> ``ws(s)://…`` (anything else unchanged)."""
    scheme, sep, rest = url.partition("://")
    return f"{_HTTP_SCHEMES[scheme]}://{rest}" if sep and scheme in _HTTP_SCHEMES else url


def ws_url(api_url: str, path: str) -> str:
    """``http://h/api`` + ``events/out`` -> ``ws://h/api/events/out`` (``https`` -> ``wss``)."""
    from ._exceptions import ConfigurationError

    base = api_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigurationError("The Prefect API URL is not an http(s) URL; websockets need one.")
    return to_ws(base) + "/" + path.lstrip("/")
