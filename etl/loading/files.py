"""Reading a batch's files: several at once in threads; a file that cannot be read becomes the
`FileFailure` naming it (as shown relative to the source folder), never an exception mid-batch.

One reason to change: how files are read for a load (threads, what a read failure becomes).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from etl.core.extracts import ExtractError, RawExtract, read_extract
from etl.core.validation import FileFailure
from etl.loading.sources import shown


def read_file(path: Path, source: Path, data: bytes | None = None) -> RawExtract | FileFailure:
    """The extract at ``path`` (``data``: its bytes, already read), or the `FileFailure` saying why it cannot be read."""
    try:
        return read_extract(path, data)
    except ExtractError as exc:
        return FileFailure(shown(path, source), exc.reason, exc.message)


def read_files(paths: list[Path], source: Path) -> list[RawExtract | FileFailure]:
    """Read files in parallel threads (the CSV parser and polars release the GIL), in the order given."""
    if len(paths) <= 1:
        return [read_file(p, source) for p in paths]
    with ThreadPoolExecutor(max_workers=min(len(paths), max(2, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda p: read_file(p, source), paths))
