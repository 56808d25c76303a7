"""The monthly load and the backfill as plain functions (the Prefect flows in ``flows/`` call these).

A monthly load reads the month's extracts from ``SOURCE/YYYY-MM/`` (and reference data from
``SOURCE/reference/``), validates each against its contract, and commits in one run: the curated
rows (replacing that force-month), the quarantined rows, the audit rows and, unless told not to,
the recomputed measures. A file failure stops the run before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from etl import audit, cross_month
from etl.contracts import Contract, load_contract, monthly_contracts
from etl.extracts import ExtractError, read_extract
from etl.measures import compute_measures, load_definitions
from etl.periods import Month, months_between
from etl.reference import load_code_list
from etl.validation import CheckResult, ExtractResult, FileFailure, ValidationContext, curated_schema, validate_extract
from etl.warehouse import Warehouse, Write, predicate, sql_literal

class LoadFailed(Exception):
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


def _rel(path: Path, source: Path) -> str:
    try:
        return str(path.relative_to(source))
    except ValueError:
        return str(path)


def _read_validate(contract: Contract, path: Path, source: Path, ctx: ValidationContext) -> ExtractResult:
    shown = _rel(path, source)
    try:
        raw = read_extract(path)
    except ExtractError as exc:
        raise FileFailure(shown, exc.reason, exc.message) from exc
    return validate_extract(contract, raw, ctx, source_file=shown)


def read_areas(source: Path) -> dict[str, list[str]] | None:
    path = source / "reference" / "areas.csv"
    if not path.exists():
        return None
    try:
        raw = read_extract(path)
    except ExtractError as exc:
        raise FileFailure(_rel(path, source), exc.reason, exc.message) from exc
    missing = {"force_id", "npu"} - set(raw.header)
    if missing:
        raise FileFailure(_rel(path, source), "columns_present", f"needs columns force_id and npu (missing {', '.join(sorted(missing))})")
    grouped = raw.frame.drop_nulls(["force_id", "npu"]).group_by("force_id").agg(pl.col("npu").unique().sort())
    return {r["force_id"]: r["npu"] for r in grouped.iter_rows(named=True)}


def loaded_months(wh: Warehouse) -> pl.DataFrame:
    """force_id, month of every successfully loaded force-month (failed runs write nothing)."""
    runs = wh.read("audit_runs")
    if runs is None:
        return pl.DataFrame(schema={"force_id": pl.Utf8, "month": pl.Utf8})
    return runs.filter(pl.col("kind") == "load").select("force_id", "month").unique().sort("force_id", "month")


def load_month(
    source: str | Path,
    month: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    compute: bool = True,
) -> MonthReport:
    """Load one month. Raises `LoadFailed` (nothing written) when a file fails its contract."""
    source, wh = Path(source), Warehouse(warehouse)
    m = Month.parse(month)
    month = str(m)
    started = audit.utcnow()
    run_id = audit.new_run_id("load")
    folder = source / month
    if not folder.is_dir():
        raise LoadFailed(month, f"{folder}: no extract folder for {month} (expected {folder}/recorded_crime.csv)", "missing_month")
    try:
        areas = read_areas(source)
        results: list[ExtractResult] = []
        absent: list[Contract] = []
        force = force_id
        for contract in monthly_contracts():
            path = folder / contract.file_name
            if not path.exists():
                if not contract.optional:
                    raise FileFailure(_rel(path, source), "file.present", f"is missing; the {contract.extract} extract is required every month")
                absent.append(contract)
                continue
            lookups = {r.args["lookup"]: _lookup(wh, force, r.args, results) for r in contract.rules if r.kind == "not_before_lookup" and force}
            ctx = ValidationContext(month=m, force_id=force, areas=areas if contract.extract == "recorded_crime" else None, lookups=lookups)
            result = _read_validate(contract, path, source, ctx)
            force = force or result.force_id
            if not force:
                raise FileFailure(result.source_file, "force_id.required", "has no force_id on any row; cannot tell which force it belongs to")
            results.append(result)
        population = None
        pop_contract = load_contract("population")
        if (source / pop_contract.file_name).exists():
            population = _read_validate(pop_contract, source / pop_contract.file_name, source, ValidationContext())
    except FileFailure as exc:
        raise LoadFailed(month, f"{exc.path}: {exc.message}", exc.rule) from exc
    assert force is not None
    history = sorted(set(loaded_months(wh).filter(pl.col("force_id") == force)["month"].to_list()) - {month})
    for r in results:
        r.checks.extend(cross_month.run_checks(r, wh, force, month, history, results))
    warnings = [f"{r.contract.extract}: {c.detail}" for r in results for c in r.checks if c.severity == "warning" and not c.passed and c.detail]

    month_filter = predicate(force_id=force, month=month)
    writes = [Write(r.contract.extract, _curated(r.clean, r.contract, force), month_filter) for r in results]
    writes += [Write(c.extract, pl.DataFrame(schema=curated_schema(c)), month_filter) for c in absent if wh.has_table(c.extract)]
    loaded_results = results + ([population] if population is not None else [])
    quarantined = [r.quarantine.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(force).alias("force_id"), pl.lit(month).alias("month")) for r in loaded_results]
    writes.append(Write("quarantine", pl.concat(quarantined), month_filter))
    if population is not None:
        forces = population.clean["force_id"].unique().sort().to_list()
        if forces:
            writes.append(Write("population", population.clean, "force_id IN (" + ", ".join(sql_literal(f) for f in forces) + ")"))

    crimes = results[0]
    message = "; ".join(f"no {c.file_name} for {month}" for c in absent) or None
    extra_checks = [(c.extract, CheckResult("file.present", None, f"{month}/{c.file_name} is present", "warning", False, 0, 0)) for c in absent]
    checks = audit.checks_frame(run_id, force, month, loaded_results, extra_checks)
    run = audit.run_row(run_id, "load", force, month, started, loaded_results, definition_versions(), message)

    if compute:
        curated = _with_new_month(wh, crimes.clean, force, month)
        loaded = pl.concat([loaded_months(wh), pl.DataFrame({"force_id": [force], "month": [month]})]).unique()
        pop = population.clean if population is not None else wh.read("population")
        if population is not None and (committed_pop := wh.read("population")) is not None:
            pop = pl.concat([committed_pop.filter(~pl.col("force_id").is_in(population.clean["force_id"].implode())), population.clean])
        table = compute_measures(curated, loaded.filter(pl.col("force_id") == force), pop, run_id=run_id)
        writes.append(Write("measures", table, predicate(force_id=force)))

    wh.commit(run_id, writes, run, checks)
    return MonthReport(
        month=month,
        outcome="loaded",
        run_id=run_id,
        force_id=force,
        rows_in=run["rows_in"],
        rows_loaded=run["rows_loaded"],
        rows_quarantined=run["rows_quarantined"],
        message=message,
        files=json.loads(run["source_files"]),
        warnings=warnings,
    )


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


def _with_new_month(wh: Warehouse, new: pl.DataFrame, force: str, month: str) -> pl.LazyFrame:
    lf = wh.scan("recorded_crime")
    new_lf = new.lazy().with_columns(pl.lit(force).alias("force_id"))
    if lf is None:
        return new_lf
    old = lf.filter(~((pl.col("force_id") == force) & (pl.col("month") == month)))
    return pl.concat([old, new_lf], how="diagonal_relaxed")


def refresh_measures(warehouse: str | Path, forces: list[str] | None = None) -> tuple[str, int]:
    """Recompute the measures of the given forces (default: all loaded) from the committed tables."""
    wh = Warehouse(warehouse)
    run_id = audit.new_run_id("measures")
    started = audit.utcnow()
    loaded = loaded_months(wh)
    if forces:
        loaded = loaded.filter(pl.col("force_id").is_in(forces))
    if loaded.height == 0:
        return run_id, 0
    table = compute_measures(wh.scan("recorded_crime"), loaded, wh.read("population"), run_id=run_id)
    done = loaded["force_id"].unique().sort().to_list()
    writes = [Write("measures", table, "force_id IN (" + ", ".join(sql_literal(f) for f in done) + ")")]
    run = audit.run_row(run_id, "measures", ",".join(done), None, started, [], definition_versions(), f"{table.height} measure rows for {', '.join(done)}")
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
            rep = load_month(source, str(m), warehouse, force_id=force_id, compute=False)
        except LoadFailed as exc:
            rep = MonthReport(month=str(m), outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)
        reports.append(rep)
        if on_month:
            on_month(rep)
    forces = sorted({r.force_id for r in reports if r.force_id}) or None
    run_id, n = refresh_measures(warehouse, forces)
    return BackfillReport(reports, run_id, n)
