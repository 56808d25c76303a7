"""Figures from outside the force's own records that the measures use.

One reason to change: how the engine uses figures published or estimated elsewhere -

* the mid-year population estimate a rate divides by (``population`` reference extract);
* the published ye_jun19 baseline (ONS PFA Table P1, ``published_statistics``) used when the force's
  own baseline months are not loaded and the measure declares a published offence group with the
  same definition;
* [EXTERNAL] measures: figures published elsewhere (``external_statistics``), reported as given.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from etl.core.periods import YE_JUN19
from etl.measures.definitions import Definitions, Measure
from etl.measures.judgement import MEASURE_SCHEMA
from etl.measures.windows import june_year


def population_table(pop: pl.DataFrame, forces: list[str], first_year: int, last_year: int) -> pl.DataFrame:
    """force_id, year, population, pop_note: the estimate a rate uses for a window whose June year is
    ``year`` - that year's, else the latest earlier one (with a note), else none (with a note)."""
    rows: list[tuple[str, int, float | None, str | None]] = []
    for force_id in forces:
        estimates = {r["year"]: r["population"] for r in pop.filter(pl.col("force_id") == force_id).iter_rows(named=True)}
        for year in range(first_year, last_year + 1):
            earlier = [y for y in estimates if y < year]
            if year in estimates:
                rows.append((force_id, year, estimates[year], None))
            elif not earlier:
                rows.append((force_id, year, None, f"no population estimate for {year} or earlier"))
            else:
                use = max(earlier)
                rows.append((force_id, year, estimates[use], f"population {year} not loaded; used the {use} estimate"))
    return pl.DataFrame(rows, schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64, "pop_note": pl.Utf8}, orient="row")


def with_population(w: pl.DataFrame, pop: pl.DataFrame) -> pl.DataFrame:
    """Adds pop_cur / pop_note_cur and pop_cmp / pop_note_cmp for rate measures: the estimate of the
    June year of the window's first month (``population_table``)."""
    rates = w.filter(pl.col("is_rate"))
    cols = ["pop_cur", "pop_note_cur", "pop_cmp", "pop_note_cmp"]
    if rates.height == 0:
        return w.with_columns(
            pl.lit(None, pl.Float64).alias("pop_cur"),
            pl.lit(None, pl.Utf8).alias("pop_note_cur"),
            pl.lit(None, pl.Float64).alias("pop_cmp"),
            pl.lit(None, pl.Utf8).alias("pop_note_cmp"),
        )
    years = rates.select(
        pl.min_horizontal(june_year("start").min(), june_year("c_start").min()).alias("a"),
        pl.max_horizontal(june_year("start").max(), june_year("c_start").max()).alias("b"),
    ).row(0)
    table = population_table(pop, rates["force_id"].unique().to_list(), years[0], years[1])
    w = w.with_columns(june_year("start").alias("_y_cur"), june_year("c_start").alias("_y_cmp"))
    for side in ("cur", "cmp"):
        w = w.join(table.rename({"year": f"_y_{side}", "population": f"pop_{side}", "pop_note": f"pop_note_{side}"}), on=["force_id", f"_y_{side}"], how="left")
    not_rate = ~pl.col("is_rate")
    return w.with_columns([pl.when(not_rate).then(None).otherwise(pl.col(c)).alias(c) for c in cols]).drop("_y_cur", "_y_cmp")


def published_baselines(plan: pl.DataFrame, defs: Definitions, published: pl.DataFrame | None) -> pl.DataFrame:
    """force_id, source_id, baseline, baseline_text: the published ye_jun19 count of each force's
    source measures that declare a published offence group (``_published_baseline``)."""
    rows = []
    if published is not None and published.height:
        for force_id, sid in plan.select("force_id", "source_id").unique().sort("force_id", "source_id").iter_rows():
            found = _published_baseline(defs.get(sid), force_id, published)
            if found is not None:
                rows.append((force_id, sid, found[0], found[1]))
    return pl.DataFrame(rows, schema={"force_id": pl.Utf8, "source_id": pl.Utf8, "baseline": pl.Float64, "baseline_text": pl.Utf8}, orient="row")


