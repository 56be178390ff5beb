"""The one registration place of the magics: nothing is registered outside the boundary.

``prefect_nbauth.notebook.magics.MAGICS`` is what ``%load_ext prefect_nbauth``
registers; each class is built with ``@prefect_magics``, which wraps every magic in
``prefect_nbauth._boundary.public``. These tests check the result in a real IPython
shell (a fresh interpreter), that a class built without it is refused, and that the
wrapping keeps what IPython reads from a magic (parser, ``no_var_expand``, help).
What the boundary then does for a magic is in ``test_containment.py`` (section 6).
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.magic import MAGIC_NO_VAR_EXPAND_ATTR, Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from prefect_nbauth.notebook import magics
from prefect_nbauth.notebook.magics._base import is_contained, parse, prefect_magics

SCENARIO = r"""
import json
from IPython.core.interactiveshell import InteractiveShell

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "prefect_nbauth")
line = ip.magics_manager.magics["line"]
print(json.dumps({name: bool(getattr(line[name], "__nbauth_public__", False))
                  for name in sorted(line) if name.startswith("prefect_")}))
"""

EVERY_MAGIC = {"prefect_audit", "prefect_events", "prefect_login", "prefect_logout", "prefect_logs",
               "prefect_refresh", "prefect_status", "prefect_watch"}


def test_every_magic_load_ext_registers_is_behind_the_boundary(run_scenario: Any) -> None:
    wrapped = run_scenario(SCENARIO)
    assert set(wrapped) == EVERY_MAGIC
    assert [name for name, ok in wrapped.items() if not ok] == []


def test_every_class_in_the_registration_list_is_contained() -> None:
    assert magics.MAGICS and all(is_contained(cls) for cls in magics.MAGICS)
    names = {name for cls in magics.MAGICS for name in cls.magics["line"]}
    assert names == EVERY_MAGIC


class _Shell:
    def __init__(self) -> None:
        self.registered: list[type[Magics]] = []

    def register_magics(self, cls: type[Magics]) -> None:
        self.registered.append(cls)


def test_a_magics_class_built_without_the_boundary_is_refused() -> None:
    @magics_class
    class Plain(Magics):
        @line_magic
        def prefect_plain(self, line: str = "") -> None:
            """Not contained."""

    shell = _Shell()
    with pytest.raises(TypeError, match="@prefect_magics"):
        magics.register(shell, (*magics.MAGICS, Plain))
    assert shell.registered == []  # all or nothing: no half-registered extension
    magics.register(shell, magics.MAGICS)
    assert shell.registered == list(magics.MAGICS)


def test_the_wrapping_keeps_what_ipython_reads_from_a_magic() -> None:
    @prefect_magics
    class Tidy(Magics):
        @no_var_expand
        @magic_arguments()
        @argument("--n", type=int, default=1)
        @line_magic
        def prefect_tidy(self, line: str = "") -> Any:
            """Say what was parsed."""
            return repr(line), parse(self.prefect_tidy, line, "prefect_tidy").n

    assert is_contained(Tidy)
    magic = Tidy(shell=None).prefect_tidy
    assert getattr(magic, "__nbauth_public__", False)
    assert getattr(magic, MAGIC_NO_VAR_EXPAND_ATTR, False)  # $VAR reaches it literally
    assert "Say what was parsed." in (magic.__doc__ or "") and "--n" in (magic.__doc__ or "")
    shown, n = magic("--n 3")
    assert n == 3 and "--n 3" not in shown  # its line shows as "<magic line, 5 characters>" in locals

