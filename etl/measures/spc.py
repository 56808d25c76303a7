"""Statistical process control: is a monthly series within normal variation, or has it stepped?

For each force and each monthly count (or sum) measure, an XmR (individuals) chart
(domain/measures.md section 1, "Statistical normal variation", and DQ05):

* baseline run: the 12 months of the national baseline year (July 2018 - June 2019) when all are
  loaded, otherwise the first 12 loaded months (stated in ``baseline_start``/``baseline_end``);
* centre line, limits and signals by the XmR rules of `etl.measures.xmr` (limits = centre +/- 2.66 x
  mean moving range of the baseline run; runs of 7 on one side of the centre line).

One reason to change: which series are charted and over which baseline run. Points are flagged, never
dropped. The result is the ``spc`` table: one row per force, measure and month, which the national
measures page draws as the trend chart.
"""

from __future__ import annotations

import logging

import polars as pl

from etl.core.periods import YE_JUN19, Month, month_index_expr
from etl.measures.components import MonthlyComponents, monthly_components
from etl.measures.definitions import Definitions, load_definitions
from etl.measures.xmr import RUN_LENGTH, XMR_FACTOR, chart

__all__ = ["BASELINE_MONTHS", "RUN_LENGTH", "SPC_SCHEMA", "XMR_FACTOR", "control_charts", "describe", "month_label"]

log = logging.getLogger(__name__)

BASELINE_MONTHS = 12

SPC_SCHEMA = {
    "force_id": pl.Utf8,
    "measure_id": pl.Utf8,
    "month": pl.Utf8,
    "value": pl.Float64,
    "centre": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "baseline_start": pl.Utf8,
    "baseline_end": pl.Utf8,
    "signal": pl.Utf8,
}


def control_charts(
    tables: dict[str, pl.LazyFrame | None], loaded: pl.DataFrame, defs: Definitions | None = None, *, components: MonthlyComponents | None = None
) -> pl.DataFrame:
    """The spc table for every force in ``loaded`` (force_id, month, extract).

    ``components``: the monthly components of ``tables`` when the caller already has them (e.g. from
    computing the measures of the same tables); else computed here for the charted measures only."""
    defs = defs or load_definitions()
    charted = [m for m in defs.measures if m.kind in ("count", "sum") and not m.snapshot]
    comps = (components or monthly_components(tables, defs, charted)).components
    kinds = {m.id: m.extract for m in charted}
    series = comps.filter(pl.col("measure_id").is_in(list(kinds)) & (pl.col("component") == "value"))
    if "extract" not in loaded.columns:
        loaded = loaded.with_columns(pl.lit("recorded_crime").alias("extract"))
    months = loaded.select("force_id", "extract", month_index_expr("month").alias("idx")).unique()
    extracts = pl.DataFrame({"measure_id": list(kinds), "extract": list(kinds.values())})
    # every loaded month of the measure's extract, zero where nothing matched
    grid = months.join(extracts, on="extract").drop("extract")
    data = grid.join(series.select("force_id", "measure_id", "idx", "value"), on=["force_id", "measure_id", "idx"], how="left").with_columns(
        pl.col("value").fill_null(0.0)
    )
    if data.height == 0:
        return pl.DataFrame(schema=SPC_SCHEMA)
    base_idx = list(range(YE_JUN19.start.index, YE_JUN19.end.index + 1))
    data = data.sort("force_id", "measure_id", "idx")
    has_base = data.group_by("force_id", "measure_id").agg(pl.col("idx").is_in(base_idx).sum().alias("n_base"))
    data = data.join(has_base, on=["force_id", "measure_id"])
    data = data.with_columns(
        pl.when(pl.col("n_base") == len(base_idx))
        .then(pl.col("idx").is_in(base_idx))
        .otherwise(pl.int_range(pl.len()).over("force_id", "measure_id") < BASELINE_MONTHS)
        .alias("in_base")
    )
    out = chart(data, ["force_id", "measure_id"], "value", "idx", baseline="in_base")
    month = lambda c: (pl.col(c) // 12).cast(pl.Utf8) + "-" + ((pl.col(c) % 12) + 1).cast(pl.Utf8).str.zfill(2)  # noqa: E731
    log.info("control charts: %d points of %d series", out.height, out.select("force_id", "measure_id").n_unique())
    return out.select(
        "force_id",
        "measure_id",
        month("idx").alias("month"),
        "value",
        "centre",
        "lower",
        "upper",
        month("first").alias("baseline_start"),
        month("last").alias("baseline_end"),
        "signal",
    ).select([pl.col(k).cast(t) for k, t in SPC_SCHEMA.items()])


def describe(row: dict) -> str:
    """Plain words for one point of a chart."""
    where = f"{row['month']}: {row['value']:.0f} (normal range {row['lower']:.0f}-{row['upper']:.0f}, centre {row['centre']:.1f})"
    return {
        "outside_limits": f"{where}: outside normal variation",
        "run_above": f"{where}: part of a run of {RUN_LENGTH}+ months above the centre line (step change up)",
        "run_below": f"{where}: part of a run of {RUN_LENGTH}+ months below the centre line (step change down)",
    }.get(row.get("signal") or "", f"{where}: within normal variation")


def month_label(idx: int) -> str:
    return str(Month(idx))
