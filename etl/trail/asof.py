"""The warehouse as it stood after a run: every table read at the Delta version that run recorded.

Each ``audit_runs`` row records ``table_versions``, the Delta version of every table after the run,
and Delta keeps every earlier version (the retention is set on every table, `etl.core.warehouse`).
So the figures as they were published are read back exactly, after any later re-run or correction:

    reader = warehouse_as_of(wh, "load-20261130T104107-ab12cd34")   # a run id
    reader = warehouse_as_of(wh, "2026-11-30")                      # after the last run finished that day (UTC)
    reader = warehouse_as_of(wh, "2026-11-30T10:45+01:00")          # a time; without an offset it is UTC
    reader = warehouse_as_of(wh, None)                              # the current committed state
    reader.read("measures")

A time selects the state after the last run that finished at or before it (a date: by the end of
that day, UTC). Tables the chosen run's versions do not name did not exist then (``read`` gives
None). ``audit_runs`` itself is read at the version that appended the run's row, so it holds that
run and the runs before it. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

import polars as pl
from deltalake.exceptions import DeltaError

from etl.core.warehouse import AUDIT_RUNS, Warehouse
from etl.errors import ConfigError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")
_PAIR = r'"[^"]+":\s*\d+'  # one "table": version pair of a table_versions JSON object


class AsOfError(ConfigError):
    """An as-of point that cannot be read: an unknown run id, a time before the first run, a date
    that is not one, or history no longer kept (exit 2, one plain line)."""


@dataclass(frozen=True)
class AsOf:
    """The warehouse as it stood after run ``run_id`` (finished ``finished_at``): each table at
    ``versions[table]``. Empty ``versions``: the current committed state (``run_id`` None)."""

    warehouse: Warehouse
    run_id: str | None
    finished_at: dt.datetime | None
    versions: dict[str, int]

    @property
    def is_current(self) -> bool:
        return not self.versions

    def version(self, table: str) -> int | None:
        """The Delta version this reader reads ``table`` at (None: the table did not exist then)."""
        if self.is_current:
            return self.warehouse.committed_versions().get(table)
        return self.versions.get(table)

    def scan(self, table: str) -> pl.LazyFrame | None:
        """The table as it stood, or None when it did not exist then."""
        if self.is_current:
            return self.warehouse.scan(table)
        version = self.versions.get(table)
        if version is None:
            if table == AUDIT_RUNS:  # its history no longer names the commit that appended the run
                raise AsOfError(f"{self.warehouse.path(table)}: the version that recorded run {self.run_id} is no longer in the table's history")
            return None
        wh = self.warehouse
        try:
            delta = wh.delta(table, version)
            if wh.remote:
                gone = [uri for uri in delta.file_uris() if not wh.location.fs.exists(uri.split("://", 1)[1])]
            else:
                gone = [uri for uri in delta.file_uris() if not os.path.exists(_local(uri))]
        except (DeltaError, OSError) as exc:
            raise self._gone(table, version) from exc
        if gone:
            raise self._gone(table, version)
        if wh.remote:
            return pl.scan_delta(wh.path(table), version=version, storage_options=wh.storage_options)
        return pl.scan_delta(delta)

    def read(self, table: str) -> pl.DataFrame | None:
        if self.is_current:
            return self.warehouse.read(table)
        lf = self.scan(table)
        if lf is None:
            return None
        try:
            return lf.collect()
        except (DeltaError, OSError) as exc:  # a data file removed between the check and the read
            raise self._gone(table, self.versions[table]) from exc

    def describe(self) -> str:
        """'as of run load-... (finished 2026-11-30 10:41 UTC)', or 'current'."""
        if self.is_current:
            return "current"
        when = f" (finished {self.finished_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)" if self.finished_at is not None else ""
        return f"as of run {self.run_id}{when}"

    def _gone(self, table: str, version: int) -> AsOfError:
        return AsOfError(
            f"{self.warehouse.path(table)}: version {version} of the table ({self.describe()}) can no longer be read: its history was "
            "removed (a vacuum or log clean-up below the warehouse's retention); the current state is still readable"
        )


def warehouse_as_of(wh: Warehouse, as_of: str | None, *, option: str = "--as-of") -> AsOf:
    """A reader of the warehouse as it stood at ``as_of``: None (current), a run id in audit_runs, or
    an ISO date or time (a date means the end of that day; a time without an offset is UTC).
    ``option``: how an error names where the point came from (e.g. ``--since``)."""
    if as_of is None or not str(as_of).strip():
        return AsOf(wh, None, None, {})
    text = str(as_of).strip()
    runs = run_log(wh)
    if runs.height == 0:
        raise AsOfError(f"{option} {text}: the warehouse {wh.root} has no runs recorded yet, so there is nothing to read as of any point")
    moment = parse_moment(text, option)
    if moment is None:
        chosen = runs.filter(pl.col("run_id") == text)
        if chosen.height == 0:
            raise AsOfError(
                f"{option} {text}: no run with that id in {wh.path(AUDIT_RUNS)} (give a run id from audit_runs, or a date or time such as 2026-11-30 or 2026-11-30T10:45)"
            )
    else:
        chosen = runs.filter(pl.col("finished_at") <= moment)
        if chosen.height == 0:
            first = runs["finished_at"].min()
            raise AsOfError(
                f"{option} {text}: that is before the first run recorded in {wh.root} (it finished {_shown(first)} UTC); nothing was published then"  # type: ignore[arg-type]
            )
    row = chosen.sort("commit_seq").row(-1, named=True)
    return AsOf(wh, row["run_id"], row["finished_at"], versions_after(wh, runs, row["commit_seq"], row["run_id"]))


def parse_moment(text: str, option: str = "--as-of") -> dt.datetime | None:
    """An ISO date (end of that day, UTC) or date and time (no offset: UTC) as an aware UTC time;
    None when the text is not a date (then it is a run id). Raises `AsOfError` for a malformed date."""
    if not _DATE.match(text) and not _LOOKS_LIKE_TIME.match(text):
        return None
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AsOfError(f"{option} {text}: not a date or time; give YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) with an optional offset, or a run id") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def run_log(wh: Warehouse) -> pl.DataFrame:
    """The committed audit_runs rows in commit order (empty when nothing was ever committed)."""
    runs = wh.read(AUDIT_RUNS)
    if runs is None:
        return pl.DataFrame(
            schema={"run_id": pl.Utf8, "commit_seq": pl.Int64, "kind": pl.Utf8, "finished_at": pl.Datetime("us", "UTC"), "table_versions": pl.Utf8}
        )
    return runs.sort("commit_seq")


def table_versions(runs: pl.DataFrame) -> pl.DataFrame:
    """commit_seq, table, version: every table's version named by every run row (from its table_versions JSON)."""
    return (
        runs.select("commit_seq", pl.col("table_versions").fill_null("{}").str.extract_all(_PAIR).alias("pair"))
        .explode("pair")
        .drop_nulls("pair")
        .select(
            "commit_seq",
            pl.col("pair").str.extract(r'^"([^"]+)"', 1).alias("table"),
            pl.col("pair").str.extract(r":\s*(\d+)$", 1).cast(pl.Int64).alias("version"),
        )
    )


