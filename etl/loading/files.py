"""Reading a batch's files: several at once in threads; a file that cannot be read becomes the
`FileFailure` naming it (as shown relative to the source folder), never an exception mid-batch.

A backfill reads the next batch's files ahead (`reading_ahead`, `ReadAhead`): while a batch is written
(the Delta writer works on one core), a thread reads the files of the batch after it. A file read ahead is
used only if it has the same size and modification time when its batch reads it; otherwise, or when the
thread had not reached it yet, it is read then, as always. It holds one more batch's files in memory (a
batch is at most ``ETL_BATCH_MB`` of files, `etl.loading.batches`).

One reason to change: how files are read for a load (threads, reading ahead, what a read failure becomes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from etl.core.extracts import ExtractError, RawExtract, read_extract
from etl.core.validation import FileFailure
from etl.loading.sources import shown

log = logging.getLogger(__name__)

Read = RawExtract | FileFailure


def read_file(path: Path, source: Path, data: bytes | None = None) -> RawExtract | FileFailure:
    """The extract at ``path`` (``data``: its bytes, already read), or the `FileFailure` saying why it cannot be read."""
    try:
        return read_extract(path, data)
    except ExtractError as exc:
        return FileFailure(shown(path, source), exc.reason, exc.message)


def read_files(paths: list[Path], source: Path) -> list[RawExtract | FileFailure]:
    """Read files in parallel threads (the CSV parser and polars release the GIL), in the order given; those
    read ahead (`reading_ahead`) are taken from there."""
    ahead = _AHEAD.get()
    done: dict[int, Read] = {}
    if ahead is not None:
        for i, p in enumerate(paths):
            got = ahead.take(p)
            if got is not None:
                done[i] = got
    todo = [(i, p) for i, p in enumerate(paths) if i not in done]
    if len(todo) <= 1:
        done.update((i, read_file(p, source)) for i, p in todo)
    else:
        with ThreadPoolExecutor(max_workers=min(len(todo), max(2, os.cpu_count() or 1))) as pool:
            done.update(zip((i for i, _ in todo), pool.map(lambda ip: read_file(ip[1], source), todo), strict=True))
    return [done[i] for i in range(len(paths))]


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class ReadAhead:
    """The files of the next batch (`queue`), read in one background thread once told to (`start`), until
    taken (`take`) or `close`."""

    def __init__(self) -> None:
        self._queued: list[tuple[Path, Path]] = []
        self._started: dict[Path, tuple[tuple[int, int] | None, Future[Read]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def queue(self, files: list[tuple[Path, Path]]) -> None:
        """The (path, source) of the files to read when `start` is called (instead of any queued before)."""
        self._queued = list(files)

    def start(self) -> None:
        """Begin reading the queued files in the background (what was read ahead before and not taken is dropped)."""
        self._drop()
        if not self._queued:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        for path, source in self._queued:
            self._started[path] = (_signature(path), self._pool.submit(read_file, path, source))
        log.debug("reading %d file(s) ahead", len(self._queued))
        self._queued = []

    def take(self, path: Path) -> Read | None:
        """The file as read ahead; None when it was not (or not yet: then it is not read ahead any more) or has
        changed since."""
        started = self._started.pop(path, None)
        if started is None:
            return None
        signature, future = started
        if future.cancel():
            return None
        got = future.result()
        return got if signature is not None and _signature(path) == signature else None

    def _drop(self) -> None:
        for _, future in self._started.values():
            future.cancel()
        self._started.clear()

    def close(self) -> None:
        self._drop()
        self._queued = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


_AHEAD: ContextVar[ReadAhead | None] = ContextVar("etl_read_ahead", default=None)


@contextmanager
def reading_ahead() -> Iterator[ReadAhead]:
    """A `ReadAhead` that `read_files` takes files from, within the block (closed at its end)."""
    ahead = ReadAhead()
    token = _AHEAD.set(ahead)
    try:
        yield ahead
    finally:
        _AHEAD.reset(token)
        ahead.close()


def start_reading_ahead() -> None:
    """Begin reading the next batch's files, if a backfill reads ahead (`reading_ahead`): call it before
    a batch's commit."""
    ahead = _AHEAD.get()
    if ahead is not None:
        ahead.start()
