"""Size rules for the package (issue 11), checked on the source so they stay true.

A module holds one idea: at most 500 lines. A function reads in one sitting: at
most 80 lines, docstring included, unless a comment in it starting ``# Long:``
says why it cannot be shorter.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_nbauth"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by what they hold): {long}"


def test_no_function_is_over_80_lines_without_a_stated_reason() -> None:
    long: list[str] = []
    for path in _sources():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                body = lines[node.lineno - 1:node.end_lineno]
                if len(body) > MAX_FUNCTION_LINES and not any(line.strip().startswith("# Long:")
                                                              for line in body):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({len(body)} lines)")
    assert not long, "functions over 80 lines with no '# Long:' comment saying why:\n" + "\n".join(long)


def test_the_checks_see_the_whole_package() -> None:
    # A wrong PACKAGE path would make both tests above pass on nothing.
    names = {p.name for p in _sources()}
    assert {"__init__.py", "_session.py", "_diagnosis.py"} <= names and len(names) > 30
