"""logout() ends the credential of clients already open, and drops the raw secret (issue 21, cases 12-13).

Real ``prefect server start`` with an auth string; Prefect's own clients, events worker,
API log worker and flow runs. What the end of a login does to each client is
:mod:`prefect_nbauth._open_clients`'s; what may still hold the secret afterwards is
listed in docs/security.md ("After logout()").
"""

from __future__ import annotations

from constants import AUTH_STRING


def test_logout_ends_the_credential_of_clients_opened_while_logged_in(auth_server, run_scenario):
    result = run_scenario(
        f"""
        import asyncio
        import prefect_nbauth as nb
        from prefect import get_client
        from prefect_nbauth.testing.probes import emit, http_status

        def sync_read(client):
            try:
                client.read_flows(limit=1)
                return 200
            except Exception as exc:
                return http_status(exc)

        async def async_read(client):
            try:
                await client.read_flows(limit=1)
                return 200
            except Exception as exc:
                return http_status(exc)

        async def main():
            out = {{}}
            before = get_client(sync_client=True)  # opened before any login: Prefect's rules
            nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
            plain = get_client(sync_client=True)  # held in a variable, never entered
            async with get_client() as entered:
                with get_client(sync_client=True) as entered_sync:
                    out["logged in"] = [sync_read(plain), await async_read(entered), sync_read(entered_sync)]
                    nb.logout()
                    out["after logout"] = [sync_read(plain), await async_read(entered), sync_read(entered_sync)]
                    nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})
                    out["logged in again"] = [sync_read(plain), await async_read(entered),
                                              sync_read(entered_sync)]
                    nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})  # replaces it
                    out["replaced"] = [sync_read(plain), await async_read(entered), sync_read(entered_sync)]
                    out["opened before login"] = sync_read(before)
                    nb.logout()
                    out["after the second logout"] = [sync_read(plain), await async_read(entered),
                                                      sync_read(entered_sync)]
            return out

        emit(asyncio.run(main()))
        """,
        env={"PREFECT_API_URL": auth_server.api_url},  # the settings from before login: no credential
    )
    assert result["logged in"] == [200, 200, 200]
    assert result["after logout"] == [401, 401, 401]
    assert result["logged in again"] == [200, 200, 200]  # the clients follow the login in force
    assert result["replaced"] == [200, 200, 200]
    assert result["opened before login"] == 401  # it had no credential, and gets none of ours
    assert result["after the second logout"] == [401, 401, 401]


def test_after_logout_only_the_scrubber_holds_the_secret(auth_server, run_scenario):
    """A scan of every object the garbage collector can reach, after logout() and gc.collect()."""
    result = run_scenario(
        f"""
        import gc, os
        mine = {{"auth": os.environ.pop("NB_AUTH")}}  # the caller's own copy (allowed), before any
        # import can snapshot the environment (wsgiref keeps a copy of os.environ in a class)
        import prefect_nbauth as nb
        from prefect import flow, get_client
        from prefect.events import emit_event
        from prefect.events.clients import get_events_subscriber
        from prefect_nbauth import _redaction
        from prefect_nbauth.testing.canaries import held_in_memory
        from prefect_nbauth.testing.probes import emit, events_roundtrip

        @flow(persist_result=False)
        def a_flow():
            return 1

        def scan():
            gc.collect()
            return held_in_memory(mine["auth"], allowed=[mine, vars(_redaction)],
                                  allowed_modules=("prefect_nbauth._redaction",))

        nb.login({auth_server.api_url!r}, auth_string=mine["auth"])
        client = get_client(sync_client=True)  # both held by the caller across logout
        subscriber = get_events_subscriber()
        client.read_flows(limit=1)
        a_flow()
        emit_event(event="leaks.ping", resource={{"prefect.resource.id": "leaks.1"}})
        roundtrip = events_roundtrip()  # a subscriber and the events worker, over websockets
        while_logged_in = scan()
        nb.logout()
        emit({{"roundtrip": roundtrip, "while logged in": while_logged_in, "after logout": scan()}})
        """,
        env={"NB_AUTH": AUTH_STRING},
    )
    assert result["roundtrip"] == "received", result
    holders = "\n".join(result["while logged in"])
    # The scan sees Prefect's own copies while logged in (so it can fail)...
    for where in ("PrefectHttpxSyncClient", "PrefectEventSubscriber", "EventsWorker", "APILogWorker",
                  "websockets.http11.Request", "SettingsContext"):
        assert where in holders, (where, holders)
    # ...and none after logout.
    assert result["after logout"] == []
