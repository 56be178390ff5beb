"""What the login form may say, and how it keeps a secret out of what it says.

A URL the form rejected is shown as at most ``scheme://host[:port]``
(:func:`safe_url`); an error's text is scrubbed of every form of the secrets just
tried and of the URL box (:func:`scrub`) and goes, collapsed, under one sentence
for a person (:func:`lead`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..._exceptions import (
    AuthenticationError,
    ConfigurationError,
    CredentialProviderError,
    DeviceFlowUnsupportedError,
    IssuerUnreachableError,
    NotPrefectServerError,
    ServerUnreachableError,
    SignInDeniedError,
    SignInError,
    SignInExpiredError,
)
from ..._redaction import redact, scrub_text
from ..._secrets import Secret

__all__ = ["check_url_box", "has_userinfo", "lead", "nothing_changed", "safe_url", "scrub"]


def nothing_changed() -> str:
    """The note under a refused attempt: what is in force now, in words that are true."""
    from ...session import status

    if status(check_server=False).logged_in:
        return "Nothing was changed: the login in force before this attempt is still in use."
    return "Nothing was changed: Prefect in this kernel keeps the settings it started with (no login)."


def safe_url(url: str) -> str:
    """At most ``scheme://host[:port]`` of ``url``; ``""`` when that much cannot be parsed cleanly.

    What a message may show of a URL the form rejected: never a path, a query, a
    user name or a password (a secret pasted into the URL box must not be echoed).
    """
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host or "@" in parts.netloc or not parts.scheme.isascii():
        return ""
    if not all(c.isalnum() or c in ".-_[]:" for c in host):
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url.strip()).netloc
    except ValueError:
        return "@" in url


def check_url_box(url: str, what: str = "The API URL", example: str = "http://127.0.0.1:4200/api") -> str | None:
    """Why a URL box (``what``: its name in a sentence) cannot be used, or None. Never quotes more
    than :func:`safe_url`."""
    if has_userinfo(url):
        return (f"{what} held a user name or password, so it was cleared. Type the URL without "
                f"them ({example}) and the credential in its own box.")
    shown = safe_url(url)
    if not shown:
        return (f"{what} box did not hold a URL, so it was cleared (it is not shown here, in "
                f"case it was a secret). Type a URL such as {example}.")
    if not shown.startswith(("http://", "https://")):
        return f"{what} must start with http:// or https:// (not {shown})."
    return None


def scrub(text: str, secrets: list[Secret], url: str) -> str:
    """An error's text for the form: the attempt's secrets in every form and in part (the one
    redaction module, :mod:`prefect_nbauth._redaction`), and the URL box as :func:`safe_url` shows it."""
    text = scrub_text(redact(text, *(s.reveal() for s in secrets)))
    url = url.strip()
    if url:
        shown = safe_url(url) or "the URL in the box"
        for form in {url, url.rstrip("/")} - {shown}:
            text = text.replace(form, shown)
    return text


def lead(exc: Exception) -> str:
    """One short sentence for a person; the exception's text goes in the details."""
    if isinstance(exc, IssuerUnreachableError):
        return "Could not reach your identity provider."
    if isinstance(exc, DeviceFlowUnsupportedError):
        return "Your identity provider does not offer the device sign-in to this client."
    if isinstance(exc, SignInDeniedError):
        return "The sign-in was declined."
    if isinstance(exc, SignInExpiredError):
        return "The code expired before it was approved."
    if isinstance(exc, SignInError):
        return "The sign-in did not complete."
    if isinstance(exc, AuthenticationError):
        return "The server refused this credential."
    if isinstance(exc, NotPrefectServerError):
        return "Something answered at this URL, but it is not a Prefect API."
    if isinstance(exc, ServerUnreachableError):
        return "Could not reach the server."
    if isinstance(exc, CredentialProviderError):
        return "The credential could not be used."
    if isinstance(exc, ConfigurationError):
        return "The form's values cannot work."
    return "The login failed."
