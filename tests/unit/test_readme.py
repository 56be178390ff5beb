"""The README reads in two minutes: what it is, one screenshot, two commands, a quickstart;
the reference material is in docs/ pages it links, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _outside_code(text: str) -> str:
    return re.sub(r"(?ms)^```.*?^```", "", text)


def test_first_screen_has_the_screenshot_the_two_commands_and_the_quickstart() -> None:
    first_screen = "\n".join(README.splitlines()[:60])
    image = re.search(r"!\[[^\]]+\]\((docs/img/[^)]+\.png)\)", first_screen)
    assert image, "no screenshot on the first screen"
    png = REPO / image.group(1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < png.stat().st_size < 400_000
    assert "## Two commands" in first_screen and "## 30-second quickstart" in first_screen
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", README, re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["./scripts/demo", "./scripts/test"]  # --headless is a flag
    assert "--headless" in block.group(1)
    assert re.search(r"takes about \d+ minutes", README), "the test time is not stated"


def test_no_placeholder_badge_is_rendered() -> None:
    assert "OWNER/REPO" not in _outside_code(README)
    assert "mybinder.org/v2/gh/OWNER/REPO" in (REPO / "docs" / "demo.md").read_text()  # what to change, said


def test_the_readme_is_short_and_the_reference_moved_to_docs() -> None:
    assert len(README.encode()) < 5_000
    for heading in ("What status() checks", "Delivery contract", "Benchmarks", "Token rotation"):
        assert f"## {heading}" not in README
    docs = "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    for moved in ("**Delivery contract.**", "benchmarks/login.py", "**Mode and URL**", "OAuth2ClientCredentials",
                  "%prefect_login --url URL --auth-string-env VAR", "## Why not just set `os.environ`?"):
        assert moved in docs, moved


def test_every_relative_link_resolves() -> None:
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _outside_code(page.read_text())):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"
