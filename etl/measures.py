"""The measures engine: one generic computation driven by ``contracts/definitions/measures.yaml``.

Each measure is a declarative entry (id, family, what it counts, unit, periods and comparisons, target
rule, direction of good). The engine knows a few kinds:

* ``count``  rows of an extract matching a filter (offence groups, flags, column values, ranges)
* ``sum``    a column summed over matching rows (e.g. hospital admission episodes)
* ``share``  numerator rows / denominator rows x 100 (positive outcome rates, SLA shares, BWV use)
* ``mean`` / ``median``  of a column or a duration (``seconds_between`` two timestamps)
* ``rate``   another measure / population x 1,000 | 100,000 | 1,000,000
* ``external`` figures published elsewhere, read from the ``external_statistics`` reference extract
* ``no_data``  declared (with its definition and the reason) but not computable: always ``incomplete``

For every force and every period end month between its first and last loaded month, each measure
gets one row per period and comparison (e.g. ``r12`` against ``ye_jun19`` and ``prev_r12``; ``fytd``
against ``sply`` and ``sp_2019_20``; a ``target`` row for numeric targets), with the unrounded value,
the comparison value, the absolute and percent change and a status:

* ``incomplete`` - a month of the current or comparison window was not loaded (missing, or its run
  failed), the extract it needs is not loaded for the force, or a rate has no population estimate.
  The incomplete side prints no value; no change is given.
* ``not_comparable`` - the windows were counted with different definition versions (an offence group
  changed between them, e.g. the April 2017 burglary split), or a window straddles a change.
* ``met`` / ``not_met`` - judged by the measure's target rule (catalogue section 0.6): ``reduce_by``,
  ``gt``/``ge``/``lt``/``le``, ``sla`` (a share at or above a level), ``count_target``, or a
  direction (``increase``/``decrease``) against a stated comparator.
* ``monitor`` - no target, or a comparison row that the target rule does not judge.

Each extract is aggregated once per force-month to the columns its measures filter on; windows are
sums of monthly components looked up as differences of cumulative sums (medians use per-window
histograms of whole seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl

from etl.periods import YE_JUN19, Month, comparison_window, month_index_expr, period_applies, period_window
from etl.reference import OffenceGroups, contracts_dir, load_offence_groups, yaml_load

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
    "comparison_source": pl.Utf8,  # force_records | published_statistics | external_statistics
}

RATE_UNITS = {1000: "per_1000", 100000: "per_100k", 1000000: "per_million"}
KINDS = ("count", "sum", "share", "mean", "median", "rate", "external", "no_data")
TARGET_RULES = ("reduce_by", "gt", "ge", "lt", "le", "sla", "count_target", "increase", "decrease", "monitor")
POSITIVE_OUTCOMES = ("1", "2", "3", "4", "6", "7", "8")  # catalogue section 1.2 proposal (22 configurable)


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True)
class Filter:
    """Which rows count: all conditions must hold."""

    groups: tuple[str, ...] = ()  # offence groups (hocr_code, version in force in the row's month)
    flags: dict[str, bool] = field(default_factory=dict)  # boolean columns
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column in values (as text)
    where_not: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column not in values (nulls pass)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # inclusive
    status: str | None = None
    present: tuple[str, ...] = ()  # columns that must not be empty
    absent: tuple[str, ...] = ()  # columns that must be empty

    def columns(self) -> set[str]:
        cols = set(self.flags) | set(self.where) | set(self.where_not) | set(self.ranges) | set(self.present) | set(self.absent)
        if self.groups:
            cols.add("hocr_code")
        if self.status:
            cols.add("status")
        return cols

    def expr(self) -> pl.Expr:
        e = pl.lit(True)
        if self.status:
            e = e & (pl.col("status") == self.status)
        for c, want in self.flags.items():
            e = e & (pl.col(c) == want)
        for c, values in self.where.items():
            e = e & pl.col(c).cast(pl.Utf8).is_in(list(values))
        for c, values in self.where_not.items():
            e = e & (pl.col(c).is_null() | ~pl.col(c).cast(pl.Utf8).is_in(list(values)))
        for c in self.present:
            e = e & pl.col(c).is_not_null()
        for c in self.absent:
            e = e & pl.col(c).is_null()
        for c, (lo, hi) in self.ranges.items():
            if lo is not None:
                e = e & (pl.col(c) >= lo)
            if hi is not None:
                e = e & (pl.col(c) <= hi)
        return e.fill_null(False)

    def describe(self) -> str:
        parts = []
        if self.status:
            parts.append(f"status {self.status}")
        parts += [f"{c} {'Y' if v else 'N'}" for c, v in self.flags.items()]
        parts += [f"{c} in [{', '.join(v)}]" for c, v in self.where.items()]
        parts += [f"{c} not in [{', '.join(v)}]" for c, v in self.where_not.items()]
        parts += [f"{c} present" for c in self.present] + [f"{c} empty" for c in self.absent]
        parts += [f"{c} {'' if lo is None else f'>= {lo:g}'}{' and ' if lo is not None and hi is not None else ''}{'' if hi is None else f'<= {hi:g}'}" for c, (lo, hi) in self.ranges.items()]
        return "; ".join(parts)


@dataclass(frozen=True)
class Target:
    rule: str
    value: float | None = None
    comparison: str | None = None  # the comparison row a reduce_by / direction rule is judged on
    text: str = ""


@dataclass(frozen=True)
class Measure:
    id: str
    name: str
    family: str
    unit: str
    periods: dict[str, tuple[str, ...]]
    kind: str = "count"
    extract: str = "recorded_crime"
    filter: Filter = field(default_factory=Filter)
    numerator_filter: Filter | None = None  # share: rows of the denominator that also match this
    column: str | None = None  # sum / mean / median
    derive: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # name -> (from, to, seconds_between|days_between)
    numerator: str | None = None  # rate
    per: int | None = None
    direction: str = "monitor"
    target: Target | None = None
    proxy_for: str | None = None
    note: str | None = None
    published_group: str | None = None  # ONS PFA Table P1 offence group with the same definition
    reason: str | None = None  # no_data: why it cannot be computed yet
    basis: str | None = None  # stated basis (e.g. outcome-rate cohort basis)
    snapshot: bool = False

    @property
    def is_rate(self) -> bool:
        return self.kind == "rate"

    # Backwards-compatible views used by reconciliation and tests
    @property
    def groups(self) -> tuple[str, ...]:
        return self.filter.groups

    @property
    def flags(self) -> dict[str, bool]:
        return self.filter.flags

    @property
    def where(self) -> dict[str, tuple[str, ...]]:
        return self.filter.where

    @property
    def status(self) -> str | None:
        return self.filter.status

    @property
    def needs_crime(self) -> bool:
        """An outcomes measure that reads its crime's columns (offence code, recorded date, flags)."""
        return self.extract == "crime_outcomes"

    @property
    def needs_outcome(self) -> bool:
        filters = [self.filter] + ([self.numerator_filter] if self.numerator_filter else [])
        return self.extract == "recorded_crime" and any("outcome_type" in f.columns() for f in filters)


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

    def label_for(self, m: Measure) -> str:
        source = self.get(m.numerator) if m.is_rate and m.numerator else m
        if source.extract.startswith("police_uk"):
            return f"police_uk_mapping {self.mapping_version}"
        return self.label


