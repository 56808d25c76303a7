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

Each extract is aggregated once per force-month to the columns its measures filter on (a column only
compared with bounds, e.g. victim_age, to the classes the bounds tell apart); windows are sums of
monthly components looked up as differences of cumulative sums (medians use per-window histograms of
whole seconds). The rows of all forces and measures are computed together, as frames (see "Windows
and rows" below).
"""

from __future__ import annotations

from etl.errors import ConfigError
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from etl.core.periods import YE_JUN19, Month, comparison_window, month_index_expr, period_applies, period_window
from etl.core.reference import OffenceGroups, contracts_dir, load_offence_groups, yaml_load

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


class DefinitionError(ConfigError, ValueError):
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
        outcomes.group_by("force_id", "crime_ref")
        .agg(pl.col("outcome_type").sort_by("outcome_date", "month", "source_row").last().cast(pl.Utf8))
    )
    return crimes.join(latest, on=["force_id", "crime_ref"], how="left")


CRIME_COLUMNS = ("hocr_code", "recorded_date", "domestic_abuse", "status")


def _with_crimes(outcomes: pl.LazyFrame, crimes: pl.LazyFrame | None) -> pl.LazyFrame:
    """Each outcome with its crime's offence code, recorded date, DA flag and status (null if never loaded)."""
    if crimes is None:
        return outcomes.with_columns([pl.lit(None).alias(c) for c in CRIME_COLUMNS])
    return outcomes.join(crimes.select("force_id", "crime_ref", *CRIME_COLUMNS).unique(["force_id", "crime_ref"], keep="last"), on=["force_id", "crime_ref"], how="left")


def _filters(m: Measure) -> list[Filter]:
    return [m.filter] + ([m.numerator_filter] if m.numerator_filter else [])


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
        for f in _filters(m):
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

    expr = pl.when(v.is_null()).then(pl.lit(None, pl.Float64))
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
            [((pl.col(b) - pl.col(a)).dt.total_seconds() if unit == "seconds_between" else (pl.col(b) - pl.col(a)).dt.total_days()).cast(pl.Int64).alias(name)
             for name, (a, b, unit) in derive.items()]
        )
    keys: set[str] = set()
    for m in measures:
        for f in _filters(m):
            keys |= f.columns()
        if m.column:
            keys.add(m.column)
    cols = ["force_id", "month", *sorted(keys)]
    lf = lf.select(cols)
    classes = _range_cuts(measures, lf.collect_schema())
    if classes:
        lf = lf.with_columns([_range_class(c, cuts) for c, cuts in classes.items()])
    return (
        lf.group_by(cols)
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .with_columns(_month_index("month").alias("idx"))
        .collect(engine="streaming")
    )


def _group_column(groups: frozenset, membership: pl.DataFrame) -> pl.Expr:
    """Whether a row's hocr_code is in one of the offence groups, by the group version in force in the
    row's month (a code in two groups of a union counts once)."""
    versions = (
        membership.filter(pl.col("group").is_in(sorted(groups)))
        .group_by("from_index", "to_index").agg(pl.col("code").unique().sort())
        .sort("from_index", "to_index")
    )
    inside = pl.lit(False)
    for lo, hi, codes in versions.iter_rows():
        inside = inside | (pl.col("hocr_code").is_in(codes) & pl.col("idx").is_between(lo, hi))
    return inside.fill_null(False)


def _with_group_columns(base: pl.DataFrame, measures: list[Measure], membership: pl.DataFrame) -> tuple[pl.DataFrame, dict[frozenset, str]]:
    """The base with one boolean column per set of offence groups the measures filter on
    (``_group_column``); hocr_code becomes categorical (each code text stored once)."""
    sets = sorted({frozenset(f.groups) for m in measures for f in _filters(m) if f.groups}, key=sorted)
    names = {s: f"_in_groups_{i}" for i, s in enumerate(sets)}
    if not sets:
        return base, names
    base = base.with_columns(pl.col("hocr_code").cast(pl.Utf8).cast(pl.Categorical))
    return base.lazy().with_columns([_group_column(s, membership).alias(name) for s, name in names.items()]).collect(), names


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
    if m.kind == "sum":
        return [("value", over(rows, pl.col(m.column) * n), over(rows))]
    if m.kind == "share":
        num = rows & _rows_expr(m.numerator_filter, group_columns) if m.numerator_filter else rows
        return [("num", over(num), over(num)), ("den", over(rows), over(rows))]
    valid = rows & pl.col(m.column).is_not_null()
    if m.kind == "mean":
        return [("sum", over(valid, pl.col(m.column) * n), over(valid)), ("cnt", over(valid), over(valid))]
    return [("cnt", over(valid), over(valid))]  # median (its histogram: _histogram)


def _histogram(base: pl.DataFrame, m: Measure, group_columns: dict[frozenset, str]) -> pl.DataFrame:
    """A median measure's monthly histogram: rows n by value v (whole seconds), per force and month."""
    valid = base.filter(_rows_expr(m.filter, group_columns) & pl.col(m.column).is_not_null())
    return valid.group_by("force_id", "idx", m.column).agg(pl.col("n").sum()).rename({m.column: "v"}).with_columns(pl.col("v").cast(pl.Float64), pl.lit(m.id).alias("measure_id"))


