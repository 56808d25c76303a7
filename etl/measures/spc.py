"""Statistical process control: is a monthly series within normal variation, or has it stepped?

For each force and each monthly count (or sum) measure, an XmR (individuals) chart
(domain/measures.md section 1, "Statistical normal variation", and DQ05):

* first baseline run: the 12 months of the national baseline year (July 2018 - June 2019) when all are
  loaded, otherwise the first 12 loaded months;
* centre line, limits and signals by the XmR rules of `etl.measures.xmr` (limits = centre +/- 2.66 x
  mean moving range of the baseline run; runs of 7 on one side of the centre line);
* limits recalculated at a sustained shift (`etl.measures.xmr.phases`, the rule in `RECALCULATION_RULE`):
  a run of 7 or more months on one side of the centre line, confirmed as a step change by the 12 months
  from its first month, starts a new phase whose limits come from those 12 months (the "new base line"
  of the February 2015 performance report). Each point states its ``phase`` (1, 2, ...), the first month
  of the phase (``phase_start``) and the baseline run of its limits (``baseline_start``/``baseline_end``).

Seasonality (`seasonal_factors`, `SEASONALITY_NOTE`): where a series of at least 36 months has a clear
calendar-month pattern, each month is judged against what is normal for its calendar month: the chart
works on value / seasonal factor, and the centre line and limits of the table are multiplied back by the
factor (``seasonal_factor``, 1.0 for a series not adjusted). Other series are not seasonally adjusted;
a recalculation needs a whole year's mean to have moved, so a seasonal run alone does not move limits.

One reason to change: which series are charted and over which baseline runs. Points are flagged, never
dropped. The result is the ``spc`` table: one row per force, measure and month, which the national
measures page draws as the trend chart.
"""

from __future__ import annotations

import logging

import polars as pl

from etl.core.periods import YE_JUN19, Month, month_index_expr
from etl.measures.components import MonthlyComponents, monthly_components
from etl.measures.definitions import Definitions, load_definitions
from etl.measures.xmr import RUN_LENGTH, SHIFT_BASELINE, XMR_FACTOR, chart, phases

__all__ = [
    "BASELINE_MONTHS",
    "RECALCULATION_RULE",
    "RUN_LENGTH",
    "SEASONALITY_NOTE",
    "SPC_SCHEMA",
    "XMR_FACTOR",
    "control_charts",
    "describe",
    "month_label",
]

log = logging.getLogger(__name__)

BASELINE_MONTHS = 12
SEASONAL_MIN_MONTHS = 36  # three years: each calendar month's factor from at least two years
SEASONAL_F = 3.0  # the calendar-month pattern must vary this many times more than its noise alone would

# The rule as the pages state it (the national page and the chart's caption).
RECALCULATION_RULE = (
    f"Control limits are recalculated at a sustained shift: a run of {RUN_LENGTH} or more months on one side of the centre line, "
    f"confirmed as a step change by the mean of the {SHIFT_BASELINE} months from its start, starts a new base line "
    f"whose limits come from those {SHIFT_BASELINE} months (after NHS England's Making Data Count guidance and Wheeler's XmR practice). "
    "The months of a base line set its centre line, so they are judged against its limits only; runs are counted after them."
)
SEASONALITY_NOTE = (
    f"Where a series of at least {SEASONAL_MIN_MONTHS} months has a clear seasonal pattern, each month is judged against "
    "what is normal for its calendar month (the centre line and limits follow seasonal factors: the ratio to the centred "
    "12-month moving average, averaged over the years); other series are not seasonally adjusted and a run may reflect the season."
)

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
    "phase": pl.Int32,
    "phase_start": pl.Utf8,
    "seasonal_factor": pl.Float64,
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
    keys = ["force_id", "measure_id"]
    data = seasonal_factors(data, keys).with_columns((pl.col("value") / pl.col("seasonal_factor")).alias("adjusted"))
    out = chart(phases(data, keys, "adjusted", "idx", baseline="in_base"), [*keys, "phase"], "adjusted", "idx", baseline="in_base")
    out = out.with_columns(
        pl.col("idx").min().over(*keys, "phase").alias("phase_first"), *[pl.col(c) * pl.col("seasonal_factor") for c in ("centre", "lower", "upper")]
    ).sort([*keys, "idx"])
    month = lambda c: (pl.col(c) // 12).cast(pl.Utf8) + "-" + ((pl.col(c) % 12) + 1).cast(pl.Utf8).str.zfill(2)  # noqa: E731
    log.info(
        "control charts: %d points of %d series, %d recalculation(s) of limits",
        out.height,
        out.select(keys).n_unique(),
        out.select(*keys, "phase").n_unique() - out.select(keys).n_unique(),
    )
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
        "phase",
        month("phase_first").alias("phase_start"),
        "seasonal_factor",
    ).select([pl.col(k).cast(t) for k, t in SPC_SCHEMA.items()])


def seasonal_factors(data: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``data`` (``keys``, month index ``idx``, ``value``; sorted) with ``seasonal_factor``: the
    multiplicative factor of the point's calendar month where its series has a clear seasonal pattern,
    1.0 elsewhere.

    A factor is the mean over the years of value / centred 12-month moving average for that calendar
    month, the 12 factors scaled to average 1. The pattern is used when the series has at least
    SEASONAL_MIN_MONTHS months, every calendar month has a positive factor, and the factors vary more
    than SEASONAL_F times the variance their own year-to-year noise would give (a rough F test), so a
    small or flat series is not made noisier by adjusting it."""
    twelve = pl.col("value").rolling_mean(12)
    cal = (pl.col("idx") % 12).alias("_cal")
    ratios = (
        data.with_columns(((twelve.shift(-5) + twelve.shift(-6)) / 2).over(keys).alias("_cma"), pl.len().over(keys).alias("_n"), cal)
        .filter((pl.col("_n") >= SEASONAL_MIN_MONTHS) & (pl.col("_cma") > 0))
        .with_columns((pl.col("value") / pl.col("_cma")).alias("_r"))
    )
    per = ratios.group_by(*keys, "_cal").agg(pl.col("_r").mean().alias("_s"), (pl.col("_r").var() / pl.len()).alias("_se2"))
    fit = per.group_by(keys).agg(
        pl.len().alias("_cals"),
        pl.col("_s").min().alias("_min"),
        pl.col("_s").mean().alias("_mean"),
        pl.col("_s").var().alias("_between"),
        pl.col("_se2").mean().alias("_noise"),
    )
    clear = fit.filter((pl.col("_cals") == 12) & (pl.col("_min") > 0) & (pl.col("_between") > SEASONAL_F * pl.col("_noise")))
    factors = per.join(clear.select(*keys, "_mean"), on=keys).select(*keys, "_cal", (pl.col("_s") / pl.col("_mean")).alias("seasonal_factor"))
    return data.with_columns(cal).join(factors, on=[*keys, "_cal"], how="left").with_columns(pl.col("seasonal_factor").fill_null(1.0)).drop("_cal")


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
