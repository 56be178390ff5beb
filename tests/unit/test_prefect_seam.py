"""Loud failures if a Prefect upgrade moves what prefect_nbauth relies on.

Everything prefect_nbauth does beyond Prefect's documented API lives in
``prefect_nbauth/_prefect_seam.py``. These tests pin each assumption so that an
upgrade breaks here, with a clear name, rather than silently in a notebook.
Each runs in a fresh interpreter: they swap process-global state.
"""

from __future__ import annotations


def test_the_global_settings_context_is_what_every_client_reads(run_scenario):
    result = run_scenario(
        """
        import base64, inspect
        import prefect.context
        from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
        from prefect.settings import get_current_settings
        from prefect_nbauth import _prefect_seam as seam
        from prefect_nbauth.testing.probes import emit

        checks = {}
        checks["global exists"] = hasattr(prefect.context, "GLOBAL_SETTINGS_CONTEXT")
        checks["get() falls back to global"] = "GLOBAL_SETTINGS_CONTEXT" in inspect.getsource(
            prefect.context.SettingsContext.get)
        new = seam.settings_with_credential(
            seam.global_settings_context(), api_url="http://127.0.0.1:9/api",
            auth_string="u:p", api_key=None, custom_headers={"X-Gateway": "g"})
        seam.install_global_settings_context(new)
        checks["settings follow"] = get_current_settings().api.url == "http://127.0.0.1:9/api"
        client = get_client(sync_client=True)
        checks["sync client header"] = client._client.headers.get("Authorization") == (
            "Basic " + base64.b64encode(b"u:p").decode())
        aclient = get_client()
        checks["async client header"] = aclient._client.headers.get("Authorization") == (
            "Basic " + base64.b64encode(b"u:p").decode())
        checks["custom header"] = aclient._client.headers.get("X-Gateway") == "g"
        checks["local context detection"] = not seam.local_settings_context_active()
        from prefect.settings import temporary_settings
        with temporary_settings():
            checks["local context detection inside"] = seam.local_settings_context_active()
        emit(checks)
        """
    )
    assert result == {k: True for k in result} and len(result) == 8, result


def test_events_clients_take_their_credential_from_settings_at_creation(run_scenario):
    result = run_scenario(
        """
        from prefect.events.clients import PrefectEventSubscriber, PrefectEventsClient
        from prefect_nbauth import _prefect_seam as seam
        from prefect_nbauth.testing.probes import emit
        seam.install_global_settings_context(seam.settings_with_credential(
            seam.global_settings_context(), api_url="http://127.0.0.1:9/api",
            auth_string="u:p", api_key=None, custom_headers={}))
        emit({"publisher": PrefectEventsClient()._auth_token,
              "subscriber": PrefectEventSubscriber()._auth_token})
        """
    )
    assert result == {"publisher": "u:p", "subscriber": "u:p"}


def test_background_services_can_be_drained_and_rebuilt(run_scenario):
    result = run_scenario(
        """
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect_nbauth import _prefect_seam as seam
        from prefect_nbauth.testing.probes import emit
        emit({"drain_all": all(callable(getattr(s, "drain_all", None)) for s in (EventsWorker, APILogWorker)),
              "instances": all(isinstance(getattr(s, "_instances", None), dict) for s in (EventsWorker, APILogWorker)),
              "restart": seam.restart_background_services() is None})
        """
    )
    assert result == {"drain_all": True, "instances": True, "restart": True}


def test_rotation_seams_exist(run_scenario):
    result = run_scenario(
        """
        import inspect
        from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
        from prefect.events.clients import PrefectEventsClient, PrefectEventSubscriber
        from prefect_nbauth import _prefect_seam as seam
        from prefect_nbauth.session._http_auth import NbAuth
        from prefect_nbauth.testing.probes import emit
        checks = {}
        for cls in (PrefectEventsClient, PrefectEventSubscriber):
            checks[cls.__name__ + "._reconnect"] = inspect.iscoroutinefunction(cls._reconnect)
            client = cls(api_url="http://127.0.0.1:9/api")
            checks[cls.__name__ + " attrs"] = all(
                hasattr(client, a) for a in ("_connect", "_auth_token", "_api_url"))
            checks[cls.__name__ + " headers"] = hasattr(client._connect, "additional_headers")
        auth = NbAuth(lambda: None)
        seam.install_client_auth(auth)
        seam.install_client_auth(auth)  # idempotent
        checks["async auth"] = PrefectHttpxAsyncClient(base_url="http://x").auth is auth
        checks["sync auth"] = PrefectHttpxSyncClient(base_url="http://x").auth is auth
        checks["explicit auth wins"] = PrefectHttpxSyncClient(auth=("a", "b")).auth is not auth
        emit(checks)
        """
    )
    assert result == {k: True for k in result} and len(result) == 9, result


