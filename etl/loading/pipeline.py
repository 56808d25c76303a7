"""The monthly load and the backfill as plain functions (the Prefect flows in ``flows/`` call these).

A monthly load reads the month's extracts from ``SOURCE/YYYY-MM/`` (and reference data from
``SOURCE/reference/``), validates each against its contract, and commits in one run: the curated
rows (replacing that force-month), the quarantined rows, the audit rows and, unless told not to,
the recomputed measures. A file failure stops the run before anything is written.
"""

from __future__ import annotations

from etl.errors import DataError
import datetime as dt
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from etl.core import audit, cross_month, progress
from etl.core.contracts import Contract, load_contract, monthly_contracts
from etl.core.extracts import ExtractError, RawExtract, read_extract, sha256_of
from etl.core.published import PublishedError, read_pfa_table_p1
from etl.measures.engine import compute_measures, load_definitions
from etl.core.periods import Month, months_between
from etl.measures.spc import control_charts
from etl.core.reference import load_code_list
from etl.core.validation import CheckResult, ExtractInput, ExtractResult, FileFailure, ValidationContext, curated_schema, validate_extracts
from etl.core.warehouse import Warehouse, Write, predicate, sql_literal

class LoadFailed(DataError):
    """A month that could not be loaded; the message names the file, rule and what to do."""

    def __init__(self, month: str, message: str, rule: str = "file"):
        super().__init__(message)
        self.month = month
        self.rule = rule
        self.message = message


@dataclass
class MonthReport:
    month: str
    outcome: str  # loaded | failed | missing
    run_id: str | None = None
    force_id: str | None = None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str | None = None
    files: list[dict] = field(default_factory=list)

    expectations: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BackfillReport:
    months: list[MonthReport]
    measures_run_id: str | None
    measure_rows: int

    @property
    def ok(self) -> bool:
        return all(m.outcome == "loaded" for m in self.months)


def definition_versions() -> dict[str, str]:
    defs = load_definitions()
    return {"measures": defs.version, "offence_groups": defs.groups.version, "hocr_offence_codes": load_code_list().version}


def _present(path: Path) -> bool:
    """A file the source offers: it exists, or it is a link to nothing (then reading it says so,
    rather than the file being reported missing)."""
    return path.exists() or path.is_symlink()


def _rel(path: Path, source: Path) -> str:
    try:
        return str(path.relative_to(source))
    except ValueError:
        return str(path)


def _read(path: Path, source: Path) -> RawExtract | FileFailure:
    try:
        return read_extract(path)
    except ExtractError as exc:
        return FileFailure(_rel(path, source), exc.reason, exc.message)


