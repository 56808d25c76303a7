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


_LOADS_FILES = pl.List(pl.Struct({"extract": pl.Utf8}))
_EMPTY_LOADED = {"force_id": pl.Utf8, "month": pl.Utf8, "extract": pl.Utf8}
# warehouse -> (audit_runs version, its log entry's identity, highest commit_seq read, loaded extract-months)
_LOADED: dict[str, tuple[int, tuple, int, pl.DataFrame]] = {}


def _loads(runs: pl.DataFrame) -> pl.DataFrame:
    """force_id, month, extract of the load runs among ``runs`` (kind, force_id, month, source_files)."""
    return (
        runs.filter((pl.col("kind") == "load") & pl.col("month").is_not_null())
        .select("force_id", "month", pl.col("source_files").str.json_decode(_LOADS_FILES).alias("f"))
        .explode("f")
        .select("force_id", "month", pl.col("f").struct.field("extract").alias("extract"))
        .filter(~pl.col("extract").is_in([*REFERENCE_EXTRACTS, "published_statistics"]))  # reference data is not a month of the force's data
        .unique()
    )


def _log_identity(wh: Warehouse, version: int) -> tuple:
    return wh.location.identity("audit_runs", "_delta_log", f"{version:020d}.json") or (0, 0)


def loaded_months(wh: Warehouse, extract: str | None = None) -> pl.DataFrame:
    """force_id, month, extract of every successfully loaded extract (failed runs write nothing).

    Kept per warehouse between calls: audit_runs is only ever appended to, so a newer version adds the
    runs above the highest commit_seq already read (the files holding them found by their statistics)."""
    empty = pl.DataFrame(schema=_EMPTY_LOADED)
    version = wh.committed_versions().get("audit_runs")
    if version is None:
        return empty
    key = wh.cache_key("audit_runs")
    cached = _LOADED.get(key)
    loads: pl.DataFrame | None = None
    columns = ["commit_seq", "kind", "force_id", "month", "source_files"]
    if cached is not None and cached[0] == version and cached[1] == _log_identity(wh, version):
        loads = cached[3]
        top = cached[2]
    elif cached is not None and cached[0] < version and cached[1] == _log_identity(wh, cached[0]):
        files = wh.run_files(after=cached[2])
        if files is not None:
            try:
                new = (
                    pl.read_parquet(files, columns=columns, storage_options=wh.storage_options).filter(pl.col("commit_seq") > cached[2])
                    if files
                    else pl.DataFrame()
                )
            except (pl.exceptions.PolarsError, OSError):
                new = None
            if new is not None:
                top = max(cached[2], int(new["commit_seq"].max())) if new.height else cached[2]  # type: ignore[arg-type]
                loads = pl.concat([cached[3], _loads(new)]).unique() if new.height else cached[3]
    if loads is None:
        runs = wh.read_small("audit_runs")
        if runs is None:
            return empty
        top = int(runs["commit_seq"].max()) if runs.height else -1  # type: ignore[arg-type]
        loads = _loads(runs)
    _LOADED[key] = (version, _log_identity(wh, version), top, loads)
    loads = loads.sort("force_id", "month", "extract")
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
