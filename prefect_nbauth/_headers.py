"""The one place where a secret becomes a request header.

Past the public API (see :mod:`._boundary`) a secret exists only as a
:class:`Secret`. Its raw value is taken out here, to build what goes on the
wire, and nowhere else (``grep -n "reveal()"`` lists the few other places that
hand a value to Prefect's settings, a provider or the profile file). Every
caller (login probes, the per-request httpx Auth, websocket connects, Prefect's
events clients on reconnect, the audit) asks this module, so the rules are
written once, as Prefect's own client applies them:

- an auth string is sent as ``Basic base64(utf8(whole string))`` and wins over an
  API key (``Bearer <key>``);
- custom headers are applied after that and replace an ``Authorization`` of the
  same name, compared case-insensitively.
"""

from __future__ import annotations

import base64
from typing import Mapping

from ._secrets import Secret

__all__ = ["authorization", "basic", "gateway_header_value", "request_headers"]


def _raw(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def basic(auth_string: Secret | str) -> str:
    """``Basic <base64>`` of the whole auth string (Prefect never splits it on ``:``)."""
    return "Basic " + base64.b64encode(_raw(auth_string).encode("utf-8")).decode("ascii")


def gateway_header_value(name: str, value: Secret | str) -> str:
    """A header's value as sent: a bare token for ``Authorization`` becomes ``Bearer <token>``.

    A provider of a gateway's bearer token gives the bare token; an explicit
    scheme (``Bearer x``, ``Basic y``) is kept as given.
    """
    raw = _raw(value)
    if name.lower() == "authorization" and " " not in raw:
        return f"Bearer {raw}"
    return raw


def authorization(*, auth_string: Secret | str | None = None, api_key: Secret | str | None = None,
                  headers: Mapping[str, Secret | str] | None = None,
                  bearer: str = "Bearer") -> str | None:
    """The ``Authorization`` value Prefect sends for this credential, or None."""
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            return gateway_header_value(name, value)
    if auth_string:
        return basic(auth_string)
    if api_key:
        return f"{bearer} {_raw(api_key)}"
    return None


def request_headers(*, auth_string: Secret | str | None = None, api_key: Secret | str | None = None,
                    headers: Mapping[str, Secret | str] | None = None, bearer: str = "Bearer",
                    prefect_credential: bool = True) -> dict[str, str]:
    """Every credential header to send, raw: Basic/Bearer first, then the custom headers.

    ``prefect_credential=False`` leaves Prefect's own credential out (a public
    route behind a gateway: the gateway headers only).
    """
    out: dict[str, str] = {}
    if prefect_credential:
        if auth_string:
            out["Authorization"] = basic(auth_string)
        elif api_key:
            out["Authorization"] = f"{bearer} {_raw(api_key)}"
    for name, value in (headers or {}).items():
        for existing in [k for k in out if k.lower() == name.lower()]:
            del out[existing]
        out[name] = gateway_header_value(name, value)
    return out
