"""The version facts as data: the floor, the event-loss pairings, and the seam checks.

Unit tests on the installed Prefect; the real pairings (each client in its own venv against
real servers) are in test_versions_matrix.py.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import prefect_nbauth as nb
from prefect_nbauth import _prefect_compat, _versions
from prefect_nbauth.auditing import Outcome
from prefect_nbauth.auditing._server_version import compatibility_finding


@pytest.mark.parametrize("installed", ["3.2.15", "3.3.7", "3.4.7", "2.20.27", "unknown"])
def test_below_the_floor_is_one_configuration_error_naming_both_versions(installed: str) -> None:
    with pytest.raises(nb.ConfigurationError) as info:
        _versions.require_supported_client(installed)
    assert installed in str(info.value) and "3.4.8" in str(info.value)
    assert "pip install -U 'prefect>=3.6.14'" in str(info.value)


@pytest.mark.parametrize("installed", ["3.4.8", "3.5.0", "3.6.13", "3.9.1", "3.10.0rc1"])
def test_the_floor_and_above_pass(installed: str) -> None:
    _versions.require_supported_client(installed)


def test_login_and_status_refuse_before_touching_prefect_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect

    monkeypatch.setattr(prefect, "__version__", "3.3.7")
    for call in (lambda: nb.login("http://127.0.0.1:9/api", auth_string="u:p"), nb.status, nb.logout):
        with pytest.raises(nb.ConfigurationError, match=r"3\.4\.8 or newer, but Prefect 3\.3\.7"):
            call()


def _loss(client: str, server: str | None, auth: str | None, auth_string_set: bool = True) -> list[str]:
    return _versions.compatibility_warnings(server, auth, auth_string_set=auth_string_set, client=client)


@pytest.mark.parametrize("client", ["3.4.8", "3.5.0", "3.6.0", "3.6.13"])
def test_an_old_emitter_against_an_auth_server_is_one_sentence_with_the_upgrade(client: str) -> None:
    [warning] = _loss(client, "3.9.1", "BASIC")
    assert warning.startswith("Events are lost") and client in warning
    assert warning.endswith("upgrade the client to Prefect 3.6.14 or newer.")
    # The server's advertised auth is unknown (status(check_server=False)): the client's auth
    # string stands for it.
    assert _loss(client, "3.9.1", None) == [warning]


@pytest.mark.parametrize("client", ["3.6.14", "3.6.29", "3.9.1"])
def test_a_new_emitter_against_a_new_server_is_fine(client: str) -> None:
    assert _loss(client, "3.9.1", "BASIC") == []
    assert _loss(client, "3.6.14", "BASIC") == []


def test_an_old_emitter_against_an_open_server_is_fine() -> None:
    assert _loss("3.5.0", "3.9.1", "none", auth_string_set=False) == []


@pytest.mark.parametrize("server", ["3.4.8", "3.4.25", "3.5.0", "3.6.13"])
def test_a_new_emitter_against_an_old_server_says_which_side_to_upgrade(server: str) -> None:
    [warning] = _loss("3.9.1", server, "BASIC")
    assert server in warning and "upgrade the server to Prefect 3.6.14 or newer" in warning
    assert "part of your auth string into its own error log" in warning
    [open_warning] = _loss("3.9.1", server, "none", auth_string_set=False)
    assert "error log" not in open_warning


@pytest.mark.parametrize("server", [None, "", "garbage", "2.20.1"])
def test_no_claim_without_a_known_prefect_3_server(server: str | None) -> None:
    assert _loss("3.5.0", server, "BASIC") == [] and _loss("3.9.1", server, "BASIC") == []


def test_prefect_cloud_is_never_paired() -> None:
    assert _loss("3.5.0", "3.9.1", "API key") == []


def test_the_audit_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_versions, "client_version", lambda: "3.5.0")
    bad = compatibility_finding("3.9.1", "BASIC", False)
    assert bad.check == "client-server-versions" and bad.outcome is Outcome.FAIL
    assert bad.fix == "Upgrade the client to Prefect 3.6.14 or newer."
    assert compatibility_finding("3.9.1", "none", False).outcome is Outcome.PASS
    assert compatibility_finding(None, "BASIC", False).outcome is Outcome.NOT_APPLICABLE
    assert compatibility_finding("3.9.1", None, True).outcome is Outcome.NOT_APPLICABLE
    monkeypatch.setattr(_versions, "client_version", lambda: "3.9.1")
    other = compatibility_finding("3.4.8", "BASIC", False)
    assert other.outcome is Outcome.FAIL and other.fix.startswith("Upgrade the server to Prefect 3.6.14")


# ------------------------------------------------------------------ seams


class _Api(BaseModel):
    url: str | None = None
    auth_string: str | None = None
    key: str | None = None


class _OldClient(BaseModel):  # ClientSettings before 3.4.8: no custom_headers
    max_retries: int = 5


class _OldSettings(BaseModel):
    api: _Api = _Api()
    client: _OldClient = _OldClient()


def test_model_copy_accepts_a_field_that_does_not_exist_which_is_why_we_check() -> None:
    copy = _OldClient().model_copy(update={"custom_headers": {"X": "1"}})
    assert "custom_headers" not in type(copy).model_fields  # nobody would ever read it


def test_a_missing_custom_headers_field_is_detected_only_when_headers_are_used() -> None:
    settings = _OldSettings()
    assert any("custom_headers" in m for m in
               _prefect_compat.missing_seams(settings, custom_headers=True, rotating=False))
    assert _prefect_compat.missing_seams(settings, custom_headers=False, rotating=False) == []
    with pytest.raises(nb.ConfigurationError, match="custom_headers.*Nothing was changed"):
        _prefect_compat.require_seams(settings, custom_headers=True, rotating=False)


def test_the_installed_prefect_has_every_seam() -> None:
    from prefect.settings import get_current_settings

    assert _prefect_compat.missing_seams(get_current_settings(), custom_headers=True, rotating=True) == []


def test_a_moved_prefect_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect._internal.websockets as ws
    from prefect.settings import get_current_settings

    monkeypatch.delattr(ws, "connect")
    missing = _prefect_compat.missing_seams(get_current_settings(), custom_headers=False, rotating=False)
    assert missing == ["prefect._internal.websockets.connect.process_redirect"]


def test_prefect_4_is_refused_as_untested() -> None:
    with pytest.raises(nb.ConfigurationError, match=r"Prefect 3 \(3\.4\.8 or newer\), but Prefect 4\.0\.0"):
        _versions.require_supported_client("4.0.0")
