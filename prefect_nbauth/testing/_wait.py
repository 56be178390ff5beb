"""Waiting for a condition, with a deadline: what tests, tutorials and the harnesses do instead of sleeping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol, TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


class _Watched(Protocol):
    """What a wait needs of the process it watches (a harness's ``_process.Process``)."""

    log_path: Path

    def check_alive(self, doing: str | None = None) -> None: ...

    def exited(self, timeout: float = 0.0) -> bool: ...

    def log_tail(self, n: int = 3000) -> str: ...


def wait_until(condition: Callable[[], T], timeout: float = 60.0, what: str = "the condition",
               *, interval: float = 0.05, process: _Watched | None = None) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds. The condition is
    called every 0.05 s, or, with a larger ``interval``, first after 0.05 s and then less
    and less often, up to every ``interval`` seconds: a costly condition (a request to a
    server that is starting) wants one.

    ``process`` is the harness process the condition waits on (a Prefect server, nginx,
    PostgreSQL...): if it exits, the wait ends at once with ``ProcessExited`` (a
    ``RuntimeError``) saying how it ended, and that error and the ``TimeoutError`` show the
    tail of its log.
    """
    deadline = time.monotonic() + timeout
    delay = min(0.05, interval)
    while True:
        result = condition()
        if result:
            return result
        if process is not None:
            process.check_alive(f"waiting for {what}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = f"; log tail ({process.log_path}):\n{process.log_tail()}" if process is not None else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{tail}")
        if process is not None:
            process.exited(min(delay, remaining))  # a pause that ends early if the process does
        else:
            time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, interval)
