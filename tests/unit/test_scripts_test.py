"""``./scripts/test`` as the README writes it runs the suite on two workers, the run whose time
the README states; the caller's own choice of workers (or of none) is kept."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("nbauth_pytest_args", REPO / "scripts" / "_pytest_args.py")
assert _spec is not None and _spec.loader is not None
pytest_args_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pytest_args_module)
pytest_args = pytest_args_module.pytest_args
WORKERS = ["-n", "2", "--dist", "loadfile"]


@pytest.mark.parametrize("args", [
    [],
    ["-q"],
    ["-q", "-k", "login"],
    ["tests/unit", "-x", "-p", "no:randomly"],
    ["-rs"],  # -r's value "s", not -s
    ["-m", "not browser", "--durations=40"],
    ["-k", "-s"],  # -k's value
    ["--capture=fd"],
], ids=repr)
def test_two_workers_unless_the_caller_chose(args: list[str]) -> None:
    assert pytest_args(args, env={}) == [*WORKERS, *args]


@pytest.mark.parametrize("args", [
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
], ids=repr)
def test_the_callers_choice_is_kept(args: list[str]) -> None:
    assert pytest_args(args, env={}) == args


def test_pytest_addopts_counts_as_a_choice() -> None:
    assert pytest_args(["-q"], env={"PYTEST_ADDOPTS": "-p no:xdist"}) == ["-q"]
    assert pytest_args(["-q"], env={"PYTEST_ADDOPTS": "-x"}) == [*WORKERS, "-q"]


def test_scripts_test_runs_pytest_through_it_and_ci_adds_only_durations() -> None:
    script = (REPO / "scripts" / "test").read_text()
    last = [line for line in script.splitlines() if line.strip() and not line.startswith("#")][-1]
    assert last == 'exec "$ROOT/.venv/bin/python" "$ROOT/scripts/_pytest_args.py" "$@"'
    ci = (REPO / ".ci" / "run").read_text()
    [command] = [line for line in ci.splitlines() if line.startswith("exec ")]
    assert command == "exec bash scripts/test -q --durations=40"


def test_the_docs_say_what_ci_runs_exactly() -> None:
    demo = (REPO / "docs" / "demo.md").read_text()
    assert "`./scripts/test -q --durations=40`" in demo
    assert re.search(r"-n 2 --dist loadfile", demo)
    readme = (REPO / "README.md").read_text()
    assert "./scripts/test" in readme and "two workers" in readme
