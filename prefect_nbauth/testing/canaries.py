"""Canary secrets and the forms a leaked secret can take: scan any text for them.

Give the code under test a fresh :func:`make_canary` as its secret, then look for it in
everything it produced (outputs, a saved notebook, a history file, log records) with
:func:`leaks` / :func:`assert_no_secret`. A secret rarely leaks verbatim: it shows up
base64-encoded in a Basic header, percent-encoded in a URL, JSON-escaped in a widget
state, or as the password half of ``user:password``; every one of those forms is checked.
"""

from __future__ import annotations

import base64
import gc
import json
import secrets
import types
from collections import deque
from typing import Any, Iterable
from urllib.parse import quote

__all__ = ["assert_no_secret", "forms_of", "held_in_memory", "leak_forms", "leaks", "make_canary"]


def make_canary(user: str | None = "nbuser") -> str:
    """A fresh secret with the characters that escape differently everywhere (``"``, ``'``, ``\\``)."""
    core = 'p"q\'r\\s-CANARY' + secrets.token_hex(20)  # 55 characters
    return f"{user}:{core}" if user else core


def _buried_base64(raw: bytes) -> set[str]:
    """What base64 shows of ``raw`` wherever it starts inside a longer encoded blob.

    base64 encodes 3 bytes at a time, so inside a blob (a pickle in a JSON file, a
    cookie) the secret's first one or two bytes share a group with what came before:
    skipping 0, 1 or 2 of them, the whole groups that follow encode the same way at any
    offset. Kept only when at least 12 characters long (nothing shorter is a signal).
    """
    forms = set()
    for skip in (0, 1, 2):
        body = raw[skip:]
        body = body[: len(body) - len(body) % 3]
        for encoded in (base64.b64encode(body), base64.urlsafe_b64encode(body)):
            if len(encoded) >= 12:
                forms.add(encoded.decode())
    return forms


def leak_forms(secret: str) -> set[str]:
    """Raw, password-only, base64 (padded, unpadded, URL-safe, and buried at any offset in a
    longer base64 blob), percent-encoded and JSON-escaped."""
    out: set[str] = set()
    values = {secret, secret.split(":", 1)[1]} if ":" in secret else {secret}
    for value in values:
        raw = value.encode()
        b64 = base64.b64encode(raw).decode()
        out |= {value, b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
                quote(value, safe=""), quote(value), json.dumps(value)[1:-1], *_buried_base64(raw)}
    return {form for form in out if form}


def forms_of(*secret_values: str) -> list[str]:
    """Every form of every one of ``secret_values``, sorted (a stable order for scans)."""
    return sorted(set().union(*(leak_forms(s) for s in secret_values)))


def leaks(text: str, *secret_values: str) -> list[str]:
    """The forms of ``secret_values`` found in ``text`` (case-insensitive: hosts come back lower-cased)."""
    lowered = text.lower()
    return sorted(f for s in secret_values for f in leak_forms(s) if f.lower() in lowered)


def assert_no_secret(text: str, *secret_values: str) -> None:
    """``AssertionError`` (naming the form, never showing the text's secret twice) if any leaked."""
    if not secret_values:
        raise TypeError("assert_no_secret() needs at least one secret value to look for")
    found = leaks(text, *secret_values)
    assert not found, f"secret (as {found!r}) in: {text}"


_CONTAINERS = (dict, list, tuple, set, frozenset, deque)
_NOT_WALKED = (types.FrameType, types.ModuleType, types.FunctionType, type)


def _described(obj: Any) -> str:
    """What a holder is, without its content: a class, module or function by name."""
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, types.FunctionType):
        return f"function {obj.__module__}.{obj.__qualname__}"
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _reachable_containers(roots: Iterable[Any], modules: tuple[str, ...]) -> set[int]:
    """ids of the builtin containers (and objects of classes from ``modules``) under ``roots``."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, bytearray, *_NOT_WALKED)):
            continue
        if not (isinstance(obj, _CONTAINERS) or type(obj).__module__.startswith(modules)):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return seen


def held_in_memory(*secret_values: str, allowed: Iterable[Any] = (),
                   allowed_modules: tuple[str, ...] = ()) -> list[str]:
    """Where this process still holds a form of ``secret_values``: one line per holder.

    Every object the garbage collector tracks is walked with what it refers to (strings
    and bytes are not tracked themselves: they are found through their holders, dicts of
    plain strings included), and each string or bytes object holding a form of a secret
    (:func:`leak_forms`) is reported with the chain of objects that holds it, nearest first.
    Frames are skipped (the caller's own locals hold the canary it looks for).

    ``allowed``: objects (a module's ``vars()``, a cache) whose builtin containers, and
    objects of classes defined in ``allowed_modules``, may hold a secret; a string held
    only by those is not reported. Call ``gc.collect()`` first.
    """
    forms = [f.encode("utf-8", "surrogatepass") for f in forms_of(*secret_values)]
    ok = _reachable_containers(allowed, allowed_modules)
    roots = gc.get_objects()
    first_parent: dict[int, Any] = {}
    holders: dict[int, tuple[Any, list[Any]]] = {}
    stack: list[Any] = list(roots)
    own = {id(roots), id(forms), id(stack), id(secret_values), id(first_parent), id(holders), id(ok)}
    seen = set(own)
    while stack:
        obj = stack.pop()
        if id(obj) in own or isinstance(obj, types.FrameType):
            continue
        for ref in gc.get_referents(obj):
            if isinstance(ref, (str, bytes, bytearray)):
                data = ref.encode("utf-8", "surrogatepass") if isinstance(ref, str) else bytes(ref)
                for form in forms:  # a plain loop: a generator's closure would hold ``data``
                    if form in data:
                        holders.setdefault(id(ref), (ref, []))[1].append(obj)
                        break
                continue
            first_parent.setdefault(id(ref), obj)
            if id(ref) not in seen:
                seen.add(id(ref))
                stack.append(ref)
    del stack, roots
    found = []
    for _value, parents in holders.values():
        if all(id(p) in ok for p in parents):
            continue
        for parent in parents:
            if id(parent) in ok:
                continue
            chain = [_described(parent)]
            node = parent
            for _ in range(7):
                node = first_parent.get(id(node))
                if node is None:
                    break
                chain.append(_described(node))
            found.append(" <- ".join(chain))
    return sorted(set(found))
