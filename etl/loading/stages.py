"""The batch load of one month as named stages, each taking the previous stage's output.

A batch is one month of one or more forces (a `SourcePlan` from `etl.loading.sources`), committed in
one warehouse commit: one write per table, one audit run per force-month. `load_batch` runs, holding
the warehouse from its first read to its commit (`Warehouse.run`):

    start                 Batch           a run id per force-month (before waiting for the warehouse)
    read_files            ReadBatch       areas lists, required files present, every file read
    validate              ValidatedBatch  each contract's files validated together; force told by the rows
    validate_references   ValidatedBatch  + reference extracts and new published workbooks
    check_across_months   CheckedBatch    the contracts' checks against months already loaded (their indexes)
    build_writes          Writes          curated rows, quarantine, reference data, indexes, audit rows
    compute_measures      Writes          + measures and control charts (unless told not to)
    commit                [MonthReport]   one commit; a report per force-month

Several months of a source go through the same stages together in `etl.loading.batches` (the backfill):
`read_batches`, `validate_batches`, then each month's checks in order, one commit.

A force-month whose files fail is failed (its first failure kept) and nothing of it is written; the
others go on. A lone force folder (`SourcePlan.single`) raises its failure as `LoadFailed` instead.

One reason to change: what the batch load does, and in which order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from etl.core import audit, cross_month, progress, staging
from etl.core.contracts import Contract
from etl.core.extracts import RawExtract
from etl.core.key_index import Pending
from etl.core.published import PublishedError
from etl.core.validation import (
    CheckResult,
    ExtractInput,
    ExtractResult,
    FileFailure,
    ValidationContext,
    curated_schema,
    validate_extracts,
)
from etl.core.warehouse import Warehouse, Write, predicate, sql_literal
from etl.loading import files
from etl.loading.measuring import (
    definition_versions,
    loaded_months,
    measure_writes,
    tables_with_month,
)
from etl.loading.reference import (
    REFERENCE_EXTRACTS,
    References,
    has_own_areas,
    has_own_reference,
    read_areas,
    read_references,
    reference_after,
    reference_rows,
    reference_writes,
)
from etl.loading.results import LoadFailed, MonthReport
from etl.loading.sources import ForceFiles, SourcePlan, shown

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# What moves through the stages


@dataclass
class ForceMonth:
    """One force-month of a batch on its way through the stages. Once failed it stays failed (the
    first failure is kept) and the later stages pass it by."""

    planned: ForceFiles
    force: str | None  # as planned, else told by its rows at `validate`
    run_id: str = field(default_factory=lambda: audit.new_run_id("load"))
    started: dt.datetime = field(default_factory=audit.utcnow)
    failure: LoadFailed | None = None
    # read_files
    areas: dict[str, list[str]] | None = None  # force_id -> npu list from reference/areas.csv
    absent: list[Contract] = field(default_factory=list)  # optional extracts the month does not have
    raws: dict[str, RawExtract | FileFailure] = field(default_factory=dict)  # extract -> the file as read
    # validate (checks across months are added to each result's checks)
    results: list[ExtractResult] = field(default_factory=list)
    # validate_references: the force folder's own reference/ (SOURCE/reference is the batch's)
    references: References = field(default_factory=References)

    def fail(self, month: str, exc: FileFailure | PublishedError | LoadFailed) -> None:
        if self.failure is not None:
            return
        if isinstance(exc, FileFailure):
            self.failure = LoadFailed(month, f"{exc.path}: {exc.message}", exc.rule)
        elif isinstance(exc, PublishedError):
            self.failure = LoadFailed(month, str(exc), "published_statistics")
        else:
            self.failure = exc

    def absent_message(self, month: str) -> str | None:
        return "; ".join(f"no {self.file_name_of(c, month)} for {month}" for c in self.absent) or None

    def file_name_of(self, contract: Contract, month: str) -> str:
        """The file a contract expects for this force-month (data.police.uk names hold the month and force)."""
        return contract.file_name.replace("{month}", month).replace("{force}", self.force or "the force")


@dataclass
class Batch:
    """The force-months of a plan, each with its run id."""

    plan: SourcePlan
    units: list[ForceMonth]

    @property
    def source(self) -> Path:
        return self.plan.source

    @property
    def month(self) -> str:
        return str(self.plan.month)

    @property
    def contracts(self) -> list[Contract]:
        return self.plan.units[0].contracts

    @property
    def live(self) -> list[ForceMonth]:
        return [u for u in self.units if not u.failure]

    def label(self, u: ForceMonth) -> str:
        """A force-month's name in the logs: its folder in a folder of force folders, else its force."""
        root = u.planned.root
        return shown(root, self.source) if root != self.source else u.force or root.name

    @property
    def key(self) -> str:
        """The batch's name in the logs: its first run id (the warehouse logs the commit under it too)."""
        more = f" (+{len(self.units) - 1})" if len(self.units) > 1 else ""
        return f"{self.units[0].run_id}{more} {self.month}"


