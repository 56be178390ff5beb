"""The house rules of the package layout, checked on the source (imports read with ast).

- the core (everything outside ``notebook/``, ``widgets.py`` and ``testing/``) never
  imports IPython, ipywidgets, anywidget or the notebook layer;
- the notebook layer asks the core and never reaches into Prefect's internals
  itself (``_prefect_seam`` is the core's one place for that);
- nothing imports the pre-package module paths any more.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_nbauth"
NOTEBOOK_LAYER = ("notebook", "widgets.py", "testing")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative ones resolved)."""
    module = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(module.parts[:-1])  # the package the module is in (its own, for __init__)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - (node.level - 1)] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            names.add(target)
            names |= {f"{target}.{alias.name}" for alias in node.names}
    return names


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


def test_the_old_flat_module_paths_are_gone_for_good() -> None:
    old = ("_events", "_events_filter", "_events_ledger", "_events_reconcile", "_events_transport",
           "_audit", "_server", "magics", "_logs", "_logs_filter", "_logs_reconcile", "magics_runs", "_run_watch")
    assert [m for m in old if (PACKAGE / f"{m}.py").exists()] == []
    users = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p) if n.split(".")[1:2] in [[m] for m in old])
             for p in PACKAGE.rglob("*.py")}
    assert {k: v for k, v in users.items() if v} == {}


def test_events_and_logs_are_siblings_on_the_shared_stream_engine() -> None:
    """One stream engine (``_streaming/``) under two products; neither product reaches into the other."""
    def users(package: str, of: str) -> list[str]:
        return sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / package).rglob("*.py")
                      if any(n.startswith(f"prefect_nbauth.{of}") for n in _imports(p)))

    assert users("_streaming", "events") == [] and users("_streaming", "logs") == []
    assert users("logs", "events") == [] and users("events", "logs") == []
    assert users("events", "_streaming") and users("logs", "_streaming")


def test_the_flat_core_never_reaches_up_into_a_product() -> None:
    """Products (streams, audit, watching runs) sit on the core, never under it.

    Only the package's ``__init__`` (the public API) names them. A core module that
    imported one, even lazily, would make the core depend on what is built on it.
    """
    products = ("_streaming", "events", "logs", "runs", "auditing", "notebook", "testing")
    core = [p for p in PACKAGE.glob("_*.py") if p.name != "__init__.py"]
    offenders = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p) if n.startswith("prefect_nbauth.")
                                                     and n.split(".")[1] in products)
                 for p in core}
    assert len(core) > 20  # the glob sees the core
    assert {k: v for k, v in offenders.items() if v} == {}


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
