"""The public API boundary: where a secret stops being a ``str``.

Every public entry point (``login``, ``status``, ``logout``, ``refresh``,
``audit``, ``stream_events`` and the magics) is wrapped by :func:`public`:

1. Its secret arguments become :class:`Secret` before anything else runs, and
   the wrapper REBINDS its own locals to the converted values. Tools that show
   a frame's local variables (IPython ``%xmode Verbose``, ``%debug`` then
   ``up``/``args``, ``traceback.TracebackException(capture_locals=True)``,
   rich's ``show_locals``) therefore find only masked values in every frame
   from here on. An ``api_url`` that is not a plain http(s) URL is held as a
   ``Secret`` too: it may be a password pasted into the wrong argument.
2. Any exception leaves through the wrapper with its traceback cut at the
   boundary and its ``__cause__``/``__context__`` detached: the frames inside
   (ours, httpx's, websockets', which held raw header values in their locals)
   are no longer reachable from the exception, ``sys.last_traceback`` or a
   post-mortem debugger. What the frames were is kept as a note (file, line and
   function only, no values), so a bug stays debuggable. Its message is scrubbed
   of every form of the call's secrets and of every secret in force.
3. While the call runs, its secrets are in the log scrubber's set (a failing
   login has nothing "in force" yet, but httpcore/websockets may log an echo).

``CONTAIN = False`` switches all of this off; the containment tests use it to
show that they fail without it.
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

from . import _redaction
from ._secrets import Secret, redact

__all__ = ["CONTAIN", "masked_line", "public"]

CONTAIN = True

F = TypeVar("F", bound=Callable[..., Any])

_NOTE_PREFIX = "prefect_nbauth: traceback cut at the public API to keep secrets out of frame locals; it went through "
_MAX_FRAMES = 12
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _MaskedLine(str):
    """A magic's line, whose repr (shown with frame locals) does not repeat what was typed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<magic line, {len(self)} characters>"


def masked_line(line: str) -> str:
    return _MaskedLine(line)


def _is_plain_url(value: str) -> bool:
    """An http(s) URL with a host and no user info: safe to keep as text."""
    from urllib.parse import urlsplit

    if any(c.isspace() for c in value) or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and parts.username is None and parts.password is None
            and all(0 < len(label) <= 63 for label in parts.hostname.rstrip(".").split(".")))


def _protect(value: Any, kind: str, held: list[Secret]) -> Any:
    if kind == "secret":
        if isinstance(value, str):
            value = Secret(value)
        if isinstance(value, Secret):
            held.append(value)
        return value
    if kind == "map":
        if isinstance(value, Mapping):
            return {k: _protect(v, "secret", held) for k, v in value.items()}
        return value
    if kind == "url":
        if isinstance(value, str) and not isinstance(value, Secret) and not _is_plain_url(value):
            value = Secret(value)
            held.append(value)
        return value
    if kind == "line":
        return _MaskedLine(value) if isinstance(value, str) else value
    raise AssertionError(kind)


def _where(frame: traceback.FrameSummary) -> str:
    path = frame.filename
    if path.startswith(_PACKAGE_DIR):
        path = "prefect_nbauth" + path[len(_PACKAGE_DIR):]
    else:
        path = os.path.basename(path)
    return f"{path}:{frame.lineno}:{frame.name}"


def _summary(exc: BaseException) -> str:
    """The frames the exception went through (skipping the wrapper's own), and its causes."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # [0] is the wrapper
    parts = [" <- ".join(_where(f) for f in reversed(frames[-_MAX_FRAMES:]))]
    seen = {id(exc)}
    inner = exc.__cause__ or exc.__context__
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        where = traceback.extract_tb(inner.__traceback__)[-_MAX_FRAMES:]
        parts.append(f"while handling {type(inner).__module__}.{type(inner).__qualname__} at "
                     + (" <- ".join(_where(f) for f in reversed(where)) or "?"))
        inner = inner.__cause__ or inner.__context__
    return "; ".join(p for p in parts if p)


def _contain(exc: BaseException, held: list[Secret]) -> BaseException:
    if not getattr(exc, "__nbauth_contained__", False):
        note = _NOTE_PREFIX + (_summary(exc) or "nothing")
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:  # Python 3.10: kept for a debugger; not printed
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
        try:
            exc.__nbauth_contained__ = True  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            pass
    if isinstance(exc, Exception):
        raw = [s.reveal() for s in held]
        exc.args = tuple(_redaction.scrub_text(redact(a, *raw)) if isinstance(a, str) else a
                         for a in exc.args)
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    return exc.with_traceback(None)


def public(*, secrets: tuple[str, ...] = (), maps: tuple[str, ...] = (),
           urls: tuple[str, ...] = (), lines: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Make ``func`` a public entry point (see the module docstring).

    ``secrets`` name the parameters holding a secret (or a provider), ``maps`` those
    holding a mapping of secrets (headers), ``urls`` those holding a URL that may be
    a misplaced secret, ``lines`` a magic's line.
    """
    kinds = {**{n: "secret" for n in secrets}, **{n: "map" for n in maps},
             **{n: "url" for n in urls}, **{n: "line" for n in lines}}

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not CONTAIN:
                return func(*args, **kwargs)
            held: list[Secret] = []
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                bound = None  # let the call raise Python's own message (names, never values)
            if bound is not None:
                for name, kind in kinds.items():
                    if name in bound.arguments:
                        bound.arguments[name] = _protect(bound.arguments[name], kind, held)
                # Rebind: from here on this frame holds only the protected values.
                args, kwargs = bound.args, bound.kwargs
                bound = None
            try:
                with _redaction.validating(held):
                    return func(*args, **kwargs)
            except BaseException as exc:
                raise _contain(exc, held) from None

        wrapper.__nbauth_public__ = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