@dataclass
class ReadBatch(Batch):
    """After `read_files`: every force-month still in has its areas list and its files read."""


@dataclass
class ValidatedBatch(Batch):
    """After `validate` (results per force-month) and `validate_references` (``shared``: the reference
    data of SOURCE/reference, recorded in the first force-month's run)."""

    shared: References = field(default_factory=References)


@dataclass
class CheckedBatch(ValidatedBatch):
    """After `check_across_months`: only force-months that passed go on, with what the writes need."""

    previous: pl.DataFrame = field(default_factory=pl.DataFrame)  # months already loaded of the batch's forces
    all_published: pl.DataFrame | None = None  # published statistics, committed and new
    history: cross_month.History = field(default_factory=cross_month.History)  # what the checks read (and indexed again)

    @property
    def forces(self) -> list[str]:
        return [u.force for u in self.live]  # type: ignore[misc]

    @property
    def first(self) -> ForceMonth:
        return self.live[0]

    def recorded(self, u: ForceMonth) -> References:
        """The reference data recorded in a force-month's run: the first also records SOURCE/reference."""
        return self.shared + u.references if u is self.first else u.references

    @property
    def references(self) -> list[ExtractResult]:
        """Every reference extract of the batch: SOURCE/reference first, then the force folders' own."""
        return self.shared.results + [r for u in self.live for r in u.references.results]

    @property
    def published(self) -> list[tuple[pl.DataFrame, dict]]:
        return [p for u in self.live for p in self.recorded(u).published]


@dataclass
class Writes:
    """Everything the commit writes: table writes in order, and the audit rows."""

    writes: list[Write]
    runs: list[dict]  # one audit_runs row per force-month, in the batch's order
    checks: pl.DataFrame
    curated: dict[str, pl.DataFrame]  # extract -> the batch's curated rows (also what the measures see)
    references: dict[str, pl.DataFrame | None]  # reference extract -> the rows this batch writes


# ----------------------------------------------------------------------------------------------------
# The stages, in order


def load_batch(
    plan: SourcePlan, wh: Warehouse, compute: bool = True, read_and_validate: Callable[[Batch, Warehouse], ValidatedBatch] | None = None
) -> list[MonthReport]:
    """Load the plan's force-months in one commit and report on each (in the plan's order).
    Raises `LoadFailed` when a lone force folder's files fail (nothing written). ``read_and_validate``:
    in place of `read_files` then `validate` (`etl.loading.parallel`: on Dask workers)."""
    batch = start(plan)
    waiting = time.perf_counter()
    with wh.run():
        log.info("run %s: warehouse %s held after %.2f s (lock wait and any recovery)", batch.key, wh.root, time.perf_counter() - waiting)
        validated = validate_references(read_and_validate(batch, wh) if read_and_validate else validate(read_files(batch), wh), wh)
        if plan.single and validated.units[0].failure:
            log.info("run %s: %s; nothing written", batch.key, _failures(validated))
            raise validated.units[0].failure
        if not validated.live:
            log.info("run %s: every force-month failed; nothing written", batch.key)
            return [failed_report(u, batch.month) for u in batch.units]
        checked = check_across_months(validated, wh)
        writes = build_writes(checked, wh)
        if compute:
            writes = compute_measures(checked, writes, wh)
        return commit(checked, writes, wh)