def _read_all(paths: list[Path], source: Path) -> list[RawExtract | FileFailure]:
    """Read files in parallel threads (the CSV parser and polars release the GIL)."""
    if len(paths) <= 1:
        return [_read(p, source) for p in paths]
    with ThreadPoolExecutor(max_workers=min(len(paths), max(2, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda p: _read(p, source), paths))


def read_areas(root: Path, shown_from: Path | None = None) -> dict[str, list[str]] | None:
    """force_id -> npu list from ROOT/reference/areas.csv (None without one); names shown relative to ``shown_from``."""
    path = root / "reference" / "areas.csv"
    if not path.exists():
        return None
    shown_from = shown_from or root
    raw = _read(path, shown_from)
    if isinstance(raw, FileFailure):
        raise raw
    missing = {"force_id", "npu"} - set(raw.header)
    if missing:
        raise FileFailure(_rel(path, shown_from), "columns_present", f"needs columns force_id and npu (missing {', '.join(sorted(missing))})")
    grouped = raw.frame.drop_nulls(["force_id", "npu"]).group_by("force_id").agg(pl.col("npu").unique().sort())
    return {r["force_id"]: r["npu"] for r in grouped.iter_rows(named=True)}


def loaded_months(wh: Warehouse, extract: str | None = None) -> pl.DataFrame:
    """force_id, month, extract of every successfully loaded extract (failed runs write nothing)."""
    runs = wh.read("audit_runs")
    empty = pl.DataFrame(schema={"force_id": pl.Utf8, "month": pl.Utf8, "extract": pl.Utf8})
    if runs is None:
        return empty
    files = pl.List(pl.Struct({"extract": pl.Utf8}))
    loads = (
        runs.filter((pl.col("kind") == "load") & pl.col("month").is_not_null())
        .select("force_id", "month", pl.col("source_files").str.json_decode(files).alias("f"))
        .explode("f")
        .select("force_id", "month", pl.col("f").struct.field("extract").alias("extract"))
        .filter(~pl.col("extract").is_in(list(REFERENCE_EXTRACTS)))
        .unique()
        .sort("force_id", "month", "extract")
    )
    if extract:
        loads = loads.filter(pl.col("extract") == extract)
    return loads if loads.height else empty


def find_police_uk_files(source: Path, month: str) -> dict[str, dict[str, Path]]:
    """data.police.uk files for a month anywhere under SOURCE: force -> extract -> path.

    Names must be exactly as downloaded (``2019-01-metropolitan-street.csv``); renamed copies such as
    re-downloads kept beside the original are not picked up.
    """
    patterns = []
    for c in monthly_contracts("police_uk"):
        suffix = re.escape(c.file_name.split("{force}", 1)[1])  # e.g. "-street.csv"
        patterns.append((c.extract, re.compile(rf"^{re.escape(month)}-(?P<force>[a-z0-9]+(?:-[a-z0-9]+)*?){suffix}$")))
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(source.rglob(f"{month}-*.csv")):
        if PUBLISHED_FOLDER.parts[0] in path.relative_to(source).parts[:1]:
            continue
        for extract, pattern in patterns:
            hit = pattern.match(path.name)
            if hit:
                force_files = found.setdefault(hit.group("force"), {})
                if extract in force_files:
                    raise LoadFailed(month, f"two {extract} files for {hit.group('force')} {month}: {_rel(force_files[extract], source)} and {_rel(path, source)}; keep one", "duplicate_file")
                force_files[extract] = path
    return found


def force_folders(source: Path, month: str) -> list[Path]:
    """Force folders of a regional or national source (SOURCE/<force>/YYYY-MM/<extract>.csv) holding MONTH."""
    if not source.is_dir():
        return []
    return sorted(d for d in source.iterdir() if d.is_dir() and (d / month).is_dir() and d.name != PUBLISHED_FOLDER.parts[0])


def load_source_month(source: str | Path, month: str, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True) -> list[MonthReport]:
    """Load a month of any source layout, all its forces in one commit:

    * a force folder (SOURCE/YYYY-MM/recorded_crime.csv ...): one force-month; raises `LoadFailed`
      when a file fails its contract (nothing written);
    * a folder of force folders (SOURCE/<force>/YYYY-MM/...), e.g. a region or the 43 forces: every
      force's month validated together and committed at once, one audit run per force-month;
    * data.police.uk files anywhere under SOURCE (YYYY-MM-<force>-street.csv ...): one run per force.

    With several forces, a force whose files fail is reported (outcome ``failed``, nothing of it
    written) and the others are loaded.
    """
    source = Path(source)
    m = Month.parse(month)
    month = str(m)
    wh = Warehouse(warehouse)
    if _present(source / month / "recorded_crime.csv") or not source.is_dir():
        return [load_month(source, month, warehouse, force_id=force_id, compute=compute)]
    folders = force_folders(source, month)
    if folders and force_id:  # one force of a region: its folder only
        folders = [f for f in folders if f.name == force_id]
        if not folders:
            raise LoadFailed(month, f"{source}: no force folder named {force_id} holds {month} (expected {source / force_id / month}/recorded_crime.csv)", "missing_month")
    if folders:
        units = [_Unit(folder, [(c, folder / month / c.file_name if _present(folder / month / c.file_name) else None) for c in monthly_contracts()], force_id) for folder in folders]
        return _load_batch(source, m, wh, units, compute)
    public = find_police_uk_files(source, month)
    if force_id:
        public = {f: v for f, v in public.items() if f == force_id}
    if not public:
        return [load_month(source, month, warehouse, force_id=force_id, compute=compute)]  # reports the missing folder
    by_extract = {c.extract: c for c in monthly_contracts("police_uk")}
    units = [_Unit(source, [(by_extract[e], files.get(e)) for e in sorted(by_extract)], force) for force, files in sorted(public.items())]
    return _load_batch(source, m, wh, units, compute)


def load_month(
    source: str | Path,
    month: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    compute: bool = True,
) -> MonthReport:
    """Load one month of a force folder. Raises `LoadFailed` (nothing written) when a file fails its contract."""
    source = Path(source)
    m = Month.parse(month)
    folder = source / str(m)
    if not folder.is_dir():
        raise LoadFailed(str(m), f"{folder}: no extract folder for {m} (expected {folder}/recorded_crime.csv)", "missing_month")
    plan = [(c, folder / c.file_name if _present(folder / c.file_name) else None) for c in monthly_contracts()]
    (report,) = _load_batch(source, m, Warehouse(warehouse), [_Unit(source, plan, force_id)], compute, raise_failure=True)
    return report


@dataclass
class _Unit:
    """One force-month of a batch: where its files are, and what became of them."""

    root: Path  # the force's folder (its reference/areas.csv is used if it has one)
    plan: list[tuple[Contract, Path | None]]  # every monthly contract of the profile, with its file or None
    force: str | None  # given (--force, a data.police.uk file name) or, once validated, from the rows
    run_id: str = field(default_factory=lambda: audit.new_run_id("load"))
    started: dt.datetime = field(default_factory=audit.utcnow)
    results: list[ExtractResult] = field(default_factory=list)
    absent: list[Contract] = field(default_factory=list)
    failure: LoadFailed | None = None
    areas: dict[str, list[str]] | None = None  # force_id -> npu list from reference/areas.csv
    message: str | None = None

    def fail(self, month: str, exc: FileFailure | PublishedError | LoadFailed) -> None:
        if self.failure is not None:
            return
        if isinstance(exc, FileFailure):
            self.failure = LoadFailed(month, f"{exc.path}: {exc.message}", exc.rule)
        elif isinstance(exc, PublishedError):
            self.failure = LoadFailed(month, str(exc), "published_statistics")
        else:
            self.failure = exc


def _force_months(forces: list[str], month: str) -> str:
    """Delta predicate for the given forces' rows of one month."""
    if len(forces) == 1:
        return predicate(force_id=forces[0], month=month)
    return f"month = {sql_literal(month)} AND force_id IN ({', '.join(sql_literal(f) for f in forces)})"


def _in_forces(forces: list[str]) -> str:
    return predicate(force_id=forces[0]) if len(forces) == 1 else "force_id IN (" + ", ".join(sql_literal(f) for f in forces) + ")"


def _load_batch(source: Path, m: Month, wh: Warehouse, units: list[_Unit], compute: bool, raise_failure: bool = False) -> list[MonthReport]:
    """Validate the files of one month of one or more forces and commit every force that passes in one
    warehouse commit (one write per table, one audit run per force-month). Nothing of a failing force
    is written; with ``raise_failure`` (a single force folder) its failure is raised as `LoadFailed`.
    The run holds the warehouse from its first read to its commit (`Warehouse.run`): everything it
    reads comes from one committed state, and an overlapping run waits for it."""
    with wh.run():
        return _load_batch_in(source, m, wh, units, compute, raise_failure)


def _load_batch_in(source: Path, m: Month, wh: Warehouse, units: list[_Unit], compute: bool, raise_failure: bool) -> list[MonthReport]:
    month = str(m)
    try:
        top_areas, top_failure = read_areas(source), None
    except FileFailure as exc:
        top_areas, top_failure = None, exc
    for u in units:
        try:
            if u.root != source and (u.root / "reference" / "areas.csv").exists():
                u.areas = read_areas(u.root, source)  # the force's own list
            elif top_failure is not None:
                raise top_failure
            else:
                u.areas = top_areas
            if all(path is None for _, path in u.plan):
                raise FileFailure(_rel(u.root / month, source), "file.present", "holds none of the extracts the contracts describe")
            for contract, path in u.plan:
                if path is None and not contract.optional:
                    raise FileFailure(_rel(u.root / month / contract.file_name, source), "file.present", f"is missing; the {contract.extract} extract is required every month")
            u.absent = [c for c, path in u.plan if path is None]
        except FileFailure as exc:
            u.fail(month, exc)

    todo = [(u, c, path) for u in units if not u.failure for c, path in u.plan if path is not None]
    with progress.stage("read", files=len(todo)):
        raws = dict(zip([(id(u), c.extract) for u, c, _ in todo], _read_all([p for _, _, p in todo], source)))
    for contract in [c for c, _ in units[0].plan]:
        inputs, owners = [], []
        for u in units:
            path = dict((c.extract, p) for c, p in u.plan).get(contract.extract)
            if u.failure or path is None:
                continue
            raw = raws[(id(u), contract.extract)]
            if isinstance(raw, FileFailure):
                u.fail(month, raw)
                continue
            lookups = {r.args["lookup"]: _lookup(wh, u.force, r.args, u.results) for r in contract.rules if r.kind == "not_before_lookup" and u.force}
            ctx = ValidationContext(month=m, force_id=u.force, areas=u.areas if contract.extract == "recorded_crime" else None, lookups=lookups)
            inputs.append(ExtractInput(raw, ctx, _rel(path, source)))
            owners.append(u)
        if not inputs:
            continue
        with progress.stage("validate", extract=contract.extract, rows=sum(i.raw.rows_in for i in inputs), files=len(inputs)):
            outcomes = validate_extracts(contract, inputs)
        for u, outcome in zip(owners, outcomes):
            if isinstance(outcome, FileFailure):
                u.fail(month, outcome)
                continue
            u.force = u.force or outcome.force_id
            if not u.force:
                u.fail(month, FileFailure(outcome.source_file, "force_id.required", "has no force_id on any row; cannot tell which force it belongs to"))
                continue
            u.results.append(outcome)
    seen: dict[str, _Unit] = {}
    for u in units:
        if u.failure:
            continue
        if u.force in seen:
            u.fail(month, LoadFailed(month, f"{_rel(u.root, source)} and {_rel(seen[u.force].root, source)} both hold {u.force}'s {month}; keep one", "duplicate_force"))
        else:
            seen[u.force] = u  # type: ignore[index]

    # Reference data (population, external statistics, published workbooks): from SOURCE/reference/ and,
    # in a folder of force folders, from each force's own reference/ (recorded in that force's run; for a
    # force both cover, the force's own file wins).
    live = [u for u in units if not u.failure]
    top_refs: list[ExtractResult] = []
    top_pubs: list[tuple[pl.DataFrame, dict]] = []
    refs: dict[int, list[ExtractResult]] = {}
    pubs: dict[int, list[tuple[pl.DataFrame, dict]]] = {}
    seen_sha: set[str] = set()
    owners: list[tuple[_Unit | None, Path]] = [(None, source)] if live else []
    owners += [(u, u.root) for u in live if u.root != source and (u.root / "reference").is_dir()]
    found: dict[int, list[ExtractResult]] = {k: [] for k in range(len(owners))}
    failed: dict[int, FileFailure | PublishedError] = {}
    for name in REFERENCE_EXTRACTS:  # every owner's file of a reference extract validated in one pass
        ref_contract = load_contract(name)
        todo_refs = [(k, root / ref_contract.file_name) for k, (_, root) in enumerate(owners) if _present(root / ref_contract.file_name)]
        if not todo_refs:
            continue
        with progress.stage("read", extract=name, files=len(todo_refs)):
            raws_ref = _read_all([p for _, p in todo_refs], source)
        inputs_ref, keys = [], []
        for (k, path), raw in zip(todo_refs, raws_ref):
            if isinstance(raw, FileFailure):
                failed.setdefault(k, raw)
            else:
                inputs_ref.append(ExtractInput(raw, ValidationContext(), _rel(path, source)))
                keys.append(k)
        with progress.stage("validate", extract=name, rows=sum(i.raw.rows_in for i in inputs_ref), files=len(inputs_ref)):
            outcomes_ref = validate_extracts(ref_contract, inputs_ref) if inputs_ref else []
        for k, outcome in zip(keys, outcomes_ref):
            if isinstance(outcome, FileFailure):
                failed.setdefault(k, outcome)
            else:
                found[k].append(outcome)
    for k, (owner, root) in enumerate(owners):
        if k not in failed:
            try:
                workbooks = [(f, e) for f, e in new_published(root, wh, source) if e["sha256"] not in seen_sha]
            except PublishedError as exc:
                failed[k] = exc
        if k in failed:
            for u in ([owner] if owner else live):
                u.fail(month, failed[k])
            continue
        seen_sha |= {e["sha256"] for _, e in workbooks}
        if owner is None:
            top_refs, top_pubs = found[k], workbooks
        else:
            refs[id(owner)], pubs[id(owner)] = found[k], workbooks
    if raise_failure and units[0].failure:
        raise units[0].failure
    live = [u for u in units if not u.failure]
    reports = {id(u): MonthReport(month=month, outcome="failed", force_id=u.force, message=u.failure.message) for u in units if u.failure}  # type: ignore[union-attr]
    if not live:
        return [reports[id(u)] for u in units]

    forces = [u.force for u in live]  # type: ignore[misc]
    first = live[0]  # reference files at the top of SOURCE are recorded in the first force's run
    refs[id(first)] = top_refs + refs.get(id(first), [])
    pubs[id(first)] = top_pubs + pubs.get(id(first), [])
    references = top_refs + [r for u in live for r in refs.get(id(u), []) if r not in top_refs]
    published = [p for u in live for p in pubs.get(id(u), [])]
    previous = loaded_months(wh).filter(pl.col("force_id").is_in(forces))
    pub_parts = [p for p in [wh.read("published_statistics"), *[f for f, _ in published]] if p is not None]
    all_published = pl.concat(pub_parts).unique() if pub_parts else None
    with progress.stage("cross_month", files=sum(len(u.results) for u in live)):
        history = cross_month.prefetch(wh, month, [(u.force, r) for u in live for r in u.results])
        for u in live:
            mine = previous.filter(pl.col("force_id") == u.force)
            for r in u.results:
                loaded = sorted(set(mine.filter(pl.col("extract") == r.contract.extract)["month"].to_list()) - {month})
                r.checks.extend(cross_month.run_checks(r, wh, u.force, month, loaded, u.results, all_published, history))  # type: ignore[arg-type]

    # One write per table for the whole batch: every batch force's month is replaced.
    month_filter = _force_months(forces, month)  # type: ignore[arg-type]
    writes = []
    curated: dict[str, pl.DataFrame] = {}  # extract -> the batch's curated rows (also what the measures see)
    for contract in [c for c, _ in units[0].plan]:
        frames = [_curated(r.clean, r.contract, u.force) for u in live for r in u.results if r.contract.extract == contract.extract]  # type: ignore[arg-type]
        if frames:
            curated[contract.extract] = pl.concat(frames) if len(frames) > 1 else frames[0]
            writes.append(Write(contract.extract, curated[contract.extract], month_filter))
        elif wh.has_table(contract.extract):
            writes.append(Write(contract.extract, pl.DataFrame(schema=curated_schema(contract)), month_filter))
    quarantined = []
    for u in live:
        for r in u.results + refs.get(id(u), []):
            quarantined.append(r.quarantine.with_columns(pl.lit(u.run_id).alias("run_id"), pl.lit(u.force).alias("force_id"), pl.lit(month).alias("month")))
    writes.append(Write("quarantine", pl.concat(quarantined), month_filter))
    for frame, entry in published:
        writes.append(Write("published_statistics", frame, predicate(source_sha256=entry["sha256"])))
    new_refs = {name: _reference_rows(references, name) for name in REFERENCE_EXTRACTS}
    for name, rows in new_refs.items():  # reference data replaces the rows of the forces it covers
        ref_forces = rows["force_id"].unique().sort().to_list() if rows is not None else []
        if ref_forces:
            writes.append(Write(name, rows, "force_id IN (" + ", ".join(sql_literal(f) for f in ref_forces) + ")"))  # type: ignore[arg-type]

    versions = definition_versions()
    checks, runs = [], []
    for u in live:
        loaded_results = u.results + refs.get(id(u), [])
        u.message = "; ".join(f"no {c.file_name} for {month}" for c in u.absent) or None
        extra_checks = [(c.extract, CheckResult("file.present", None, f"{month}/{c.file_name} is present", "warning", False, 0, 0)) for c in u.absent]
        checks.append(audit.checks_frame(u.run_id, u.force, month, loaded_results, extra_checks))
        runs.append(audit.run_row(u.run_id, "load", u.force, month, u.started, loaded_results, versions, u.message, [e for _, e in pubs.get(id(u), [])]))  # type: ignore[arg-type]

    if compute:
        tables = _tables_with_month(wh, curated, forces, month)  # type: ignore[arg-type]
        new = pl.DataFrame(
            [(u.force, month, r.contract.extract) for u in live for r in u.results], schema={"force_id": pl.Utf8, "month": pl.Utf8, "extract": pl.Utf8}, orient="row"
        )
        absent = pl.DataFrame([(u.force, c.extract) for u in live for c in u.absent], schema={"force_id": pl.Utf8, "extract": pl.Utf8}, orient="row")
        kept = previous.join(absent.with_columns(pl.lit(month).alias("month")), on=["force_id", "month", "extract"], how="anti")
        loaded = pl.concat([kept, new]).unique()
        pop, ext = (_reference_after(wh, name, new_refs[name]) for name in REFERENCE_EXTRACTS)
        with progress.stage("measures"):
            table = compute_measures(tables, loaded, pop, run_id=first.run_id, published=all_published, external=ext)
            charts = control_charts(tables, loaded)
        writes.append(Write("measures", table, _in_forces(forces)))  # type: ignore[arg-type]
        writes.append(Write("spc", charts, _in_forces(forces)))  # type: ignore[arg-type]

    progress.emit("before_commit", run_ids=[u.run_id for u in live], month=month)
    with progress.stage("write", rows=sum(w.frame.height for w in writes)):
        wh.commit(",".join(u.run_id for u in live), writes, runs, pl.concat(checks))
    for u, run in zip(live, runs):
        reports[id(u)] = MonthReport(
            month=month,
            outcome="loaded",
            run_id=u.run_id,
            force_id=u.force,
            rows_in=run["rows_in"],
            rows_loaded=run["rows_loaded"],
            rows_quarantined=run["rows_quarantined"],
            message=u.message,
            files=json.loads(run["source_files"]),
            warnings=[f"{r.contract.extract}: {c.detail}" for r in u.results for c in r.checks if c.severity == "warning" and not c.passed and c.detail],
        )
    return [reports[id(u)] for u in units]


def _curated(clean: pl.DataFrame, contract: Contract, force: str) -> pl.DataFrame:
    """The rows as stored: force_id set to the run's force, columns in the curated order."""
    schema = curated_schema(contract)
    return clean.with_columns(pl.lit(force).alias("force_id")).select([pl.col(k).cast(t) for k, t in schema.items()])


def _lookup(wh: Warehouse, force: str, args: dict, done: list[ExtractResult]) -> pl.DataFrame:
    """key -> value from an extract already validated this month plus every month already loaded."""
    extract, key, other = args["lookup"], args["key"], args["other"]
    parts = [r.clean.select(key, other) for r in done if r.contract.extract == extract]
    lf = wh.scan(extract)
    if lf is not None:
        parts.append(lf.filter(pl.col("force_id") == force).select(key, other).collect())
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts).unique(key, keep="first")


