"""pytest fixtures for tests of code that logs in to Prefect (registered as a pytest11 plugin).

``prefect_auth_server``
    Session-scoped: one real ``prefect server start`` on a free 127.0.0.1 port that
    requires a freshly generated auth string (``.api_url``, ``.auth_string``,
    ``.auth_headers()``); stopped and removed at the end of the session.

``prefect_nbauth_login``
    Function-scoped: ``prefect_nbauth.login()`` to that server for the duration of
    one test (every Prefect client, flow and event client of the process uses it),
    then ``logout()``. Yields the :class:`~prefect_nbauth.AuthStatus`.

Importing this module (pytest does, in every run of every project where
prefect-nbauth is installed) imports nothing but pytest: Prefect, the harness and the
server are imported and started only when a test asks for a fixture
(``tests/unit/test_testing_harnesses.py`` checks what the import loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from ._server import PrefectServer


@pytest.fixture(scope="session")
def prefect_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real auth-protected Prefect server for the whole test session."""
    from ._server import auth_server

    with auth_server(home=tmp_path_factory.mktemp("prefect-auth-server")) as server:
        yield server


@pytest.fixture
def prefect_nbauth_login(prefect_auth_server: PrefectServer) -> Iterator[Any]:
    """Logged in to ``prefect_auth_server`` for one test; logged out afterwards."""
    from ..session import login, logout

    status = login(prefect_auth_server.api_url, auth_string=prefect_auth_server.auth_string)
    try:
        yield status
    finally:
        logout()