def start(plan: SourcePlan) -> Batch:
    batch = Batch(plan, [ForceMonth(p, p.force) for p in plan.units])
    log.info(
        "batch %s %s: %d force-month(s), runs %s", plan.source, batch.month, len(batch.units), ", ".join(f"{u.run_id} ({batch.label(u)})" for u in batch.units)
    )
    return batch


def read_files(batch: Batch) -> ReadBatch:
    """Each force-month's areas list (its own reference/areas.csv, else SOURCE's) and required files
    present, then every file of the batch read in one pool of threads."""
    return read_batches([batch])[0]


def read_batches(batches: list[Batch]) -> list[ReadBatch]:
    """`read_files` for the batches of several months of one source (`etl.loading.batches`): every file of
    all of them read in one pool of threads."""
    started = time.perf_counter()
    todo: list[tuple[Batch, ForceMonth, Contract, Path]] = []
    for batch in batches:
        source, month = batch.source, batch.month
        try:
            shared_areas, shared_failure = read_areas(source), None
        except FileFailure as exc:
            shared_areas, shared_failure = None, exc
        for u in batch.units:
            try:
                u.areas = _areas_of(u, source, shared_areas, shared_failure)
                u.absent = _absent_extracts(u, source, month)
            except FileFailure as exc:
                u.fail(month, exc)
        todo += [(batch, u, c, path) for u in batch.units if not u.failure for c, path in u.planned.files if path is not None]
    with progress.stage("read", files=len(todo)):
        raws = files.read_files([p for *_, p in todo], batches[0].source)
    for (_, u, c, _), raw in zip(todo, raws):
        u.raws[c.extract] = raw
    for batch in batches:
        mine = [raw for (b, *_), raw in zip(todo, raws) if b is batch]
        unreadable = sum(isinstance(r, FileFailure) for r in mine)
        rows = sum(r.rows_in for r in mine if isinstance(r, RawExtract))
        _log_stage(batch, "read", started, f"{len(mine)} file(s), {rows} row(s), {unreadable} unreadable")
    return [ReadBatch(batch.plan, batch.units) for batch in batches]


def validate(read: ReadBatch, wh: Warehouse) -> ValidatedBatch:
    """Each contract's files of the batch validated in one pass (contracts in order: recorded crime
    first, as the others look crimes up); a force-month's force is told by its rows when not given.
    Two force-months of one force fail the later one."""
    return validate_batches([read], wh)[0]


def validate_batches(reads: list[ReadBatch], wh: Warehouse) -> list[ValidatedBatch]:
    """`validate` for the batches of several months of one source (`etl.loading.batches`), each contract's
    files of all the months in one pass; a month's look-ups see the months before it (as loaded)."""
    started = time.perf_counter()
    for contract in reads[0].contracts:
        _validate_contract(reads, contract, wh)
    return validated_batches(reads, started)


def validated_batches(reads: list[ReadBatch], started: float) -> list[ValidatedBatch]:
    """The batches once every force-month has its results (validated here, or on Dask workers by
    `etl.loading.parallel`): two force-months of one force refused, the stage logged."""
    for read in reads:
        for u in read.units:
            u.raws = {}  # validated: the text as read is no longer needed
        _refuse_repeated_forces(read)
        results = [r for u in read.live for r in u.results]
        _log_stage(
            read,
            "validate",
            started,
            f"{len(results)} file(s), {sum(r.rows_loaded for r in results)} row(s) passed, "
            f"{sum(r.rows_quarantined for r in results)} quarantined, {_failures(read)}",
        )
    return [ValidatedBatch(read.plan, read.units) for read in reads]


def validate_references(batch: ValidatedBatch, wh: Warehouse) -> ValidatedBatch:
    """Reference data (population, external statistics, published workbooks) from SOURCE/reference/
    and, in a folder of force folders, from each force's own reference/ (recorded in that force's run;
    for a force both cover, the force's own file wins). A failing SOURCE/reference fails every force."""
    live = batch.live
    if not live:
        return batch
    started = time.perf_counter()
    owners: list[ForceMonth | None] = [None] + [u for u in live if u.planned.root != batch.source and has_own_reference(u.planned.root)]
    found = _read_references([batch.source if o is None else o.planned.root for o in owners], batch.source, wh)
    shared = References()
    for owner, got in zip(owners, found):
        if not isinstance(got, References):
            for u in [owner] if owner else live:
                u.fail(batch.month, got)
        elif owner is None:
            shared = got
        else:
            owner.references = got
    offered = [got for got in found if isinstance(got, References)]
    _log_stage(
        batch,
        "validate_references",
        started,
        f"{len(owners)} folder(s), {sum(len(r.results) for r in offered)} extract file(s), "
        f"{sum(len(r.published) for r in offered)} new workbook(s), {_failures(batch)}",
    )
    return replace(batch, shared=shared)