# --------------------------------------------------------------------------------------------------
# Reading definitions


def _filter(spec: dict | None, default_status: str | None, path: Path, mid: str) -> Filter:
    spec = spec or {}
    ranges = {}
    for c, r in (spec.get("range") or {}).items():
        if not isinstance(r, dict) or not ({"min", "max"} & set(r)):
            raise DefinitionError(f"{path}: measure {mid}: range of {c} needs min and/or max")
        ranges[c] = (r.get("min"), r.get("max"))
    return Filter(
        groups=tuple(spec.get("groups") or ()),
        flags={k: bool(v) for k, v in (spec.get("flags") or {}).items()},
        where={k: tuple(str(x) for x in (v if isinstance(v, list) else [v])) for k, v in (spec.get("where") or {}).items()},
        where_not={k: tuple(str(x) for x in (v if isinstance(v, list) else [v])) for k, v in (spec.get("where_not") or {}).items()},
        ranges=ranges,
        status=spec.get("status", default_status),
        present=tuple(spec.get("present") or ()),
        absent=tuple(spec.get("absent") or ()),
    )


def _target(spec, mid: str, path: Path) -> Target | None:
    if spec is None:
        return None
    if isinstance(spec, str):  # free text: a direction to monitor, no rule
        return Target("monitor", text=spec)
    rule = spec.get("rule")
    if rule not in TARGET_RULES:
        raise DefinitionError(f"{path}: measure {mid}: target rule '{rule}' is not one of {', '.join(TARGET_RULES)}")
    if rule in ("reduce_by", "gt", "ge", "lt", "le", "sla", "count_target") and spec.get("value") is None:
        raise DefinitionError(f"{path}: measure {mid}: target rule {rule} needs a value")
    value = spec.get("value")
    text = spec.get("text") or {
        "reduce_by": f"reduce by {value}% vs {spec.get('comparison')}",
        "gt": f"> {value}", "ge": f">= {value}", "lt": f"< {value}", "le": f"<= {value}",
        "sla": f">= {value}%", "count_target": f">= {value}",
        "increase": f"increase vs {spec.get('comparison')}", "decrease": f"decrease vs {spec.get('comparison')}", "monitor": "monitor",
    }[rule]
    return Target(rule, None if value is None else float(value), spec.get("comparison"), text)


