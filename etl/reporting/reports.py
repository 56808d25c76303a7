"""Human-readable reports of the measures table: the Plan KPI scorecard and the national measures.

``write_report(measures, month, out_dir)`` writes, for one force and one report month:

* ``scorecard.html`` - the Police and Crime Plan KPI scorecard laid out like paper 002 Appendix A:
  one table per objective, rows grouped by sub-objective; columns Sub-objective | KPI | Current |
  Historical / baseline | Target | Status. The layout is data: ``contracts/definitions/scorecard.yaml``.
* ``national.html`` - one section per national measure (``nm_*``, and ``pu_*`` public-data proxies
  when present): the rolling 12 months to the month against the year ending June 2019 baseline and
  the previous 12 months, with the status and its reason, and an inline SVG trend chart of the
  monthly series with its SPC (XmR) centre line, control limits and signals.
* ``scorecard.csv`` and ``national_measures.csv`` - the same rows with the unrounded values and the
  displayed text. Text cells starting ``= + - @`` (a negative change such as ``-3%`` too) get a leading
  ``'`` so a spreadsheet never runs them as formulas (`etl.reporting.exports.csv_safe`); numbers are unchanged.
* ``index.html`` - links to both pages, and a data-quality summary (checks failed per extract) when
  an ``audit_checks`` frame is given.

Every label is derived from the period tokens and the dates of the rows (never free text), every
value is HTML-escaped, and nothing but aggregate figures is shown (the measures table has no personal
data; the data-quality summary shows counts and check names only, never a check's detail text).

Rounding: values are stored unrounded and only rounded for display, half away from zero
(``round_half_up``: 2.5 -> 3, -2.5 -> -3), on the decimal representation of the value: whole numbers
for counts, one decimal place for percentages and rates, whole percent for percent changes (as in the
national statement), whole seconds for times. A change of a percentage is shown in percentage points
only (a percent change of a percentage is ambiguous, measures.md section 6 Q27).
"""

from __future__ import annotations

from etl.errors import ConfigError
import html
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterable

import polars as pl
import yaml

from etl.reporting.exports import classified_in, csv_safe
from etl.core.periods import COMPARISON_TOKENS, PERIOD_TOKENS, YE_JUN19, Month, PeriodError, comparison_window, period_window

ROUNDING_STATEMENT = (
    "Values are stored unrounded; shown rounded half away from zero: whole percent for changes in the "
    "national statement, one decimal place for rates, whole numbers for counts."
)
ROUNDING_DETAIL = (
    "Percentages are shown to one decimal place and their changes in percentage points (pts); "
    "times are shown to the whole second. CSV files hold the unrounded values beside the displayed text."
)

STATUS_WORDS = {
    "met": "met",
    "not_met": "not met",
    "monitor": "monitor",
    "not_comparable": "not comparable",
    "incomplete": "incomplete",
    "not_available": "not available",
    "in_development": "in development",
    "monitored_elsewhere": "monitored elsewhere",
    "not_computable": "not computable",
}
NO_DATA_KINDS = ("in_development", "monitored_elsewhere", "not_computable")
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PERIOD_NAMES = {"month": "monthly", "r12": "rolling 12 months", "fytd": "financial year to date", "cal": "calendar year", "qtr": "quarter"}


class ReportError(ConfigError, ValueError):
    """A report that cannot be written as asked (bad layout file, ambiguous force), with the reason."""


@dataclass
class ReportPaths:
    index: Path
    scorecard: Path
    national: Path
    csv: list[Path]


# --------------------------------------------------------------------------------------------------
# Rounding and formatting


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _quantize(x: float, places: int) -> Decimal:
    d = _decimal(x).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return abs(d) if d == 0 else d  # never "-0"


def round_half_up(x: float, places: int = 0) -> float:
    """Round half away from zero at ``places`` decimal places: 2.5 -> 3.0, -2.5 -> -3.0, 0.125 -> 0.13 (2).

    Decimal-based: the value's shortest decimal representation (``repr``) is rounded with
    ``ROUND_HALF_UP`` (which in ``decimal`` means half away from zero), so 2.675 -> 2.68 where binary
    float rounding gives 2.67, and never banker's rounding (Python's ``round(2.5)`` is 2).
    NaN and infinities are returned unchanged.
    """
    if x is None:
        raise TypeError("round_half_up needs a number, got None")
    if isinstance(x, float) and not math.isfinite(x):
        return x
    return float(_quantize(x, places))


def _num(x: float, places: int) -> str:
    return f"{_quantize(x, places):,.{places}f}"


def _signed(text: str, negative: bool, zero: bool) -> str:
    if zero:
        return text
    return ("-" if negative else "+") + text


def _duration(seconds: float) -> str:
    s = int(_quantize(abs(seconds), 0))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


_UNIT_SUFFIX = {"pct": "%", "per_1000": " per 1,000", "per_100k": " per 100,000", "per_million": " per million", "days": " days"}


