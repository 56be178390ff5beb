"""The rules of prefect_nbauth._children on plain values (the real processes: tests/server/test_children.py)."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_nbauth.session import _children

SECRET = "svc:Children-Secret-1"


@pytest.fixture
def in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_children, "_in_force", [lambda: True])
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.delenv("PREFECT_API_KEY", raising=False)


def _context(**api: Any) -> dict[str, Any]:
    return {"flow_run_context": {}, "settings_context": {"profile": {"name": "x"}, "settings": {
        "api": {"url": "http://127.0.0.1:9/api"} | api, "client": {"max_retries": 5}}}}


def test_a_task_environment_keeps_settings_but_not_the_credential_from_settings(in_force, monkeypatch) -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_API_AUTH_STRING": SECRET,
           "PREFECT_API_KEY": "pnu_x", "PREFECT_HOME": "/h"}
    assert _children.child_environment(env) == {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": "/h"}
    assert env["PREFECT_API_AUTH_STRING"] == SECRET  # a new dict: Prefect's is never changed
    # The process's own environment already had it (every child inherits it anyway): kept.
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", SECRET)
    assert _children.child_environment(env)["PREFECT_API_AUTH_STRING"] == SECRET


def test_nothing_changes_while_no_login_is_in_force(monkeypatch) -> None:
    monkeypatch.setattr(_children, "_in_force", [lambda: False])
    env = {"PREFECT_API_AUTH_STRING": SECRET}
    context = _context(auth_string=SECRET)
    assert _children.child_environment(env) == env
    assert _children.stored_context(context) is context
    assert _children.loaded_context(_context()) == _context()


def test_a_stored_context_loses_the_credential_and_only_that(in_force) -> None:
    context = _context(auth_string=SECRET, key="pnu_x", request_timeout=60)
    stored = _children.stored_context(context)
    assert stored["settings_context"]["settings"]["api"] == {"url": "http://127.0.0.1:9/api", "request_timeout": 60}
    assert stored["settings_context"]["settings"]["client"] == {"max_retries": 5}
    assert stored["flow_run_context"] == {} and context["settings_context"]["settings"]["api"]["auth_string"] == SECRET
    for odd in (None, {}, {"settings_context": {}}, {"settings_context": {"settings": {"api": "x"}}}):
        assert _children.stored_context(odd) == odd


def test_a_context_read_back_gets_the_login_in_force_for_its_api_only(in_force, monkeypatch) -> None:
    class Api:
        url = "http://127.0.0.1:9/api"
        key = None

        class auth_string:  # noqa: N801 - shaped like pydantic's SecretStr
            @staticmethod
            def get_secret_value() -> str:
                return SECRET

    class Settings:
        api = Api

    monkeypatch.setattr(_children.seam, "global_settings_context", lambda: type("C", (), {"settings": Settings}))
    loaded = _children.loaded_context(_context())
    assert loaded["settings_context"]["settings"]["api"]["auth_string"] == SECRET
    other = _context(url="http://127.0.0.1:10/api")
    assert _children.loaded_context(other) == other  # another server: its own worker's credential
    theirs = _context(auth_string="their:own")
    assert _children.loaded_context(theirs) == theirs  # one it carries is never replaced
