#!/usr/bin/env python3
"""Does the live event widget keep a kernel responsive while 1,000 events/s stream in?

    .venv/bin/python benchmarks/kernel_responsiveness.py [--source server|synthetic] [--rate 1000]
        [--seconds 15] [--runs 200] [--interval 0.02]

Starts its own auth-protected Prefect server (``prefect server start`` on a free port of
127.0.0.1, temporary PREFECT_HOME; always stopped at the end) and a real IPython kernel
(jupyter_client, the ``python3`` kernel of this interpreter). In the kernel:
``%load_ext prefect_nbauth``, ``%prefect_login --auth-string-env …`` (the secret only in
the kernel's environment), then an ``EventStreamWidget`` is created and displayed
(``display(widget)``: its comm messages go out on IOPub, as to a front end) streaming
a fresh event-name prefix through ``prefect_nbauth.events._stream``.

* **idle**: ``--runs`` trivial cells (``pass``), one every ``--interval`` seconds (a
  user's pace, and it leaves CPU to the server on a small machine); round trip = from
  sending ``execute_request`` to receiving its ``execute_reply``.
* **streaming**, ``--source server`` (default, end to end): a separate emitter process
  writes events into the server's ``/api/events/in`` at ``--rate`` per second for
  ``--seconds``; the widget gets them through the real stream (websocket, plus REST
  reconciliation for what the server's 256-event subscriber queue drops).
  ``--source synthetic``: a thread in the kernel hands ``--rate`` Prefect
  ``ReceivedEvent`` objects per second to the widget exactly as the stream's callback
  does, so the widget and the kernel see the full rate whatever the server manages.
  Once events reach the widget, trivial cells run at the same pace for the rest of the
  window (the first and last second left out). ``events_per_s`` is what the widget
  received per second in that window; ``iopub_msgs_per_s`` and ``iopub_bytes_per_s``
  count the widget's comm messages (all their ZMQ frames) on IOPub in the window, read
  by a separate IOPub subscriber.

Prints a readable summary; the LAST stdout line is one JSON object:
``{"idle_p50_ms", "streaming_p50_ms", "streaming_p99_ms", "events_per_s",
"iopub_msgs_per_s", "iopub_bytes_per_s"}``.
"""

from __future__ import annotations

import argparse
import ast
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from prefect_nbauth.testing._server import PrefectServer, isolated_env

# The emitter runs in its own interpreter (websockets only, no prefect), so sending never
# competes with the kernel or this process for a GIL. Batches of 10 keep the pace exact.
_EMITTER = r"""
import json, os, sys, time, uuid
from datetime import datetime, timezone
from websockets.sync.client import connect
url, name, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
ws = connect(url.replace("http://", "ws://", 1) + "/events/in", subprotocols=["prefect"], max_size=None)
ws.send(json.dumps({"type": "auth", "token": os.environ.pop("BENCH_AUTH")}))
assert json.loads(ws.recv())["type"] == "auth_success"
print("ready", flush=True)
total = int(rate * seconds)
start = time.monotonic()
sent = 0
while sent < total:
    due = start + sent / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    for _ in range(min(10, total - sent)):
        ws.send(json.dumps({"id": str(uuid.uuid4()), "occurred": datetime.now(timezone.utc).isoformat(),
                            "event": name, "resource": {"prefect.resource.id": f"bench.{sent % 50}"},
                            "payload": {"i": sent, "note": "a short payload"}}))
        sent += 1
elapsed = time.monotonic() - start
ws.close()
print(json.dumps({"sent": sent, "seconds": elapsed}), flush=True)
"""


# --source synthetic: the stream's shape (state, stats, run_in_background) fed by a thread.
_SYNTHETIC = r"""
import threading, time, uuid
from datetime import datetime, timezone
from types import SimpleNamespace
from prefect.events.schemas.events import ReceivedEvent

class SyntheticStream:
    def __init__(self, rate, seconds, prefix):
        self.rate, self.seconds, self.prefix = rate, seconds, prefix
        self.state = "connected"
        self.stats = SimpleNamespace(live=0, reconciled=0, duplicates=0, malformed=0, reconnects=0,
                                     last_error=None, to_dict=lambda: {})
        self.go, self._stop = threading.Event(), threading.Event()

    def run_in_background(self, on_event, on_change=None):
        def feed():
            self.go.wait()
            total, start = int(self.rate * self.seconds), time.monotonic()
            for i in range(total):
                if self._stop.is_set():
                    return
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = datetime.now(timezone.utc)
                on_event(ReceivedEvent(id=uuid.uuid4(), occurred=now, received=now, event=self.prefix,
                                       resource={"prefect.resource.id": f"bench.{i % 50}"},
                                       payload={"i": i, "note": "a short payload"}))
                self.stats.live += 1
        threading.Thread(target=feed, daemon=True).start()
        stream = self
        class Handle:
            def stop(self):
                stream._stop.set()
        return Handle()
"""