def test_child_process_seams_exist(run_scenario):
    """What _prefect_seam_children relies on: where Prefect builds a task's environment and
    context, stores a deferred task's context, and reads it back; and that a worker
    authenticates from the context it is sent (not from its environment)."""
    result = run_scenario(
        """
        import inspect
        import prefect.context, prefect.task_worker, prefect.tasks
        from prefect.task_runners import ProcessPoolTaskRunner
        from prefect_nbauth import _prefect_seam_children as children
        from prefect_nbauth.testing.probes import emit
        submit = inspect.getsource(ProcessPoolTaskRunner.submit)
        checks = {
            "submit builds env from settings": "to_environment_variables(exclude_unset=True)" in submit,
            "submit caches it": "self._cached_env = " in submit,
            "submit hands env by keyword": "env=env" in submit
                and "env" in inspect.signature(ProcessPoolTaskRunner._resolve_futures_and_submit).parameters,
            "the worker applies it to os.environ": "os.environ.update(env" in inspect.getsource(
                inspect.getmodule(ProcessPoolTaskRunner)._run_task_in_subprocess),
            "the worker authenticates from its context": "SettingsContext(**settings_context)"
                in inspect.getsource(prefect.context.hydrated_context),
            "delay stores serialize_context()": inspect.getsource(prefect.tasks).count(
                "context = serialize_context()") == 2,
            "the task worker reads by name": "await read_parameters(" in inspect.getsource(prefect.task_worker),
        }
        calls = []
        children.install_child_filters(lambda env: calls.append("env") or env,
                                       lambda c: calls.append("stored") or c,
                                       lambda c: calls.append("loaded") or c)
        children.install_child_filters(lambda env: env, lambda c: c, lambda c: c)  # idempotent
        checks["wrapped once"] = ProcessPoolTaskRunner.submit.__wrapped__.__name__ == "submit"
        prefect.tasks.serialize_context()
        checks["stored filter called"] = calls == []  # the latest install is in force
        emit(checks)
        """
    )
    assert result == {k: True for k in result} and len(result) == 9, result


def test_open_client_seams_exist(run_scenario):
    """What _prefect_seam_clients relies on: where each Prefect client keeps its credential."""
    result = run_scenario(
        """
        import base64
        from prefect.client.orchestration import get_client
        from prefect.events.clients import PrefectEventsClient, PrefectEventSubscriber
        from prefect.logging.clients import PrefectLogsSubscriber
        from prefect_nbauth import _prefect_seam as seam, _prefect_seam_clients as clients
        from prefect_nbauth.testing.probes import emit
        before = seam.global_settings_context()
        seam.install_global_settings_context(seam.settings_with_credential(
            before, api_url="http://127.0.0.1:9/api", auth_string="u:p", api_key=None, custom_headers={}))
        opened = []
        clients.install_open_client_hook(opened.append)
        clients.install_open_client_hook(opened.append)  # idempotent
        http = get_client(sync_client=True)._client
        publisher = PrefectEventsClient()
        subscriber = PrefectEventSubscriber()
        logs = PrefectLogsSubscriber()
        basic = "Basic " + base64.b64encode(b"u:p").decode()
        checks = {
            "each client once": [type(c).__name__ for c in opened] == [
                "PrefectHttpxSyncClient", "PrefectEventsClient", "PrefectEventSubscriber", "PrefectLogsSubscriber"],
            "http header": http.headers.get("Authorization") == basic
                and clients.settings_authorization(seam.global_settings_context().settings) == basic,
            "publisher": publisher._auth_token == "u:p"
                and publisher._connect.additional_headers.get("Authorization") == basic,
            "subscribers": subscriber._auth_token == "u:p" and logs._auth_token == "u:p",
            "api urls": {clients.client_api_url(c) for c in opened} == {"http://127.0.0.1:9/api", "http://127.0.0.1:9/api/"},
        }
        for client in opened:
            clients.point_client_at(client, before.settings, drop=["X-Gateway"])
        checks["pointed away"] = (http.headers.get("Authorization") is None
                                  and [c._auth_token for c in (publisher, subscriber, logs)] == [None] * 3
                                  and "Authorization" not in publisher._connect.additional_headers)
        emit(checks)
        """
    )
    assert result == {k: True for k in result} and len(result) == 6, result
