"""The harnesses in prefect_nbauth.testing (stack, idp, logs, events, canaries, notebooks) as a user gets them.

They ship in the wheel (the IdP's scripts as package data), import without the optional
extras, say which extra to install when one is missing, keep npm packages out of the
package directory, and leak no secret through their reprs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from repo_copy import copy_tracked

from prefect_nbauth.testing import isolated_env
from prefect_nbauth.testing.canaries import assert_no_secret, leak_forms, leaks, make_canary

REPO = Path(__file__).resolve().parents[2]
HARNESSES = ["prefect_nbauth.testing.stack", "prefect_nbauth.testing.stack.cases", "prefect_nbauth.testing.idp",
             "prefect_nbauth.testing.idp.load", "prefect_nbauth.testing.logs", "prefect_nbauth.testing.events",
             "prefect_nbauth.testing.canaries", "prefect_nbauth.testing.notebooks"]
# What only the extras bring: blocked (sys.modules[name] = None makes an import fail).
EXTRAS_ONLY = ["nbclient", "nbformat", "prefect_redis", "uvicorn", "starlette", "jwt", "pytest"]


def _run(code: str, tmp_path: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=isolated_env(PREFECT_HOME=str(tmp_path / "home"),
                                                                   XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_harnesses_import_without_the_extras_and_name_the_extra_when_used(tmp_path: Path) -> None:
    result = _run(f"""
        import importlib, json, sys
        for name in {EXTRAS_ONLY!r}:
            sys.modules[name] = None
        for module in {HARNESSES!r}:
            importlib.import_module(module)
        from prefect_nbauth.testing.notebooks import execute_notebook
        from prefect_nbauth.testing.stack import ScaledStack
        errors = []
        for call in (lambda: execute_notebook("missing.ipynb"),
                     lambda: ScaledStack(auth_string="a:b").start()):
            try:
                call()
            except ModuleNotFoundError as exc:
                errors.append(str(exc))
        print(json.dumps({{"errors": errors}}))
    """, tmp_path)
    notebook_error, stack_error = result["errors"]  # type: ignore[misc]
    assert "nbformat" in notebook_error and "pip install 'prefect-nbauth[notebook]'" in notebook_error
    assert "prefect_redis" in stack_error and "pip install 'prefect-nbauth[test]'" in stack_error


@pytest.mark.parametrize("name", ["RotatingGateway", "CloudGateway"])
def test_a_gateway_without_the_testing_extra_names_the_extra(tmp_path: Path, name: str) -> None:
    """``from prefect_nbauth.testing import RotatingGateway`` without PyJWT/uvicorn says what to install."""
    result = _run(f"""
        import json, sys
        for blocked in ("jwt", "uvicorn", "starlette"):
            sys.modules[blocked] = None
        try:
            from prefect_nbauth.testing import {name}
            print(json.dumps({{"error": None}}))
        except ModuleNotFoundError as exc:
            print(json.dumps({{"error": str(exc)}}))
    """, tmp_path)
    error = str(result["error"])
    assert "pip install 'prefect-nbauth[testing]'" in error and "No module named" not in error


def test_the_pytest_plugin_imports_nothing_until_a_fixture_is_used(tmp_path: Path) -> None:
    """Every pytest run where prefect-nbauth is installed imports the plugin: it must cost nothing.

    Measured in the same interpreter as ``import pytest`` (what pytest itself costs), and by
    what it loads: no Prefect, no HTTP or websocket library, no harness. The time is also
    printed side by side by ``benchmarks/plugin_import.py``.
    """
    result = _run("""
        import json, sys, time
        started = time.perf_counter()
        import pytest
        pytest_seconds = time.perf_counter() - started
        before = set(sys.modules)
        started = time.perf_counter()
        import prefect_nbauth.testing.plugin
        plugin_seconds = time.perf_counter() - started
        print(json.dumps({"new": sorted(set(sys.modules) - before), "pytest": pytest_seconds,
                          "plugin": plugin_seconds}))
    """, tmp_path)
    new = set(result["new"])  # type: ignore[arg-type]
    assert new == {"prefect_nbauth", "prefect_nbauth._version", "prefect_nbauth.testing",
                   "prefect_nbauth.testing.plugin"}, sorted(new)


def test_the_idp_installs_npm_packages_into_the_users_cache_not_the_package(tmp_path: Path) -> None:
    result = _run("""
        import json
        import prefect_nbauth.testing.idp as idp
        print(json.dumps({"cache": str(idp.cache_dir()), "package": str(idp.__file__)}))
    """, tmp_path)
    cache = Path(str(result["cache"]))
    assert cache.is_relative_to(tmp_path / "cache" / "prefect-nbauth")
    assert not cache.is_relative_to(Path(str(result["package"])).parent.parent)


def test_npm_keeps_its_download_cache_in_the_same_folder_not_in_home(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """All the real IdP puts outside the clone is one folder: $XDG_CACHE_HOME/prefect-nbauth."""
    import subprocess as sp

    from prefect_nbauth.testing.idp import _install

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(_install.shutil, "which", lambda name: f"/usr/bin/{name}")
    ran: list[list[str]] = []
    monkeypatch.setattr(_install.subprocess, "run", lambda argv, **kw: ran.append(argv) or sp.CompletedProcess(argv, 0))
    _install.ensure_oidc_provider()
    [argv] = ran
    assert argv[:2] == ["npm", "install"]
    assert argv[argv.index("--cache") + 1] == str(tmp_path / "xdg" / "prefect-nbauth" / "npm-cache")
    assert argv[argv.index("--prefix") + 1] == str(_install.cache_dir())
    assert _install.cache_dir().is_relative_to(tmp_path / "xdg" / "prefect-nbauth")


def test_the_wheel_ships_the_harnesses_and_the_idp_scripts(tmp_path: Path) -> None:
    """Built from what git tracks, as a release would be (build isolation: pyproject's setuptools)."""
    src = copy_tracked(tmp_path / "src")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("prefect_nbauth-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in HARNESSES:
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module
    for asset in ("idp.mjs", "gateway.js"):
        assert f"prefect_nbauth/testing/idp/assets/{asset}" in names
    assert "prefect_nbauth/testing/_log_flows.py" in names  # FlowProcess runs it by path
    # The license file pyproject names, and the license it declares (PEP 639 metadata).
    [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert zipfile.ZipFile(wheel).read(license_file) == (REPO / "LICENSE").read_bytes()
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_a_stack_never_shows_its_secrets_in_a_repr() -> None:
    from prefect_nbauth.testing.stack import ScaledStack

    canary = make_canary("admin")
    stack = ScaledStack(auth_string=canary)
    shown = repr(stack)  # also before start(): no attribute it has not set yet
    assert_no_secret(shown, canary)
    assert stack._db_password not in shown and "ScaledStack(" in shown


def test_the_canary_forms_cover_the_encodings_a_secret_leaks_in() -> None:
    canary = make_canary("user")
    password = canary.split(":", 1)[1]
    import base64
    from urllib.parse import quote

    text = f"Authorization: Basic {base64.b64encode(canary.encode()).decode()} and ?p={quote(password, safe='')}"
    assert {base64.b64encode(canary.encode()).decode(), quote(password, safe="")} <= set(leaks(text, canary))
    assert password in leak_forms(canary) and json.dumps(password)[1:-1] in leak_forms(canary)
    with pytest.raises(AssertionError):
        assert_no_secret(text, canary)
    with pytest.raises(TypeError):
        assert_no_secret(text)


def test_the_canary_forms_find_a_secret_buried_in_a_base64_blob_at_any_offset() -> None:
    """As Task.delay() stored a settings context: a pickle, base64-encoded inside JSON."""
    import base64
    import pickle

    canary = make_canary()
    for offset in range(6):
        blob = base64.b64encode(b"x" * offset + pickle.dumps({"auth_string": canary})).decode()
        assert leaks(json.dumps({"result": blob}), canary), offset
    assert leaks(base64.b64encode(b"a harmless text " * 20).decode(), canary) == []
