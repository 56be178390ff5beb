"""Fixtures the real-server tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from constants import AUTH_STRING

import prefect_nbauth as nb


@pytest.fixture
def login() -> Iterator[Callable[..., Any]]:
    """``login(api_url, auth_string=AUTH_STRING)``; logs out after the test whatever happens."""
    try:
        yield lambda url, auth=AUTH_STRING: nb.login(url, auth_string=auth)
    finally:
        nb.logout()
