"""When a source can no longer refresh (a Hub whose person was signed out at the provider):
it is not asked in a loop (the background refresh doubles its wait), and a request the
server refused says why, instead of a bare HTTP 401."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from prefect_nbauth import CredentialProvider, CredentialProviderError, Token
from prefect_nbauth._secrets import Secret
from prefect_nbauth.session._http_auth import NbAuth
from prefect_nbauth.session._refreshing import RefreshingToken
from prefect_nbauth.session._rotation import Rotation
from prefect_nbauth.session._state import Login


class ExpiringThenFailing(CredentialProvider):
    """One token living 0.3 s, then only failures; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self) -> Token:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            return Token(Secret("token-1"), datetime.now(timezone.utc) + timedelta(seconds=0.3))
        raise CredentialProviderError("the source cannot refresh")


def test_after_expiry_the_background_refresh_waits_longer_each_time() -> None:
    provider = ExpiringThenFailing()
    token = RefreshingToken(provider, slot="header X", margin=0.1)
    token.fetch_initial()
    token.start()
    try:
        time.sleep(4.0)  # the window being counted, not a wait for a condition
    finally:
        token.stop()
    # Before expiry: a few tries at 0.2 s; after it: 1 s, 2 s, ... (0.2 s each was ~20 calls).
    assert 2 <= provider.calls <= 7, provider.calls


class RefusingProvider(CredentialProvider):
    """A valid-looking token, then: "signed out"."""

    def __init__(self) -> None:
        self.calls = 0

    def fetch(self) -> Token:
        self.calls += 1
        if self.calls == 1:
            return Token(Secret("token-1"), datetime.now(timezone.utc) + timedelta(seconds=60))
        raise CredentialProviderError("alice is signed out: sign in to JupyterHub again")


def test_a_refused_request_whose_refresh_failed_says_why() -> None:
    token = RefreshingToken(RefusingProvider(), slot="header Authorization")
    token.fetch_initial()
    login: Any = Login(original=None, installed=None, credential=_credential(), identity=None, workspace=None,
                        server_version=None, server_auth=None, persisted_to=None,
                        tokens={"header Authorization": token})
    auth = NbAuth(lambda: Rotation(login))
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(401)), auth=auth) as client:
        with pytest.raises(CredentialProviderError, match="alice is signed out"):
            client.get("https://prefect.test/api/flows")


def _credential() -> Any:
    from prefect_nbauth._inputs import Credential

    return Credential(api_url="https://prefect.test/api", headers={"Authorization": Secret("token-1")})


def test_the_same_failure_is_logged_once_not_at_every_request(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from prefect_nbauth.testing import wait_until

    provider = ExpiringThenFailing()
    token = RefreshingToken(provider, slot="header X")
    first = token.fetch_initial()
    wait_until(first.expired, 10, "the first token to expire")
    with caplog.at_level(logging.DEBUG, logger="prefect_nbauth"):
        for _ in range(5):  # five requests meeting the same failure
            with pytest.raises(CredentialProviderError):
                token.refresh(stale=first, reason="HTTP 401")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()]
    assert len(warnings) == 1 and provider.calls == 6
