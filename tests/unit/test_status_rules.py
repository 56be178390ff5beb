"""status()'s checks, one rule at a time, on facts built by hand (no server, no login).

Each rule is a small function of :class:`Facts`; these tests show each one fires on
the case it names and stays quiet otherwise, and that status() runs every rule there is.
The same checks against a real server are in tests/server/test_login_real.py.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from prefect_nbauth.session import _status, _status_rules
from prefect_nbauth.session._auth_status import AuthMode
from prefect_nbauth.session._sources import CREDENTIAL_SETTINGS
from prefect_nbauth.session._status_rules import RULES, Facts, Origin, warnings_for
from prefect_nbauth.testing.canaries import assert_no_secret, make_canary

URL = "https://prefect.example.com/api"
CLOUD = "https://api.prefect.cloud/api"


def _settings(*, skip_verify: bool = False, ephemeral: bool = False) -> Any:
    return SimpleNamespace(api=SimpleNamespace(tls_insecure_skip_verify=skip_verify),
                           server=SimpleNamespace(ephemeral=SimpleNamespace(enabled=ephemeral)))


def facts(**overrides: Any) -> Facts:
    base = Facts(settings=_settings(), url=URL, auth_string=None, api_key=None, custom_headers={},
                 cloud_api_url=CLOUD, mode=AuthMode.NONE, auth_header_name=None, login=None,
                 ours=False, replaced=False, local_context=False)
    return replace(base, **overrides)


def fired(rule: Any, f: Facts) -> list[str]:
    return list(rule(f))


def _at_run_time(values: dict[str, Any]) -> dict[str, Any]:
    """An expiry given as an offset becomes a time now, when the test runs (not at collection)."""
    offset = values.get("expires_at")
    if isinstance(offset, timedelta):
        return {**values, "expires_at": datetime.now(timezone.utc) + offset}
    return values


def test_status_runs_every_rule_the_module_defines() -> None:
    defined = {fn for name, fn in inspect.getmembers(_status_rules, inspect.isfunction)
               if fn.__module__ == _status_rules.__name__ and name != "warnings_for"
               and not name.startswith("_")}  # private helpers of the rules
    assert defined == set(RULES)


def test_the_quiet_case_has_no_warning() -> None:
    assert warnings_for(facts(auth_string="u:p", mode=AuthMode.BASIC)) == ()


CASES = [
    (_status_rules.settings_replaced, {"replaced": True}, {}, "replaced the settings"),
    (_status_rules.inside_local_context, {"local_context": True}, {}, "settings context"),
    (_status_rules.sources_out_of_step, {"origins": {"X": Origin("env", "X changed")}},
     {"origins": {"X": Origin("env")}}, "X changed"),
    (_status_rules.auth_string_and_api_key, {"auth_string": "u:p", "api_key": "pnu_" + "a" * 36},
     {"auth_string": "u:p"}, "ignores the API key"),
    (_status_rules.header_replaces_credential, {"auth_header_name": "authorization", "auth_string": "u:p"},
     {"auth_header_name": "authorization"}, "custom authorization header"),
    (_status_rules.unusable_auth_string, {"auth_string": "u:p\n"}, {"auth_string": "u:p"}, "cannot work"),
    (_status_rules.unusable_api_key, {"api_key": "pnu_short\n"}, {"api_key": "pnu_" + "a" * 36},
     "cannot work"),
    (_status_rules.api_key_off_cloud, {"api_key": "pnu_x", "mode": AuthMode.API_KEY},
     {"api_key": "pnu_x", "mode": AuthMode.API_KEY, "url": CLOUD + "/accounts/a/workspaces/w"},
     "not Prefect Cloud"),
    (_status_rules.plain_http, {"url": "http://prefect.example.com/api", "mode": AuthMode.BASIC},
     {"url": "http://prefect.example.com/api"}, "http"),
    (_status_rules.tls_checks_off, {"settings": _settings(skip_verify=True)}, {}, "TLS certificate"),
    (_status_rules.no_api_url, {"url": None}, {}, "No PREFECT_API_URL"),
    (_status_rules.no_api_url, {"url": None, "settings": _settings(ephemeral=True)}, {},
     "temporary local server"),
    (_status_rules.token_expiry, {"expires_at": timedelta(seconds=-1)},
     {"expires_at": timedelta(seconds=-1), "rotating": True}, "expired"),
    (_status_rules.token_expiry, {"expires_at": timedelta(minutes=2)},
     {"expires_at": timedelta(hours=1)}, "expires soon"),
    (_status_rules.server_answer, {"server": {"auth": "BASIC"}}, {"server": {"auth": "BASIC"},
     "mode": AuthMode.BASIC, "auth_string": "u:p"}, "requires an auth string"),
    (_status_rules.server_answer, {"server": {"rejection": "HTTP 401"}, "mode": AuthMode.BASIC},
     {"server": {}, "mode": AuthMode.BASIC}, "rejects the credential in force: HTTP 401"),
    (_status_rules.server_answer, {"server": {"auth": "none"}, "mode": AuthMode.BASIC},
     {"server": {"auth": "none"}}, "does not check auth strings"),
    (_status_rules.server_answer, {"server": "Server check failed: refused"}, {"server": None},
     "Server check failed"),
    (_status_rules.version_pairing, {"server_version": "3.9.1", "server_auth": "BASIC",
     "auth_string": "u:p"}, {"server_version": None}, "event"),
]


@pytest.mark.parametrize(("rule", "trigger", "quiet", "words"), CASES)
def test_each_rule_fires_on_its_case_only(rule: Any, trigger: dict[str, Any], quiet: dict[str, Any],
                                          words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if rule is _status_rules.version_pairing:
        import prefect

        monkeypatch.setattr(prefect, "__version__", "3.4.8")  # a client that loses events there
    found = fired(rule, facts(**_at_run_time(trigger)))
    assert found and any(words.lower() in w.lower() for w in found), found
    assert fired(rule, facts(**_at_run_time(quiet))) == []


# Warnings are shown as they are in the status widget: words for a person, not Python.
PYTHON_WORDING = re.compile(r"\b[a-z_]+=(…|\.\.\.|'|\"|\()")
DOUBLED_PERIOD = re.compile(r"(?<![.])\.\.(?![.])|…\.")


def test_no_warning_reads_as_python_or_ends_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect

    monkeypatch.setattr(prefect, "__version__", "3.4.8")
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:pw")
    shown = [w for rule, trigger, _, _ in CASES for w in fired(rule, facts(**_at_run_time(trigger)))]
    shown += fired(_status_rules.server_setting_on_client, facts())
    assert len(shown) >= len(CASES)
    for warning in shown:
        assert not PYTHON_WORDING.search(warning), warning
        assert not DOUBLED_PERIOD.search(warning), warning


def test_the_server_setting_on_a_client_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:pw")
    assert "PREFECT_SERVER_API_AUTH_STRING" in fired(_status_rules.server_setting_on_client, facts())[0]
    assert fired(_status_rules.server_setting_on_client, facts(auth_string="admin:pw")) == []


def test_a_token_whose_expiry_is_unknown_and_one_that_fails_to_refresh() -> None:
    def token(slot: str, *, refreshable: bool, last_error: str | None) -> Any:
        info = {"slot": slot, "provider": "CommandToken('get-token')", "expires_at": None,
                "last_error": last_error, "failures": 2 if last_error else 0}
        return SimpleNamespace(slot=slot, provider=SimpleNamespace(refreshable=refreshable),
                               snapshot=lambda: info)

    login = SimpleNamespace(tokens={"a": token("header X-Token", refreshable=True, last_error=None),
                                    "b": token("auth string", refreshable=True, last_error="exit 1.")})
    found = fired(_status_rules.token_health, facts(login=login, ours=True))
    assert len(found) == 2 and "no known expiry" in found[0] and "failed (2 time(s)): exit 1." in found[1]
    assert fired(_status_rules.token_health, facts(login=login, ours=False)) == []


def test_a_warning_given_by_two_rules_is_shown_once() -> None:
    twice = (lambda f: ["same"], lambda f: ["same", "other"])
    assert warnings_for(facts(), twice) == ("same", "other")


def _candidate(source: str, value: Any) -> Any:
    return SimpleNamespace(source=source, value=value)


def test_where_a_value_came_from_and_when_a_source_is_ignored() -> None:
    spec = next(s for s in CREDENTIAL_SETTINGS if s.name == "PREFECT_API_AUTH_STRING")
    env, profile = "environment variable", "profile 'default'"
    assert _status._origin(spec, "u:p", [_candidate(env, "u:p")], ours=False) == Origin(env)
    assert _status._origin(spec, "u:p", [], ours=True) == Origin("login()")
    set_late = _status._origin(spec, None, [_candidate(env, "u:x")], ours=False)
    assert set_late.source is None and set_late.warning and "after `import prefect`" in set_late.warning
    changed = _status._origin(spec, "u:p", [_candidate(env, "u:x"), _candidate(profile, "u:p")], ours=False)
    assert changed.source == profile and changed.warning and "(value hidden)" in changed.warning
    stale = _status._origin(spec, "u:p", [_candidate(env, "u:x")], ours=False)
    assert stale.source and "since import" in stale.source and stale.warning
    assert _status._origin(spec, None, [], ours=False) == Origin(None)


def test_the_credential_text_masks_every_secret() -> None:
    secret = make_canary()
    token = make_canary(user=None)
    for f in (facts(mode=AuthMode.BASIC, auth_string=secret, custom_headers={"X-Gw": token}),
              facts(mode=AuthMode.BASIC, auth_string=secret.split(":", 1)[1]),
              facts(mode=AuthMode.API_KEY, api_key="pnu_" + token),
              facts(mode=AuthMode.HEADERS, custom_headers={"Authorization": "Bearer " + token})):
        text = _status._credential_text(f)
        assert_no_secret(text, secret, token)
        assert text.split(" ", 1)[0] in {"auth", "API", "headers"}
    assert _status._credential_text(facts(mode=AuthMode.BASIC, auth_string="nbuser:" + token)).startswith(
        "auth string nbuser:")
