"""The containment switch proves the round-2 containment tests: with the egress and the
boundary off (``NBAUTH_TEST_CONTAINMENT_OFF=1`` sets ``_redaction.CONTAIN = False``), each
of them fails. A test that still passed would not be testing the egress.

(Case 6, a random auth string that names no user, is a rule of what a user name looks
like, not of the egress: it holds with the switch off too, by design.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
EGRESS_TESTS = "case01 or case02 or case03 or case04 or case05 or case07 or iterating or text_attribute or partial_rule"


def test_every_egress_test_fails_with_the_containment_switch_off(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--timeout", "120",
         "-rA", "-k", EGRESS_TESTS, str(TESTS / "test_containment.py")],
        cwd=TESTS.parent.parent, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NBAUTH_TEST_CONTAINMENT_OFF": "1", "PYTEST_ADDOPTS": ""})
    outcomes = [line.split()[0] for line in done.stdout.splitlines() if line.startswith(("PASSED ", "FAILED ", "ERROR "))]
    assert len(outcomes) == 10, done.stdout[-3000:]
    assert set(outcomes) == {"FAILED"}, done.stdout[-3000:]
