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
    "comparison_source": pl.Utf8,  # force_records | published_statistics
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
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column -> accepted values
    status: str | None = "recorded"  # rows counted only with this status (None: the extract has none)
    proxy_for: str | None = None
    note: str | None = None
    published_group: str | None = None  # ONS PFA Table P1 offence group with the same definition

    @property
    def is_rate(self) -> bool:
        return self.numerator is not None


@dataclass(frozen=True)
class Definitions:
    version: str
    path: Path
    measures: tuple[Measure, ...]
    groups: OffenceGroups
    mapping_version: str | None = None

    def get(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise KeyError(measure_id)

    @property
    def label(self) -> str:
        return f"measures {self.version}; offence_groups {self.groups.version}"

    def label_for(self, m: "Measure") -> str:
        if m.extract.startswith("police_uk") or (m.is_rate and self.get(m.numerator).extract.startswith("police_uk")):  # type: ignore[arg-type]
            return f"police_uk_mapping {self.mapping_version}"
        return self.label


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
            where={k: tuple(str(x) for x in v) for k, v in ((count or {}).get("where") or {}).items()},
            status=(count or {}).get("status", "recorded" if (count or {}).get("extract", "recorded_crime") == "recorded_crime" else None),
            proxy_for=entry.get("proxy_for"),
            note=entry.get("note"),
            published_group=entry.get("published_offence_group"),
        )
        unknown = [g for g in m.groups if g not in groups.descriptions]
        if unknown:
            raise DefinitionError(f"{path}: measure {mid} uses unknown offence group(s) {unknown}")
        if m.is_rate and RATE_UNITS.get(m.per) != m.unit:
            raise DefinitionError(f"{path}: measure {mid}: per {m.per} needs unit {RATE_UNITS.get(m.per)}")
        measures.append(m)
    mapping_version = None
    mapping_path = path.parent / "police_uk_mapping.yaml"
    if mapping_path.exists():
        proxies, mapping_version = _public_data_proxies(mapping_path, defaults, ids)
        measures.extend(proxies)
        ids.update(m.id for m in proxies)
    for m in measures:
        if m.is_rate and m.numerator not in ids:
            raise DefinitionError(f"{path}: rate {m.id} divides unknown measure {m.numerator}")
    return Definitions(str(data["version"]), path, tuple(measures), groups, mapping_version)


def _public_data_proxies(path: Path, defaults: dict, ids: set[str]) -> tuple[list[Measure], str]:
    """Proxy measures declared in the data.police.uk mapping (counts of crime types, and their rates).

    Proxies of other kinds (e.g. the stop-search positive outcome share) are declared there but not
    computed by this engine yet; they are listed by `skipped_proxies`.
    """
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    out = []
    for p in data.get("proxy_measures") or []:
        pid = p["id"]
        if pid in ids:
            raise DefinitionError(f"{path}: proxy id {pid} repeats a measure id")
        common = dict(
            id=pid, name=p.get("name", pid), family=p.get("family") or defaults.get("family", "national_measure"), unit=p.get("unit", "count"),
            periods={k: tuple(v) for k, v in (defaults.get("periods") or {}).items()}, extract=p.get("source", "police_uk_street"),
            status=None, proxy_for=p.get("proxy_for"), note=" ".join(str(p.get("differs", "")).split()) or None, direction=p.get("direction", "monitor"),
            published_group=p.get("published_offence_group"),
        )
        rate = p.get("rate") or {}
        flt = p.get("filter") or {}
        if p.get("crime_types"):
            out.append(Measure(**common, where={"crime_type": tuple(p["crime_types"])}))
        elif flt.get("equals") and flt.get("column"):
            out.append(Measure(**common, where={flt["column"]: (str(flt["equals"]),)}))
        elif isinstance(rate.get("per"), int) and rate.get("numerator"):
            out.append(Measure(**common, numerator=rate["numerator"], per=rate["per"]))
    return out, str(data.get("version"))


def skipped_proxies(path: Path | None = None) -> list[str]:
    """Proxy ids declared in the mapping that the engine does not compute (no count or rate form)."""
    defs = load_definitions()
    mapping = (path or defs.path.parent / "police_uk_mapping.yaml")
    if not mapping.exists():
        return []
    with open(mapping, encoding="utf-8") as fh:
        declared = [p["id"] for p in (yaml.safe_load(fh).get("proxy_measures") or [])]
    known = {m.id for m in defs.measures}
    return [d for d in declared if d not in known]


# --------------------------------------------------------------------------------------------------


def _month_index(col: str) -> pl.Expr:
    return (pl.col(col).str.slice(0, 4).cast(pl.Int32) * 12 + pl.col(col).str.slice(5, 2).cast(pl.Int32) - 1).cast(pl.Int32)


