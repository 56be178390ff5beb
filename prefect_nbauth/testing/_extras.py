"""Optional dependencies of the harnesses: imported when used, with a message naming the extra."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["import_harness", "require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise ``ModuleNotFoundError`` saying which extra installs it."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise ModuleNotFoundError(
            f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'prefect-nbauth[{extra}]'", name=module)
    return importlib.import_module(module)


#: What the ``testing`` extra installs, by the name a failed import reports.
_TESTING_EXTRA = {"uvicorn": "uvicorn", "starlette": "starlette", "jwt": "PyJWT", "comm": "comm"}


def import_harness(module: str, package: str) -> ModuleType:
    """Import one of this package's harness modules; a missing extra says how to install it.

    ``from prefect_nbauth.testing import RotatingGateway`` without the extra would end in
    a bare ``No module named 'jwt'``; this names the extra instead.
    """
    try:
        return importlib.import_module(module, package)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _TESTING_EXTRA:
            raise
        raise ModuleNotFoundError(
            f"prefect_nbauth.testing{module if module.startswith('.') else ''} needs "
            f"{_TESTING_EXTRA[missing]!r}, which is not installed: "
            "pip install 'prefect-nbauth[testing]'", name=exc.name) from None
