"""Helpers for the tutorial notebooks (not part of prefect_nbauth).

- :func:`find_demo` finds the local demo server that ``binder/start`` started:
  its URL comes from ``$PREFECT_NBAUTH_DEMO_API_URL`` or from ``demo.json`` in the
  demo directory; its auth string exists only in this kernel's environment
  (``$PREFECT_NBAUTH_DEMO_AUTH_STRING``), never in a file or a notebook.
- :func:`cloud` gives Prefect Cloud credentials: a real key when you provide one
  (``$PREFECT_NBAUTH_CLOUD_API_KEY``), otherwise an EMULATION of Prefect Cloud's
  documented API (``prefect_nbauth.testing.CloudGateway``) in front of the demo server.
- :func:`start_gateway` starts an OAuth2-proxy stand-in that issues short-lived
  JWTs (``prefect_nbauth.testing.RotatingGateway``) in front of the demo server.
- :func:`stop_demo_server` / :func:`start_demo_server_again` stop the demo
  server and start it again with the same auth string, port and database
  (``binder/stop`` and ``binder/start --restart``).
- :func:`wait_until` waits for a condition, with a timeout (never a fixed sleep).

The emulations come from :mod:`prefect_nbauth.testing`; they run on threads of
this kernel, on 127.0.0.1 only, and stop with it.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AUTH_ENV",
    "CloudAccess",
    "Demo",
    "DemoNotFound",
    "cloud",
    "find_demo",
    "show_ui_link",
    "start_demo_server_again",
    "start_gateway",
    "stop_demo_server",
    "wait_until",
]

REPO = Path(__file__).resolve().parent.parent
AUTH_ENV = "PREFECT_NBAUTH_DEMO_AUTH_STRING"  # set by binder/start for this kernel only
URL_ENV = "PREFECT_NBAUTH_DEMO_API_URL"
DIR_ENV = "PREFECT_NBAUTH_DEMO_DIR"
CLOUD_KEY_ENV = "PREFECT_NBAUTH_CLOUD_API_KEY"  # optional: a REAL Prefect Cloud key
CLOUD_WORKSPACE_ENV = "PREFECT_NBAUTH_CLOUD_WORKSPACE"  # optional: account/workspace

HOW_TO_START = (
    "Start JupyterLab with the demo server from the repository root: ./scripts/demo "
    "(or: binder/start jupyter lab). On Binder it is started for you."
)


class DemoNotFound(RuntimeError):
    """No demo server, or this kernel was not started by binder/start."""


def demo_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or Path.home() / ".prefect-nbauth-demo")


@dataclass(frozen=True)
class Demo:
    api_url: str
    demo_dir: Path
    has_auth_string: bool  # the kernel got the auth string from binder/start

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def __str__(self) -> str:
        return (f"Demo server: {self.api_url} (healthy); auth string in ${AUTH_ENV}: "
                f"{'yes' if self.has_auth_string else 'NO'}")


def _healthy(api_url: str, timeout: float = 3.0) -> bool:
    # /api/health is public: no credential needed (or sent).
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def find_demo(*, require_auth_string: bool = True) -> Demo:
    """The running demo server, or :class:`DemoNotFound` saying how to start it."""
    api_url = os.environ.get(URL_ENV)
    if not api_url:
        info = demo_dir() / "demo.json"
        try:
            api_url = json.loads(info.read_text())["api_url"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DemoNotFound(f"No demo server found (no ${URL_ENV}, no {info}). {HOW_TO_START}") from None
    if not _healthy(api_url):
        raise DemoNotFound(f"The demo server at {api_url} does not answer. {HOW_TO_START}")
    has_auth = bool(os.environ.get(AUTH_ENV))
    if require_auth_string and not has_auth:
        raise DemoNotFound(
            f"This kernel has no ${AUTH_ENV}: the demo server's auth string exists only in the "
            f"environment of what binder/start started. {HOW_TO_START}")
    return Demo(api_url=api_url.rstrip("/"), demo_dir=demo_dir(), has_auth_string=has_auth)


def _auth_string() -> str:
    value = os.environ.get(AUTH_ENV)
    if not value:
        raise DemoNotFound(f"${AUTH_ENV} is not set in this kernel. {HOW_TO_START}")
    return value


def _secret(value: str) -> Any:
    from prefect_nbauth import Secret

    return Secret(value)


_RUNNING: list[Any] = []


def _stop_all() -> None:
    while _RUNNING:
        try:
            _RUNNING.pop().stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


# --------------------------------------------------------------------- Cloud


@dataclass
class CloudAccess:
    """Prefect Cloud credentials for the notebook: real, or the emulation's."""

    emulated: bool
    api_key: Any  # a prefect_nbauth.Secret (shows as pnu_****abcd)
    workspace: str | None = None
    service_account_key: Any = None  # emulation only: a pnb_ key for one workspace
    expired_key: Any = None  # emulation only
    cloud_api_url: str = "https://api.prefect.cloud/api"
    workspaces: list[str] = field(default_factory=list)
    gateway: Any = None

    def __str__(self) -> str:
        if not self.emulated:
            return (f"Prefect Cloud at {self.cloud_api_url}, key from ${CLOUD_KEY_ENV}"
                    + (f", workspace {self.workspace}" if self.workspace else ""))
        return (f"EMULATED Prefect Cloud at {self.cloud_api_url} (no real Cloud key given): "
                f"workspaces {', '.join(self.workspaces)}, backed by the demo server")

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()


