"""Installing what the real IdP and gateway run on, idempotently, so a fresh machine works.

* ``oidc-provider`` (npm, version pinned in :data:`OIDC_PROVIDER_VERSION`) goes into the
  user's cache (``$XDG_CACHE_HOME/prefect-nbauth/`` or ``~/.cache/prefect-nbauth/``), never
  into the package directory, which may be read-only or shared; npm's own download cache
  goes there too (``…/prefect-nbauth/npm-cache``, not ``~/.npm``), so deleting that one
  folder reclaims all of it (a few MB; it is installed again when next needed);
* Debian's nginx, its njs module (``libnginx-mod-http-js``) and the stream modules the SSO
  gateway's websocket half runs on (``libnginx-mod-stream``, ``libnginx-mod-stream-js``)
  with ``apt-get`` when missing and we are root (:func:`~.._apt.apt_install`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from .._apt import apt_install, missing_packages

__all__ = ["ASSETS", "NGINX", "NJS_MODULE", "OIDC_PROVIDER_VERSION", "STREAM_JS_MODULE", "STREAM_MODULE", "cache_dir",
           "ensure_nginx", "ensure_oidc_provider", "nginx_version", "node"]

OIDC_PROVIDER_VERSION = "9.13.3"
ASSETS = Path(__file__).resolve().parent / "assets"  # package data (pyproject.toml)
NGINX = "/usr/sbin/nginx"
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
STREAM_JS_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_js_module.so")
# Each Debian package, and a file it installs.
_NGINX_PACKAGES: dict[str, str | Path] = {"nginx": NGINX, "libnginx-mod-http-js": NJS_MODULE,
                                          "libnginx-mod-stream": STREAM_MODULE,
                                          "libnginx-mod-stream-js": STREAM_JS_MODULE}


def cache_dir() -> Path:
    """Where the npm packages go: the XDG cache of this user (no platformdirs dependency for one path)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prefect-nbauth" / f"oidc-provider-{OIDC_PROVIDER_VERSION}"


def node() -> str:
    """Debian's (or any) ``node`` on PATH."""
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("the real IdP runs on Node.js, which is missing: apt-get install nodejs npm")
    return found


def ensure_oidc_provider() -> Path:
    """The ``node_modules`` folder holding the pinned ``oidc-provider`` (installed if missing)."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    package = cache / "node_modules" / "oidc-provider" / "package.json"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes install once
        if not (package.exists() and json.loads(package.read_text())["version"] == OIDC_PROVIDER_VERSION):
            if shutil.which("npm") is None:
                raise RuntimeError("installing oidc-provider needs npm, which is missing: apt-get install npm")
            (cache / "package.json").write_text(json.dumps(
                {"name": "prefect-nbauth-real-idp", "private": True, "type": "module"}))
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                 "--cache", str(cache.parent / "npm-cache"),
                 "--prefix", str(cache), f"oidc-provider@{OIDC_PROVIDER_VERSION}"],
                check=True, stdin=subprocess.DEVNULL, timeout=600)
    return cache / "node_modules"


def ensure_nginx() -> None:
    """Debian's nginx, its njs module and the stream modules (``apt-get install`` when missing and root)."""
    apt_install(missing_packages(_NGINX_PACKAGES), "the gateway (nginx with njs)")


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"nginx/(\S+)", out)
    return match.group(1) if match else "unknown"
