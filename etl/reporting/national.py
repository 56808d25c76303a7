"""The national measures view model: changes when what the national page shows of a measure does.

One `NationalRow` per national measure (``nm_*`` of the definitions and of the table, ``pu_*``
public-data proxies, any other row of the national family): the rolling 12 months to the report
month against the year ending June 2019 baseline and the previous 12 months (or the measure's own
period against the same period last year), its monthly SPC series and the baseline level drawn on
its chart. `national_page` lays them out as the summary table and one section per measure.

A *public-data warehouse* (data.police.uk files only: the table holds ``pu_*`` proxies and no ``nm_*``
measure with a value) shows its proxies first and leaves out the national measures it cannot give
(their rows say only that the force's own extracts are not loaded): the page says once how many are
not shown. A force's own warehouse lists every national measure, as it always has. The page also
carries the published-statistics reconciliation (`etl.reporting.reconciliation`) when one was checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from etl.core.periods import YE_JUN19, Month
from etl.reporting.charts import TrendChart, trend_chart
from etl.reporting.figures import (
    Comparison,
    Figure,
    MeasureIndex,
    clean,
    definition,
    resolve_figure,
)
from etl.reporting.formatting import (
    PERIOD_NAMES,
    SIGNAL_WORDS,
    format_change_abs,
    format_change_pct,
    format_value,
    mon_yy,
    window_dates,
)
from etl.reporting.reconciliation import Reconciliation, reconciliation

_PERIOD_ORDER = ("r12", "cal", "fytd", "qtr", "month")
_ROW_NAMES = {"ye_jun19": "Baseline", "prev_r12": "Previous 12 months", "sply": "Same period last year", "sp_2019_20": "Same period 2019/20"}
_SERIES_KEYS = ("month", "value", "centre", "lower", "upper", "baseline_start", "baseline_end", "signal")


@dataclass
class DetailRow:
    """A row of a measure's own table. ``kind``: ``current``, ``missing`` (no row for the comparison) or ``value``."""

    kind: str
    name: str
    window: str
    value: str
    badge: str | None = None  # the status badge; None: no badge
    reason: str | None = None  # None: no reason line
    published: bool = False  # the comparison value is from published statistics
    change: str = ""
    change_pct: str = ""


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
        return self.current.comparison("ye_jun19")

    @property
    def previous(self) -> Comparison | None:
        return self.current.comparison("prev_r12", "sply")

    @property
    def signals(self) -> list[dict]:
        return [p for p in self.series if p.get("signal")]

    @property
    def status(self) -> str:
        """The measure's status against the baseline (its own status without one; not available without a figure)."""
        f, b = self.current, self.baseline
        if f.state != "ok":
            return "not_available"
        return b.status if (b is not None and b.status) else f.status

    # the summary table
    def value_cell(self, c: Comparison | None) -> str:
        if c is None:
            return "-"
        text = format_value(c.value, self.unit) if c.status is not None else "not available"
        if c.token not in ("ye_jun19", "prev_r12"):
            text += f" [{c.label}]"
        return text

    def change_cell(self, c: Comparison | None) -> str:
        if c is None or not c.shows_change:
            return "-"
        return format_change_pct(c.change_pct) if self.unit != "pct" and c.change_pct is not None else format_change_abs(c.change_abs, self.unit)

    def _reason(self, text: str | None) -> str | None:
        """A proxy's reason without the proxy text the section already shows, each part once."""
        if not text or not self.measure_id.startswith("pu_"):
            return text
        lead = f"proxy for {self.proxy_for}: {self.proxy_note}" if self.proxy_note else None
        if lead and text.startswith(lead):
            text = text[len(lead) :].lstrip(" ;")
        parts = [p for p in text.split("; ") if p]
        return "; ".join(dict.fromkeys(parts))

    # the measure's section
    def detail_rows(self) -> list[DetailRow]:
        f = self.current
        cur_reason = self._reason(f.reason) if (f.state != "ok" or f.value is None or f.reason) else None
        cur_badge = "not_available" if f.state != "ok" else ("incomplete" if f.value is None else None)
        rows = [DetailRow("current", "Current", f.period_label or "rolling 12 months", f.value_text, cur_badge, cur_reason or None)]
        for c in f.comparisons if f.state == "ok" else []:
            name = _ROW_NAMES.get(c.token, c.token)
            window = window_dates(c.start, c.end)
            label = c.label + (f" ({window})" if window and c.label != window else "")
            if c.status is None:
                rows.append(DetailRow("missing", name, label, "not available", "not_available", self._reason(c.note) or ""))
                continue
            row = DetailRow("value", name, label, format_value(c.value, self.unit), c.status, published=c.source == "published_statistics")
            if c.shows_change:
                row.change = format_change_abs(c.change_abs, self.unit)
                row.change_pct = "" if self.unit == "pct" else format_change_pct(c.change_pct)
            elif c.status in ("incomplete", "not_comparable"):
                row.reason = f"No change given: {self._reason(c.note) or 'no reason recorded'}"
            rows.append(row)
        return rows

    def signal_lines(self) -> list[str]:
        """The signalled months, consecutive months with the same signal once: 'Jan 21 to Jul 21 (7 months): in a run ...'."""
        groups: list[list[dict]] = []
        for p in self.signals:
            prev = groups[-1][-1] if groups else None
            if prev is not None and prev["signal"] == p["signal"] and Month.parse(prev["month"]).index + 1 == Month.parse(p["month"]).index:
                groups[-1].append(p)
            else:
                groups.append([p])
        lines = []
        for g in groups:
            first, last = Month.parse(g[0]["month"]), Month.parse(g[-1]["month"])
            when = mon_yy(first) if len(g) == 1 else f"{mon_yy(first)} to {mon_yy(last)} ({len(g)} months)"
            lines.append(f"{when}: {SIGNAL_WORDS.get(g[0]['signal'], g[0]['signal'])}")
        return lines


