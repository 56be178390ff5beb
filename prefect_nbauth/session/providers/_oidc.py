"""An OpenID provider as a public client sees it: discovery, its endpoints, its ID tokens.

* the metadata comes from ``{issuer}/.well-known/openid-configuration`` (OpenID Connect
  Discovery 1.0), fetched once; its ``issuer`` must be the one asked for;
* :meth:`Issuer.post` sends a form to one of its endpoints and gives back the JSON
  answer, or says clearly why there is none (unreachable, TLS, not JSON);
* :meth:`Issuer.verify_id_token` checks an ID token's signature against the provider's
  published keys (``jwks_uri``, PyJWT), its issuer, audience and expiry.

Every failure is an :class:`~prefect_nbauth.IssuerUnreachableError` (or another
:class:`~prefect_nbauth.PrefectAuthError`) whose message says what to check; text from
the provider goes through :func:`~prefect_nbauth._redaction.scrub_text` first.
"""

from __future__ import annotations

import json
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..._exceptions import ConfigurationError, IssuerUnreachableError
from ..._redaction import scrub_text
from ..._secrets import Secret

__all__ = ["Issuer", "check_issuer"]

#: Seconds of clock difference allowed when checking an ID token's times.
ID_TOKEN_LEEWAY = 120.0


def check_issuer(issuer: str) -> str:
    """An issuer URL as OpenID wants it: http(s), no query or fragment, no trailing slash."""
    if not isinstance(issuer, str) or not issuer.strip():
        raise ConfigurationError("The issuer must be the identity provider's URL, e.g. https://login.example.com.")
    value = issuer.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (parts is None or parts.scheme not in ("http", "https") or not host or "@" in parts.netloc
            or parts.query or parts.fragment or "?" in value or "#" in value):
        # Not quoted: what was given may be a token pasted in the wrong place, or hold a password.
        raise ConfigurationError(
            "The issuer must be an http(s) URL without a user name, password, query or fragment "
            "(e.g. https://login.example.com/realms/team); what was given is not shown, in case it "
            "was a secret.")
    return value