def _components_of(base: pl.DataFrame, measures: list[Measure], membership: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Monthly components (long: force_id, idx, value, component, measure_id) and median histograms
    of the measures of one extract, from its base; every measure's sums in one group_by."""
    base, group_columns = _with_group_columns(base, measures, membership)
    sums, names = [], []
    for m in measures:
        for component, value, counted in _component_sums(m, group_columns):
            names.append((f"_s{len(names)}", m.id, component))
            sums += [value.sum().cast(pl.Float64).alias(names[-1][0]), counted.count().alias(names[-1][0] + "_rows")]
    wide = base.lazy().group_by("force_id", "idx").agg(sums).collect()  # lazy: conditions shared by measures are computed once
    parts = [
        wide.filter(pl.col(col + "_rows") > 0).select("force_id", "idx", pl.col(col).alias("value"), pl.lit(component).alias("component"), pl.lit(mid).alias("measure_id"))
        for col, mid, component in names
    ]
    hists = [_histogram(base, m, group_columns) for m in measures if m.kind == "median"]
    return pl.concat(parts), hists


def monthly_components(tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(components, histograms). components: force_id, idx, measure_id, component, value - the monthly
    sums every window is built from. histograms: force_id, idx, measure_id, v, n (for medians).

    The result of the last call is reused when called again with the very same table objects and
    definitions (refresh_measures computes the measures and then the control charts from the same
    tables): see ``_LastComponents``."""
    reused = _LAST_COMPONENTS.get(tables, defs)
    if reused is not None:
        return reused
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
        comps, h = _components_of(_base(lf, measures), measures, membership)
        parts.append(comps)
        hists += h
    comp_schema = {"force_id": pl.Utf8, "idx": pl.Int32, "value": pl.Float64, "component": pl.Utf8, "measure_id": pl.Utf8}
    hist_schema = {"force_id": pl.Utf8, "idx": pl.Int32, "v": pl.Float64, "n": pl.Int64, "measure_id": pl.Utf8}
    components = pl.concat([p.select([pl.col(k).cast(t) for k, t in comp_schema.items()]) for p in parts]) if parts else pl.DataFrame(schema=comp_schema)
    histograms = pl.concat([h.select([pl.col(k).cast(t) for k, t in hist_schema.items()]) for h in hists]) if hists else pl.DataFrame(schema=hist_schema)
    _LAST_COMPONENTS.put(tables, defs, (components, histograms))
    return components, histograms


class _LastComponents:
    """The last monthly_components result, with weak references to the definitions and table objects
    it was computed from. A LazyFrame is a fixed query (the warehouse scans each Delta table at a pinned
    version), so the very same objects give the same components; an object freed since never matches."""

    def __init__(self) -> None:
        self.refs: tuple | None = None
        self.result: tuple[pl.DataFrame, pl.DataFrame] | None = None

    @staticmethod
    def _refs(tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> tuple:
        return weakref.ref(defs), {name: None if lf is None else weakref.ref(lf) for name, lf in tables.items()}

    def get(self, tables: dict[str, pl.LazyFrame | None], defs: Definitions) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        if self.refs is None:
            return None
        defs_ref, table_refs = self.refs
        if defs_ref() is not defs or set(table_refs) != set(tables):
            return None
        for name, lf in tables.items():
            ref = table_refs[name]
            if (lf is None) != (ref is None) or (ref is not None and ref() is not lf):
                return None
        return self.result

    def put(self, tables: dict[str, pl.LazyFrame | None], defs: Definitions, result: tuple[pl.DataFrame, pl.DataFrame]) -> None:
        self.refs, self.result = self._refs(tables, defs), result


_LAST_COMPONENTS = _LastComponents()


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
#
# The rows of every force and measure are built at once, as frames, in these steps:
#
#   _measure_table    one row per measure: the constants its rows carry (unit, target rule, labels...)
#   _force_table      one row per force: which source profiles it has loaded and its span of months
#   _plan             one row per force and measure: computed over the months of the extract that
#                     decides completeness, or declared incomplete with the reason
#   _spec_frame       the windows (period, comparison) at every period end, from _window_specs
#   _cumulative       running totals of each measure's monthly components and of loaded months
#   _window_sums      a window's sum = the difference of two running totals; complete when every
#                     month of the window was loaded
#   _computed_rows    values -> published baseline / target -> rates -> change -> status -> notes
#
# Medians (few measures) are taken window by window from the monthly histograms (_window_medians).


@dataclass(frozen=True)
class _WindowSpec:
    period: str
    comparison: str
    end: int
    start: int
    c_start: int
    c_end: int


_SPEC_SCHEMA = {"period": pl.Utf8, "comparison": pl.Utf8, "end": pl.Int32, "start": pl.Int32, "c_start": pl.Int32, "c_end": pl.Int32}


def _window_specs(measure: Measure, first: int, last: int) -> list[_WindowSpec]:
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
                specs.append(_WindowSpec(period, comp, idx, cur.start.index, cw.start.index, cw.end.index))
    return specs


def _spec_frame(measures: list[Measure], first: int, last: int) -> pl.DataFrame:
    """measure_id, spec_rank (report order) and the window of every spec of each measure, for period
    ends first..last (computed once per distinct set of periods)."""
    by_periods: dict[tuple, pl.DataFrame] = {}
    out = []
    for m in measures:
        key = tuple(m.periods.items())
        if key not in by_periods:
            specs = [s.__dict__ for s in _window_specs(m, first, last)]
            by_periods[key] = pl.DataFrame(specs, schema=_SPEC_SCHEMA).with_row_index("spec_rank")
        out.append(by_periods[key].with_columns(pl.lit(m.id).alias("measure_id")))
    return pl.concat(out)


def _month_range(specs: pl.DataFrame) -> tuple[int, int]:
    """The first and last month any window of the specs touches."""
    return (
        specs.select(pl.min_horizontal(pl.col("start").min(), pl.col("c_start").min())).item(),
        specs.select(pl.max_horizontal(pl.col("end").max(), pl.col("c_end").max())).item(),
    )


def _month_text(col: str, months: tuple[int, int]) -> pl.Expr:
    """A month index column (within ``months``, first..last) as ``YYYY-MM``, as ``periods.Month`` prints it."""
    idx = list(range(months[0], months[1] + 1))
    return pl.col(col).replace_strict(idx, [str(Month(i)) for i in idx], return_dtype=pl.Utf8)


def _june_year(col: str) -> pl.Expr:
    """The calendar year of the first 30 June on or after a window's first month (its population year)."""
    c = pl.col(col)
    return (c // 12 + pl.when(c % 12 <= 5).then(0).otherwise(1)).cast(pl.Int32)


def _source(m: Measure, defs: Definitions) -> Measure:
    """The measure whose rows are counted: a rate's numerator, else the measure itself."""
    return defs.get(m.numerator) if m.is_rate and m.numerator else m


def _completeness_extract(source: Measure) -> str:
    """The extract whose loaded months decide whether a window is complete (outcomes: their crimes')."""
    return "recorded_crime" if source.extract == "crime_outcomes" else source.extract


def _measure_table(defs: Definitions) -> pl.DataFrame:
    """One row per measure with the constants its rows carry and the rules that judge them."""
    rows = []
    for rank, m in enumerate(defs.measures):
        source = _source(m, defs)
        t = m.target
        rows.append({
            "measure_id": m.id, "m_rank": rank, "kind": m.kind, "source_id": source.id, "source_kind": source.kind,
            "public_source": source.extract.startswith("police_uk"), "source_extract": source.extract,
            "needs_extract": _completeness_extract(source), "family": m.family, "unit": m.unit,
            "target": t.text if t else f"direction: {m.direction}", "label": defs.label_for(m),
            "lead_note": f"proxy for {m.proxy_for}: {m.note}" if m.proxy_for else None,
            "basis_note": f"basis: {m.basis}" if m.basis else None,
            "rule": t.rule if t else None, "target_value": t.value if t else None, "target_comparison": (t.comparison or None) if t else None,
            "is_rate": m.is_rate, "per": m.per, "reason": m.reason,
        })
    return pl.DataFrame(rows, schema={
        "measure_id": pl.Utf8, "m_rank": pl.Int64, "kind": pl.Utf8, "source_id": pl.Utf8, "source_kind": pl.Utf8, "public_source": pl.Boolean,
        "source_extract": pl.Utf8, "needs_extract": pl.Utf8, "family": pl.Utf8, "unit": pl.Utf8, "target": pl.Utf8, "label": pl.Utf8,
        "lead_note": pl.Utf8, "basis_note": pl.Utf8, "rule": pl.Utf8, "target_value": pl.Float64, "target_comparison": pl.Utf8,
        "is_rate": pl.Boolean, "per": pl.Int64, "reason": pl.Utf8,
    })


def _force_table(loaded: pl.DataFrame) -> pl.DataFrame:
    """One row per force (in order of first appearance): force_rank; public / force_profile (whether
    data.police.uk extracts / the force's own extracts are loaded: a measure of the other profile is
    not the force's); span_first..span_last, the months of the profile's extracts (the force's own
    when it has both)."""
    public = pl.col("extract").str.starts_with("police_uk")
    return (
        loaded.group_by("force_id", maintain_order=True)
        .agg(
            public.any().alias("public"),
            (~public).any().alias("force_profile"),
            pl.col("idx").filter(~public).min().alias("own_first"), pl.col("idx").filter(~public).max().alias("own_last"),
            pl.col("idx").min().alias("any_first"), pl.col("idx").max().alias("any_last"),
        )
        .with_row_index("force_rank")
        .select(
            "force_id", "force_rank", "public", "force_profile",
            pl.when(pl.col("force_profile")).then(pl.col("own_first")).otherwise(pl.col("any_first")).alias("span_first"),
            pl.when(pl.col("force_profile")).then(pl.col("own_last")).otherwise(pl.col("any_last")).alias("span_last"),
        )
    )


def _plan(measures: pl.DataFrame, forces: pl.DataFrame, loaded: pl.DataFrame) -> pl.DataFrame:
    """One row per force and each measure of its profile (external measures excepted): first..last,
    the loaded months of the extract deciding completeness (null when it is not loaded), and for a
    measure that cannot be computed the reason its rows are declared incomplete."""
    extents = loaded.group_by("force_id", "extract").agg(pl.col("idx").min().alias("first"), pl.col("idx").max().alias("last"))
    plan = (
        measures.filter(pl.col("kind") != "external")
        .join(forces, how="cross")
        .filter(pl.when(pl.col("public_source")).then(pl.col("public")).otherwise(pl.col("force_profile")))
        .join(extents, left_on=["force_id", "needs_extract"], right_on=["force_id", "extract"], how="left")
    )
    declared = (
        pl.when(pl.col("kind") == "no_data").then(pl.format("not computable yet: {}", pl.col("reason")))
        .when(pl.col("first").is_null()).then(pl.format("needs the {} extract, not loaded for {}", pl.col("source_extract"), pl.col("force_id")))
    )
    return plan.with_columns(declared.alias("declared"))


def _declared_rows(plan: pl.DataFrame, specs: pl.DataFrame, months: tuple[int, int], run_id: str) -> pl.DataFrame:
    """Rows for measures that cannot be computed for a force: every window of its span, incomplete,
    with the reason."""
    w = plan.filter(pl.col("declared").is_not_null()).join(specs, on="measure_id").filter(pl.col("end").is_between(pl.col("span_first"), pl.col("span_last")))
    not_target = pl.col("comparison") != "target"
    return w.select(
        "force_rank", "m_rank", pl.col("spec_rank").alias("row_rank"),
        "force_id", "measure_id", "family", "period", _month_text("start", months).alias("period_start"), _month_text("end", months).alias("period_end"),
        pl.lit(None, pl.Float64).alias("value"), "unit", "comparison",
        pl.when(not_target).then(_month_text("c_start", months)).alias("comparison_start"), pl.when(not_target).then(_month_text("c_end", months)).alias("comparison_end"),
        pl.lit(None, pl.Float64).alias("comparison_value"), pl.lit(None, pl.Float64).alias("change_abs"), pl.lit(None, pl.Float64).alias("change_pct"),
        "target", pl.lit("incomplete").alias("status"), pl.col("label").alias("definition_version"), pl.lit(run_id).alias("run_id"),
        pl.col("declared").alias("note"), pl.lit(None, pl.Utf8).alias("comparison_source"),
    )


def _component_slots(measures: pl.DataFrame) -> pl.DataFrame:
    """source_id, component, slot: which monthly component is a source's first (a) and second (b)
    sum - count/sum: value; share: num, den; mean: sum, cnt; median: cnt."""
    names = {"share": ("num", "den"), "mean": ("sum", "cnt"), "median": ("cnt",)}
    rows = [
        {"source_id": sid, "component": name, "slot": slot}
        for sid, kind in measures.select("source_id", "source_kind").unique().iter_rows()
        for slot, name in zip("ab", names.get(kind, ("value",)))
    ]
    return pl.DataFrame(rows, schema={"source_id": pl.Utf8, "component": pl.Utf8, "slot": pl.Utf8})


def _cumulative(plan: pl.DataFrame, loaded: pl.DataFrame, components: pl.DataFrame, slots: pl.DataFrame) -> pl.DataFrame:
    """series, idx, cum_loaded, cum_a, cum_b: running totals per series (a force's source measure; see
    compute_measures), from 24 months before the earlier of its first loaded month and the ye_jun19
    baseline to its last, of the loaded months (of the extract deciding completeness) and of the
    components in those months. Components of months not loaded are left out."""
    series = plan.select("series", "force_id", "source_id", "needs_extract", "first", "last").unique()
    dense = (
        series.with_columns((pl.min_horizontal("first", pl.lit(YE_JUN19.start.index, pl.Int32)) - 24).alias("lo"))
        .with_columns(pl.int_ranges("lo", pl.col("last") + 1, dtype=pl.Int32).alias("idx"))
        .explode("idx")
        .join(loaded.select("force_id", pl.col("extract").alias("needs_extract"), "idx", pl.lit(1, pl.Int32).alias("loaded")), on=["force_id", "needs_extract", "idx"], how="left")
        .with_columns(pl.col("loaded").fill_null(0))
    )
    comps = (
        components.join(slots, left_on=["measure_id", "component"], right_on=["source_id", "component"], how="inner")
        .join(series.select("series", "force_id", pl.col("source_id").alias("measure_id")), on=["force_id", "measure_id"], how="inner")
    )
    for slot in "ab":
        dense = dense.join(comps.filter(pl.col("slot") == slot).select("series", "idx", pl.col("value").alias(slot)), on=["series", "idx"], how="left")
    in_loaded = lambda c: pl.when(pl.col("loaded") == 1).then(pl.col(c).fill_null(0.0)).otherwise(None).fill_null(0.0)
    return dense.sort("series", "idx").select(
        "series", "idx",
        pl.col("loaded").cum_sum().over("series").alias("cum_loaded"),
        in_loaded("a").cum_sum().over("series").alias("cum_a"),
        in_loaded("b").cum_sum().over("series").alias("cum_b"),
    )


def _window_sums(w: pl.DataFrame, cum: pl.DataFrame, s: str, e: str, side: str) -> pl.DataFrame:
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


def _window_medians(windows: pl.DataFrame, histograms: pl.DataFrame) -> pl.DataFrame:
    """force_id, source_id, start, end, med: the median of each window from the monthly histograms."""
    out = []
    for (force_id, source_id), ws in windows.group_by("force_id", "source_id"):
        h = histograms.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == source_id)).sort("idx")
        idx, v, n = h["idx"].to_numpy(), h["v"].to_numpy(), h["n"].to_numpy()
        for start, end in ws.select("start", "end").iter_rows():
            a, b = np.searchsorted(idx, start, side="left"), np.searchsorted(idx, end, side="right")
            out.append((force_id, source_id, start, end, _median(v[a:b], n[a:b])))
    return pl.DataFrame(out, schema={"force_id": pl.Utf8, "source_id": pl.Utf8, "start": pl.Int32, "end": pl.Int32, "med": pl.Float64}, orient="row")


def _with_medians(w: pl.DataFrame, histograms: pl.DataFrame) -> pl.DataFrame:
    """Adds med_cur / med_cmp for the complete windows of median measures (null elsewhere)."""
    med = pl.col("source_kind") == "median"
    cur = w.filter(med & pl.col("complete_cur")).select("force_id", "source_id", "start", "end")
    cmp = w.filter(med & pl.col("complete_cmp") & (pl.col("comparison") != "target")).select("force_id", "source_id", pl.col("c_start").alias("start"), pl.col("c_end").alias("end"))
    windows = pl.concat([cur, cmp]).unique()
    if windows.height == 0:
        return w.with_columns(pl.lit(None, pl.Float64).alias("med_cur"), pl.lit(None, pl.Float64).alias("med_cmp"))
    meds = _window_medians(windows, histograms)
    keys = ["force_id", "source_id"]
    return (
        w.join(meds.rename({"med": "med_cur"}), on=[*keys, "start", "end"], how="left")
        .join(meds.rename({"start": "c_start", "end": "c_end", "med": "med_cmp"}), on=[*keys, "c_start", "c_end"], how="left")
    )


def _window_value(side: str) -> tuple[pl.Expr, pl.Expr]:
    """A window's value from its component sums (by the source measure's kind), and why it has none."""
    a, b, med, kind = pl.col(f"a_{side}"), pl.col(f"b_{side}"), pl.col(f"med_{side}"), pl.col("source_kind")
    value = (
        pl.when(kind.is_in(["count", "sum"])).then(a)
        .when(kind == "share").then(pl.when(b != 0).then(a / b * 100.0))
        .when(kind == "mean").then(pl.when(b != 0).then(a / b))
        .when(kind == "median").then(med)
    )
    why = (
        pl.when((kind == "share") & (b == 0)).then(pl.lit("no rows in the denominator"))
        .when((kind == "mean") & (b == 0)).then(pl.lit("no rows to average"))
        .when((kind == "median") & a.is_not_null() & med.is_null()).then(pl.lit("no rows for a median"))
    )
    return value, why


def _signature_table(defs: Definitions, source_ids: list[str], first: int, last: int) -> pl.DataFrame:
    """source_id, idx, sig: ``definition_signature`` of every source measure in months first..last."""
    months = pl.DataFrame({"idx": pl.int_range(first, last + 1, eager=True, dtype=pl.Int32)})
    versions = defs.groups.membership.select("group", "group_version", "from_index", "to_index").unique()
    by_groups: dict[tuple[str, ...], pl.DataFrame] = {}
    out = []
    for sid in source_ids:
        measure = defs.get(sid)
        groups = tuple(sorted(set(measure.filter.groups) | set(measure.numerator_filter.groups if measure.numerator_filter else ())))
        if not groups:
            text = measure.filter.describe()
            if measure.numerator_filter:
                text = f"{measure.numerator_filter.describe()} / {text or 'all rows'}"
            sig = months.with_columns(pl.lit(text or "all codes").alias("sig"))
        else:
            if groups not in by_groups:
                in_force = (
                    months.join(versions.filter(pl.col("group").is_in(list(groups))), how="cross")
                    .filter((pl.col("from_index") <= pl.col("idx")) & (pl.col("to_index") >= pl.col("idx")))
                    .group_by("idx").agg((pl.col("group") + "@" + pl.col("group_version")).unique().sort().alias("sig"))
                    .with_columns(pl.col("sig").list.join(", "))
                )
                by_groups[groups] = months.join(in_force, on="idx", how="left").with_columns(pl.col("sig").fill_null("no definition in force"))
            sig = by_groups[groups]
        out.append(sig.with_columns(pl.lit(sid).alias("source_id")))
    return pl.concat(out).select("source_id", "idx", "sig")


def _with_signatures(w: pl.DataFrame, defs: Definitions) -> pl.DataFrame:
    """Adds cur_sig / cmp_sig: the definition versions counting each window ('mixed: a | b' when the
    window straddles a change)."""
    ends = ["start", "end", "c_start", "c_end"]
    first = w.select(pl.min_horizontal(*[pl.col(c).min() for c in ends])).item()
    last = w.select(pl.max_horizontal(*[pl.col(c).max() for c in ends])).item()
    sigs = _signature_table(defs, w["source_id"].unique().sort().to_list(), first, last)
    for c in ends:
        w = w.join(sigs.rename({"idx": c, "sig": f"_sig_{c}"}), on=["source_id", c], how="left")

    def window_sig(s: str, e: str) -> pl.Expr:
        a, b = pl.col(f"_sig_{s}"), pl.col(f"_sig_{e}")
        return pl.when(a == b).then(a).otherwise(pl.format("mixed: {} | {}", a, b))

    return w.with_columns(window_sig("start", "end").alias("cur_sig"), window_sig("c_start", "c_end").alias("cmp_sig")).drop([f"_sig_{c}" for c in ends])


def _population_table(pop: pl.DataFrame, forces: list[str], first_year: int, last_year: int) -> pl.DataFrame:
    """force_id, year, population, pop_note: the estimate a rate uses for a window whose June year is
    ``year`` - that year's, else the latest earlier one (with a note), else none (with a note)."""
    rows = []
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


def _with_population(w: pl.DataFrame, pop: pl.DataFrame) -> pl.DataFrame:
    """Adds pop_cur / pop_note_cur and pop_cmp / pop_note_cmp for rate measures: the estimate of the
    June year of the window's first month (``_population_table``)."""
    rates = w.filter(pl.col("is_rate"))
    cols = ["pop_cur", "pop_note_cur", "pop_cmp", "pop_note_cmp"]
    if rates.height == 0:
        return w.with_columns(pl.lit(None, pl.Float64).alias("pop_cur"), pl.lit(None, pl.Utf8).alias("pop_note_cur"),
                              pl.lit(None, pl.Float64).alias("pop_cmp"), pl.lit(None, pl.Utf8).alias("pop_note_cmp"))
    years = rates.select(pl.min_horizontal(_june_year("start").min(), _june_year("c_start").min()).alias("a"),
                         pl.max_horizontal(_june_year("start").max(), _june_year("c_start").max()).alias("b")).row(0)
    table = _population_table(pop, rates["force_id"].unique().to_list(), years[0], years[1])
    w = w.with_columns(_june_year("start").alias("_y_cur"), _june_year("c_start").alias("_y_cmp"))
    for side in ("cur", "cmp"):
        w = w.join(table.rename({"year": f"_y_{side}", "population": f"pop_{side}", "pop_note": f"pop_note_{side}"}), on=["force_id", f"_y_{side}"], how="left")
    not_rate = ~pl.col("is_rate")
    return w.with_columns([pl.when(not_rate).then(None).otherwise(pl.col(c)).alias(c) for c in cols]).drop("_y_cur", "_y_cmp")


def _published_baselines(plan: pl.DataFrame, defs: Definitions, published: pl.DataFrame | None) -> pl.DataFrame:
    """force_id, source_id, baseline, baseline_text: the published ye_jun19 count of each force's
    source measures that declare a published offence group (``_published_baseline``)."""
    rows = []
    if published is not None and published.height:
        for force_id, sid in plan.select("force_id", "source_id").unique().sort("force_id", "source_id").iter_rows():
            found = _published_baseline(defs.get(sid), force_id, published)
            if found is not None:
                rows.append((force_id, sid, found[0], found[1]))
    return pl.DataFrame(rows, schema={"force_id": pl.Utf8, "source_id": pl.Utf8, "baseline": pl.Float64, "baseline_text": pl.Utf8}, orient="row")


def _judge() -> pl.Expr:
    """The status of a row with both values, by the measure's target rule (catalogue section 0.6):
    ``gt``/``ge``/``lt``/``le``/``sla``/``count_target`` compare the value with the target on every row;
    ``reduce_by`` (change_pct <= -target), ``increase`` (change_abs > 0) and ``decrease`` (change_abs < 0)
    judge only the rule's comparison row (every row when it names none); anything else is ``monitor``."""
    rule, t, value = pl.col("rule"), pl.col("target_value"), pl.col("value")

    def met(ok: pl.Expr) -> pl.Expr:
        return pl.when(ok).then(pl.lit("met")).otherwise(pl.lit("not_met"))

    threshold = (
        pl.when(rule == "gt").then(value > t).when(rule == "ge").then(value >= t).when(rule == "lt").then(value < t)
        .when(rule == "le").then(value <= t).otherwise(value >= t)  # sla, count_target
    )
    return (
        pl.when(rule.is_null() | (rule == "monitor")).then(pl.lit("monitor"))
        .when(rule.is_in(["gt", "ge", "lt", "le", "sla", "count_target"])).then(met(threshold))
        .when(pl.col("target_comparison").is_not_null() & (pl.col("comparison") != pl.col("target_comparison"))).then(pl.lit("monitor"))
        .when(rule == "reduce_by").then(met(pl.col("change_pct").is_not_null() & (pl.col("change_pct") <= -t)))
        .when(rule == "increase").then(met(pl.col("change_abs").is_not_null() & (pl.col("change_abs") > 0)))
        .when(rule == "decrease").then(met(pl.col("change_abs").is_not_null() & (pl.col("change_abs") < 0)))
        .otherwise(pl.lit("monitor"))
    )


def _computed_rows(w: pl.DataFrame, months: tuple[int, int], run_id: str) -> pl.DataFrame:
    """The measure rows from the windows with their sums, medians, signatures, populations and
    published baselines (one row per window; see the module docstring for values and statuses)."""
    is_target = pl.col("comparison") == "target"
    value_cur, why_cur = _window_value("cur")
    value_cmp, why_cmp = _window_value("cmp")
    # 1. the windows' own values (an incomplete window has none)
    w = w.with_columns(
        pl.when(pl.col("complete_cur")).then(value_cur).alias("value"),
        pl.when(pl.col("complete_cur")).then(why_cur).alias("why_cur"),
        pl.when(pl.col("complete_cmp") & ~is_target).then(value_cmp).alias("cvalue"),
        pl.when(pl.col("complete_cmp") & ~is_target).then(why_cmp).alias("why_cmp"),
    )
    # 2. the comparison of a target row is the target; a ye_jun19 baseline whose months are not loaded
    #    comes from the published statistics when the measure declares the same definition
    baseline = (
        ~is_target & ~pl.col("complete_cmp") & (pl.col("comparison") == "ye_jun19")
        & pl.col("baseline").is_not_null() & pl.col("source_kind").is_in(["count", "sum"])
    )
    w = w.with_columns(baseline.alias("from_published")).with_columns(
        pl.when(is_target).then(pl.col("target_value")).when(pl.col("from_published")).then(pl.col("baseline")).otherwise(pl.col("cvalue")).alias("cvalue"),
        (is_target | pl.col("from_published") | pl.col("complete_cmp")).alias("complete_cmp"),
        pl.when(is_target | pl.col("from_published")).then(pl.col("cur_sig")).otherwise(pl.col("cmp_sig")).alias("cmp_sig"),
        pl.when(is_target).then(pl.lit("target")).when(pl.col("from_published")).then(pl.lit("published_statistics")).otherwise(pl.lit("force_records")).alias("comparison_source"),
    )
    # 3. rates: per the population of the window's June year
    rate_cur = pl.col("is_rate") & pl.col("value").is_not_null()
    rate_cmp = pl.col("is_rate") & ~is_target & pl.col("cvalue").is_not_null()
    w = w.with_columns(
        pl.when(rate_cur).then(pl.col("value") / pl.col("pop_cur") * pl.col("per")).otherwise(pl.col("value")).alias("value"),
        pl.when(rate_cmp).then(pl.col("cvalue") / pl.col("pop_cmp") * pl.col("per")).otherwise(pl.col("cvalue")).alias("cvalue"),
        pl.when(rate_cur).then(pl.col("pop_note_cur")).alias("rate_note_cur"),
        pl.when(rate_cmp).then(pl.col("pop_note_cmp")).alias("rate_note_cmp"),
    )
    # 4. change and status
    complete = pl.col("complete_cur") & pl.col("value").is_not_null() & pl.col("complete_cmp") & pl.col("cvalue").is_not_null()
    w = w.with_columns(
        (pl.col("complete_cur") & pl.col("value").is_not_null()).alias("has_value"),
        (pl.col("complete_cmp") & pl.col("cvalue").is_not_null()).alias("has_cvalue"),
        complete.alias("both"),
        (complete & (pl.col("cur_sig") != pl.col("cmp_sig"))).alias("differ"),
    ).with_columns((pl.col("both") & ~pl.col("differ")).alias("comparable"))
    w = w.with_columns(pl.when(pl.col("comparable")).then(pl.col("value") - pl.col("cvalue")).alias("change_abs"))
    pct = pl.col("comparable") & ~is_target & (pl.col("cvalue") != 0)
    w = w.with_columns(pl.when(pct).then(pl.col("change_abs") / pl.col("cvalue") * 100.0).alias("change_pct"))
    status = pl.when(~pl.col("both")).then(pl.lit("incomplete")).when(pl.col("differ")).then(pl.lit("not_comparable")).otherwise(_judge())
    # 5. notes, in this order
    notes = [
        pl.col("lead_note"),
        pl.col("basis_note"),
        pl.format("current window: {}", pl.col("why_cur")),
        pl.format("comparison window: {}", pl.col("why_cmp")),
        pl.when(pl.col("from_published")).then(pl.format("baseline from published statistics ({} month(s) of the force's own records not loaded): {}", pl.col("missing_cmp"), pl.col("baseline_text"))),
        pl.when(~pl.col("complete_cur")).then(pl.format("current window {}..{} has {} month(s) not loaded", _month_text("start", months), _month_text("end", months), pl.col("missing_cur"))),
        pl.when(~pl.col("complete_cmp")).then(pl.format("comparison window {}..{} has {} month(s) not loaded", _month_text("c_start", months), _month_text("c_end", months), pl.col("missing_cmp"))),
        pl.col("rate_note_cur"),
        pl.col("rate_note_cmp"),
        pl.when(pl.col("differ")).then(pl.format("definitions differ: current [{}] vs comparison [{}]", pl.col("cur_sig"), pl.col("cmp_sig"))),
        pl.when(pl.col("comparable") & ~is_target & (pl.col("cvalue") == 0)).then(pl.lit("comparison value is zero: no percent change")),
    ]
    note = pl.concat_str(notes, separator="; ", ignore_nulls=True)
    return w.select(
        "force_rank", "m_rank", pl.col("spec_rank").alias("row_rank"),
        "force_id", "measure_id", "family", "period", _month_text("start", months).alias("period_start"), _month_text("end", months).alias("period_end"),
        pl.when(pl.col("has_value")).then(pl.col("value")).alias("value"), "unit", "comparison",
        pl.when(~is_target).then(_month_text("c_start", months)).alias("comparison_start"), pl.when(~is_target).then(_month_text("c_end", months)).alias("comparison_end"),
        pl.when(pl.col("has_cvalue")).then(pl.col("cvalue")).alias("comparison_value"), "change_abs", "change_pct", "target", status.alias("status"),
        pl.format("{}; {}", pl.col("label"), pl.col("cur_sig")).alias("definition_version"), pl.lit(run_id).alias("run_id"),
        pl.when(note != "").then(note).alias("note"), pl.when(pl.col("has_cvalue")).then(pl.col("comparison_source")).alias("comparison_source"),
    )


def _external_rows(m: Measure, defs: Definitions, force_id: str, run_id: str, external: pl.DataFrame | None) -> pl.DataFrame:
    """[EXTERNAL] measures: the published figure as given, with the previous period as comparison."""
    if external is None or external.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    mine = external.filter((pl.col("force_id") == force_id) & (pl.col("measure_id") == m.id)).sort("period_end")
    rows = []
    for r in mine.iter_rows(named=True):
        prev = mine.filter((pl.col("period_end") < r["period_end"]) & (pl.col("period") == r["period"])).tail(1)
        p = prev.row(0, named=True) if prev.height else None
        change = (r["value"] - p["value"]) if p and r["value"] is not None and p["value"] is not None else None
        pct = change / p["value"] * 100 if change is not None and p["value"] else None
        rows.append({
            # a published financial year is fytd at its March; agg3y (three registration years) is kept
            "force_id": force_id, "measure_id": m.id, "family": m.family, "period": "fytd" if r["period"] == "fy" else r["period"],
            "period_start": r["period_start"], "period_end": r["period_end"], "value": r["value"], "unit": m.unit,
            "comparison": "sply" if p else None, "comparison_start": p["period_start"] if p else None, "comparison_end": p["period_end"] if p else None,
            "comparison_value": p["value"] if p else None, "change_abs": change, "change_pct": pct,
            "target": m.target.text if m.target else f"direction: {m.direction}", "status": "monitor",
            "definition_version": f"{defs.label_for(m)}; external: {r['source']}", "run_id": run_id,
            "note": f"published figure from {r['source']}" + ("" if p else "; no earlier published period loaded"), "comparison_source": "external_statistics" if p else None,
        })
    return pl.DataFrame(rows, schema=MEASURE_SCHEMA)


def _all_external_rows(defs: Definitions, measures: pl.DataFrame, forces: pl.DataFrame, run_id: str, external: pl.DataFrame | None) -> list[pl.DataFrame]:
    """The [EXTERNAL] measure rows of every force with the measure's profile, with their sort keys."""
    if external is None or external.height == 0:
        return []
    out = []
    for mid, m_rank, public_source in measures.filter(pl.col("kind") == "external").select("measure_id", "m_rank", "public_source").iter_rows():
        for force_id, force_rank, public, own in forces.select("force_id", "force_rank", "public", "force_profile").iter_rows():
            if public if public_source else own:
                rows = _external_rows(defs.get(mid), defs, force_id, run_id, external)
                out.append(rows.with_row_index("row_rank").with_columns(pl.lit(force_rank).alias("force_rank"), pl.lit(m_rank).alias("m_rank")))
    return out


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

    Rows come force by force (in the order of ``loaded``), measure by measure (in definition order),
    then by period end, period and comparison.
    """
    defs = defs or load_definitions()
    if tables is None or loaded.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    if isinstance(tables, pl.LazyFrame):
        tables = {"recorded_crime": tables}
    if "extract" not in loaded.columns:
        loaded = loaded.with_columns(pl.lit("recorded_crime").alias("extract"))
    components, histograms = monthly_components(tables, defs)
    loaded = loaded.select("force_id", "extract", _month_index("month").alias("idx")).unique(maintain_order=True)
    pop = (
        population.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
        if population is not None and population.height
        else pl.DataFrame(schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64})
    )
    measures = _measure_table(defs)
    forces = _force_table(loaded)
    plan = _plan(measures, forces, loaded)
    specs = _spec_frame(list(defs.measures), loaded["idx"].min(), loaded["idx"].max())
    out = _all_external_rows(defs, measures, forces, run_id, external)
    if specs.height:
        months = _month_range(specs)
        out.append(_declared_rows(plan, specs, months, run_id))
        w = _windows(plan.filter(pl.col("declared").is_null()), specs, loaded, components, histograms, _component_slots(measures), defs, pop, published)
        if w.height:
            out.append(_computed_rows(w, months, run_id))
    if not out:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    # one integer sort key: force, then measure, then window (a measure has fewer than 2**24 windows)
    order = (pl.col("force_rank").cast(pl.Int64) * 2**16 + pl.col("m_rank")) * 2**24 + pl.col("row_rank")
    table = pl.concat([o.select(order.alias("_order"), *[pl.col(k).cast(t) for k, t in MEASURE_SCHEMA.items()]) for o in out])
    return table.sort("_order").drop("_order")


def _windows(
    computed: pl.DataFrame,
    specs: pl.DataFrame,
    loaded: pl.DataFrame,
    components: pl.DataFrame,
    histograms: pl.DataFrame,
    slots: pl.DataFrame,
    defs: Definitions,
    pop: pl.DataFrame,
    published: pl.DataFrame | None,
) -> pl.DataFrame:
    """Every window of the computed forces and measures (period ends first..last of each), with what
    its row needs: component sums and completeness of both windows, medians, definition signatures,
    populations and the published baseline."""
    computed = computed.with_columns(
        (pl.min_horizontal("first", pl.lit(YE_JUN19.start.index, pl.Int32)) - 24).alias("lo")  # where the running totals start
    )
    # a series: one force's source measure (a rate shares its numerator's), numbered for cheap joins
    series = computed.select("force_id", "source_id").unique(maintain_order=True).with_row_index("series")
    computed = computed.join(series, on=["force_id", "source_id"])
    w = computed.join(specs, on="measure_id").filter(pl.col("end").is_between(pl.col("first"), pl.col("last")))
    if w.height == 0:
        return w
    cum = _cumulative(computed, loaded, components, slots)
    w = _window_sums(w, cum, "start", "end", "cur")
    w = _window_sums(w, cum, "c_start", "c_end", "cmp")
    w = _with_medians(w, histograms)
    w = _with_signatures(w, defs)
    w = _with_population(w, pop)
    return w.join(_published_baselines(computed, defs, published), on=["force_id", "source_id"], how="left")


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
