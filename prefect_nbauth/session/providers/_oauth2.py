"""The OAuth2 client-credentials grant (RFC 6749 §4.4) as a credential provider.

The protocol handling (request body, response validation, error codes) is oauthlib's;
httpx carries it. A token's lifetime comes from the JWT's ``exp`` or ``expires_in``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx

from ..._boundary import public
from ..._exceptions import CredentialProviderError
from ..._inputs import check_url, plain_http_warning
from ..._jwt import expiry_of, jwt_claims
from ..._secrets import Secret
from ..._urls import shown_origin
from ._base import CredentialProvider, Token, clean_token

__all__ = ["OAuth2ClientCredentials", "expiry_from_response"]

logger = logging.getLogger("prefect_nbauth")


class OAuth2ClientCredentials(CredentialProvider):
    """An OAuth2 client-credentials grant (RFC 6749 §4.4), as OAuth2 proxies and IdPs issue.

    The protocol handling (request body, response validation, error codes) is
    oauthlib's; httpx carries it. The token's lifetime comes from ``expires_in``.
    """

    @public(urls=("token_url",), secrets=("client_secret",))
    def __init__(self, token_url: str, client_id: str, client_secret: str | Secret, *,
                 scope: str | Sequence[str] | None = None, audience: str | None = None,
                 timeout: float = 30.0, verify: Any = True) -> None:
        # The token URL gets the API URL's checks: no user info (it would be shown in
        # messages), http(s) with a host; plain http to another machine is warned about.
        self.token_url = check_url(token_url, what="token URL")
        warning = plain_http_warning(self.token_url)
        if warning:
            logger.warning("The OAuth2 token endpoint: %s", warning)
        self.client_id = client_id
        self.client_secret = Secret(client_secret)
        self.scope = scope.split() if isinstance(scope, str) else (list(scope) if scope else None)
        self.audience = audience
        self.timeout = timeout
        self.verify = verify

    def describe(self) -> str:
        # Where it is, never what it carries: no user info (refused anyway) and no query.
        return f"OAuth2 token endpoint {shown_origin(self.token_url)}{urlsplit(self.token_url).path}"

    def fetch(self) -> Token:
        from oauthlib.oauth2 import BackendApplicationClient
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error

        client = BackendApplicationClient(client_id=self.client_id)
        extra = {"audience": self.audience} if self.audience else {}
        body = client.prepare_request_body(scope=self.scope, include_client_id=False, **extra)
        started = time.time()
        try:
            response = httpx.post(
                self.token_url, content=body, timeout=self.timeout, verify=self.verify,
                follow_redirects=False,
                auth=(self.client_id, self.client_secret.reveal()),
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CredentialProviderError(
                f"{self.describe()} could not be reached: {type(exc).__name__}.") from None
        if response.status_code >= 500:
            raise CredentialProviderError(
                f"{self.describe()} is failing (HTTP {response.status_code}); try again later.")
        try:
            # RFC 6749 §5.1: the answer is JSON. oauthlib would also try form
            # encoding, which turns an HTML login page into "missing_token".
            if not isinstance(json.loads(response.text), dict):
                raise ValueError("not a JSON object")
        except ValueError:
            raise CredentialProviderError(
                f"{self.describe()} answered HTTP {response.status_code} with something that is not "
                "an OAuth2 token response (expected a JSON object). Check the token URL.") from None
        try:
            token = client.parse_request_body_response(response.text, scope=self.scope)
        except OAuth2Error as exc:
            raise CredentialProviderError(
                f"{self.describe()} refused the request (HTTP {response.status_code}, {exc.error}"
                + (f": {exc.description}" if exc.description else "")
                + "). Check the client id, secret and scope.") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialProviderError(
                f"{self.describe()} answered HTTP {response.status_code} with something that is not "
                f"an OAuth2 token response ({type(exc).__name__}).") from None
        value = clean_token(token.get("access_token"), self)
        return Token(Secret(value), expiry_from_response(value, token.get("expires_in"), started))


#: Issuers count lifetimes in whole seconds and floor the issue time (oidc-provider
#: does): a token answered with ``"expires_in": 5`` may end up to a second sooner.
WHOLE_SECOND_ROUNDING = 1.0


def expiry_from_response(value: str, expires_in: Any, requested_at: float) -> datetime | None:
    """When a token from a token endpoint stops working, as seen by our clock.

    A JWT's ``exp`` is the issuer's own statement and already includes its
    rounding; the clock skew between issuer and us is left to the refresh
    margin (``RefreshingToken.margin_for``). An opaque token only has
    ``expires_in``: counted from when the request was SENT (the token cannot
    have been issued earlier, so network time never makes it look longer) and
    less :data:`WHOLE_SECOND_ROUNDING` when it is a whole number of seconds.
    """
    from_jwt = expiry_of(jwt_claims(value))
    if from_jwt is not None:
        return from_jwt
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        lifetime = float(expires_in)
        if lifetime.is_integer():
            lifetime = max(lifetime / 2, lifetime - WHOLE_SECOND_ROUNDING)
        return datetime.fromtimestamp(requested_at + lifetime, tz=timezone.utc)
    return None
