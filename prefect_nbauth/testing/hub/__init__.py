"""A real JupyterHub for testing what a team's kernels do (needs root, Node.js, nginx, Chromium).

    from prefect_nbauth.testing.hub import HubTeam

    with HubTeam(["alice", "bob", "carol"], ttl=10) as team:
        team.sign_in("alice")                       # Chromium, the provider's sign-in page
        kernel = team.kernel("alice")                # a kernel in alice's server
        kernel.run("%load_ext prefect_nbauth\\n%prefect_login --hub")

* :func:`ensure_hub_env`: JupyterHub, oauthenticator, configurable-http-proxy and this
  project in an environment under ``/opt/prefect-nbauth`` that the spawned users can read;
* :class:`JupyterHub`: the Hub, started with ``docs/jupyterhub/jupyterhub_config.py``;
* :class:`UnixUsers`: real users for ``LocalProcessSpawner``, removed after;
* :class:`RemoteKernel`: a kernel in a person's server, driven over its websocket;
* :class:`HubTeam`: all of it with a Prefect server, the identity provider and the SSO
  gateway of :mod:`prefect_nbauth.testing.idp`;
* :mod:`.kernel_work`: the load each kernel runs.
"""

from __future__ import annotations

from ._hub import SHIPPED_CONFIG, JupyterHub
from ._install import CHP_VERSION, JUPYTERHUB_VERSION, OAUTHENTICATOR_VERSION, HubEnv, ensure_hub_env
from ._kernel import CellError, RemoteKernel
from ._team import HubTeam
from ._users import UnixUsers

__all__ = [
    "CHP_VERSION",
    "JUPYTERHUB_VERSION",
    "OAUTHENTICATOR_VERSION",
    "SHIPPED_CONFIG",
    "CellError",
    "HubEnv",
    "HubTeam",
    "JupyterHub",
    "RemoteKernel",
    "UnixUsers",
    "ensure_hub_env",
]
