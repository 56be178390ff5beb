"""The browser tests' JupyterLab: one per test module, on 127.0.0.1, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lab_support import JupyterLab
from notebook_support import canary_protected_server, notebook_env

from prefect_nbauth.testing._server import PrefectServer


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """The module's JupyterLab, NOT started yet: add to ``lab.env`` / ``lab.extra_args``, write
    notebooks into ``lab.work``, then ``lab.start()`` (in a later test of the module: a no-op).
    Its kernels get their own ``PREFECT_HOME`` and ``IPYTHONDIR`` (``lab.root / "ipython"``:
    the history a test scans) and no secret unless a test adds one. Stopping it (a test may
    do so first) shuts the kernels down, which writes their history.
    """
    tmp_path = tmp_path_factory.mktemp("lab")
    env = notebook_env(tmp_path, JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    lab = JupyterLab(tmp_path, env)
    lab.work.mkdir()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def canary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrefectServer, str]]:
    """A real Prefect server requiring ``nbuser:<canary>`` (a fresh password), shared by the
    browser tests that type it into the page: (server, canary)."""
    with canary_protected_server(tmp_path_factory.mktemp("browser-canary-server")) as (server, canary):
        yield server, canary
