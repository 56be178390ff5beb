"""``./scripts/test`` as the README writes it runs the suite on two workers, the run whose time
the README states; the caller's own choice of workers (or of none) is kept.

``scripts/_pytest_args.py`` is run as ``scripts/test`` runs it, with ``NBAUTH_TEST_DRY_RUN=1``
(print the pytest arguments instead of running pytest).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKERS = ["-n", "2", "--dist", "loadfile"]


def _dry_run(command: list[str], **env: str) -> list[str]:
    # Not as CI: with CI=true scripts/test would lint and build the version venvs first.
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PYTEST_ADDOPTS", "CI", "NBAUTH_LINT", "NBAUTH_PREBUILD_VERSIONS")}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**environ, "NBAUTH_TEST_DRY_RUN": "1", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def pytest_args(args: list[str], **env: str) -> list[str]:
    return _dry_run([sys.executable, "scripts/_pytest_args.py", *args], **env)


DEFAULTED = [
    [],
    ["-q"],
    ["-q", "-k", "login"],
    ["tests/unit", "-x", "-p", "no:randomly"],
    ["-rs"],  # -r's value "s", not -s
    ["-m", "not browser", "--durations=40"],
    ["-k", "-s"],  # -k's value
    ["--capture=fd"],
]
KEPT = [
    ["-n", "0"],
    ["-n0"],
    ["-n", "auto", "-q"],
    ["--numprocesses=4"],
    ["--numprocesses", "1"],
    ["--dist", "load"],
    ["-p", "no:xdist"],
    ["-pno:xdist"],
    ["-s"],
    ["-vs", "tests/unit"],
    ["--capture=no"],
    ["--capture", "no"],
    ["--pdb"],
    ["--trace"],
    ["--co", "-q", "tests/unit"],
    ["--collect-only"],
    ["--fixtures"],
    ["--markers"],
    ["-h"],
    ["--version"],
]


@pytest.mark.parametrize("args", DEFAULTED, ids=repr)
def test_two_workers_unless_the_caller_chose(args: list[str]) -> None:
    assert pytest_args(args) == [*WORKERS, *args]


@pytest.mark.parametrize("args", KEPT, ids=repr)
def test_the_callers_choice_is_kept(args: list[str]) -> None:
    assert pytest_args(args) == args


def test_pytest_addopts_counts_as_a_choice() -> None:
    assert pytest_args(["-q"], PYTEST_ADDOPTS="-p no:xdist") == ["-q"]
    assert pytest_args(["-q"], PYTEST_ADDOPTS="-x") == [*WORKERS, "-q"]


def test_scripts_test_as_the_readme_writes_it_runs_two_workers() -> None:
    """The whole script (venv check, chromium check), up to the pytest command line."""
    assert _dry_run(["bash", "scripts/test", "-q"]) == [*WORKERS, "-q"]


def test_ci_adds_only_durations() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    [command] = [line for line in ci.splitlines() if line.startswith("exec ")]
    assert command == "exec bash scripts/test -q --durations=40"


def test_the_docs_say_what_ci_runs_exactly() -> None:
    demo = (REPO / "docs" / "demo.md").read_text()
    assert "`./scripts/test -q --durations=40`" in demo
    assert "`pytest -n 2 --dist loadfile -q --durations=40`" in demo
    readme = (REPO / "README.md").read_text()
    assert re.search(r"`\./scripts/test`\s+runs the whole suite on two workers", readme)
