"""The warehouse: Delta Lake tables under one directory, changed only by whole, atomic runs.

Delta gives each table atomic commits, history and time travel. A run changes several tables, so
the warehouse adds one rule on top: **a run exists when its row is in ``audit_runs``**. The
``audit_runs`` row is written last and records the version of every table after the run
(``table_versions``). Readers read each table at the version the latest ``audit_runs`` row names, so
a run that fails or is killed part-way is invisible, and the next writer (or `recover`) rolls back
any table left ahead of that version with Delta's own restore.

The warehouse is a local folder or an ``s3://bucket/prefix`` URL (`etl.core.storage`): deltalake and polars
read and write the tables with their own storage options, and the few files the warehouse manages itself (the
names in a table's log, its first commit, the lock) go through fsspec.

Runs are serialisable: a writing run holds the warehouse lock (a cross-platform file lock, ``filelock``, in a
folder; a lease object taken with conditional writes on an object store, `etl.core.lease`) from before it reads
anything until its commit, so overlapping runs - CLI or flow,
same force or not - wait for each other (reported while they wait, `WarehouseBusy` after
``ETL_LOCK_TIMEOUT`` seconds) and each computes from the state the previous one committed. A commit
also checks that the committed state it read is still the latest (`StaleSnapshot` otherwise), so a
writer that ignores the lock cannot make a run publish figures from a stale snapshot.

Recovery only touches what the warehouse owns: tables named by ``audit_runs`` or whose first commit
carries this package's writer mark (every commit made here carries it and the run id). A table
folder it does not own is never read, rolled back or deleted; tables without an ``audit_runs`` table
are refused (`WarehouseStateError`) rather than guessed at.

Loading a force-month replaces exactly that force-month (a Delta overwrite with a predicate), so a
re-run of a month leaves the same table contents.

A commit writes its tables ``WRITE_THREADS`` at a time (each table's writes in order): the Delta writer
works on one core and lets go of the interpreter while it writes. Every write ends (or is cancelled before
it starts) before the commit goes on, or rolls back when one fails.

The commit keeps its cost flat as the warehouse grows: every table gets a Delta checkpoint each
``CHECKPOINT_EVERY`` versions (opening a table replays at most that many log entries, where it would
replay every commit since the last checkpoint Delta writes on its own every 100), and the tables every
run appends a small file to (``COMPACTED``) are compacted each ``COMPACT_EVERY`` versions into files of
about ``COMPACT_TARGET_BYTES`` (a full file is left alone, so a compaction rewrites the recent small files,
never the whole table), inside the run's commit and before its ``audit_runs`` row (the compacted version
is the committed one; a run cut
short after it is rolled back like any other). A checkpoint names a version already written, adds no
version and changes no data; compaction rewrites data files only (the earlier files stay for
``--as-of`` until a vacuum). `Warehouse.files` lists a table's data files with their Delta statistics
(read from the log, cached per committed version) for readers that skip files by them.

History is kept for reading the warehouse as it stood (`etl.trail.asof`, ``--as-of``): every table
carries the Delta properties ``delta.logRetentionDuration`` and ``delta.deletedFileRetentionDuration``
set to ``interval N days``, N = ``ETL_HISTORY_RETENTION_DAYS`` (default 3650, ten years). A table
gets them when it is created; a table created before (or whose properties differ from the setting)
gets them at the next commit, as a Delta metadata commit of that run. Delta cleans up log entries
older than the log retention only when it writes a checkpoint, and removes unreferenced data files
only on a vacuum; nothing in this package vacuums, and a vacuum run by hand must not go below the
retention (``vacuum(retention_hours=None)`` respects it). Lowering the setting shortens how far back
``--as-of`` can read once Delta cleans up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import filelock
import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from etl.core import progress
from etl.core.faults import fault_point
from etl.core.lease import Lease
from etl.core.storage import Location
from etl.errors import ConfigError, TransientError
from etl.version import code_version

log = logging.getLogger(__name__)

AUDIT_RUNS = "audit_runs"
AUDIT_CHECKS = "audit_checks"
LOCK_FILE = ".etl.lock"
LOCK_OWNER_FILE = ".etl.lock.owner"  # who holds the lock (informational: pid, host, since)
WRITER = "police-etl"  # the writer mark in every commit's metadata (key ``etl_writer``)
# Run ids written by versions of this package that did not yet mark their commits.
_LEGACY_RUN_ID = re.compile(r"^(load|measures|expectations|recovery)-\d{8}T\d{6}")
DEFAULT_LOCK_TIMEOUT = 1800.0  # seconds a run waits for the warehouse (ETL_LOCK_TIMEOUT overrides)
DEFAULT_HISTORY_RETENTION_DAYS = 3650  # days of Delta history every table keeps (ETL_HISTORY_RETENTION_DAYS overrides)
RETENTION_PROPERTIES = ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")
WRITE_THREADS = 2  # tables a commit writes at once (`Warehouse._write_tables`)
LOCK_REPORT_EVERY = 5.0  # seconds between "waiting for the warehouse" reports
LEASE_POLL = 0.5  # seconds between attempts to take a warehouse lease on an object store

AUDIT_RUNS_SCHEMA: dict[str, type[pl.DataType] | pl.DataType] = {
    "run_id": pl.Utf8,
    "commit_seq": pl.Int64,
    "kind": pl.Utf8,  # load | measures | recovery
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
    "outcome": pl.Utf8,
    "source_files": pl.Utf8,  # JSON list: extract, file, sha256, encoding, rows_in, rows_loaded, rows_quarantined
    "rows_in": pl.Int64,
    "rows_loaded": pl.Int64,
    "rows_quarantined": pl.Int64,
    "contract_versions": pl.Utf8,  # JSON {contract: version}
    "definition_versions": pl.Utf8,  # JSON {definition file: version}
    "table_versions": pl.Utf8,  # JSON {table: delta version} after this run
    "message": pl.Utf8,
    "code_version": pl.Utf8,  # the code that produced the run (package version, git commit)
}

AUDIT_CHECKS_SCHEMA = {
    "run_id": pl.Utf8,
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "extract": pl.Utf8,
    "source_file": pl.Utf8,
    "contract": pl.Utf8,
    "contract_version": pl.Utf8,
    "check": pl.Utf8,
    "column": pl.Utf8,
    "description": pl.Utf8,
    "severity": pl.Utf8,
    "passed": pl.Boolean,
    "failing_rows": pl.Int64,
    "rows_checked": pl.Int64,
    "detail": pl.Utf8,
}


COMPACT_EVERY = 25  # versions of a COMPACTED table (and of audit_runs) between compactions
COMPACTED = ("audit_checks", "quarantine")  # tables every run appends a small file to
CHECKPOINT_EVERY = 10  # versions of a table between the Delta checkpoints a commit writes
# Compaction packs small files into files of about this size; a file that big is left alone, so a compaction
# rewrites the recent small files (and one file not yet full), never the whole table: its cost stays flat.
COMPACT_TARGET_BYTES = 8 * 1024 * 1024


class WarehouseError(ConfigError, RuntimeError):
    """The warehouse cannot be used as asked; the message says why and what to do (exit 2)."""


class WarehouseBusy(TransientError, WarehouseError):
    """Another run holds the warehouse (transient: the same run can be tried again later)."""


class WarehouseUnavailable(TransientError, WarehouseError):
    """The warehouse's store could not be reached (transient: the same run can be tried again later)."""