def _published_baseline(m: Measure, force_id: str, published: pl.DataFrame | None) -> tuple[float, str] | None:
    """The ye_jun19 count of a measure from the published statistics, with where it came from."""
    if published is None or published.height == 0 or not m.published_group:
        return None
    from etl.core.published import force_area

    area = force_area(force_id)
    if area is None or area["area_code"] is None:
        return None
    rows = published.filter(
        (pl.col("area_code") == area["area_code"])
        & (pl.col("offence_group") == m.published_group)
        & (pl.col("period_start") == str(YE_JUN19.start))
        & (pl.col("period_end") == str(YE_JUN19.end))
        & pl.col("value").is_not_null()
    )
    if rows.height == 0:
        return None
    r = rows.sort("source_file").row(0, named=True)
    return float(r["value"]), f"ONS PFA table {r['table']} '{m.published_group}', {r['source_file']} (sha256 {r['source_sha256'][:12]})"


def _force_external_rows(m: Measure, defs: Definitions, force_id: str, run_id: str, external: pl.DataFrame | None) -> pl.DataFrame:
    """[EXTERNAL] measures: the published figure as given, with the previous period as comparison."""
    if external is None or external.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    mine = external.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == m.id)).sort("period_end")
    rows = []
    for r in mine.iter_rows(named=True):
        prev = mine.filter((pl.col("period_end") < r["period_end"]) & (pl.col("period") == r["period"])).tail(1)
        p: dict[str, Any] | None = prev.row(0, named=True) if prev.height else None
        change = (r["value"] - p["value"]) if p and r["value"] is not None and p["value"] is not None else None
        pct = change / p["value"] * 100 if change is not None and p and p["value"] else None
        rows.append(
            {
                # a published financial year is fytd at its March; agg3y (three registration years) is kept
                "force_id": force_id,
                "measure_id": m.id,
                "family": m.family,
                "period": "fytd" if r["period"] == "fy" else r["period"],
                "period_start": r["period_start"],
                "period_end": r["period_end"],
                "value": r["value"],
                "unit": m.unit,
                "comparison": "sply" if p else None,
                "comparison_start": p["period_start"] if p else None,
                "comparison_end": p["period_end"] if p else None,
                "comparison_value": p["value"] if p else None,
                "change_abs": change,
                "change_pct": pct,
                "target": m.target.text if m.target else f"direction: {m.direction}",
                "status": "monitor",
                "definition_version": f"{defs.label_for(m)}; external: {r['source']}",
                "run_id": run_id,
                "note": f"published figure from {r['source']}" + ("" if p else "; no earlier published period loaded"),
                "comparison_source": "external_statistics" if p else None,
            }
        )
    return pl.DataFrame(rows, schema=MEASURE_SCHEMA)


def external_rows(defs: Definitions, measures: pl.DataFrame, forces: pl.DataFrame, run_id: str, external: pl.DataFrame | None) -> list[pl.DataFrame]:
    """The [EXTERNAL] measure rows of every force with the measure's profile, with their sort keys."""
    if external is None or external.height == 0:
        return []
    out = []
    for mid, m_rank, public_source in measures.filter(pl.col("kind") == "external").select("measure_id", "m_rank", "public_source").iter_rows():
        for force_id, force_rank, public, own in forces.select("force_id", "force_rank", "public", "force_profile").iter_rows():
            if public if public_source else own:
                rows = _force_external_rows(defs.get(mid), defs, force_id, run_id, external)
                out.append(rows.with_row_index("row_rank").with_columns(pl.lit(force_rank).alias("force_rank"), pl.lit(m_rank).alias("m_rank")))
    return out
