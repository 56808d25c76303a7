"""Reading and validating a batch's force-months on Dask workers; the checks, writes and commit stay here.

The batch load (`etl.loading.stages`) reads and validates every file in one process. With Dask, each
force's files of the batch (one month, or a backfill's batch of months) go to a worker as a `UnitTask`:
file PATHS, never data frames. The worker runs the same stages on them - `stages.read_batches` then
`stages.validate_batches`, so the same contracts, rules, row numbers, quarantine and look-ups (a
crime_outcomes file looks up the crimes of its force-month, of the earlier months of the batch and of
the months already loaded, read from the warehouse) - writes each file's curated and quarantined rows
as Parquet into the run's staging folder and hands back a small picklable description
(`UnitMonth`: paths, counts, checks, sha256, encoding, failures).

The parent holds the warehouse (`Warehouse.run`) from before the tasks are sent until the commit, rebuilds
the validated batch from the descriptions (rows read lazily from the staged files: `StagedFrame`) and goes
on as the single-process load: `validate_references`, `check_across_months`, `build_writes`, (measures),
one commit - one writer, all or nothing. The staging area (`staging.shared_stage`: a prefix of a bucket
under ``ETL_SHARED_STAGING`` for workers on other machines, else a `staging.Stage` under ``ETL_STAGING_DIR``)
is removed afterwards, also when the load fails. Workers read the source by the parent's paths (a
`distributed.LocalCluster`, or machines that mount it alike) - except a month taken from a landing zone into a
warehouse in a bucket, whose files they read from their raw copies there (`UnitTask.fetch`) - and the warehouse
for the look-ups (the same folder, or the same ``s3://`` URL).

How the tasks run is the caller's: a function from the list of `UnitTask` to their outcomes, in order -
`dask_client` (a plain `distributed` client: a local cluster of ``ETL_DASK_WORKERS`` worker processes,
or the scheduler at ``ETL_DASK_ADDRESS``), or the Prefect flows' tasks on prefect-dask's
`DaskTaskRunner` (`etl.flows.scale`).

One reason to change: how a batch's reading and validation is spread over Dask workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl

from etl.core import staging
from etl.core.audit import LANDING_MANIFEST
from etl.core.contracts import load_contract
from etl.core.periods import Month
from etl.core.storage import Location, is_remote, s3_storage_options
from etl.core.validation import CheckResult, ExtractResult
from etl.core.warehouse import Warehouse
from etl.errors import ConfigError, TransientError
from etl.loading import batches as month_batches
from etl.loading import stages
from etl.loading.results import BackfillReport, LoadFailed, MonthReport
from etl.loading.sources import ForceFiles, SourcePlan, plan_source_month

log = logging.getLogger(__name__)

WORKERS_ENV = "ETL_DASK_WORKERS"
ADDRESS_ENV = "ETL_DASK_ADDRESS"


# ----------------------------------------------------------------------------------------------------
# What goes to a worker and what comes back (small, picklable)


@dataclass(frozen=True)
class MonthFiles:
    """One force-month of a task: its month and planned files (extract -> path, None when absent)."""

    key: int  # the force-month's place in the parent's list
    month: str
    files: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class UnitTask:
    """A force's files of a batch (one month, or several months in order), validated by one worker."""

    source: str  # file names are shown relative to it; its reference/areas.csv is the shared areas list
    root: str  # the force's folder
    force: str | None  # given, or None: told by the rows
    single: bool  # a lone force folder
    months: tuple[MonthFiles, ...]
    warehouse: str  # read for the look-ups of months already loaded
    staging: str  # the run's staging folder: the worker writes its rows there
    # files to read from the raw area of a warehouse in a bucket rather than by the parent's path (a month landed from a
    # landing zone): (path relative to ``source``, the raw copy's URL)
    fetch: tuple[tuple[str, str], ...] = ()


