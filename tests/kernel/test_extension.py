"""The IPython extension: %load_ext, %unload_ext and %load_ext again, in a real IPython shell."""

from __future__ import annotations

from typing import Any

SCENARIO = r"""
import io, contextlib, json
from IPython.core.interactiveshell import InteractiveShell

ip = InteractiveShell.instance()

def names():
    return sorted(n for n in ip.magics_manager.magics["line"] if n.startswith("prefect_"))

def run(line):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        result = ip.run_cell(line)
    error = result.error_in_exec or result.error_before_exec
    return type(error).__name__ if error else None, err.getvalue()

steps = {}
ip.run_line_magic("load_ext", "prefect_nbauth")
steps["loaded"] = names()
steps["status_after_load"] = run("%prefect_status --no-check --text")[0]
ip.run_line_magic("unload_ext", "prefect_nbauth")
steps["unloaded"] = names()
steps["status_after_unload"] = run("%prefect_status")
steps["still_registered"] = [c for c in ip.magics_manager.registry if "Prefect" in c]
ip.run_line_magic("load_ext", "prefect_nbauth")
steps["reloaded"] = names()
steps["status_after_reload"] = run("%prefect_status --no-check --text")[0]
print(json.dumps(steps))
"""


def test_unload_removes_every_magic_and_load_brings_them_back(run_scenario: Any) -> None:
    steps = run_scenario(SCENARIO)
    assert "prefect_login" in steps["loaded"] and "prefect_status" in steps["loaded"]
    assert steps["status_after_load"] is None
    assert steps["unloaded"] == []
    error, stderr = steps["status_after_unload"]
    assert error == "UsageError" or "not found" in stderr  # IPython: "Line magic function ... not found"
    assert steps["still_registered"] == []
    assert steps["reloaded"] == steps["loaded"]
    assert steps["status_after_reload"] is None