# The reference files of the last batch, by content: a later month of the same source whose reference files are
# byte for byte the same (and that offers no published workbook, whose novelty depends on the warehouse) reuses
# their validation - the same results - instead of reading and validating them again (43 force folders: ~12 MB a month).
_REFERENCES_SEEN: dict[tuple, list] = {}


def _reference_fingerprint(roots: list[Path], source: Path) -> tuple | None:
    """sha256 of every reference file the roots offer, or None when one is not a plain file or a root has a
    published workbook folder (then the references are read as usual)."""
    from etl.core.contracts import load_contract
    from etl.loading.sources import PUBLISHED_FOLDER, present

    parts: list[object] = [str(source)]
    for root in roots:
        if (root / PUBLISHED_FOLDER).exists():
            return None
        found = []
        for name in REFERENCE_EXTRACTS:
            path = root / load_contract(name).file_name
            if not present(path):
                continue
            if path.is_symlink() or not path.is_file():
                return None
            try:
                found.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
            except OSError:
                return None
        parts.append((str(root), tuple(found)))
    return tuple(parts)


def _read_references(roots: list[Path], source: Path, wh: Warehouse) -> list:
    """`read_references`, reusing the last batch's results when its reference files are the same bytes."""
    key = _reference_fingerprint(roots, source)
    if key is not None and key in _REFERENCES_SEEN:
        return _REFERENCES_SEEN[key]
    found = read_references(roots, source, wh)
    if key is not None:
        _REFERENCES_SEEN.clear()
        _REFERENCES_SEEN[key] = found
    return found


def check_across_months(batch: ValidatedBatch, wh: Warehouse, pending: Pending | None = None) -> CheckedBatch:
    """The contracts' checks across months (against the months already loaded of each force and the
    published statistics), added to each extract result's checks. ``pending``: months earlier in a
    multi-month batch (`etl.loading.batches`), seen as loaded."""
    started = time.perf_counter()
    checked = CheckedBatch(batch.plan, batch.units, batch.shared)
    month, live = checked.month, checked.live
    # What the committed tables say is the same for every month of a multi-month batch (it holds the warehouse until
    # its one commit): read and arranged once, kept in ``pending.memo``.
    memo = pending.memo if pending is not None else {}
    at = ("loaded months", tuple(checked.forces))
    if at not in memo:
        previous = loaded_months(wh).filter(pl.col("force_id").is_in(checked.forces))
        by_force: dict[tuple[str, str], set[str]] = {}
        for f, m, e in previous.select("force_id", "month", "extract").iter_rows():
            by_force.setdefault((f, e), set()).add(m)
        memo[at] = (previous, by_force)
    checked.previous, committed = memo[at]
    earlier = pending.published if pending else []  # workbooks months before this one in the batch load
    pub_parts = [p for p in [wh.read_small("published_statistics"), *earlier, *[f for f, _ in checked.published]] if p is not None]
    seen = ("published", *(id(p) for p in pub_parts))
    if seen not in memo or any(a is not b for a, b in zip(memo[seen][0], pub_parts)):
        memo[seen] = (pub_parts, pl.concat(pub_parts).unique() if pub_parts else None)
    checked.all_published = memo[seen][1]
    failing = 0
    with progress.stage("cross_month", files=sum(len(u.results) for u in live)):
        history = cross_month.prefetch(wh, month, [(u.force, r) for u in live for r in u.results], checked.previous, pending)  # type: ignore[misc]
        checked.history = history
        for u in live:
            for r in u.results:
                extract = r.contract.extract
                batch_months = {m for e, f, m in pending.clean if f == u.force and e == extract} if pending else set()
                loaded = sorted((committed.get((u.force, extract), set()) | batch_months) - {month})
                added = cross_month.run_checks(r, wh, u.force, month, loaded, u.results, checked.all_published, history)  # type: ignore[arg-type]
                r.checks.extend(added)
                failing += sum(c.passed is False for c in added)
    _log_stage(
        checked,
        "check_across_months",
        started,
        f"{sum(len(u.results) for u in live)} file(s), {checked.previous.height} loaded extract-month(s) compared, {failing} check(s) not passed",
    )
    return checked


