"""The browser tests' JupyterLab: one per test, on 127.0.0.1, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_support import JupyterLab
from notebook_support import notebook_env


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[JupyterLab]:
    """A JupyterLab NOT started yet: add to ``lab.env``, write notebooks into ``lab.work``,
    then ``lab.start()``. Its kernels get their own ``PREFECT_HOME`` and ``IPYTHONDIR``
    (``lab.root / "ipython"``: the history a test scans) and no secret unless a test adds one.
    Stopping it (the test may do so first) shuts the kernels down, which writes their history.
    """
    env = notebook_env(tmp_path, JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    lab = JupyterLab(tmp_path, env)
    lab.work.mkdir()
    try:
        yield lab
    finally:
        lab.stop()