def cloud() -> CloudAccess:
    """A real Cloud key from ``$PREFECT_NBAUTH_CLOUD_API_KEY``, or the Cloud emulation.

    The emulation must start BEFORE ``import prefect``: it points
    ``PREFECT_CLOUD_API_URL`` (a URL, not a secret) at itself, and Prefect reads
    its settings once, at import.
    """
    real_key = os.environ.get(CLOUD_KEY_ENV)
    if real_key:
        return CloudAccess(emulated=False, api_key=_secret(real_key.strip()),
                           workspace=os.environ.get(CLOUD_WORKSPACE_ENV) or None)
    if "prefect" in sys.modules:
        raise RuntimeError("Start the Cloud emulation before `import prefect` (Prefect reads "
                           "PREFECT_CLOUD_API_URL once, at import): restart the kernel and run from the top.")
    demo = find_demo()
    from prefect_nbauth.testing import CloudGateway, CloudKey, CloudWorkspace

    prod = CloudWorkspace.new("acme", "prod")
    dev = CloudWorkspace.new("acme", "dev")
    # Fresh random keys on every run; they exist only in this kernel.
    user_key = "pnu_" + secrets.token_urlsafe(27)
    bot_key = "pnb_" + secrets.token_urlsafe(27)
    expired_key = "pnu_" + secrets.token_urlsafe(27)
    gateway = CloudGateway(demo.api_url, upstream_auth_string=_auth_string(), keys=[
        CloudKey(user_key, "user", "marvin", [prod, dev]),
        CloudKey(bot_key, "service_account", "etl-bot", [prod]),
        CloudKey(expired_key, "user", "old-marvin", [prod], expired=True),
    ])
    gateway.start()
    _RUNNING.append(gateway)
    os.environ["PREFECT_CLOUD_API_URL"] = gateway.api_url
    return CloudAccess(emulated=True, api_key=_secret(user_key), workspace="acme/prod",
                       service_account_key=_secret(bot_key), expired_key=_secret(expired_key),
                       cloud_api_url=gateway.api_url, workspaces=["acme/prod", "acme/dev"],
                       gateway=gateway)


# ------------------------------------------------------------ OAuth2 gateway


def start_gateway(*, token_lifetime: float = 5.0, header: str = "Authorization",
                  adds_credential: bool = True) -> Any:
    """An OAuth2-proxy stand-in in front of the demo server (``prefect_nbauth.testing.RotatingGateway``).

    Every request must carry one of its short-lived JWTs (``Authorization: Bearer``,
    or the raw token in ``header``); it issues them from ``gateway.token_url``
    (client-credentials grant with ``gateway.client_id``/``gateway.client_secret``)
    and forwards what passes to the demo server. With ``adds_credential`` (default)
    it adds the demo's auth string itself, so the notebook never needs it; without,
    the client's own ``Authorization`` goes through to Prefect (use ``header=`` for
    the gateway's token then). ``gateway.revoke_latest()`` revokes the newest token.
    """
    demo = find_demo()
    from prefect_nbauth.testing import RotatingGateway

    class DemoGateway(RotatingGateway):
        latest_token: str | None = None

        def issue(self, lifetime: float | None = None, *, scope: str | None = None) -> str:
            token = super().issue(lifetime, scope=scope)
            self.latest_token = token
            return token

        def revoke_latest(self) -> None:
            if self.latest_token is None:
                raise RuntimeError("no token issued yet")
            self.revoke(self.latest_token)

    if not adds_credential and header.lower() == "authorization":
        raise ValueError("a gateway that lets Prefect's Authorization through needs its own header=")
    gateway = DemoGateway(demo.api_url, upstream_auth_string=_auth_string() if adds_credential else None,
                          token_lifetime=token_lifetime, client_id="notebooks", header=header)
    gateway.start()
    _RUNNING.append(gateway)
    return gateway


# ------------------------------------------------------------- the server


def _run_binder(script: str, *args: str, timeout: float) -> float:
    started = time.monotonic()
    done = subprocess.run(["bash", str(REPO / "binder" / script), *args], env=dict(os.environ),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"binder/{script} {' '.join(args)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-1500:]}")
    return time.monotonic() - started


def stop_demo_server(timeout: float = 60) -> float:
    """Stop the demo server (``binder/stop --server-only``: notebook 06's identity provider
    keeps running); returns the seconds it took."""
    find_demo()
    return _run_binder("stop", "--server-only", timeout=timeout)


def start_demo_server_again(timeout: float = 300) -> float:
    """Start the demo server again, same auth string, port and database (``binder/start --restart``)."""
    _auth_string()
    return _run_binder("start", "--restart", timeout=timeout)


# ---------------------------------------------------------------------- UI


def show_ui_link() -> None:
    """A link to the demo server's Prefect UI (binder/start says where it is)."""
    url = os.environ.get("PREFECT_NBAUTH_DEMO_UI_URL")
    if not url:
        print("This demo server runs without its web UI (PREFECT_NBAUTH_DEMO_UI=0, as in headless runs).")
        return
    if os.environ.get("PREFECT_NBAUTH_DEMO_UI_PROXY_BASE"):
        how = ("through Jupyter (jupyter-server-proxy adds the credential; no login page, "
               "and the auth string never reaches your browser)")
    else:
        how = ("directly: it asks for the auth string (a JupyterLab terminal shows it: printenv "
               "PREFECT_NBAUTH_DEMO_AUTH_STRING). Install jupyter-server-proxy (./scripts/demo does) "
               "to get it through Jupyter without a login")
    from IPython.display import HTML, display

    display(HTML(f'<p>Prefect UI: <a href="{url}" target="_blank" rel="noopener">{url}</a>, {how}.</p>'))


# ------------------------------------------------------------------ waiting


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str = "the condition",
               interval: float = 0.05) -> float:
    """Poll ``condition`` until it is true; the seconds waited, or TimeoutError."""
    from prefect_nbauth.testing import wait_until as _wait_until

    started = time.monotonic()
    _wait_until(condition, timeout, interval=interval, what=what)
    return time.monotonic() - started
