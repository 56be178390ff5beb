#!/usr/bin/env python3
"""A team on a real JupyterHub: every person's kernel signed in to Prefect through the Hub.

    .venv/bin/python benchmarks/hub_team.py [--quick] [--users N] [--duration S] [--idle S]

Needs root (real Unix users for LocalProcessSpawner), Node.js/npm, nginx with njs and
Debian's Chromium. Starts a real auth-protected Prefect server, ``oidc-provider`` issuing
10-second access tokens (with refresh tokens), the SSO gateway (nginx + njs) in front of
Prefect, and JupyterHub 6.1.1 with the shipped ``docs/jupyterhub/jupyterhub_config.py``
(``prefect_nbauth.testing.hub.HubTeam``). Then:

1. each person (``--users``, default 10; ``--quick``: 3) signs in through the provider's
   page in Chromium and the Hub starts their server;
2. each person's kernel runs ``%prefect_login --hub`` (``signed_in`` counts the kernels
   whose status says "via JupyterHub as <them>");
3. all kernels at once, for ``--duration`` seconds (32: three token lifetimes): two
   threads of REST calls, a thread of tiny ``@flow`` runs, ``events_expected`` events
   emitted with ``emit_event`` and a ``stream_events`` receiving them
   (``prefect_nbauth.testing.hub.kernel_work``);
4. every kernel left idle for ``--idle`` seconds (60; ``--quick``: 20) with an events
   stream open: ``idle_server_requests_per_s`` is what reached Prefect (the gateway's
   access log: requests it let through) per second, all kernels together.

Figures: ``calls``/``failed`` (REST calls and flow runs, all kernels), ``refreshes``
(tokens replaced in the kernels), ``hub_api_requests`` (the kernels' calls to the Hub's
API), ``events_delivered_min`` (the fewest events one kernel's stream delivered of its
``events_expected``), ``duplicates`` (events a stream delivered twice). The LAST stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from prefect_nbauth.testing.hub import HubTeam

_LOAD = """
import json
from prefect_nbauth.testing.hub import kernel_work
print("RESULT " + json.dumps(kernel_work.run({person!r}, duration={duration}, events={events},
                                             emit_every={every}, flows=True, settle=120)))
"""
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]


def _load_all(team: HubTeam, people: list[str], duration: float, events: int) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def run(person: str) -> None:
        try:
            out = team.kernels[person].run(_LOAD.format(person=team.name(person), duration=duration,
                                                        events=events, every=duration / events * 0.8),
                                           timeout=duration + 400)
            line = next(x for x in out.splitlines() if x.startswith("RESULT "))
            results[person] = json.loads(line[len("RESULT "):])
        except Exception as exc:  # noqa: BLE001 - a person whose load failed counts as all failed
            results[person] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}

    threads = [threading.Thread(target=run, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 people, 20 s idle")
    parser.add_argument("--users", type=int)
    parser.add_argument("--duration", type=float, default=32.0)
    parser.add_argument("--idle", type=float)
    parser.add_argument("--events", type=int, default=100, help="events each kernel emits")
    args = parser.parse_args()
    users = args.users or (3 if args.quick else 10)
    idle = args.idle if args.idle is not None else (20.0 if args.quick else 60.0)
    people = PEOPLE[:users]
    began = time.monotonic()
    with HubTeam(people, ttl=10) as team:
        signed_in = 0
        for person in people:
            try:
                team.sign_in(person)
                kernel = team.kernel(person)
                kernel.run("%load_ext prefect_nbauth")
                if f"via JupyterHub as {team.name(person)}" in kernel.run("%prefect_login --hub"):
                    signed_in += 1
            except Exception as exc:  # noqa: BLE001 - counted, shown
                print(f"{person}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        load = _load_all(team, [p for p in people if p in team.kernels], args.duration, args.events)
        for person in team.kernels:
            team.kernels[person].run(f"from prefect_nbauth.testing.hub import kernel_work\n"
                                     f"kernel_work.keep_streaming({team.name(person)!r})")
        time.sleep(2)  # the streams' own start-up requests are not idling
        idle_from = time.time()
        time.sleep(idle)
        reached = [r for r in team.gateway.access_log() if r.user and idle_from <= r.time < idle_from + idle]
        done = [r for r in load.values() if "error" not in r]
        for person, figures in load.items():
            print(f"{person}: {json.dumps(figures)}", file=sys.stderr)
        print(f"sign-in seconds: {team.sign_in_seconds}; total {time.monotonic() - began:.0f} s", file=sys.stderr)
        result = {
            "hub": f"jupyterhub {team.hub.version}",
            "users": users,
            "kernels": len(team.kernels),
            "signed_in": signed_in,
            "calls": sum(r["calls"] for r in done),
            "failed": sum(r["failed"] for r in done) + (len(load) - len(done)),
            "refreshes": sum(r["refreshes"] for r in done),
            "hub_api_requests": sum(r["hub_requests"] for r in done),
            "events_expected": args.events,
            "events_delivered_min": min((r["streamed"] for r in done), default=0) if len(done) == users else 0,
            "duplicates": sum(r["duplicates"] for r in done),
            "idle_server_requests_per_s": round(len(reached) / idle, 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
