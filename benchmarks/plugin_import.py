#!/usr/bin/env python3
"""What does our pytest plugin cost every pytest run, next to ``import pytest`` itself?

    .venv/bin/python benchmarks/plugin_import.py [--runs 20]

pytest imports ``prefect_nbauth.testing.plugin`` (the ``pytest11`` entry point) in every
run of every project where prefect-nbauth is installed. Each measurement is a fresh
interpreter that times ``import pytest`` and then ``import prefect_nbauth.testing.plugin``
in the same process (so the plugin's share excludes what pytest already loaded, as in a
real run), and, as a second reference, ``import prefect`` (what the plugin used to drag in).

The LAST stdout line is one JSON object: ``{"runs", "pytest_ms_median",
"plugin_ms_median", "plugin_over_pytest", "prefect_ms_median", "plugin_modules"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

_TIMER = textwrap.dedent(
    """
    import json, sys, time
    started = time.perf_counter()
    import pytest
    pytest_s = time.perf_counter() - started
    before = set(sys.modules)
    started = time.perf_counter()
    import prefect_nbauth.testing.plugin
    plugin_s = time.perf_counter() - started
    loaded = sorted(set(sys.modules) - before)
    started = time.perf_counter()
    import prefect
    prefect_s = time.perf_counter() - started
    print(json.dumps({"pytest": pytest_s, "plugin": plugin_s, "prefect": prefect_s, "loaded": loaded}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    samples = []
    for _ in range(args.runs):
        done = subprocess.run([sys.executable, "-c", _TIMER], capture_output=True, text=True, check=True)
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))

    def median_ms(key: str) -> float:
        return round(statistics.median(s[key] for s in samples) * 1000, 2)

    result = {
        "runs": args.runs,
        "pytest_ms_median": median_ms("pytest"),
        "plugin_ms_median": median_ms("plugin"),
        "plugin_over_pytest": round(median_ms("plugin") / median_ms("pytest"), 3),
        "prefect_ms_median": median_ms("prefect"),
        "plugin_modules": samples[-1]["loaded"],
    }
    print(f"import pytest {result['pytest_ms_median']} ms; then our plugin {result['plugin_ms_median']} ms "
          f"({result['plugin_over_pytest']:.1%} of pytest); import prefect {result['prefect_ms_median']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