def _measure(entry: dict, defaults: dict, groups: OffenceGroups, path: Path) -> Measure:
    mid = entry["id"]
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise DefinitionError(f"{path}: measure {mid} needs exactly one of {', '.join(KINDS)} (found {kinds or 'none'})")
    kind = kinds[0]
    spec = entry[kind] if isinstance(entry[kind], dict) else {}
    extract = spec.get("extract", "recorded_crime")
    default_status = "recorded" if extract == "recorded_crime" else None
    periods = entry.get("periods") or defaults.get("periods") or {}
    numerator_filter = None
    base_filter = spec
    if kind == "share":
        base_filter = spec.get("denominator") or {}
        numerator_filter = _filter(spec.get("numerator"), None, path, mid)
    derive = {}
    for name, d in (spec.get("derive") or {}).items():
        unit = "seconds_between" if (d or {}).get("seconds_between") else "days_between"
        pair = (d or {}).get(unit)
        if not pair or len(pair) != 2:
            raise DefinitionError(f"{path}: measure {mid}: derive {name} needs seconds_between or days_between: [from, to]")
        derive[name] = (pair[0], pair[1], unit)
    m = Measure(
        id=mid,
        name=entry.get("name", mid),
        family=entry.get("family") or defaults.get("family", "national_measure"),
        unit=entry.get("unit", "count"),
        periods={p: tuple(c) for p, c in periods.items()},
        kind=kind,
        extract=extract,
        filter=_filter(base_filter, default_status, path, mid),
        numerator_filter=numerator_filter,
        column=spec.get("column"),
        derive=derive,
        numerator=spec.get("numerator") if kind == "rate" else None,
        per=spec.get("per"),
        direction=entry.get("direction", "monitor"),
        target=_target(entry.get("target"), mid, path),
        proxy_for=entry.get("proxy_for"),
        note=" ".join(str(entry["note"]).split()) if entry.get("note") else None,
        published_group=entry.get("published_offence_group"),
        reason=spec.get("reason") if kind == "no_data" else None,
        basis=entry.get("basis"),
        snapshot=bool(entry.get("snapshot", False)),
    )
    unknown = [g for f in (m.filter, m.numerator_filter) if f for g in f.groups if g not in groups.descriptions]
    if unknown:
        raise DefinitionError(f"{path}: measure {mid} uses unknown offence group(s) {unknown}")
    if kind == "rate" and RATE_UNITS.get(m.per) != m.unit:
        raise DefinitionError(f"{path}: measure {mid}: per {m.per} needs unit {RATE_UNITS.get(m.per)}")
    if kind in ("sum", "mean", "median") and not m.column:
        raise DefinitionError(f"{path}: measure {mid}: a {kind} needs a column")
    if kind == "share" and m.unit != "pct":
        raise DefinitionError(f"{path}: measure {mid}: a share is in unit pct")
    if kind == "no_data" and not m.reason:
        raise DefinitionError(f"{path}: measure {mid}: no_data needs a reason")
    if m.snapshot and set(m.periods) - {"month"}:
        raise DefinitionError(f"{path}: measure {mid}: a snapshot cannot be summed over months; use period month only")
    for p, comps in m.periods.items():
        for c in comps:
            if c == "target" and not (m.target and m.target.value is not None):
                raise DefinitionError(f"{path}: measure {mid}: comparison target needs a numeric target")
    return m