def build_writes(batch: CheckedBatch, wh: Warehouse) -> Writes:
    """One write per table for the whole batch (every batch force's month is replaced), and the audit rows."""
    started = time.perf_counter()
    month, live, forces = batch.month, batch.live, batch.forces
    month_filter = _force_months(forces, month)
    writes, curated = [], {}
    for contract in batch.contracts:
        frames = [_curated(r.clean, r.contract, u.force) for u in live for r in u.results if r.contract.extract == contract.extract]  # type: ignore[arg-type]
        if frames:
            curated[contract.extract] = staging.concat(frames)  # a file read in chunks stays on disk
            writes.append(Write(contract.extract, curated[contract.extract], month_filter))
        elif wh.has_table(contract.extract):
            writes.append(Write(contract.extract, pl.DataFrame(schema=curated_schema(contract)), month_filter))
    quarantined = [
        r.quarantine.with_columns(pl.lit(u.run_id).alias("run_id"), pl.lit(u.force).alias("force_id"), pl.lit(month).alias("month"))
        for u in live
        for r in u.results + batch.recorded(u).results
    ]
    writes.append(Write("quarantine", staging.concat(quarantined), month_filter))
    for frame, entry in batch.published:
        writes.append(Write("published_statistics", frame, predicate(source_sha256=entry["sha256"])))
    references = {name: reference_rows(batch.references, name) for name in REFERENCE_EXTRACTS}
    writes += reference_writes(references, wh)
    writes += cross_month.index_writes(wh, batch.contracts, [(u.force, month, r) for u in live for r in u.results], [batch.history], curated)  # type: ignore[misc]

    versions = definition_versions()
    checks, runs = [], []
    for u in live:
        recorded = batch.recorded(u)
        results = u.results + recorded.results
        extra_checks = [
            (c.extract, CheckResult("file.present", None, f"{_month_file(c.file_name, month, u.file_name_of(c, month))} is present", "warning", False, 0, 0))
            for c in u.absent
        ]
        checks.append(audit.checks_frame(u.run_id, u.force, month, results, extra_checks))
        runs.append(
            audit.run_row(
                u.run_id, "load", u.force, month, u.started, results, versions, u.absent_message(month), [e for _, e in recorded.published], batch.source
            )
        )
    out = Writes(writes, runs, pl.concat(checks), curated, references)
    _log_stage(batch, "build_writes", started, f"{len(writes)} table write(s), {sum(w.frame.height for w in writes)} row(s), {len(runs)} audit run(s)")
    return out


def compute_measures(batch: CheckedBatch, writes: Writes, wh: Warehouse) -> Writes:
    """The batch forces' measures and control charts, from the tables as they will be after the commit."""
    started = time.perf_counter()
    month, live, forces = batch.month, batch.live, batch.forces
    tables = tables_with_month(wh, writes.curated, forces, month, writes.references)
    new = pl.DataFrame(
        [(u.force, month, r.contract.extract) for u in live for r in u.results],
        schema={"force_id": pl.Utf8, "month": pl.Utf8, "extract": pl.Utf8},
        orient="row",
    )
    absent = pl.DataFrame([(u.force, c.extract) for u in live for c in u.absent], schema={"force_id": pl.Utf8, "extract": pl.Utf8}, orient="row")
    kept = batch.previous.join(absent.with_columns(pl.lit(month).alias("month")), on=["force_id", "month", "extract"], how="anti")
    loaded = pl.concat([kept, new]).unique()
    population, external = (reference_after(wh, name, writes.references[name]) for name in ("population", "external_statistics"))
    measures = measure_writes(
        tables, loaded, population, run_id=batch.first.run_id, published=batch.all_published, external=external, replace=_in_forces(forces)
    )
    _log_stage(
        batch, "compute_measures", started, f"{len(forces)} force(s), {loaded.height} loaded extract-month(s), {measures[0].frame.height} measure row(s)"
    )
    return replace(writes, writes=writes.writes + measures)


