"""IPython magics: ``%load_ext prefect_nbauth``. One module per topic, in the style of
IPython's own ``IPython/core/magics/``:

- :mod:`.session`  ``%prefect_login``, ``%prefect_status``, ``%prefect_refresh``, ``%prefect_logout``;
- :mod:`.events`   ``%prefect_events``, the live event table;
- :mod:`.audit`    ``%prefect_audit``;
- :mod:`.runs`     ``%prefect_logs`` and ``%prefect_watch``;
- :mod:`._base`    ``@prefect_magics`` (every magic behind the containment boundary) and
  the parse/refuse/display helpers; :mod:`._secret_lines` refuses a secret on a line.

All magics are ``@no_var_expand``: ``$VAR`` and ``{x}`` reach them literally, so a
variable holding a secret is never expanded into the line. :data:`MAGICS` is the one
list of what the extension registers; a class not built with ``@prefect_magics`` is
refused there, so no magic can be registered outside the boundary.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics

from ._base import is_contained
from ._secret_lines import scrub_history, secrets_on_line
from .audit import PrefectAuditMagics
from .events import PrefectEventMagics
from .runs import PrefectRunMagics
from .session import PrefectSessionMagics

__all__ = ["MAGICS", "load_ipython_extension", "scrub_history", "secrets_on_line",
           "unload_ipython_extension"]

#: Every Magics class the extension registers; unloading removes exactly their magics.
MAGICS: tuple[type[Magics], ...] = (PrefectSessionMagics, PrefectEventMagics, PrefectAuditMagics,
                                    PrefectRunMagics)


def register(ipython: Any, classes: tuple[type[Magics], ...]) -> None:
    """Register ``classes`` in ``ipython``, refusing any whose magics are not all contained."""
    for magics in classes:
        if not is_contained(magics):
            raise TypeError(f"{magics.__qualname__} is not built with @prefect_magics: its magics would "
                            "bypass the containment boundary (prefect_nbauth._boundary.public).")
    for magics in classes:
        ipython.register_magics(magics)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext prefect_nbauth``); loading again is harmless."""
    register(ipython, MAGICS)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext prefect_nbauth``: remove the magics again (``%load_ext`` brings them back)."""
    manager = ipython.magics_manager
    for magics in MAGICS:
        for kind, names in magics.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)
        manager.registry.pop(magics.__name__, None)
