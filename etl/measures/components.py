"""Monthly components: each measure's monthly sums per force and month, computed with polars.

One reason to change: how a month of an extract's rows becomes the numbers the windows add up.

Each extract is aggregated once per force-month to the columns its measures filter on (a column only
compared with bounds, e.g. victim_age, to the classes the bounds tell apart); every measure's monthly
components of that extract then come out of one group_by:

* count / sum: ``value``; share: ``num`` and ``den``; mean: ``sum`` and ``cnt``; median: ``cnt`` and a
  histogram of whole values (a window's median is taken from the histograms of its months).

`monthly_components` returns them as a `MonthlyComponents`; a caller that needs them twice (the measures
and the control charts of the same tables) computes them once and passes them to both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import polars as pl

from etl.core.periods import month_index_expr
from etl.measures.definitions import Definitions, Filter, Measure

log = logging.getLogger(__name__)

COMPUTED_KINDS = ("count", "sum", "share", "mean", "median")
COMPONENT_SCHEMA = {"force_id": pl.Utf8, "idx": pl.Int32, "value": pl.Float64, "component": pl.Utf8, "measure_id": pl.Utf8}
HISTOGRAM_SCHEMA = {"force_id": pl.Utf8, "idx": pl.Int32, "v": pl.Float64, "n": pl.Int64, "measure_id": pl.Utf8}


class MonthlyComponents(NamedTuple):
    """components: force_id, idx, value, component, measure_id - the monthly sums every window is built
    from. histograms: force_id, idx, v, n, measure_id - rows n with value v (whole seconds or days), for
    medians. ``idx`` is the month index (`etl.core.periods.Month`)."""

    components: pl.DataFrame
    histograms: pl.DataFrame


def with_outcomes(crimes: pl.LazyFrame, outcomes: pl.LazyFrame | None) -> pl.LazyFrame:
    """Each crime with its latest outcome type (as text) as at the latest extract (cohort basis)."""
    if outcomes is None:
        return crimes.with_columns(pl.lit(None, pl.Utf8).alias("outcome_type"))
    latest = outcomes.group_by("force_id", "crime_ref").agg(pl.col("outcome_type").sort_by("outcome_date", "month", "source_row").last().cast(pl.Utf8))
    return crimes.join(latest, on=["force_id", "crime_ref"], how="left")


CRIME_COLUMNS = ("hocr_code", "recorded_date", "domestic_abuse", "status")


def with_crimes(outcomes: pl.LazyFrame, crimes: pl.LazyFrame | None) -> pl.LazyFrame:
    """Each outcome with its crime's offence code, recorded date, DA flag and status (null if never loaded)."""
    if crimes is None:
        return outcomes.with_columns([pl.lit(None).alias(c) for c in CRIME_COLUMNS])
    return outcomes.join(
        crimes.select("force_id", "crime_ref", *CRIME_COLUMNS).unique(["force_id", "crime_ref"], keep="last"), on=["force_id", "crime_ref"], how="left"
    )


def _range_cuts(measures: list[Measure], schema: pl.Schema) -> dict[str, list[tuple[float, int]]]:
    """Columns the measures only compare with fixed bounds (``range``, whole-number columns) or test
    for presence (``present``/``absent``), with the cuts the bounds make: ``(bound, 0)`` for
    ``>= bound`` (the bound is on the upper side of the cut), ``(bound, 1)`` for ``<= bound`` (the bound
    is on the lower side); no cuts for a column only tested for presence.

    A column also filtered by value (``where``/``where_not``/``flags``) or summed, averaged or
    medianed is not listed: its exact values are kept."""
    exact: set[str] = set()
    cuts: dict[str, set[tuple[float, int]]] = {}
    for m in measures:
        if m.column:
            exact.add(m.column)
        for f in m.filters:
            exact |= set(f.where) | set(f.where_not) | set(f.flags) | ({"status"} if f.status else set()) | ({"hocr_code"} if f.groups else set())
            for c in (*f.present, *f.absent):
                cuts.setdefault(c, set())
            for c, (lo, hi) in f.ranges.items():
                if not (c in schema and schema[c].is_integer()):
                    exact.add(c)
                cuts.setdefault(c, set()).update(([(lo, 0)] if lo is not None else []) + ([(hi, 1)] if hi is not None else []))
    return {c: sorted(v) for c, v in cuts.items() if c not in exact and c in schema}


