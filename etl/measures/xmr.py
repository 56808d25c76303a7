"""XmR (individuals) charts: is a monthly series within its normal variation?

One reason to change: the XmR rules (domain/measures.md section 1, "Statistical normal variation").
Used by the control charts of the measures (`etl.measures.spc`) and by the ``volume_vs_history`` check
of a month against the loaded history (`etl.core.cross_month`).

For each series (the rows sharing ``keys``, ordered by ``order``) over its baseline points:

* centre line = mean of the values;
* moving range = |value - previous value|; limits = centre +/- 2.66 x mean moving range, the lower
  limit not below zero;
* a point is ``outside_limits`` when above the upper or below the lower limit; ``run_above`` /
  ``run_below`` marks every point of a run of 7 or more consecutive points on one side of the centre,
  counted among the points after the baseline: the baseline points set the centre line, so they are
  judged against the limits only (a run inside a baseline says the base line moved within its own
  year; the recalculation rule below deals with a lasting move after it).

A series of one point has no moving range: its limits are the centre (``no_range="centre"``, the control
charts) or unknown (``no_range="unknown"``: nothing is judged outside them, the volume check).

Limits recalculated at a sustained shift (`phases`; the control charts only): the limits of a phase hold
until a run of 7 or more points on one side of its centre line, after the phase's baseline, is confirmed
as a step change: the 12 points from the first point of the run (a whole year of months, so the season
averages out) have a mean on the run's side of the centre line and more than 3 standard errors of a
12-point mean away from it (sigma estimated as mean moving range / 1.128). The new phase starts at the
first point of the run; its baseline is those 12 points and its limits hold until the next confirmed
shift. A run without 12 points from its start yet, a run whose year does not confirm it (e.g. a seasonal
run), or a single spike does not move the limits. After NHS England's "Making Data Count" guidance
(recalculate limits only when a run shows a sustained change) and Wheeler's XmR practice.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

XMR_FACTOR = 2.66
RUN_LENGTH = 7
SHIFT_BASELINE = 12  # points of the baseline of a new phase (and needed to confirm a shift)
STEP_SIGMAS = 3.0  # how far (in standard errors of a SHIFT_BASELINE-point mean) the new mean must move
D2 = 1.128  # sigma = mean moving range / d2 for moving ranges of two points

LIMIT_COLUMNS = ("centre", "mr_bar", "first", "last", "lower", "upper")


def limits(points: pl.DataFrame, keys: list[str], value: str, order: str, *, no_range: Literal["centre", "unknown"] = "centre") -> pl.DataFrame:
    """One row per series: ``keys``, centre, mr_bar (mean moving range), first and last (``order`` of
    its first and last point), lower and upper limits."""
    mr = (pl.col(value) - pl.col(value).shift(1).over(keys)).abs()
    spread = pl.col("mr_bar").fill_null(0) if no_range == "centre" else pl.col("mr_bar")
    return (
        points.sort([*keys, order])
        .with_columns(mr.alias("_mr"))
        .group_by(keys)
        .agg(
            pl.col(value).mean().alias("centre"),
            pl.col("_mr").mean().alias("mr_bar"),
            pl.col(order).min().alias("first"),
            pl.col(order).max().alias("last"),
        )
        .with_columns(
            (pl.col("centre") - XMR_FACTOR * spread).clip(lower_bound=0).alias("lower"),
            (pl.col("centre") + XMR_FACTOR * spread).alias("upper"),
        )
    )


def outside(value: pl.Expr) -> pl.Expr:
    """Whether a point lies outside its series' limits (null when the limits are unknown)."""
    return (value > pl.col("upper")) | (value < pl.col("lower"))


def chart(points: pl.DataFrame, keys: list[str], value: str, order: str, *, baseline: str) -> pl.DataFrame:
    """Every point with its series' limits (computed from the points where the boolean column
    ``baseline`` holds) and its ``signal`` (outside_limits, run_above, run_below or null), sorted by
    ``keys`` and ``order``. Points are flagged, never dropped; a series without baseline points is left out."""
    out = points.join(limits(points.filter(pl.col(baseline)), keys, value, order), on=keys).sort([*keys, order])
    v = pl.col(value)
    # a baseline point sets the centre line and is judged against the limits only: it neither starts nor
    # extends a run (see the module docstring)
    side = pl.when(pl.col(baseline)).then(0).when(v > pl.col("centre")).then(1).when(v < pl.col("centre")).then(-1).otherwise(0)
    out = out.with_columns(side.alias("_side"))
    out = out.with_columns(pl.col("_side").rle_id().over(keys).alias("_run"))
    out = out.with_columns(pl.len().over(*keys, "_run").alias("_run_len"))
    signal = (
        pl.when(outside(v))
        .then(pl.lit("outside_limits"))
        .when((pl.col("_run_len") >= RUN_LENGTH) & (pl.col("_side") == 1))
        .then(pl.lit("run_above"))
        .when((pl.col("_run_len") >= RUN_LENGTH) & (pl.col("_side") == -1))
        .then(pl.lit("run_below"))
        .otherwise(None)
    )
    return out.with_columns(signal.alias("signal")).drop("_side", "_run", "_run_len")


