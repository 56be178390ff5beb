"""DeviceSignIn against an identity provider played by httpx.MockTransport.

The real provider (oidc-provider with Chromium approving) is in tests/server/test_sso_real.py;
here are the answers a real one rarely gives on demand: slow_down, expired_token, a
provider without the device grant, an unreachable or TLS-failing issuer, a forged ID
token, a refresh token refused, and many threads wanting a refresh at once.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_idp import CLIENT, ISSUER, FakeIdP

import prefect_nbauth as nb
from prefect_nbauth.session._refreshing import RefreshingToken
from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.canaries import assert_no_secret, make_canary


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


def provider(idp: FakeIdP, **kwargs: Any) -> nb.DeviceSignIn:
    return nb.DeviceSignIn(ISSUER, CLIENT, transport=httpx.MockTransport(idp), prompt=lambda p: None, **kwargs)


def signed_in(idp: FakeIdP, **kwargs: Any) -> nb.DeviceSignIn:
    sso = provider(idp, **kwargs)
    sso.start().wait(30)
    return sso


def test_a_sign_in_shows_the_link_and_code_and_polls_until_approved(idp: FakeIdP) -> None:
    idp.polls = [{"error": "authorization_pending"}] * 3
    sso = provider(idp)
    pending = sso.start()
    assert pending.prompt.link == f"{ISSUER}/device?user_code=ABCD-EFGH" and pending.prompt.user_code == "ABCD-EFGH"
    assert "ABCD-EFGH" in pending.prompt.text() and "DEVICE-" not in repr(pending)
    pending.wait(30)
    assert idp.count("/token") == 4 and sso.signed_in and sso.identity() == "alice"
    first = sso.obtain()
    assert first.value.reveal().startswith("AT1-") and idp.count("/token") == 4  # no refresh for the first
    sent = [f for p, f in idp.requests if p == "/device/auth"][0]
    assert sent == {"client_id": [CLIENT], "scope": ["openid profile email offline_access"]}


def test_slow_down_adds_five_seconds_for_good(idp: FakeIdP) -> None:
    idp.polls = [{"error": "authorization_pending"}, {"error": "slow_down"}]
    pending = provider(idp).start()
    assert wait_until(lambda: pending.interval >= 5, timeout=30)
    assert pending.interval == pytest.approx(5.01) and pending.polls == 2
    pending.cancel()
    with pytest.raises(nb.SignInCancelledError):
        pending.wait(30)


def test_no_interval_means_five_seconds(idp: FakeIdP) -> None:
    del idp.device_answer["interval"]
    pending = provider(idp).start()
    assert pending.interval == 5.0
    pending.cancel()


@pytest.mark.parametrize(("error", "raised"), [("access_denied", nb.SignInDeniedError),
                                               ("expired_token", nb.SignInExpiredError),
                                               ("invalid_request", nb.SignInError)])
def test_the_end_of_a_sign_in_is_a_clear_error(idp: FakeIdP, error: str, raised: type) -> None:
    idp.polls = [{"error": error, "error_description": "no " + make_canary(None)}]
    pending = provider(idp).start()
    with pytest.raises(raised) as caught:
        pending.wait(30)
    assert isinstance(caught.value, nb.PrefectAuthError) and ("again" in str(caught.value) or ISSUER in str(caught.value))
    assert "Traceback" not in str(caught.value)


def test_a_code_that_expires_here_ends_the_sign_in(idp: FakeIdP) -> None:
    idp.device_answer["expires_in"] = 0.05
    idp.polls = [{"error": "authorization_pending"}] * 1000
    with pytest.raises(nb.SignInExpiredError, match="expired before it was approved"):
        provider(idp).start().wait(30)


def test_a_second_sign_in_cancels_the_first(idp: FakeIdP) -> None:
    idp.polls = [{"error": "authorization_pending"}] * 1000
    sso = provider(idp)
    first = sso.start()
    second = sso.start()
    with pytest.raises(nb.SignInCancelledError, match="newer sign-in"):
        first.wait(30)
    assert not second.done
    sso.cancel()
    with pytest.raises(nb.SignInCancelledError):
        second.wait(30)


def test_an_issuer_without_the_device_grant_is_refused_with_what_to_ask(idp: FakeIdP) -> None:
    del idp.discovery["device_authorization_endpoint"]
    with pytest.raises(nb.DeviceFlowUnsupportedError, match="device_authorization_endpoint") as caught:
        provider(idp).start()
    assert isinstance(caught.value, nb.ConfigurationError)


def test_an_unreachable_or_wrong_issuer_says_so(idp: FakeIdP) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    def tls(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("certificate verify failed") from ssl.SSLCertVerificationError("CERTIFICATE_VERIFY_FAILED")

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nope</html>")

    cases = [(refuse, "Could not connect"), (tls, "TLS failed"), (html, "is not an OpenID provider")]
    for handler, words in cases:
        sso = nb.DeviceSignIn(ISSUER, CLIENT, transport=httpx.MockTransport(handler))
        with pytest.raises(nb.IssuerUnreachableError, match=words):
            sso.start()
    idp.discovery["issuer"] = "https://elsewhere.example.test"
    with pytest.raises(nb.IssuerUnreachableError, match="names another issuer"):
        provider(idp).start()
    with pytest.raises(nb.ConfigurationError):
        nb.DeviceSignIn("login.example.test", CLIENT)


@pytest.mark.parametrize("shape", ["{c}", "https://me:{c}@login.example.test", "https://login.example.test/?t={c}",
                                   "https://login.example.test/#{c}", "https://[{c}"])
def test_an_issuer_that_cannot_be_one_is_refused_without_being_quoted(shape: str) -> None:
    """A token pasted as the issuer, or an issuer URL holding a password, is never repeated."""
    canary = make_canary(None)
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.DeviceSignIn(shape.format(c=canary), CLIENT)
    assert_no_secret(str(raised.value), canary)
    assert "not shown" in str(raised.value)


def test_an_id_token_signed_by_someone_else_is_not_a_sign_in(idp: FakeIdP) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.tokens = lambda: {"access_token": "AT-x", "expires_in": 300, "refresh_token": "RT-x",  # type: ignore[method-assign]
                          "id_token": jwt.encode({"iss": ISSUER, "aud": CLIENT, "sub": "mallory",
                                                  "iat": int(time.time()), "exp": int(time.time()) + 60},
                                                 forger, algorithm="RS256", headers={"kid": "k1"})}
    with pytest.raises(nb.IssuerUnreachableError, match="cannot be trusted"):
        provider(idp).start().wait(30)


def test_refresh_follows_rotation_one_grant_in_flight_however_many_ask(idp: FakeIdP) -> None:
    sso = signed_in(idp)
    first = sso.obtain()
    idp.refresh_delay = 0.2
    results: list[nb.Token] = []
    threads = [threading.Thread(target=lambda: results.append(sso.obtain())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert idp.count("/token") == 2  # the device poll, then ONE refresh grant
    assert {r.value.reveal() for r in results} == {"AT2-" + results[0].value.reveal()[4:]}
    assert first.value != results[0].value and sso.rotations == 1
    sent = [f for p, f in idp.requests if p == "/token"][1]
    assert sent["refresh_token"][0].startswith("RT1-") and sent["client_id"] == [CLIENT]
    sso.obtain()  # the next one uses the rotated refresh token (RT1 is spent)
    assert [f for p, f in idp.requests if p == "/token"][2]["refresh_token"][0].startswith("RT2-")
    assert sso.rotations == 2


def test_a_refused_refresh_token_signs_out_once_and_nothing_is_retried(idp: FakeIdP, caplog: Any) -> None:
    sso = signed_in(idp)
    token = RefreshingToken(sso, slot="header Authorization")
    token.fetch_initial()
    token.start()
    idp.valid_refresh.clear()  # revoked at the provider
    asked = []
    fetch = sso.fetch
    sso.fetch = lambda: (asked.append(1), fetch())[1]  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="prefect_nbauth"):
        with pytest.raises(nb.SignedOutError, match="Signed out by the identity provider"):
            token.refresh(reason="HTTP 401")
        grants = idp.count("/token")
        for _ in range(20):
            with pytest.raises(nb.SignedOutError):
                token.refresh(reason="HTTP 401")
        # The background thread has a second to retry; it must not, nor ask the provider.
        with pytest.raises(TimeoutError):
            wait_until(lambda: idp.count("/token") > grants or len(asked) > 1, timeout=1.0)
    token.stop()
    assert idp.count("/token") == grants and token.ended is not None and len(asked) == 1
    assert sum("Signed out by the identity provider" in r.getMessage() for r in caplog.records) == 1
    assert sso.signed_out and sso.identity() is None and "signed out" in sso.describe()


def test_logout_revokes_the_refresh_token_and_says_so(idp: FakeIdP) -> None:
    sso = signed_in(idp)
    refresh = next(iter(idp.valid_refresh))
    note = sso.close()
    assert note is not None and "Revoked the refresh token" in note and sso.revoked_at_close is True
    revoked = [f for p, f in idp.requests if p == "/token/revocation"][0]
    assert revoked == {"token": [refresh], "token_type_hint": ["refresh_token"], "client_id": [CLIENT]}
    assert not sso.signed_in and refresh not in note

    del idp.discovery["revocation_endpoint"]
    other = signed_in(idp)
    note = other.close()
    assert note is not None and "offers no token revocation" in note and other.revoked_at_close is False


def test_the_refresh_and_id_tokens_never_show(idp: FakeIdP, caplog: Any) -> None:
    sso = signed_in(idp)
    with caplog.at_level(logging.DEBUG):
        token = sso.obtain()
        sso.obtain()
        logging.getLogger("somewhere").warning("echo %s %s", idp.tokens()["refresh_token"], "x")
    held = sso._held
    assert held is not None and held.refresh is not None and held.id_token is not None
    shown = " ".join([repr(sso), sso.describe(), str(sso.sign_in), repr(held.refresh), repr(held.id_token),
                      repr(token), caplog.text])
    assert_no_secret(shown, held.refresh.reveal(), held.id_token.reveal())
    assert "alice" in sso.describe()


def test_persist_refuses_without_a_secret_store_and_keeps_a_named_file_0600(idp: FakeIdP, tmp_path: Any) -> None:
    with pytest.raises(nb.ConfigurationError, match="keyring can use") as refused:
        provider(idp, persist=True)
    assert "persist='~/" in str(refused.value)  # what to do instead

    path = tmp_path / "sso" / "refresh-token"
    sso = signed_in(idp, persist=path)
    assert path.stat().st_mode & 0o777 == 0o600 and str(path) in sso.describe()
    saved = json.loads(path.read_text())["refresh_token"]
    assert saved in idp.valid_refresh

    again = provider(idp, persist=path)  # a new kernel: the stored token signs in, no device flow
    assert again.obtain().value.reveal().startswith("AT2-") and again.identity() == "alice"
    assert idp.count("/device/auth") == 1
    again.close()
    assert not path.exists()


def test_persist_true_uses_the_platform_secret_store(idp: FakeIdP, monkeypatch: Any) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class Store(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        saved: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.saved.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.saved[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.saved.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Store())
    try:
        sso = signed_in(idp, persist=True)
        assert list(Store.saved.values()) == [next(iter(idp.valid_refresh))]
        assert "platform secret store" in sso.describe()
        sso.close()
        assert Store.saved == {}
    finally:
        keyring.set_keyring(previous)


def test_a_sign_in_token_that_waited_too_long_is_refreshed_before_use(idp: FakeIdP) -> None:
    """The person approved, then the login took its time (``import prefect``): no expired first token."""
    sso = provider(idp)
    tokens = idp.tokens
    idp.tokens = lambda: {**tokens(), "expires_in": 1}  # type: ignore[method-assign]
    sso.start().wait(30)
    first = sso.obtain()
    assert first.value.reveal().startswith("AT2-") and idp.count("/token") == 2  # refreshed, not handed out stale


# ------------------------------------------------------------------ the notebook widget


def test_the_widget_shows_link_and_code_cancels_and_a_second_one_replaces_the_first(idp: FakeIdP) -> None:
    from prefect_nbauth.testing.widgets import all_state_json, install_recording_comm
    from prefect_nbauth.widgets import DeviceSignInWidget

    install_recording_comm()
    idp.polls = [{"error": "authorization_pending"}] * 10_000
    first = DeviceSignInWidget("http://127.0.0.1:9/api", provider=provider(idp))
    wait_until(lambda: first.state == "waiting", 30, "the first code")
    state = all_state_json(first)
    assert "ABCD-EFGH" in state and f"{ISSUER}/device?user_code=ABCD-EFGH" in state and 'target=\\"_blank\\"' in state
    assert idp.device_answer["device_code"] not in state and "DEVICE-" not in state
    assert "ABCD-EFGH" in first.text_form()

    second = DeviceSignInWidget("http://127.0.0.1:9/api", provider=provider(idp))
    assert first.wait(30) and first.state == "cancelled" and "newer sign-in" in first.message
    wait_until(lambda: second.state == "waiting", 30, "the second code")
    second._cancel.click()  # the Cancel button
    assert second.wait(30) and second.state == "cancelled"
    assert second._again.layout.display == "" and second._cancel.disabled


def test_the_widget_says_why_when_the_login_after_approval_fails(idp: FakeIdP) -> None:
    from prefect_nbauth.widgets import DeviceSignInWidget

    sign_in = DeviceSignInWidget("http://127.0.0.1:9/api", provider=provider(idp), timeout=2)
    assert sign_in.wait(60) and sign_in.state == "failed", sign_in.message
    assert "Login failed" in sign_in.message and "Traceback" not in sign_in.message
