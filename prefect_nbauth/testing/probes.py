"""What does Prefect itself do in this process now? Small probes for tests after a login.

Each runs one of Prefect's own paths with the settings in force and returns ``200`` (or
``"received"``) when it worked, else the HTTP status or the error's type: a sync and an
async client call, a flow run, an event round trip through Prefect's own emitter and
subscriber, a flow that lives across gateway token rotations. The suite runs them inside
fresh interpreters (its ``run_scenario`` fixture), since a login is process-wide.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any


def http_status(exc: BaseException) -> int | str:
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return int(response.status_code)
    return type(exc).__name__


def read_flows_sync() -> int | str:
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            client.read_flows(limit=1)
        return 200
    except Exception as exc:  # noqa: BLE001 - the status is the result
        return http_status(exc)


def read_flows_async() -> int | str:
    from prefect import get_client

    async def go() -> int | str:
        try:
            async with get_client() as client:
                await client.read_flows(limit=1)
            return 200
        except Exception as exc:  # noqa: BLE001
            return http_status(exc)

    return asyncio.run(go())


def run_flow() -> int | str:
    from prefect import flow

    @flow(name="nbauth-probe", persist_result=False)
    def probe() -> int:
        return 42

    try:
        return 200 if probe() == 42 else "wrong result"
    except Exception as exc:  # noqa: BLE001
        return http_status(exc)


def events_roundtrip(timeout: float = 30) -> str:
    """Subscribe with Prefect's own subscriber, emit with Prefect's emit_event, receive it."""
    from prefect.events import emit_event
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    name = f"nbauth.probe.{uuid.uuid4().hex[:8]}"

    async def go() -> str:
        event_filter = EventFilter(event=EventNameFilter(prefix=[name]))
        try:
            async with get_events_subscriber(filter=event_filter, reconnection_attempts=0) as sub:
                emit_event(event=name, resource={"prefect.resource.id": "nbauth.probe"})
                event = await asyncio.wait_for(sub.__anext__(), timeout)
                return "received" if event.event == name else f"wrong event {event.event}"
        except asyncio.TimeoutError:
            return "timeout"
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}"

    return asyncio.run(go())


def status_dict(**kwargs: Any) -> dict[str, Any]:
    from ..session import status

    return status(**kwargs).to_dict()


def emit(result: Any) -> None:
    """Print ``result`` as JSON on one line (the last stdout line is what a scenario returns)."""
    print(json.dumps(result, default=str))


def flow_across_rotations(gateway: Any, rotations: int = 3) -> Any:
    """Run a flow whose tasks call the API until ``gateway`` has issued ``rotations`` more tokens.

    The flow and its own client stay alive across the rotations, as a long run started
    from a notebook does. Returns the flow's final state (its result: the calls made).
    """
    from prefect import flow, get_client, task

    @task
    def call_api(i: int) -> int:
        with get_client(sync_client=True) as client:
            client.read_flows(limit=1)
        return i

    @flow(name="nbauth-across-rotations", persist_result=False)
    def long_flow() -> int:
        issued_at_start = gateway.issued
        results: list[int] = []
        while gateway.issued < issued_at_start + rotations:
            results.append(call_api(len(results)))
        return len(results)

    return long_flow(return_state=True)