@dataclass
class StagedResult:
    """An `ExtractResult` with its rows in two Parquet files of the staging folder."""

    extract: str
    source_file: str
    sha256: str
    encoding: str
    month: str | None
    force_id: str | None
    rows_in: int
    clean: str
    clean_rows: int
    quarantine: str
    quarantine_rows: int
    checks: list[CheckResult]


@dataclass
class UnitMonth:
    """What a worker made of one force-month: its force, its results, or its failure (message, rule)."""

    key: int
    force: str | None
    absent: list[str] = field(default_factory=list)  # optional extracts the month does not have
    results: list[StagedResult] = field(default_factory=list)
    failure: tuple[str, str] | None = None


# ----------------------------------------------------------------------------------------------------
# On the worker


def validate_unit(task: UnitTask) -> list[UnitMonth]:
    """`validate_units` of one force."""
    return validate_units([task])[0]


def validate_units(tasks: list[UnitTask]) -> list[list[UnitMonth]]:
    """Read and validate forces' files of a batch with the batch load's own stages (each contract's files of
    the forces in one pass, as in one process), stage the rows in the tasks' staging folder, and describe
    the outcome of each force-month (per task, in its order). Files the tasks name in ``fetch`` are read from
    the raw area (downloaded into a temporary folder laid out as the source), never from the parent's disk."""
    if any(t.fetch for t in tasks):
        with tempfile.TemporaryDirectory(prefix="etl-fetch-", dir=staging.staging_root()) as folder:
            return validate_units([_fetched(t, Path(folder)) for t in tasks])
    first = tasks[0]
    source = Path(first.source)
    wh = Warehouse(first.warehouse)
    batches, made = [], []
    for month in sorted({m.month for t in tasks for m in t.months}):
        planned, units = [], []
        for i, t in enumerate(tasks):
            for m in t.months:
                if m.month == month:
                    p = ForceFiles(Path(t.root), tuple((load_contract(e), Path(f) if f else None) for e, f in m.files), t.force)
                    planned.append(p)
                    units.append(stages.ForceMonth(p, t.force))
                    made.append((i, m, units[-1]))
        batches.append(stages.Batch(SourcePlan(source, Month.parse(month), tuple(planned), first.single), units))
    stages.validate_batches(stages.read_batches(batches), wh)
    folder = first.staging
    out: list[list[UnitMonth]] = [[] for _ in tasks]
    for i, m, u in made:
        done = UnitMonth(m.key, u.force, [c.extract for c in u.absent])
        if u.failure is not None:
            done.failure = (u.failure.message, u.failure.rule)
        else:
            done.results = [_stage_result(r, folder) for r in u.results]
        out[i].append(done)
    for got, t in zip(out, tasks):
        order = {m.key: k for k, m in enumerate(t.months)}
        got.sort(key=lambda d: order[d.key])
    return out


def _fetched(task: UnitTask, folder: Path) -> UnitTask:
    """The task over a copy of its source in ``folder``: its ``fetch`` files downloaded from the raw area (by the
    worker's own storage settings), the paths re-rooted there (names relative to the source stay the same)."""
    source = Path(task.source)

    def moved(path: str) -> str:
        return str(folder / Path(path).relative_to(source))

    for rel, url in task.fetch:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        location = Location.of(url, "raw copy")
        try:
            location.fs.get_file(location.key(), str(target))
        except OSError as exc:
            raise TransientError(f"{url}: the raw copy of {rel} could not be read on a Dask worker ({type(exc).__name__}: {exc})") from exc
    months = tuple(MonthFiles(m.key, m.month, tuple((e, moved(f) if f else None) for e, f in m.files)) for m in task.months)
    return dataclasses.replace(task, source=str(folder), root=moved(task.root), months=months, fetch=())


