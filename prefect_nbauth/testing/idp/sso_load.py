"""A person signed in with the device sign-in, working through the SSO gateway (tests, benchmarks).

Runs INSIDE a scenario interpreter or a kernel (the login is process-wide); someone
else approves the sign-ins (a :class:`~prefect_nbauth.testing.idp.DeviceApprover` in the
test's or the benchmark's process). ``cfg`` holds ``api_url`` (the gateway's), ``issuer``,
``client_id``, ``direct_api_url`` and ``auth_string`` (Prefect itself, for events that
happen elsewhere while the person is signed out) and ``admin`` (``issuer`` and token of
the provider's admin endpoints: an administrator signing the person out).

* :func:`sign_in` logs in with ``sso=DeviceSignIn(...)``: the seconds it took;
* :func:`work` runs, for ``duration`` seconds, ``rest_threads`` threads of REST calls
  (each with one client opened once), a ``@flow`` calling the API, ``emit_event`` every
  ``emit_every`` seconds and a ``stream_events`` receiving them; with ``revoke_at`` the
  administrator signs the person out mid-way, the work pauses, events keep happening
  elsewhere, the person signs in again, the work resumes; then every event must be stored
  and streamed. Returns the figures;
* :func:`log_out` logs out and checks the provider refuses the old refresh token.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from .load import _EmitFailures, _Load, _wait

__all__ = ["log_out", "sign_in", "work"]

SLOT = "header Authorization"


def _token() -> Any:
    from prefect_nbauth.session import current_login

    login = current_login()
    assert login is not None, "not logged in"
    return login.tokens[SLOT]


def sign_in(cfg: dict[str, Any]) -> float:
    """``login(api_url, sso=DeviceSignIn(issuer, client_id))``; the seconds until it returned."""
    from ...session import DeviceSignIn, login

    started = time.monotonic()
    login(cfg["api_url"], sso=DeviceSignIn(cfg["issuer"], cfg["client_id"]))
    return round(time.monotonic() - started, 3)


def _elsewhere(cfg: dict[str, Any], prefix: str, n: int) -> list[str]:
    """``n`` events that happen while the person is signed out, posted to Prefect directly."""
    import base64

    basic = base64.b64encode(cfg["auth_string"].encode()).decode()
    events: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "occurred": datetime.now(timezone.utc).isoformat(),
               "event": f"{prefix}.elsewhere", "resource": {"prefect.resource.id": f"{prefix}.r"},
               "payload": {"i": i}} for i in range(n)]
    reply = httpx.post(f"{cfg['direct_api_url']}/events", json=events, timeout=30,
                       headers={"Authorization": f"Basic {basic}"})
    reply.raise_for_status()
    return [str(e["id"]) for e in events]


def _revoke_and_return(cfg: dict[str, Any], load: _Load, stream: Any, out: dict[str, Any]) -> None:
    """The administrator signs the person out; what everyone sees; the person signs in again."""
    from ...session import status

    load.running.clear()
    stats = lambda: httpx.get(f"{cfg['admin']['issuer']}/admin/stats", timeout=30,  # noqa: E731
                              headers={"Authorization": f"Bearer {cfg['admin']['token']}"}).json()
    httpx.post(f"{cfg['admin']['issuer']}/admin/accounts/{cfg['user']}/revoke", timeout=30,
               headers={"Authorization": f"Bearer {cfg['admin']['token']}"}).raise_for_status()
    signed_out = "Signed out by the identity provider"
    out["status_signed_out"] = _wait(lambda: any(signed_out in w for w in status(check_server=False).warnings),
                                     60)
    out["stream_signed_out"] = _wait(lambda: signed_out in (stream.stats.last_error or ""), 60) if stream else None
    before = stats()["tokens"].get("refresh_token", 0) + stats()["errors"].get("invalid_grant", 0)
    out["elsewhere"] = _elsewhere(cfg, load.prefix, 20)  # life goes on while the person is away
    load.stop.wait(2)  # a quiet window: the IdP must hear nothing from this kernel
    after = stats()["tokens"].get("refresh_token", 0) + stats()["errors"].get("invalid_grant", 0)
    out["idp_requests_while_signed_out"] = after - before
    out["signed_out_warnings"] = [w for w in status(check_server=False).warnings if signed_out in w]
    started = time.monotonic()
    sign_in(cfg)
    out["second_sign_in_s"] = round(time.monotonic() - started, 3)
    out["identity_after"] = status(check_server=False).identity
    load.running.set()


def work(cfg: dict[str, Any], *, duration: float, rest_threads: int = 4, with_flow: bool = True,
         emit_every: float = 0.1, revoke_at: float | None = None, settle: float = 120.0) -> dict[str, Any]:
    """The work of a signed-in person for ``duration`` seconds (see the module docstring); the figures."""
    from ...events import stream_events
    from ...session import status

    token = _token()
    provider = token.provider
    refreshes0, reasons0, rotations0 = token.refreshes, dict(token.reasons), provider.rotations
    failures = _EmitFailures()
    logging.getLogger("prefect._internal.concurrency").addHandler(failures)
    load = _Load(f"nbauth.sso.{uuid.uuid4().hex[:8]}", emit_every)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=5)
    stream = stream_events(prefix=load.prefix, since=t0).run_in_background(load.on_event)
    threads = [threading.Thread(target=load.call_until_stopped, args=("",), daemon=True) for _ in range(rest_threads)]
    if with_flow:
        threads.append(threading.Thread(target=load.run_flow, daemon=True))
    threads.append(threading.Thread(target=load.emit, daemon=True))
    begin = time.monotonic()
    for t in threads:
        t.start()
    revoked: dict[str, Any] = {}
    if revoke_at is not None:
        load.stop.wait(revoke_at)
        # The figures of the first sign-in, before it ends.
        revoked["first"] = {"refreshes": token.refreshes - refreshes0, "reasons": dict(token.reasons),
                            "rotations": provider.rotations - rotations0}
        _revoke_and_return(cfg, load, stream.stream, revoked)
        token, provider = _token(), _token().provider
        refreshes0, reasons0, rotations0 = token.refreshes, dict(token.reasons), provider.rotations
    load.stop.wait(max(0.0, duration - (time.monotonic() - begin)))
    load.stop.set()
    for t in threads:
        t.join(60)
    reasons = {k: v - reasons0.get(k, 0) for k, v in token.reasons.items()}
    emitted = set(load.emitted) | set(revoked.get("elsewhere", []))
    load.emitted.update({i: 0.0 for i in revoked.get("elsewhere", [])})
    stored = load.settle(t0, stream, settle)
    first = revoked.get("first", {"refreshes": 0, "reasons": {}, "rotations": 0})
    refreshes = token.refreshes - refreshes0 + first["refreshes"]
    proactive = reasons.get("proactive", 0) + first["reasons"].get("proactive", 0)
    return {
        "identity": status(check_server=False).identity,
        "calls": load.calls["ok"] + load.calls["failed"], "failed": load.calls["failed"], "errors": load.errors,
        "refreshes": refreshes, "proactive": proactive,
        "refresh_token_rotations": provider.rotations - rotations0 + first["rotations"],
        "emitted": len(emitted), "stored": len(emitted & stored), "streamed": len(emitted & set(load.streamed)),
        "emit_failures": failures.count, "flow": load.flow_state.get("state"),
        "load_seconds": round(time.monotonic() - begin, 1), "stream_error": stream.error and str(stream.error),
        "revocation": {k: v for k, v in revoked.items() if k not in ("elsewhere", "first")} or None,
    }


def log_out(cfg: dict[str, Any]) -> dict[str, Any]:
    """Log out; whether the provider revoked, and whether it now refuses the old refresh token."""
    from ...session import logout

    provider = _token().provider
    held = provider._held  # the test looks at what the provider held, to try it afterwards
    old_refresh = held.refresh.reveal() if held is not None and held.refresh is not None else None
    after = logout()
    refused = None
    if old_refresh is not None:
        reply = httpx.post(f"{cfg['issuer']}/token", timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": cfg["client_id"]})
        refused = reply.status_code == 400 and reply.json().get("error") == "invalid_grant"
    return {"revoked_at_logout": provider.revoked_at_close, "notes": list(after.notes),
            "old_refresh_token_refused": refused}