def _is_national(measure_id: str, family: str | None) -> bool:
    return family == "national_measure" or measure_id.startswith(("nm_", "pu_"))


def _spc_series(spc: pl.DataFrame | None, force_id: str, measure_id: str, month: str) -> list[dict]:
    if spc is None or spc.height == 0 or "measure_id" not in spc.columns or "month" not in spc.columns:
        return []
    f = spc.filter(pl.col("measure_id") == measure_id)
    if "force_id" in spc.columns:
        f = f.filter(pl.col("force_id") == force_id)
    f = f.filter(pl.col("month") <= month).sort("month")
    return [{k: clean(r.get(k)) for k in _SERIES_KEYS} for r in f.to_dicts()]


def _baseline_level(series: list[dict], base: Comparison | None, unit: str | None) -> tuple[float | None, str]:
    months = {str(m) for m in YE_JUN19.months}
    vals = [p["value"] for p in series if p.get("month") in months and p.get("value") is not None]
    if len(vals) == len(months):
        return sum(vals) / len(vals), "monthly mean of the series over the year ending June 2019"
    if unit == "count" and base is not None and base.value is not None and base.status is not None:
        src = "published statistics" if base.source == "published_statistics" else "the force's records"
        return base.value / 12.0, f"year ending June 2019 baseline / 12 (from {src}; the series does not hold all 12 baseline months)"
    return None, "no baseline level: the series does not hold all 12 months of the year ending June 2019"


def _national_period(idx: MeasureIndex, measure_id: str, m) -> tuple[str, tuple[str, ...]]:
    """The rolling 12 months against the baseline and the previous 12 months where the measure has them;
    otherwise the measure's own period (e.g. a calendar year or quarter against the same period last year)."""
    defined = dict(getattr(m, "periods", None) or {})
    have = idx.periods.get(measure_id, set())
    if "r12" in have or not have and ("r12" in defined or not defined):
        return "r12", ("ye_jun19", "prev_r12")
    candidates = [p for p in defined if p in have] + [p for p in _PERIOD_ORDER if p in have]
    period = candidates[0] if candidates else next(iter(defined), "r12")
    comps = tuple(c for c in defined.get(period, ()) if c != "target")
    if not comps:
        comps = tuple(sorted(c for c in idx.comparisons(measure_id, period) if c and c != "target"))
    return period, comps or ("sply",)


class NationalRows(list[NationalRow]):
    """The rows of the page (a list), with what the page says of the rows left out.

    ``public``: a public-data warehouse (its proxies come first); ``not_shown``: the names of the national
    measures it cannot give, left out of the page and the CSV."""

    def __init__(self, rows: Iterable[NationalRow] = (), *, public: bool = False, not_shown: Iterable[str] = ()):
        super().__init__(rows)
        self.public = public
        self.not_shown = list(not_shown)


def is_public_data(measures_rows: list[dict]) -> bool:
    """A public-data warehouse: ``pu_*`` proxies and no ``nm_*`` row with a value (data.police.uk files only)."""
    ids = {r.get("measure_id") or "" for r in measures_rows}
    if not any(mid.startswith("pu_") for mid in ids):
        return False
    return not any((r.get("measure_id") or "").startswith("nm_") and clean(r.get("value")) is not None for r in measures_rows)


