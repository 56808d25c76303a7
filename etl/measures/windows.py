"""Windows: which months each (period, comparison) window of a measure covers, and what it adds up to.

One reason to change: window arithmetic - the period and comparison windows (tokens of
`etl.core.periods`), their sums of monthly components, their completeness and their medians.

* `spec_frame`   every (period, comparison) window at every period end: current start..end and
                 comparison c_start..c_end as month indexes, in report order (``spec_rank``);
* `cumulative`   running totals per series (a force's source measure) of its monthly components and
                 of its loaded months;
* `window_sums`  a window's sum = the difference of two running totals; complete when every month of
                 the window was loaded;
* `with_medians` medians (few measures) window by window from the monthly histograms;
* `with_signatures` the definition versions counting each window (a window straddling a change is
                 ``mixed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from etl.core.periods import (
    YE_JUN19,
    Month,
    comparison_window,
    period_applies,
    period_window,
)
from etl.measures.definitions import Definitions, Measure, signature_table

RUNNING_TOTAL_LEAD = 24  # running totals start this many months before a series' first month (or ye_jun19)


def running_start(first: pl.Expr) -> pl.Expr:
    """Where a series' running totals start: 24 months before the earlier of its first month and the
    ye_jun19 baseline (a window starting earlier is never complete)."""
    return pl.min_horizontal(first, pl.lit(YE_JUN19.start.index, pl.Int32)) - RUNNING_TOTAL_LEAD


@dataclass(frozen=True)
class WindowSpec:
    period: str
    comparison: str
    end: int
    start: int
    c_start: int
    c_end: int


_SPEC_SCHEMA = {"period": pl.Utf8, "comparison": pl.Utf8, "end": pl.Int32, "start": pl.Int32, "c_start": pl.Int32, "c_end": pl.Int32}


def window_specs(measure: Measure, first: int, last: int) -> list[WindowSpec]:
    """Every (period, comparison) window of a measure at each period end first..last, in report order."""
    specs = []
    for idx in range(first, last + 1):
        end = Month(idx)
        for period, comparisons in measure.periods.items():
            if not period_applies(period, end):
                continue
            cur = period_window(period, end)
            for comp in comparisons:
                cw = cur if comp == "target" else comparison_window(comp, cur)
                specs.append(WindowSpec(period, comp, idx, cur.start.index, cw.start.index, cw.end.index))
    return specs


def spec_frame(measures: list[Measure], first: int, last: int) -> pl.DataFrame:
    """measure_id, spec_rank (report order) and the window of every spec of each measure, for period
    ends first..last (computed once per distinct set of periods)."""
    by_periods: dict[tuple, pl.DataFrame] = {}
    out = []
    for m in measures:
        key = tuple(m.periods.items())
        if key not in by_periods:
            specs = [s.__dict__ for s in window_specs(m, first, last)]
            by_periods[key] = pl.DataFrame(specs, schema=_SPEC_SCHEMA).with_row_index("spec_rank")
        out.append(by_periods[key].with_columns(pl.lit(m.id).alias("measure_id")))
    return pl.concat(out)


def month_range(specs: pl.DataFrame) -> tuple[int, int]:
    """The first and last month any window of the specs touches."""
    return (
        specs.select(pl.min_horizontal(pl.col("start").min(), pl.col("c_start").min())).item(),
        specs.select(pl.max_horizontal(pl.col("end").max(), pl.col("c_end").max())).item(),
    )


def month_text(col: str, months: tuple[int, int]) -> pl.Expr:
    """A month index column (within ``months``, first..last) as ``YYYY-MM``, as ``periods.Month`` prints it."""
    idx = list(range(months[0], months[1] + 1))
    return pl.col(col).replace_strict(idx, [str(Month(i)) for i in idx], return_dtype=pl.Utf8)


def june_year(col: str) -> pl.Expr:
    """The calendar year of the first 30 June on or after a window's first month (its population year)."""
    c = pl.col(col)
    return (c // 12 + pl.when(c % 12 <= 5).then(0).otherwise(1)).cast(pl.Int32)


def component_slots(measures: pl.DataFrame) -> pl.DataFrame:
    """source_id, component, slot: which monthly component is a source's first (a) and second (b)
    sum - count/sum: value; share: num, den; mean: sum, cnt; median: cnt."""
    names = {"share": ("num", "den"), "mean": ("sum", "cnt"), "median": ("cnt",)}
    rows = [
        {"source_id": sid, "component": name, "slot": slot}
        for sid, kind in measures.select("source_id", "source_kind").unique().iter_rows()
        for slot, name in zip("ab", names.get(kind, ("value",)))
    ]
    return pl.DataFrame(rows, schema={"source_id": pl.Utf8, "component": pl.Utf8, "slot": pl.Utf8})


def cumulative(plan: pl.DataFrame, loaded: pl.DataFrame, components: pl.DataFrame, slots: pl.DataFrame) -> pl.DataFrame:
    """series, idx, cum_loaded, cum_a, cum_b: running totals per series (a force's source measure; see
    compute_measures), from 24 months before the earlier of its first loaded month and the ye_jun19
    baseline to its last, of the loaded months (of the extract deciding completeness) and of the
    components in those months. Components of months not loaded are left out."""
    series = plan.select("series", "force_id", "source_id", "needs_extract", "first", "last").unique()
    dense = (
        series.with_columns(running_start(pl.col("first")).alias("lo"))
        .with_columns(pl.int_ranges("lo", pl.col("last") + 1, dtype=pl.Int32).alias("idx"))
        .explode("idx")
        .join(
            loaded.select("force_id", pl.col("extract").alias("needs_extract"), "idx", pl.lit(1, pl.Int32).alias("loaded")),
            on=["force_id", "needs_extract", "idx"],
            how="left",
        )
        .with_columns(pl.col("loaded").fill_null(0))
    )
    comps = components.join(slots, left_on=["measure_id", "component"], right_on=["source_id", "component"], how="inner").join(
        series.select("series", "force_id", pl.col("source_id").alias("measure_id")), on=["force_id", "measure_id"], how="inner"
    )
    for slot in "ab":
        dense = dense.join(comps.filter(pl.col("slot") == slot).select("series", "idx", pl.col("value").alias(slot)), on=["series", "idx"], how="left")

    def in_loaded(c: str) -> pl.Expr:
        """Component C in a loaded month (0 where it is missing), 0 in a month not loaded."""
        return pl.when(pl.col("loaded") == 1).then(pl.col(c).fill_null(0.0)).otherwise(None).fill_null(0.0)

    return dense.sort("series", "idx").select(
        "series",
        "idx",
        pl.col("loaded").cum_sum().over("series").alias("cum_loaded"),
        in_loaded("a").cum_sum().over("series").alias("cum_a"),
        in_loaded("b").cum_sum().over("series").alias("cum_b"),
    )


def window_sums(w: pl.DataFrame, cum: pl.DataFrame, s: str, e: str, side: str) -> pl.DataFrame:
    """Adds a_<side>, b_<side> (the window's component sums, null unless complete), complete_<side>
    (every month s..e loaded and within the running totals) and missing_<side> (months not loaded)."""
    at_end = cum.select("series", pl.col("idx").alias(e), pl.col("cum_loaded").alias("_lh"), pl.col("cum_a").alias("_ha"), pl.col("cum_b").alias("_hb"))
    before = cum.select("series", (pl.col("idx") + 1).alias(s), pl.col("cum_loaded").alias("_ll"), pl.col("cum_a").alias("_la"), pl.col("cum_b").alias("_lb"))
    w = w.join(at_end, on=["series", e], how="left").join(before, on=["series", s], how="left")
    length = pl.col(e) - pl.col(s) + 1
    loaded = pl.col("_lh") - pl.col("_ll").fill_null(0)
    complete = (pl.col(s) >= pl.col("lo")) & (loaded == length)
    return w.with_columns(
        pl.when(complete).then(pl.col("_ha") - pl.col("_la").fill_null(0.0)).otherwise(None).alias(f"a_{side}"),
        pl.when(complete).then(pl.col("_hb") - pl.col("_lb").fill_null(0.0)).otherwise(None).alias(f"b_{side}"),
        complete.fill_null(False).alias(f"complete_{side}"),
        (length - loaded.fill_null(0)).alias(f"missing_{side}"),
    ).drop("_lh", "_ll", "_ha", "_hb", "_la", "_lb")


def _median(values: np.ndarray, counts: np.ndarray) -> float | None:
    """The median of values each seen counts times (the mean of the middle two for an even total)."""
    total = int(counts.sum())
    if not total:
        return None
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(counts[order])
    lower = v[np.searchsorted(cum, (total + 1) // 2)]  # first value whose running count reaches the rank
    upper = v[np.searchsorted(cum, total // 2 + 1)]
    return float(lower + upper) / 2.0 if total % 2 == 0 else float(upper)


def window_medians(windows: pl.DataFrame, histograms: pl.DataFrame) -> pl.DataFrame:
    """force_id, source_id, start, end, med: the median of each window from the monthly histograms."""
    out = []
    for (force_id, source_id), ws in windows.group_by("force_id", "source_id"):
        h = histograms.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == source_id)).sort("idx")
        idx, v, n = h["idx"].to_numpy(), h["v"].to_numpy(), h["n"].to_numpy()
        for start, end in ws.select("start", "end").iter_rows():
            a, b = np.searchsorted(idx, start, side="left"), np.searchsorted(idx, end, side="right")
            out.append((force_id, source_id, start, end, _median(v[a:b], n[a:b])))
    return pl.DataFrame(out, schema={"force_id": pl.Utf8, "source_id": pl.Utf8, "start": pl.Int32, "end": pl.Int32, "med": pl.Float64}, orient="row")


def with_medians(w: pl.DataFrame, histograms: pl.DataFrame) -> pl.DataFrame:
    """Adds med_cur / med_cmp for the complete windows of median measures (null elsewhere)."""
    med = pl.col("source_kind") == "median"
    cur = w.filter(med & pl.col("complete_cur")).select("force_id", "source_id", "start", "end")
    cmp = w.filter(med & pl.col("complete_cmp") & (pl.col("comparison") != "target")).select(
        "force_id", "source_id", pl.col("c_start").alias("start"), pl.col("c_end").alias("end")
    )
    windows = pl.concat([cur, cmp]).unique()
    if windows.height == 0:
        return w.with_columns(pl.lit(None, pl.Float64).alias("med_cur"), pl.lit(None, pl.Float64).alias("med_cmp"))
    meds = window_medians(windows, histograms)
    keys = ["force_id", "source_id"]
    return w.join(meds.rename({"med": "med_cur"}), on=[*keys, "start", "end"], how="left").join(
        meds.rename({"start": "c_start", "end": "c_end", "med": "med_cmp"}), on=[*keys, "c_start", "c_end"], how="left"
    )


def with_signatures(w: pl.DataFrame, defs: Definitions) -> pl.DataFrame:
    """Adds cur_sig / cmp_sig: the definition versions counting each window ('mixed: a | b' when the
    window straddles a change)."""
    ends = ["start", "end", "c_start", "c_end"]
    first = w.select(pl.min_horizontal(*[pl.col(c).min() for c in ends])).item()
    last = w.select(pl.max_horizontal(*[pl.col(c).max() for c in ends])).item()
    sigs = signature_table(defs, w["source_id"].unique().sort().to_list(), first, last)
    for c in ends:
        w = w.join(sigs.rename({"idx": c, "sig": f"_sig_{c}"}), on=["source_id", c], how="left")

    def window_sig(s: str, e: str) -> pl.Expr:
        a, b = pl.col(f"_sig_{s}"), pl.col(f"_sig_{e}")
        return pl.when(a == b).then(a).otherwise(pl.format("mixed: {} | {}", a, b))

    return w.with_columns(window_sig("start", "end").alias("cur_sig"), window_sig("c_start", "c_end").alias("cmp_sig")).drop([f"_sig_{c}" for c in ends])