def commit(batch: CheckedBatch, writes: Writes, wh: Warehouse) -> list[MonthReport]:
    """Everything in one warehouse commit; a report per force-month of the batch, in its order."""
    started = time.perf_counter()
    month, live = batch.month, batch.live
    progress.emit("before_commit", run_ids=[u.run_id for u in live], month=month)
    files.start_reading_ahead()  # a backfill's next batch read while this one is written (`files.reading_ahead`)
    with progress.stage("write", rows=sum(w.frame.height for w in writes.writes)):
        wh.commit(",".join(u.run_id for u in live), writes.writes, writes.runs, writes.checks)
    loaded = {u.run_id: _loaded_report(u, run, month) for u, run in zip(live, writes.runs)}
    _log_stage(batch, "commit", started, f"{len(live)} force-month(s) loaded ({', '.join(batch.forces)}), {_failures(batch)}")
    return [loaded[u.run_id] if u.run_id in loaded else failed_report(u, month) for u in batch.units]


# ----------------------------------------------------------------------------------------------------
# Helpers of the stages


def _areas_of(u: ForceMonth, source: Path, shared: dict[str, list[str]] | None, shared_failure: FileFailure | None) -> dict[str, list[str]] | None:
    """A force folder's own reference/areas.csv, else SOURCE's (whose failure is the force's)."""
    root = u.planned.root
    if root != source and has_own_areas(root):
        return read_areas(root, source)
    if shared_failure is not None:
        raise shared_failure
    return shared


def _absent_extracts(u: ForceMonth, source: Path, month: str) -> list[Contract]:
    """The optional extracts the force-month does not have; raises `FileFailure` when it has none, or lacks a required one."""
    root, planned = u.planned.root, u.planned.files
    if all(path is None for _, path in planned):
        raise FileFailure(shown(root / month, source), "file.present", "holds none of the extracts the contracts describe")
    for contract, path in planned:
        if path is None and not contract.optional:
            raise FileFailure(
                shown(root / month / contract.file_name, source), "file.present", f"is missing; the {contract.extract} extract is required every month"
            )
    return [c for c, path in planned if path is None]


def _validate_contract(reads: list[ReadBatch], contract: Contract, wh: Warehouse) -> None:
    """Every force-month's file of one contract (in the batches of one or more months) validated together;
    a result joins its force-month's results."""
    inputs, owners = [], []
    for k, read in enumerate(reads):
        source, month = read.source, read.month
        for u in read.units:
            path = u.planned.path_of(contract.extract)
            if u.failure or path is None:
                continue
            raw = u.raws[contract.extract]
            if isinstance(raw, FileFailure):
                u.fail(month, raw)
                continue
            before = [(e.month, e.results) for e in _earlier(reads[:k], u.force)]
            lookups = {r.args["lookup"]: _lookup(wh, u.force, r.args, u.results, before) for r in contract.rules if r.kind == "not_before_lookup" and u.force}
            ctx = ValidationContext(month=read.plan.month, force_id=u.force, areas=u.areas if contract.extract == "recorded_crime" else None, lookups=lookups)
            inputs.append(ExtractInput(raw, ctx, shown(path, source)))
            owners.append((month, u))
    if not inputs:
        return
    with progress.stage("validate", extract=contract.extract, rows=sum(i.raw.rows_in for i in inputs), files=len(inputs)):
        outcomes = validate_extracts(contract, inputs, spill=True)
    for (month, u), outcome in zip(owners, outcomes):
        if isinstance(outcome, FileFailure):
            u.fail(month, outcome)
            continue
        u.force = u.force or outcome.force_id
        if not u.force:
            u.fail(month, FileFailure(outcome.source_file, "force_id.required", "has no force_id on any row; cannot tell which force it belongs to"))
            continue
        u.results.append(outcome)


