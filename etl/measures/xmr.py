"""XmR (individuals) charts: is a monthly series within its normal variation?

One reason to change: the XmR rules (domain/measures.md section 1, "Statistical normal variation").
Used by the control charts of the measures (`etl.measures.spc`) and by the ``volume_vs_history`` check
of a month against the loaded history (`etl.core.cross_month`).

For each series (the rows sharing ``keys``, ordered by ``order``) over its baseline points:

* centre line = mean of the values;
* moving range = |value - previous value|; limits = centre +/- 2.66 x mean moving range, the lower
  limit not below zero;
* a point is ``outside_limits`` when above the upper or below the lower limit; ``run_above`` /
  ``run_below`` marks every point of a run of 7 or more consecutive points on one side of the centre.

A series of one point has no moving range: its limits are the centre (``no_range="centre"``, the control
charts) or unknown (``no_range="unknown"``: nothing is judged outside them, the volume check).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

XMR_FACTOR = 2.66
RUN_LENGTH = 7

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
    side = pl.when(v > pl.col("centre")).then(1).when(v < pl.col("centre")).then(-1).otherwise(0)
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
