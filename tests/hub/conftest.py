"""One team on one real JupyterHub for the whole session (every Hub test shares it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from prefect_nbauth.testing.hub import HubTeam

PEOPLE = ["alice", "bob", "carol"]


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubTeam]:
    """Prefect + the identity provider (10 s tokens) + the SSO gateway + JupyterHub, three
    real Unix users, each signed in through Chromium with a kernel logged in with --hub."""
    with HubTeam(PEOPLE, ttl=10, home=tmp_path_factory.mktemp("hub-team")) as team:
        for person in PEOPLE:
            team.sign_in(person)
        team.login_output = {}
        failures: list[BaseException] = []

        def log_in(person: str) -> None:  # each person's kernel at once: they are independent
            try:
                kernel = team.kernel(person)
                kernel.run("%load_ext prefect_nbauth")
                team.login_output[person] = kernel.run("%prefect_login --hub")
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                failures.append(exc)

        threads = [threading.Thread(target=log_in, args=(p,)) for p in PEOPLE]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        yield team
