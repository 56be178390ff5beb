"""Optional dependencies of the harnesses: imported when used, with a message naming the extra."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise ``ModuleNotFoundError`` saying which extra installs it."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise ModuleNotFoundError(
            f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'prefect-nbauth[{extra}]'", name=module)
    return importlib.import_module(module)
