"""Shared fixtures: real Prefect servers and isolated scenario subprocesses."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from constants import AUTH_STRING  # noqa: F401  (re-exported for tests)

from prefect_nbauth.testing._server import PrefectServer, isolated_env

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent

RunScenario = Callable[..., Any]


def _server_fixture(tmp_path_factory: pytest.TempPathFactory, name: str, auth: str | None):
    server = PrefectServer(tmp_path_factory.mktemp(name), auth_string=auth)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server enforcing ``PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING``."""
    yield from _server_fixture(tmp_path_factory, "auth-server-home", AUTH_STRING)


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server without authentication."""
    yield from _server_fixture(tmp_path_factory, "open-server-home", None)


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def scenario_env(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ minus every PREFECT_*, plus an isolated PREFECT_HOME and no ephemeral server.

    Nothing of ``tests/`` is put on the path: scenario code imports only installed packages
    (its helpers are :mod:`prefect_nbauth.testing.probes`, ``.widgets``, ``.cut_proxy``),
    so what it runs is what a user's process would run.
    """
    result = isolated_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
        PYTHONUNBUFFERED="1",
    )
    result.update(env or {})
    return result


@pytest.fixture
def run_scenario(tmp_path: Path, request: pytest.FixtureRequest) -> RunScenario:
    """Run Python ``code`` in a fresh interpreter with an isolated Prefect environment.

    ``run_scenario(code, *, env=None, cwd=None, timeout=180)``: the code is dedented and
    written to a file; it must print its result as JSON on the LAST stdout line, which is
    parsed and returned. A non-zero exit, a timeout or an unparsable last line raises
    AssertionError with the tails of stdout and stderr. Each call gets its own fresh
    PREFECT_HOME and (by default) its own empty working directory, so no ``.env``,
    ``prefect.toml`` or ``pyproject.toml`` of the repository is picked up.
    """
    counter = itertools.count(1)

    def run(
        code: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 180,
    ) -> Any:
        n = next(counter)
        root = tmp_path / f"scenario-{n}"
        home = root / "prefect-home"
        work = root / "cwd"
        home.mkdir(parents=True)
        work.mkdir()
        script = root / "scenario.py"
        script.write_text(textwrap.dedent(code))

        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=str(cwd or work),
            env=scenario_env(home, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            raise AssertionError(
                f"scenario timed out after {timeout}s\n--- stdout ---\n{_tail(out)}"
                f"\n--- stderr ---\n{_tail(err)}"
            ) from None
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
        if proc.returncode != 0:
            raise AssertionError(
                f"scenario exited with {proc.returncode}\n--- stdout ---\n{_tail(out)}"
                f"\n--- stderr ---\n{_tail(err)}"
            )
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AssertionError(
                "scenario did not print JSON on its last stdout line\n--- stdout ---\n"
                f"{_tail(out)}\n--- stderr ---\n{_tail(err)}"
            ) from None

    return run


# Tests live in one folder per level; the folder is also a marker, so
# `./scripts/test -m "not browser"` (or `-m unit`, `-m "server or kernel"`) selects by level.
LEVELS = ("unit", "server", "kernel", "browser", "scale", "hub")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).relative_to(TESTS_DIR).parts
        if parts and parts[0] in LEVELS:
            item.add_marker(getattr(pytest.mark, parts[0]))


class SsoStack:
    """One identity provider and SSO gateway in front of the session's auth server (tests/…/test_sso_*)."""

    def __init__(self, idp: Any, gateway: Any, server: PrefectServer, passwords: dict[str, str]) -> None:
        self.idp, self.gateway, self.server, self.passwords = idp, gateway, server, passwords

    def cfg(self, user: str = "alice") -> dict[str, Any]:
        """What prefect_nbauth.testing.idp.sso_load needs in the kernel or scenario."""
        return {"api_url": self.gateway.api_url, "issuer": self.idp.issuer, "client_id": self.idp.device_client_id,
                "direct_api_url": self.server.api_url, "auth_string": AUTH_STRING, "user": user,
                "admin": {"issuer": self.idp.issuer, "token": self.idp._admin_token}}


@pytest.fixture(scope="session")
def sso_stack(auth_server: PrefectServer) -> Iterator[SsoStack]:
    """oidc-provider (5 s access tokens, people alice and bob) and nginx's SSO gateway, shared by the session."""
    from prefect_nbauth.testing.canaries import make_canary
    from prefect_nbauth.testing.idp import NginxGateway, OidcProvider

    passwords = {name: make_canary(None) for name in ("alice", "bob")}
    with OidcProvider(ttl=5, users=passwords) as idp, \
            NginxGateway.sso(auth_server.api_url, idp, auth_string=AUTH_STRING) as gateway:
        yield SsoStack(idp, gateway, auth_server, passwords)


@pytest.fixture(autouse=True)
def _secrets_seen_stay_with_their_test() -> Iterator[None]:
    """The egress remembers every secret made in the process (by design: a user's kernel is one
    process). Tests make hundreds, some of them words ("unknown", "EFGH" from a property test):
    each test's are forgotten after it, so they cannot mask another test's words."""
    from collections import OrderedDict

    from prefect_nbauth import _redaction

    with _redaction._lock:
        seen = OrderedDict(_redaction._seen)
    yield
    with _redaction._lock:
        _redaction._seen.clear()
        _redaction._seen.update(seen)
        _redaction._pattern = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """No test file leaves the main thread marked as running an event loop. Something that does
    (Playwright's sync API held open in a session fixture marks it between its calls) breaks
    every later ``asyncio.run`` and Playwright of the worker, far from the cause: the file's
    last test fails here instead, and the mark is cleared for the files after it. Checked
    when the file's own fixtures are gone (a module's browser may serve all its tests)."""
    import asyncio

    result = yield
    if nextitem is not None and nextitem.path == item.path:
        return result
    loop = asyncio._get_running_loop()
    if loop is not None:
        asyncio._set_running_loop(None)
        raise AssertionError(f"{item.path.name} left the main thread marked as running {loop!r}: "
                             "close whatever runs it (a browser, a loop) before the test ends")
    return result


# What each suite costs: the seconds of every phase (setup, call, teardown) of every test,
# summed per file and per folder, printed after the run and kept in
# test-artifacts/suite-costs.json. With xdist the workers' reports reach this process.
_COSTS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    _COSTS[path] = _COSTS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _COSTS or hasattr(config, "workerinput"):
        return
    folders: dict[str, float] = {}
    for path, seconds in _COSTS.items():
        folder = "/".join(path.split("/")[:2])
        folders[folder] = folders.get(folder, 0.0) + seconds
    files = sorted(_COSTS.items(), key=lambda kv: -kv[1])
    terminalreporter.write_sep("=", "what each suite costs (seconds of test phases, all workers)")
    terminalreporter.write_line("  ".join(f"{k}: {v:.0f}" for k, v in sorted(folders.items(), key=lambda kv: -kv[1]))
                                + f"  all: {sum(folders.values()):.0f}")
    for path, seconds in files[:15]:
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    out = REPO_ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "suite-costs.json").write_text(json.dumps({"folders": folders, "files": dict(files)}, indent=1))
