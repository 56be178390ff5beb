"""What the audit looks at: every probe, run at once, gathered as :class:`Evidence` for the rules.

The probes are independent (each its own request or socket), so they run on a small
thread pool; the rules (``auditing._rules``) only read the answers, never probe.
"""

from __future__ import annotations

import functools
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from .._exceptions import ServerUnreachableError
from .._ui_settings import ui_settings_urls
from ._prober import HttpAnswer, Prober, SocketAnswer
from ._report import Finding

__all__ = ["PUBLIC_CANDIDATES", "SOCKET_PATHS", "Evidence", "Rule", "gather", "refusal"]

SOCKET_PATHS = ("events/out", "events/in", "logs/out")

# (label, path under the API, method, JSON body)
PUBLIC_CANDIDATES: tuple[tuple[str, str, str, Any], ...] = (
    ("GET /version", "version", "GET", None),
    ("GET /admin/settings", "admin/settings", "GET", None),
    ("GET /csrf-token", "csrf-token?client={uuid}", "GET", None),
    ("GET /openapi.json", "openapi.json", "GET", None),
    ("GET /docs", "docs", "GET", None),
    ("POST /flows/filter", "flows/filter", "POST", {"limit": 1}),
    ("POST /events/filter", "events/filter", "POST", {"limit": 1}),
)


@dataclass(frozen=True)
class Evidence:
    """Every answer of one audit, by probe name, and what was read from them."""

    prober: Prober
    settings: Any  # Prefect's settings in force
    is_cloud: bool
    rest: dict[str, HttpAnswer]  # "no_cred", "wrong", "control", "public:GET /docs", …
    sockets: dict[str, SocketAnswer]  # "events/in:no-auth", "events/in:control", …
    ui: HttpAnswer  # GET /ui-settings, with the gateway's headers if the gateway guards it
    advertised: str | None  # what /ui-settings advertises: "BASIC", "none" or None (unknown)
    version: str | None  # the server's version, if it told it


# A rule judges one thing the evidence shows: a Finding, or None where it does not apply.
Rule = Callable[[Evidence], Optional[Finding]]


def refusal(res: HttpAnswer) -> bool:
    """Refused (401/403) or sent elsewhere (3xx): not answered."""
    return res.status in (401, 403) or (res.status is not None and 300 <= res.status < 400)


def gather(p: Prober, settings: Any, is_cloud: bool) -> Evidence:
    """Run every probe (after one request showing that something answers) and read the answers."""
    health = p.http("GET", "health", what="GET /health")
    if health.status is None:
        raise ServerUnreachableError(
            f"Nothing answered at {p.api_url} ({health.error}). Check the URL and that the "
            "server is running; the audit needs a reachable server."
        )
    rest_jobs, socket_jobs = _rest_probes(p), _socket_probes(p)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="nbauth-audit") as pool:
        rest_futures = {name: pool.submit(job) for name, job in rest_jobs.items()}
        socket_futures = {name: pool.submit(job) for name, job in socket_jobs.items()}
        rest = {name: future.result() for name, future in rest_futures.items()}
        sockets = {name: future.result() for name, future in socket_futures.items()}
    ui = rest["ui"]
    if ui.status != 200 and "gateway:ui" in rest:
        ui = rest["gateway:ui"]  # the gateway guards /ui-settings too: ask with its headers
    return Evidence(prober=p, settings=settings, is_cloud=is_cloud, rest=rest, sockets=sockets,
                    ui=ui, advertised=_advertised(ui), version=_version(rest))


def _rest_probes(p: Prober) -> dict[str, Callable[[], HttpAnswer]]:
    jobs: dict[str, Callable[[], HttpAnswer]] = {
        "ui": lambda: _ui_settings(p),
        "no_cred": lambda: p.http("GET", "admin/version", what="GET /admin/version"),
        "wrong": lambda: p.http("GET", "admin/version", headers=p.wrong_headers,
                                what="GET /admin/version"),
        "suffix": lambda: p.http("GET", f"flows/name/nbauth-audit-{uuid.uuid4().hex[:8]}-health"),
        "host": lambda: p.http("GET", "admin/version", headers={
            "Host": f"{urlsplit(p.api_url).netloc}/health?"}),
    }
    if p.use_credential:
        jobs["control"] = lambda: p.http("GET", "admin/version", headers=p.real_headers,
                                         what="GET /admin/version")
    if p.probe_prefect_rest:
        jobs["gateway:wrong"] = lambda: p.http("GET", "admin/version", headers=p.prefect_wrong_headers,
                                               what="GET /admin/version")
    if p.gateway_headers:
        jobs["gateway:ui"] = lambda: _ui_settings(p, p.gateway_headers)
    for name, path, method, body in PUBLIC_CANDIDATES:
        jobs[f"public:{name}"] = functools.partial(p.http, method, path.format(uuid=uuid.uuid4()), body=body)
    return jobs


def _ui_settings(p: Prober, headers: dict[str, str] | None = None) -> HttpAnswer:
    """``GET /ui-settings`` where status() finds it too (``_ui_settings``): elsewhere only after a 404."""
    [root, *elsewhere] = ui_settings_urls(p.api_url)
    answer = p.http_at("GET", root, headers=headers, what="GET /ui-settings")
    for url in elsewhere if answer.status == 404 else []:
        other = p.http_at("GET", url, headers=headers, what="GET /ui-settings")
        if _advertised(other) is not None:
            return other
    return answer


def _socket_probes(p: Prober) -> dict[str, Callable[[], SocketAnswer]]:
    jobs: dict[str, Callable[[], SocketAnswer]] = {}
    for path in SOCKET_PATHS:
        jobs[f"{path}:no-subprotocol"] = functools.partial(
            p.socket, path, subprotocol=False, headers=dict(p.gateway_headers), first=None)
        jobs[f"{path}:no-auth"] = functools.partial(
            p.socket, path, subprotocol=True, headers=dict(p.gateway_headers),
            first={"type": "filter", "filter": {}})
        jobs[f"{path}:wrong-token"] = functools.partial(
            p.socket, path, subprotocol=True, headers=p.prefect_wrong_headers,
            first={"type": "auth", "token": p.wrong_token})
        if p.use_credential:
            jobs[f"{path}:control"] = functools.partial(
                p.socket, path, subprotocol=True, headers=p.real_headers,
                first={"type": "auth", "token": p.real_token})
    return jobs


def _advertised(ui: HttpAnswer) -> str | None:
    data = ui.json() if ui.status == 200 else None
    if isinstance(data, dict) and "auth" in data:
        return "BASIC" if data.get("auth") else "none"
    return None


def _version(rest: dict[str, HttpAnswer]) -> str | None:
    for key in ("control", "no_cred"):
        res = rest.get(key)
        if res is not None and res.status == 200 and isinstance(res.json(), str):
            version: str = res.json()
            return version
    return None
