"""Trace one figure of the measures table to its sources: ``etl trace`` and the data-quality report read it.

One reason to change: what an auditor is shown for a figure.

`trace_figure` returns a `Trace` for a measure's figure(s) ending a month, for one force:

* each figure (period and comparison): value, window, comparison window and value, change, status, note;
* the definition: name, what it counts in words, its offence groups with the codes of the versions in
  force, the definition versions the figure's run recorded and the version of the file read now;
* the counts by month and offence group that make up the value, recomputed with polars from the curated
  tables as read, and whether they add up to the stored value (for a rate: the count, the population
  and its year; for a share: numerator and denominator);
* for every month of the windows: the load run in effect when the figure was computed, its source files
  (path, source root when recorded, sha256, encoding, rows in / loaded / quarantined) and contract versions;
* the checks that ran on those files (``audit_checks``, warnings included): check, severity, passed,
  failing rows and description. A check's ``detail`` text is shown only for checks whose detail holds
  counts, months and offence groups (never cell values): `SAFE_DETAIL_CHECKS`;
* the run ids (load runs and the run that wrote the figure) and the table versions read.

``reader`` is anything with the warehouse's ``read`` and ``scan``: a `etl.core.warehouse.Warehouse` (the
latest committed state) or the view of the warehouse as of a run or time (`etl.trail.asof`). Nothing is
written. A figure that is not there raises `TraceError` saying what is there (exit 2 on the command line).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import polars as pl

from etl.core.audit import SourceFileEntry as SourceFile
from etl.core.audit import source_file_entries
from etl.core.periods import Month, PeriodError, month_index_expr
from etl.errors import ConfigError
from etl.measures.components import COMPUTED_KINDS, group_column, with_crimes, with_outcomes
from etl.measures.definitions import Definitions, Filter, Measure, load_definitions
from etl.measures.external import population_table

# Checks whose audit ``detail`` holds only counts, months, offence groups and fixed words (never a value of
# a cell): shown in a trace. Every other check's detail may quote data and is never shown.
SAFE_DETAIL_CHECKS = frozenset({"continuity", "volume.within_normal_range", "published.reconciliation", "file.encoding"})

# What each monthly component of a measure is, in words.
COMPONENTS = {
    "count": {"value": "rows counted"},
    "sum": {"value": "sum of the column"},
    "share": {"num": "numerator rows", "den": "denominator rows"},
    "mean": {"sum": "sum of the column", "cnt": "rows with a value"},
    "median": {"cnt": "rows with a value"},
}

ALL_ROWS = "(all rows)"  # the group of a measure that counts no offence groups


class TraceError(ConfigError, LookupError):
    """The figure asked for is not in the warehouse; the message says what is (exit 2)."""


class Reader(Protocol):
    def read(self, table: str) -> pl.DataFrame | None: ...

    def scan(self, table: str) -> pl.LazyFrame | None: ...


# --------------------------------------------------------------------------------------------------
# What a trace holds


@dataclass
class MonthSource:
    """A month of the figure's windows: the load run in effect when the figure was computed."""

    month: str
    windows: list[str]  # current, comparison (of any figure traced)
    loaded: bool  # a load run of the measure's extract is in effect for the month
    run_id: str | None
    finished_at: str | None
    code_version: str | None
    contract_versions: dict[str, str]
    files: list[SourceFile]
    reloaded_by: list[str] = field(default_factory=list)  # load runs of the month committed after the figure's run


@dataclass
class WindowValue:
    role: str  # current | comparison
    start: str | None
    end: str | None
    source: str  # force_records | published_statistics | external_statistics | target | none
    stored: float | None
    recomputed: float | None
    parts: dict[str, Any]  # what the value is made of: count, numerator, denominator, population, ...
    adds_up: bool | None  # None: not recomputed (see explanation)
    explanation: str
    months_not_loaded: list[str] = field(default_factory=list)


@dataclass
class FigureTrace:
    period: str
    comparison: str
    status: str | None
    unit: str | None
    value: float | None
    comparison_value: float | None
    change_abs: float | None
    change_pct: float | None
    target: str | None
    definition_version: str | None
    note: str | None
    run_id: str | None
    current: WindowValue
    comparison_window: WindowValue


@dataclass
class CountRow:
    month: str
    group: str
    component: str
    value: float


@dataclass
class CheckRow:
    month: str | None
    run_id: str
    extract: str | None
    source_file: str | None
    check: str
    column: str | None
    severity: str | None
    passed: bool | None
    failing_rows: int | None
    rows_checked: int | None
    description: str | None
    note: str | None  # the check's detail, for `SAFE_DETAIL_CHECKS` only