def _stage_result(r: ExtractResult, folder: str) -> StagedResult:
    """Write a result's rows into the staging folder: a local folder, or a prefix of an object store (a
    `staging.SharedStage`, written with the storage options of this worker's environment)."""
    name = uuid.uuid4().hex
    if is_remote(folder):
        options: dict[str, str] | None = s3_storage_options()
        clean, quarantine = f"{folder}/{name}-clean.parquet", f"{folder}/{name}-quarantine.parquet"
    else:
        options = None
        clean, quarantine = str(Path(folder) / f"{name}-clean.parquet"), str(Path(folder) / f"{name}-quarantine.parquet")
    _write(r.clean, clean, folder, options)
    _write(r.quarantine, quarantine, folder, options)
    return StagedResult(
        r.contract.extract,
        r.source_file,
        r.sha256,
        r.encoding,
        r.month,
        r.force_id,
        r.rows_in,
        clean,
        r.rows_loaded,
        quarantine,
        r.rows_quarantined,
        list(r.checks),
    )


def _write(frame: pl.DataFrame, path: str, folder: str, options: dict[str, str] | None) -> None:
    try:
        if staging.is_staged(frame):
            frame.lazy().sink_parquet(path, compression="lz4", statistics=False, storage_options=options)
        else:
            frame.write_parquet(path, compression="lz4", statistics=False, storage_options=options)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ConfigError(
            f"{folder}: a Dask worker cannot stage validated rows there ({exc}); free disk space, or set {staging.STAGING_ENV} "
            f"to a folder every worker can write (or {staging.SHARED_STAGING_ENV} to an s3:// prefix)"
        ) from exc


# ----------------------------------------------------------------------------------------------------
# In the parent


RunUnits = Callable[[list[UnitTask]], list[list[UnitMonth]]]
Staging = staging.Stage | staging.SharedStage


def validate_on_workers(batches: list[stages.Batch], wh: Warehouse, run_units: RunUnits, stage: Staging) -> list[stages.ValidatedBatch]:
    """`stages.read_batches` then `stages.validate_batches` for the batches of one source (one month, or a
    backfill's months in order), each force's files on a worker; the rows stay in ``stage``'s folder."""
    started = time.perf_counter()
    units: list[tuple[stages.Batch, stages.ForceMonth]] = [(b, u) for b in batches for u in b.units]
    groups: dict[tuple[str, str | None], list[int]] = {}
    for k, (_, u) in enumerate(units):  # a force's months go to one worker, as its look-ups see its earlier months
        groups.setdefault((str(u.planned.root), u.planned.force), []).append(k)
    fetch = _raw_urls(Path(batches[0].source))
    tasks = [
        UnitTask(
            str(batches[0].source),
            root,
            force,
            units[ks[0]][0].plan.single,
            tuple(MonthFiles(k, units[k][0].month, tuple((c.extract, str(p) if p else None) for c, p in units[k][1].planned.files)) for k in ks),
            str(wh.root),
            str(stage.path),
            _fetch_for(fetch, Path(batches[0].source), Path(root)),
        )
        for (root, force), ks in groups.items()
    ]
    log.info("%s: %d force-month(s) of %d month(s), %d force(s), sent to Dask", batches[0].source, len(units), len(batches), len(tasks))
    outcomes = run_units(tasks)
    for done in (d for got in outcomes for d in got):
        batch, u = units[done.key]
        by_extract = {c.extract: c for c in u.planned.contracts}
        u.force = u.force or done.force
        u.absent = [by_extract[e] for e in done.absent]
        if done.failure is not None:
            u.fail(batch.month, LoadFailed(batch.month, *done.failure))
            continue
        u.results = [_result(s, by_extract[s.extract], stage) for s in done.results]
    log.info("%s: read and validated on Dask in %.2f s", batches[0].source, time.perf_counter() - started)
    return stages.validated_batches([stages.ReadBatch(b.plan, b.units) for b in batches], started)


def _raw_urls(source: Path) -> dict[str, str]:
    """For a staging folder made from a landing zone whose raw copies are in a bucket (a warehouse in a bucket): each
    file's path relative to the folder -> its raw copy's URL (workers on other machines read those, not the folder)."""
    try:
        raw = json.loads((source / LANDING_MANIFEST).read_text(encoding="utf-8")).get("raw") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {rel: url for rel, url in raw.items() if isinstance(url, str) and is_remote(url)}


