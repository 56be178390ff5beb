"""The demo's identity provider and SSO gateway (what ``binder/start`` runs for notebook 06).

    python -m prefect_nbauth.testing.idp.demo DEMO_DIR

In front of the demo's Prefect server (``PREFECT_NBAUTH_DEMO_API_URL``, its auth string in
``PREFECT_NBAUTH_DEMO_AUTH_STRING``) it starts ``oidc-provider`` with one person, alice,
whose password is ``PREFECT_NBAUTH_DEMO_SSO_PASSWORD``, and nginx's SSO gateway holding
the auth string. It writes ``DEMO_DIR/sso.json`` (no secret: ``issuer``, ``client_id``,
``api_url`` of the gateway, ``user``, ``pid``) and runs until SIGTERM (``binder/stop``).
With ``PREFECT_NBAUTH_DEMO_SSO_APPROVE=1`` (a headless run: nobody is there to click) a
scripted alice approves every sign-in in Chromium
(:class:`~prefect_nbauth.testing.idp.DeviceApprover`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from ._browser import DeviceApprover
from ._nginx import NginxGateway
from ._provider import OidcProvider

ACCESS_TTL = 60  # a minute: long enough to read, short enough to see it rotate


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m prefect_nbauth.testing.idp.demo DEMO_DIR", file=sys.stderr)
        return 2
    demo_dir = Path(argv[0])
    password = os.environ.pop("PREFECT_NBAUTH_DEMO_SSO_PASSWORD", "")
    auth_string = os.environ.pop("PREFECT_NBAUTH_DEMO_AUTH_STRING", "")
    api_url = os.environ["PREFECT_NBAUTH_DEMO_API_URL"]
    if not password or not auth_string:
        print("demo: PREFECT_NBAUTH_DEMO_SSO_PASSWORD and PREFECT_NBAUTH_DEMO_AUTH_STRING must be set",
              file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with ExitStack() as stack:
        idp = stack.enter_context(OidcProvider(ttl=ACCESS_TTL, users={"alice": password}))
        gateway = stack.enter_context(NginxGateway.sso(api_url, idp, auth_string=auth_string))
        if os.environ.get("PREFECT_NBAUTH_DEMO_SSO_APPROVE") == "1":
            stack.enter_context(DeviceApprover(idp, "alice", password))
        info = {"issuer": idp.issuer, "client_id": idp.device_client_id, "api_url": gateway.api_url,
                "user": "alice", "pid": os.getpid()}
        partial = demo_dir / "sso.json.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        os.replace(partial, demo_dir / "sso.json")
        done.wait()
        (demo_dir / "sso.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
