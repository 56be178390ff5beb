"""Size rules for the package, checked on the source so they stay true.

A module holds one idea: at most 500 lines of code. A function reads in one
sitting: at most 80 lines of code, unless a comment in it starting ``# Long:``
says why it cannot be shorter. Code is what runs: blank lines, comments and
docstrings do not count, so explaining a thing never pushes it over a limit.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_nbauth"
MAX_MODULE_CODE_LINES = 500
MAX_FUNCTION_CODE_LINES = 80


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str) and body[0].end_lineno:
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def code_lines(source: str) -> set[int]:
    """Numbers of the lines that hold code: not blank, not only a comment, not a docstring."""
    tree = ast.parse(source)
    docstrings = _docstring_lines(tree)
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                          tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING):
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return lines


def test_code_lines_count_code_only() -> None:
    source = '"""Doc\n\nmore doc."""\n\n# a comment\nx = 1\n\n\ndef f():\n    """Doc."""\n    return (x +\n            1)  # why\n'
    assert sorted(code_lines(source)) == [6, 9, 11, 12]


def test_no_module_is_over_500_lines_of_code() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _sources()
            if (n := len(code_lines(p.read_text()))) > MAX_MODULE_CODE_LINES}
    assert not long, f"modules over {MAX_MODULE_CODE_LINES} lines of code (split them by what they hold): {long}"


def test_no_function_is_over_80_lines_of_code_without_a_stated_reason() -> None:
    long: list[str] = []
    for path in _sources():
        source = path.read_text()
        code = code_lines(source)
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                span = range(node.lineno, node.end_lineno + 1)
                count = len(code.intersection(span))
                if count > MAX_FUNCTION_CODE_LINES and not any(
                        lines[n - 1].strip().startswith("# Long:") for n in span):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({count} lines of code)")
    assert not long, "functions over 80 lines of code with no '# Long:' comment saying why:\n" + "\n".join(long)


def test_the_checks_see_the_whole_package() -> None:
    # A wrong PACKAGE path would make the tests above pass on nothing: compare with what
    # the import system finds under the package (every module, whatever its name).
    import pkgutil

    import prefect_nbauth

    found = {m.name for m in pkgutil.walk_packages(prefect_nbauth.__path__, "prefect_nbauth.")
             if not m.ispkg}
    scanned = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in _sources()
               if p.name != "__init__.py"}
    assert found and found <= scanned