def build_national_rows(idx: MeasureIndex, measures_rows: list[dict], month: str, force_id: str, spc: pl.DataFrame | None, defs) -> NationalRows:
    """The national measures in page order: the definitions' ``nm_*``, then the table's other ``nm_*``,
    ``pu_*`` and national-family measures, each sorted by id. In a public-data warehouse (`is_public_data`)
    the ``pu_*`` proxies come first and the measures without a value in the table are left out (named
    in ``not_shown``)."""
    ids: list[str] = []
    if defs is not None:
        ids += [m.id for m in defs.measures if m.family == "national_measure" and m.id.startswith("nm_")]
    families = {r.get("measure_id"): r.get("family") for r in measures_rows}
    ids += sorted(mid for mid, fam in families.items() if mid and _is_national(mid, fam) and mid.startswith("nm_") and mid not in ids)
    ids += sorted(mid for mid, fam in families.items() if mid and mid.startswith("pu_") and mid not in ids)
    ids += sorted(mid for mid, fam in families.items() if mid and fam == "national_measure" and mid not in ids)
    public = is_public_data(measures_rows)
    not_shown: list[str] = []
    if public:
        valued = {r.get("measure_id") for r in measures_rows if clean(r.get("value")) is not None}
        not_shown = [mid for mid in ids if not mid.startswith("pu_") and mid not in valued]
        ids = [mid for mid in ids if mid.startswith("pu_")] + [mid for mid in ids if not mid.startswith("pu_") and mid in valued]
        not_shown = [getattr(definition(defs, mid), "name", None) or mid for mid in not_shown]
    out = NationalRows(public=public, not_shown=not_shown)
    for mid in ids:
        m = definition(defs, mid)
        extracts = (m.extract,) if m is not None else ()
        period, comps = _national_period(idx, mid, m)
        fig = resolve_figure(idx, month, mid, getattr(m, "name", mid), extracts, period, comps, defs)
        if fig.state == "ok" and fig.period_end != month:
            note = f"the latest {PERIOD_NAMES.get(period, period)} figure ends {mon_yy(Month.parse(fig.period_end))}"  # type: ignore[arg-type]
            fig.reason = (fig.reason + "; " if fig.reason else "") + note
        proxy_for = getattr(m, "proxy_for", None)
        proxy_note = getattr(m, "note", None)
        note = fig.note or ""
        if not proxy_for and note.startswith("proxy for "):  # the engine's note: "proxy for <id>: <how it differs>; ..."
            head, _, rest = note[len("proxy for ") :].partition(":")
            proxy_for, proxy_note = head.strip() or None, proxy_note or rest.split(";")[0].strip() or None
        if mid.startswith("pu_") and not proxy_for:
            proxy_for = "a national measure"
        series = _spc_series(spc, force_id, mid, month)
        level, level_note = _baseline_level(series, fig.comparison("ye_jun19"), fig.unit)
        out.append(NationalRow(mid, getattr(m, "name", None) or mid, fig.unit, proxy_for, proxy_note, fig, series, level, level_note))
    return out


# --------------------------------------------------------------------------------------------------
# The page


@dataclass
class NationalSection:
    row: NationalRow
    chart: TrendChart | None  # None: no monthly series
    chart_title: str = ""


@dataclass
class NationalPage:
    force_id: str
    month: str
    month_label: str
    provenance: str
    spc_given: bool
    sections: list[NationalSection]
    public: bool = False  # a public-data warehouse: proxies of the national measures
    not_shown: list[str] = field(default_factory=list)  # national measures it cannot give (names)
    reconciliation: Reconciliation | None = None  # None: no published statistics were checked


def national_page(rows: list[NationalRow], force_id: str, month: str, provenance: str, spc_given: bool, checks: pl.DataFrame | None = None) -> NationalPage:
    """The summary table and one section per measure, with its chart when it has a monthly series.

    ``checks``: an ``audit_checks`` frame; its ``published.reconciliation`` rows give the reconciliation table."""
    sections = []
    for n, nr in enumerate(rows):
        if not nr.series:
            sections.append(NationalSection(nr, None))
            continue
        title = f"{nr.name}: monthly values, {mon_yy(Month.parse(nr.series[0]['month']))} to {mon_yy(Month.parse(nr.series[-1]['month']))}"
        chart = trend_chart(nr.series, uid=f"chart-{n + 1}", title=title, unit=nr.unit, baseline_level=nr.baseline_level, baseline_note=nr.baseline_level_note)
        sections.append(NationalSection(nr, chart, title))
    return NationalPage(
        force_id,
        month,
        mon_yy(Month.parse(month)),
        provenance,
        spc_given,
        sections,
        public=bool(getattr(rows, "public", False)),
        not_shown=list(getattr(rows, "not_shown", [])),
        reconciliation=reconciliation(checks, force_id, month),
    )


__all__ = ["DetailRow", "NationalPage", "NationalRow", "NationalRows", "NationalSection", "build_national_rows", "is_public_data", "national_page"]