def format_value(value: float | None, unit: str | None) -> str:
    """A value as displayed: counts whole, percentages and rates to one decimal place, times in h/m/s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not available"
    if unit == "count":
        return _num(value, 0)
    if unit == "seconds":
        return ("-" if _quantize(value, 0) < 0 else "") + _duration(value)
    return _num(value, 1) + _UNIT_SUFFIX.get(unit or "", "")


def format_change_abs(change: float | None, unit: str | None) -> str:
    if change is None:
        return ""
    if unit == "count":
        q = _quantize(change, 0)
        return _signed(_num(abs(change), 0), q < 0, q == 0)
    if unit == "seconds":
        q = _quantize(change, 0)
        return _signed(_duration(change), q < 0, q == 0)
    q = _quantize(change, 1)
    text = _num(abs(change), 1) + (" pts" if unit == "pct" else "")
    return _signed(text, q < 0, q == 0)


def format_change_pct(change_pct: float | None) -> str:
    """Percent change as a whole percent, rounded half away from zero, signed: 2.5 -> '+3%', -2.5 -> '-3%'."""
    if change_pct is None or (isinstance(change_pct, float) and math.isnan(change_pct)):
        return ""
    q = _quantize(change_pct, 0)
    return _signed(f"{abs(q):,.0f}%", q < 0, q == 0)


def _axis_number(x: float, span: float) -> str:
    places = 0 if span >= 20 else (1 if span >= 2 else 2)
    return _num(x, places)


# --------------------------------------------------------------------------------------------------
# Period labels (derived from the tokens and dates, never free text; measures.md DQ08)


def _mon_yy(m: Month) -> str:
    return f"{_MON[m.month - 1]} {m.year % 100:02d}"


def _fy(m: Month) -> str:
    y = m.fy_start().year
    return f"{y}/{(y + 1) % 100:02d}"


def _span(s: Month, e: Month) -> str:
    if s == e:
        return _mon_yy(s)
    if s.year == e.year:
        return f"{_MON[s.month - 1]}-{_MON[e.month - 1]} {e.year % 100:02d}"
    return f"{_mon_yy(s)} to {_mon_yy(e)}"


def period_label(period: str, start: str, end: str) -> str:
    """'YTD Jan 22' (fytd), '12 months to Jan 22' (r12), 'Jan-Dec 21' (cal), 'Jan 22' (month), 'Oct-Dec 21' (qtr).

    A window whose dates do not match its period token is labelled with its dates and a warning.
    """
    try:
        s, e = Month.parse(start), Month.parse(end)
    except PeriodError:
        return f"{start} to {end}"
    try:
        expected = period_window(period, e)
    except PeriodError:
        return _span(s, e)
    if expected.start != s:
        return f"{_span(s, e)} (dates do not match period '{period}')"
    if period == "fytd":
        return f"YTD {_mon_yy(e)}"
    if period == "r12":
        return f"12 months to {_mon_yy(e)}"
    if period == "month":
        return _mon_yy(e)
    return _span(s, e)  # cal, qtr


def comparison_label(comparison: str, period: str, start: str, end: str, c_start: str | None = None, c_end: str | None = None) -> str:
    """'Same period 2020/21' (sply of fytd), 'Same period 2019/20', 'Year ending June 2019', 'Previous 12 months'.

    ``start``/``end`` are the current window; ``c_start``/``c_end`` the comparison window of the row
    (checked against the token; a mismatch is labelled with its dates).
    """
    if comparison == "target":
        return "Target"
    try:
        cur = period_window(period, Month.parse(end))
        if Month.parse(start) != cur.start:
            cur = type(cur)(Month.parse(start), Month.parse(end))
        expected = comparison_window(comparison, cur)
    except PeriodError:
        return f"{comparison} ({c_start} to {c_end})" if c_start else comparison
    if c_start and c_end:
        try:
            cs, ce = Month.parse(c_start), Month.parse(c_end)
        except PeriodError:
            return f"{comparison} ({c_start} to {c_end})"
        if (cs, ce) != (expected.start, expected.end):
            return f"{_span(cs, ce)} (dates do not match comparison '{comparison}')"
    if comparison == "sp_2019_20":
        return "Same period 2019/20"
    if comparison == "ye_jun19":
        return "Year ending June 2019"
    if comparison == "prev_r12":
        return "Previous 12 months"
    if comparison == "sply":
        if period == "fytd":
            return f"Same period {_fy(expected.start)}"
        if period == "r12":
            return f"12 months to {_mon_yy(expected.end)}"
        return _span(expected.start, expected.end)
    return _span(expected.start, expected.end)


def _window_dates(start: str | None, end: str | None) -> str:
    try:
        return _span(Month.parse(start), Month.parse(end))  # type: ignore[arg-type]
    except (PeriodError, TypeError):
        return ""


# --------------------------------------------------------------------------------------------------
# The scorecard layout (contracts/definitions/scorecard.yaml)


@dataclass(frozen=True)
class FigureSpec:
    measure: str
    label: str
    extracts: tuple[str, ...]


@dataclass(frozen=True)
class KpiSpec:
    id: str
    kpi: str
    ref: str | None
    figures: tuple[FigureSpec, ...]
    current: str
    comparisons: tuple[str, ...]
    target: str | None
    availability: str
    reason: str | None


@dataclass(frozen=True)
class SubObjectiveSpec:
    title: str | None
    kpis: tuple[KpiSpec, ...]


@dataclass(frozen=True)
class ObjectiveSpec:
    title: str
    ref: str | None
    sub_objectives: tuple[SubObjectiveSpec, ...]

    @property
    def kpis(self) -> list[KpiSpec]:
        return [k for s in self.sub_objectives for k in s.kpis]


@dataclass(frozen=True)
class ScorecardLayout:
    version: str
    source: str
    path: Path
    objectives: tuple[ObjectiveSpec, ...]

    @property
    def kpis(self) -> list[KpiSpec]:
        return [k for o in self.objectives for k in o.kpis]

    @property
    def max_comparisons(self) -> int:
        return max([len(k.comparisons) for k in self.kpis] + [1])


def default_layout_path() -> Path:
    from etl.core.reference import contracts_dir

    return contracts_dir() / "definitions" / "scorecard.yaml"


def load_scorecard_layout(path: str | Path | None = None) -> ScorecardLayout:
    """Read and check the scorecard layout; a mistake raises ReportError naming the file and the row."""
    path = Path(path) if path else default_layout_path()
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot read the scorecard layout ({exc})") from exc
    if not isinstance(data, dict) or not data.get("version") or not data.get("objectives"):
        raise ReportError(f"{path}: the scorecard layout needs a version and objectives")
    try:
        return _parse_layout(path, data)
    except ReportError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # an entry of the wrong shape (a number where a list of objectives belongs, ...)
        raise ReportError(f"{path}: the scorecard layout is not shaped as expected: objectives > sub_objectives > kpis > figures, each a list of mappings ({type(exc).__name__})") from exc


def _parse_layout(path: Path, data: dict) -> ScorecardLayout:
    defaults = data.get("defaults") or {}
    seen: set[str] = set()
    objectives = []
    for o in data["objectives"]:
        if not o.get("title"):
            raise ReportError(f"{path}: an objective has no title")
        subs = []
        for s in o.get("sub_objectives") or []:
            kpis = []
            for k in s.get("kpis") or []:
                kid = k.get("id")
                where = f"{path}: KPI {kid!r} ({o['title']})"
                if not kid or kid in seen:
                    raise ReportError(f"{where}: id missing or repeated")
                seen.add(kid)
                if not k.get("kpi"):
                    raise ReportError(f"{where}: no KPI wording")
                figures = []
                for f in k.get("figures") or []:
                    if not f.get("measure"):
                        raise ReportError(f"{where}: a figure has no measure id")
                    ex = f.get("extract") or []
                    figures.append(FigureSpec(str(f["measure"]), str(f.get("label") or f["measure"]), tuple([ex] if isinstance(ex, str) else [str(e) for e in ex])))
                availability = k.get("availability") or ("computed" if figures else None)
                if availability not in ("computed", *NO_DATA_KINDS):
                    raise ReportError(f"{where}: availability must be computed, {', '.join(NO_DATA_KINDS)} (got {availability!r})")
                if availability == "computed" and not figures:
                    raise ReportError(f"{where}: a computed KPI needs figures")
                if availability != "computed" and not k.get("reason"):
                    raise ReportError(f"{where}: a KPI without figures needs a reason")
                current = k.get("current") or defaults.get("current", "fytd")
                if current not in PERIOD_TOKENS:
                    raise ReportError(f"{where}: current period {current!r} is not one of {', '.join(PERIOD_TOKENS)}")
                comps = k.get("comparisons")
                comps = tuple(defaults.get("comparisons") or () if comps is None else comps)
                bad = [c for c in comps if c not in COMPARISON_TOKENS]
                if bad:
                    raise ReportError(f"{where}: unknown comparison(s) {bad} (known: {', '.join(COMPARISON_TOKENS)})")
                kpis.append(KpiSpec(kid, str(k["kpi"]), k.get("ref"), tuple(figures), current, comps, k.get("target"), availability, k.get("reason")))
            subs.append(SubObjectiveSpec(s.get("title"), tuple(kpis)))
        objectives.append(ObjectiveSpec(str(o["title"]), o.get("ref"), tuple(subs)))
    return ScorecardLayout(str(data["version"]), str(data.get("source") or ""), path, tuple(objectives))


# --------------------------------------------------------------------------------------------------
# Resolving figures from the measures table


@dataclass
class Comparison:
    token: str
    label: str
    start: str | None = None
    end: str | None = None
    value: float | None = None
    change_abs: float | None = None
    change_pct: float | None = None
    status: str | None = None  # None: no row for this comparison
    note: str | None = None
    source: str | None = None

    @property
    def shows_change(self) -> bool:
        return self.status not in (None, "incomplete", "not_comparable") and self.change_abs is not None


@dataclass
class Figure:
    measure_id: str
    label: str
    unit: str | None = None
    state: str = "ok"  # ok | absent | no_period
    period: str | None = None
    period_start: str | None = None
    period_end: str | None = None
    period_label: str = ""
    value: float | None = None
    status: str = "not_available"
    target: str | None = None
    direction: str | None = None
    note: str | None = None
    reason: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def value_text(self) -> str:
        return format_value(self.value, self.unit) if self.state == "ok" else "not available"


class _Index:
    """The measures rows of one force up to the report month, looked up by measure, period, end, comparison."""

    def __init__(self, rows: list[dict]):
        self.by_window: dict[tuple, dict[str, dict]] = {}
        self.ends: dict[tuple[str, str], list[str]] = {}
        self.periods: dict[str, set[str]] = {}
        for r in rows:
            window = (r.get("measure_id"), r.get("period"), r.get("period_end"))
            self.by_window.setdefault(window, {})[r.get("comparison")] = r  # a repeated key (should not happen): the last row wins
            self.ends.setdefault((r.get("measure_id"), r.get("period")), []).append(r.get("period_end"))
            self.periods.setdefault(r.get("measure_id"), set()).add(r.get("period"))

    def has(self, measure_id: str) -> bool:
        return measure_id in self.periods

    def latest_end(self, measure_id: str, period: str) -> str | None:
        ends = self.ends.get((measure_id, period))
        return max(ends) if ends else None

    def rows(self, measure_id: str, period: str, end: str) -> dict[str, dict]:
        return dict(self.by_window.get((measure_id, period, end), {}))

    def comparisons(self, measure_id: str, period: str) -> set[str]:
        return {c for (mid, p, _), rows in self.by_window.items() if mid == measure_id and p == period for c in rows}


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


_TOKEN_WORDS = {
    "sp_2019_20": "same period 2019/20",
    "sply": "same period last year",
    "ye_jun19": "year ending June 2019",
    "prev_r12": "previous 12 months",
}


def humanise_tokens(text: str) -> str:
    """Comparison tokens in rule text as words: 'decrease vs sp_2019_20' -> 'decrease vs same period 2019/20'."""
    return re.sub(r"\b(sp_2019_20|sply|ye_jun19|prev_r12)\b", lambda m: _TOKEN_WORDS[m.group(1)], text)


def _meaningful_target(t: str | None) -> str | None:
    if not t or str(t).strip().lower().startswith("direction:"):
        return None
    return humanise_tokens(str(t))


def _needs(extracts: Iterable[str]) -> str:
    ex = [e for e in extracts if e]
    if not ex:
        return "its extract"
    if len(ex) == 1:
        return f"the {ex[0]} extract"
    return "the " + ", ".join(ex[:-1]) + f" and {ex[-1]} extracts"


def _resolve_figure(idx: _Index, month: str, spec_measure: str, label: str, extracts: tuple[str, ...], period: str, comparisons: tuple[str, ...], defs) -> Figure:
    measure = _definition(defs, spec_measure)
    fig = Figure(spec_measure, label, unit=getattr(measure, "unit", None))
    if not idx.has(spec_measure):
        fig.state = "absent"
        if measure is not None and not extracts:
            extracts = (measure.extract,)
        reason = f"not computed: needs {_needs(extracts)}"
        if defs is not None and measure is None:
            reason += " (no definition in measures.yaml yet)"
        fig.reason = reason
        return fig
    end = idx.latest_end(spec_measure, period)
    if end is None:
        fig.state = "no_period"
        have = ", ".join(sorted(p for p in idx.periods.get(spec_measure, ()) if p))
        fig.reason = f"not available: no {_PERIOD_NAMES.get(period, period)} figure up to {_mon_yy(Month.parse(month))} (computed periods: {have or 'none'})"
        return fig
    rows = idx.rows(spec_measure, period, end)
    primary = next((rows[c] for c in comparisons if c in rows), None) or rows.get("target") or next(iter(rows.values()))
    fig.unit = primary.get("unit") or fig.unit
    fig.period, fig.period_start, fig.period_end = period, primary.get("period_start"), end
    fig.period_label = period_label(period, fig.period_start or end, end)
    fig.value = _clean(primary.get("value"))
    fig.note = primary.get("note")
    fig.target = _meaningful_target(primary.get("target"))
    raw_target = str(primary.get("target") or "")
    if raw_target.lower().startswith("direction:"):
        fig.direction = raw_target.split(":", 1)[1].strip() or None
    if "target" in rows:
        fig.status = rows["target"].get("status") or "not_available"
    else:
        fig.status = primary.get("status") or "not_available"
    if fig.value is None:
        fig.status = "incomplete"
        fig.reason = primary.get("note") or "the current window is incomplete"
    for token in comparisons:
        r = rows.get(token)
        if r is None:
            label_text = comparison_label(token, period, fig.period_start or end, end)
            fig.comparisons.append(Comparison(token, label_text, note="not computed for this figure"))
            continue
        fig.comparisons.append(
            Comparison(
                token,
                comparison_label(token, period, r.get("period_start") or end, end, r.get("comparison_start"), r.get("comparison_end")),
                r.get("comparison_start"),
                r.get("comparison_end"),
                _clean(r.get("comparison_value")),
                _clean(r.get("change_abs")),
                _clean(r.get("change_pct")),
                r.get("status"),
                r.get("note"),
                r.get("comparison_source"),
            )
        )
    return fig


def _definition(defs, measure_id: str):
    if defs is None:
        return None
    try:
        return defs.get(measure_id)
    except KeyError:
        return None


# --------------------------------------------------------------------------------------------------
# HTML building blocks


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


CSS = """
:root { --ink:#1b1f24; --muted:#58606a; --line:#c9ced6; --head:#23395d; --band:#eef1f6; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink);
       margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 1500px; line-height: 1.35; font-size: 15px; }