class Issuer:
    """One OpenID provider: its metadata (fetched once), endpoints and signing keys."""

    def __init__(self, issuer: str, *, verify: Any = True, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = check_issuer(issuer)
        self.verify = verify
        self.timeout = timeout
        self._transport = transport  # tests: httpx.MockTransport
        self._client: httpx.Client | None = None  # one, kept: a refresh must not rebuild TLS contexts
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: Any = None  # jwt.PyJWKSet

    # ------------------------------------------------------------- discovery
    def metadata(self) -> dict[str, Any]:
        """The provider's metadata (discovery document), fetched on first use."""
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        url = f"{self.url}/.well-known/openid-configuration"
        reply = self._send("GET", url, what="its discovery document")
        document = _json_object(reply)
        if reply.status_code != 200 or document is None:
            raise IssuerUnreachableError(
                f"{self.url} is not an OpenID provider: {url} answered HTTP {reply.status_code}"
                + ("" if document is not None else " without a JSON document")
                + ". Check the issuer URL (for Keycloak it ends in /realms/<realm>).")
        if str(document.get("issuer", "")).rstrip("/") != self.url:
            raise IssuerUnreachableError(
                f"The discovery document at {url} names another issuer "
                f"({scrub_text(str(document.get('issuer')))[:200]!r}): use that URL as the issuer.")
        with self._lock:
            self._metadata = document
        return document

    def endpoint(self, name: str) -> str | None:
        """An endpoint from the metadata (``token_endpoint``…), or None when the provider has none."""
        value = self.metadata().get(name)
        return str(value) if isinstance(value, str) and value else None

    # ------------------------------------------------------------- requests
    def post(self, url: str, data: dict[str, str], *, what: str) -> tuple[int, dict[str, Any]]:
        """POST a form to ``url``; the status and the JSON object it answered.

        A 5xx, or an answer that is not a JSON object, raises
        :class:`IssuerUnreachableError`: the provider is failing, nothing can be concluded.
        """
        reply = self._send("POST", url, data=data, what=what)
        # RFC 7009: a revocation is answered 200 with an empty body.
        document = {} if reply.status_code == 200 and not reply.content.strip() else _json_object(reply)
        if reply.status_code >= 500 or document is None:
            raise IssuerUnreachableError(
                f"The identity provider at {self.url} is failing: {what} answered HTTP "
                f"{reply.status_code}" + ("" if document is not None else " without JSON")
                + ". Try again later.")
        return reply.status_code, document

    def _send(self, method: str, url: str, *, what: str, data: dict[str, str] | None = None) -> httpx.Response:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, verify=self.verify, transport=self._transport,
                                            follow_redirects=False, headers={"Accept": "application/json"})
            client = self._client
        try:
            return client.request(method, url, data=data)
        except httpx.ConnectError as exc:
            raise _connect_error(self.url, exc, what) from None
        except httpx.TimeoutException:
            raise IssuerUnreachableError(
                f"The identity provider at {self.url} did not answer ({what}) within "
                f"{self.timeout:g} s. Check the URL, or try again.") from None
        except httpx.HTTPError as exc:
            raise IssuerUnreachableError(
                f"Could not reach the identity provider at {self.url} ({what}): "
                f"{type(exc).__name__}: {scrub_text(str(exc))[:200]}.") from None

    # ------------------------------------------------------------- ID tokens
    def verify_id_token(self, id_token: Secret, client_id: str) -> dict[str, Any]:
        """The claims of an ID token whose signature, issuer, audience and expiry check out.

        The key comes from the provider's ``jwks_uri`` (fetched again once when the
        token names a key not seen before: the provider rotated its keys).
        """
        import jwt

        raw = id_token.reveal()
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            raise IssuerUnreachableError(
                f"The identity provider at {self.url} returned an ID token that is not a JWT.") from None
        key = self._key(str(header.get("kid") or ""), refetch=False) or self._key(
            str(header.get("kid") or ""), refetch=True)
        if key is None:
            raise IssuerUnreachableError(
                f"The ID token from {self.url} is signed with a key the provider does not publish "
                "at its jwks_uri: it cannot be trusted.")
        try:
            claims: dict[str, Any] = jwt.decode(
                raw, key.key, algorithms=[key.algorithm_name or str(header.get("alg"))],
                audience=client_id, issuer=self.url, leeway=ID_TOKEN_LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise IssuerUnreachableError(
                f"The ID token from {self.url} does not check out ({type(exc).__name__}: "
                f"{scrub_text(str(exc))[:200]}); it cannot be trusted.") from None
        return claims

    def _key(self, kid: str, *, refetch: bool) -> Any:
        import jwt

        with self._lock:
            keys = self._keys
        if keys is None or refetch:
            jwks_uri = self.endpoint("jwks_uri")
            if jwks_uri is None:
                raise IssuerUnreachableError(f"The identity provider at {self.url} publishes no jwks_uri.")
            reply = self._send("GET", jwks_uri, what="its signing keys")
            document = _json_object(reply)
            try:
                keys = jwt.PyJWKSet.from_dict(document or {})
            except jwt.PyJWTError:
                raise IssuerUnreachableError(
                    f"The identity provider's signing keys at {jwks_uri} could not be read.") from None
            with self._lock:
                self._keys = keys
        for key in keys.keys:
            if not kid or key.key_id == kid:
                return key
        return None


def _json_object(reply: httpx.Response) -> dict[str, Any] | None:
    try:
        document = json.loads(reply.text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _connect_error(issuer: str, exc: httpx.ConnectError, what: str) -> IssuerUnreachableError:
    text = scrub_text(str(exc))[:300]
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return IssuerUnreachableError(
            f"TLS failed for the identity provider at {issuer} ({what}): {text}. If it uses a "
            "private CA, pass verify='/path/to/ca.pem' (or set SSL_CERT_FILE); if it speaks plain "
            "http, use an http:// issuer URL.")
    return IssuerUnreachableError(
        f"Could not connect to the identity provider at {issuer} ({what}): {text or 'connection failed'}. "
        "Check the issuer URL and that this machine can reach it.")