class IOPubMeter:
    """A separate SUB socket on the kernel's IOPub: (time, msg_type, bytes) of every message."""

    def __init__(self, connection_info: dict[str, Any]) -> None:
        import zmq

        self._zmq = zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        transport, ip = connection_info["transport"], connection_info["ip"]
        self.sock.connect(f"{transport}://{ip}:{connection_info['iopub_port']}")
        self.records: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frames = self.sock.recv_multipart()
            except self._zmq.Again:
                continue
            now = time.monotonic()
            try:
                header = json.loads(frames[frames.index(b"<IDS|MSG>") + 2])
                msg_type = header.get("msg_type", "?")
            except (ValueError, IndexError):
                msg_type = "?"
            self.records.append((now, msg_type, sum(len(f) for f in frames)))

    def window(self, t0: float, t1: float, comm_only: bool = True) -> tuple[int, int]:
        selected = [r for r in list(self.records) if t0 <= r[0] <= t1
                    and (not comm_only or r[1].startswith("comm_"))]
        return len(selected), sum(r[2] for r in selected)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


class Kernel:
    def __init__(self, env: dict[str, str], cwd: str) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=cwd, extra_arguments=["--HistoryManager.hist_file=:memory:"])
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120, **kwargs: Any) -> tuple[float, dict[str, Any]]:
        """Execute ``code``; (round trip in ms, execute_reply content). Raises on an error."""
        t0 = time.perf_counter()
        msg_id = self.kc.execute(code, store_history=False, **kwargs)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        rtt = (time.perf_counter() - t0) * 1000
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"cell failed: {content.get('ename')}: {content.get('evalue')}\n{code}")
        return rtt, content

    def value(self, expression: str) -> Any:
        _, content = self.run("pass", user_expressions={"v": expression})
        result = content["user_expressions"]["v"]
        if result["status"] != "ok":
            raise RuntimeError(f"{expression}: {result}")
        return ast.literal_eval(result["data"]["text/plain"])

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=False)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("server", "synthetic"), default="server",
                        help="where events come from (default: a real server through the real stream)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between cells (default 0.02)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="emitting time (default 15)")
    parser.add_argument("--runs", type=int, default=200, help="idle cells (default 200)")
    parser.add_argument("--max-rows", type=int, default=20, help="the widget's rows (default 20)")
    args = parser.parse_args()

    auth = f"bench:{secrets.token_urlsafe(16)}"
    prefix = f"nbauth.bench.{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="nbauth-kernel-bench-") as tmp:
        root = Path(tmp)
        (root / "kernel-home").mkdir()
        server = PrefectServer(root / "server-home", auth_string=auth)
        kernel = meter = emitter = None
        try:
            server.start()
            print(f"server {server.api_url} started in {server.startup_seconds:.1f} s", flush=True)
            env = isolated_env(PREFECT_HOME=str(root / "kernel-home"), PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
                               IPYTHONDIR=str(root / "ipython"), NB_BENCH_AUTH=auth)
            kernel = Kernel(env, cwd=tmp)
            meter = IOPubMeter(kernel.km.get_connection_info())
            kernel.run("%load_ext prefect_nbauth")
            kernel.run(f"%prefect_login --url {server.api_url} --auth-string-env NB_BENCH_AUTH")
            factory = ""
            if args.source == "synthetic":
                kernel.run(_SYNTHETIC)
                factory = f", stream_factory=lambda **f: SyntheticStream({args.rate}, {args.seconds}, {prefix!r})"
            kernel.run(
                "import time\n"
                "from IPython.display import display\n"
                "from prefect_nbauth.widgets import EventStreamWidget\n"
                f"w = EventStreamWidget(prefix=[{prefix!r}], max_rows={args.max_rows}{factory})\n"
                "display(w)\n"
                "deadline = time.monotonic() + 60\n"
                "while str(getattr(w.stream, 'state', '')) != 'connected':\n"
                "    assert time.monotonic() < deadline, repr(w)\n"
                "    time.sleep(0.05)\n")

            pace = threading.Event()  # never set: wait(interval) paces the cells

            def cell() -> float:
                rtt = kernel.run("pass")[0]
                pace.wait(args.interval)
                return rtt

            for _ in range(20):
                cell()
            idle = [cell() for _ in range(args.runs)]

            if args.source == "server":
                emitter = subprocess.Popen(
                    [sys.executable, "-c", _EMITTER, server.api_url, prefix, str(args.rate), str(args.seconds)],
                    env=isolated_env(BENCH_AUTH=auth), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
                assert emitter.stdout is not None
                if emitter.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"emitter failed: {emitter.stderr.read() if emitter.stderr else ''}")
            else:
                kernel.run("w.stream.go.set()")
            emit_start = time.monotonic()
            while kernel.value("w.received") == 0:  # the first events reached the widget
                if time.monotonic() - emit_start > 30:
                    raise RuntimeError("no event reached the widget within 30 s")
            # Measure over the steady part of the emission: skip 1 s, stop 1 s before the end.
            while time.monotonic() < emit_start + 1.0:
                cell()
            received0, t0 = kernel.value("w.received"), time.monotonic()
            streaming: list[float] = []
            while time.monotonic() < emit_start + args.seconds - 1.0:
                streaming.append(cell())
            t1, received1 = time.monotonic(), kernel.value("w.received")
            if emitter is not None:
                sent = json.loads(emitter.communicate(timeout=120)[0].strip().splitlines()[-1])
            else:
                sent = {"sent": int(args.rate * args.seconds), "seconds": args.seconds}
            window = t1 - t0
            msgs, nbytes = meter.window(t0, t1)
            all_msgs, all_bytes = meter.window(t0, t1, comm_only=False)
            # How complete the stream is once the emission is over (reconciliation catches up).
            deadline = time.monotonic() + 60
            while kernel.value("w.received") < sent["sent"] and time.monotonic() < deadline:
                pace.wait(0.5)
            total_received, caught_up = kernel.value("w.received"), time.monotonic() - emit_start
            updates = kernel.value("w.updates_sent")
            stream_stats = kernel.value("w.stream.stats.to_dict()") if args.source == "server" else {}
        finally:
            if emitter is not None and emitter.poll() is None:
                emitter.kill()
            if meter is not None:
                meter.close()
            if kernel is not None:
                kernel.shutdown()
            server.stop()

    result = {
        "idle_p50_ms": round(statistics.median(idle), 2),
        "streaming_p50_ms": round(statistics.median(streaming), 2),
        "streaming_p99_ms": round(_pct(streaming, 0.99), 2),
        "events_per_s": round((received1 - received0) / window, 1),
        "iopub_msgs_per_s": round(msgs / window, 2),
        "iopub_bytes_per_s": round(nbytes / window, 1),
    }
    print(f"{'emitter process' if args.source == 'server' else 'in-kernel feeder'}: {sent['sent']} events in {sent['seconds']:.2f} s "
          f"({sent['sent'] / sent['seconds']:.0f}/s requested {args.rate:g}/s)")
    print(f"idle: {len(idle)} cells, p50 {result['idle_p50_ms']} ms, p99 {_pct(idle, 0.99):.2f} ms")
    print(f"streaming: {len(streaming)} cells over {window:.1f} s, p50 {result['streaming_p50_ms']} ms, "
          f"p99 {result['streaming_p99_ms']} ms; widget received {received1 - received0} events "
          f"({result['events_per_s']}/s), {updates} view updates in all")
    print(f"source: {args.source}; after the emission the widget had {total_received} of {sent['sent']} "
          f"events ({caught_up:.1f} s after the first was sent)")
    if stream_stats:
        print("stream: " + ", ".join(f"{k} {stream_stats[k]}" for k in
                                     ("live", "reconciled", "duplicates", "malformed", "reconnects",
                                      "passes", "requests", "last_error")))
    print(f"IOPub in the window: widget comm messages {msgs} ({result['iopub_msgs_per_s']}/s, "
          f"{result['iopub_bytes_per_s'] / 1000:.1f} KB/s); all messages {all_msgs} "
          f"({all_bytes / window / 1000:.1f} KB/s, including the cells' own status/input messages)")
    ok_latency = result["streaming_p50_ms"] < 2 * result["idle_p50_ms"] + 20
    ok_bytes = result["iopub_bytes_per_s"] < 100_000
    print(f"criteria: streaming_p50 < 2 x idle_p50 + 20 ms: {ok_latency}; IOPub < 100 KB/s: {ok_bytes}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