header.page { border-bottom: 3px solid var(--head); margin-bottom: 1rem; }
h1 { font-size: 1.6rem; margin: .2rem 0 .4rem; color: var(--head); }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .4rem; color: #fff; background: var(--head); padding: .35rem .6rem; }
h3 { font-size: 1.05rem; margin: 1rem 0 .3rem; }
nav a { margin-right: 1rem; }
p.meta, .muted { color: var(--muted); font-size: .88rem; }
p.rounding { background: #fff8e1; border-left: 4px solid #e0a800; padding: .4rem .6rem; font-size: .9rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .2rem 0 .8rem; }
table.scorecard { table-layout: fixed; min-width: 900px; }
table.scorecard col.c-sub { width: 12%; } table.scorecard col.c-kpi { width: 26%; } table.scorecard col.c-cur { width: 19%; }
table.scorecard col.c-hist { width: 22%; } table.scorecard col.c-tgt { width: 10%; } table.scorecard col.c-st { width: 11%; }
table.scorecard td, table.scorecard th { overflow-wrap: anywhere; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; vertical-align: top; text-align: left; }
thead th { background: var(--band); font-weight: 600; }
th.sub { background: #f7f8fa; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.ids { display: block; color: var(--muted); font-size: .75rem; font-family: ui-monospace, Menlo, Consolas, monospace; margin-top: .2rem; word-break: break-all; }
.plabel { color: var(--muted); white-space: nowrap; }
.chg { color: var(--muted); white-space: nowrap; }
.reason { display: block; color: var(--muted); font-size: .82rem; }
.line { display: block; margin-bottom: .15rem; }
.badge { display: inline-block; border-radius: .7rem; padding: .05rem .55rem; margin: 0 .2rem .2rem 0; font-size: .8rem;
         font-weight: 600; border: 1px solid transparent; }
td.st .badge { display: block; width: fit-content; max-width: 100%; }
.badge .fl { font-weight: 400; }
.b-met { background: #dff3e4; color: #145a2a; border-color: #7cc08f; }
.b-not_met { background: #fde2e1; color: #8a1c14; border-color: #e58a84; }
.b-monitor { background: #e3ecfa; color: #1d3f77; border-color: #8fb0e3; }
.b-not_comparable { background: #fff1d6; color: #7a4b00; border-color: #e4b25c; }
.b-incomplete { background: #f1e6fa; color: #5b2380; border-color: #b992d6; }
.b-not_available, .b-in_development, .b-monitored_elsewhere, .b-not_computable { background: #f1f2f4; color: #3f454d; border-color: #b8bec7; }
.nodata td.cur { color: var(--muted); font-style: italic; }
section.measure { border-top: 1px solid var(--line); margin-top: 1.2rem; }
section.measure h2 { margin-top: .8rem; }
.tag { font-size: .75rem; font-weight: 600; background: #fff1d6; color: #7a4b00; border: 1px solid #e4b25c; border-radius: .3rem; padding: 0 .35rem; margin-left: .4rem; vertical-align: middle; }
figure.chart { margin: .6rem 0 1rem; }
figure.chart svg { width: 100%; max-width: 980px; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .85rem; }
.legend { font-size: .85rem; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
ul.signals { margin: .2rem 0 .6rem 1.2rem; padding: 0; font-size: .9rem; }
@media (max-width: 900px) { body { font-size: 14px; padding: .6rem; } }
@media print {
  @page { size: A4 landscape; margin: 10mm; }
  body { font-size: 9pt; max-width: none; padding: 0; }
  nav { display: none; }
  h2 { background: none; color: #000; border-bottom: 2px solid #000; padding-left: 0; }
  .table-wrap { overflow: visible; }
  tr, figure.chart, .badge { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  .badge { background: none !important; color: #000 !important; border: 1px solid #000 !important; }
  a { color: #000; text-decoration: none; }
  section.measure { break-inside: avoid-page; }
}
"""


def _page(title: str, body: str, *, nav: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{nav}{body}\n</body>\n</html>\n"
    )


def _nav() -> str:
    return (
        '<nav aria-label="Reports"><a href="index.html">Index</a><a href="scorecard.html">KPI scorecard</a>'
        '<a href="national.html">National measures</a><a href="scorecard.csv">scorecard.csv</a>'
        '<a href="national_measures.csv">national_measures.csv</a></nav>\n'
    )


def _badge(status: str, prefix: str | None = None) -> str:
    words = STATUS_WORDS.get(status, status.replace("_", " "))
    pre = f'<span class="fl">{esc(prefix)}:</span> ' if prefix else ""
    return f'<span class="badge b-{esc(status)}">{pre}{esc(words)}</span>'


def _provenance(rows: list[dict]) -> str:
    runs = sorted({r.get("run_id") for r in rows if r.get("run_id")})
    versions = sorted({str(r.get("definition_version")).split(";")[0] for r in rows if r.get("definition_version")})
    parts = []
    if runs:
        parts.append(f"run{'s' if len(runs) > 1 else ''} {', '.join(runs[:6])}{' and others' if len(runs) > 6 else ''}")
    if versions:
        parts.append(f"definitions {'; '.join(versions[:6])}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------
# Scorecard


@dataclass
class KpiRow:
    objective: str
    sub_objective: str | None
    spec: KpiSpec
    figures: list[Figure]

    @property
    def multi(self) -> bool:
        return len(self.figures) > 1

    def current_text(self) -> str:
        if self.spec.availability != "computed":
            return self.spec.reason or ""
        labels = {f.period_label for f in self.figures if f.state == "ok"}
        shared = len(labels) == 1 and all(f.state == "ok" for f in self.figures)
        reasons = {f.reason for f in self.figures}
        if all(f.state != "ok" for f in self.figures) and len(reasons) == 1:
            return f"not available ({reasons.pop()})"
        parts = []
        for f in self.figures:
            pre = f"{f.label} " if self.multi else ""
            if f.state != "ok":
                parts.append(f"{pre}not available ({f.reason})")
            elif f.value is None:
                parts.append(f"{pre}not available ({f.reason})")
            else:
                parts.append(f"{pre}{f.value_text}" + ("" if shared else f" [{f.period_label}]"))
        text = "; ".join(parts)
        return text + (f" [{labels.pop()}]" if shared else "")

    def target_text(self) -> str:
        targets = [(f.label, f.target) for f in self.figures if f.target]
        if len(targets) < len(self.figures) and self.spec.target:
            return self.spec.target  # the Plan's rule, unless every figure carries its own
        if not targets:
            directions = sorted({f.direction for f in self.figures if f.direction})
            return "; ".join(directions)
        if len(self.figures) == 1 or len({t for _, t in targets}) == 1:
            return targets[0][1]  # type: ignore[return-value]
        return "; ".join(f"{label} {t}" for label, t in targets)

    def statuses(self) -> list[tuple[str | None, str]]:
        if self.spec.availability != "computed":
            return [(None, self.spec.availability)]
        sts = [f.status for f in self.figures]
        if len(set(sts)) == 1:
            return [(None, sts[0])]
        return [(f.label, f.status) for f in self.figures]

    def status_text(self) -> str:
        return "; ".join(f"{p}: {STATUS_WORDS.get(s, s)}" if p else STATUS_WORDS.get(s, s) for p, s in self.statuses())

    def comparison_lines(self) -> list[tuple[str, list[tuple[Figure, Comparison]]]]:
        out: list[tuple[str, list[tuple[Figure, Comparison]]]] = []
        for token in self.spec.comparisons:
            entries = []
            for f in self.figures:
                c = next((c for c in f.comparisons if c.token == token), None)
                if c is not None:
                    entries.append((f, c))
            if entries:
                out.append((token, entries))
        return out

    def historical_text(self) -> str:
        return " | ".join(_comparison_line_text(self, entries) for _, entries in self.comparison_lines())


def _comparison_entry_text(f: Figure, c: Comparison, multi: bool) -> str:
    pre = f"{f.label} " if multi else ""
    if c.status is None:
        return f"{pre}not available ({c.note})"
    value = format_value(c.value, f.unit)
    if c.shows_change:
        chg = format_change_abs(c.change_abs, f.unit)
        pct = "" if f.unit == "pct" else format_change_pct(c.change_pct)
        return f"{pre}{value} (change {chg}{', ' + pct if pct else ''})"
    if c.status in ("incomplete", "not_comparable"):
        return f"{pre}{value} ({STATUS_WORDS[c.status]}, no change given: {c.note or 'no reason recorded'})"
    return f"{pre}{value}"


def _comparison_line_text(row: KpiRow, entries: list[tuple[Figure, Comparison]]) -> str:
    labels = {c.label for _, c in entries}
    text = "; ".join(_comparison_entry_text(f, c, row.multi) for f, c in entries)
    return text + (f" [{labels.pop()}]" if len(labels) == 1 else "")


def _current_html(row: KpiRow) -> str:
    labels = {f.period_label for f in row.figures if f.state == "ok"}
    shared = len(labels) == 1 and all(f.state == "ok" for f in row.figures)
    reasons = {f.reason for f in row.figures}
    if all(f.state != "ok" for f in row.figures) and len(reasons) == 1:
        return f'<span class="line">not available<span class="reason">{esc(reasons.pop())}</span></span>'
    parts = []
    for f in row.figures:
        pre = f"{esc(f.label)} " if row.multi else ""
        if f.state != "ok" or f.value is None:
            parts.append(f'<span class="line">{pre}not available<span class="reason">{esc(f.reason)}</span></span>')
        else:
            lab = "" if shared else f' <span class="plabel">[{esc(f.period_label)}]</span>'
            parts.append(f'<span class="line">{pre}<strong>{esc(f.value_text)}</strong>{lab}</span>')
    tail = f'<span class="plabel">[{esc(labels.pop())}]</span>' if shared else ""
    return "".join(parts) + tail


def _historical_html(row: KpiRow) -> str:
    out = []
    for _, entries in row.comparison_lines():
        labels = {c.label for _, c in entries}
        shared = len(labels) == 1
        bits = []
        for f, c in entries:
            pre = f"{esc(f.label)} " if row.multi else ""
            lab = "" if shared else f' <span class="plabel">[{esc(c.label)}]</span>'
            if c.status is None:
                bits.append(f'<span class="line">{pre}not available{lab}<span class="reason">{esc(c.note)}</span></span>')
                continue
            value = esc(format_value(c.value, f.unit))
            if c.shows_change:
                chg = format_change_abs(c.change_abs, f.unit)
                pct = "" if f.unit == "pct" else format_change_pct(c.change_pct)
                change = f' <span class="chg">({esc(chg)}{", " + esc(pct) if pct else ""})</span>'
                bits.append(f'<span class="line">{pre}{value}{lab}{change}</span>')
            elif c.status in ("incomplete", "not_comparable"):
                if f.value is None and c.note and c.note == f.reason:
                    why = "No change given (the current window is incomplete, see Current)."
                else:
                    why = f"No change given: {c.note or 'no reason recorded'}"
                bits.append(f'<span class="line">{pre}{value}{lab} {_badge(c.status)}<span class="reason">{esc(why)}</span></span>')
            else:
                bits.append(f'<span class="line">{pre}{value}{lab}</span>')
        tail = f'<span class="plabel">[{esc(labels.pop())}]</span>' if shared else ""
        out.append(f'<div class="cmp">{"".join(bits)}{tail}</div>')
    return "".join(out)


def _status_html(row: KpiRow) -> str:
    return "".join(_badge(s, p) for p, s in row.statuses())


def build_scorecard_rows(layout: ScorecardLayout, idx: _Index, month: str, defs) -> list[KpiRow]:
    rows = []
    for o in layout.objectives:
        for s in o.sub_objectives:
            for k in s.kpis:
                figs = [_resolve_figure(idx, month, f.measure, f.label, f.extracts, k.current, k.comparisons, defs) for f in k.figures]
                rows.append(KpiRow(o.title, s.title, k, figs))
    return rows


def _scorecard_html(layout: ScorecardLayout, rows: list[KpiRow], force_id: str, month: str, provenance: str) -> str:
    m = Month.parse(month)
    body = [
        '<header class="page">',
        f"<h1>Police and Crime Plan KPI scorecard: {esc(force_id)}, {esc(_mon_yy(m))}</h1>",
        f'<p class="meta">Report month {esc(month)}. Layout: scorecard.yaml version {esc(layout.version)} '
        f"({esc(layout.source)}). Figures from the measures table{': ' + esc(provenance) if provenance else ''}.</p>",
        f'<p class="rounding">{esc(ROUNDING_STATEMENT)} {esc(ROUNDING_DETAIL)}</p>',
        '<p class="legend">Status: ' + " ".join(_badge(s) for s in ("met", "not_met", "monitor", "not_comparable", "incomplete", "not_available")) +
        ' - a window with a month not loaded is <em>incomplete</em> and a comparison across a definition change is '
        "<em>not comparable</em>: neither prints a change.</p>",
        "</header>",
        "<main>",
    ]
    by_obj: dict[str, list[KpiRow]] = {}
    for r in rows:
        by_obj.setdefault(r.objective, []).append(r)
    for n, o in enumerate(layout.objectives):
        orows = by_obj.get(o.title, [])
        oid = f"obj-{n + 1}"
        body.append(f'<section class="objective" aria-labelledby="{oid}">')
        body.append(f'<h2 id="{oid}">{esc(o.title)}</h2>')
        body.append('<div class="table-wrap"><table class="scorecard">')
        body.append('<colgroup><col class="c-sub"><col class="c-kpi"><col class="c-cur"><col class="c-hist"><col class="c-tgt"><col class="c-st"></colgroup>')
        body.append(
            '<thead><tr><th scope="col">Sub-objective</th><th scope="col">KPI</th><th scope="col">Current</th>'
            '<th scope="col">Historical / baseline</th><th scope="col">Target</th><th scope="col">Status</th></tr></thead><tbody>'
        )
        for s in o.sub_objectives:
            srows = [r for r in orows if r.sub_objective == s.title and r.spec in s.kpis]
            for i, r in enumerate(srows):
                cls = "" if r.spec.availability == "computed" else ' class="nodata"'
                cells = []
                if i == 0:
                    span = f' rowspan="{len(srows)}"' if len(srows) > 1 else ""
                    cells.append(f'<th scope="rowgroup" class="sub"{span}>{esc(s.title or "")}</th>')
                ids = " ".join(f.measure for f in r.spec.figures)
                ids_html = f'<span class="ids">{esc(ids)}</span>' if ids else ""
                cells.append(f'<td class="kpi">{esc(r.spec.kpi)}{ids_html}</td>')
                if r.spec.availability == "computed":
                    cells.append(f'<td class="cur">{_current_html(r)}</td>')
                    cells.append(f'<td class="hist">{_historical_html(r)}</td>')
                else:
                    cells.append(f'<td class="cur" colspan="2">{esc(r.spec.reason)}</td>')
                cells.append(f'<td class="tgt">{esc(r.target_text())}</td>')
                cells.append(f'<td class="st">{_status_html(r)}</td>')
                body.append(f"<tr{cls}>{''.join(cells)}</tr>")
        body.append("</tbody></table></div></section>")
    n_comp = sum(1 for r in rows if r.spec.availability == "computed")
    body.append(
        f'<p class="meta">{len(rows)} KPI rows: {n_comp} with measures from the force\'s extracts, '
        f"{len(rows) - n_comp} in development, monitored elsewhere or not computable from force data.</p>"
    )
    body.append("</main>")
    return _page(f"KPI scorecard - {force_id} - {month}", "\n".join(body), nav=_nav())


def _scorecard_frame(layout: ScorecardLayout, rows: list[KpiRow]) -> pl.DataFrame:
    nslots = layout.max_comparisons
    records = []
    for r in rows:
        common = {
            "objective": r.objective,
            "sub_objective": r.sub_objective,
            "kpi_id": r.spec.id,
            "kpi": r.spec.kpi,
            "kpi_ref": r.spec.ref,
            "availability": r.spec.availability,
            "current_text": r.current_text(),
            "historical_text": r.historical_text(),
            "target_text": r.target_text(),
            "status_text": r.status_text(),
        }
        figures = r.figures or [None]
        for f in figures:
            rec: dict[str, Any] = dict(common)
            rec.update(
                figure_label=f.label if f else None,
                measure_id=f.measure_id if f else None,
                unit=f.unit if f else None,
                period=f.period if f else None,
                period_start=f.period_start if f else None,
                period_end=f.period_end if f else None,
                current_label=f.period_label if f else None,
                value=f.value if f else None,
                value_text=(f.value_text if f else None),
                status=(f.status if f else r.spec.availability),
                reason=(f.reason if f else r.spec.reason),
                note=(f.note if f else None),
            )
            for i in range(nslots):
                c = f.comparisons[i] if f and i < len(f.comparisons) else None
                p = f"comparison_{i + 1}"
                rec[p] = c.token if c else None
                rec[f"{p}_label"] = c.label if c else None
                rec[f"{p}_start"] = c.start if c else None
                rec[f"{p}_end"] = c.end if c else None
                rec[f"{p}_value"] = c.value if c else None
                rec[f"{p}_change_abs"] = c.change_abs if c and c.shows_change else None
                rec[f"{p}_change_pct"] = c.change_pct if c and c.shows_change else None
                rec[f"{p}_status"] = c.status if c else None
                rec[f"{p}_text"] = _comparison_entry_text(f, c, False) if (c and f) else None
            records.append(rec)
    schema: dict[str, Any] = {
        k: pl.Utf8
        for k in ("objective", "sub_objective", "kpi_id", "kpi", "kpi_ref", "availability", "current_text", "historical_text", "target_text",
                  "status_text", "figure_label", "measure_id", "unit", "period", "period_start", "period_end", "current_label")
    }
    schema["value"] = pl.Float64
    schema.update({"value_text": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8, "note": pl.Utf8})
    for i in range(nslots):
        p = f"comparison_{i + 1}"
        schema.update({p: pl.Utf8, f"{p}_label": pl.Utf8, f"{p}_start": pl.Utf8, f"{p}_end": pl.Utf8, f"{p}_value": pl.Float64,
                       f"{p}_change_abs": pl.Float64, f"{p}_change_pct": pl.Float64, f"{p}_status": pl.Utf8, f"{p}_text": pl.Utf8})
    return pl.DataFrame(records, schema=schema)


# --------------------------------------------------------------------------------------------------
# National measures


@dataclass
class NationalRow:
    measure_id: str
    name: str
    unit: str | None
    proxy_for: str | None
    proxy_note: str | None
    current: Figure
    series: list[dict]
    baseline_level: float | None
    baseline_level_note: str

    @property
    def baseline(self) -> Comparison | None:
        return next((c for c in self.current.comparisons if c.token == "ye_jun19"), None)

    @property
    def previous(self) -> Comparison | None:
        return next((c for c in self.current.comparisons if c.token in ("prev_r12", "sply")), None)

    @property
    def signals(self) -> list[dict]:
        return [p for p in self.series if p.get("signal")]


def _is_national(measure_id: str, family: str | None) -> bool:
    return family == "national_measure" or measure_id.startswith(("nm_", "pu_"))


def _spc_series(spc: pl.DataFrame | None, force_id: str, measure_id: str, month: str) -> list[dict]:
    if spc is None or spc.height == 0 or "measure_id" not in spc.columns or "month" not in spc.columns:
        return []
    f = spc.filter(pl.col("measure_id") == measure_id)
    if "force_id" in spc.columns:
        f = f.filter(pl.col("force_id") == force_id)
    f = f.filter(pl.col("month") <= month).sort("month")
    out = []
    for r in f.to_dicts():
        out.append({k: _clean(r.get(k)) for k in ("month", "value", "centre", "lower", "upper", "baseline_start", "baseline_end", "signal")})
    return out


def _baseline_level(series: list[dict], base: Comparison | None, unit: str | None) -> tuple[float | None, str]:
    months = {str(m) for m in YE_JUN19.months}
    vals = [p["value"] for p in series if p.get("month") in months and p.get("value") is not None]
    if len(vals) == len(months):
        return sum(vals) / len(vals), "monthly mean of the series over the year ending June 2019"
    if unit == "count" and base is not None and base.value is not None and base.status is not None:
        src = "published statistics" if base.source == "published_statistics" else "the force's records"
        return base.value / 12.0, f"year ending June 2019 baseline / 12 (from {src}; the series does not hold all 12 baseline months)"
    return None, "no baseline level: the series does not hold all 12 months of the year ending June 2019"


_NATIONAL_PERIOD_ORDER = ("r12", "cal", "fytd", "qtr", "month")


def _national_period(idx: _Index, measure_id: str, m) -> tuple[str, tuple[str, ...]]:
    """The rolling 12 months against the baseline and the previous 12 months where the measure has them;
    otherwise the measure's own period (e.g. a calendar year or quarter against the same period last year)."""
    defined = dict(getattr(m, "periods", None) or {})
    have = idx.periods.get(measure_id, set())
    if "r12" in have or not have and ("r12" in defined or not defined):
        return "r12", ("ye_jun19", "prev_r12")
    candidates = [p for p in defined if p in have] + [p for p in _NATIONAL_PERIOD_ORDER if p in have]
    period = candidates[0] if candidates else next(iter(defined), "r12")
    comps = tuple(c for c in defined.get(period, ()) if c != "target")
    if not comps:
        comps = tuple(sorted(c for c in idx.comparisons(measure_id, period) if c and c != "target"))
    return period, comps or ("sply",)


def build_national_rows(idx: _Index, measures_rows: list[dict], month: str, force_id: str, spc: pl.DataFrame | None, defs) -> list[NationalRow]:
    ids: list[str] = []
    if defs is not None:
        ids += [m.id for m in defs.measures if m.family == "national_measure" and m.id.startswith("nm_")]
    families = {r.get("measure_id"): r.get("family") for r in measures_rows}
    ids += sorted(mid for mid, fam in families.items() if mid and _is_national(mid, fam) and mid.startswith("nm_") and mid not in ids)
    ids += sorted(mid for mid, fam in families.items() if mid and mid.startswith("pu_") and mid not in ids)
    ids += sorted(mid for mid, fam in families.items() if mid and fam == "national_measure" and mid not in ids)
    out = []
    for mid in ids:
        m = _definition(defs, mid)
        extracts = (m.extract,) if m is not None else ()
        period, comps = _national_period(idx, mid, m)
        fig = _resolve_figure(idx, month, mid, getattr(m, "name", mid), extracts, period, comps, defs)
        if fig.state == "ok" and fig.period_end != month:
            note = f"the latest {_PERIOD_NAMES.get(period, period)} figure ends {_mon_yy(Month.parse(fig.period_end))}"  # type: ignore[arg-type]
            fig.reason = (fig.reason + "; " if fig.reason else "") + note
        proxy_for = getattr(m, "proxy_for", None)
        proxy_note = getattr(m, "note", None)
        note = fig.note or ""
        if not proxy_for and note.startswith("proxy for "):  # the engine's note: "proxy for <id>: <how it differs>; ..."
            head, _, rest = note[len("proxy for "):].partition(":")
            proxy_for, proxy_note = head.strip() or None, proxy_note or rest.split(";")[0].strip() or None
        if mid.startswith("pu_") and not proxy_for:
            proxy_for = "a national measure"
        series = _spc_series(spc, force_id, mid, month)
        level, level_note = _baseline_level(series, next((c for c in fig.comparisons if c.token == "ye_jun19"), None), fig.unit)
        out.append(NationalRow(mid, getattr(m, "name", None) or mid, fig.unit, proxy_for, proxy_note, fig, series, level, level_note))
    return out


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(mult * mag for mult in (1, 2, 2.5, 5, 10) if raw <= mult * mag + 1e-12)
    start = math.floor(lo / step) * step
    end = math.ceil(hi / step - 1e-9) * step
    ticks, t = [], start
    while t <= end + step / 2:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _segments(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    segs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if segs[-1]:
                segs.append([])
        else:
            segs[-1].append(p)
    return [s for s in segs if s]


def _pts(seg: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)


SIGNAL_WORDS = {"outside_limits": "outside the control limits", "run_above": "in a run of 7+ above the centre line", "run_below": "in a run of 7+ below the centre line"}


def trend_svg(series: list[dict], *, uid: str, title: str, unit: str | None, baseline_level: float | None, baseline_note: str = "") -> str:
    """An inline SVG line chart of a monthly series with its SPC centre, control limits, signals and baseline.

    One <circle class="pt"> per month with a value; signalled points also carry class "signal" and a
    marker (a ring for a point outside the limits, a triangle for a run). No script, no external file.
    """
    W, H = 860, 320
    left, right, top, bottom = 70, 20, 44, 56
    pw, ph = W - left - right, H - top - bottom
    n = len(series)
    nonneg = unit in ("count", "pct", "per_1000", "per_100k", "per_million", "seconds")
    vals: list[float] = []
    for p in series:
        for k in ("value", "centre", "upper", "lower"):
            v = p.get(k)
            if v is not None:
                vals.append(max(v, 0.0) if (k == "lower" and nonneg) else v)
    if baseline_level is not None:
        vals.append(baseline_level)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if nonneg:
        lo = min(lo, 0.0)
    hi += (hi - lo) * 0.06 or 1.0  # headroom so the highest point and its marker are not on the frame
    ticks = _nice_ticks(lo, hi)
    y0, y1 = ticks[0], ticks[-1]

    def X(i: int) -> float:
        return left + (pw / 2 if n == 1 else i * pw / (n - 1))

    def Y(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    def clip(v: float | None) -> float | None:
        if v is None:
            return None
        return max(v, 0.0) if nonneg else v

    span = y1 - y0
    first, last = (series[0]["month"], series[-1]["month"]) if series else ("", "")
    n_sig = sum(1 for p in series if p.get("signal"))
    cvals = [p for p in series if p.get("centre") is not None]
    last_val = next((p for p in reversed(series) if p.get("value") is not None), None)
    desc_bits = [f"{n} monthly values from {_mon_yy(Month.parse(first))} to {_mon_yy(Month.parse(last))}" if series else "no values"]
    if last_val:
        desc_bits.append(f"latest {_axis_number(last_val['value'], span)} in {_mon_yy(Month.parse(last_val['month']))}")
    if cvals:
        c = cvals[-1]
        lim = ""
        if c.get("lower") is not None and c.get("upper") is not None:
            lim = f", control limits {_axis_number(c['lower'], span)} to {_axis_number(c['upper'], span)}"
        basis = f" (limits from {c.get('baseline_start')} to {c.get('baseline_end')})" if c.get("baseline_start") else ""
        desc_bits.append(f"centre line {_axis_number(c['centre'], span)}{lim}{basis}")
    if baseline_level is not None:
        desc_bits.append(f"baseline level {_axis_number(baseline_level, span)} ({baseline_note})")
    desc_bits.append(f"{n_sig} signalled point{'s' if n_sig != 1 else ''}")
    desc = "; ".join(desc_bits) + "."

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-labelledby="{uid}-title {uid}-desc" class="trend">',
        f'<title id="{uid}-title">{esc(title)}</title>',
        f'<desc id="{uid}-desc">{esc(desc)}</desc>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#c9ced6"/>',
    ]
    # y grid and labels
    for t in ticks:
        y = Y(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e6e9ee" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#444">{esc(_axis_number(t, span))}</text>')
    unit_words = {"count": "count per month", "pct": "per cent", "per_1000": "per 1,000", "per_100k": "per 100,000", "per_million": "per million", "seconds": "seconds"}.get(unit or "", unit or "value")
    out.append(f'<text x="16" y="{top + ph / 2:.1f}" font-size="11" fill="#444" text-anchor="middle" transform="rotate(-90 16 {top + ph / 2:.1f})">{esc(unit_words)}</text>')
    # x labels
    if n:
        step = next((s for s in (1, 2, 3, 6, 12, 24, 36, 60) if n / s <= 14), 120)
        for i, p in enumerate(series):
            mm = Month.parse(p["month"])
            if (step >= 12 and mm.month == 1) or (step < 12 and (mm.index % step == 0)) or (n <= 14):
                x = X(i)
                out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}" stroke="#888"/>')
                out.append(f'<text x="{x:.1f}" y="{top + ph + 17}" font-size="11" text-anchor="middle" fill="#444">{esc(_mon_yy(mm))}</text>')
        out.append(f'<text x="{left + pw / 2:.1f}" y="{H - 8}" font-size="11" text-anchor="middle" fill="#444">Month</text>')
    # control-limit band, limits, centre
    band_pts = [(X(i), Y(clip(p["upper"])), Y(clip(p["lower"]))) if p.get("upper") is not None and p.get("lower") is not None else None for i, p in enumerate(series)]  # type: ignore[arg-type]
    run: list[tuple[float, float, float]] = []
    for bp in band_pts + [None]:
        if bp is None:
            if run:
                poly = [(x, yu) for x, yu, _ in run] + [(x, yl) for x, _, yl in reversed(run)]
                out.append(f'<polygon class="band" points="{_pts(poly)}" fill="#dfe8f5" fill-opacity="0.7" stroke="none"/>')
                run = []
        else:
            run.append(bp)
    for key, cls, style in (("upper", "limit", 'stroke="#6b8cc4" stroke-dasharray="2 3"'), ("lower", "limit", 'stroke="#6b8cc4" stroke-dasharray="2 3"'), ("centre", "centre", 'stroke="#6b8cc4"')):
        for seg in _segments([(X(i), Y(clip(p[key]))) if p.get(key) is not None else None for i, p in enumerate(series)]):  # type: ignore[arg-type]
            out.append(f'<polyline class="{cls}" points="{_pts(seg)}" fill="none" {style} stroke-width="1.3"/>')
    if baseline_level is not None:
        y = Y(baseline_level)
        out.append(f'<line class="baseline" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#b35c00" stroke-width="1.6" stroke-dasharray="7 5"/>')
    # values
    for seg in _segments([(X(i), Y(p["value"])) if p.get("value") is not None else None for i, p in enumerate(series)]):
        out.append(f'<polyline class="values" points="{_pts(seg)}" fill="none" stroke="#1b1f24" stroke-width="1.8"/>')
    for i, p in enumerate(series):
        if p.get("value") is None:
            continue
        x, y = X(i), Y(p["value"])
        sig = p.get("signal")
        tip = f"{_mon_yy(Month.parse(p['month']))}: {_axis_number(p['value'], span)}" + (f" - {SIGNAL_WORDS.get(sig, sig)}" if sig else "")
        if sig:
            colour = "#c62828" if sig == "outside_limits" else "#b26a00"
            out.append(f'<circle class="pt signal {esc(sig)}" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>{esc(tip)}</title></circle>')
            if sig == "outside_limits":
                out.append(f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="#c62828" stroke-width="1.5"/>')
            else:
                d = -1 if sig == "run_above" else 1
                tip_y = y + d * 8
                out.append(f'<polygon class="mark" points="{x - 4:.1f},{tip_y - d * 6:.1f} {x + 4:.1f},{tip_y - d * 6:.1f} {x:.1f},{tip_y:.1f}" fill="#e08a00"/>')
        else:
            out.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="#1b1f24"><title>{esc(tip)}</title></circle>')
    # legend
    lx, ly = left, 18
    legend = [
        ('<line x1="0" y1="0" x2="22" y2="0" stroke="#1b1f24" stroke-width="1.8"/>', "Monthly value"),
        ('<circle cx="11" cy="0" r="4" fill="#c62828"/><circle cx="11" cy="0" r="8" fill="none" stroke="#c62828" stroke-width="1.5"/>', "Outside limits"),
        ('<circle cx="11" cy="2" r="4" fill="#b26a00"/><polygon points="7,-10 15,-10 11,-4" fill="#e08a00"/>', "Run of 7+"),
        ('<line x1="0" y1="0" x2="22" y2="0" stroke="#6b8cc4" stroke-width="1.3"/>', "SPC centre"),
        ('<rect x="0" y="-5" width="22" height="10" fill="#dfe8f5" stroke="#6b8cc4" stroke-dasharray="2 3"/>', "Control limits"),
        ('<line x1="0" y1="0" x2="22" y2="0" stroke="#b35c00" stroke-width="1.6" stroke-dasharray="7 5"/>', "Baseline (YE Jun 19) monthly mean"),
    ]
    for sym, text in legend:
        out.append(f'<g transform="translate({lx},{ly})">{sym}<text x="28" y="4" font-size="11" fill="#333">{esc(text)}</text></g>')
        lx += 40 + int(len(text) * 6.2)
    out.append("</svg>")
    return "".join(out)


def _national_table(nr: NationalRow) -> str:
    f = nr.current
    rows = []
    cur = f.value_text if f.state == "ok" else "not available"
    cur_reason = f.reason if (f.state != "ok" or f.value is None or f.reason) else None
    cur_badge = _badge("not_available") if f.state != "ok" else (_badge("incomplete") if f.value is None else "")
    rows.append(
        f'<tr><th scope="row">Current</th><td>{esc(f.period_label or "rolling 12 months")}</td><td class="num"><strong>{esc(cur)}</strong></td>'
        f'<td class="num"></td><td class="num"></td><td>{cur_badge}'
        f'{"<span class=reason>" + esc(cur_reason) + "</span>" if cur_reason else ""}</td></tr>'
    )
    names = {"ye_jun19": "Baseline", "prev_r12": "Previous 12 months", "sply": "Same period last year", "sp_2019_20": "Same period 2019/20"}
    for c in f.comparisons if f.state == "ok" else []:
        name = names.get(c.token, c.token)
        window = _window_dates(c.start, c.end)
        label = c.label + (f" ({window})" if window and c.label != window else "")
        if c.status is None:
            rows.append(f'<tr><th scope="row">{esc(name)}</th><td>{esc(label)}</td><td class="num">not available</td><td></td><td></td>'
                        f'<td>{_badge("not_available")}<span class="reason">{esc(c.note)}</span></td></tr>')
            continue
        val = format_value(c.value, nr.unit)
        src = '<span class="reason">from published statistics</span>' if c.source == "published_statistics" else ""
        if c.shows_change:
            chg, pct = format_change_abs(c.change_abs, nr.unit), ("" if nr.unit == "pct" else format_change_pct(c.change_pct))
            reason = ""
        else:
            chg = pct = ""
            reason = f'<span class="reason">No change given: {esc(c.note or "no reason recorded")}</span>' if c.status in ("incomplete", "not_comparable") else ""
        rows.append(
            f'<tr><th scope="row">{esc(name)}</th><td>{esc(label)}</td><td class="num">{esc(val)}{src}</td><td class="num">{esc(chg)}</td>'
            f'<td class="num">{esc(pct)}</td><td>{_badge(c.status)}{reason}</td></tr>'
        )
    return (
        '<div class="table-wrap"><table class="national"><thead><tr><th scope="col"></th><th scope="col">Window</th>'
        '<th scope="col" class="num">Value</th><th scope="col" class="num">Change</th><th scope="col" class="num">% change</th>'
        f'<th scope="col">Status</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _signals_html(nr: NationalRow) -> str:
    if not nr.series:
        return ""
    sig = nr.signals
    if not sig:
        return '<p class="muted">SPC: no signals (no point outside the control limits, no run of 7 or more on one side of the centre line).</p>'
    groups: list[list[dict]] = []
    for p in sig:  # consecutive months with the same signal are listed once
        prev = groups[-1][-1] if groups else None
        if prev is not None and prev["signal"] == p["signal"] and Month.parse(prev["month"]).index + 1 == Month.parse(p["month"]).index:
            groups[-1].append(p)
        else:
            groups.append([p])
    items = []
    for g in groups:
        first, last = Month.parse(g[0]["month"]), Month.parse(g[-1]["month"])
        when = _mon_yy(first) if len(g) == 1 else f"{_mon_yy(first)} to {_mon_yy(last)} ({len(g)} months)"
        items.append(f"<li>{esc(when)}: {esc(SIGNAL_WORDS.get(g[0]['signal'], g[0]['signal']))}</li>")
    return f'<p class="muted">SPC signals ({len(sig)} signalled months):</p><ul class="signals">{"".join(items)}</ul>'


def _national_html(rows: list[NationalRow], force_id: str, month: str, provenance: str, spc_given: bool) -> str:
    m = Month.parse(month)
    body = [
        '<header class="page">',
        f"<h1>National Crime and Policing Measures: {esc(force_id)}, 12 months to {esc(_mon_yy(m))}</h1>",
        f'<p class="meta">Report month {esc(month)}. Current window: the rolling 12 months to the report month; baseline: the year ending '
        f"June 2019 (Jul 18 to Jun 19); also the previous 12 months. A measure defined only for another period (a calendar year, a quarter, "
        f"the financial year to date, a month) shows its latest such period against the same period last year. "
        f"Figures from the measures table{': ' + esc(provenance) if provenance else ''}.</p>",
        f'<p class="rounding">{esc(ROUNDING_STATEMENT)} {esc(ROUNDING_DETAIL)}</p>',
        '<p class="legend">Trend charts: the monthly series with its statistical process control (XmR) centre line and control limits '
        "(mean &#177; 2.66 &#215; mean moving range over the stated baseline run); a point outside the limits or a run of 7 or more on one "
        "side of the centre is a signal. The dashed line is the baseline level (monthly mean over the year ending June 2019).</p>",
        "</header>",
        "<main>",
        "<h2>Summary</h2>",
        '<div class="table-wrap"><table class="summary"><thead><tr><th scope="col">Measure</th><th scope="col">Current</th>'
        '<th scope="col" class="num">Value</th><th scope="col" class="num">Baseline (YE Jun 19)</th><th scope="col" class="num">Change vs baseline</th>'
        '<th scope="col" class="num">Previous period</th><th scope="col" class="num">Change vs previous</th><th scope="col">Status</th></tr></thead><tbody>',
    ]
    for nr in rows:
        f = nr.current
        b, p = nr.baseline, nr.previous

        def cell_val(c: Comparison | None) -> str:
            if c is None:
                return "-"
            text = format_value(c.value, nr.unit) if c is not None and c.status is not None else "not available"
            if c is not None and c.token not in ("ye_jun19", "prev_r12"):
                text += f" [{c.label}]"
            return text

        def cell_chg(c: Comparison | None) -> str:
            if c is None or not c.shows_change:
                return "-"
            return format_change_pct(c.change_pct) if nr.unit != "pct" and c.change_pct is not None else format_change_abs(c.change_abs, nr.unit)

        status = b.status if (b is not None and b.status) else f.status
        tag = ' <span class="tag">proxy</span>' if nr.proxy_for else ""
        body.append(
            f'<tr><td><a href="#m-{esc(nr.measure_id)}">{esc(nr.name)}</a>{tag}</td><td>{esc(f.period_label or "-")}</td>'
            f'<td class="num">{esc(f.value_text)}</td><td class="num">{esc(cell_val(b))}</td><td class="num">{esc(cell_chg(b))}</td>'
            f'<td class="num">{esc(cell_val(p))}</td><td class="num">{esc(cell_chg(p))}</td>'
            f'<td>{_badge(status if f.state == "ok" else "not_available")}</td></tr>'
        )
    body.append("</tbody></table></div>")
    for n, nr in enumerate(rows):
        uid = f"chart-{n + 1}"
        tag = ' <span class="tag">proxy</span>' if nr.proxy_for else ""
        body.append(f'<section class="measure" id="m-{esc(nr.measure_id)}" aria-labelledby="h-{esc(nr.measure_id)}">')
        body.append(f'<h2 id="h-{esc(nr.measure_id)}">{esc(nr.name)}{tag}</h2>')
        unit_txt = f", unit {nr.unit}" if nr.unit else ""
        body.append(f'<p class="meta"><code>{esc(nr.measure_id)}</code>{esc(unit_txt)}</p>')
        if nr.proxy_for:
            note = f": {nr.proxy_note}" if nr.proxy_note else ""
            body.append(f'<p class="meta"><strong>Proxy</strong> for <code>{esc(nr.proxy_for)}</code>{esc(note)}</p>')
        body.append(_national_table(nr))
        if nr.series:
            title = f"{nr.name}: monthly values, {_mon_yy(Month.parse(nr.series[0]['month']))} to {_mon_yy(Month.parse(nr.series[-1]['month']))}"
            svg = trend_svg(nr.series, uid=uid, title=title, unit=nr.unit, baseline_level=nr.baseline_level, baseline_note=nr.baseline_level_note)
            body.append(f'<figure class="chart">{svg}<figcaption>{esc(title)}. Baseline level: {esc(nr.baseline_level_note)}.</figcaption></figure>')
            body.append(_signals_html(nr))
        else:
            why = "no SPC table was given to the report" if not spc_given else "the SPC table holds no months of this measure"
            body.append(f'<p class="muted nochart">No monthly series: {esc(why)}.</p>')
        body.append("</section>")
    if not rows:
        body.append('<p class="muted">No national measures in the measures table.</p>')
    body.append("</main>")
    return _page(f"National measures - {force_id} - {month}", "\n".join(body), nav=_nav())


def _national_frame(rows: list[NationalRow]) -> pl.DataFrame:
    recs = []
    for nr in rows:
        f = nr.current
        rec: dict[str, Any] = {
            "measure_id": nr.measure_id,
            "name": nr.name,
            "proxy_for": nr.proxy_for,
            "unit": nr.unit,
            "period": f.period,
            "period_start": f.period_start,
            "period_end": f.period_end,
            "current_label": f.period_label or None,
            "value": f.value,
            "value_text": f.value_text,
            "status": f.status,
            "reason": f.reason,
        }
        for c, p in ((nr.baseline, "baseline"), (nr.previous, "previous")):
            rec.update({
                f"{p}_label": c.label if c else None,
                f"{p}_start": c.start if c else None,
                f"{p}_end": c.end if c else None,
                f"{p}_value": c.value if c else None,
                f"{p}_text": (format_value(c.value, nr.unit) if c and c.status else None),
                f"{p}_source": c.source if c else None,
                f"{p}_change_abs": c.change_abs if c and c.shows_change else None,
                f"{p}_change_pct": c.change_pct if c and c.shows_change else None,
                f"{p}_change_text": (format_change_abs(c.change_abs, nr.unit) if c and c.shows_change else None),
                f"{p}_change_pct_text": (format_change_pct(c.change_pct) if c and c.shows_change and nr.unit != "pct" else None),
                f"{p}_status": c.status if c else None,
                f"{p}_note": c.note if c else None,
            })
        rec["series_months"] = len(nr.series)
        rec["baseline_level"] = nr.baseline_level
        rec["signals"] = "; ".join(f"{p['month']} {p['signal']}" for p in nr.signals) or None
        recs.append(rec)
    schema: dict[str, Any] = {k: pl.Utf8 for k in ("measure_id", "name", "proxy_for", "unit", "period", "period_start", "period_end", "current_label")}
    schema["value"] = pl.Float64
    schema.update({"value_text": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8})
    for p in ("baseline", "previous"):
        schema.update({f"{p}_label": pl.Utf8, f"{p}_start": pl.Utf8, f"{p}_end": pl.Utf8, f"{p}_value": pl.Float64, f"{p}_text": pl.Utf8,
                       f"{p}_source": pl.Utf8, f"{p}_change_abs": pl.Float64, f"{p}_change_pct": pl.Float64, f"{p}_change_text": pl.Utf8,
                       f"{p}_change_pct_text": pl.Utf8, f"{p}_status": pl.Utf8, f"{p}_note": pl.Utf8})
    schema.update({"series_months": pl.Int64, "baseline_level": pl.Float64, "signals": pl.Utf8})
    return pl.DataFrame(recs, schema=schema)


# --------------------------------------------------------------------------------------------------
# Index and data quality


def data_quality_summary(checks: pl.DataFrame) -> pl.DataFrame:
    """Checks run and failed per extract (counts and check names only - never a check's detail text)."""
    cols = set(checks.columns)
    ex = pl.col("extract").fill_null("(run)") if "extract" in cols else pl.lit("(all)")
    failed = (~pl.col("passed").fill_null(False)) if "passed" in cols else pl.lit(False)
    aggs = [pl.len().alias("checks"), failed.sum().cast(pl.Int64).alias("failed")]
    if "severity" in cols:
        aggs.append((failed & (pl.col("severity") == "error")).sum().cast(pl.Int64).alias("failed_errors"))
        aggs.append((failed & (pl.col("severity") != "error")).sum().cast(pl.Int64).alias("failed_warnings"))
    if "failing_rows" in cols:
        aggs.append(pl.when(failed).then(pl.col("failing_rows")).otherwise(0).fill_null(0).sum().cast(pl.Int64).alias("failing_rows"))
    if "run_id" in cols:
        aggs.append(pl.col("run_id").n_unique().cast(pl.Int64).alias("runs"))
    if "check" in cols:
        aggs.append(pl.col("check").filter(failed).unique().sort().alias("failed_checks"))
    out = checks.with_columns(ex.alias("_extract")).group_by("_extract").agg(aggs).rename({"_extract": "extract"}).sort("extract")
    if "failed_checks" in out.columns:
        out = out.with_columns(pl.col("failed_checks").list.join(", "))
    return out


def _index_html(force_id: str, month: str, rows: list[KpiRow], nrows: list[NationalRow], layout: ScorecardLayout,
                dq: pl.DataFrame | None, dq_source: pl.DataFrame | None, provenance: str) -> str:
    m = Month.parse(month)
    comp = [r for r in rows if r.spec.availability == "computed"]
    counts: dict[str, int] = {}
    for r in comp:
        for _, s in r.statuses():
            counts[s] = counts.get(s, 0) + 1
    nd: dict[str, int] = {}
    for r in rows:
        if r.spec.availability != "computed":
            nd[r.spec.availability] = nd.get(r.spec.availability, 0) + 1
    status_list = "".join(f"<li>{_badge(s)} {n}</li>" for s, n in sorted(counts.items()))
    nd_list = "".join(f"<li>{_badge(s)} {n}</li>" for s, n in sorted(nd.items()))
    ncounts: dict[str, int] = {}
    for nr in nrows:
        s = (nr.baseline.status if nr.baseline is not None and nr.baseline.status else nr.current.status) if nr.current.state == "ok" else "not_available"
        ncounts[s] = ncounts.get(s, 0) + 1
    nat_list = "".join(f"<li>{_badge(s)} {n}</li>" for s, n in sorted(ncounts.items()))
    body = [
        '<header class="page">',
        f"<h1>Performance report: {esc(force_id)}, {esc(_mon_yy(m))}</h1>",
        f'<p class="meta">Report month {esc(month)}. Figures from the measures table{": " + esc(provenance) if provenance else ""}.</p>',
        f'<p class="rounding">{esc(ROUNDING_STATEMENT)} {esc(ROUNDING_DETAIL)}</p>',
        "</header><main>",
        "<h2>Reports</h2>",
        '<ul class="links">',
        f'<li><a href="scorecard.html">Police and Crime Plan KPI scorecard</a> - {len(rows)} KPI rows in {len(layout.objectives)} objectives '
        f"(layout version {esc(layout.version)}): {len(comp)} with measures, {len(rows) - len(comp)} without.</li>",
        f'<li><a href="national.html">National Crime and Policing Measures</a> - {len(nrows)} measures, rolling 12 months to {esc(_mon_yy(m))}.</li>',
        '<li>Data: <a href="scorecard.csv">scorecard.csv</a>, <a href="national_measures.csv">national_measures.csv</a> (unrounded values and displayed text).</li>',
        "</ul>",
        '<h3>Scorecard figures by status</h3><ul class="statuses">' + (status_list or "<li>none</li>") + "</ul>",
        '<h3>Scorecard rows without figures</h3><ul class="statuses">' + (nd_list or "<li>none</li>") + "</ul>",
        '<h3>National measures by status (against the baseline)</h3><ul class="statuses">' + (nat_list or "<li>none</li>") + "</ul>",
    ]
    body.append("<h2>Data quality</h2>")
    if dq is None:
        body.append('<p class="muted">No data-quality checks were given to the report.</p>')
    elif dq.height == 0:
        body.append('<p class="muted">The audit_checks frame given holds no checks.</p>')
    else:
        months = ""
        if dq_source is not None and "month" in dq_source.columns:
            ms = [x for x in dq_source["month"].drop_nulls().unique().sort().to_list()]
            if ms:
                months = f" Months covered: {ms[0]} to {ms[-1]}." if len(ms) > 1 else f" Month: {ms[0]}."
        body.append(f'<p class="meta">Checks recorded in audit_checks, per extract: how many ran and how many failed (counts and check names only).{esc(months)}</p>')
        cols = dq.columns
        heads = {"extract": "Extract", "runs": "Runs", "checks": "Checks run", "failed": "Checks failed", "failed_errors": "Failed (errors)",
                 "failed_warnings": "Failed (warnings)", "failing_rows": "Failing rows", "failed_checks": "Failed checks"}
        numeric = {"runs", "checks", "failed", "failed_errors", "failed_warnings", "failing_rows"}
        order = [c for c in ("extract", "runs", "checks", "failed", "failed_errors", "failed_warnings", "failing_rows", "failed_checks") if c in cols]
        head = "".join(f'<th scope="col"{" class=num" if c in numeric else ""}>{esc(heads[c])}</th>' for c in order)
        trs = []
        for r in dq.select(order).to_dicts():
            tds = []
            for c in order:
                v = r[c]
                if c in numeric:
                    tds.append(f'<td class="num">{esc(f"{v:,}" if isinstance(v, int) else v)}</td>')
                elif c == "extract":
                    tds.append(f'<th scope="row">{esc(v)}</th>')
                else:
                    tds.append(f"<td>{esc(v)}</td>")
            trs.append(f"<tr>{''.join(tds)}</tr>")
        body.append(f'<div class="table-wrap"><table class="dq"><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table></div>')
    body.append("</main>")
    return _page(f"Performance report - {force_id} - {month}", "\n".join(body), nav=_nav())


# --------------------------------------------------------------------------------------------------
# Entry point


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_csv(path: Path, frame: pl.DataFrame) -> None:
    """Write a report CSV: never a classified column, text cells safe from formula injection (`csv_safe`)."""
    classified = classified_in(frame)
    if classified:  # a programming error, not a data problem: the report frames have fixed columns
        raise ReportError(f"{path.name}: refusing to write column(s) {', '.join(classified)}, classified as personal or identifying in a contract")
    _write_text(path, csv_safe(frame).write_csv())


def write_report(
    measures: pl.DataFrame,
    month: str,
    out_dir: Path,
    *,
    spc: pl.DataFrame | None = None,
    force_id: str | None = None,
    defs=None,
    data_quality: pl.DataFrame | None = None,
    layout: ScorecardLayout | str | Path | None = None,
) -> ReportPaths:
    """Write index.html, scorecard.html, national.html, scorecard.csv and national_measures.csv into ``out_dir``.

    ``measures``: the measures table (MEASURE_SCHEMA columns; extra columns are ignored).
    ``month``: the report month ``YYYY-MM``: current windows end at it (or at the latest period end
    before it, labelled with its own dates). ``spc``: optional monthly series with XmR limits and signals.
    ``force_id``: required when the table holds several forces. ``defs``: measure definitions (names,
    units, extracts; default ``load_definitions()``). ``data_quality``: an ``audit_checks`` frame.
    """
    Month.parse(month)  # a clear PeriodError for a bad month
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if defs is None:
        from etl.measures.engine import load_definitions

        defs = load_definitions()
    if not isinstance(layout, ScorecardLayout):
        layout = load_scorecard_layout(layout)
    if measures is None:
        measures = pl.DataFrame(schema={"force_id": pl.Utf8, "measure_id": pl.Utf8})
    forces = sorted(x for x in measures["force_id"].unique().to_list() if x is not None) if "force_id" in measures.columns and measures.height else []
    if force_id is None:
        if len(forces) > 1:
            raise ReportError(f"the measures table holds {len(forces)} forces ({', '.join(forces)}): pass force_id")
        force_id = forces[0] if forces else "(no force)"
    rows_all: list[dict] = []
    if measures.height and "force_id" in measures.columns:
        sel = measures.filter((pl.col("force_id") == force_id) & (pl.col("period_end") <= month))
        rows_all = sel.to_dicts()
    idx = _Index(rows_all)
    provenance = _provenance([r for r in rows_all if r.get("period_end") == month] or rows_all)

    krows = build_scorecard_rows(layout, idx, month, defs)
    nrows = build_national_rows(idx, rows_all, month, force_id, spc, defs)
    dq = data_quality_summary(data_quality) if data_quality is not None else None

    paths = ReportPaths(out_dir / "index.html", out_dir / "scorecard.html", out_dir / "national.html",
                        [out_dir / "scorecard.csv", out_dir / "national_measures.csv"])
    _write_text(paths.scorecard, _scorecard_html(layout, krows, force_id, month, provenance))
    _write_text(paths.national, _national_html(nrows, force_id, month, provenance, spc is not None))
    _write_csv(paths.csv[0], _scorecard_frame(layout, krows))
    _write_csv(paths.csv[1], _national_frame(nrows))
    _write_text(paths.index, _index_html(force_id, month, krows, nrows, layout, dq, data_quality, provenance))
    return paths
