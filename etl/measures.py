"""The measures engine: one generic computation driven by ``contracts/definitions/measures.yaml``.

For every force and every period end month between its first and last loaded month, each measure
gets one row per period and comparison (``r12`` against ``ye_jun19`` and ``prev_r12``; ``cal`` at
December against ``ye_jun19`` and ``sply``), with the unrounded value, the comparison value, the
absolute and percent change and a status:

* ``incomplete`` - a month of the current or comparison window was not loaded (missing, or its run
  failed), or a rate has no population estimate. The incomplete side prints no value; no change.
* ``not_comparable`` - the two windows were counted with different definition versions (an offence
  group changed between them, e.g. the April 2017 burglary split), or a window straddles a change.
* ``monitor`` - otherwise (the foundation measures carry a direction, not a numeric target).

Counting is done once per force-month (a small aggregate of the curated table) and windows are sums
of those monthly counts: cumulative sums looked up at the window ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from etl.periods import YE_JUN19, Month, comparison_window, period_applies, period_window
from etl.reference import OffenceGroups, contracts_dir, load_offence_groups

MEASURE_SCHEMA = {
    "force_id": pl.Utf8,
    "measure_id": pl.Utf8,
    "family": pl.Utf8,
    "period": pl.Utf8,
    "period_start": pl.Utf8,
    "period_end": pl.Utf8,
    "value": pl.Float64,
    "unit": pl.Utf8,
    "comparison": pl.Utf8,
    "comparison_start": pl.Utf8,
    "comparison_end": pl.Utf8,
    "comparison_value": pl.Float64,
    "change_abs": pl.Float64,
    "change_pct": pl.Float64,
    "target": pl.Utf8,
    "status": pl.Utf8,
    "definition_version": pl.Utf8,
    "run_id": pl.Utf8,
    "note": pl.Utf8,
}

RATE_UNITS = {1000: "per_1000", 100000: "per_100k", 1000000: "per_million"}


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True)
class Measure:
    id: str
    name: str
    family: str
    unit: str
    periods: dict[str, tuple[str, ...]]
    groups: tuple[str, ...] = ()
    flags: dict[str, bool] = field(default_factory=dict)
    extract: str = "recorded_crime"
    numerator: str | None = None
    per: int | None = None
    direction: str = "monitor"
    target: str | None = None

    @property
    def is_rate(self) -> bool:
        return self.numerator is not None


@dataclass(frozen=True)
class Definitions:
    version: str
    path: Path
    measures: tuple[Measure, ...]
    groups: OffenceGroups

    def get(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise KeyError(measure_id)

    @property
    def label(self) -> str:
        return f"measures {self.version}; offence_groups {self.groups.version}"


@lru_cache(maxsize=8)
def load_definitions(path: str | Path | None = None, groups_path: str | Path | None = None) -> Definitions:
    path = Path(path) if path else contracts_dir() / "definitions" / "measures.yaml"
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    groups = load_offence_groups(groups_path)
    defaults = data.get("defaults") or {}
    measures = []
    ids: set[str] = set()
    for entry in data.get("measures") or []:
        mid = entry.get("id")
        if not mid or mid in ids:
            raise DefinitionError(f"{path}: measure id missing or repeated ({mid})")
        ids.add(mid)
        periods = entry.get("periods") or defaults.get("periods") or {}
        count = entry.get("count")
        rate = entry.get("rate")
        if bool(count) == bool(rate):
            raise DefinitionError(f"{path}: measure {mid} needs exactly one of count or rate")
        m = Measure(
            id=mid,
            name=entry.get("name", mid),
            family=entry.get("family") or defaults.get("family", "national_measure"),
            unit=entry.get("unit", "count"),
            periods={p: tuple(c) for p, c in periods.items()},
            groups=tuple((count or {}).get("groups") or ()),
            flags={k: bool(v) for k, v in ((count or {}).get("flags") or {}).items()},
            extract=(count or {}).get("extract", "recorded_crime"),
            numerator=(rate or {}).get("numerator"),
            per=(rate or {}).get("per"),
            direction=entry.get("direction", "monitor"),
            target=entry.get("target"),
        )
        unknown = [g for g in m.groups if g not in groups.descriptions]
        if unknown:
            raise DefinitionError(f"{path}: measure {mid} uses unknown offence group(s) {unknown}")
        if m.is_rate and RATE_UNITS.get(m.per) != m.unit:
            raise DefinitionError(f"{path}: measure {mid}: per {m.per} needs unit {RATE_UNITS.get(m.per)}")
        measures.append(m)
    for m in measures:
        if m.is_rate and m.numerator not in ids:
            raise DefinitionError(f"{path}: rate {m.id} divides unknown measure {m.numerator}")
    return Definitions(str(data["version"]), path, tuple(measures), groups)


# --------------------------------------------------------------------------------------------------


def _month_index(col: str) -> pl.Expr:
    return (pl.col(col).str.slice(0, 4).cast(pl.Int32) * 12 + pl.col(col).str.slice(5, 2).cast(pl.Int32) - 1).cast(pl.Int32)


def monthly_counts(crimes: pl.LazyFrame, defs: Definitions) -> pl.DataFrame:
    """Monthly count of every count measure: force_id, measure_id, idx (month index), value."""
    flag_cols = sorted({f for m in defs.measures for f in m.flags})
    base = (
        crimes.filter(pl.col("status") == "recorded")
        .group_by(["force_id", "month", "hocr_code", *flag_cols])
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .with_columns(_month_index("month").alias("idx"))
        .collect()
        .with_row_index("_row")
    )
    membership = defs.groups.membership
    parts = []
    for m in defs.measures:
        if m.is_rate:
            continue
        rows = base
        for col, want in m.flags.items():
            rows = rows.filter(pl.col(col) == want)
        if m.groups:
            codes = membership.filter(pl.col("group").is_in(list(m.groups)))
            rows = (
                rows.join(codes.select("code", "from_index", "to_index"), left_on="hocr_code", right_on="code", how="inner")
                .filter((pl.col("idx") >= pl.col("from_index")) & (pl.col("idx") <= pl.col("to_index")))
                .unique("_row")  # a code in two groups of a union counts once
            )
        parts.append(rows.group_by(["force_id", "idx"]).agg(pl.col("n").sum().cast(pl.Float64).alias("value")).with_columns(pl.lit(m.id).alias("measure_id")))
    if not parts:
        return pl.DataFrame(schema={"force_id": pl.Utf8, "idx": pl.Int32, "value": pl.Float64, "measure_id": pl.Utf8})
    return pl.concat(parts)


def definition_signature(m: Measure, defs: Definitions, idx: int) -> str:
    """Which definition versions count a measure in a month, e.g. 'grp_burglary_residential@2017-04'."""
    measure = defs.get(m.numerator) if m.is_rate else m
    if not measure.groups:
        return "all codes"
    mem = defs.groups.membership
    sig = (
        mem.filter(pl.col("group").is_in(list(measure.groups)) & (pl.col("from_index") <= idx) & (pl.col("to_index") >= idx))
        .select((pl.col("group") + "@" + pl.col("group_version")).unique().sort())
        .to_series()
        .to_list()
    )
    return ", ".join(sig) if sig else "no definition in force"


@dataclass(frozen=True)
class _WindowSpec:
    period: str
    comparison: str
    end: int
    start: int
    c_start: int
    c_end: int


def _window_specs(measure: Measure, first: int, last: int) -> list[_WindowSpec]:
    specs = []
    for idx in range(first, last + 1):
        end = Month(idx)
        for period, comparisons in measure.periods.items():
            if not period_applies(period, end):
                continue
            cur = period_window(period, end)
            for comp in comparisons:
                cw = comparison_window(comp, cur)
                specs.append(_WindowSpec(period, comp, idx, cur.start.index, cw.start.index, cw.end.index))
    return specs


def compute_measures(
    crimes: pl.LazyFrame | None,
    loaded: pl.DataFrame,
    population: pl.DataFrame | None,
    defs: Definitions | None = None,
    run_id: str = "",
) -> pl.DataFrame:
    """The measures table for every force in ``loaded`` (force_id, month of each loaded month)."""
    defs = defs or load_definitions()
    if crimes is None or loaded.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    counts = monthly_counts(crimes, defs)
    loaded = loaded.select("force_id", _month_index("month").alias("idx")).unique()
    pop = (
        population.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
        if population is not None and population.height
        else pl.DataFrame(schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64})
    )
    out = []
    for force_id, fl in loaded.group_by("force_id", maintain_order=True):
        force_id = force_id[0]
        first, last = fl["idx"].min(), fl["idx"].max()
        lo = min(first, YE_JUN19.start.index) - 24
        dense = pl.DataFrame({"idx": pl.int_range(lo, last + 1, eager=True, dtype=pl.Int32)})
        dense = dense.join(fl.select("idx").with_columns(pl.lit(1, pl.Int32).alias("loaded")), on="idx", how="left").with_columns(pl.col("loaded").fill_null(0))
        fpop = {r["year"]: r["population"] for r in pop.filter(pl.col("force_id") == force_id).iter_rows(named=True)}
        values: dict[str, pl.DataFrame] = {}
        for m in defs.measures:
            if not m.is_rate:
                series = counts.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == m.id)).select("idx", "value")
                values[m.id] = _cumulative(dense, series)
        for m in defs.measures:
            cum = values[m.numerator if m.is_rate else m.id]  # type: ignore[index]
            out.append(_rows_for(m, defs, force_id, cum, first, last, fpop, run_id))
    if not out:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    return pl.concat(out).select([pl.col(k).cast(t) for k, t in MEASURE_SCHEMA.items()])


def _cumulative(dense: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """idx, cum_value, cum_loaded: running totals so a window sum is a difference of two lookups."""
    return (
        dense.join(series, on="idx", how="left")
        .with_columns(pl.when(pl.col("loaded") == 1).then(pl.col("value").fill_null(0.0)).otherwise(None).alias("value"))
        .sort("idx")
        .select("idx", pl.col("value").fill_null(0.0).cum_sum().alias("cum_value"), pl.col("loaded").cum_sum().alias("cum_loaded"))
    )


def _rows_for(m: Measure, defs: Definitions, force_id: str, cum: pl.DataFrame, first: int, last: int, pop: dict, run_id: str) -> pl.DataFrame:
    specs = _window_specs(m, first, last)
    if not specs:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    w = pl.DataFrame([s.__dict__ for s in specs], schema={"period": pl.Utf8, "comparison": pl.Utf8, "end": pl.Int32, "start": pl.Int32, "c_start": pl.Int32, "c_end": pl.Int32})
    lo = cum["idx"].min()

    def window_sum(frame: pl.DataFrame, s: str, e: str, prefix: str) -> pl.DataFrame:
        hi = cum.rename({"idx": e, "cum_value": f"{prefix}_hi", "cum_loaded": f"{prefix}_lh"})
        before = cum.with_columns((pl.col("idx") + 1).alias(s)).drop("idx").rename({"cum_value": f"{prefix}_lo", "cum_loaded": f"{prefix}_ll"})
        frame = frame.join(hi, on=e, how="left").join(before, on=s, how="left")
        length = pl.col(e) - pl.col(s) + 1
        loaded = pl.col(f"{prefix}_lh") - pl.col(f"{prefix}_ll").fill_null(0)
        total = pl.col(f"{prefix}_hi") - pl.col(f"{prefix}_lo").fill_null(0.0)
        complete = (pl.col(s) >= lo) & (loaded == length)
        return frame.with_columns(
            pl.when(complete).then(total).otherwise(None).alias(f"{prefix}_value"),
            complete.alias(f"{prefix}_complete"),
            (length - loaded.fill_null(0)).alias(f"{prefix}_missing"),
        ).drop(f"{prefix}_hi", f"{prefix}_lo", f"{prefix}_lh", f"{prefix}_ll")

    w = window_sum(w, "start", "end", "cur")
    w = window_sum(w, "c_start", "c_end", "cmp")

    # Definition versions of each window (versions are contiguous spans, so start and end decide).
    sig_cache: dict[int, str] = {}

    def sig(i: int) -> str:
        if i not in sig_cache:
            sig_cache[i] = definition_signature(m, defs, i)
        return sig_cache[i]

    rows = []
    for r in w.iter_rows(named=True):
        cur_sig = sig(r["start"]) if sig(r["start"]) == sig(r["end"]) else f"mixed: {sig(r['start'])} | {sig(r['end'])}"
        cmp_sig = sig(r["c_start"]) if sig(r["c_start"]) == sig(r["c_end"]) else f"mixed: {sig(r['c_start'])} | {sig(r['c_end'])}"
        notes = []
        value, cvalue = r["cur_value"], r["cmp_value"]
        complete_cur, complete_cmp = r["cur_complete"], r["cmp_complete"]
        if not complete_cur:
            notes.append(f"current window {Month(r['start'])}..{Month(r['end'])} has {r['cur_missing']} month(s) not loaded")
        if not complete_cmp:
            notes.append(f"comparison window {Month(r['c_start'])}..{Month(r['c_end'])} has {r['cmp_missing']} month(s) not loaded")
        if m.is_rate:
            value, n1 = _rate(value, r["start"], pop, m.per)
            cvalue, n2 = _rate(cvalue, r["c_start"], pop, m.per)
            for n in (n1, n2):
                if n:
                    notes.append(n)
            complete_cur = complete_cur and value is not None
            complete_cmp = complete_cmp and cvalue is not None
        change_abs = change_pct = None
        if not (complete_cur and complete_cmp):
            status = "incomplete"
        elif cur_sig != cmp_sig:
            status = "not_comparable"
            notes.append(f"definitions differ: current [{cur_sig}] vs comparison [{cmp_sig}]")
        else:
            status = "monitor"
            change_abs = value - cvalue
            if cvalue != 0:
                change_pct = change_abs / cvalue * 100.0
            else:
                notes.append("comparison value is zero: no percent change")
        rows.append(
            {
                "force_id": force_id,
                "measure_id": m.id,
                "family": m.family,
                "period": r["period"],
                "period_start": str(Month(r["start"])),
                "period_end": str(Month(r["end"])),
                "value": value if complete_cur else None,
                "unit": m.unit,
                "comparison": r["comparison"],
                "comparison_start": str(Month(r["c_start"])),
                "comparison_end": str(Month(r["c_end"])),
                "comparison_value": cvalue if complete_cmp else None,
                "change_abs": change_abs,
                "change_pct": change_pct,
                "target": m.target or f"direction: {m.direction}",
                "status": status,
                "definition_version": f"{defs.label}; {cur_sig}",
                "run_id": run_id,
                "note": "; ".join(notes) or None,
            }
        )
    return pl.DataFrame(rows, schema=MEASURE_SCHEMA)


def _rate(count: float | None, start: int, pop: dict, per: int | None) -> tuple[float | None, str | None]:
    """count / population x per, with the population of the window's June year (or an earlier one)."""
    if count is None:
        return None, None
    s = Month(start)
    year = s.year if s.month <= 6 else s.year + 1
    if year in pop:
        return count / pop[year] * per, None  # type: ignore[operator]
    earlier = [y for y in pop if y < year]
    if not earlier:
        return None, f"no population estimate for {year} or earlier"
    use = max(earlier)
    return count / pop[use] * per, f"population {year} not loaded; used the {use} estimate"  # type: ignore[operator]
