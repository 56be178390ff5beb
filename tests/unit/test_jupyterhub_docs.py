"""docs/jupyterhub.md shows the very configuration the Hub tests start JupyterHub with, and the
Helm values (not run here) carry the same hooks, character for character."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from prefect_nbauth.testing.hub import SHIPPED_CONFIG

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "jupyterhub.md").read_text()
CONFIG = (REPO / "docs" / "jupyterhub" / "jupyterhub_config.py").read_text()


def test_the_doc_shows_the_file_the_tests_start_the_hub_with() -> None:
    assert SHIPPED_CONFIG == REPO / "docs" / "jupyterhub" / "jupyterhub_config.py"
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    assert CONFIG in blocks, "docs/jupyterhub.md does not show jupyterhub_config.py as it is"


def test_the_config_has_what_the_kernel_side_needs() -> None:
    ast.parse(CONFIG)
    for needed in ('"admin:auth_state!user"]}', "c.Authenticator.enable_auth_state = True",
                   'extra_authorize_params = {"prompt": "consent"}', "refresh_user_hook = refresh_ahead_of_expiry",
                   'c.Spawner.args = ["--KernelManager.transport=ipc"]', "os.chmod(state_dir, 0o700)",
                   "c.Authenticator.refresh_pre_spawn = True"):
        assert needed in CONFIG, needed


def test_the_helm_values_carry_the_same_hooks_and_roles() -> None:
    values = yaml.safe_load((REPO / "docs" / "jupyterhub" / "values.yaml").read_text())
    code = values["hub"]["extraConfig"]["prefect-nbauth-refresh"]
    start, end = CONFIG.index("def stamp_expiry("), CONFIG.index("c.GenericOAuthenticator.modify_auth_state_hook")
    assert CONFIG[start:end].strip() in code
    assert re.search(r"^REFRESH_AHEAD = 5\.0$", code, re.M) and "REFRESH_AHEAD = 5.0" in CONFIG
    ast.parse(code)
    roles = values["hub"]["loadRoles"]
    assert "admin:auth_state!user" in roles["user"]["scopes"] and "admin:auth_state!user" in roles["server"]["scopes"]
    assert values["hub"]["config"]["GenericOAuthenticator"]["extra_authorize_params"] == {"prompt": "consent"}
    assert "NOT RUN HERE" in (REPO / "docs" / "jupyterhub" / "values.yaml").read_text()
