"""Can other users of this machine read this kernel's output?

A Jupyter kernel talks to its server over ZeroMQ sockets. Over TCP (the default) they
listen on a loopback port that every local account can connect to, and the output
channel (IOPub, a PUB socket) has no authentication at all: the connection key signs
messages, it does not gate subscribers. Under JupyterHub's ``LocalProcessSpawner``
another person on the same host subscribed to a kernel's IOPub port and read all it
printed (a trial here, see IDP_FACTS.md). Over IPC the sockets are files in the person's
0700 runtime directory, which nobody else can open.

:func:`exposure` reads the running kernel's own settings (without importing IPython or
ipykernel: only when this process IS a kernel are they already loaded) and the accounts
of the machine, and returns a sentence saying what to change, or None.
"""

from __future__ import annotations

import os
import pwd
import sys
from typing import Any

__all__ = ["exposure", "kernel_transport", "other_people"]

#: What a Hub admin (or a user starting Jupyter by hand) sets to run kernels over IPC.
IPC_SETTING = ('c.Spawner.args = ["--KernelManager.transport=ipc"] in the JupyterHub configuration '
               "(or start Jupyter with --KernelManager.transport=ipc)")


def kernel_transport() -> tuple[str, str] | None:
    """``(transport, ip)`` of the kernel this process is, or None when it is not a kernel."""
    module = sys.modules.get("ipykernel.kernelapp")
    app_class: Any = getattr(module, "IPKernelApp", None)
    if app_class is None or not app_class.initialized():
        return None
    app = app_class.instance()
    return str(getattr(app, "transport", "tcp")), str(getattr(app, "ip", ""))


def other_people() -> list[str]:
    """Accounts of this machine that people log in as, other than the one running this process.

    People's accounts are those with a uid in the range ``useradd`` gives people (1000 and
    up, below 60000 where system ranges and ``nobody`` start).
    """
    me = os.getuid()
    return sorted(entry.pw_name for entry in pwd.getpwall()
                  if 1000 <= entry.pw_uid < 60000 and entry.pw_uid != me)


def exposure() -> str | None:
    """A warning when this kernel's channels are reachable by other users of the host; else None."""
    found = kernel_transport()
    if found is None:
        return None
    transport, ip = found
    if transport != "tcp":
        return None
    others = other_people()
    if not others:
        return None  # a container or a single-user machine: nobody else to read it
    return (f"This kernel's channels listen on TCP ({ip or 'loopback'}), and {len(others)} other "
            f"account(s) on this machine can connect to them: its output channel needs no key, so they "
            f"can read everything this kernel prints. Run kernels over IPC: {IPC_SETTING}.")
