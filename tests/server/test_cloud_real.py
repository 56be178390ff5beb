"""API-key (Prefect Cloud) mode against the loopback Cloud emulation.

Prefect Cloud cannot be reached from here: ``prefect_nbauth.testing.CloudGateway`` emulates
its documented surface (``/api/me/``, ``/api/me/workspaces``, workspace URLs,
Bearer keys) in front of a REAL Prefect server, and the scenarios point
``PREFECT_CLOUD_API_URL`` at it, exactly as Prefect's own code reads it.
"""

from __future__ import annotations

import pytest
from constants import AUTH_STRING

from prefect_nbauth.testing._cloud import CloudGateway, CloudKey, CloudWorkspace

pytestmark = pytest.mark.server

PROD = CloudWorkspace.new("acme", "prod")
DEV = CloudWorkspace.new("acme", "dev")
USER_KEY = "pnu_" + "u" * 8 + "CANARYuser0123456789"
BOT_KEY = "pnb_" + "b" * 8 + "CANARYbot01234567890"
EXPIRED_KEY = "pnu_" + "e" * 8 + "CANARYexpired0123456"


@pytest.fixture(scope="module")
def cloud(auth_server):
    keys = [
        CloudKey(USER_KEY, "user", "marvin", [PROD, DEV]),
        CloudKey(BOT_KEY, "service_account", "etl-bot", [PROD]),
        CloudKey(EXPIRED_KEY, "user", "old-marvin", [PROD], expired=True),
    ]
    with CloudGateway(auth_server.api_url, upstream_auth_string=AUTH_STRING, keys=keys) as gateway:
        yield gateway


def test_cloud_login_chooses_workspaces_and_switches_prefect(cloud, run_scenario):
    result = run_scenario(
        f"""
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import *
        out = {{}}
        def attempt(name, **kwargs):
            try:
                out[name] = ["ok", nb.login(**kwargs).to_dict()]
            except nb.PrefectAuthError as exc:
                out[name] = [type(exc).__name__, str(exc)]
            out[name].append(status_dict(check_server=False)["workspace"])
        attempt("several", api_key={USER_KEY!r})
        attempt("user prod", api_key={USER_KEY!r}, workspace="acme/prod")
        out["user prod checks"] = [read_flows_sync(), read_flows_async(), run_flow(), events_roundtrip()]
        attempt("bot only workspace", api_key={BOT_KEY!r})
        out["bot checks"] = [read_flows_sync(), run_flow()]
        attempt("bot wrong workspace", api_key={BOT_KEY!r}, workspace="acme/dev")
        attempt("expired", api_key={EXPIRED_KEY!r})
        attempt("by url", api_url={cloud.workspace_api_url(DEV)!r}, api_key={USER_KEY!r})
        attempt("by id", api_key={USER_KEY!r}, workspace={str(PROD.workspace_id)!r})
        attempt("auth string to cloud", api_url={cloud.workspace_api_url(DEV)!r}, auth_string="a:b")
        out["final"] = status_dict()
        emit(out)
        """,
        env={"PREFECT_CLOUD_API_URL": cloud.api_url},
    )
    kind, message, workspace = result["several"]
    assert kind == "ConfigurationError" and "acme/prod" in message and "acme/dev" in message
    assert workspace is None

    kind, status, workspace = result["user prod"]
    assert kind == "ok" and workspace == "acme/prod"
    assert status["mode"] == "api-key" and status["api_url"] == cloud.workspace_api_url(PROD)
    assert "marvin" in status["identity"] and "(user)" in status["identity"]
    assert status["credential"].startswith("API key pnu_****")
    assert result["user prod checks"] == [200, 200, 200, "received"]

    kind, status, workspace = result["bot only workspace"]
    assert kind == "ok" and workspace == "acme/prod" and "service account" in status["identity"]
    assert result["bot checks"] == [200, 200]

    for name, error in [("bot wrong workspace", "AuthenticationError"), ("expired", "AuthenticationError"),
                        ("auth string to cloud", "ConfigurationError")]:
        kind, message, workspace = result[name]
        assert kind == error, (name, result[name])
        assert workspace == "acme/prod", name  # the bot login stayed in force
    assert "acme/prod" in result["bot wrong workspace"][1]  # says what the key can use
    assert "expired" in result["expired"][1]

    assert result["by url"][0] == "ok" and result["by url"][2] == "acme/dev"
    assert result["by id"][0] == "ok" and result["by id"][2] == "acme/prod"

    final = result["final"]
    assert final["mode"] == "api-key" and final["warnings"] == [] and final["server_version"]
    text = repr(result)
    for key in (USER_KEY, BOT_KEY, EXPIRED_KEY):
        assert key not in text and key[4:] not in text


def test_status_identifies_a_cloud_key_from_the_environment(cloud, run_scenario):
    result = run_scenario(
        """
        from prefect_nbauth.testing.probes import emit, status_dict, read_flows_sync
        emit([status_dict(), read_flows_sync()])
        """,
        env={"PREFECT_CLOUD_API_URL": cloud.api_url, "PREFECT_API_URL": cloud.workspace_api_url(PROD),
             "PREFECT_API_KEY": BOT_KEY},
    )
    status, flows = result
    assert flows == 200
    assert status["mode"] == "api-key" and status["workspace"] == "acme/prod"
    assert status["sources"] == {"PREFECT_API_URL": "environment variable",
                                 "PREFECT_API_KEY": "environment variable"}
    assert "etl-bot" in status["identity"]
    assert BOT_KEY not in repr(status)


def test_headers_mode_through_a_bearer_gateway(cloud, run_scenario):
    # The workspace URL behind a gateway that wants a Bearer token: custom headers mode.
    result = run_scenario(
        f"""
        import prefect_nbauth as nb
        from prefect_nbauth.testing.probes import emit, read_flows_sync, run_flow
        s = nb.login({cloud.workspace_api_url(PROD)!r}, headers={{"Authorization": "Bearer {USER_KEY}"}})
        emit([s.to_dict(), read_flows_sync(), run_flow()])
        """,
        env={"PREFECT_CLOUD_API_URL": "https://api.prefect.cloud/api"},
    )
    status, flows, flow = result
    assert status["mode"] == "headers" and flows == 200 and flow == 200
    assert status["sources"]["PREFECT_CLIENT_CUSTOM_HEADERS"] == "login()"
    assert USER_KEY not in repr(status)
