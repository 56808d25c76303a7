"""Several months of a source loaded in one commit: how a backfill loads a force's months in batches.

Loading a small force month by month pays a warehouse commit, a pass of the contract rules and a read
of the reference files for each month, whatever its size: a ten-year backfill of one force made 120
commits. `load_months` takes the plans of consecutive months (each a `SourcePlan`, as `load_batch`
loads it) and, holding the warehouse once:

* reads every file of every month in one pool of threads and validates each contract's files of all
  the months in one pass (each file judged alone, as always; a month's look-ups of earlier extracts see
  the months before it in the batch);
* reads the reference data once (it is the same files for every month) and records it in every month's
  run, as month-by-month loading does; a published workbook is new in the first month only;
* checks each month across months in order, seeing the months before it in the batch as loaded
  (`etl.core.key_index.Pending`) - continuity, repeated references, volumes, reconciliation: the same
  verdicts as loading the months one by one;
* commits every month in one commit (one write per table, an audit run per force-month).

A month whose files fail is reported (outcome ``failed``) and the others are loaded, as month by month;
the commit is all or nothing. Anything else going wrong (not a month's data) makes the batch load its
months one by one instead, so a month that can be loaded is never lost because another could not.

`batch_plans` groups months: at most ``ETL_BATCH_MONTHS`` months (default 24) and ``ETL_BATCH_MB`` of
files (default 64: a national month, ~60 MB, loads alone; a force's month is a few MB), the months
shared out evenly between as few batches as those limits allow.

One reason to change: how several months are loaded together.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace

import polars as pl

from etl.core import cross_month, progress, staging
from etl.core.key_index import KEY_INDEX, VOLUME_COUNTS, Pending, distinct_rows
from etl.core.warehouse import Warehouse, Write
from etl.errors import ConfigError
from etl.loading import files, stages
from etl.loading.reference import REFERENCE_EXTRACTS, References, has_own_reference
from etl.loading.results import LoadFailed, MonthReport
from etl.loading.sources import SourcePlan

log = logging.getLogger(__name__)

DEFAULT_BATCH_MONTHS = 24
DEFAULT_BATCH_MB = 64.0


def _setting(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number (it is set to something else)") from None
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0")
    return value


def plan_bytes(plan: SourcePlan) -> int:
    """The size of a plan's files (0 for a file that cannot be looked at: reading it will say why)."""
    total = 0
    for unit in plan.units:
        for _, path in unit.files:
            if path is not None:
                try:
                    total += path.stat().st_size
                except OSError:
                    pass
    return total


def batch_plans(plans: list[SourcePlan]) -> list[list[SourcePlan]]:
    """Consecutive plans grouped into batches of at most ETL_BATCH_MONTHS months and ETL_BATCH_MB of files
    (a plan bigger than that is a batch of its own), each run of plans of one source on its own, as even as
    those limits allow: as many batches as filling each in turn takes, but of months shared out evenly (24 + 1
    months become 13 + 12). A month loaded alone pays a whole commit and a read of the reference data, but no
    speed difference was measured in the ten-year backfill (5 x 24 + 1 against 6 x 20): even batches are
    kept because no batch is then a straggler."""
    months = int(_setting("ETL_BATCH_MONTHS", DEFAULT_BATCH_MONTHS))
    budget = _setting("ETL_BATCH_MB", DEFAULT_BATCH_MB) * 1e6
    out: list[list[SourcePlan]] = []
    for _, run in itertools.groupby(zip(plans, map(plan_bytes, plans), strict=True), key=lambda ps: ps[0].source):
        source_plans, sizes = map(list, zip(*run, strict=True))
        out += _even(source_plans, sizes, months, budget)
    return out


def _filled(sizes: list[int], months: int, budget: float) -> list[int]:
    """The batch lengths of filling each batch in turn up to the limits."""
    lengths: list[int] = []
    size = 0.0
    for n in sizes:
        if lengths and lengths[-1] < months and size + n <= budget:
            lengths[-1] += 1
            size += n
        else:
            lengths.append(1)
            size = n
    return lengths


