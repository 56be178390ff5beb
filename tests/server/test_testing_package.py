"""prefect_nbauth.testing as a user gets it: the pytest plugin's fixtures, and auth_server()."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prefect_nbauth.testing import isolated_env

pytestmark = pytest.mark.server

USER_TESTS = '''
import pytest
from prefect import flow, get_client


def test_the_server_refuses_anonymous_calls(prefect_auth_server):
    import httpx
    assert httpx.get(prefect_auth_server.api_url + "/admin/version").status_code == 401


def test_logged_in_for_one_test(prefect_nbauth_login, prefect_auth_server):
    assert prefect_nbauth_login.mode.value == "basic"

    @flow(persist_result=False)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    with get_client(sync_client=True) as client:
        assert client.read_flows(limit=5)


def test_logged_out_after_the_fixture():
    import prefect_nbauth
    assert not prefect_nbauth.status(check_server=False).logged_in
'''


def test_a_users_own_tests_get_the_fixtures_from_the_entry_point(tmp_path: Path) -> None:
    """No conftest, no import: pytest finds the fixtures through the pytest11 entry point."""
    (tmp_path / "test_mine.py").write_text(textwrap.dedent(USER_TESTS))
    env = isolated_env(PREFECT_HOME=str(tmp_path / "home"), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout


def test_auth_server_requires_its_auth_string_and_leaves_nothing_behind(tmp_path: Path) -> None:
    code = textwrap.dedent('''
        import json, httpx
        from prefect_nbauth.testing import auth_server
        with auth_server() as server:
            home, pid = str(server.home), server.pid
            anonymous = httpx.get(server.api_url + "/admin/version").status_code
            authed = httpx.get(server.api_url + "/admin/version", headers=server.auth_headers()).status_code
        print(json.dumps({"home": home, "pid": pid, "anonymous": anonymous, "authed": authed}))
    ''')
    env = isolated_env(PREFECT_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["anonymous"], result["authed"]) == (401, 200)
    assert not Path(result["home"]).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(result["pid"], 0)
