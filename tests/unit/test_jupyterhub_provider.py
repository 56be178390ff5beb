"""JupyterHubToken against a stand-in Hub API (httpx MockTransport): what it reads, what it
keeps, what it says when the Hub lacks a setting, and how rarely it asks. The real Hub,
provider and gateway are in tests/hub/."""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from prefect_nbauth import CredentialProviderError
from prefect_nbauth._redaction import scrub_text
from prefect_nbauth.session.providers import HubSignedOutError, JupyterHubToken, under_jupyterhub
from prefect_nbauth.testing.canaries import assert_no_secret, make_canary

API = "http://127.0.0.1:8081/hub/api"


class Hub:
    """A stand-in for GET /hub/api/users/{name}: answers from ``state``, counts calls."""

    def __init__(self, state: Any = None, *, status: int = 200, omit_auth_state: bool = False) -> None:
        self.state = state
        self.status = status
        self.omit_auth_state = omit_auth_state
        self.calls: list[httpx.Request] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self.delay = 0.0
        self.rotate = False  # a new access token at every call (a Hub refreshing each time)

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.rotate:
                self.state = auth_state(f"access-{len(self.calls)}", expires_at=time.time() + 60)
            if self.status != 200:
                return httpx.Response(self.status, json={"status": self.status, "message": "Action is not authorized"})
            model: dict[str, Any] = {"name": "alice", "kind": "user"}
            if not self.omit_auth_state:
                model["auth_state"] = self.state
            return httpx.Response(200, json=model)
        finally:
            with self._lock:
                self.in_flight -= 1

    def provider(self, **kwargs: Any) -> JupyterHubToken:
        return JupyterHubToken(api_url=API, api_token="hub-server-token", user="alice",
                               transport=httpx.MockTransport(self.handler), **kwargs)


def _exact_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages as written: the suite's earlier tests leave many secrets registered, and the
    scrubber's partial matching then masks unrelated words (seen: "JUPYTERHUB_" in a full run)."""
    from prefect_nbauth import _redaction

    monkeypatch.setattr(_redaction, "CONTAIN", False)


def auth_state(access: str, *, expires_in: float = 10, expires_at: float | None = None,
               refresh: str = "refresh-1", id_token: str = "id-1") -> dict[str, Any]:
    state: dict[str, Any] = {
        "access_token": access, "refresh_token": refresh, "id_token": id_token, "scope": ["openid"],
        "token_response": {"access_token": access, "refresh_token": refresh, "id_token": id_token,
                           "expires_in": expires_in, "token_type": "Bearer"},
        "oauth_user": {"sub": "alice", "preferred_username": "alice"},
    }
    if expires_at is not None:
        state["expires_at"] = expires_at
    return state


def test_reads_its_owners_user_model_with_the_server_token_and_the_stamped_expiry() -> None:
    expires_at = time.time() + 9
    hub = Hub(auth_state("access-1", expires_at=expires_at))
    token = hub.provider().fetch()
    assert token.value.reveal() == "access-1"
    assert token.expires_at == datetime.fromtimestamp(expires_at, timezone.utc)
    request = hub.calls[0]
    assert str(request.url) == f"{API}/users/alice"  # not /user: auth_state is null there
    assert request.headers["Authorization"] == "token hub-server-token"


def test_without_a_stamp_the_expiry_is_expires_in_from_first_seen() -> None:
    hub = Hub(auth_state("access-1", expires_in=10))
    provider = hub.provider()
    before = time.time()
    first = provider.fetch()
    assert first.expires_at is not None
    assert before + 8.5 < first.expires_at.timestamp() <= time.time() + 9  # one second for flooring


def test_only_the_access_token_is_kept_and_the_others_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    access, refresh, id_token, server_token = (make_canary(None) for _ in range(4))
    hub = Hub(auth_state(access, refresh=refresh, id_token=id_token, expires_at=time.time() + 60))
    provider = JupyterHubToken(api_url=API, api_token=server_token, user="alice",
                               transport=httpx.MockTransport(hub.handler))
    token = provider.fetch()
    assert token.value.reveal() == access
    held = repr(vars(provider)) + repr(provider) + str(pickle.dumps(token.value))
    assert_no_secret(held, refresh, id_token, server_token, access)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("anything").warning("echo %s %s %s %s", refresh, id_token, server_token, access)
    assert_no_secret(caplog.text, refresh, id_token, server_token, access)
    assert_no_secret(scrub_text(f"{refresh} / {id_token}"), refresh, id_token)


