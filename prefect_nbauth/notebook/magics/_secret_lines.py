"""What a magic's line may not hold: secrets, refused and scrubbed from the history.

IPython writes every line into its history database
(``~/.ipython/profile_default/history.sqlite``), into the file ``%logstart`` is writing,
if any, and the notebook keeps the cell, so a secret is never accepted on a magic's line:
:func:`secrets_on_line` finds what looks like one, :func:`scrub_history` removes it from
this session's history and from that log file, and a credential is named by its
environment variable instead (:func:`env_value`).
"""

from __future__ import annotations

import io
import os
import re
from typing import Any
from urllib.parse import urlsplit

from ..._secrets import Secret
from ._base import usage

__all__ = ["SECRET_ON_LINE", "env_value", "has_userinfo", "is_url", "scrub_history", "scrub_log_file",
           "secrets_on_line"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")  # $VAR or ${VAR}: the name, literally
_INPUT_VARS = re.compile(r"^_i(i{0,2}|\d+)$")
# Options that would carry a secret on the line (refused, whatever their spelling).
_SECRET_OPTIONS = ("--auth-string", "--auth_string", "--api-key", "--api_key", "--key", "--password",
                   "--token", "--secret", "--header", "--headers")
_ENV_OPTIONS = ("--auth-string-env", "--api-key-env")

SECRET_ON_LINE = (
    "Refused: do not type a secret on a magic's line: IPython saves every line in its history "
    "database (and in the %logstart file, if logging) and the notebook keeps the cell (it was "
    "scrubbed from this session's history and log file; delete it from the cell, and rotate it "
    "if it was real). Put it in an environment variable and use "
    "--auth-string-env VAR / --api-key-env VAR / --header-env NAME=VAR, or run %prefect_login "
    "alone for the login form."
)


def _var_name(value: str) -> str:
    """``VAR``, ``$VAR`` and ``${VAR}`` all name the variable VAR (the line is not expanded)."""
    match = _ENV_REF.match(value)
    return match.group(1) if match else value


def _tokens(line: str) -> list[str]:
    from IPython.utils.process import arg_split  # type: ignore[attr-defined]

    try:
        return arg_split(line, strict=False)
    except ValueError:
        return line.split()


def has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.username or parts.password)
    except ValueError:
        return False


def is_url(token: str) -> bool:
    return token.startswith(("http://", "https://"))


def secrets_on_line(line: str) -> list[str]:
    """The tokens of a ``%prefect_login`` line that are (or may well be) secrets."""
    tokens = _tokens(line)
    found: list[str] = []
    takes_value = {"--url", "--workspace", "--timeout", "--header-env", *_ENV_OPTIONS}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=")
        value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else None)
        consumed = 0 if eq else 1
        if token.startswith("-"):
            if name in _SECRET_OPTIONS:
                if value:
                    found.append(value)
                i += 1 + consumed
                continue
            if name in _ENV_OPTIONS and value is not None and not _ENV_NAME.match(_var_name(value)):
                found.append(value)  # a value where a variable NAME belongs
            elif name == "--header-env" and value is not None:
                _, _, var = value.partition("=")
                if var and not _ENV_NAME.match(_var_name(var)):
                    found.append(var)
            elif name == "--url" and value is not None and has_userinfo(value):
                found.append(value)
            i += 1 + (consumed if name in takes_value else 0)
            continue
        # A positional: an API URL is fine (unless it carries credentials); anything
        # else is most likely "user:password" or a key pasted in.
        if not is_url(token) or has_userinfo(token):
            found.append(token)
        i += 1
    found += [t for t in tokens if t.startswith(("pnu_", "pnb_")) and t not in found]
    return found


def scrub_history(shell: Any, secrets: list[str]) -> None:
    """Best effort: remove ``secrets`` from this session's input history (memory and database)
    and from the file ``%logstart`` is writing (IPython wrote the line there before the magic ran)."""
    if not secrets:
        return
    variants = set()
    for s in secrets:
        variants.update({s, repr(s)[1:-1], s.replace("'", "\\'"), s.replace('"', '\\"')})
    ordered = sorted((v for v in variants if len(v) >= 3), key=len, reverse=True)

    def clean(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for v in ordered:
            text = text.replace(v, "****")
        return text

    scrub_log_file(shell, clean)
    hm = getattr(shell, "history_manager", None)
    if hm is None:
        return
    for lst in (getattr(hm, "input_hist_parsed", None), getattr(hm, "input_hist_raw", None)):
        if lst:
            for i in range(len(lst) - 1, max(-1, len(lst) - 5), -1):
                lst[i] = clean(lst[i])
    for attr in ("_i", "_ii", "_iii", "_i00"):
        if isinstance(getattr(hm, attr, None), str):
            setattr(hm, attr, clean(getattr(hm, attr)))
    ns = getattr(shell, "user_ns", {})
    for key in [k for k in ns if _INPUT_VARS.match(k)]:  # _i, _ii, _iii, _i<N>
        if isinstance(ns[key], str):
            ns[key] = clean(ns[key])
    lock = getattr(hm, "db_input_cache_lock", None)
    try:
        if lock is not None:
            with lock:
                hm.db_input_cache = [(ln, clean(a), clean(b)) for ln, a, b in hm.db_input_cache]
        db = getattr(hm, "db", None)
        session = getattr(hm, "session_number", None)
        if db is not None and session and hasattr(db, "execute"):
            with db:
                rows = db.execute("SELECT line, source, source_raw FROM history WHERE session=?",
                                  (session,)).fetchall()
                for line_no, source, raw in rows:
                    if clean(source) != source or clean(raw) != raw:
                        db.execute("UPDATE history SET source=?, source_raw=? WHERE session=? AND line=?",
                                   (clean(source), clean(raw), session, line_no))
    except Exception:  # noqa: BLE001 - best effort; the refusal itself is what matters
        pass


def scrub_log_file(shell: Any, clean: Any) -> bool:
    """Rewrite the file ``%logstart`` is writing with ``clean(text)``; True if it changed.

    IPython keeps the file open: its buffer is flushed first, and afterwards its handle is
    moved to the new end (a file opened with ``"w"`` would otherwise go on writing at the
    old, longer offset and leave a gap of NUL bytes).
    """
    log = getattr(shell, "logger", None)
    handle = getattr(log, "logfile", None)
    name = getattr(log, "logfname", None)
    if handle is None or not name:
        return False
    try:
        handle.flush()
        with open(name, "r+", encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
            cleaned = clean(text)
            if cleaned == text:
                return False
            file.seek(0)
            file.write(cleaned)
            file.truncate()
        handle.seek(0, io.SEEK_END)
        return True
    except (OSError, ValueError):  # not ours to fix: the refusal message already says "rotate it"
        return False


def env_value(var: str, flag: str, shell: Any = None) -> Secret:
    """The value of the environment variable named ``var``, as a Secret.

    A name that is not a set variable may be the secret itself, typed where its
    variable's name belongs: it is never repeated in the message, and it is
    scrubbed from the history like any secret on the line.
    """
    name = _var_name(var)
    value = os.environ.get(name)
    if value is None:
        scrub_history(shell, [str(var), name])
        usage(f"{flag}: no environment variable of the name given is set in this kernel (the "
              "name is not repeated here, in case it was a secret typed in its place; it was "
              "scrubbed from this session's history and log file). Set the variable in the environment "
              "Jupyter starts kernels with (VAR=… jupyter lab), or run %prefect_login alone for "
              "the login form.")
    if value == "":
        usage(f"{flag} {name}: the environment variable {name} is empty.")
    return Secret(value)

