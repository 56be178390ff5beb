"""docs/sso.md shows the gateway configuration the tests run, exactly (the files, not a copy that drifts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "prefect_nbauth" / "testing" / "idp" / "assets"
DOC = (REPO / "docs" / "sso.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["sso_http.conf", "sso_stream.conf", "gateway.js", "prefect_socket.js"])
def test_the_doc_shows_the_tested_gateway_file_exactly(name: str) -> None:
    blocks = re.findall(r"```(?:nginx|javascript)\n(.*?)```", DOC, re.S)
    assert (ASSETS / name).read_text(encoding="utf-8") in blocks, f"docs/sso.md does not show {name} as it is"


def test_the_untested_gateways_say_so() -> None:
    for heading in ("## oauth2-proxy (not run here)", "## Traefik forwardAuth (not run here)"):
        assert heading in DOC