@pytest.mark.parametrize(("hub", "names"), [
    (Hub(omit_auth_state=True), "admin:auth_state!user"),
    (Hub(None), "c.Authenticator.enable_auth_state = True"),
    (Hub({"oauth_user": {}}), "c.Authenticator.enable_auth_state = True"),
    (Hub(status=403), "c.JupyterHub.load_roles"),
    (Hub(status=404), "c.JupyterHub.load_roles"),
    (Hub({"refresh_token": "r"}), "GenericOAuthenticator"),
], ids=["no-scope", "auth-state-off", "empty", "403", "404", "no-access-token"])
def test_what_the_hub_lacks_is_named_as_the_setting_to_add(hub: Hub, names: str) -> None:
    with pytest.raises(CredentialProviderError) as caught:
        hub.provider().fetch()
    assert names in str(caught.value)
    assert "hub-server-token" not in str(caught.value)


def test_outside_a_hub_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _exact_messages(monkeypatch)
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.delenv(name, raising=False)
    assert not under_jupyterhub()
    with pytest.raises(CredentialProviderError, match="Not running under JupyterHub: JUPYTERHUB_API_URL, "
                                                       "JUPYTERHUB_API_TOKEN, JUPYTERHUB_USER are not set"):
        JupyterHubToken()


def test_an_expired_token_handed_out_again_names_the_hook_and_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub without the refresh hook hands out the same expired token until it refreshes."""
    _exact_messages(monkeypatch)
    hub = Hub(auth_state("old", expires_at=time.time() - 3))
    provider = hub.provider()
    assert provider.fetch().value.reveal() == "old"  # first sight: whatever the Hub says
    with pytest.raises(CredentialProviderError, match="refresh_user_hook") as caught:
        provider.fetch()
    assert "expired 3 s ago" in str(caught.value)
    for _ in range(20):  # a loop of callers: answered from memory, the Hub is not asked
        with pytest.raises(CredentialProviderError, match="the Hub is asked again at"):
            provider.fetch()
    assert len(hub.calls) == 2
    clock = [time.monotonic()]
    monkeypatch.setattr("prefect_nbauth.session.providers._jupyterhub.time.monotonic", lambda: clock[0])
    clock[0] += 1.1  # first backoff: 1 s; the Hub still has the old token: 2 s next
    with pytest.raises(CredentialProviderError, match="refresh_user_hook"):
        provider.fetch()
    clock[0] += 1.1
    with pytest.raises(CredentialProviderError, match="the Hub is asked again at"):
        provider.fetch()
    assert len(hub.calls) == 3
    hub.state = auth_state("new", expires_at=time.time() + 10)  # the Hub refreshed at last
    clock[0] += 1.0
    assert provider.fetch().value.reveal() == "new"
    assert len(hub.calls) == 4


def test_signed_out_at_the_hub_says_so_and_the_next_sign_in_is_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub({"signed_out": {"at": time.time(), "reason": "refused"}, "oauth_user": {}})
    provider = hub.provider(signed_out_poll=10)
    with pytest.raises(HubSignedOutError, match="alice is signed out") as caught:
        provider.fetch()
    assert "Sign in to JupyterHub again" in str(caught.value) and "no restart" in str(caught.value)
    clock = [time.monotonic()]
    monkeypatch.setattr("prefect_nbauth.session.providers._jupyterhub.time.monotonic", lambda: clock[0])
    clock[0] += 9
    with pytest.raises(HubSignedOutError):
        provider.fetch()
    assert len(hub.calls) == 1  # within the poll interval: not asked
    hub.state = auth_state("after-sign-in", expires_at=time.time() + 10)
    clock[0] += 1.5
    assert provider.fetch().value.reveal() == "after-sign-in"
    assert len(hub.calls) == 2


def test_never_two_hub_calls_in_flight() -> None:
    """Eight threads refreshing at once: one Hub call at a time (the Hub does not de-duplicate)."""
    hub = Hub(auth_state("access", expires_at=time.time() + 60))
    hub.delay, hub.rotate = 0.05, True
    provider = hub.provider()
    threads = [threading.Thread(target=provider.fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(hub.calls) == 8 and hub.most_in_flight == 1


def test_the_hubs_own_message_is_scrubbed() -> None:
    canary = make_canary(None)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=json.dumps({"message": f"no ({canary})"}))

    provider = JupyterHubToken(api_url=API, api_token=canary, user="alice", transport=httpx.MockTransport(handler))
    with pytest.raises(CredentialProviderError) as caught:
        provider.fetch()
    assert_no_secret(str(caught.value), canary)
    assert "HTTP 403" in str(caught.value)


def test_kernel_channels_on_tcp_with_other_people_on_the_host_are_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_nbauth import _kernel_channels as channels

    monkeypatch.setattr(channels, "other_people", lambda: ["bob", "carol"])
    monkeypatch.setattr(channels, "kernel_transport", lambda: ("tcp", "127.0.0.1"))
    warning = channels.exposure()
    assert warning is not None and "2 other account(s)" in warning
    assert 'c.Spawner.args = ["--KernelManager.transport=ipc"]' in warning
    monkeypatch.setattr(channels, "kernel_transport", lambda: ("ipc", "kernel-1"))
    assert channels.exposure() is None  # sockets in the 0700 runtime directory
    monkeypatch.setattr(channels, "kernel_transport", lambda: ("tcp", "127.0.0.1"))
    monkeypatch.setattr(channels, "other_people", lambda: [])
    assert channels.exposure() is None  # nobody else on the machine
    monkeypatch.setattr(channels, "kernel_transport", lambda: None)
    monkeypatch.setattr(channels, "other_people", lambda: ["bob"])
    assert channels.exposure() is None  # not a kernel


def test_asked_again_long_before_expiry_with_nothing_newer_says_refused_and_backs_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a refusal makes the kernel ask long before expiry: nothing newer at the Hub is an
    error naming the hook (a Hub without it hands out tokens that expired sooner than it knows)."""
    _exact_messages(monkeypatch)
    hub = Hub(auth_state("access-1", expires_at=time.time() + 60))
    provider = hub.provider()
    provider.fetch()
    with pytest.raises(CredentialProviderError, match="refused .* no newer one.*refresh_user_hook"):
        provider.fetch()
    for _ in range(10):
        with pytest.raises(CredentialProviderError):
            provider.fetch()
    assert len(hub.calls) == 2  # the loop of refused requests did not reach the Hub
    hub.state = auth_state("access-2", expires_at=time.time() + 60)
    clock = [time.monotonic() + 1.1]
    monkeypatch.setattr("prefect_nbauth.session.providers._jupyterhub.time.monotonic", lambda: clock[0])
    assert provider.fetch().value.reveal() == "access-2"