def phases(points: pl.DataFrame, keys: list[str], value: str, order: str, *, baseline: str) -> pl.DataFrame:
    """``points`` sorted by ``keys`` and ``order`` with ``phase`` (1, 2, ... in each series: the limits
    are recalculated at each confirmed sustained shift, see the module docstring), and the boolean
    ``baseline`` column rewritten to the baseline points of each phase (phase 1: the given baseline
    points; later phases: the SHIFT_BASELINE points from the phase's first point). Chart the result with
    ``chart(out, [*keys, "phase"], ...)``. A series without baseline points has no phases (phase null).

    One loop per phase (a handful), over every series at once: each pass finds, in every series still
    open, the first confirmed shift after its current baseline."""
    v = pl.col(value)
    pts = points.sort([*keys, order]).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias("_pos"),
        # mean of this point and the SHIFT_BASELINE - 1 after it (null near the end of the series)
        v.rolling_mean(SHIFT_BASELINE).shift(-(SHIFT_BASELINE - 1)).over(keys).alias("_ahead"),
        # whether those points vary at all (limits of no width would flag every later change)
        (v.rolling_max(SHIFT_BASELINE) > v.rolling_min(SHIFT_BASELINE)).shift(-(SHIFT_BASELINE - 1)).over(keys).alias("_varies"),
    )
    base = pts.filter(pl.col(baseline))
    current = limits(base, keys, value, "_pos").select(
        *keys, pl.lit(1, pl.Int32).alias("phase"), pl.lit(0, pl.Int64).alias("_start"), "first", "last", "centre", "mr_bar"
    )
    found = [current]
    side = pl.when(v > pl.col("centre")).then(1).when(v < pl.col("centre")).then(-1).otherwise(0)
    step = STEP_SIGMAS * pl.col("mr_bar").fill_null(0) / D2 / SHIFT_BASELINE**0.5
    while current.height:
        after = pts.join(current, on=keys).filter(pl.col("_pos") > pl.col("last")).with_columns(side.alias("_side"))
        after = after.with_columns(pl.col("_side").rle_id().over(keys).alias("_run"))
        after = after.with_columns(pl.len().over(*keys, "_run").alias("_run_len"), pl.col("_pos").min().over(*keys, "_run").alias("_run_start"))
        shifts = (
            after.filter(
                (pl.col("_pos") == pl.col("_run_start"))
                & (pl.col("_run_len") >= RUN_LENGTH)
                & (pl.col("_side") != 0)
                & ((pl.col("_ahead") - pl.col("centre")).sign() == pl.col("_side"))
                & ((pl.col("_ahead") - pl.col("centre")).abs() > step)
                & pl.col("_varies")
            )
            .group_by(keys)
            .agg(pl.col("_pos").min().alias("_start"), pl.col("phase").first())
        )
        new_base = pts.join(shifts, on=keys).filter(pl.col("_pos").is_between(pl.col("_start"), pl.col("_start") + SHIFT_BASELINE - 1))
        current = (
            limits(new_base, keys, value, "_pos")
            .join(shifts, on=keys)
            .select(*keys, (pl.col("phase") + 1).cast(pl.Int32).alias("phase"), "_start", "first", "last", "centre", "mr_bar")
        )
        found.append(current)
    starts = pl.concat(found).select(*keys, "phase", "_start", "first", "last").sort([*keys, "_start"])
    out = pts.join_asof(starts, left_on="_pos", right_on="_start", by=keys, check_sortedness=False)
    in_base = pl.when(pl.col("phase") == 1).then(pl.col(baseline)).otherwise(pl.col("_pos").is_between(pl.col("first"), pl.col("last")))
    return out.with_columns(in_base.fill_null(False).alias(baseline)).drop("_pos", "_ahead", "_varies", "_start", "first", "last").sort([*keys, order])