@dataclass
class Trace:
    measure_id: str
    force_id: str
    month: str
    definition: dict[str, Any]
    figures: list[FigureTrace]
    components: dict[str, str]  # component -> what it is
    counts: list[CountRow]  # by month, offence group and component, for every month of the windows
    extracts: list[str]  # the extracts the figure is computed from
    sources: list[MonthSource]
    checks: list[CheckRow]
    runs: dict[str, Any]  # figure: the run that wrote it; loads: the load runs in effect
    warehouse: dict[str, Any]  # as_of, run_id, table_versions

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_text(self) -> str:
        return render_text(self)


def _plain(v: Any) -> Any:
    """JSON-ready: NaN and infinity become null, whole floats stay floats (as stored)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v


# --------------------------------------------------------------------------------------------------
# Finding the figure


def _figure_rows(reader: Reader, measure_id: str, month: str, force_id: str | None, period: str | None, comparison: str | None) -> tuple[str, pl.DataFrame]:
    """(force, the measures rows asked for), or `TraceError` naming what the warehouse has instead."""
    lf = reader.scan("measures")
    if lf is None:
        raise TraceError("the warehouse has no measures table (load a month first: etl run, etl backfill or etl demo)")
    of_measure = lf.filter(pl.col("measure_id") == measure_id).select("force_id", "period_end", "period", "comparison").collect()
    if of_measure.height == 0:
        known = lf.select(pl.col("measure_id").unique().sort()).collect().to_series().to_list()
        near = difflib.get_close_matches(measure_id, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(near)}?" if near else f" ({len(known)} measures; `etl measures --month {month} --ids` lists them)"
        raise TraceError(f"--measure {measure_id}: no such measure in the measures table{hint}")
    forces = sorted(of_measure["force_id"].unique().to_list())
    if force_id is None:
        if len(forces) > 1:
            raise TraceError(f"the warehouse holds several forces; give --force (forces: {', '.join(forces)})")
        force_id = forces[0]
    elif force_id not in forces:
        raise TraceError(f"--force {force_id}: no figures of {measure_id} for this force (forces: {', '.join(forces)})")
    mine = of_measure.filter(pl.col("force_id") == force_id)
    ends = mine["period_end"].unique().sort().to_list()
    if month not in ends:
        raise TraceError(f"no figure of {measure_id} for {force_id} ends {month}: its period ends are {_spans(ends)}")
    at = mine.filter(pl.col("period_end") == month)
    if period is not None and period not in at["period"].to_list():
        raise TraceError(f"--period {period}: {measure_id} has no {period} figure ending {month} (periods: {', '.join(sorted(set(at['period'].to_list())))})")
    if period is not None:
        at = at.filter(pl.col("period") == period)
    if comparison is not None and comparison not in at["comparison"].to_list():
        raise TraceError(
            f"--comparison {comparison}: {measure_id} has no such comparison ending {month} (comparisons: {', '.join(sorted(set(at['comparison'].to_list())))})"
        )
    rows = lf.filter((pl.col("measure_id") == measure_id) & (pl.col("force_id") == force_id) & (pl.col("period_end") == month))
    if period is not None:
        rows = rows.filter(pl.col("period") == period)
    if comparison is not None:
        rows = rows.filter(pl.col("comparison") == comparison)
    return force_id, rows.collect()


def _spans(months: list[str]) -> str:
    """Sorted months as runs: '2019-01 to 2019-06, 2019-09'."""
    if not months:
        return "none"
    idx = sorted({Month.parse(m).index for m in months})
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(Month(a)) if a == b else f"{Month(a)} to {Month(b)}" for a, b in runs)


def _months(start: str | None, end: str | None) -> list[str]:
    if not start or not end:
        return []
    a, b = Month.parse(start).index, Month.parse(end).index
    return [str(Month(i)) for i in range(a, b + 1)]


# --------------------------------------------------------------------------------------------------
# The definition


def _filter_words(f: Filter) -> str:
    return f.describe() or "every row"


def formula(m: Measure, defs: Definitions) -> str:
    """What a measure computes, in words."""
    groups = f"; offence groups {' + '.join(m.filter.groups)} (the version in force in each row's month)" if m.filter.groups else ""
    derived = "".join(f"; {name} = {unit.replace('_', ' ')} {a} and {b}" for name, (a, b, unit) in m.derive.items())
    rows = f"rows of {m.extract} where {_filter_words(m.filter)}{groups}{derived}"
    if m.kind == "count":
        return f"count of {rows}"
    if m.kind == "sum":
        return f"sum of {m.column} over {rows}"
    if m.kind == "share":
        num = m.numerator_filter
        num_words = _filter_words(num) if num is not None else "every row"
        if num is not None and num.groups:
            num_words += f"; offence groups {' + '.join(num.groups)}"
        return f"numerator / denominator x 100: denominator = {rows}; numerator = those rows where {num_words}"
    if m.kind in ("mean", "median"):
        return f"{m.kind} of {m.column} over {rows} (rows with a {m.column})"
    if m.kind == "rate":
        source = defs.source(m)
        return f"{m.numerator} ({source.name}) / mid-year population x {m.per:,} (the estimate for the year of the 30 June in the window)"
    if m.kind == "external":
        return "the figure as published elsewhere (external_statistics reference extract), reported as given"
    return f"not computable yet: {m.reason}"


def _definition(m: Measure, defs: Definitions, months: list[str], figure_run: dict | None) -> dict[str, Any]:
    source = defs.source(m)
    groups = sorted({g for f in source.filters for g in f.groups}, key=lambda g: [*source.filter.groups, g].index(g))
    idx = [Month.parse(x).index for x in months]
    group_rows = []
    if groups and idx:
        mem = defs.groups.membership.filter(pl.col("group").is_in(groups) & (pl.col("from_index") <= max(idx)) & (pl.col("to_index") >= min(idx)))
        for (g, version), part in mem.group_by("group", "group_version", maintain_order=True):
            lo, hi = part["from_index"][0], part["to_index"][0]
            in_force = [x for x in months if lo <= Month.parse(x).index <= hi]
            group_rows.append(
                {
                    "group": g,
                    "description": defs.groups.descriptions.get(str(g), ""),
                    "version": version,
                    "months": _spans(in_force),
                    "codes": part["code"].to_list(),
                }
            )
        group_rows.sort(key=lambda r: (groups.index(r["group"]), r["version"]))
    run_versions: dict[str, Any] = {}
    if figure_run and figure_run.get("definition_versions"):
        try:
            run_versions = json.loads(figure_run["definition_versions"]) or {}
        except ValueError:
            run_versions = {}
    current = {"measures": defs.version, "offence_groups": defs.groups.version}
    differs = [k for k, v in current.items() if k in run_versions and str(run_versions[k]) != str(v)]
    return {
        "id": m.id,
        "name": m.name,
        "kind": m.kind,
        "unit": m.unit,
        "family": m.family,
        "formula": formula(m, defs),
        "counts": None if source is m else {"id": source.id, "name": source.name, "formula": formula(source, defs)},
        "direction": m.direction,
        "target": m.target.text if m.target else None,
        "basis": m.basis,
        "proxy_for": m.proxy_for,
        "note": m.note,
        "offence_groups": group_rows,
        "file": str(defs.path),
        "file_versions": current,
        "run_versions": run_versions,
        "versions_note": (
            f"the figure was computed with {', '.join(f'{k} {run_versions[k]}' for k in differs)}; the definition shown is the file read now "
            f"({', '.join(f'{k} {current[k]}' for k in differs)})"
            if differs
            else None
        ),
    }


# --------------------------------------------------------------------------------------------------
# Recomputing the value from the curated tables


def _extracts(m: Measure, defs: Definitions) -> list[str]:
    """The extracts whose files feed the figure (for sources and checks)."""
    source = defs.source(m)
    if source.kind == "external":
        return ["external_statistics"]
    if source.kind == "no_data":
        return []
    out = [source.extract]
    if source.needs_outcome:
        out.append("crime_outcomes")
    if source.extract == "crime_outcomes":
        out.append("recorded_crime")
    if m.is_rate:
        out.append("population")
    return out


def _completeness_extract(source: Measure) -> str:
    """The extract whose loaded months decide whether a window is complete (as the engine decides)."""
    return "recorded_crime" if source.extract == "crime_outcomes" else source.extract


def _groups_expr(f: Filter, membership: pl.DataFrame) -> pl.Expr:
    return group_column(frozenset(f.groups), membership) if f.groups else pl.lit(True)


def _rows(reader: Reader, source: Measure, defs: Definitions, force_id: str, months: list[str]) -> tuple[pl.LazyFrame | None, pl.Expr, pl.Expr, pl.Expr]:
    """The source measure's rows of the force in the months (with the columns the engine adds), and
    the expressions: denominator rows (the rows the measure counts), numerator rows (a share's), group label."""
    lf = reader.scan(source.extract)
    if lf is None:
        return None, pl.lit(False), pl.lit(False), pl.lit(ALL_ROWS)
    lf = lf.filter(pl.col("force_id") == force_id)
    if source.needs_outcome:
        outcomes = reader.scan("crime_outcomes")
        lf = with_outcomes(lf, outcomes.filter(pl.col("force_id") == force_id) if outcomes is not None else None)
    if source.extract == "crime_outcomes":
        crimes = reader.scan("recorded_crime")
        lf = with_crimes(lf, crimes.filter(pl.col("force_id") == force_id) if crimes is not None else None)
    lf = lf.filter(pl.col("month").is_in(months))
    if source.derive:
        lf = lf.with_columns(
            [
                ((pl.col(b) - pl.col(a)).dt.total_seconds() if unit == "seconds_between" else (pl.col(b) - pl.col(a)).dt.total_days())
                .cast(pl.Int64)
                .alias(name)
                for name, (a, b, unit) in source.derive.items()
            ]
        )
    lf = lf.with_columns(month_index_expr("month").alias("idx"))
    membership = defs.groups.membership
    den = (source.filter.expr() & _groups_expr(source.filter, membership)).fill_null(False)
    num = den
    if source.numerator_filter is not None:
        num = (den & source.numerator_filter.expr() & _groups_expr(source.numerator_filter, membership)).fill_null(False)
    label_groups = source.filter.groups or (source.numerator_filter.groups if source.numerator_filter is not None else ())
    label: pl.Expr = pl.lit(ALL_ROWS)
    if label_groups:
        chain: Any = pl
        for g in label_groups:  # a code in two groups of the measure counts once, under the first
            chain = chain.when(group_column(frozenset({g}), membership)).then(pl.lit(g))
        label = chain.otherwise(pl.lit("(no group)"))
    return lf, den, num, label


def _monthly_counts(lf: pl.LazyFrame, source: Measure, den: pl.Expr, num: pl.Expr, label: pl.Expr) -> pl.DataFrame:
    """month, group, component, value: the source measure's monthly components by offence group."""
    kind = source.kind
    column = pl.col(source.column or "")
    aggs: list[pl.Expr]
    if kind == "count":
        aggs = [pl.len().cast(pl.Float64).alias("value")]
    elif kind == "sum":
        aggs = [column.sum().cast(pl.Float64).alias("value")]
    elif kind == "share":
        aggs = [num.sum().cast(pl.Float64).alias("num"), pl.len().cast(pl.Float64).alias("den")]
    elif kind == "mean":
        aggs = [column.sum().cast(pl.Float64).alias("sum"), column.count().cast(pl.Float64).alias("cnt")]
    else:  # median
        aggs = [column.count().cast(pl.Float64).alias("cnt")]
    names = list(COMPONENTS[kind])
    wide = lf.filter(den).with_columns(label.alias("group")).group_by("month", "group").agg([a.name.prefix("c_") for a in aggs]).collect()
    if wide.height == 0:
        return pl.DataFrame(schema={"month": pl.Utf8, "group": pl.Utf8, "component": pl.Utf8, "value": pl.Float64})
    long = wide.unpivot(index=["month", "group"], on=[f"c_{n}" for n in names], variable_name="component", value_name="value")
    order = {n: i for i, n in enumerate(names)}
    long = long.with_columns(pl.col("component").str.strip_prefix("c_"))
    return long.sort("month", "group", pl.col("component").replace_strict(order, return_dtype=pl.Int32))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _population(reader: Reader, force_id: str, start: str) -> tuple[float | None, int, str | None]:
    """(population, year, note) a rate of a window starting at ``start`` divides by (as the engine picks it)."""
    s = Month.parse(start).index
    year = s // 12 + (0 if s % 12 <= 5 else 1)  # the year of the first 30 June in the window
    pop = reader.read("population")
    if pop is None or pop.height == 0:
        return None, year, "no population estimates loaded"
    pop = pop.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
    row = population_table(pop, [force_id], year, year).row(0, named=True)
    return row["population"], year, row["pop_note"]


@dataclass
class _Computation:
    """What recomputing a measure's windows needs, read once."""

    source: Measure
    lf: pl.LazyFrame | None
    den: pl.Expr
    num: pl.Expr
    counts: pl.DataFrame
    loaded: set[str]  # months of the completeness extract with a load run in effect


def _window_value(
    comp: _Computation, m: Measure, reader: Reader, force_id: str, role: str, start: str | None, end: str | None, stored: float | None, source: str
) -> WindowValue:
    """A window's value recomputed from the monthly counts (a median from its rows), against the stored value."""
    if source in ("target", "published_statistics", "external_statistics") or comp.source.kind not in COMPUTED_KINDS:
        why = {
            "target": "the comparison is the target, not a window of records",
            "published_statistics": "the baseline comes from the published statistics, not the force's records (see the note)",
            "external_statistics": "the figure is published elsewhere and reported as given",
        }.get(source) or f"a {comp.source.kind} measure is not computed from the records"
        return WindowValue(role, start, end, source, stored, None, {}, None, why)
    months = _months(start, end)
    missing = [x for x in months if x not in comp.loaded]
    if missing:
        text = f"{len(missing)} month(s) of the window not loaded ({_spans(missing)}): the window is incomplete and has no value"
        ok = stored is None
        return WindowValue(role, start, end, source, stored, None, {}, ok, text + ("" if ok else "; yet a value is stored"), missing)
    sums = {c: 0.0 for c in COMPONENTS[comp.source.kind]}
    for r in comp.counts.filter(pl.col("month").is_in(months)).group_by("component").agg(pl.col("value").sum()).iter_rows(named=True):
        sums[r["component"]] = r["value"]
    kind = comp.source.kind
    parts: dict[str, Any] = {COMPONENTS[kind][k]: v for k, v in sums.items()}
    value: float | None
    if kind in ("count", "sum"):
        value = sums["value"]
    elif kind == "share":
        value = sums["num"] / sums["den"] * 100.0 if sums["den"] else None
    elif kind == "mean":
        value = sums["sum"] / sums["cnt"] if sums["cnt"] else None
    else:
        assert comp.lf is not None
        column = pl.col(comp.source.column or "")
        value = comp.lf.filter(comp.den & pl.col("month").is_in(months) & column.is_not_null()).select(column.median()).collect().item()
        parts["median"] = value
    if m.is_rate and value is not None:
        population, year, note = _population(reader, force_id, months[0])
        parts = {f"{comp.source.id} ({COMPONENTS[kind]['value']})": value, "population": population, "population_year": year}
        if note:
            parts["population_note"] = note
        value = value / population * (m.per or 1) if population else None
    ok = _close(value, stored)
    if ok:
        text = (
            "the counts below add up to the stored value" if kind in ("count", "sum", "share", "mean") else "recomputed from the rows: equals the stored value"
        )
    else:
        text = f"does NOT add up: recomputed {_num(value)} from the tables as read, stored {_num(stored)}"
    return WindowValue(role, start, end, source, stored, value, parts, ok, text)


# --------------------------------------------------------------------------------------------------
# Runs, files and checks


def _runs(reader: Reader) -> pl.DataFrame:
    runs = reader.read("audit_runs")
    if runs is None:
        raise TraceError("the warehouse has no audit_runs table: it has never been loaded")
    return runs


def _files(entry_json: str | None, extracts: list[str]) -> list[SourceFile]:
    out = [SourceFile.of(e) for e in source_file_entries(entry_json) if e.get("extract") in extracts]
    out.sort(key=lambda f: (extracts.index(f.extract), f.file))
    return out


def _month_sources(runs: pl.DataFrame, force_id: str, windows: dict[str, list[str]], extracts: list[str], figure_seq: int | None) -> list[MonthSource]:
    """Per month of the windows: the force's latest load run committed up to the figure's run."""
    months = sorted({x for ms in windows.values() for x in ms})
    loads = runs.filter((pl.col("kind") == "load") & (pl.col("force_id") == force_id) & pl.col("month").is_in(months)).sort("commit_seq")
    out = []
    for month in months:
        mine = loads.filter(pl.col("month") == month)
        before = mine.filter(pl.col("commit_seq") <= figure_seq) if figure_seq is not None else mine
        later = mine.filter(pl.col("commit_seq") > figure_seq)["run_id"].to_list() if figure_seq is not None else []
        roles = [role for role, ms in windows.items() if month in ms]
        if before.height == 0:
            out.append(MonthSource(month, roles, False, None, None, None, {}, [], later))
            continue
        run = before.row(-1, named=True)
        files = _files(run.get("source_files"), extracts)
        try:
            versions = json.loads(run.get("contract_versions") or "{}") or {}
        except ValueError:
            versions = {}
        versions = {k: v for k, v in versions.items() if k in extracts}
        finished = run.get("finished_at")
        out.append(
            MonthSource(
                month,
                roles,
                any(f.extract == extracts[0] for f in files) if extracts else False,
                run["run_id"],
                finished.isoformat() if isinstance(finished, dt.datetime) else finished,
                run.get("code_version"),
                versions,
                files,
                later,
            )
        )
    return out


def _checks(reader: Reader, runs: pl.DataFrame, sources: list[MonthSource], extracts: list[str]) -> list[CheckRow]:
    """The checks of the load runs in effect on the figure's extracts (every severity, passed or not), and
    those of the latest expectations run (Great Expectations suites over whole tables: month None)."""
    run_ids = sorted({s.run_id for s in sources if s.run_id})
    expectations = runs.filter(pl.col("kind") == "expectations").sort("commit_seq")
    if expectations.height:
        run_ids.append(expectations["run_id"][-1])
    lf = reader.scan("audit_checks")
    if lf is None or not run_ids:
        return []
    month_of = {s.run_id: s.month for s in sources if s.run_id}
    rows = lf.filter(pl.col("run_id").is_in(run_ids) & pl.col("extract").is_in(extracts)).collect()
    safe = pl.col("check").is_in(sorted(SAFE_DETAIL_CHECKS))
    rows = rows.with_columns(pl.when(safe).then(pl.col("detail")).otherwise(None).alias("detail"))
    out = [
        CheckRow(
            month=r.get("month") or month_of.get(r["run_id"]),  # None: an expectation over the whole table
            run_id=r["run_id"],
            extract=r.get("extract"),
            source_file=r.get("source_file"),
            check=r["check"],
            column=r.get("column"),
            severity=r.get("severity"),
            passed=r.get("passed"),
            failing_rows=r.get("failing_rows"),
            rows_checked=r.get("rows_checked"),
            description=r.get("description"),
            note=r.get("detail"),
        )
        for r in rows.iter_rows(named=True)
    ]
    out.sort(key=lambda c: (c.month or "", extracts.index(c.extract) if c.extract in extracts else 99, c.check))
    return out


def _commit_end(runs: pl.DataFrame, run: dict) -> int:
    """The last commit_seq of the commit that recorded ``run``: a batch commits a run row per force-month
    at once (consecutive commit_seq, the same table versions), and the figure's run is the first of them."""
    same = runs.filter((pl.col("table_versions") == run["table_versions"]) & (pl.col("commit_seq") >= run["commit_seq"]))
    return int(same["commit_seq"].max()) if same.height else int(run["commit_seq"])  # type: ignore[arg-type]


def _table_versions(reader: Reader, tables: list[str]) -> dict[str, int | None]:
    version = getattr(reader, "version", None)
    if callable(version):
        return {t: version(t) for t in tables}
    committed = getattr(reader, "committed_versions", None)
    known = committed() if callable(committed) else {}
    return {t: known.get(t) for t in tables}


def _state(reader: Reader, runs: pl.DataFrame) -> tuple[str, str | None]:
    """(which state of the warehouse was read, in words; the last run of that state)."""
    describe = getattr(reader, "describe", None)
    run_id = getattr(reader, "run_id", None)
    if run_id is None and runs.height:
        run_id = runs.sort("commit_seq").row(-1, named=True)["run_id"]
    if callable(describe) and not getattr(reader, "is_current", False):
        return str(describe()), run_id
    return f"the latest committed state (last run {run_id})", run_id


# --------------------------------------------------------------------------------------------------
# The trace


def trace_figure(
    reader: Reader,
    measure_id: str,
    month: str,
    force_id: str | None = None,
    *,
    period: str | None = None,
    comparison: str | None = None,
    defs: Definitions | None = None,
) -> Trace:
    """Trace the figure(s) of ``measure_id`` ending ``month`` for a force (the only one when None) - every
    period and comparison, or those given - to their sources. Raises `TraceError` when it is not there."""
    try:
        month = str(Month.parse(month))
    except PeriodError as exc:
        raise TraceError(f"--month: {exc}") from None
    force_id, rows = _figure_rows(reader, measure_id, month, force_id, period, comparison)
    defs = defs or load_definitions()
    try:
        m = defs.get(measure_id)
    except KeyError:
        raise TraceError(
            f"--measure {measure_id}: in the measures table but not in the definitions read now ({defs.path}, version {defs.version}); "
            "it cannot be traced with these definitions"
        ) from None
    source = defs.source(m)
    runs = _runs(reader)
    figure_run_ids = sorted(set(rows["run_id"].drop_nulls().to_list()))
    figure_runs = runs.filter(pl.col("run_id").is_in(figure_run_ids)).sort("commit_seq")
    figure_run = figure_runs.row(-1, named=True) if figure_runs.height else None
    figure_seq = _commit_end(runs, figure_run) if figure_run else None

    windows: dict[str, list[str]] = {"current": [], "comparison": []}
    for r in rows.iter_rows(named=True):
        windows["current"] += _months(r["period_start"], r["period_end"])
        if r["comparison"] != "target" and r.get("comparison_source") not in ("published_statistics",):
            windows["comparison"] += _months(r["comparison_start"], r["comparison_end"])
    windows = {k: sorted(set(v)) for k, v in windows.items()}
    all_months = sorted({x for v in windows.values() for x in v})

    extracts = _extracts(m, defs)
    sources = _month_sources(runs, force_id, windows, extracts, figure_seq)
    needed = _completeness_extract(source)
    loaded = {s.month for s in sources if any(f.extract == needed for f in s.files)}

    counts = pl.DataFrame(schema={"month": pl.Utf8, "group": pl.Utf8, "component": pl.Utf8, "value": pl.Float64})
    lf, den, num, label = None, pl.lit(False), pl.lit(False), pl.lit(ALL_ROWS)
    if source.kind in COMPUTED_KINDS and all_months:
        lf, den, num, label = _rows(reader, source, defs, force_id, all_months)
        if lf is not None:
            counts = _monthly_counts(lf, source, den, num, label)
    comp = _Computation(source, lf, den, num, counts, loaded)

    figures = []
    for r in rows.iter_rows(named=True):
        cur_source = "external_statistics" if source.kind == "external" else "force_records"
        current = _window_value(comp, m, reader, force_id, "current", r["period_start"], r["period_end"], r["value"], cur_source)
        cmp_source = r.get("comparison_source") or ("target" if r["comparison"] == "target" else cur_source)
        cmp = _window_value(comp, m, reader, force_id, "comparison", r["comparison_start"], r["comparison_end"], r["comparison_value"], cmp_source)
        figures.append(
            FigureTrace(
                period=r["period"],
                comparison=r["comparison"],
                status=r["status"],
                unit=r["unit"],
                value=r["value"],
                comparison_value=r["comparison_value"],
                change_abs=r["change_abs"],
                change_pct=r["change_pct"],
                target=r["target"],
                definition_version=r["definition_version"],
                note=r.get("note"),
                run_id=r["run_id"],
                current=current,
                comparison_window=cmp,
            )
        )

    checks = _checks(reader, runs, sources, extracts)
    state, state_run = _state(reader, runs)
    tables = ["measures", "audit_runs", "audit_checks", *sorted({*extracts, *([source.extract] if source.kind in COMPUTED_KINDS else [])})]
    return Trace(
        measure_id=measure_id,
        force_id=force_id,
        month=month,
        definition=_definition(m, defs, all_months, figure_run),
        figures=figures,
        components=dict(COMPONENTS.get(source.kind, {})),
        counts=[CountRow(**r) for r in counts.iter_rows(named=True)],
        extracts=extracts,
        sources=sources,
        checks=checks,
        runs={
            "figure": _run_summary(figure_run) if figure_run else {"run_id": ", ".join(figure_run_ids) or None, "note": "not in audit_runs"},
            "loads": sorted({s.run_id for s in sources if s.run_id}),
        },
        warehouse={"as_of": state, "run_id": state_run, "table_versions": _table_versions(reader, list(dict.fromkeys(tables)))},
    )


def _run_summary(run: dict) -> dict[str, Any]:
    finished = run.get("finished_at")
    return {
        "run_id": run["run_id"],
        "kind": run.get("kind"),
        "finished_at": finished.isoformat() if isinstance(finished, dt.datetime) else finished,
        "code_version": run.get("code_version"),
        "definition_versions": json.loads(run["definition_versions"]) if run.get("definition_versions") else {},
    }


# --------------------------------------------------------------------------------------------------
# Text


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "-"
        if v.is_integer() and abs(v) < 2**53:
            return str(int(v))
        return f"{round(v, 6)}"
    return str(v)


def _table(headings: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headings)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True)).rstrip()]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def render_text(t: Trace) -> str:
    """The trace as plain text, grouped: figures, definition, counts, sources, checks, runs, warehouse."""
    d = t.definition
    out = [f"Trace of {d['name']} ({t.measure_id}) for {t.force_id}, period ending {t.month}", ""]
    out.append("Figures")
    for f in t.figures:
        cur, cmp = f.current, f.comparison_window
        out.append(f"  {f.period} vs {f.comparison}: {_num(f.value)} {f.unit or ''} ({cur.start}..{cur.end}); status {f.status}".rstrip())
        cmp_window = f"{cmp.start}..{cmp.end}" if cmp.start else "-"
        change = "no change given" if f.change_abs is None else f"change {_num(f.change_abs)}" + ("" if f.change_pct is None else f" ({_num(f.change_pct)}%)")
        out.append(f"    comparison {f.comparison}: {_num(f.comparison_value)} ({cmp_window}, from {cmp.source}); {change}")
        for w in (cur, cmp):
            parts = ", ".join(f"{k} {_num(v)}" for k, v in w.parts.items())
            out.append(f"    {w.role}: {w.explanation}" + (f" [{parts}]" if parts else ""))
        if f.note:
            out.append(f"    note: {f.note}")
        out.append(f"    definition version: {f.definition_version}; run {f.run_id}")
    out += ["", "Definition"]
    out.append(f"  {d['name']} ({d['id']}, {d['kind']}, unit {d['unit']}): {d['formula']}")
    if d.get("counts"):
        out.append(f"  {d['counts']['id']}: {d['counts']['formula']}")
    for key in ("target", "basis", "proxy_for", "note"):
        if d.get(key):
            out.append(f"  {key.replace('_', ' ')}: {d[key]}")
    for g in d["offence_groups"]:
        out.append(f"  {g['group']} version {g['version']} ({g['months']}): {g['description']}; codes {', '.join(g['codes'])}")
    fv = ", ".join(f"{k} {v}" for k, v in d["file_versions"].items())
    rv = ", ".join(f"{k} {v}" for k, v in d["run_versions"].items()) or "not recorded"
    out.append(f"  definitions file {d['file']} ({fv}); the figure's run recorded {rv}")
    if d.get("versions_note"):
        out.append(f"  NOTE: {d['versions_note']}")
    out += ["", "Counts by month and offence group (recomputed from the curated tables)"]
    if not t.counts:
        out.append("  none (no rows of the measure in these months, or the measure is not computed from records)")
    else:
        out += _counts_table(t)
    out += ["", f"Sources (load run in effect for each month; extracts: {', '.join(t.extracts) or 'none'})"]
    for s in t.sources:
        head = f"  {s.month} ({'+'.join(s.windows)}): "
        if s.run_id is None:
            out.append(head + "not loaded")
        else:
            versions = ", ".join(f"{k} {v}" for k, v in s.contract_versions.items())
            out.append(head + f"run {s.run_id} finished {s.finished_at}; contracts {versions or '-'}")
        for sf in s.files:
            root = f"  (source root {sf.source_root})" if sf.source_root else ""
            out.append(
                f"    {sf.extract}: {sf.file}{root} sha256 {sf.sha256} {sf.encoding}; rows in {_num(sf.rows_in)}, loaded {_num(sf.rows_loaded)}, "
                f"quarantined {_num(sf.rows_quarantined)}"
            )
        if s.reloaded_by:
            out.append(f"    reloaded after the figure was computed by run(s) {', '.join(s.reloaded_by)}: the counts read the tables as they are now")
    out += ["", "Checks on those files (every severity; passed or not)"]
    out += _checks_text(t.checks) or ["  none recorded"]
    out += ["", "Runs"]
    fr = t.runs["figure"]
    out.append(f"  figure written by {fr.get('kind') or 'run'} {fr['run_id']} (finished {fr.get('finished_at')}, code {fr.get('code_version')})")
    out.append(f"  load runs: {', '.join(t.runs['loads']) or 'none'}")
    out += ["", "Warehouse"]
    out.append(f"  read: {t.warehouse['as_of']}")
    out.append("  table versions: " + ", ".join(f"{k} {_num(v)}" for k, v in t.warehouse["table_versions"].items()))
    return "\n".join(out) + "\n"


