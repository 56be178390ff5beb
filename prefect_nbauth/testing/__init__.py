"""Test helpers for code that authenticates to Prefect: real servers and emulations.

Like Prefect's own ``prefect.testing``, this ships with the package so that your
tests, tutorials and benchmarks can use what ours use::

    from prefect_nbauth.testing import auth_server

    with auth_server() as server:          # a real `prefect server start` on 127.0.0.1
        prefect_nbauth.login(server.api_url, auth_string=server.auth_string)

With pytest, the fixtures of :mod:`prefect_nbauth.testing.plugin` are available
without any import (the plugin is registered through the ``pytest11`` entry
point): ``prefect_auth_server`` (one auth-protected server per test session) and
``prefect_nbauth_login`` (logged in to it for one test, logged out after).

What is here:

- :class:`PrefectServer`, :func:`auth_server`: a real Prefect server process with
  an auth string (or none), its own ``PREFECT_HOME`` and SQLite database, always
  stopped and cleaned up (process group, ``PR_SET_PDEATHSIG``, ``atexit``).
- :class:`CloudGateway`: an EMULATION of Prefect Cloud's documented API surface
  (``/api/me/``, ``/api/me/workspaces``, workspace URLs, ``pnu_``/``pnb_`` keys) in
  front of a real server. Prefect Cloud itself cannot be reached from tests.
- :class:`RotatingGateway`: an OAuth2-proxy stand-in that issues short-lived JWTs
  (client-credentials grant) and checks them on every request and websocket.
- :func:`wait_until`, :func:`free_port`, :func:`isolated_env`: waiting on a condition
  (never a fixed sleep), a free loopback port, and an environment without ``PREFECT_*``.

The gateways need the ``testing`` extra (``pip install prefect-nbauth[testing]``:
uvicorn, starlette and PyJWT; ``comm`` for :mod:`.widgets`); without it, asking for one
says which extra to install. Nothing here is imported until it is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cloud import CloudGateway, CloudKey, CloudWorkspace
    from ._gateway import RotatingGateway
    from ._server import PrefectServer, auth_server, free_port, isolated_env
    from ._wait import wait_until

__all__ = [
    "CloudGateway",
    "CloudKey",
    "CloudWorkspace",
    "PrefectServer",
    "RotatingGateway",
    "auth_server",
    "free_port",
    "isolated_env",
    "wait_until",
]

# Everything is loaded when first asked for: the pytest plugin (imported by every pytest run
# where this package is installed) imports this package, and the gateways need uvicorn,
# starlette and PyJWT (the ``testing`` extra).
_LAZY = {
    "CloudGateway": "._cloud",
    "CloudKey": "._cloud",
    "CloudWorkspace": "._cloud",
    "PrefectServer": "._server",
    "RotatingGateway": "._gateway",
    "auth_server": "._server",
    "free_port": "._server",
    "isolated_env": "._server",
    "wait_until": "._wait",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._extras import import_harness

    return getattr(import_harness(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
