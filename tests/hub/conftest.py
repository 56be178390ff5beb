"""One team on one real JupyterHub for the whole session (every Hub test shares it)."""

from __future__ import annotations

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
        for person in PEOPLE:
            kernel = team.kernel(person)
            kernel.run("%load_ext prefect_nbauth")
            team.login_output = getattr(team, "login_output", {})
            team.login_output[person] = kernel.run("%prefect_login --hub")
        yield team
