"""The login form under JupyterHub: "Use my Hub sign-in (alice)" first and chosen; elsewhere not
offered. (Logging in through it against a real Hub: tests/hub/test_hub_real.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from prefect_nbauth.widgets import LoginWidget

HUB_ENV = {"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "not-a-real-token",
           "JUPYTERHUB_USER": "alice"}


def test_under_a_hub_the_hub_sign_in_is_the_first_choice_and_the_default(
        comm_log: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in HUB_ENV.items():
        monkeypatch.setenv(name, value)
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    try:
        assert [c.title() for c in form._choices][:2] == ["Use my Hub sign-in (alice)", "Self-hosted server"]
        assert form.mode == "hub"
        assert form.panels["hub"].secret_boxes() == []  # nothing to type
        assert "signed you in as <b>alice</b>" in form.panels["hub"].parts["note"].value
    finally:
        form.close()


def test_outside_a_hub_it_is_not_offered(comm_log: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HUB_ENV:
        monkeypatch.delenv(name, raising=False)
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    try:
        assert "hub" not in [c.key for c in form._choices] and form.mode == "auth-string"
    finally:
        form.close()