def _counts_table(t: Trace) -> list[str]:
    frame = pl.DataFrame([asdict(c) for c in t.counts])
    groups = frame["group"].unique(maintain_order=True).to_list()
    components = list(t.components)
    roles = {s.month: "+".join(s.windows) for s in t.sources}
    headings = ["month", "window"]
    keys = []
    for g in groups:
        for c in components:
            keys.append((g, c))
            headings.append(g if len(components) == 1 else f"{g} {c}")
    if len(groups) > 1:
        for c in components:
            keys.append(("__total__", c))
            headings.append("total" if len(components) == 1 else f"total {c}")
    lookup = {(r["month"], r["group"], r["component"]): r["value"] for r in frame.iter_rows(named=True)}
    months = sorted(set(roles) | set(frame["month"].to_list()))
    rows = []
    for month in months:
        cells = [month, roles.get(month, "")]
        for g, c in keys:
            if g == "__total__":
                v = sum(val for (mm, _gg, cc), val in lookup.items() if mm == month and cc == c)
            else:
                v = lookup.get((month, g, c), 0.0)
            cells.append(_num(v))
        rows.append(cells)
    legend = [f"  {c}: {meaning}" for c, meaning in t.components.items()] if len(components) > 1 else []
    return legend + _table(headings, rows)


