#!/usr/bin/env python3
"""Execute notebooks in a real Jupyter kernel and say what each cell showed.

    python -m prefect_nbauth.testing.notebooks notebooks/01_login.ipynb [more.ipynb ...]

For every code cell it prints the first line of the source, the time the cell
took and its outputs, compacted (text only, long outputs truncated); markdown
headings are printed as section markers. Then one line per notebook: PASS or
FAIL, cells run, errors, seconds (kernel start-up included).

    python -m prefect_nbauth.testing.notebooks notebooks/0*.ipynb   # ./scripts/demo --headless

A notebook FAILS when a cell has an error output (an exception shown to the
user), when a stderr stream shows a traceback, when the kernel dies or a cell
times out, or when any output, or the widget state nbclient records in the
notebook's metadata, contains the value of a secret environment variable
(``--secret-env``, by default ``PREFECT_NBAUTH_DEMO_AUTH_STRING``), raw or
base64-encoded. A final summary gives one line per notebook and the total; the
exit status is non-zero if any notebook failed.

The notebooks on disk are never modified: execution happens on a copy in
memory. ``--save-executed DIR`` writes the executed copies into DIR.

The helpers (:func:`execute_notebook`, :func:`format_cell`, :class:`NotebookReport`)
are importable, for tests that want the same checks. They need the ``notebook`` extra
(nbclient, nbformat, ipykernel), imported only when a notebook is executed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._extras import require

__all__ = [
    "CellReport",
    "NotebookReport",
    "OutputSummary",
    "execute_notebook",
    "format_cell",
    "main",
    "summarize_outputs",
]

DEFAULT_SECRET_ENV = ("PREFECT_NBAUTH_DEMO_AUTH_STRING", "PREFECT_NBAUTH_DEMO_SSO_PASSWORD")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_TRACEBACK = "Traceback (most recent call last)"


@dataclass
class OutputSummary:
    """One output of a cell, as text: kind is stdout, stderr, result, display or error."""

    kind: str
    text: str


@dataclass
class CellReport:
    index: int  # position in the notebook, from 1
    cell_type: str
    source: str
    outputs: list[OutputSummary] = field(default_factory=list)
    seconds: float | None = None  # None: not executed

    @property
    def errors(self) -> list[OutputSummary]:
        return [o for o in self.outputs if o.kind == "error"]

    @property
    def stderr_tracebacks(self) -> list[OutputSummary]:
        return [o for o in self.outputs if o.kind == "stderr" and _TRACEBACK in o.text]


@dataclass
class NotebookReport:
    path: Path
    cells: list[CellReport] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def code_cells_run(self) -> int:
        return sum(1 for c in self.cells if c.cell_type == "code" and c.seconds is not None)

    @property
    def code_cells(self) -> int:
        return sum(1 for c in self.cells if c.cell_type == "code" and c.source.strip())

    def summary_line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        n_errors = sum(len(c.errors) for c in self.cells)
        line = (f"{verdict} {self.path}: {self.code_cells_run}/{self.code_cells} code cells run, "
                f"{n_errors} error output{'s' if n_errors != 1 else ''}, {self.seconds:.1f} s")
        if self.problems:
            line += " -- " + "; ".join(self.problems)
        return line


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def summarize_outputs(outputs: Iterable[Any]) -> list[OutputSummary]:
    """The text a user would see for each output (rich outputs: their text/plain form)."""
    result: list[OutputSummary] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            name = "stderr" if out.get("name") == "stderr" else "stdout"
            text = _ANSI.sub("", _text(out.get("text", "")))
            if result and result[-1].kind == name:  # streams arrive in pieces
                result[-1].text += text
            else:
                result.append(OutputSummary(name, text))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/plain" in data:
                text = _ANSI.sub("", _text(data["text/plain"]))
            else:
                text = "<" + ", ".join(sorted(data)) + ">"
            result.append(OutputSummary("result" if kind == "execute_result" else "display", text))
        elif kind == "error":
            tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            head = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
            result.append(OutputSummary("error", head + ("\n" + tb if tb else "")))
    return result


def _first_line(source: str, width: int) -> str:
    for line in source.splitlines():
        if line.strip():
            return _clip(line.rstrip(), width)
    return ""


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def format_cell(cell: CellReport, *, width: int = 150, max_lines: int = 14) -> str:
    """A compact, human-readable account of one cell."""
    if cell.cell_type == "markdown":
        heads = [line.strip() for line in cell.source.splitlines() if line.lstrip().startswith("#")]
        return "\n".join(f"-- {_clip(h.lstrip('#').strip(), width)}" for h in heads)
    if cell.cell_type != "code" or not cell.source.strip():
        return ""
    took = "not run" if cell.seconds is None else f"{cell.seconds:5.2f}s"
    lines = [f"[{cell.index:2d}] {took}  >>> {_first_line(cell.source, width - 20)}"]
    marks = {"stdout": "  |", "result": "  =", "display": "  =", "stderr": "  ~", "error": "  !"}
    for out in cell.outputs:
        mark = marks.get(out.kind, "  ?")
        text = out.text.rstrip("\n")
        if out.kind == "error":
            # The exception line says it; the traceback would drown the summary.
            text = "ERROR " + text.splitlines()[0] if text else "ERROR"
        elif out.kind == "stderr" and _TRACEBACK in text:
            mark, text = "  !", "TRACEBACK ON STDERR\n" + text
        body = text.splitlines() or [""]
        shown = body[:max_lines]
        lines += [f"{mark} {_clip(line, width)}" for line in shown]
        if len(body) > len(shown):
            lines.append(f"{mark} ... ({len(body) - len(shown)} more lines)")
    return "\n".join(lines)


def _secret_values(secret_env: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    source = os.environ if env is None else env
    for name in secret_env:
        raw = source.get(name)
        if raw and len(raw) >= 6:
            values[name] = [raw, base64.b64encode(raw.encode()).decode()]
    return values


def _redact(outputs: list[OutputSummary], secrets: dict[str, list[str]]) -> list[OutputSummary]:
    """Never echo a secret to the terminal (or a CI log), even when a cell showed it."""
    for out in outputs:
        for name, forms in secrets.items():
            for form in forms:
                out.text = out.text.replace(form, f"<${name} redacted>")
    return outputs


def _leaks(outputs: Iterable[Any], secrets: dict[str, list[str]]) -> set[str]:
    if not secrets:
        return set()
    import json

    blob = json.dumps(list(outputs))
    return {name for name, forms in secrets.items() if any(f in blob for f in forms)}


def _problems(report: NotebookReport, nb: Any, secrets: dict[str, list[str]]) -> list[str]:
    """What makes an executed notebook fail: errors, tracebacks on stderr, a secret anywhere."""
    found: list[str] = []
    for entry, cell in zip(report.cells, nb.cells, strict=True):
        for err in entry.errors:
            found.append(f"cell {entry.index} raised {err.text.splitlines()[0]}")
        if entry.stderr_tracebacks:
            found.append(f"cell {entry.index} printed a traceback on stderr")
        for leaked in sorted(_leaks(cell.get("outputs", []), secrets)):
            found.append(f"cell {entry.index} shows the value of ${leaked}")
    # nbclient records every widget's state (from the comm messages) in the metadata.
    for leaked in sorted(_leaks([dict(nb.metadata)], secrets)):
        found.append(f"the notebook's widget state holds the value of ${leaked}")
    return found


def execute_notebook(
    path: str | os.PathLike[str],
    *,
    timeout: float = 180,
    kernel_name: str | None = None,
    secret_env: Sequence[str] = DEFAULT_SECRET_ENV,
    on_cell: Callable[[CellReport], None] | None = None,
    save_to: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    history_file: str | os.PathLike[str] | None = None,
) -> NotebookReport:
    """Run every cell of the notebook at ``path`` top to bottom, in its own directory.

    Stops at the first cell that raises (as Jupyter's "Run All" does). ``on_cell``
    is called with each cell's report as soon as it has run (markdown: when reached).
    The file at ``path`` is not modified; ``save_to`` (a file path) receives the
    executed notebook. ``env`` is the kernel's environment (default: this process's);
    the secrets named by ``secret_env`` are looked up there. ``history_file``:
    where the kernel keeps IPython's history (nbclient's default: in memory only).
    """
    nbformat = require("nbformat", "notebook", "executing notebooks")
    NotebookClient = require("nbclient", "notebook", "executing notebooks").NotebookClient
    errors = require("nbclient.exceptions", "notebook", "executing notebooks")
    CellExecutionError, CellTimeoutError, DeadKernelError = (
        errors.CellExecutionError, errors.CellTimeoutError, errors.DeadKernelError)

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    report = NotebookReport(path=path)
    report.cells = [CellReport(i + 1, c.cell_type, _text(c.source)) for i, c in enumerate(nb.cells)]
    secrets = _secret_values(secret_env, env)
    started: dict[int, float] = {}

    def cell_start(cell: Any, cell_index: int, **_: Any) -> None:
        started[cell_index] = time.monotonic()
        if cell.cell_type != "code" and on_cell is not None:
            on_cell(report.cells[cell_index])

    def cell_executed(cell: Any, cell_index: int, **_: Any) -> None:
        entry = report.cells[cell_index]
        entry.seconds = time.monotonic() - started.get(cell_index, time.monotonic())
        entry.outputs = _redact(summarize_outputs(cell.get("outputs", [])), secrets)
        if on_cell is not None:
            on_cell(entry)

    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=name,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
        # The kernel's own start-up warnings (e.g. "running over TCP without
        # encryption") go to this terminal, not into the notebook: keep them out.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        on_cell_start=cell_start,
        on_cell_executed=cell_executed,
        **({"ipython_hist_file": str(history_file)} if history_file is not None else {}),
    )
    t0 = time.monotonic()
    try:
        client.execute(**({"env": dict(env)} if env is not None else {}))
    except CellExecutionError:
        pass  # reported from the cell's error output below
    except CellTimeoutError as exc:
        report.problems.append(f"a cell timed out after {timeout:g} s ({str(exc).splitlines()[0]})")
    except DeadKernelError as exc:
        report.problems.append(f"the kernel died: {exc}")
    finally:
        report.seconds = time.monotonic() - t0

    report.problems += _problems(report, nb, secrets)

    if save_to is not None:
        save_to = Path(save_to)
        if save_to.resolve() == path.resolve():
            raise ValueError(f"refusing to write the executed notebook over {path}")
        save_to.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_to)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefect_nbauth.testing.notebooks",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=float, default=180, help="seconds per cell (default 180)")
    parser.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")
    parser.add_argument("--secret-env", action="append", default=None, metavar="VAR",
                        help="fail if an output contains this variable's value "
                             f"(default: {', '.join(DEFAULT_SECRET_ENV)})")
    parser.add_argument("--save-executed", type=Path, default=None, metavar="DIR",
                        help="write the executed notebooks into DIR (never over the originals)")
    parser.add_argument("--width", type=int, default=150, help="truncate output lines to this width")
    parser.add_argument("--max-lines", type=int, default=14, help="output lines shown per output")
    args = parser.parse_args(argv)

    def show(cell: CellReport) -> None:
        text = format_cell(cell, width=args.width, max_lines=args.max_lines)
        if text:
            print(text, flush=True)

    reports: list[NotebookReport] = []
    for nb_path in args.notebooks:
        if not nb_path.is_file():
            print(f"no such notebook: {nb_path}", file=sys.stderr)
            return 2
        print(f"=== {nb_path}", flush=True)
        save_to = args.save_executed / nb_path.name if args.save_executed else None
        report = execute_notebook(
            nb_path, timeout=args.timeout, kernel_name=args.kernel,
            secret_env=args.secret_env or DEFAULT_SECRET_ENV, on_cell=show, save_to=save_to,
        )
        reports.append(report)
        print(flush=True)

    print("Summary:", flush=True)
    for report in reports:
        print("  " + report.summary_line(), flush=True)
    failed = sum(1 for r in reports if not r.ok)
    print(f"  {len(reports)} notebook{'s' if len(reports) != 1 else ''}: {len(reports) - failed} passed, "
          f"{failed} failed, {sum(r.seconds for r in reports):.1f} s in all", flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