def monthly_counts(tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> pl.DataFrame:
    """Monthly count of every count measure: force_id, measure_id, idx (month index), value.

    Each extract is aggregated once to (force, month, the columns its measures filter on); every
    measure is then a filter and a sum over that small aggregate.
    """
    membership = defs.groups.membership
    parts = []
    count_measures = [m for m in defs.measures if not m.is_rate]
    for extract in sorted({m.extract for m in count_measures}):
        lf = tables.get(extract)
        if lf is None:
            continue
        measures = [m for m in count_measures if m.extract == extract]
        keys = sorted({f for m in measures for f in m.flags} | {w for m in measures for w in m.where} | ({"hocr_code"} if any(m.groups for m in measures) else set()))
        statuses = sorted({m.status for m in measures if m.status})
        cols = ["force_id", "month", *keys, *(["status"] if statuses else [])]
        base = (
            lf.select(cols)
            .group_by(cols)
            .agg(pl.len().cast(pl.Int64).alias("n"))
            .with_columns(_month_index("month").alias("idx"))
            .collect()
            .with_row_index("_row")
        )
        for m in measures:
            rows = base
            if m.status:
                rows = rows.filter(pl.col("status") == m.status)
            for col, want in m.flags.items():
                rows = rows.filter(pl.col(col) == want)
            for col, values in m.where.items():
                rows = rows.filter(pl.col(col).is_in(list(values)))
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
    measure = defs.get(m.numerator) if m.is_rate else m  # type: ignore[arg-type]
    if measure.where:
        return "; ".join(f"{k} in [{', '.join(v)}]" for k, v in measure.where.items())
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
    tables: dict[str, pl.LazyFrame | None] | pl.LazyFrame | None,
    loaded: pl.DataFrame,
    population: pl.DataFrame | None,
    defs: Definitions | None = None,
    run_id: str = "",
    published: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The measures table for every force with loaded months.

    ``tables``: curated tables by extract name (a bare LazyFrame means recorded_crime).
    ``loaded``: force_id, month (and extract; without it, recorded_crime) of every loaded month.
    """
    defs = defs or load_definitions()
    if tables is None or loaded.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    if isinstance(tables, pl.LazyFrame):
        tables = {"recorded_crime": tables}
    if "extract" not in loaded.columns:
        loaded = loaded.with_columns(pl.lit("recorded_crime").alias("extract"))
    counts = monthly_counts(tables, defs)
    loaded = loaded.select("force_id", "extract", _month_index("month").alias("idx")).unique()
    pop = (
        population.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
        if population is not None and population.height
        else pl.DataFrame(schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64})
    )
    out = []
    for (force_id,), fl in loaded.group_by("force_id", maintain_order=True):
        fpop = {r["year"]: r["population"] for r in pop.filter(pl.col("force_id") == force_id).iter_rows(named=True)}
        values: dict[str, pl.DataFrame] = {}
        spans: dict[str, tuple[int, int]] = {}
        for (extract,), el in fl.group_by("extract", maintain_order=True):
            first, last = el["idx"].min(), el["idx"].max()
            lo = min(first, YE_JUN19.start.index) - 24
            dense = pl.DataFrame({"idx": pl.int_range(lo, last + 1, eager=True, dtype=pl.Int32)})
            dense = dense.join(el.select("idx").with_columns(pl.lit(1, pl.Int32).alias("loaded")), on="idx", how="left").with_columns(pl.col("loaded").fill_null(0))
            for m in defs.measures:
                if not m.is_rate and m.extract == extract:
                    series = counts.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == m.id)).select("idx", "value")
                    values[m.id] = _cumulative(dense, series)
                    spans[m.id] = (first, last)
        for m in defs.measures:
            source = m.numerator if m.is_rate else m.id
            if source not in values:
                continue  # the force has no loaded month of this measure's extract
            first, last = spans[source]  # type: ignore[index]
            baseline = _published_baseline(defs.get(source), force_id, published)
            out.append(_rows_for(m, defs, force_id, values[source], first, last, fpop, run_id, baseline))  # type: ignore[index]
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


def _published_baseline(m: Measure, force_id: str, published: pl.DataFrame | None) -> tuple[float, str] | None:
    """The ye_jun19 count of a measure from the published statistics, with where it came from."""
    if published is None or published.height == 0 or not m.published_group:
        return None
    from etl.published import force_area

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


def _rows_for(m: Measure, defs: Definitions, force_id: str, cum: pl.DataFrame, first: int, last: int, pop: dict, run_id: str,
              baseline: tuple[float, str] | None = None) -> pl.DataFrame:
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
        source = "force_records"
        if not complete_cmp and r["comparison"] == "ye_jun19" and baseline is not None:
            cvalue, complete_cmp, source = baseline[0], True, "published_statistics"
            cmp_sig = cur_sig  # the measure declares the published group as the same definition
            notes.append(f"baseline from published statistics ({r['cmp_missing']} month(s) of the force's own records not loaded): {baseline[1]}")
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
                "definition_version": f"{defs.label_for(m)}; {cur_sig}",
                "run_id": run_id,
                "note": "; ".join(([f"proxy for {m.proxy_for}: {m.note}"] if m.proxy_for else []) + notes) or None,
                "comparison_source": source if complete_cmp else None,
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