def _checks_text(checks: list[CheckRow]) -> list[str]:
    """One line per check of an extract over the months, then every check that did not pass."""
    if not checks:
        return []
    frame = pl.DataFrame([asdict(c) for c in checks], infer_schema_length=None)
    summary = (
        frame.group_by("extract", "check", maintain_order=True)
        .agg(
            pl.col("severity").first(),
            pl.len().alias("runs"),
            (~pl.col("passed").fill_null(False)).sum().alias("failed"),
            pl.col("failing_rows").fill_null(0).sum().alias("rows"),
            pl.col("description").first(),
        )
        .sort("extract", "check")
    )
    rows = [
        [r["extract"] or "-", r["check"], r["severity"] or "-", str(r["runs"]), str(r["failed"]), str(r["rows"]), r["description"] or ""]
        for r in summary.iter_rows(named=True)
    ]
    out = _table(["extract", "check", "severity", "runs", "not passed", "failing rows", "description"], rows)
    bad = [c for c in checks if not c.passed]
    if bad:
        out.append("  not passed:")
        for c in bad:
            note = f": {c.note}" if c.note else ""
            where = f"{c.month} {c.source_file or c.extract}" if c.month else f"whole {c.extract} table (run {c.run_id})"
            out.append(f"    {where}: {c.check} ({c.severity}) {_num(c.failing_rows)} failing row(s){note}")
    not_run: dict[tuple[str, str], list[str]] = {}
    for c in checks:
        if c.passed and c.note and c.note.startswith("not checked"):
            not_run.setdefault((c.check, c.note), []).append(c.month or "")
    if not_run:
        out.append("  passed without being run (not checked):")
        for (check, note), months in not_run.items():
            out.append(f"    {check} in {_spans([m for m in months if m])}: {note}")
    return out


__all__ = [
    "SAFE_DETAIL_CHECKS",
    "CheckRow",
    "CountRow",
    "FigureTrace",
    "MonthSource",
    "SourceFile",
    "Trace",
    "TraceError",
    "WindowValue",
    "formula",
    "render_text",
    "trace_figure",
]