@lru_cache(maxsize=8)
def load_definitions(path: str | Path | None = None, groups_path: str | Path | None = None) -> Definitions:
    path = Path(path) if path else contracts_dir() / "definitions" / "measures.yaml"
    with open(path, encoding="utf-8") as fh:
        data = yaml_load(fh)
    groups = load_offence_groups(groups_path)
    defaults = data.get("defaults") or {}
    measures = []
    ids: set[str] = set()
    for entry in data.get("measures") or []:
        mid = entry.get("id")
        if not mid or mid in ids:
            raise DefinitionError(f"{path}: measure id missing or repeated ({mid})")
        ids.add(mid)
        measures.append(_measure(entry, defaults, groups, path))
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
    """Proxy measures declared in the data.police.uk mapping (counts of crime types, their rates, and
    the stop-search positive outcome share)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml_load(fh)
    positive_ss = tuple(o["outcome"] for o in (data.get("stop_search_outcomes") or []) if o.get("positive"))
    out = []
    for p in data.get("proxy_measures") or []:
        pid = p["id"]
        if pid in ids:
            raise DefinitionError(f"{path}: proxy id {pid} repeats a measure id")
        common = dict(
            id=pid, name=p.get("name", pid), family=p.get("family") or defaults.get("family", "national_measure"),
            periods={k: tuple(v) for k, v in (defaults.get("periods") or {}).items()}, extract=p.get("source", "police_uk_street"),
            proxy_for=p.get("proxy_for"), note=" ".join(str(p.get("differs", "")).split()) or None, direction=p.get("direction", "monitor"),
            published_group=p.get("published_offence_group"),
        )
        rate = p.get("rate") or {}
        flt = p.get("filter") or {}
        if p.get("crime_types"):
            out.append(Measure(**common, unit="count", kind="count", filter=Filter(where={"crime_type": tuple(p["crime_types"])})))
        elif flt.get("equals") and flt.get("column"):
            out.append(Measure(**common, unit="count", kind="count", filter=Filter(where={flt["column"]: (str(flt["equals"]),)})))
        elif isinstance(rate.get("per"), int) and rate.get("numerator"):
            out.append(Measure(**common, unit=RATE_UNITS[rate["per"]], kind="rate", numerator=rate["numerator"], per=rate["per"]))
        elif flt.get("positive_from") == "stop_search_outcomes" and flt.get("column"):
            out.append(Measure(**common, unit="pct", kind="share", filter=Filter(), numerator_filter=Filter(where={flt["column"]: positive_ss}),
                               basis="searches with a positive outcome / all searches in the window"))
    return out, str(data.get("version"))


def skipped_proxies(path: Path | None = None) -> list[str]:
    """Proxy ids declared in the mapping that the engine does not compute."""
    defs = load_definitions()
    mapping = path or defs.path.parent / "police_uk_mapping.yaml"
    if not mapping.exists():
        return []
    with open(mapping, encoding="utf-8") as fh:
        declared = [p["id"] for p in (yaml_load(fh).get("proxy_measures") or [])]
    known = {m.id for m in defs.measures}
    return [d for d in declared if d not in known]


# --------------------------------------------------------------------------------------------------
# Monthly components


_month_index = month_index_expr


def _with_outcomes(crimes: pl.LazyFrame, outcomes: pl.LazyFrame | None) -> pl.LazyFrame:
    """Each crime with its latest outcome type (as text) as at the latest extract (cohort basis)."""
    if outcomes is None:
        return crimes.with_columns(pl.lit(None, pl.Utf8).alias("outcome_type"))
    latest = (
        outcomes.sort("outcome_date", "month", "source_row")
        .group_by("force_id", "crime_ref")
        .agg(pl.col("outcome_type").last().cast(pl.Utf8))
    )
    return crimes.join(latest, on=["force_id", "crime_ref"], how="left")


CRIME_COLUMNS = ("hocr_code", "recorded_date", "domestic_abuse", "status")


def _with_crimes(outcomes: pl.LazyFrame, crimes: pl.LazyFrame | None) -> pl.LazyFrame:
    """Each outcome with its crime's offence code, recorded date, DA flag and status (null if never loaded)."""
    if crimes is None:
        return outcomes.with_columns([pl.lit(None).alias(c) for c in CRIME_COLUMNS])
    return outcomes.join(crimes.select("force_id", "crime_ref", *CRIME_COLUMNS).unique(["force_id", "crime_ref"], keep="last"), on=["force_id", "crime_ref"], how="left")


def _base(lf: pl.LazyFrame, measures: list[Measure]) -> pl.DataFrame:
    """One extract aggregated to (force, month, every column its measures use) with a row count n."""
    derive = {}
    for m in measures:
        derive.update(m.derive)
    if derive:
        lf = lf.with_columns(
            [((pl.col(b) - pl.col(a)).dt.total_seconds() if unit == "seconds_between" else (pl.col(b) - pl.col(a)).dt.total_days()).cast(pl.Int64).alias(name)
             for name, (a, b, unit) in derive.items()]
        )
    keys: set[str] = set()
    for m in measures:
        keys |= m.filter.columns()
        if m.numerator_filter:
            keys |= m.numerator_filter.columns()
        if m.column:
            keys.add(m.column)
    cols = ["force_id", "month", *sorted(keys)]
    return (
        lf.select(cols)
        .group_by(cols)
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .with_columns(_month_index("month").alias("idx"))
        .collect()
        .with_row_index("_row")
    )


def _select(base: pl.DataFrame, f: Filter, membership: pl.DataFrame) -> pl.DataFrame:
    rows = base.filter(f.expr()) if f.columns() - {"hocr_code"} or f.status else base
    if f.groups:
        codes = membership.filter(pl.col("group").is_in(list(f.groups)))
        rows = (
            rows.join(codes.select("code", "from_index", "to_index"), left_on="hocr_code", right_on="code", how="inner")
            .filter((pl.col("idx") >= pl.col("from_index")) & (pl.col("idx") <= pl.col("to_index")))
            .unique("_row")  # a code in two groups of a union counts once
        )
    return rows


def _sum_by_month(rows: pl.DataFrame, value: pl.Expr, name: str) -> pl.DataFrame:
    return rows.group_by(["force_id", "idx"]).agg(value.sum().cast(pl.Float64).alias("value")).with_columns(pl.lit(name).alias("component"))


