"""The part of an auth string before its ':' is shown only when it reads as a user name (issue 21, case 6).

Prefect compares the whole auth string; ``user:password`` is a convention. A random secret
that merely contains ``:`` has no user name: its first part is part of the secret, and
``status()``, the login log line and a rejection must show none of it.
"""

from __future__ import annotations

import logging

import pytest
from fake_servers import FakeServer, prefect_like

import prefect_nbauth as nb
from prefect_nbauth.testing.canaries import leaks

PREFIX = "Zq7Xr9Lm"  # what a generated token looks like: lower and upper case and digits
RANDOM = f"{PREFIX}:fK2-mQ8vT1_wZ5pL0sR4yB6n"


@pytest.mark.parametrize("auth_string, shown", [
    ("admin:pw", "admin"), ("nbuser:x", "nbuser"), ("svc:Status-Error-2026", "svc"),
    ("admin@corp:p@ss:w#rd%&!", "admin@corp"), ("svc-etl2:x", "svc-etl2"), ("user01:x", "user01"),
    ("alice+ci@example.com:x", "alice+ci@example.com"), ("1001:x", "1001"), ("deadbeef:x", "deadbeef"),
    (RANDOM, None), ("Zq7x:x", None), ("Alice:x", None), ("9f86d081884c7d65:x", None), ("a3f9c2:x", None),
    ("a$b:x", None), (":x", None), ("a" * 65 + ":x", None), ("no-colon-at-all", None), ("", None),
])
def test_the_first_part_is_shown_only_when_it_reads_as_a_user_name(auth_string: str, shown: str | None) -> None:
    from prefect_nbauth._secrets import auth_string_user, mask_auth_string

    assert auth_string_user(auth_string) == shown
    assert mask_auth_string(auth_string) == (f"{shown}:****" if shown else "****" if auth_string else "<empty>")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_random_auth_string_with_a_colon_shows_no_part_of_itself() -> None:
    logger, keep = logging.getLogger("prefect_nbauth"), _Keep()
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    with FakeServer(prefect_like(RANDOM)) as server:
        try:
            status = nb.login(f"{server.url}/api", auth_string=RANDOM)
            shown = "\n".join([str(status), repr(status), status.to_json(), str(nb.status()), *keep.lines])
            assert status.identity is None
            assert "no user name is known" in shown
            assert "logged in to" in shown
            assert PREFIX not in shown and leaks(shown, RANDOM) == []
            with pytest.raises(nb.AuthenticationError) as rejected:  # a wrong one names no "user"
                nb.login(f"{server.url}/api", auth_string=f"{PREFIX}:wrong-{RANDOM[-6:]}")
            assert PREFIX not in str(rejected.value) and "for user" not in str(rejected.value)
        finally:
            nb.logout()
            logger.removeHandler(keep)
            logger.setLevel(level)
