"""The warehouse: Delta Lake tables under one directory, changed only by whole, atomic runs.

Delta gives each table atomic commits, history and time travel. A run changes several tables, so
the warehouse adds one rule on top: **a run exists when its row is in ``audit_runs``**. The
``audit_runs`` row is written last and records the version of every table after the run
(``table_versions``). Readers read each table at the version the latest ``audit_runs`` row names, so
a run that fails or is killed part-way is invisible, and the next writer (or `recover`) restores any
table left ahead of that version. Only one writer works on a warehouse at a time (a lock file).

Loading a force-month replaces exactly that force-month (a Delta overwrite with a predicate), so a
re-run of a month leaves the same table contents.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

AUDIT_RUNS = "audit_runs"
AUDIT_CHECKS = "audit_checks"
# Tables the recovery looks after: every table directory in the warehouse (curated extracts are
# named after their contracts), audit_runs last.
FIXED_TABLES = ("recorded_crime", "crime_outcomes", "population", "external_statistics", "published_statistics", "quarantine", AUDIT_CHECKS, "measures", "spc", AUDIT_RUNS)

AUDIT_RUNS_SCHEMA = {
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


COMPACT_EVERY = 25  # audit_runs commits between compactions of that table


class WarehouseError(RuntimeError):
    pass


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def predicate(**equals: str) -> str:
    """A Delta predicate selecting rows whose columns equal the given values."""
    return " AND ".join(f"{col} = {sql_literal(v)}" for col, v in equals.items())


@dataclass(frozen=True)
class Write:
    table: str
    frame: pl.DataFrame
    replace: str | None = None  # Delta predicate of the rows this write replaces; None appends


class Warehouse:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._committed: tuple[int, dict[str, int]] | None = None  # (audit_runs version, versions)
        self._pinned = False

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

    def _invalidate(self) -> None:
        """Stop trusting the pinned state: the next read re-checks the audit_runs version (the cache
        of committed versions is keyed by it, so it stays valid until a run is recorded)."""
        self._pinned = False

    # ------------------------------------------------------------------ paths and state
    def path(self, table: str) -> Path:
        return self.root / table

    def _table(self, table: str, version: int | None = None) -> DeltaTable | None:
        p = self.path(table)
        if not (p / "_delta_log").exists():
            return None
        try:
            return DeltaTable(str(p), version=version)
        except TableNotFoundError:
            return None

    def _log_version(self, table: str) -> int | None:
        """The table's latest Delta version, from the names of its log's commit files (no log replay).
        Each commit writes ``_delta_log/<version, 20 digits>.json``; the newest is never cleaned up."""
        log = self.path(table) / "_delta_log"
        if not log.is_dir():
            return None
        versions = [int(name[:20]) for name in os.listdir(log) if len(name) == 25 and name.endswith(".json") and name[:20].isdigit()]
        return max(versions) if versions else None

    def has_table(self, table: str) -> bool:
        return table in self.committed_versions()

    def latest_run(self) -> dict | None:
        t = self._table(AUDIT_RUNS)
        if t is None:
            return None
        runs = pl.from_arrow(t.to_pyarrow_table(columns=["commit_seq", "table_versions", "run_id"]))
        if runs.height == 0:
            return None
        return runs.sort("commit_seq").row(-1, named=True)

    def committed_versions(self) -> dict[str, int]:
        """Version of each table as of the last complete run (tables absent were never committed).

        Cached against the audit_runs table version: reading the runs means reading the table, while
        checking the version only lists its log's commit files, so a new run by anyone is still seen.
        """
        if self._pinned and self._committed is not None:
            return dict(self._committed[1])
        version = self._log_version(AUDIT_RUNS)
        if version is None:
            return {}
        if self._committed is None or self._committed[0] != version:
            self._committed = (version, self._read_committed())
        return dict(self._committed[1])

    def _read_committed(self) -> dict[str, int]:
        last = self.latest_run()
        versions = json.loads(last["table_versions"]) if last else {}
        t = self._table(AUDIT_RUNS)
        if t is not None:
            versions[AUDIT_RUNS] = t.version()
        return versions

    # ------------------------------------------------------------------ reading
    def scan(self, table: str) -> pl.LazyFrame | None:
        """The table as of the last complete run, or None if it has never been written."""
        version = self.committed_versions().get(table)
        if version is None:
            return None
        return pl.scan_delta(str(self.path(table)), version=version)

    def read(self, table: str) -> pl.DataFrame | None:
        lf = self.scan(table)
        return None if lf is None else lf.collect()

    def history(self, table: str) -> list[dict]:
        t = self._table(table)
        return [] if t is None else t.history()

    # ------------------------------------------------------------------ writing
    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / ".etl.lock", "w")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise WarehouseError(f"{self.root}: another run is writing to this warehouse; try again when it ends") from exc
            fh.write(str(os.getpid()))
            fh.flush()
            yield
        finally:
            fh.close()

    def _uncommitted(self) -> dict[str, tuple[int | None, int]]:
        """Tables left ahead of the committed state: table -> (committed version or None, current)."""
        committed = self.committed_versions()
        ahead = {}
        present = sorted(p.name for p in self.root.iterdir() if (p / "_delta_log").exists()) if self.root.exists() else []
        for table in sorted(set(present) | set(FIXED_TABLES)):
            if table == AUDIT_RUNS:
                continue
            cur = self._log_version(table)
            if cur is None:
                continue
            want = committed.get(table)
            if want is None or cur > want:
                ahead[table] = (want, cur)
        return ahead

    def recover(self, run_id: str | None = None) -> list[str]:
        """Put every table back to the last complete run. Returns what was restored.

        Call with the lock held. Records a `recovery` row in audit_runs so that the restored versions
        become the committed ones (and auditors see that an interrupted run was rolled back).
        """
        ahead = self._uncommitted()
        if not ahead:
            return []
        notes = []
        versions = self.committed_versions()
        for table, (want, cur) in ahead.items():
            if want is None:
                self._invalidate()
                shutil.rmtree(self.path(table))
                notes.append(f"{table}: removed (created by an unfinished run)")
                versions.pop(table, None)
            else:
                t = self._table(table)
                assert t is not None
                self._invalidate()
                t.restore(want, commit_properties=CommitProperties(custom_metadata={"run_id": run_id or "recovery", "restored_to": str(want)}))
                versions[table] = self._table(table).version()  # type: ignore[union-attr]
                notes.append(f"{table}: restored from version {cur} to {want}")
        now = dt.datetime.now(dt.timezone.utc)
        self._append_run(
            {
                "run_id": run_id or f"recovery-{now:%Y%m%dT%H%M%S%f}",
                "kind": "recovery",
                "started_at": now,
                "finished_at": now,
                "outcome": "recovered",
                "message": "; ".join(notes),
            },
            versions,
        )
        return notes

    def _write(self, w: Write, run_id: str) -> int:
        self._invalidate()
        path = str(self.path(w.table))
        props = CommitProperties(custom_metadata={"run_id": run_id})
        data = w.frame.to_arrow()
        exists = self._log_version(w.table) is not None
        if w.replace is not None and exists:
            write_deltalake(path, data, mode="overwrite", predicate=w.replace, commit_properties=props)
        else:
            write_deltalake(path, data, mode="append", commit_properties=props)
        version = self._log_version(w.table)  # the lock is held: the newest commit is this write
        assert version is not None
        return version

    def _append_run(self, row: dict, versions: dict[str, int]) -> None:
        self._append_runs([row], versions)

    def _append_runs(self, rows: list[dict], versions: dict[str, int]) -> None:
        """Append run rows (one commit): each gets the next commit_seq and the tables' versions."""
        self._invalidate()
        last = self.latest_run()
        first_seq = (last["commit_seq"] + 1) if last else 1
        full_rows = []
        for k, row in enumerate(rows):
            full = {key: None for key in AUDIT_RUNS_SCHEMA}
            full.update(row)
            full["commit_seq"] = first_seq + k
            full["table_versions"] = json.dumps({t: v for t, v in sorted(versions.items()) if t != AUDIT_RUNS})
            full_rows.append(full)
        frame = pl.DataFrame(full_rows, schema=AUDIT_RUNS_SCHEMA)
        ids = ",".join(str(r["run_id"]) for r in full_rows)
        write_deltalake(str(self.path(AUDIT_RUNS)), frame.to_arrow(), mode="append", commit_properties=CommitProperties(custom_metadata={"run_id": ids}))
        t = self._table(AUDIT_RUNS)
        if t is not None and t.version() % COMPACT_EVERY == 0:
            # Each commit appends one small file; every run reads the table, so keep it to a few files.
            # Compaction rewrites data only (a new Delta version of audit_runs; history stays readable).
            t.optimize.compact(commit_properties=CommitProperties(custom_metadata={"run_id": ids, "note": "compact audit_runs"}))

    def commit(self, run_id: str, writes: list[Write], run_row: dict | list[dict], checks: pl.DataFrame | None = None) -> dict[str, int]:
        """Write a run's tables, then its audit_runs row(s) - several when a batch commits several
        force-months at once; they share the tables' versions. All or nothing."""
        rows = run_row if isinstance(run_row, list) else [run_row]
        with self.lock():
            self._invalidate()  # another process may have committed since this instance last looked
            self.recover()
            versions = self.committed_versions()
            versions.pop(AUDIT_RUNS, None)
            try:
                for w in writes:
                    versions[w.table] = self._write(w, run_id)
                if checks is not None and checks.height:
                    versions[AUDIT_CHECKS] = self._write(Write(AUDIT_CHECKS, checks.select([pl.col(k).cast(t) for k, t in AUDIT_CHECKS_SCHEMA.items()])), run_id)
                self._append_runs(rows, versions)
            except BaseException:
                self.recover(run_id=f"{run_id.split(',')[0]}-rollback")
                raise
            return versions