def _bounds(lengths: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each of consecutive runs of ``lengths``."""
    at = [0, *itertools.accumulate(lengths)]
    return list(itertools.pairwise(at))


def _even(plans: list[SourcePlan], sizes: list[int], months: int, budget: float) -> list[list[SourcePlan]]:
    filled = _filled(sizes, months, budget)
    k, n = len(filled), len(plans)
    even = [n // k + (1 if i < n % k else 0) for i in range(k)]  # never longer than `months`: k >= n / months
    lengths = filled
    if even != filled and all(sum(sizes[a:b]) <= budget or b - a == 1 for a, b in _bounds(even)):
        lengths = even
    return [plans[a:b] for a, b in _bounds(lengths)]


ReadAndValidate = Callable[[list[stages.Batch], Warehouse], list[stages.ValidatedBatch]]


def read_and_validate(batches: list[stages.Batch], wh: Warehouse) -> list[stages.ValidatedBatch]:
    """The batches' files read and validated in this process (`etl.loading.parallel` does it on Dask workers)."""
    return stages.validate_batches(stages.read_batches(batches), wh)


def load_months(plans: list[SourcePlan], wh: Warehouse, read_validate: ReadAndValidate = read_and_validate) -> list[list[MonthReport]]:
    """Load the plans' months (consecutive, in order) in one commit; a list of reports per plan. No measures
    (the backfill refreshes them once at the end). See the module docstring. ``read_validate``: how the
    months' files are read and validated (here, or on Dask workers)."""
    if len(plans) == 1:
        return [_one(plans[0], wh, read_validate)]
    try:
        return _load_together(plans, wh, read_validate)
    except LoadFailed:
        raise
    except Exception as exc:  # not a month's data: load the months one by one (each all or nothing)
        log.warning("batch of %d months (%s..%s) not loaded together (%s); loading them one by one", len(plans), plans[0].month, plans[-1].month, exc)
        return [_one(p, wh, read_validate) for p in plans]


def _one(plan: SourcePlan, wh: Warehouse, read_validate: ReadAndValidate = read_and_validate) -> list[MonthReport]:
    try:
        return stages.load_batch(plan, wh, compute=False, read_and_validate=lambda batch, held: read_validate([batch], held)[0])
    except LoadFailed as exc:
        return [MonthReport(month=str(plan.month), outcome="failed", message=exc.message)]


def _failed(batch: stages.Batch, u: stages.ForceMonth) -> MonthReport:
    if batch.plan.single:  # a lone force folder's failure, as `load_batch` raises it and the backfill reports it
        return MonthReport(month=batch.month, outcome="failed", message=u.failure.message)  # type: ignore[union-attr]
    return stages.failed_report(u, batch.month)


def _load_together(plans: list[SourcePlan], wh: Warehouse, read_validate: ReadAndValidate = read_and_validate) -> list[list[MonthReport]]:
    batches = [stages.start(p) for p in plans]
    waiting = time.perf_counter()
    with wh.run():
        log.info(
            "runs of %d months %s..%s: warehouse %s held after %.2f s", len(plans), plans[0].month, plans[-1].month, wh.root, time.perf_counter() - waiting
        )
        validated = _references(read_validate(batches, wh), wh)
        pending = Pending()
        cross_month.count_ahead(pending, [(u.force, v.month, r) for v in validated for u in v.live for r in u.results])  # type: ignore[misc]
        checked: list[stages.CheckedBatch] = []
        for v in validated:
            if not v.live:
                continue
            c = stages.check_across_months(v, wh, pending)
            pending.published += [frame for frame, _ in c.published]
            for u in c.live:
                for r in u.results:
                    pending.add(r.contract.extract, u.force, c.month, r.clean)  # type: ignore[arg-type]
            checked.append(c)
        if not checked:
            log.info("runs of %s..%s: every force-month failed; nothing written", plans[0].month, plans[-1].month)
            return [[_failed(b, u) for u in b.units] for b in batches]
        writes = [stages.build_writes(c, wh) for c in checked]
        merged = _merge([w.writes for w in writes])
        runs = [r for w in writes for r in w.runs]
        checks = pl.concat([w.checks for w in writes])
        live = [u for c in checked for u in c.live]
        month = f"{checked[0].month}..{checked[-1].month}"
        progress.emit("before_commit", run_ids=[u.run_id for u in live], month=month)
        started = time.perf_counter()
        files.start_reading_ahead()  # a backfill's next batch read while this one is written (`files.reading_ahead`)
        with progress.stage("write", rows=sum(w.frame.height for w in merged)):
            wh.commit(",".join(u.run_id for u in live), merged, runs, checks)
        log.info("runs of %s: %d force-month(s) of %d month(s) committed in %.2f s", month, len(live), len(checked), time.perf_counter() - started)
    loaded = {u.run_id: stages._loaded_report(u, run, c.month) for c, w in zip(checked, writes) for u, run in zip(c.live, w.runs)}
    return [[loaded[u.run_id] if u.run_id in loaded else _failed(b, u) for u in b.units] for b in batches]


def _references(validated: list[stages.ValidatedBatch], wh: Warehouse) -> list[stages.ValidatedBatch]:
    """Reference data read once for the batch: the first month with force-months still in reads it (as
    `stages.validate_references`), the later months record the same results - but not a published workbook,
    which the first month loads. Force folders with their own reference/ folder, or a reference file
    that fails, make every month read its own."""
    out: list[stages.ValidatedBatch] = []
    first: stages.ValidatedBatch | None = None
    for v in validated:
        own = any(u.planned.root != v.source and has_own_reference(u.planned.root) for u in v.live)
        if first is None or own or not v.live:
            done = stages.validate_references(v, wh)
            if first is None and done.live and not own and not any(u.failure for u in done.units if u in v.live):
                first = done
            out.append(done)
            continue
        out.append(replace(v, shared=References(list(first.shared.results), [])))
    return out


def _overlapping(writes: list[Write]) -> bool:
    """Whether two of an index table's writes hold rows of the same (indexed column or extract, force, month):
    each write's rows are distinct, so only then can the merged rows repeat."""
    parts = [c for c in writes[0].frame.columns if c in ("indexed", "extract")] + ["force_id", "month"]
    each = [distinct_rows(w.frame, parts) for w in writes]
    return pl.concat(each).unique().height < sum(e.height for e in each)


def _merge(groups: list[list[Write]]) -> list[Write]:
    """The writes of several months as one write per table: rows together, replacing what each replaced
    (a reference table, the same rows every month, is written once, as the last month has it)."""
    by_table: dict[str, list[Write]] = {}
    for writes in groups:
        for w in writes:
            by_table.setdefault(w.table, []).append(w)
    out = []
    for table, writes in by_table.items():
        if table in REFERENCE_EXTRACTS or len(writes) == 1:
            out.append(writes[-1])
            continue
        if any(w.replace is None for w in writes):
            replaced = None
        else:
            replaced = " OR ".join(f"({w.replace})" for w in writes)
        frame = staging.concat([w.frame for w in writes])
        if table in (KEY_INDEX, VOLUME_COUNTS) and _overlapping(writes):
            frame = frame.unique()  # a force-month indexed again from the curated table by two months' look-ups
        out.append(Write(table, frame, replaced, writes[0].partition_by))
    return out