def _range_class(col: str, cuts: list[tuple[float, int]]) -> pl.Expr:
    """The column reduced to one representative value per class of values that every bound of the
    measures treats alike (so the monthly aggregate has a row per class, not per value; nulls stay
    null). The cuts split the number line into classes; each class is represented by a value inside
    it: the bound it contains, else the midpoint between its cuts (or one beyond the outer cut)."""
    v = pl.col(col)

    def above(cut: tuple[float, int]) -> pl.Expr:  # the side of a cut a value falls on
        bound, side = cut
        return v >= bound if side == 0 else v > bound

    def representative(i: int) -> float:  # of the class between cuts[i - 1] and cuts[i]
        if not cuts:
            return 0.0  # only presence matters
        lower = cuts[i - 1] if i > 0 else None
        upper = cuts[i] if i < len(cuts) else None
        if lower is not None and lower[1] == 0:
            return float(lower[0])  # [bound, ...: the bound itself is in the class
        if upper is not None and upper[1] == 1:
            return float(upper[0])  # ..., bound]
        if lower is None:
            return float(upper[0]) - 1.0  # type: ignore[index]
        if upper is None:
            return float(lower[0]) + 1.0
        return (float(lower[0]) + float(upper[0])) / 2.0

    expr: Any = pl.when(v.is_null()).then(pl.lit(None, pl.Float64))
    for i in range(len(cuts), 0, -1):
        expr = expr.when(above(cuts[i - 1])).then(pl.lit(representative(i)))
    return expr.otherwise(pl.lit(representative(0))).alias(col)


def _base(lf: pl.LazyFrame, measures: list[Measure]) -> pl.DataFrame:
    """One extract aggregated to (force, month, every column its measures use) with a row count n.

    Columns the measures only compare with bounds are first reduced to classes (``_range_class``), e.g.
    victim_age to "24 or under" / "over 24" when that is the only age bound. The aggregation runs on
    polars' streaming engine (it reads the table in batches instead of all at once)."""
    derive = {}
    for m in measures:
        derive.update(m.derive)
    if derive:
        lf = lf.with_columns(
            [
                ((pl.col(b) - pl.col(a)).dt.total_seconds() if unit == "seconds_between" else (pl.col(b) - pl.col(a)).dt.total_days())
                .cast(pl.Int64)
                .alias(name)
                for name, (a, b, unit) in derive.items()
            ]
        )
    keys: set[str] = set()
    for m in measures:
        for f in m.filters:
            keys |= f.columns()
        if m.column:
            keys.add(m.column)
    cols = ["force_id", "month", *sorted(keys)]
    lf = lf.select(cols)
    classes = _range_cuts(measures, lf.collect_schema())
    if classes:
        lf = lf.with_columns([_range_class(c, cuts) for c, cuts in classes.items()])
    return lf.group_by(cols).agg(pl.len().cast(pl.Int64).alias("n")).with_columns(month_index_expr("month").alias("idx")).collect(engine="streaming")


def group_column(groups: frozenset, membership: pl.DataFrame) -> pl.Expr:
    """Whether a row's hocr_code is in one of the offence groups, by the group version in force in the
    row's month (a code in two groups of a union counts once)."""
    versions = (
        membership.filter(pl.col("group").is_in(sorted(groups)))
        .group_by("from_index", "to_index")
        .agg(pl.col("code").unique().sort())
        .sort("from_index", "to_index")
    )
    inside = pl.lit(False)
    for lo, hi, codes in versions.iter_rows():
        inside = inside | (pl.col("hocr_code").is_in(codes) & pl.col("idx").is_between(lo, hi))
    return inside.fill_null(False)


def _with_group_columns(base: pl.DataFrame, measures: list[Measure], membership: pl.DataFrame) -> tuple[pl.DataFrame, dict[frozenset, str]]:
    """The base with one boolean column per set of offence groups the measures filter on
    (``group_column``); hocr_code becomes categorical (each code text stored once)."""
    sets = sorted({frozenset(f.groups) for m in measures for f in m.filters if f.groups}, key=sorted)
    names = {s: f"_in_groups_{i}" for i, s in enumerate(sets)}
    if not sets:
        return base, names
    base = base.with_columns(pl.col("hocr_code").cast(pl.Utf8).cast(pl.Categorical))
    return base.lazy().with_columns([group_column(s, membership).alias(name) for s, name in names.items()]).collect(), names


def _rows_expr(f: Filter, group_columns: dict[frozenset, str]) -> pl.Expr:
    """Whether a base row matches a filter (its conditions and its offence groups)."""
    e = f.expr()
    if f.groups:
        e = e & pl.col(group_columns[frozenset(f.groups)])
    return e