def test_near_its_expiry_nothing_newer_is_the_very_token_in_use() -> None:
    """Asked just before expiry (the proactive refresh) when the Hub has not refreshed yet: no error."""
    hub = Hub(auth_state("access-1", expires_at=time.time() + 2))
    provider = hub.provider()
    first = provider.fetch()
    assert provider.fetch() is first


def test_audit_reports_a_kernel_whose_channels_others_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_nbauth import _kernel_channels as channels
    from prefect_nbauth.auditing import Outcome
    from prefect_nbauth.auditing._transport import kernel_channels

    monkeypatch.setattr(channels, "other_people", lambda: ["bob"])
    monkeypatch.setattr(channels, "kernel_transport", lambda: ("tcp", "127.0.0.1"))
    finding = kernel_channels(None)  # type: ignore[arg-type]  # the rule reads the host, not the evidence
    assert finding is not None and finding.outcome is Outcome.FAIL
    assert "--KernelManager.transport=ipc" in finding.fix and "1 other account(s)" in finding.detail
    monkeypatch.setattr(channels, "kernel_transport", lambda: ("ipc", "kernel-1"))
    finding = kernel_channels(None)  # type: ignore[arg-type]
    assert finding is not None and finding.outcome is Outcome.PASS
    monkeypatch.setattr(channels, "kernel_transport", lambda: None)
    assert kernel_channels(None) is None  # type: ignore[arg-type]  # not a kernel: not in the report


def test_a_refused_hub_token_at_login_names_the_refresh_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub without the hook hands out an expired token: the login says what the admin adds."""
    from prefect_nbauth import AuthenticationError
    from prefect_nbauth.session import _hub_login, login_with_hub

    for name, value in (("JUPYTERHUB_API_URL", API), ("JUPYTERHUB_API_TOKEN", "t"), ("JUPYTERHUB_USER", "alice")):
        monkeypatch.setenv(name, value)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AuthenticationError("rejected (HTTP 401)", status_code=401)

    monkeypatch.setattr(_hub_login, "login", refuse)
    with pytest.raises(AuthenticationError) as caught:
        login_with_hub("http://gateway.test/api")
    assert "refresh_user_hook" in str(caught.value) and "alice" in str(caught.value)
    assert "Nothing was changed" in str(caught.value)