def monthly_components(tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(components, histograms). components: force_id, idx, measure_id, component, value - the monthly
    sums every window is built from. histograms: force_id, idx, measure_id, v, n (for medians)."""
    membership = defs.groups.membership
    parts, hists = [], []
    computed = [m for m in defs.measures if m.kind in ("count", "sum", "share", "mean", "median")]
    for extract in sorted({m.extract for m in computed}):
        lf = tables.get(extract)
        if lf is None:
            continue
        measures = [m for m in computed if m.extract == extract]
        if extract == "recorded_crime" and any(m.needs_outcome for m in measures):
            lf = _with_outcomes(lf, tables.get("crime_outcomes"))
        if extract == "crime_outcomes":
            lf = _with_crimes(lf, tables.get("recorded_crime"))
        base = _base(lf, measures)
        for m in measures:
            rows = _select(base, m.filter, membership)
            if m.kind == "count":
                comps = [_sum_by_month(rows, pl.col("n"), "value")]
            elif m.kind == "sum":
                comps = [_sum_by_month(rows, pl.col(m.column) * pl.col("n"), "value")]
            elif m.kind == "share":
                num = _select(rows, m.numerator_filter, membership) if m.numerator_filter else rows
                comps = [_sum_by_month(num, pl.col("n"), "num"), _sum_by_month(rows, pl.col("n"), "den")]
            elif m.kind == "mean":
                valid = rows.filter(pl.col(m.column).is_not_null())
                comps = [_sum_by_month(valid, pl.col(m.column) * pl.col("n"), "sum"), _sum_by_month(valid, pl.col("n"), "cnt")]
            else:  # median
                valid = rows.filter(pl.col(m.column).is_not_null())
                comps = [_sum_by_month(valid, pl.col("n"), "cnt")]
                hists.append(valid.group_by("force_id", "idx", m.column).agg(pl.col("n").sum()).rename({m.column: "v"}).with_columns(pl.col("v").cast(pl.Float64), pl.lit(m.id).alias("measure_id")))
            parts += [c.with_columns(pl.lit(m.id).alias("measure_id")) for c in comps]
    comp_schema = {"force_id": pl.Utf8, "idx": pl.Int32, "value": pl.Float64, "component": pl.Utf8, "measure_id": pl.Utf8}
    hist_schema = {"force_id": pl.Utf8, "idx": pl.Int32, "v": pl.Float64, "n": pl.Int64, "measure_id": pl.Utf8}
    components = pl.concat([p.select([pl.col(k).cast(t) for k, t in comp_schema.items()]) for p in parts]) if parts else pl.DataFrame(schema=comp_schema)
    histograms = pl.concat([h.select([pl.col(k).cast(t) for k, t in hist_schema.items()]) for h in hists]) if hists else pl.DataFrame(schema=hist_schema)
    return components, histograms


def monthly_counts(tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> pl.DataFrame:
    """Monthly value of every count measure: force_id, idx (month index), value, measure_id."""
    comps, _ = monthly_components(tables, defs)
    counts = {m.id for m in defs.measures if m.kind == "count"}
    return comps.filter(pl.col("measure_id").is_in(list(counts)) & (pl.col("component") == "value")).select("force_id", "idx", "value", "measure_id")


def definition_signature(m: Measure, defs: Definitions, idx: int) -> str:
    """Which definition versions count a measure in a month, e.g. 'grp_burglary_residential@2017-04'."""
    measure = defs.get(m.numerator) if m.is_rate and m.numerator else m
    groups = set(measure.filter.groups) | set(measure.numerator_filter.groups if measure.numerator_filter else ())
    if not groups:
        text = measure.filter.describe()
        if measure.numerator_filter:
            text = f"{measure.numerator_filter.describe()} / {text or 'all rows'}"
        return text or "all codes"
    mem = defs.groups.membership
    sig = (
        mem.filter(pl.col("group").is_in(sorted(groups)) & (pl.col("from_index") <= idx) & (pl.col("to_index") >= idx))
        .select((pl.col("group") + "@" + pl.col("group_version")).unique().sort())
        .to_series()
        .to_list()
    )
    return ", ".join(sig) if sig else "no definition in force"


# --------------------------------------------------------------------------------------------------
# Windows and rows


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
                cw = cur if comp == "target" else comparison_window(comp, cur)
                specs.append(_WindowSpec(period, comp, idx, cur.start.index, cw.start.index, cw.end.index))
    return specs


def _cumulative(dense: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """idx, cum_value, cum_loaded: running totals so a window sum is a difference of two lookups."""
    return (
        dense.join(series, on="idx", how="left")
        .with_columns(pl.when(pl.col("loaded") == 1).then(pl.col("value").fill_null(0.0)).otherwise(None).alias("value"))
        .sort("idx")
        .select("idx", pl.col("value").fill_null(0.0).cum_sum().alias("cum_value"), pl.col("loaded").cum_sum().alias("cum_loaded"))
    )


def _window_sums(w: pl.DataFrame, cum: pl.DataFrame, s: str, e: str, prefix: str) -> pl.DataFrame:
    lo = cum["idx"].min()
    hi = cum.rename({"idx": e, "cum_value": f"{prefix}_hi", "cum_loaded": f"{prefix}_lh"})
    before = cum.with_columns((pl.col("idx") + 1).alias(s)).drop("idx").rename({"cum_value": f"{prefix}_lo", "cum_loaded": f"{prefix}_ll"})
    w = w.join(hi, on=e, how="left").join(before, on=s, how="left")
    length = pl.col(e) - pl.col(s) + 1
    loaded = pl.col(f"{prefix}_lh") - pl.col(f"{prefix}_ll").fill_null(0)
    total = pl.col(f"{prefix}_hi") - pl.col(f"{prefix}_lo").fill_null(0.0)
    complete = (pl.col(s) >= lo) & (loaded == length)
    return w.with_columns(
        pl.when(complete).then(total).otherwise(None).alias(f"{prefix}_value"),
        complete.fill_null(False).alias(f"{prefix}_complete"),
        (length - loaded.fill_null(0)).alias(f"{prefix}_missing"),
    ).drop(f"{prefix}_hi", f"{prefix}_lo", f"{prefix}_lh", f"{prefix}_ll")


def _median(hist: pl.DataFrame, start: int, end: int) -> float | None:
    h = hist.filter((pl.col("idx") >= start) & (pl.col("idx") <= end)).group_by("v").agg(pl.col("n").sum()).sort("v")
    total = h["n"].sum()
    if not total:
        return None
    cum = h["n"].cum_sum()
    lower = h.filter(cum >= (total + 1) // 2)["v"][0]
    upper = h.filter(cum >= total // 2 + 1)["v"][0]
    return float(lower + upper) / 2.0 if total % 2 == 0 else float(upper)


@dataclass
class _ForceContext:
    force_id: str
    pop: dict
    published: pl.DataFrame | None
    run_id: str


def compute_measures(
    tables: dict[str, pl.LazyFrame | None] | pl.LazyFrame | None,
    loaded: pl.DataFrame,
    population: pl.DataFrame | None,
    defs: Definitions | None = None,
    run_id: str = "",
    published: pl.DataFrame | None = None,
    external: pl.DataFrame | None = None,
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
    components, histograms = monthly_components(tables, defs)
    loaded = loaded.select("force_id", "extract", _month_index("month").alias("idx")).unique()
    pop = (
        population.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
        if population is not None and population.height
        else pl.DataFrame(schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64})
    )
    out = []
    for (force_id,), fl in loaded.group_by("force_id", maintain_order=True):
        ctx = _ForceContext(force_id, {r["year"]: r["population"] for r in pop.filter(pl.col("force_id") == force_id).iter_rows(named=True)}, published, run_id)
        extracts = set(fl["extract"].to_list())
        public = any(e.startswith("police_uk") for e in extracts)
        force_profile = any(not e.startswith("police_uk") for e in extracts)
        main = fl.filter(~pl.col("extract").str.starts_with("police_uk")) if force_profile else fl
        span = (main["idx"].min(), main["idx"].max())
        fcomp = components.filter(pl.col("force_id") == force_id)
        for m in defs.measures:
            source = defs.get(m.numerator) if m.is_rate and m.numerator else m
            is_public = source.extract.startswith("police_uk")
            if (is_public and not public) or (not is_public and not force_profile):
                continue  # measures of the other source profile are not this force's
            if m.kind == "no_data":
                out.append(_declared_rows(m, defs, ctx, span, f"not computable yet: {m.reason}"))
                continue
            if m.kind == "external":
                out.append(_external_rows(m, defs, ctx, external))
                continue
            el = fl.filter(pl.col("extract") == source.extract)
            if source.extract == "recorded_crime" and source.needs_outcome:
                el = fl.filter(pl.col("extract") == "recorded_crime")
            if source.extract == "crime_outcomes":  # outcomes are judged by the months whose crimes and outcomes were loaded
                el = fl.filter(pl.col("extract") == "recorded_crime")
            if el.height == 0:
                out.append(_declared_rows(m, defs, ctx, span, f"needs the {source.extract} extract, not loaded for {force_id}"))
                continue
            first, last = el["idx"].min(), el["idx"].max()
            lo = min(first, YE_JUN19.start.index) - 24
            dense = pl.DataFrame({"idx": pl.int_range(lo, last + 1, eager=True, dtype=pl.Int32)})
            dense = dense.join(el.select("idx").unique().with_columns(pl.lit(1, pl.Int32).alias("loaded")), on="idx", how="left").with_columns(pl.col("loaded").fill_null(0))
            mcomp = fcomp.filter(pl.col("measure_id") == source.id)
            cums = {name: _cumulative(dense, mcomp.filter(pl.col("component") == name).select("idx", "value")) for name in _component_names(source)}
            hist = histograms.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == source.id)) if source.kind == "median" else None
            out.append(_rows_for(m, source, defs, ctx, cums, hist, first, last))
    if not out:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    return pl.concat(out).select([pl.col(k).cast(t) for k, t in MEASURE_SCHEMA.items()])


def _component_names(m: Measure) -> tuple[str, ...]:
    return {"share": ("num", "den"), "mean": ("sum", "cnt"), "median": ("cnt",)}.get(m.kind, ("value",))


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


def _value(source: Measure, r: dict, prefix: str, hist: pl.DataFrame | None) -> tuple[float | None, str | None]:
    """A window's value from its component sums (None with a reason when it has none)."""
    if source.kind in ("count", "sum"):
        return r[f"value_{prefix}_value"], None
    if source.kind == "share":
        num, den = r[f"num_{prefix}_value"], r[f"den_{prefix}_value"]
        if num is None or den is None:
            return None, None
        if den == 0:
            return None, "no rows in the denominator"
        return num / den * 100.0, None
    if source.kind == "mean":
        s, c = r[f"sum_{prefix}_value"], r[f"cnt_{prefix}_value"]
        if s is None or c is None:
            return None, None
        return (s / c, None) if c else (None, "no rows to average")
    if source.kind == "median":
        if r[f"cnt_{prefix}_value"] is None:
            return None, None
        start, end = (r["start"], r["end"]) if prefix == "cur" else (r["c_start"], r["c_end"])
        v = _median(hist, start, end) if hist is not None else None
        return v, None if v is not None else "no rows for a median"
    raise AssertionError(source.kind)


def _judge(m: Measure, comparison: str, value: float, change_abs: float | None, change_pct: float | None) -> str:
    t = m.target
    if t is None or t.rule == "monitor":
        return "monitor"
    if t.rule in ("gt", "ge", "lt", "le", "sla", "count_target"):
        ok = {"gt": value > t.value, "ge": value >= t.value, "lt": value < t.value, "le": value <= t.value,  # type: ignore[operator]
              "sla": value >= t.value, "count_target": value >= t.value}[t.rule]  # type: ignore[operator]
        return "met" if ok else "not_met"
    if t.comparison and comparison != t.comparison:
        return "monitor"
    if t.rule == "reduce_by":
        return "met" if change_pct is not None and change_pct <= -t.value else "not_met"  # type: ignore[operator]
    if t.rule == "increase":
        return "met" if change_abs is not None and change_abs > 0 else "not_met"
    if t.rule == "decrease":
        return "met" if change_abs is not None and change_abs < 0 else "not_met"
    return "monitor"


def _rows_for(m: Measure, source: Measure, defs: Definitions, ctx: _ForceContext, cums: dict[str, pl.DataFrame], hist: pl.DataFrame | None, first: int, last: int) -> pl.DataFrame:
    specs = _window_specs(m, first, last)
    if not specs:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    w = pl.DataFrame([s.__dict__ for s in specs], schema={"period": pl.Utf8, "comparison": pl.Utf8, "end": pl.Int32, "start": pl.Int32, "c_start": pl.Int32, "c_end": pl.Int32})
    for name, cum in cums.items():
        w = _window_sums(w, cum, "start", "end", f"{name}_cur")
        w = _window_sums(w, cum, "c_start", "c_end", f"{name}_cmp")
    first_comp = _component_names(source)[0]
    baseline = _published_baseline(source, ctx.force_id, ctx.published)
    sig_cache: dict[int, str] = {}

    def sig(i: int) -> str:
        if i not in sig_cache:
            sig_cache[i] = definition_signature(m, defs, i)
        return sig_cache[i]

    rows = []
    for r in w.iter_rows(named=True):  # one row per window pair: component sums as "<component>_<cur|cmp>_value"
        complete_cur = all(r[f"{n}_cur_complete"] for n in cums)
        complete_cmp = all(r[f"{n}_cmp_complete"] for n in cums)
        cur_sig = sig(r["start"]) if sig(r["start"]) == sig(r["end"]) else f"mixed: {sig(r['start'])} | {sig(r['end'])}"
        cmp_sig = sig(r["c_start"]) if sig(r["c_start"]) == sig(r["c_end"]) else f"mixed: {sig(r['c_start'])} | {sig(r['c_end'])}"
        notes: list[str] = []
        value = cvalue = None
        if complete_cur:
            value, why = _value(source, r, "cur", hist)
            if why:
                notes.append(f"current window: {why}")
        if complete_cmp and r["comparison"] != "target":
            cvalue, why = _value(source, r, "cmp", hist)
            if why:
                notes.append(f"comparison window: {why}")
        source_label = "force_records"
        if r["comparison"] == "target":
            cvalue, complete_cmp, cmp_sig, source_label = m.target.value, True, cur_sig, "target"  # type: ignore[union-attr]
        elif not complete_cmp and r["comparison"] == "ye_jun19" and baseline is not None and source.kind in ("count", "sum"):
            cvalue, complete_cmp, source_label = baseline[0], True, "published_statistics"
            cmp_sig = cur_sig  # the measure declares the published group as the same definition
            notes.append(f"baseline from published statistics ({r[f'{first_comp}_cmp_missing']} month(s) of the force's own records not loaded): {baseline[1]}")
        if not complete_cur:
            notes.append(f"current window {Month(r['start'])}..{Month(r['end'])} has {r[f'{first_comp}_cur_missing']} month(s) not loaded")
        if not complete_cmp:
            notes.append(f"comparison window {Month(r['c_start'])}..{Month(r['c_end'])} has {r[f'{first_comp}_cmp_missing']} month(s) not loaded")
        if m.is_rate:
            value, n1 = _rate(value, r["start"], ctx.pop, m.per)
            if r["comparison"] != "target":
                cvalue, n2 = _rate(cvalue, r["c_start"], ctx.pop, m.per)
            else:
                n2 = None
            notes += [n for n in (n1, n2) if n]
        complete_cur = complete_cur and value is not None
        complete_cmp = complete_cmp and cvalue is not None
        change_abs = change_pct = None
        if not (complete_cur and complete_cmp):
            status = "incomplete"
        elif cur_sig != cmp_sig:
            status = "not_comparable"
            notes.append(f"definitions differ: current [{cur_sig}] vs comparison [{cmp_sig}]")
        else:
            change_abs = value - cvalue  # type: ignore[operator]
            if r["comparison"] != "target":
                if cvalue != 0:
                    change_pct = change_abs / cvalue * 100.0
                else:
                    notes.append("comparison value is zero: no percent change")
            status = _judge(m, r["comparison"], value, change_abs, change_pct)  # type: ignore[arg-type]
        if m.basis:
            notes.insert(0, f"basis: {m.basis}")
        rows.append(
            {
                "force_id": ctx.force_id,
                "measure_id": m.id,
                "family": m.family,
                "period": r["period"],
                "period_start": str(Month(r["start"])),
                "period_end": str(Month(r["end"])),
                "value": value if complete_cur else None,
                "unit": m.unit,
                "comparison": r["comparison"],
                "comparison_start": None if r["comparison"] == "target" else str(Month(r["c_start"])),
                "comparison_end": None if r["comparison"] == "target" else str(Month(r["c_end"])),
                "comparison_value": cvalue if complete_cmp else None,
                "change_abs": change_abs,
                "change_pct": change_pct,
                "target": m.target.text if m.target else f"direction: {m.direction}",
                "status": status,
                "definition_version": f"{defs.label_for(m)}; {cur_sig}",
                "run_id": ctx.run_id,
                "note": "; ".join(([f"proxy for {m.proxy_for}: {m.note}"] if m.proxy_for else []) + notes) or None,
                "comparison_source": source_label if complete_cmp else None,
            }
        )
    return pl.DataFrame(rows, schema=MEASURE_SCHEMA)


def _declared_rows(m: Measure, defs: Definitions, ctx: _ForceContext, span: tuple[int, int], reason: str) -> pl.DataFrame:
    """Rows for a measure that cannot be computed for this force: incomplete, with the reason."""
    rows = []
    for s in _window_specs(m, span[0], span[1]):
        rows.append({
            "force_id": ctx.force_id, "measure_id": m.id, "family": m.family, "period": s.period,
            "period_start": str(Month(s.start)), "period_end": str(Month(s.end)), "value": None, "unit": m.unit,
            "comparison": s.comparison, "comparison_start": None if s.comparison == "target" else str(Month(s.c_start)),
            "comparison_end": None if s.comparison == "target" else str(Month(s.c_end)), "comparison_value": None,
            "change_abs": None, "change_pct": None, "target": m.target.text if m.target else f"direction: {m.direction}",
            "status": "incomplete", "definition_version": defs.label_for(m), "run_id": ctx.run_id, "note": reason, "comparison_source": None,
        })
    return pl.DataFrame(rows, schema=MEASURE_SCHEMA)


def _external_rows(m: Measure, defs: Definitions, ctx: _ForceContext, external: pl.DataFrame | None) -> pl.DataFrame:
    """[EXTERNAL] measures: the published figure as given, with the previous period as comparison."""
    if external is None or external.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    mine = external.filter((pl.col("force_id") == ctx.force_id) & (pl.col("measure_id") == m.id)).sort("period_end")
    rows = []
    for r in mine.iter_rows(named=True):
        prev = mine.filter((pl.col("period_end") < r["period_end"]) & (pl.col("period") == r["period"])).tail(1)
        p = prev.row(0, named=True) if prev.height else None
        change = (r["value"] - p["value"]) if p and r["value"] is not None and p["value"] is not None else None
        pct = change / p["value"] * 100 if change is not None and p["value"] else None
        rows.append({
            # a published financial year is fytd at its March; agg3y (three registration years) is kept
            "force_id": ctx.force_id, "measure_id": m.id, "family": m.family, "period": "fytd" if r["period"] == "fy" else r["period"],
            "period_start": r["period_start"], "period_end": r["period_end"], "value": r["value"], "unit": m.unit,
            "comparison": "sply" if p else None, "comparison_start": p["period_start"] if p else None, "comparison_end": p["period_end"] if p else None,
            "comparison_value": p["value"] if p else None, "change_abs": change, "change_pct": pct,
            "target": m.target.text if m.target else f"direction: {m.direction}", "status": "monitor",
            "definition_version": f"{defs.label_for(m)}; external: {r['source']}", "run_id": ctx.run_id,
            "note": f"published figure from {r['source']}" + ("" if p else "; no earlier published period loaded"), "comparison_source": "external_statistics" if p else None,
        })
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