class LeaseLost(WarehouseBusy):
    """A run on an object store lost its lease to another run (it stalled past the lease); it published nothing."""


class StaleSnapshot(WarehouseBusy):
    """The committed state moved while a run computed from it; the run wrote nothing (try again)."""


class WarehouseStateError(WarehouseError):
    """The warehouse's own records are missing or unreadable; nothing was changed."""


def seconds_setting(name: str, default: float, minimum: float, at_least: str) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` when unset), refused plainly
    (`WarehouseError`) when it is not a number or below ``minimum`` (``at_least`` says the bound in words)."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise WarehouseError(f"{name} must be a number of seconds (it is set to something else)") from None
    if value < minimum:
        raise WarehouseError(f"{name} must be {at_least}")
    return value


def lock_timeout() -> float:
    return seconds_setting("ETL_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, 0, "zero or more seconds")


def history_retention_days() -> int:
    """Days of Delta history (log entries and replaced data files) every warehouse table keeps."""
    text = os.environ.get("ETL_HISTORY_RETENTION_DAYS")
    if not text:
        return DEFAULT_HISTORY_RETENTION_DAYS
    try:
        value = int(text)
    except ValueError:
        raise WarehouseError("ETL_HISTORY_RETENTION_DAYS must be a whole number of days (it is set to something else)") from None
    if value < 1:
        raise WarehouseError("ETL_HISTORY_RETENTION_DAYS must be 1 or more days")
    return value


def retention_properties() -> dict[str, str]:
    """The Delta table properties that keep the history `--as-of` reads (see the module docstring)."""
    days = history_retention_days()
    return {key: f"interval {days} days" for key in RETENTION_PROPERTIES}


# Tables whose retention properties were seen or set in this process: resolved path -> (log version, properties).
_RETAINED: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {}


_LOCKS: dict[str, filelock.FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> filelock.FileLock:
    """One lock object per warehouse per process: re-entrant within a thread, exclusive between
    threads (thread-local state) and between processes (an OS file lock)."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        lk = _LOCKS.get(key)
        if lk is None:
            lk = _LOCKS[key] = filelock.FileLock(key, thread_local=True)
        return lk


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def predicate(**equals: str) -> str:
    """A Delta predicate selecting rows whose columns equal the given values."""
    return " AND ".join(f"{col} = {sql_literal(v)}" for col, v in equals.items())


def _props(run_id: str, **extra: str) -> CommitProperties:
    return CommitProperties(custom_metadata={"run_id": run_id, "etl_writer": WRITER, **extra})


@dataclass(frozen=True)
class Write:
    table: str
    frame: pl.DataFrame
    replace: str | None = None  # Delta predicate of the rows this write replaces; None appends
    partition_by: tuple[str, ...] = ()  # the table's Delta partition columns (given on every write of a partitioned table)


# Data files of a table version with their statistics: (resolved path, version) -> (log entry identity, files).
_FILES: dict[tuple[str, int], tuple[tuple, pl.DataFrame]] = {}
_FILES_MAX = 64
_SMALL: dict[tuple[str, int], tuple[tuple, pl.DataFrame]] = {}  # `Warehouse.read_small`: (path, version) -> frame


WRITE_SLICE_ROWS = 1_000_000


def _arrow(frame: Any) -> Any:
    """A write's rows for `write_deltalake`: as they are, except that categorical columns (the key index's
    partition columns, `etl.core.key_index`) are written as text, slice by slice, so the text of millions of
    rows is never held at once. A staged frame (`etl.core.staging`) streams its own batches."""
    if not isinstance(frame, pl.DataFrame):
        return frame.to_arrow()
    cats = [n for n, t in frame.schema.items() if isinstance(t, pl.Categorical | pl.Enum)]
    if not cats:
        return frame.to_arrow()
    as_text = [pl.col(n).cast(pl.Utf8) for n in cats]
    schema = frame.head(0).with_columns(as_text).to_arrow().schema

    def batches() -> Iterator[pa.RecordBatch]:
        for part in frame.iter_slices(WRITE_SLICE_ROWS):
            yield from part.with_columns(as_text).to_arrow().to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


_LEASES: dict[str, Lease] = {}


def _lease(location: Location) -> Lease:
    """One lease object per remote warehouse per process (re-entrant within a thread, like `_file_lock`)."""
    with _LOCKS_GUARD:
        lease = _LEASES.get(location.url)
        if lease is None:
            lease = _LEASES[location.url] = Lease(location, LOCK_FILE)
        return lease


class Warehouse:
    """The warehouse at ``root``: a local folder, or an ``s3://bucket/prefix`` URL (`etl.core.storage`: Delta
    tables through deltalake's own storage options, the lock as a lease object, `etl.core.lease`)."""

    def __init__(self, root: str | Path):
        self.location = Location.of(root)
        self.remote = self.location.remote
        # what messages and callers show: the folder (a Path) or the URL
        self.root: Path | str = self.location.url if self.remote else Path(self.location.url)
        self._committed: tuple[int, dict[str, int]] | None = None  # (audit_runs version, versions)
        self._pinned = False
        self._run_base: int | None = None  # audit_runs version a run started from (inside `run`)

    @property
    def storage_options(self) -> dict[str, str] | None:
        """What deltalake and polars need to read the warehouse's files (None for a local folder)."""
        return self.location.storage_options

    def local_dir(self, name: str) -> Path:
        """A local folder kept with the warehouse (Data Docs, caches): in the warehouse folder, or for a warehouse on
        an object store in the local work folder (`etl.core.storage.work_dir`) of that warehouse."""
        if not self.remote:
            return Path(self.location.url) / name
        from etl.core.storage import work_dir

        return work_dir(self.location) / name

    def _check_root(self) -> None:
        if self.remote:
            return
        root = Path(self.location.url)
        if root.exists() and not root.is_dir():
            raise WarehouseError(f"{self.root}: the warehouse must be a folder, and this is a file; point --warehouse at a folder")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read one committed state throughout (no re-check for other writers' runs inside): a run's
        reads are consistent with each other, and the audit_runs log is not replayed for every read."""
        self.committed_versions()
        self._pinned = True
        try:
            yield
        finally:
            self._pinned = False

    @contextmanager
    def run(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the warehouse for one writing run: wait for the lock, roll back whatever an
        unfinished run left, then read one committed state until the run commits. Runs inside
        `run` are serialisable: each sees everything committed before it and nothing after."""
        with self.lock(timeout):
            self._invalidate()
            self.recover()
            with self.snapshot():
                self._run_base = self._log_version(AUDIT_RUNS)
                try:
                    yield
                finally:
                    self._run_base = None

    def _invalidate(self) -> None:
        """Stop trusting the pinned state: the next read re-checks the audit_runs version (the cache
        of committed versions is keyed by it, so it stays valid until a run is recorded)."""
        self._pinned = False

    # ------------------------------------------------------------------ paths and state
    def path(self, table: str) -> str:
        """Where the table is: its folder's path, or its URL on an object store."""
        return self.location.child(table)

    def cache_key(self, table: str) -> str:
        """The table's key in this process's per-table caches (its resolved folder, or its URL)."""
        return self.path(table) if self.remote else str(Path(self.path(table)).resolve())

    def delta(self, table: str, version: int | None = None) -> DeltaTable:
        """The table's `DeltaTable` (at ``version``), with the warehouse's storage options."""
        return DeltaTable(self.path(table), version=version, storage_options=self.storage_options)

    def _table(self, table: str, version: int | None = None) -> DeltaTable | None:
        if self._log_version(table) is None:
            return None
        try:
            return self.delta(table, version)
        except TableNotFoundError:
            return None

    def _log_version(self, table: str) -> int | None:
        """The table's latest Delta version, from the names of its log's commit files (no log replay).
        Each commit writes ``_delta_log/<version, 20 digits>.json``; the newest is never cleaned up."""
        names = self.location.names(table, "_delta_log")
        if not names:
            return None
        versions = [int(name[:20]) for name in names if len(name) == 25 and name.endswith(".json") and name[:20].isdigit()]
        return max(versions) if versions else None

    def _delta_tables(self) -> list[str]:
        """Every Delta table folder directly in the warehouse folder (owned or not)."""
        if not self.remote:
            root = Path(self.location.url)
            if not root.is_dir():
                return []
            return sorted(p.name for p in root.iterdir() if (p / "_delta_log").is_dir())
        return sorted(name for name in self.location.names() or [] if not name.startswith(".") and self.location.names(name, "_delta_log"))

    def _marked(self, table: str) -> bool:
        """Whether the table's first commit was made by this package (its writer mark or, for
        warehouses written before the mark existed, one of its run ids)."""
        try:
            first = self.location.read_bytes(table, "_delta_log", f"{0:020d}.json")
            if first is None:
                return False
            info = json.loads(first.split(b"\n", 1)[0]).get("commitInfo") or {}
        except (OSError, ValueError, AttributeError):
            return False
        return info.get("etl_writer") == WRITER or bool(_LEGACY_RUN_ID.match(str(info.get("run_id", ""))))

    def has_table(self, table: str) -> bool:
        return table in self.committed_versions()

    def run_files(self, after: int | None = None) -> list[str] | None:
        """The audit_runs data files (its latest Delta version) that hold rows with a commit_seq above ``after``
        (every file when None), chosen by the Delta statistics of commit_seq; None when a file has none (read all).
        The table is only ever appended to, so the newest runs are found without reading the older ones."""
        t = self._table(AUDIT_RUNS)
        if t is None:
            return []
        adds = pl.DataFrame(pl.from_arrow(pa.table(t.get_add_actions(flatten=True))))
        if adds.height == 0:
            return []
        if "max.commit_seq" not in adds.columns or adds.filter(pl.col("num_records") > 0)["max.commit_seq"].null_count():
            return None
        if after is not None:
            adds = adds.filter(pl.col("max.commit_seq") > after)
        return [self._data_file(AUDIT_RUNS, rel) for rel in adds["path"].to_list()]

    def _data_file(self, table: str, rel: str) -> str:
        """The full path (or URL) of a data file the table's log names relative to the table (URL-encoded)."""
        if self.remote:
            return self.location.child(table, unquote(rel))
        return str(Path(self.cache_key(table)) / unquote(rel))

    def latest_run(self) -> dict | None:
        try:
            t = self._table(AUDIT_RUNS)
            if t is None:
                return None
            runs = self._latest_rows(t)
        except Exception as exc:  # a damaged log or data file: refuse, never guess
            raise WarehouseStateError(
                f"{self.path(AUDIT_RUNS)}: the warehouse's run record cannot be read ({type(exc).__name__}); "
                "nothing was changed. Restore audit_runs from a backup before running again"
            ) from exc
        if runs.height == 0:
            return None
        return runs.sort("commit_seq").row(-1, named=True)

    def _latest_rows(self, t: DeltaTable) -> pl.DataFrame:
        """commit_seq, table_versions, run_id of the audit_runs file(s) holding the highest commit_seq (its
        Delta statistics say which; the whole table when a file has none): a constant cost however many runs."""
        columns = ["commit_seq", "table_versions", "run_id"]
        adds = pl.DataFrame(pl.from_arrow(pa.table(t.get_add_actions(flatten=True)))).filter(pl.col("num_records") > 0)
        if adds.height and "max.commit_seq" in adds.columns and not adds["max.commit_seq"].null_count():
            top = adds["max.commit_seq"].max()
            paths = [self._data_file(AUDIT_RUNS, rel) for rel in adds.filter(pl.col("max.commit_seq") == top)["path"].to_list()]
            return pl.read_parquet(paths, columns=columns, storage_options=self.storage_options)
        return pl.DataFrame(pl.from_arrow(t.to_pyarrow_table(columns=columns)))

    def committed_versions(self) -> dict[str, int]:
        """Version of each table as of the last complete run (tables absent were never committed).

        Cached against the audit_runs table version: reading the runs means reading the table, while
        checking the version only lists its log's commit files, so a new run by anyone is still seen.
        Raises `WarehouseStateError` when the warehouse holds its tables but no audit_runs.
        """
        self._check_root()
        if self._pinned and self._committed is not None:
            return dict(self._committed[1])
        version = self._log_version(AUDIT_RUNS)
        if version is None:
            orphans = [t for t in self._delta_tables() if self._marked(t)]
            if orphans:
                raise WarehouseStateError(
                    f"{self.root}: the warehouse has tables ({', '.join(orphans)}) but no readable audit_runs table, so "
                    "which of their versions were committed cannot be told; nothing was changed. Restore "
                    f"{self.path(AUDIT_RUNS)} from a backup, or move the warehouse folder aside and load again"
                )
            return {}
        if self._committed is None or self._committed[0] != version:
            self._committed = (version, self._read_committed())
        return dict(self._committed[1])

    def _read_committed(self) -> dict[str, int]:
        last = self.latest_run()
        try:
            versions = {k: int(v) for k, v in json.loads(last["table_versions"]).items()} if last else {}
        except (TypeError, ValueError, AttributeError) as exc:
            raise WarehouseStateError(f"{self.path(AUDIT_RUNS)}: the last run's table versions cannot be read; nothing was changed") from exc
        versions[AUDIT_RUNS] = self._log_version(AUDIT_RUNS)  # type: ignore[assignment]
        return versions

    # ------------------------------------------------------------------ reading
    def scan(self, table: str) -> pl.LazyFrame | None:
        """The table as of the last complete run, or None if it has never been written."""
        version = self.committed_versions().get(table)
        if version is None:
            return None
        return pl.scan_delta(self.path(table), version=version, storage_options=self.storage_options)

    def read(self, table: str) -> pl.DataFrame | None:
        lf = self.scan(table)
        return None if lf is None else lf.collect()

    def history(self, table: str) -> list[dict]:
        t = self._table(table)
        return [] if t is None else t.history()

    def _version_identity(self, table: str, version: int) -> tuple[str, tuple | None]:
        """The table's cache key (`_key`) and the identity of its log entry for ``version`` ((inode, mtime), or the
        object's ETag) - what the per-version caches check, so that a folder made again is not mistaken - or None
        if unreadable."""
        return self.cache_key(table), self.location.identity(table, "_delta_log", f"{version:020d}.json")

    def read_small(self, table: str) -> pl.DataFrame | None:
        """`read` of a small table (audit_runs, published_statistics), kept per committed version: a batch of
        months reads it once. Never for a curated table (the copy is held until a newer version is read)."""
        version = self.committed_versions().get(table)
        if version is None:
            return None
        root, identity = self._version_identity(table, version)
        if identity is None:
            return self.read(table)
        key = (root, version)
        cached = _SMALL.get(key)
        if cached is not None and cached[0] == identity:
            return cached[1]
        frame = self.read(table)
        assert frame is not None
        for k in [k for k in _SMALL if k[0] == key[0]]:
            del _SMALL[k]  # one version per table
        _SMALL[key] = (identity, frame)
        return frame

    def files(self, table: str) -> pl.DataFrame | None:
        """The table's data files as of the last complete run, with their Delta statistics (None if never
        written): ``path`` (the file, absolute), ``num_records``, ``min.<column>``, ``max.<column>``,
        ``null_count.<column>`` and ``partition.<column>``, as `DeltaTable.get_add_actions` gives them.

        Delta's statistics of text are bounds, not always the values (a long text's minimum is cut to a prefix
        and its maximum rounded up), so a reader may skip a file by them but never take them for the data.
        Cached per table version (the version's log entry is checked, so a folder made again is not mistaken)."""
        version = self.committed_versions().get(table)
        if version is None:
            return None
        root, found = self._version_identity(table, version)
        identity = found or (0, 0)
        key = (root, version)
        cached = _FILES.get(key)
        if cached is not None and cached[0] == identity:
            return cached[1]
        t = self.delta(table, version)
        frame = pl.DataFrame(pl.from_arrow(pa.table(t.get_add_actions(flatten=True))))
        paths = frame["path"]
        if paths.str.contains("%", literal=True).any():  # a partition value escaped in the path (Delta URL-encodes it)
            full = pl.Series("path", [self._data_file(table, rel) for rel in paths.to_list()], dtype=pl.Utf8)
        else:
            full = (root + "/") + paths
        frame = frame.with_columns(full.alias("path"))
        _FILES[key] = (identity, frame)
        while len(_FILES) > _FILES_MAX:
            _FILES.pop(next(iter(_FILES)))
        return frame

    # ------------------------------------------------------------------ the lock
    def _lock_holder(self) -> str:
        try:
            return (Path(self.location.url) / LOCK_OWNER_FILE).read_text(encoding="utf-8").strip() or "another run"
        except OSError:
            return "another run"

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the warehouse's writer lock (re-entrant in one thread): an OS file lock in a local folder, a lease
        object on an object store (`etl.core.lease`). Waits for another holder, reporting every few seconds (log and
        a ``lock_wait`` progress event), and raises `WarehouseBusy` after ``timeout`` seconds (default
        ``ETL_LOCK_TIMEOUT``, else 30 minutes)."""
        self._check_root()
        limit = lock_timeout() if timeout is None else timeout
        if self.remote:
            lease = _lease(self.location)
            self._wait_for(self._lease_attempt(lease), limit)
            try:
                if lease.count == 1:
                    fault_point("lock.acquired")
                yield
            finally:
                lease.release()
            return
        root = Path(self.location.url)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"{self.root}: cannot create the warehouse folder ({exc.strerror or exc})") from exc
        lk = _file_lock(root / LOCK_FILE)

        def attempt(wait: float) -> str | None:
            try:
                lk.acquire(timeout=wait)
                return None
            except filelock.Timeout:
                return self._lock_holder()
            except OSError as exc:
                raise WarehouseError(f"{self.root}: cannot lock the warehouse ({exc.strerror or exc})") from exc

        self._wait_for(attempt, limit)
        first = lk.lock_counter == 1
        try:
            if first:
                since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                try:
                    (root / LOCK_OWNER_FILE).write_text(f"pid {os.getpid()} on {socket.gethostname()} since {since}", encoding="utf-8")
                except OSError:
                    pass
                fault_point("lock.acquired")
            yield
        finally:
            if first:
                try:
                    (root / LOCK_OWNER_FILE).unlink()
                except OSError:
                    pass
            lk.release()

    def _check_held(self, run_id: str, outcome: str) -> None:
        """On an object store, refuse (`LeaseLost`) unless this run's lease is still the one on the store."""
        if self.remote and not _lease(self.location).still_held():
            raise LeaseLost(
                f"{self.root}: run {run_id.split(',')[0]} lost the warehouse lock (its lease expired and another run took it over); {outcome}. Run it again"
            )

    def _lease_attempt(self, lease: Lease) -> Callable[[float], str | None]:
        """Try to take the lease for up to ``wait`` seconds (polling): None when taken, else who holds it."""

        def attempt(wait: float) -> str | None:
            end = time.monotonic() + wait
            while True:
                try:
                    taken, holder = lease.try_acquire()
                except WarehouseError:
                    raise
                except Exception as exc:
                    raise WarehouseUnavailable(f"{self.root}: cannot lock the warehouse ({type(exc).__name__}: {exc}); nothing was changed") from exc
                if taken:
                    return None
                if time.monotonic() >= end:
                    return holder or "another run"
                time.sleep(min(LEASE_POLL, max(0.0, end - time.monotonic())))

        return attempt

    def _wait_for(self, attempt: Callable[[float], str | None], limit: float) -> None:
        """Call ``attempt(seconds)`` until it takes the lock (returns None), reporting the holder it names while
        waiting; `WarehouseBusy` after ``limit`` seconds."""
        start = time.monotonic()
        while True:
            holder = attempt(max(0.0, min(LOCK_REPORT_EVERY, limit - (time.monotonic() - start))))
            waited = time.monotonic() - start
            if holder is None:
                if waited >= 1:
                    log.info("warehouse %s locked after waiting %.1f s", self.root, waited)
                return
            if waited >= limit:
                raise WarehouseBusy(
                    f"{self.root}: another run is writing to this warehouse ({holder}) and did not finish within "
                    f"{limit:.0f} s; nothing was changed. Run again when it ends (ETL_LOCK_TIMEOUT sets how long to wait)"
                )
            log.info("waiting for warehouse %s: held by %s (%.0f s of %.0f s)", self.root, holder, waited, limit)
            progress.emit("lock_wait", warehouse=str(self.root), holder=holder, waited=waited, timeout=limit)

    # ------------------------------------------------------------------ recovery
    def _uncommitted(self) -> dict[str, tuple[int | None, int]]:
        """Owned tables left ahead of the committed state: table -> (committed version or None, current).
        Raises `WarehouseStateError` when a committed table is missing or behind its committed version."""
        committed = self.committed_versions()
        ahead = {}
        for table in sorted(set(self._delta_tables()) | set(committed)):
            if table == AUDIT_RUNS:
                continue
            cur = self._log_version(table)
            want = committed.get(table)
            if want is not None and (cur is None or cur < want):
                shown = "is missing" if cur is None else f"is at version {cur}, behind the committed version {want}"
                raise WarehouseStateError(
                    f"{self.path(table)}: the table {shown} (the last run recorded version {want}); nothing was changed. "
                    "Restore the table folder from a backup before running again"
                )
            if cur is None:
                continue
            if want is None and not self._marked(table):
                continue  # not the warehouse's: never touched
            if want is None or cur > want:
                ahead[table] = (want, cur)
        return ahead

    def recover(self, run_id: str | None = None) -> list[str]:
        """Put every owned table back to the last complete run. Returns what was rolled back.

        Call with the lock held. A table ahead of its committed version is restored to it (Delta
        restore: a new version, history kept); a table an unfinished run created is emptied (a Delta
        delete, history kept) - no folder is ever deleted. Records a `recovery` row in audit_runs so
        that the restored versions become the committed ones (and auditors see the roll-back).
        """
        ahead = self._uncommitted()
        if not ahead:
            return []
        fault_point("recover.start")
        notes = []
        versions = self.committed_versions()
        versions.pop(AUDIT_RUNS, None)
        rid = run_id or f"recovery-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
        for table, (want, cur) in ahead.items():
            t = self._table(table)
            if t is None:  # pragma: no cover - _uncommitted saw its log a moment ago, under the lock
                continue
            self._invalidate()
            if want is None:
                t.delete(commit_properties=_props(rid, note="rows of an unfinished run removed"))
                notes.append(f"{table}: rows of an unfinished run removed (version {cur} -> {self._log_version(table)}; history kept)")
            else:
                t.restore(want, commit_properties=_props(rid, restored_to=str(want)))  # the table's properties are restored too
                notes.append(f"{table}: restored from version {cur} to {want}")
            _RETAINED.pop(self.cache_key(table), None)
            versions[table] = self._log_version(table)  # type: ignore[assignment]
            log.warning("recovery %s: %s", rid, notes[-1])
            fault_point("recover.after_restore")
        fault_point("recover.before_run_row")
        now = dt.datetime.now(dt.UTC)
        self._append_run(
            {"run_id": rid, "kind": "recovery", "started_at": now, "finished_at": now, "outcome": "recovered", "message": "; ".join(notes)}, versions
        )
        return notes

    # ------------------------------------------------------------------ writing
    def _ensure_retention(self, table: str, run_id: str) -> int | None:
        """Give an existing table the history retention properties unless it has them (a Delta
        metadata commit carrying the run id). Returns the table's version after it, None when absent.
        Call with the lock held."""
        version = self._log_version(table)
        if version is None:
            return None
        wanted = retention_properties()
        key, expected = self.cache_key(table), tuple(sorted(wanted.items()))
        if _RETAINED.get(key) == (version, expected):
            return version
        t = self._table(table)
        if t is None:  # pragma: no cover - its log was listed a moment ago, under the lock
            return version
        configuration = t.metadata().configuration
        if any(configuration.get(k) != v for k, v in wanted.items()):
            self._invalidate()
            t.alter.set_table_properties(wanted, commit_properties=_props(run_id, note="history retention set"))
            version = self._log_version(table)
            assert version is not None
            log.info("run %s: %s keeps %s of history (%s)", run_id.split(",")[0], table, wanted[RETENTION_PROPERTIES[0]], ", ".join(RETENTION_PROPERTIES))
        _RETAINED[key] = (version, expected)
        return version

    def _write(self, w: Write, run_id: str) -> int:
        self._invalidate()
        path, so = self.path(w.table), self.storage_options
        data = _arrow(w.frame)
        exists = self._ensure_retention(w.table, run_id) is not None
        parts = list(w.partition_by) or None
        if w.replace is not None and exists:
            # schema_mode merge: a table written before a column was added (e.g. spc.phase) takes it on
            write_deltalake(
                path, data, mode="overwrite", predicate=w.replace, schema_mode="merge", partition_by=parts, storage_options=so, commit_properties=_props(run_id)
            )
        elif exists:
            write_deltalake(path, data, mode="append", schema_mode="merge", partition_by=parts, storage_options=so, commit_properties=_props(run_id))
        else:
            write_deltalake(
                path,
                data,
                mode="append",
                schema_mode="merge",
                partition_by=parts,
                configuration=retention_properties(),
                storage_options=so,
                commit_properties=_props(run_id),
            )
        version = self._log_version(w.table)  # the lock is held: the newest commit is this write
        assert version is not None
        _RETAINED[self.cache_key(w.table)] = (version, tuple(sorted(retention_properties().items())))
        self._checkpoint(w.table, version)
        return version

    def _write_tables(self, writes: list[Write], run_id: str) -> dict[str, int]:
        """Each write (`_write`), ``WRITE_THREADS`` tables at a time and each table's writes in order: table ->
        its version after them. Returns, or raises the first failure, only once no write is running (those not
        started are cancelled). The fault points are reached in this thread, in the order of the writes."""
        by_table: dict[str, list[Write]] = {}
        for w in writes:
            by_table.setdefault(w.table, []).append(w)

        def write_table(table_writes: list[Write]) -> int:
            version = -1
            for w in table_writes:
                version = self._write(w, run_id)
            return version

        if WRITE_THREADS < 2 or len(by_table) < 2:
            out = {}
            for table, table_writes in by_table.items():
                fault_point("commit.before_write")
                out[table] = write_table(table_writes)
                fault_point("commit.after_write")
            return out
        pool = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="table-write")
        try:
            futures = {}
            for table, table_writes in by_table.items():
                fault_point("commit.before_write")
                futures[table] = pool.submit(write_table, table_writes)
            out = {}
            for table, future in futures.items():
                out[table] = future.result()
                fault_point("commit.after_write")
            return out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _checkpoint(self, table: str, version: int) -> None:
        """A Delta checkpoint of the version just written when CHECKPOINT_EVERY versions have passed since
        the table's last one (it adds no version: readers replay the log from it instead of from the start
        or from Delta's own checkpoint every 100 versions). Call with the lock held."""
        try:
            last = int(json.loads(self.location.read_bytes(table, "_delta_log", "_last_checkpoint") or b"")["version"])
        except (OSError, ValueError, KeyError, TypeError):
            last = -1
        if version - last >= CHECKPOINT_EVERY:
            self.delta(table, version).create_checkpoint()

    def _compact(self, table: str, run_id: str) -> int | None:
        """Compact a COMPACTED table's small files when COMPACT_EVERY versions have passed (a new version,
        data unchanged; recorded by the run like its writes). Returns the new version, None when not due."""
        version = self._log_version(table)
        if version is None or version % COMPACT_EVERY:
            return None
        t = self._table(table)
        if t is None or len(t.file_uris()) < 2:
            return None
        self._invalidate()
        t.optimize.compact(target_size=COMPACT_TARGET_BYTES, commit_properties=_props(run_id, note=f"compact {table}"))
        after = self._log_version(table)
        assert after is not None
        if after != version:
            _RETAINED[self.cache_key(table)] = (after, tuple(sorted(retention_properties().items())))
            self._checkpoint(table, after)
        return after

    def _ensure_audit_runs(self) -> None:
        """Create the (empty) audit_runs table before a new warehouse's first table, so that tables
        without an audit_runs always mean a damaged warehouse, never a first run cut short."""
        if self._log_version(AUDIT_RUNS) is not None:
            return
        self._invalidate()
        empty = pl.DataFrame(schema=AUDIT_RUNS_SCHEMA)
        write_deltalake(
            self.path(AUDIT_RUNS),
            empty.to_arrow(),
            mode="append",
            configuration=retention_properties(),
            storage_options=self.storage_options,
            commit_properties=_props("create", note="audit_runs created"),
        )
        fault_point("commit.audit_runs_created")

    def _append_run(self, row: dict, versions: dict[str, int]) -> None:
        self._append_runs([row], versions)

    def _append_runs(self, rows: list[dict], versions: dict[str, int]) -> None:
        """Append run rows (one commit): each gets the next commit_seq and the tables' versions."""
        self._invalidate()
        self._ensure_audit_runs()
        self._ensure_retention(AUDIT_RUNS, ",".join(str(r.get("run_id")) for r in rows))
        last = self.latest_run()
        first_seq = (last["commit_seq"] + 1) if last else 1
        full_rows = []
        for k, row in enumerate(rows):
            full: dict[str, object] = {key: None for key in AUDIT_RUNS_SCHEMA}
            full.update(row)
            full["commit_seq"] = first_seq + k
            full["table_versions"] = json.dumps({t: v for t, v in sorted(versions.items()) if t != AUDIT_RUNS})
            full["code_version"] = full.get("code_version") or code_version()
            full_rows.append(full)
        frame = pl.DataFrame(full_rows, schema=AUDIT_RUNS_SCHEMA)
        ids = ",".join(str(r["run_id"]) for r in full_rows)
        # schema_mode merge: a warehouse written before a column was added to audit_runs takes it on.
        write_deltalake(
            self.path(AUDIT_RUNS), frame.to_arrow(), mode="append", schema_mode="merge", storage_options=self.storage_options, commit_properties=_props(ids)
        )
        fault_point("commit.after_run_row")
        t = self._table(AUDIT_RUNS)
        if t is not None and t.version() % COMPACT_EVERY == 0:
            # Each commit appends one small file; every run reads the table, so keep it to a few files.
            # Compaction rewrites data only (a new Delta version of audit_runs; history stays readable).
            t.optimize.compact(target_size=COMPACT_TARGET_BYTES, commit_properties=_props(ids, note="compact audit_runs"))
        version = self._log_version(AUDIT_RUNS)
        if version is not None:
            self._checkpoint(AUDIT_RUNS, version)

    def commit(self, run_id: str, writes: list[Write], run_row: dict | list[dict], checks: pl.DataFrame | None = None) -> dict[str, int]:
        """Write a run's tables, then its audit_runs row(s) - several when a batch commits several
        force-months at once; they share the tables' versions. All or nothing.

        Inside `run`, refuses with `StaleSnapshot` (writing nothing) when another writer committed
        since the run read the warehouse."""
        rows = run_row if isinstance(run_row, list) else [run_row]
        with self.lock():
            self._check_held(run_id, "nothing was written")
            if self._run_base is not None and self._log_version(AUDIT_RUNS) != self._run_base:
                raise StaleSnapshot(
                    f"{self.root}: the warehouse changed while run {run_id.split(',')[0]} was computing from it (a writer "
                    "that does not take the warehouse lock?); nothing was written. Run it again"
                )
            self._invalidate()  # another process may have committed since this instance last looked
            self.recover()
            fault_point("commit.start")
            self._ensure_audit_runs()
            versions = self.committed_versions()
            versions.pop(AUDIT_RUNS, None)
            started = time.perf_counter()
            try:
                written = {w.table for w in writes} | ({AUDIT_CHECKS} if checks is not None and checks.height else set())
                for table in sorted(set(versions) - written):  # tables this run does not write keep their history too
                    version = self._ensure_retention(table, run_id)
                    if version is not None:
                        versions[table] = version
                if checks is not None and checks.height:
                    writes = [*writes, Write(AUDIT_CHECKS, checks.select([pl.col(k).cast(t) for k, t in AUDIT_CHECKS_SCHEMA.items()]))]
                versions.update(self._write_tables(writes, run_id))
                for table in COMPACTED:
                    compacted = self._compact(table, run_id) if table in versions else None
                    if compacted is not None:
                        versions[table] = compacted
                fault_point("commit.after_checks")
                self._check_held(run_id, "its table writes are not part of the record (the next run rolls them back)")
                self._append_runs(rows, versions)
            except LeaseLost:
                raise  # the warehouse is another run's now: rolled back by whoever holds it, never by this run
            except BaseException:
                log.warning("run %s failed during its commit; rolling back", run_id.split(",")[0])
                self.recover(run_id=f"{run_id.split(',')[0]}-rollback")
                raise
            log.info(
                "run %s committed: %d table write(s), %d run row(s) in %.2f s", run_id.split(",")[0], len(writes), len(rows), time.perf_counter() - started
            )
            return versions
