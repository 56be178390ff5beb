"""The house rules of the package layout, checked on the source (imports read with ast).

Nothing here lists files: every rule is computed from the import graph of the
package as it is, so a new module is checked the day it is written.

- no import cycles, lazy and ``TYPE_CHECKING`` imports included;
- a private module (``_x``) is imported only from inside the package that holds it:
  every other package goes through that package's ``__init__``;
- nothing below the root imports the root package (its ``__init__`` is the public API);
- every import of our own modules names something that exists;
- the flat core (the root's ``_x.py`` modules) never imports a subpackage: the
  products sit on the core, never under it;
- the core never imports IPython, ipywidgets, anywidget or the notebook layer, and the
  notebook layer never reaches into Prefect's internals itself;
- public ``__all__`` lists are sorted and every public name has a docstring.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_nbauth"
ROOT = PACKAGE.name
NOTEBOOK_LAYER = ("notebook", "widgets.py", "testing")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, wherever the import stands.

    ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else
    of ``pkg`` itself (the name comes from its ``__init__``).
    """
    name = _name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name if alias.name in MODULES or alias.name.split(".")[0] != ROOT
                          else alias.name.rsplit(".", 1)[0])
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                names.add(sub if sub in MODULES else target)
    names.discard(name)
    return names


GRAPH = {name: {n for n in _imports(path) if n.split(".")[0] == ROOT} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _private_reach(importer: str, imported: str) -> bool:
    """True when ``imported`` is a private module of a package that ``importer`` is not inside."""
    parts = imported.split(".")
    for i, part in enumerate(parts[1:], 1):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if not (importer == owner or importer.startswith(owner + ".")):
                return True
    return False


def test_the_graph_sees_the_whole_package() -> None:
    assert len(MODULES) > 100 and sum(len(v) for v in GRAPH.values()) > 300
    assert f"{ROOT}.session._state" in GRAPH[f"{ROOT}.session._login"]  # a plain relative import
    assert f"{ROOT}.session" in GRAPH[f"{ROOT}._streaming._credential"]  # through a package


def test_there_are_no_import_cycles_lazy_ones_included() -> None:
    assert _cycles() == []


def test_the_cycle_check_finds_a_cycle() -> None:
    GRAPH[f"{ROOT}._urls"].add(f"{ROOT}._exceptions")
    GRAPH[f"{ROOT}._exceptions"].add(f"{ROOT}._urls")
    try:
        assert [f"{ROOT}._exceptions", f"{ROOT}._urls"] in _cycles()
    finally:
        GRAPH[f"{ROOT}._urls"].discard(f"{ROOT}._exceptions")
        GRAPH[f"{ROOT}._exceptions"].discard(f"{ROOT}._urls")


def test_no_module_imports_another_packages_private_module() -> None:
    offenders = sorted(f"{importer} -> {imported}" for importer, imports in GRAPH.items()
                       for imported in imports if _private_reach(importer, imported))
    assert offenders == []
    assert _private_reach(f"{ROOT}.events._engine", f"{ROOT}._streaming._engine")
    assert not _private_reach(f"{ROOT}.events._engine", f"{ROOT}._streaming")
    assert not _private_reach(f"{ROOT}.session._login", f"{ROOT}._exceptions")


def test_nothing_below_the_root_imports_the_root() -> None:
    assert sorted(name for name, imports in GRAPH.items() if ROOT in imports) == []


def test_every_import_of_our_own_code_names_something_that_exists() -> None:
    """A module moved or renamed leaves no import of its old path behind (lazy ones included)."""
    missing = []
    for importer, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or (not node.level and not (node.module or "").startswith(ROOT)):
                continue
            package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
            base = package[: len(package) - (node.level - 1)] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target not in MODULES:
                missing.append(f"{importer}: {target}")
                continue
            defined = _defined_names(MODULES[target])
            missing += [f"{importer}: {target}.{a.name}" for a in node.names
                        if f"{target}.{a.name}" not in MODULES and a.name not in defined]
    assert missing == []


def _defined_names(path: Path) -> set[str]:
    """Every name a module binds at its top level (including under ``if TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Dict):  # PEP 562 lazy maps: {"Name": ".module"}
            names |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return names


def test_public_all_lists_are_sorted_and_every_public_name_is_documented() -> None:
    undocumented, unsorted = [], []
    for package in (ROOT, f"{ROOT}.session", f"{ROOT}.events", f"{ROOT}.logs", f"{ROOT}.runs",
                    f"{ROOT}.auditing", f"{ROOT}.widgets", f"{ROOT}.testing"):
        module = importlib.import_module(package)
        names = list(module.__all__)
        if names != sorted(names):
            unsorted.append(package)
        for name in names:
            value = getattr(module, name)
            if (callable(value) or isinstance(value, type)) and not (getattr(value, "__doc__", None) or "").strip():
                undocumented.append(f"{package}.{name}")
    assert unsorted == [] and undocumented == []


def _modules(where: str) -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    inside = [f for f in files if f.relative_to(PACKAGE).parts[0] in NOTEBOOK_LAYER]
    return inside if where == "notebook" else [f for f in files if f not in inside]


def test_the_core_never_imports_the_notebook_layer_or_its_libraries() -> None:
    offenders = {}
    # The package's own __init__ is the one bridge: its %load_ext hooks import the magics
    # lazily, inside the hook functions, so `import prefect_nbauth` never does.
    for path in [p for p in _modules("core") if p != PACKAGE / "__init__.py"]:
        bad = {n for n in _imports(path)
               if n.split(".")[0] in ("IPython", "ipywidgets", "anywidget")
               or n.startswith("prefect_nbauth.notebook") or n == "prefect_nbauth.widgets"}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_the_notebook_layer_goes_through_the_core_not_the_prefect_seam() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in _modules("notebook")
                 if any(n.endswith("_prefect_seam") for n in _imports(p))]
    assert offenders == []


def test_events_and_logs_are_siblings_on_the_shared_stream_engine() -> None:
    """One stream engine (``_streaming/``) under two products; neither product reaches into the other."""
    def users(package: str, of: str) -> list[str]:
        return sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / package).rglob("*.py")
                      if any(n.startswith(f"prefect_nbauth.{of}") for n in _imports(p)))

    assert users("_streaming", "events") == [] and users("_streaming", "logs") == []
    assert users("logs", "events") == [] and users("events", "logs") == []
    assert users("events", "_streaming") and users("logs", "_streaming")


def test_the_flat_core_never_reaches_up_into_a_product() -> None:
    """Products (session, streams, audit, runs, the notebook layer) sit on the core, never under it.

    Only the package's ``__init__`` (the public API, lazily) names them. A core module
    that imported one, even lazily, would make the core depend on what is built on it.
    """
    core = [name for name, path in MODULES.items()
            if path.parent == PACKAGE and path.name != "__init__.py" and path.name not in NOTEBOOK_LAYER]
    products = {name for name, path in MODULES.items() if path.parent != PACKAGE}
    offenders = {name: sorted(GRAPH[name] & products) for name in core if GRAPH[name] & products}
    assert len(core) > 10 and products
    assert offenders == {}


def test_nothing_reaches_the_test_suite_through_the_path() -> None:
    """Tutorials, benchmarks, scripts and the tests' own subprocesses import installed code only.

    What they share lives in :mod:`prefect_nbauth.testing`. The one exception: the version
    matrix puts the *repository root* on ``PYTHONPATH`` so that each old-Prefect venv runs the
    code under test (tests/prefect_versions.py says why).
    """
    root = PACKAGE.parent
    path_edit = re.compile(r"sys\.path\.(insert|append)|spec_from_file_location|PYTHONPATH")
    repo_root_only = {"tests/server/test_versions_matrix.py", "tests/prefect_versions.py",
                      "tests/versions_checks.py"}
    scanned, offenders = 0, []
    for folder in ("tests", "benchmarks", "scripts", "notebooks", "binder"):
        for path in (root / folder).rglob("*"):
            name = str(path.relative_to(root))
            if not path.is_file() or path.suffix not in {".py", ".ipynb", ".sh", ""} or path == Path(__file__):
                continue
            scanned += 1
            if path_edit.search(path.read_text(errors="replace")) and name not in repo_root_only:
                offenders.append(name)
    assert scanned > 50 and offenders == []


def test_every_html_widget_of_the_notebook_layer_passes_the_egress() -> None:
    """Widget state is saved in the notebook: each HTML view is a SafeHTML (scrubbed as it is set)."""
    pattern = re.compile(r"\b(?:widgets|ipywidgets)\.(?:HTML|HTMLMath)\s*\(")
    offenders = [str(p.relative_to(PACKAGE)) for p in (PACKAGE / "notebook").rglob("*.py")
                 if pattern.search(p.read_text()) and not (p.name == "_base.py" and "class SafeHTML" in p.read_text())]
    assert offenders == []
    assert pattern.search((PACKAGE / "notebook" / "widgets" / "_base.py").read_text()) is None