def _tables_with_month(wh: Warehouse, new: dict[str, pl.DataFrame], forces: list[str], month: str) -> dict[str, pl.LazyFrame | None]:
    """Every curated table as it will be after this run: committed rows, the batch's force-months replaced."""
    tables: dict[str, pl.LazyFrame | None] = {}
    for extract in measure_extracts():
        lf = wh.scan(extract)
        old = lf.filter(~(pl.col("force_id").is_in(forces) & (pl.col("month") == month))) if lf is not None else None
        fresh = new[extract].lazy() if extract in new else None
        parts = [p for p in (old, fresh) if p is not None]
        tables[extract] = pl.concat(parts, how="diagonal_relaxed") if parts else None
    return tables


PUBLISHED_FOLDER = Path("reference") / "published"
REFERENCE_EXTRACTS = ("population", "external_statistics")


def _reference_rows(results: list[ExtractResult], name: str) -> pl.DataFrame | None:
    """The rows of a reference extract read in this run. With several files, each force's rows come
    from the last file (in ``results`` order: SOURCE/reference first, then the force folders) covering it."""
    frames = [r.clean for r in results if r.contract.extract == name]
    if not frames:
        return None
    if len(frames) == 1:
        return frames[0]
    tagged = pl.concat([f.with_columns(pl.lit(i).alias("__file")) for i, f in enumerate(frames)], how="diagonal_relaxed")
    return tagged.filter(pl.col("__file") == pl.col("__file").max().over("force_id")).drop("__file")


