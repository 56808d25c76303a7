"""What the measures of a load or a refresh are computed from, and the writes that replace them:
the months loaded per force and extract (from the audit trail), the curated tables the measures
read, the definition versions a run records.

One reason to change: what the measures are computed from (the engine itself is `etl.measures`).
"""

from __future__ import annotations

import polars as pl

from etl.core import progress
from etl.core.reference import load_code_list
from etl.core.warehouse import Warehouse, Write
from etl.loading.reference import REFERENCE_EXTRACTS, reference_after
from etl.measures import compute_measures, control_charts, load_definitions, monthly_components


def definition_versions() -> dict[str, str]:
    defs = load_definitions()
    return {"measures": defs.version, "offence_groups": defs.groups.version, "hocr_offence_codes": load_code_list().version}


def measure_extracts() -> list[str]:
    """Curated tables the measures read (crime_outcomes too when a measure uses a crime's outcome)."""
    measures = [m for m in load_definitions().measures if m.kind not in ("rate", "external", "no_data")]
    extra = ({"crime_outcomes"} if any(m.needs_outcome for m in measures) else set()) | ({"recorded_crime"} if any(m.needs_crime for m in measures) else set())
    return sorted({m.extract for m in measures} | extra)


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
        .filter(~pl.col("extract").is_in([*REFERENCE_EXTRACTS, "published_statistics"]))  # reference data is not a month of the force's data
        .unique()
        .sort("force_id", "month", "extract")
    )
    if extract:
        loads = loads.filter(pl.col("extract") == extract)
    return loads if loads.height else empty


def tables_with_month(
    wh: Warehouse, new: dict[str, pl.DataFrame], forces: list[str], month: str, references: dict[str, pl.DataFrame | None] | None = None
) -> dict[str, pl.LazyFrame | None]:
    """Every curated table as it will be after this run: committed rows, the batch's force-months replaced;
    a reference table the measures read (the cdi_audit sample) with the forces ``references`` covers replaced."""
    tables: dict[str, pl.LazyFrame | None] = {}
    for extract in measure_extracts():
        if extract in REFERENCE_EXTRACTS:
            after = reference_after(wh, extract, (references or {}).get(extract))
            tables[extract] = after.lazy() if after is not None else None
            continue
        lf = wh.scan(extract)
        old = lf.filter(~(pl.col("force_id").is_in(forces) & (pl.col("month") == month))) if lf is not None else None
        fresh = new[extract].lazy() if extract in new else None
        parts = [p for p in (old, fresh) if p is not None]
        tables[extract] = pl.concat(parts, how="diagonal_relaxed") if parts else None
    return tables


def measure_writes(
    tables: dict[str, pl.LazyFrame | None],
    loaded: pl.DataFrame,
    population: pl.DataFrame | None,
    *,
    run_id: str,
    published: pl.DataFrame | None,
    external: pl.DataFrame | None,
    replace: str,
) -> list[Write]:
    """The measures and control charts of the ``loaded`` force-months, replacing the rows ``replace`` selects."""
    with progress.stage("measures"):
        components = monthly_components(tables, load_definitions())  # once, for the measures and the charts
        table = compute_measures(tables, loaded, population, run_id=run_id, published=published, external=external, components=components)
        charts = control_charts(tables, loaded, components=components)
    return [Write("measures", table, replace), Write("spc", charts, replace)]