def _fetch_for(fetch: dict[str, str], source: Path, root: Path) -> tuple[tuple[str, str], ...]:
    """The raw copies a force's task reads: the files of its folder and the source's shared reference folder."""
    if not fetch:
        return ()
    mine = root.relative_to(source).as_posix()
    return tuple(sorted((rel, url) for rel, url in fetch.items() if mine == "." or rel.startswith(f"{mine}/") or rel.startswith("reference/")))


def _result(s: StagedResult, contract: Any, stage: Staging) -> ExtractResult:
    def staged(path: str, rows: int) -> pl.DataFrame:
        return cast(pl.DataFrame, staging.StagedFrame(pl.scan_parquet(path, storage_options=stage.storage_options), rows, (stage,)))

    clean, quarantine = staged(s.clean, s.clean_rows), staged(s.quarantine, s.quarantine_rows)
    return ExtractResult(contract, s.source_file, s.sha256, s.encoding, s.month, s.force_id, s.rows_in, clean, quarantine, s.checks)


def load_batch(plan: SourcePlan, wh: Warehouse, run_units: RunUnits, compute: bool = True) -> list[MonthReport]:
    """`stages.load_batch` with reading and validation on Dask; the staged rows removed afterwards."""
    stage = staging.shared_stage("dask")
    try:
        return stages.load_batch(plan, wh, compute, lambda batch, held: validate_on_workers([batch], held, run_units, stage)[0])
    finally:
        stage.close()


def load_source_month(
    source: str | Path, month: str, warehouse: str | Path, run_units: RunUnits, *, force_id: str | None = None, compute: bool = True
) -> list[MonthReport]:
    """`etl.loading.load.load_source_month` with reading and validation on Dask."""
    return load_batch(plan_source_month(source, month, force_id), Warehouse(warehouse), run_units, compute)


def folder_loader(run_units: RunUnits) -> Callable[..., list[MonthReport]]:
    """`load_source_month` on ``run_units`` as a landing's ``load`` (`etl.loading.landing.load_landed`): a landed
    month's forces read and validated on Dask (from the raw area when it is in a bucket)."""

    def load(folder: str | Path, month: str, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True) -> list[MonthReport]:
        return load_source_month(folder, month, warehouse, run_units, force_id=force_id, compute=compute)

    return load


def load_months(plans: list[SourcePlan], wh: Warehouse, run_units: RunUnits) -> list[list[MonthReport]]:
    """`etl.loading.batches.load_months` with reading and validation on Dask: the months of a backfill's
    batch in one commit (no measures); anything but a month's data going wrong loads them one by one."""
    stage = staging.shared_stage("dask")
    try:
        return month_batches.load_months(plans, wh, lambda batches, held: validate_on_workers(batches, held, run_units, stage))
    finally:
        stage.close()


def backfill(
    source: str | Path,
    first: str,
    last: str,
    warehouse: str | Path,
    run_units: RunUnits,
    *,
    force_id: str | None = None,
    on_month: Callable[[MonthReport], None] | None = None,
    measures: bool = True,
) -> BackfillReport:
    """`etl.loading.backfill.backfill` of a local folder with each batch's reading and validation on Dask."""
    from etl.loading.backfill import finish_backfill, load_range

    started = time.perf_counter()
    wh = Warehouse(warehouse)
    reports = load_range(source, first, last, lambda group: load_months(group, wh, run_units), force_id=force_id, on_month=on_month)
    return finish_backfill(reports, warehouse, first, last, measures, started)


# ----------------------------------------------------------------------------------------------------
# Settings and a plain Dask client