def _reference_after(wh: Warehouse, name: str, new: pl.DataFrame | None) -> pl.DataFrame | None:
    """A reference table as it will be after this run (the file's forces replaced)."""
    committed = wh.read(name)
    if new is None:
        return committed
    if committed is None:
        return new
    return pl.concat([committed.filter(~pl.col("force_id").is_in(new["force_id"].implode())), new], how="diagonal_relaxed")


def new_published(source: Path, wh: Warehouse, shown_from: Path | None = None) -> list[tuple[pl.DataFrame, dict]]:
    """Published statistics workbooks in SOURCE/reference/published/ not loaded yet (by sha256);
    file names are shown relative to ``shown_from`` (default SOURCE)."""
    shown_from = shown_from or source
    folder = source / PUBLISHED_FOLDER
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xlsx")
    if not files:
        return []
    committed = wh.read("published_statistics")
    known = set(committed["source_sha256"].unique().to_list()) if committed is not None else set()
    out = []
    for path in files:
        if sha256_of(path.read_bytes()) in known:
            continue
        frame = read_pfa_table_p1(path)
        entry = {"extract": "published_statistics", "file": _rel(path, shown_from), "sha256": frame["source_sha256"][0], "encoding": "xlsx",
                 "contract": "ons_pfa_table_p1", "contract_version": None, "rows_in": frame.height, "rows_loaded": frame.height, "rows_quarantined": 0}
        out.append((frame, entry))
    return out


