"""The repository as a fresh clone would have it, copied to a temporary folder.

Binder clones the repository and a release builds from what git tracks: the checks of
both start from this copy (no .venv, no caches, no test artifacts).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

__all__ = ["REPO", "copy_tracked"]


def copy_tracked(dest: Path) -> Path:
    """Copy every file git tracks, or would track (untracked but not ignored), to ``dest``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest
