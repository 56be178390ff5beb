"""Run JupyterLab for ./scripts/demo and end its start-up with ONE block of clickable URLs.

Usage (binder/start runs it, so the demo's variables are in the environment):

    python scripts/lab.py PORT NOTEBOOK [EXTRA JUPYTER ARGS...]

JupyterLab's own log goes to ``$PREFECT_NBAUTH_DEMO_DIR/jupyterlab.log`` instead of
the terminal, where its ~20 start-up lines used to bury the URL. This waits until
JupyterLab answers, prints the block, then waits for JupyterLab to end (Ctrl-C
stops it, as it would stop ``jupyter lab`` itself). The token in the JupyterLab
URL is JupyterLab's own login (what ``jupyter lab`` prints too), generated here
for this run; the Prefect auth string is never printed.

JupyterLab's defaults for the demo are in ``scripts/lab-settings/overrides.json`` (your
own JupyterLab settings still win): autosave off, as the tutorials are tracked files that
opening must not rewrite (Ctrl+S still saves), and no news pop-up on the first visit.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LAB_SETTINGS = Path(__file__).resolve().parent / "lab-settings"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python scripts/lab.py PORT NOTEBOOK [JUPYTER ARGS...]", file=sys.stderr)
        return 2
    port, notebook, extra = argv[0], argv[1], argv[2:]
    # Ctrl-C, a closed terminal or `kill` all end JupyterLab and this script the same way
    # (SIGINT too: a shell that started us in the background may have ignored it).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    token = secrets.token_hex(24)
    demo_dir = Path(os.environ.get("PREFECT_NBAUTH_DEMO_DIR") or Path.home() / ".prefect-nbauth-demo")
    log_path = demo_dir / "jupyterlab.log"
    # The demo's JupyterLab defaults (scripts/lab-settings/overrides.json; your own settings
    # still win): no autosave, so opening a tutorial never rewrites the tracked file, and no
    # news pop-up on the first visit.
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--LabApp.app_settings_dir={LAB_SETTINGS}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + float(os.environ.get("PREFECT_NBAUTH_DEMO_TIMEOUT", "180"))
        while True:
            if proc.poll() is not None:
                print(f"[demo] JupyterLab exited with status {proc.returncode}; its log:", file=sys.stderr)
                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                return proc.returncode or 1
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                print(f"[demo] JupyterLab did not answer within the timeout; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.3)  # polling JupyterLab's status endpoint
        ui = os.environ.get("PREFECT_NBAUTH_DEMO_UI_URL", "")
        lines = [
            "",
            "==== prefect-nbauth demo is ready: open this in your browser ====",
            f"  JupyterLab:   {base}/lab/tree/{notebook}?token={token}",
        ]
        if ui:
            lines.append(f"  Prefect UI:   {ui if ui.startswith('http') else base + ui}  (after opening JupyterLab)")
        lines += [
            f"  Prefect API:  {os.environ.get('PREFECT_NBAUTH_DEMO_API_URL', '?')}  (requires the demo's auth string)",
            "  Auth string:  for the login form, in a JupyterLab terminal (File > New > Terminal):",
            "                printenv PREFECT_NBAUTH_DEMO_AUTH_STRING",
            f"  Logs:         {log_path}",
            "  Stop:         Ctrl-C here (stops JupyterLab and the Prefect server)",
            "=================================================================",
        ]
        print("\n".join(lines), flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
