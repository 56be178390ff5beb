"""The license the package declares is the license file the repository and the wheel carry.

The wheel itself is built (from what git tracks) in
``test_testing_harnesses.py::test_the_wheel_ships_the_harnesses_and_the_idp_scripts``, which
also looks for this file in it; here, what needs no build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import toml as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]


def _project() -> dict[str, object]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return data["project"]  # type: ignore[no-any-return]


def test_pyproject_names_the_license_file_that_is_there() -> None:
    project = _project()
    assert project["license"] == "Apache-2.0"
    files = project.get("license-files")
    assert files == ["LICENSE"], "pyproject.toml must name the LICENSE file (license-files), so builds carry it"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    # The whole Apache License 2.0, not a one-line mention: its title, its last section and its appendix.
    assert re.search(r"Apache License\s+Version 2\.0, January 2004", text)
    assert "9. Accepting Warranty or Additional Liability." in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert len(text) > 11_000


def test_the_readme_states_the_same_license() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## License", 1)[1]
    assert "Apache-2.0" in section and "(LICENSE)" in section, "the README's License section links the file"
