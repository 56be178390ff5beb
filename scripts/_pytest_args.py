"""The pytest command line of ``./scripts/test``: two workers unless the caller chose otherwise.

``./scripts/test ARGS`` runs ``python -m pytest`` with ``-n 2 --dist loadfile`` added
(pytest-xdist: two workers, a file's tests on one worker), because that is the run whose
time the README states; serially the suite takes about twice as long. Nothing is added
when the caller chose the workers (``-n N``, ``--numprocesses``, ``--dist``,
``-p no:xdist``, also through ``PYTEST_ADDOPTS``), or asked for something workers
spoil: a debugger (``--pdb``, ``--trace``), output not captured (``-s``,
``--capture=no``), or no test run at all (``--collect-only``, ``--fixtures``,
``--markers``, ``--help``, ``--version``…). ``-n 0`` runs in one process.

    python scripts/_pytest_args.py [PYTEST ARGS...]   (what scripts/test runs)

With ``NBAUTH_TEST_DRY_RUN=1`` it prints the pytest arguments (JSON) instead of running
pytest: what ``./scripts/test ARGS`` would run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence

__all__ = ["WORKERS", "chose_workers", "pytest_args"]

WORKERS = ["-n", "2", "--dist", "loadfile"]

# Short options of pytest (and xdist) that take a value: in "-rs" the "s" is -r's value.
_SHORT_WITH_VALUE = set("ckmnoprW")
# Long options that mean: the caller chose how to run, or workers would get in the way.
_LONG = {"--numprocesses", "--dist", "--pdb", "--trace", "--collect-only", "--co", "--fixtures",
         "--fixtures-per-test", "--markers", "--help", "--version", "--setup-plan", "--setup-only",
         "--looponfail"}
_SHORT = set("nshVf")  # -n N, -s, -h, -V, -f (looponfail)


def _short_flags(arg: str) -> tuple[set[str], str | None, str | None]:
    """The flags of a short-option cluster ("-qs"), and the option taking a value with its value."""
    flags: set[str] = set()
    body = arg[1:]
    for i, char in enumerate(body):
        if char in _SHORT_WITH_VALUE:
            return flags, char, body[i + 1:] or None
        flags.add(char)
    return flags, None, None


def chose_workers(args: Sequence[str]) -> bool:
    """True when these pytest arguments choose the workers, or ask for no workers."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            if name in _LONG or (name == "--capture" and value == "no"):
                return True
            if name == "--capture" and not value and i < len(args) and args[i] == "no":
                return True
            continue
        if not arg.startswith("-") or arg == "-":
            continue
        flags, with_value, value = _short_flags(arg)
        if flags & _SHORT:
            return True
        if with_value is None:
            continue
        if value is None and i < len(args):
            value = args[i]
            i += 1
        if with_value == "n" or (with_value == "p" and value in ("no:xdist", "no:xdist.plugin")):
            return True
    return False


def pytest_args(args: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``args`` with :data:`WORKERS` in front, unless :func:`chose_workers` (also for ``PYTEST_ADDOPTS``)."""
    env = os.environ if env is None else env
    addopts = shlex.split(env.get("PYTEST_ADDOPTS", ""))
    if chose_workers(args) or chose_workers(addopts):
        return list(args)
    return [*WORKERS, *args]


def main(argv: list[str]) -> None:
    args = pytest_args(argv)
    workers = args[: len(WORKERS)] == WORKERS
    if workers and importlib.util.find_spec("xdist") is None:  # not the [test] extra: one process
        args, workers = args[len(WORKERS):], False
    if os.environ.get("NBAUTH_TEST_DRY_RUN") == "1":
        print(json.dumps(args))
        return
    if workers:
        print("[test] two pytest workers (-n 2 --dist loadfile); `-n 0` runs in one process.", file=sys.stderr)
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