def versions_after(wh: Warehouse, runs: pl.DataFrame, commit_seq: int, run_id: str) -> dict[str, int]:
    """Every table's version after the run row ``commit_seq``: the versions its row names, and for a
    table it does not name, the latest an earlier row named (rows written before every row held them
    all). audit_runs: the version whose commit appended the run's row."""
    named = table_versions(runs.filter(pl.col("commit_seq") <= commit_seq)).sort("commit_seq").group_by("table").agg(pl.col("version").last())
    versions = dict(zip(named["table"].to_list(), named["version"].to_list()))
    versions.pop(AUDIT_RUNS, None)
    appended = _audit_runs_version(wh, run_id)
    if appended is not None:
        versions[AUDIT_RUNS] = appended
    return versions


def _audit_runs_version(wh: Warehouse, run_id: str) -> int | None:
    """The audit_runs version whose commit appended ``run_id``'s row (each commit names its run ids)."""
    try:
        history = wh.delta(AUDIT_RUNS).history()
    except (DeltaError, OSError):
        return None
    found = [int(h["version"]) for h in history if h.get("operation") == "WRITE" and run_id in str(h.get("run_id", "")).split(",")]
    return min(found) if found else None


def _local(uri: str) -> str:
    """A data file's path from the URI Delta gives for it (local warehouses)."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


def _shown(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


__all__ = ["AsOf", "AsOfError", "parse_moment", "run_log", "table_versions", "versions_after", "warehouse_as_of"]
