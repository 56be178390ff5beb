"""What every magic of this package shares: the class decorator that puts each magic
behind the containment boundary, and the parse / refuse / display helpers.

:func:`prefect_magics` replaces IPython's ``@magics_class`` here. Besides recording
the magics, it wraps every one of them in :func:`prefect_nbauth._boundary.public`
(the line becomes a masked string, a traceback is cut at the magic, messages are
scrubbed), so a magic cannot be added without the boundary by forgetting a
decorator; ``load_ipython_extension`` registers only classes built by it.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic_arguments import parse_argstring

from ..._boundary import public
from ..._exceptions import ConfigurationError
from ..._inputs import check_timeout

__all__ = ["is_contained", "prefect_magics"]

M = TypeVar("M", bound=type[Magics])

# The parameters of a magic that hold what the user typed, by kind of magic.
_TYPED = {"line": ("line",), "cell": ("line", "cell")}


def prefect_magics(cls: M) -> M:
    """``@magics_class``, and every magic of ``cls`` behind the public API boundary."""
    cls = magics_class(cls)
    for kind, names in cls.magics.items():
        for method_name in names.values():
            method = cls.__dict__[method_name]
            if not getattr(method, "__nbauth_public__", False):
                # functools.wraps inside public() carries magic_arguments' parser,
                # no_var_expand's flag and the %magic? help over to the wrapper.
                setattr(cls, method_name, public(lines=_TYPED[kind])(method))
    cls.__nbauth_contained__ = True  # type: ignore[attr-defined]
    return cls


def is_contained(cls: type[Magics]) -> bool:
    """Built by :func:`prefect_magics`, and every magic in it still wrapped."""
    return bool(cls.__dict__.get("__nbauth_contained__")) and all(
        getattr(getattr(cls, method_name), "__nbauth_public__", False)
        for names in cls.magics.values() for method_name in names.values())


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def usage(text: str) -> NoReturn:
    """Refuse with IPython's UsageError: printed without a traceback, on one line."""
    raise UsageError(one_line(text))


def parse(magic: Callable[..., Any], line: str, name: str) -> Any:
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:
        usage(f"%{name}: {exc}. See %{name}? for the options.")
    except ValueError as exc:  # unbalanced quotes from arg_split
        usage(f"%{name}: cannot parse the line ({exc}). See %{name}? for the options.")


def timeout_or_usage(value: Any) -> float:
    try:
        return check_timeout(value, "--timeout")
    except ConfigurationError as exc:
        usage(str(exc))


def has_widgets(shell: Any) -> bool:
    """Widgets can render only under a kernel (JupyterLab, Notebook, VS Code…), not in a terminal."""
    return getattr(shell, "kernel", None) is not None


def display(obj: Any) -> None:
    from IPython.display import display as show

    show(obj)