def _component_sums(m: Measure, group_columns: dict[frozenset, str]) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(component, monthly sum, rows counted) of a measure, as expressions over the base rows.

    A component has a month only when at least one row counted in it (as when rows are selected then
    summed): count/share components are row counts; a sum is column x n over the matching rows; a
    mean's sum and count (and a median's count) are over the matching rows with a value."""
    rows = _rows_expr(m.filter, group_columns)
    n = pl.col("n")

    def over(mask: pl.Expr, value: pl.Expr = n) -> pl.Expr:
        return pl.when(mask).then(value).otherwise(None)

    if m.kind == "count":
        return [("value", over(rows), over(rows))]
    column = pl.col(m.column or "")  # sum / mean / median always name one (Measure's rules)
    if m.kind == "sum":
        return [("value", over(rows, column * n), over(rows))]
    if m.kind == "share":
        num = rows & _rows_expr(m.numerator_filter, group_columns) if m.numerator_filter else rows
        return [("num", over(num), over(num)), ("den", over(rows), over(rows))]
    valid = rows & column.is_not_null()
    if m.kind == "mean":
        return [("sum", over(valid, column * n), over(valid)), ("cnt", over(valid), over(valid))]
    return [("cnt", over(valid), over(valid))]  # median (its histogram: _histogram)


def _histogram(base: pl.DataFrame, m: Measure, group_columns: dict[frozenset, str]) -> pl.DataFrame:
    """A median measure's monthly histogram: rows n by value v (whole seconds), per force and month."""
    column = m.column or ""  # a median always names one (Measure's rules)
    valid = base.filter(_rows_expr(m.filter, group_columns) & pl.col(column).is_not_null())
    return (
        valid.group_by("force_id", "idx", column)
        .agg(pl.col("n").sum())
        .rename({column: "v"})
        .with_columns(pl.col("v").cast(pl.Float64), pl.lit(m.id).alias("measure_id"))
    )


def _components_of(base: pl.DataFrame, measures: list[Measure], membership: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Monthly components (long: force_id, idx, value, component, measure_id) and median histograms
    of the measures of one extract, from its base; every measure's sums in one group_by."""
    base, group_columns = _with_group_columns(base, measures, membership)
    sums: list[pl.Expr] = []
    names: list[tuple[str, str, str]] = []
    for m in measures:
        for component, value, counted in _component_sums(m, group_columns):
            names.append((f"_s{len(names)}", m.id, component))
            sums += [value.sum().cast(pl.Float64).alias(names[-1][0]), counted.count().alias(names[-1][0] + "_rows")]
    wide = base.lazy().group_by("force_id", "idx").agg(sums).collect()  # lazy: conditions shared by measures are computed once
    parts = [
        wide.filter(pl.col(col + "_rows") > 0).select(
            "force_id", "idx", pl.col(col).alias("value"), pl.lit(component).alias("component"), pl.lit(mid).alias("measure_id")
        )
        for col, mid, component in names
    ]
    hists = [_histogram(base, m, group_columns) for m in measures if m.kind == "median"]
    return pl.concat(parts), hists


def monthly_components(tables: dict[str, pl.LazyFrame | None], defs: Definitions, measures: Iterable[Measure] | None = None) -> MonthlyComponents:
    """The monthly components and median histograms of every computed measure (or of ``measures``
    only) whose extract is in ``tables`` (curated tables by extract name; crime_outcomes measures read
    their crimes' columns from recorded_crime, recorded_crime measures their crimes' latest outcome from
    crime_outcomes). A measure's components do not depend on which other measures are computed with it."""
    started = time.perf_counter()
    membership = defs.groups.membership
    parts, hists = [], []
    # a per-sample share (an audit) has no monthly components: `etl.measures.samples` computes it per sample
    computed = [m for m in (defs.measures if measures is None else measures) if m.kind in COMPUTED_KINDS and not m.sample_period]
    for extract in sorted({m.extract for m in computed}):
        lf = tables.get(extract)
        if lf is None:
            continue
        measures = [m for m in computed if m.extract == extract]
        if extract == "recorded_crime" and any(m.needs_outcome for m in measures):
            lf = with_outcomes(lf, tables.get("crime_outcomes"))
        if extract == "crime_outcomes":
            lf = with_crimes(lf, tables.get("recorded_crime"))
        comps, h = _components_of(_base(lf, measures), measures, membership)
        parts.append(comps)
        hists += h
    components = (
        pl.concat([p.select([pl.col(k).cast(t) for k, t in COMPONENT_SCHEMA.items()]) for p in parts]) if parts else pl.DataFrame(schema=COMPONENT_SCHEMA)
    )
    histograms = (
        pl.concat([h.select([pl.col(k).cast(t) for k, t in HISTOGRAM_SCHEMA.items()]) for h in hists]) if hists else pl.DataFrame(schema=HISTOGRAM_SCHEMA)
    )
    log.info(
        "monthly components: %d rows, %d histogram rows from %d extract(s) in %.2f s",
        components.height,
        histograms.height,
        len(parts),
        time.perf_counter() - started,
    )
    return MonthlyComponents(components, histograms)


def monthly_counts(tables: dict[str, pl.LazyFrame | None], defs: Definitions, components: MonthlyComponents | None = None) -> pl.DataFrame:
    """Monthly value of every count measure: force_id, idx (month index), value, measure_id (from
    ``components`` when given, else computed for the count measures only)."""
    counts = [m for m in defs.measures if m.kind == "count"]
    comps = (components or monthly_components(tables, defs, counts)).components
    return comps.filter(pl.col("measure_id").is_in([m.id for m in counts]) & (pl.col("component") == "value")).select("force_id", "idx", "value", "measure_id")
