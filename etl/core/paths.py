"""Declarative files (contracts, definitions, layouts, suites, workbooks) are opened only when they are
regular files: opening a named pipe (FIFO) would block for ever, and a folder cannot be read. One check,
used by every reader of such a file; the caller names the error class (a contract is a ConfigError, a
workbook a DataError)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from etl.core.extracts import kind_of


def not_a_regular_file(path: str | Path) -> str | None:
    """Why PATH cannot be opened as a file ("is a named pipe (FIFO), not a file"), or None when it is a
    regular file or does not exist (the caller's own open reports a missing file)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    kind = kind_of(mode)
    return None if kind == "a file" else f"is {kind}, not a file"


def require_regular_file(path: str | Path, error: Callable[[str], Exception]) -> None:
    """Raise ``error(message)`` when PATH exists but is not a regular file (checked without opening it)."""
    reason = not_a_regular_file(path)
    if reason:
        raise error(f"{path}: {reason}")
