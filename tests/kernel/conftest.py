"""Fixtures the kernel-level widget tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from prefect_nbauth.testing.widgets import install_recording_comm


@pytest.fixture
def comm_log() -> Iterator[list[dict[str, Any]]]:
    """Every message the widgets created in this test send to the front end (restored after)."""
    import comm

    original = comm.create_comm
    yield install_recording_comm()
    comm.create_comm = original
