"""Which code produced a run: the package version and, in a git checkout, the commit.

``audit_runs.code_version`` records it, so two figures from the same definitions but different code
can be told apart.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

try:
    __version__ = metadata.version("police-etl")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a copy that was never installed
    __version__ = "0+unknown"


@functools.cache
def code_version() -> str:
    """``police-etl <version>``, plus ``(git <commit>[, modified])`` when the package runs from a git checkout."""
    text = f"police-etl {__version__}"
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return text
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} (git {commit}{', modified' if dirty else ''})" if commit else text