def measure_extracts() -> list[str]:
    """Curated tables the measures read (crime_outcomes too when a measure uses a crime's outcome)."""
    measures = [m for m in load_definitions().measures if m.kind not in ("rate", "external", "no_data")]
    extra = ({"crime_outcomes"} if any(m.needs_outcome for m in measures) else set()) | ({"recorded_crime"} if any(m.needs_crime for m in measures) else set())
    return sorted({m.extract for m in measures} | extra)


def refresh_measures(warehouse: str | Path, forces: list[str] | None = None) -> tuple[str, int]:
    """Recompute the measures of the given forces (default: all loaded) from the committed tables."""
    wh = Warehouse(warehouse)
    with wh.run():
        return _refresh_measures_in(wh, forces)


def _refresh_measures_in(wh: Warehouse, forces: list[str] | None) -> tuple[str, int]:
    run_id = audit.new_run_id("measures")
    started = audit.utcnow()
    loaded = loaded_months(wh)
    if forces:
        loaded = loaded.filter(pl.col("force_id").is_in(forces))
    if loaded.height == 0:
        return run_id, 0
    tables = {e: wh.scan(e) for e in measure_extracts()}
    with progress.stage("measures"):
        table = compute_measures(tables, loaded, wh.read("population"), run_id=run_id, published=wh.read("published_statistics"), external=wh.read("external_statistics"))
        charts = control_charts(tables, loaded)
    done = loaded["force_id"].unique().sort().to_list()
    in_forces = "force_id IN (" + ", ".join(sql_literal(f) for f in done) + ")"
    writes = [Write("measures", table, in_forces), Write("spc", charts, in_forces)]
    run = audit.run_row(run_id, "measures", ",".join(done), None, started, [], definition_versions(), f"{table.height} measure rows for {', '.join(done)}")
    progress.emit("before_commit", run_ids=[run_id], month=None)
    with progress.stage("write", rows=table.height):
        wh.commit(run_id, writes, run)
    return run_id, table.height


def backfill(
    source: str | Path,
    first: str,
    last: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    on_month: Callable[[MonthReport], None] | None = None,
) -> BackfillReport:
    """Load every month in order (a failed or missing month does not stop the others), then measures."""
    reports = []
    for m in months_between(first, last):
        try:
            reps = load_source_month(source, str(m), warehouse, force_id=force_id, compute=False)
        except LoadFailed as exc:
            reps = [MonthReport(month=str(m), outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
        for rep in reps:
            reports.append(rep)
            if on_month:
                on_month(rep)
    forces = sorted({r.force_id for r in reports if r.force_id}) or None
    run_id, n = refresh_measures(warehouse, forces)
    return BackfillReport(reports, run_id, n)
