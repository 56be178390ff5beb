"""Flows that prefect_nbauth.testing.logs.FlowProcess runs in a separate process (``python -m prefect.flow_engine``).

Sizes come from the environment so one file serves every test: ``LOG_LINES`` lines
at full speed, ``LOG_TASKS`` task runs that log one line each, ``LOG_FAIL=1`` to end
in Failed.
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger, task


@task
def step(index: int) -> int:
    get_run_logger().info("task step %d", index)
    return index


@flow(name="nbauth-log-burst")
def burst() -> int:
    logger = get_run_logger()
    lines = int(os.environ.get("LOG_LINES", "3000"))
    for index in range(int(os.environ.get("LOG_TASKS", "0"))):
        step(index)
    for index in range(lines):
        logger.info("line %05d", index)
    secret = os.environ.get("LOG_CANARY")
    if secret:
        logger.warning("the credential is %s", secret)
    if os.environ.get("LOG_FAIL") == "1":
        raise RuntimeError("this flow fails on purpose")
    return lines
