"""Comparing URLs by what they are, never by string prefix.

``"https://gw.example.com.evil.net/x".startswith("https://gw.example.com")`` is
True: a string-prefix test would send a token for one host to another. Here a
URL is parsed (httpx), compared by origin (scheme, lower-cased host, port with
the scheme's default), and its path must lie under the base path on a segment
boundary (``/api`` covers ``/api`` and ``/api/flows``, not ``/apix``).
"""

from __future__ import annotations

__all__ = ["is_under", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SOCKET_SCHEMES = {"ws": "http", "wss": "https"}


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


def is_under(url: object, base: object) -> bool:
    """True when ``url`` has ``base``'s origin and its path is ``base``'s path or below it."""
    import httpx

    here, there = origin(url), origin(base)
    if here is None or there is None or here != there:
        return False
    path = httpx.URL(str(url)).path if not isinstance(url, httpx.URL) else url.path
    prefix = httpx.URL(str(base)).path.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""