def dask_settings(workers: int | None = None, address: str | None = None) -> tuple[int, str | None]:
    """(workers, scheduler address): the values given, else ``ETL_DASK_WORKERS`` (default 0: no Dask) and
    ``ETL_DASK_ADDRESS`` (default none: a local cluster of that many workers)."""
    if workers is None:
        text = os.environ.get(WORKERS_ENV, "").strip()
        try:
            workers = int(text) if text else 0
        except ValueError:
            raise ConfigError(f"{WORKERS_ENV} must be a whole number of Dask workers (0: no Dask)") from None
    if workers < 0:
        raise ConfigError(f"the number of Dask workers must be 0 or more ({WORKERS_ENV}, --workers)")
    if address is None:
        address = os.environ.get(ADDRESS_ENV, "").strip() or None
    return workers, address


def wanted(workers: int | None = None, address: str | None = None) -> bool:
    """Whether the settings ask for Dask (some workers, or a scheduler address)."""
    n, where = dask_settings(workers, address)
    return n > 0 or where is not None


TASKS_PER_WORKER = 2  # each worker validates a couple of groups of forces: one pass of the rules per group, a late group balanced


def partition(tasks: list[UnitTask], parts: int) -> list[list[int]]:
    """The tasks in at most ``parts`` groups of about the same bytes of files (largest first to the
    lightest group), each group in the tasks' order: one Dask task per group."""

    def size(t: UnitTask) -> int:
        total = 0
        for m in t.months:
            for _, f in m.files:
                if f:
                    try:
                        total += os.stat(f).st_size
                    except OSError:
                        pass
        return total

    parts = max(1, min(parts, len(tasks)))
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for i in sorted(range(len(tasks)), key=lambda i: -size(tasks[i])):
        k = loads.index(min(loads))
        groups[k].append(i)
        loads[k] += size(tasks[i])
    return [sorted(g) for g in groups if g]


def run_grouped(tasks: list[UnitTask], parts: int, run_groups: Callable[[list[list[UnitTask]]], list[list[list[UnitMonth]]]]) -> list[list[UnitMonth]]:
    """Outcomes per task from ``run_groups`` (one `validate_units` per group, e.g. on Dask) of `partition`'s groups."""
    groups = partition(tasks, parts)
    out: list[list[UnitMonth]] = [[] for _ in tasks]
    for group, got in zip(groups, run_groups([[tasks[i] for i in g] for g in groups])):
        for i, outcome in zip(group, got):
            out[i] = outcome
    return out


def warm_up() -> None:
    """A worker's start: the validation modules imported and the contracts loaded (cached for its tasks)."""
    from etl.core.contracts import monthly_contracts

    monthly_contracts()


def local_cluster_options(workers: int) -> dict:
    """A `distributed.LocalCluster` of worker processes, one task at a time each (dashboard on :8787, else a free port)."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "silence_logs": logging.WARNING}


@contextlib.contextmanager
def dask_client(workers: int | None = None, address: str | None = None) -> Iterator[RunUnits]:
    """A `RunUnits` on a plain `distributed` client: the scheduler at ``address`` (or ``ETL_DASK_ADDRESS``),
    else a local cluster of ``workers`` (or ``ETL_DASK_WORKERS``) worker processes, closed afterwards."""
    from distributed import Client, LocalCluster

    n, where = dask_settings(workers, address)
    with contextlib.ExitStack() as stack:
        if where is not None:
            try:
                client = stack.enter_context(Client(where, timeout="30s"))
            except OSError as exc:
                raise ConfigError(f"Dask scheduler {where}: cannot connect ({exc}); start it (dask scheduler) or unset {ADDRESS_ENV}") from None
        else:
            if n < 1:
                raise ConfigError(f"a local Dask cluster needs at least 1 worker ({WORKERS_ENV}, --workers)")
            cluster = stack.enter_context(LocalCluster(**local_cluster_options(n)))
            client = stack.enter_context(Client(cluster))

        client.run(warm_up)  # imports and contracts on every worker now, not in the first load's tasks
        workers_now = len(client.scheduler_info()["workers"]) or 1

        def run_units(tasks: list[UnitTask]) -> list[list[UnitMonth]]:
            return run_grouped(tasks, TASKS_PER_WORKER * workers_now, lambda groups: client.gather(client.map(validate_units, groups, pure=False)))

        yield run_units