def _refuse_repeated_forces(batch: Batch) -> None:
    """Two force-months of one force: the later one (in the plan's order) fails."""
    seen: dict[str, ForceMonth] = {}
    for u in batch.live:
        if u.force in seen:
            first = seen[u.force]
            u.fail(
                batch.month,
                LoadFailed(
                    batch.month,
                    f"{shown(u.planned.root, batch.source)} and {shown(first.planned.root, batch.source)} both hold {u.force}'s {batch.month}; keep one",
                    "duplicate_force",
                ),
            )
        else:
            seen[u.force] = u  # type: ignore[index]


def failed_report(u: ForceMonth, month: str) -> MonthReport:
    return MonthReport(month=month, outcome="failed", force_id=u.force, message=u.failure.message)  # type: ignore[union-attr]


def _loaded_report(u: ForceMonth, run: dict, month: str) -> MonthReport:
    return MonthReport(
        month=month,
        outcome="loaded",
        run_id=u.run_id,
        force_id=u.force,
        rows_in=run["rows_in"],
        rows_loaded=run["rows_loaded"],
        rows_quarantined=run["rows_quarantined"],
        message=u.absent_message(month),
        files=json.loads(run["source_files"]),
        warnings=[f"{r.contract.extract}: {c.detail}" for r in u.results for c in r.checks if c.severity == "warning" and c.passed is False and c.detail],
    )


def _failures(batch: Batch) -> str:
    """How many force-months failed so far and by which rules (never a value)."""
    failed = [u for u in batch.units if u.failure]
    if not failed:
        return "0 failed"
    return f"{len(failed)} failed (" + ", ".join(f"{batch.label(u)}: {u.failure.rule}" for u in failed) + ")"  # type: ignore[union-attr]


def _log_stage(batch: Batch, stage: str, started: float, counts: str) -> None:
    log.info("run %s %s: %s, %.2f s", batch.key, stage, counts, time.perf_counter() - started)


def _force_months(forces: list[str], month: str) -> str:
    """Delta predicate for the given forces' rows of one month."""
    if len(forces) == 1:
        return predicate(force_id=forces[0], month=month)
    return f"month = {sql_literal(month)} AND force_id IN ({', '.join(sql_literal(f) for f in forces)})"


def _in_forces(forces: list[str]) -> str:
    return predicate(force_id=forces[0]) if len(forces) == 1 else "force_id IN (" + ", ".join(sql_literal(f) for f in forces) + ")"


def _curated(clean: pl.DataFrame, contract: Contract, force: str) -> pl.DataFrame:
    """The rows as stored: force_id set to the run's force, columns in the curated order."""
    schema = curated_schema(contract)
    return staging.transform(clean, lambda f: f.with_columns(pl.lit(force).alias("force_id")).select([pl.col(k).cast(t) for k, t in schema.items()]))


@dataclass
class _Earlier:
    month: str
    results: list[ExtractResult]


def _earlier(reads: list[ReadBatch], force: str | None) -> list[_Earlier]:
    """The force's force-months (still in) of the batches of earlier months."""
    return [_Earlier(read.month, u.results) for read in reads for u in read.live if force and u.force == force]


def _lookup(
    wh: Warehouse, force: str | None, args: dict, done: list[ExtractResult], earlier: list[tuple[str, list[ExtractResult]]] | None = None
) -> pl.DataFrame:
    """key -> value from an extract already validated this month plus every month already loaded (``earlier``:
    months before this one in a multi-month batch, seen in place of what they replace)."""
    extract, key, other = args["lookup"], args["key"], args["other"]
    parts = [r.clean.select(key, other) for r in done if r.contract.extract == extract]
    lf = wh.scan(extract)
    replaced = [m for m, _ in earlier or []]
    if lf is not None:
        mine = pl.col("force_id") == force
        parts.append(lf.filter(mine & ~pl.col("month").is_in(replaced) if replaced else mine).select(key, other).collect())
    parts += [r.clean.select(key, other) for _, results in earlier or [] for r in results if r.contract.extract == extract]
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts).unique(key, keep="first")


def _month_file(pattern: str, month: str, name: str) -> str:
    """How a month's expected file is named in a check: ``YYYY-MM/name`` for a force folder's extracts,
    the file name alone where the name already holds the month (data.police.uk)."""
    return name if "{" in pattern else f"{month}/{name}"
