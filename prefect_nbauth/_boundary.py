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
   post-mortem debugger. The wrapper's own frame is marked ``__tracebackhide__``,
   so IPython (and pytest) show the caller's line and the message, nothing of
   ours. What the frames were (file, line and function only, no values) is kept
   on the exception as ``__nbauth_frames__`` and logged at DEBUG, so a bug stays
   debuggable. Every text the exception carries (its arguments, every string
   attribute, its notes: ``UnicodeEncodeError.object`` included) passes the egress
   (:func:`._redaction.scrub_text`). ``KeyboardInterrupt`` and ``SystemExit`` pass
   untouched: Ctrl-C keeps its normal traceback.
3. While the call runs, its secrets are in the log scrubber's set (a failing
   login has nothing "in force" yet, but httpcore/websockets may log an echo).

``public`` refuses what it cannot cover: a coroutine function or a generator
function returns before its body runs, so their errors would leave unwrapped.
Streams are covered where their items come out (:mod:`._streaming._shell` calls
:func:`contain`).

``_redaction.CONTAIN = False`` switches all of this off (one switch for the egress
and the boundary); the containment tests use it to show that they fail without it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

from . import _redaction
from ._inputs import looks_like_header_name
from ._redaction import redact, scrub_text
from ._secrets import Secret

__all__ = ["contain", "masked_line", "public"]

logger = logging.getLogger("prefect_nbauth")

F = TypeVar("F", bound=Callable[..., Any])

_MAX_FRAMES = 12
# Text attributes of built-in exceptions that are not in their __dict__ (set in C).
_TEXT_ATTRIBUTES = ("object", "reason", "strerror", "filename", "filename2", "msg", "text", "doc", "name", "path")
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
    host = parts.hostname
    return (parts.scheme in ("http", "https") and bool(host)
            and parts.username is None and parts.password is None
            and all(0 < len(label) <= 63 for label in (host or "").rstrip(".").split(".")))


def _protect(value: Any, kind: str, held: list[Secret]) -> Any:
    if kind == "secret":
        if isinstance(value, str):
            value = Secret(value)
        if isinstance(value, Secret):
            held.append(value)
        return value
    if kind == "map":
        if isinstance(value, Mapping):
            # A key that does not look like a header name may be a token pasted on the wrong
            # side (a name and its value swapped): it is a secret too.
            return {(_protect(k, "secret", held) if isinstance(k, str) and not looks_like_header_name(k) else k):
                    _protect(v, "secret", held) for k, v in value.items()}
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


def _scrub_all(exc: BaseException, raw: list[str]) -> None:
    """Every text the exception carries through the egress (and the call's own secrets)."""
    def clean(text: str) -> str:
        return scrub_text(redact(text, *raw))

    exc.args = tuple(clean(a) if isinstance(a, str) else a for a in exc.args)
    for name in (*_TEXT_ATTRIBUTES, *vars(exc)):
        try:
            value = getattr(exc, name, None)
            if isinstance(value, str) and not name.startswith("__"):
                setattr(exc, name, clean(value))
            elif isinstance(value, bytes) and name == "object":  # UnicodeDecodeError
                setattr(exc, name, clean(value.decode("utf-8", "replace")).encode("utf-8"))
        except (AttributeError, TypeError):  # read-only or typed attributes stay as they are
            continue
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        exc.__notes__ = [clean(n) if isinstance(n, str) else n for n in notes]  # type: ignore[attr-defined]


def contain(exc: BaseException, held: list[Secret] | tuple[Secret, ...] = ()) -> BaseException:
    """``exc`` as it may leave the package: no frames of ours, no context, every text scrubbed.

    ``KeyboardInterrupt``, ``SystemExit`` and other non-``Exception`` errors are returned
    untouched: they are the user's, and keep their whole traceback.
    """
    if not _redaction.CONTAIN or not isinstance(exc, Exception):
        return exc
    if not getattr(exc, "__nbauth_contained__", False):
        frames = _summary(exc) or "nothing"
        logger.debug("%s raised at the public API boundary; it went through %s", type(exc).__name__, frames)
        try:
            exc.__nbauth_frames__ = frames  # type: ignore[attr-defined]
            exc.__nbauth_contained__ = True  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            pass
    _scrub_all(exc, [s.reveal() for s in held])
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
        if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func) \
                or inspect.isasyncgenfunction(func):
            raise TypeError(f"@public cannot cover {func.__qualname__}: a coroutine or generator function "
                            "returns before its body runs, so its errors would leave unwrapped. Wrap "
                            "a plain function, and contain() the errors where items come out.")
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # IPython and pytest show the caller's line, not this one
            if not _redaction.CONTAIN:
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
            except Exception as exc:
                raise contain(exc, held) from None

        wrapper.__nbauth_public__ = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
