"""What the README, docs/ and the tutorials say about themselves stays true: how many
tutorials there are, which magics exist, where the tour goes next, and the figures quoted
in more than one place. Derived from the code and the files, never from a list kept here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10}


def _prose() -> dict[str, str]:
    """Every text a person reads about the project: README, docs/, the notebooks' markdown,
    the demo's and binder's own help."""
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "binder" / "README.md", REPO / "scripts" / "demo"]
    texts = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in pages}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[str(path.relative_to(REPO))] = "\n".join("".join(c["source"]) for c in cells)
    return texts


def _markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "markdown"]


def test_every_count_of_the_tutorials_is_right() -> None:
    counted = re.compile(r"\b(?:the |all )?(" + "|".join(NUMBER_WORDS) + r"|\d+) (?:tutorials?|tutorial notebooks|"
                         r"notebooks)\b|\bruns all (" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
    wrong = []
    for name, text in _prose().items():
        for match in counted.finditer(text):
            word = (match.group(1) or match.group(2)).lower()
            number = NUMBER_WORDS.get(word) or int(word)
            if number != len(NOTEBOOKS):
                wrong.append(f"{name}: {match.group(0)!r}")
    assert len(NOTEBOOKS) == 5 and wrong == [], "\n".join(wrong)


def test_notebook_01_names_every_magic_the_extension_registers() -> None:
    from prefect_nbauth.notebook.magics import MAGICS

    registered = {name for cls in MAGICS for names in cls.magics.values() for name in names}
    assert len(registered) >= 8
    [intro] = [text for text in _markdown(NOTEBOOKS[0]) if "`%load_ext prefect_nbauth` adds the magics" in text]
    named = set(re.findall(r"`%(\w+)`", intro))
    assert registered - named == set(), f"notebook 01 does not name {sorted(registered - named)}"
    assert named - registered == set(), f"notebook 01 names magics that do not exist: {sorted(named - registered)}"


@pytest.mark.parametrize("index", range(len(NOTEBOOKS)), ids=[p.stem for p in NOTEBOOKS])
def test_each_tutorial_ends_by_pointing_to_the_next(index: int) -> None:
    last = _markdown(NOTEBOOKS[index])[-1]
    if index + 1 < len(NOTEBOOKS):
        assert f"**Next:** `{NOTEBOOKS[index + 1].name}`" in last, last
    else:
        assert "That's the tour" in last and "Next:" not in last, last


def test_the_same_measurement_is_quoted_with_the_same_figure() -> None:
    """Prefect's own subscriber on a 1,000-event burst: one measurement, one number everywhere."""
    burst = re.compile(r"1,000[^.]{0,80}?Prefect's (?:own )?(?:events )?subscriber (?:got |as )?(\d+)")
    quoted = {name: found for name, text in _prose().items() if (found := burst.findall(text.replace("\n", " ")))}
    quoted = {name: found[0] for name, found in quoted.items()}
    assert {"README.md", "docs/events.md", "docs/demo.md"} <= set(quoted), quoted
    assert len(set(quoted.values())) == 1, quoted


def test_the_headless_demo_time_is_stated_once_and_the_same() -> None:
    texts = _prose()
    readme = re.search(r"a headless demo (?:takes )?about (\d+ (?:s|minutes))\b", texts["README.md"])
    demo = re.search(r"a headless run takes about (\d+ (?:s|minutes))\b", texts["docs/demo.md"])
    assert readme and demo and readme.group(1) == demo.group(1)


def test_the_disk_the_tests_use_is_stated_where_the_code_puts_it() -> None:
    """Each folder the tests fill (named by the code that fills it) is in docs/demo.md's disk table,
    with how to reclaim it; the README states the total and links the table."""
    import os

    from old_prefect import VENV_DIR
    from prefect_versions import VENVS_DIR

    from prefect_nbauth.testing.idp import cache_dir

    section = _prose()["docs/demo.md"].split("## Disk the tests use", 1)[1].split("\n## ", 1)[0]
    in_clone = [REPO / ".venv", VENVS_DIR, VENV_DIR, REPO / "test-artifacts"]  # the last: browser and notebook tests
    ignored = (REPO / ".gitignore").read_text().split()
    for folder in in_clone:
        name = folder.relative_to(REPO).as_posix()
        assert f"| `{name}/` |" in section and f"`rm -rf {name}`" in section, name
        assert f"{name}/" in ignored, f"{name} is not git-ignored"
    xdg = cache_dir().parent.relative_to(os.path.expanduser("~/.cache")).as_posix()  # prefect-nbauth
    assert f"`~/.cache/{xdg}/`" in section and f"`rm -rf ~/.cache/{xdg}`" in section
    assert re.search(r"about [\d.]+ GB of disk.*\(docs/demo\.md#disk-the-tests-use-and-how-to-get-it-back\)",
                     _prose()["README.md"])
