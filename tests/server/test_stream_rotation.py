"""Log subscribers reconnect with the gateway token in force, not the one they started with.

Real parts on 127.0.0.1: a Prefect 3.9.1 server with an auth string and its logs
websocket on, ``prefect_nbauth.testing.RotatingGateway`` in front of it (an OAuth2
proxy stand-in issuing 2-second JWTs, checked in ``X-Gateway-Token`` on every request
and websocket upgrade; it adds Prefect's auth string upstream, as a proxy that holds the
server's credential does), and a
loopback proxy that cuts the ``/logs/out`` websocket mid-frame. The login carries the
gateway token from an ``OAuth2ClientCredentials`` provider, which rotates it.

The cut comes after the first token has expired, so the reconnect can only be
accepted at once if it presents the token in force *now*. A subscriber that kept the
headers it connected with is refused ("expired") on the reconnect; the gateway records
every ``/logs/out`` upgrade, so the tests see which token each one carried.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from constants import AUTH_STRING

import prefect_nbauth as nb
from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing._gateway import RotatingGateway
from prefect_nbauth.testing._server import PrefectServer
from prefect_nbauth.testing.cut_proxy import CutProxy
from prefect_nbauth.testing.events import Collector
from prefect_nbauth.testing.logs import LOGS_ON, create_run, post_logs

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]

LIFETIME = 2.0  # seconds a gateway token lives


class RecordingGateway(RotatingGateway):
    """Also records, for every ``/logs/out`` upgrade: (when, token presented, rejection or None)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upgrades: list[tuple[float, str, str | None]] = []

    def _check(self, headers: Any, path: str) -> str | None:
        reason = super()._check(headers, path)
        if path.endswith("/logs/out"):
            with self._lock:
                self.upgrades.append((time.time(), self._token_from(headers) or "", reason))
        return reason

    def upgrades_now(self) -> list[tuple[float, str, str | None]]:
        with self._lock:
            return list(self.upgrades)


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory):
    server = PrefectServer(Path(tmp_path_factory.mktemp("rotation-logs")), auth_string=AUTH_STRING,
                           extra_env=LOGS_ON)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gateway(logs_server):
    """(gateway, cutting proxy) with a rotating-gateway login through the proxy."""
    with RecordingGateway(logs_server.api_url, header="X-Gateway-Token", token_lifetime=LIFETIME,
                          upstream_auth_string=AUTH_STRING) as gw:
        with CutProxy(gw.port, socket_path="/logs/out") as proxy:
            provider = nb.OAuth2ClientCredentials(gw.token_url, gw.client_id, gw.client_secret)
            nb.login(proxy.url(gw.api_url), auth_string=AUTH_STRING, headers={"X-Gateway-Token": provider})
            try:
                yield gw, proxy
            finally:
                nb.logout()


def _cut_after_the_first_token_expired(gw: RecordingGateway, proxy: CutProxy, server: PrefectServer,
                                       run_id: str) -> None:
    first_upgrade = gw.upgrades_now()[0][0]
    wait_until(lambda: time.time() > first_upgrade + LIFETIME + 0.5, 30,
               what="the token of the first connect to expire")
    before = proxy.arm()
    post_logs(server.api_url, server.auth_headers(), run_id, ["a line whose frame is cut"])
    proxy.wait_cut(before, 60)


def _assert_reconnected_with_a_fresh_token(gw: RecordingGateway) -> None:
    upgrades = gw.upgrades_now()
    assert len(upgrades) >= 2, upgrades
    assert [reason for _, _, reason in upgrades] == [None] * len(upgrades), \
        "a /logs/out upgrade presented a gateway token that was no longer valid"
    assert upgrades[-1][1] != upgrades[0][1]


def test_stream_logs_reconnects_with_the_gateway_token_in_force(logs_server, gateway):
    gw, proxy = gateway
    run_id = create_run(logs_server.api_url, logs_server.auth_headers())
    collector = Collector()
    stream = nb.stream_logs(flow_run_id=run_id)
    handle = stream.run_in_background(collector.add, collector.on_change)
    try:
        wait_until(lambda: stream.state.value == "connected", 60, what="the log stream to connect")
        _cut_after_the_first_token_expired(gw, proxy, logs_server, run_id)
        wait_until(lambda: stream.stats.reconnects >= 1 and stream.state.value == "connected", 60,
                   what="the log stream to reconnect")
        post_logs(logs_server.api_url, logs_server.auth_headers(), run_id, ["after the reconnect"])
        collector.wait_for(lambda c: "after the reconnect" in [log.message for log in c.events], 60,
                           "the line logged after the reconnect")
        stats = stream.stats
    finally:
        handle.stop()
    assert stream.error is None and collector.duplicates() == {}
    assert [log.message for log in collector.events] == ["a line whose frame is cut", "after the reconnect"]
    assert stats.live_socket is True and "refreshing the credential" not in (stats.last_error or "")
    _assert_reconnected_with_a_fresh_token(gw)


def test_prefects_own_logs_subscriber_reconnects_with_the_gateway_token_in_force(logs_server, gateway):
    """Prefect's ``PrefectLogsSubscriber`` builds its upgrade request once; the toolkit's hook on
    its reconnect (``install_socket_refresh``) gives it the headers in force each time."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.clients import PrefectLogsSubscriber

    gw, proxy = gateway
    run_id = create_run(logs_server.api_url, logs_server.auth_headers())
    stop = threading.Event()

    def keep_logging() -> None:  # until the subscriber has one line from after its reconnect
        while not stop.wait(0.5):
            post_logs(logs_server.api_url, logs_server.auth_headers(), run_id, ["after the reconnect"])

    async def go() -> list[str]:
        subscriber = PrefectLogsSubscriber(filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                                           reconnection_attempts=2)
        async with subscriber:
            await asyncio.to_thread(_cut_after_the_first_token_expired, gw, proxy, logs_server, run_id)
            writer = threading.Thread(target=keep_logging, daemon=True)
            writer.start()
            try:
                while True:
                    log = await asyncio.wait_for(subscriber.__anext__(), 60)
                    if log.message == "after the reconnect":
                        return [log.message]
            finally:
                stop.set()
                writer.join(10)

    assert asyncio.run(go()) == ["after the reconnect"]
    _assert_reconnected_with_a_fresh_token(gw)
