"""A real scaled-out Prefect on loopback: PostgreSQL + Redis + N API replicas + services + NGINX.

    from prefect_nbauth.testing.stack import ScaledStack

    with ScaledStack(auth_string="admin:s3cret") as stack:   # about a minute to start
        prefect_nbauth.login(stack.api_url, auth_string="admin:s3cret")

Or from a shell: ``python -m prefect_nbauth.testing.stack`` (``scripts/scaled-stack``).

The layout follows Prefect's guide "How to scale self-hosted Prefect", one module per part:

* :mod:`._postgres`: Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``), a fresh cluster
  made by ``initdb`` in a temporary directory on a free port of 127.0.0.1 (password auth,
  SCRAM). PostgreSQL refuses to run as root, so as root it runs as ``nobody``;
* :mod:`._redis`: ``redis-server`` on a free loopback port, append-only file on;
* :mod:`._replicas`: the schema migrated once, ``replicas`` API servers
  (``prefect server start --no-services``) and one ``prefect server services start``;
* :mod:`._nginx`: Debian's NGINX in front, round robin, websockets, an
  ``X-Prefect-Replica`` header naming the replica that answered. Every replica enforces
  ``PREFECT_SERVER_API_AUTH_STRING`` itself.

Messaging variants:

* ``"redis"`` (the correct setup): Prefect's broker, cache, causal ordering, lease
  storage and Docket on Redis (``prefect-redis``, in the ``test`` extra). Every
  replica's ``/events/out`` sees every event.
* ``"memory"`` (the common mistake: Redis forgotten): Prefect's in-memory broker, which
  lives inside one process; each replica runs its own services, persists the events IT
  ingested into the shared PostgreSQL, and its ``/events/out`` shows only those.

Clean-up: every process runs in its own process group with ``PR_SET_PDEATHSIG=SIGKILL``
set AFTER the switch to the unprivileged user (see :mod:`prefect_nbauth.testing._process`;
call :meth:`ScaledStack.start` from the main thread). :meth:`ScaledStack.stop` stops
everything (NGINX, replicas, services, Redis, PostgreSQL with a fast shutdown) and deletes
the directory; an ``atexit`` hook does the same. A directory left by a SIGKILLed owner (its
``owner.pid`` is dead) is swept by the next start. Debian's postgresql, redis-server and
nginx are installed with apt when missing (as root).

:mod:`.cases` holds the fault cases the scale tests and ``benchmarks/scale_out.py`` run.
"""

from __future__ import annotations

from ._replicas import Replica
from ._stack import RunningStack, ScaledStack
from ._system import ensure_system_packages, sweep_stale_roots

__all__ = ["Replica", "RunningStack", "ScaledStack", "ensure_system_packages", "sweep_stale_roots"]
