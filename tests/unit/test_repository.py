"""What the repository holds: nothing large that nothing uses."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_TRACKED_BYTES = 1024 * 1024


def test_no_tracked_file_is_over_1_mb() -> None:
    """Big files (a wheel, a recording, a database) do not belong in git: every clone pays for them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [ROOT / name for name in listed.decode().split("\0") if name]
    assert len(paths) > 100  # git answered for this repository
    big = {str(p.relative_to(ROOT)): p.stat().st_size for p in paths
           if p.exists() and p.stat().st_size > MAX_TRACKED_BYTES}
    assert big == {}, f"tracked files over 1 MB: {big}"
