"""The scorecard view model: changes when what a scorecard row shows (its cells and their text) does.

`build_scorecard_rows` resolves the figures of every KPI of the layout; a `KpiRow` then gives each
cell as a small structure (`CurrentCell`, `ComparisonLine`, statuses) that both the template
(``templates/scorecard.html``) and the CSV text (`current_text`, `historical_text`, ...) are made
from, so the page and scorecard.csv cannot drift apart. Plain text throughout: no markup here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from etl.core.periods import Month
from etl.reporting.figures import Comparison, Figure, MeasureIndex, resolve_figure
from etl.reporting.formatting import (
    STATUS_WORDS,
    format_change_abs,
    format_change_pct,
    format_value,
    humanise_tokens,
    mon_yy,
)
from etl.reporting.layout import KpiSpec, ScorecardLayout

LEGEND_STATUSES = ("met", "not_met", "monitor", "not_comparable", "incomplete", "not_available")


@dataclass(frozen=True)
class CurrentLine:
    """One figure in the Current cell: its value, or 'not available' and why."""

    prefix: str  # the figure's label and a space when the row has several figures
    value: str | None  # the displayed value; None: not available
    reason: str | None  # why not available
    label: str | None  # the figure's own period label, when the row's figures do not share one

    @property
    def text(self) -> str:
        if self.value is None:
            return f"{self.prefix}not available ({self.reason})"
        return f"{self.prefix}{self.value}" + (f" [{self.label}]" if self.label is not None else "")


@dataclass(frozen=True)
class CurrentCell:
    lines: tuple[CurrentLine, ...]
    label: str | None  # the period label all the figures share, shown once after them

    @property
    def text(self) -> str:
        return "; ".join(line.text for line in self.lines) + (f" [{self.label}]" if self.label is not None else "")


@dataclass(frozen=True)
class ComparisonEntry:
    """One figure's value for one comparison.

    ``kind``: ``missing`` (no row for the comparison), ``change`` (a change is shown), ``no_change``
    (incomplete or not comparable: the value, the status and why no change), ``plain`` (the value only).
    """

    kind: str
    prefix: str
    value: str
    label: str | None  # the comparison's label, when the entries of its line do not share one
    status: str | None = None
    note: str | None = None
    change: str = ""
    change_pct: str = ""
    why: str = ""  # the page's sentence for no_change

    @property
    def text(self) -> str:
        """As in the CSV (no per-entry label)."""
        pre = self.prefix
        if self.kind == "missing":
            return f"{pre}not available ({self.note})"
        if self.kind == "change":
            return f"{pre}{self.value} (change {self.change}{', ' + self.change_pct if self.change_pct else ''})"
        if self.kind == "no_change":
            return f"{pre}{self.value} ({STATUS_WORDS[self.status or '']}, no change given: {self.note or 'no reason recorded'})"
        return f"{pre}{self.value}"


@dataclass(frozen=True)
class ComparisonLine:
    """One comparison token of a row: an entry per figure that has it."""

    token: str
    entries: tuple[ComparisonEntry, ...]
    label: str | None  # the label all entries share, shown once after them

    @property
    def text(self) -> str:
        return "; ".join(e.text for e in self.entries) + (f" [{self.label}]" if self.label is not None else "")


def comparison_entry(f: Figure, c: Comparison, *, multi: bool = False, label: str | None = None) -> ComparisonEntry:
    """The entry of figure ``f`` for comparison ``c`` (``multi``: prefix the figure's label)."""
    pre = f"{f.label} " if multi else ""
    if c.status is None:
        return ComparisonEntry("missing", pre, "", label, note=c.note)
    value = format_value(c.value, f.unit)
    if c.shows_change:
        pct = "" if f.unit == "pct" else format_change_pct(c.change_pct)
        return ComparisonEntry("change", pre, value, label, c.status, c.note, format_change_abs(c.change_abs, f.unit), pct)
    if c.status in ("incomplete", "not_comparable"):
        if f.value is None and c.note and c.note == f.reason:
            why = "No change given (see Current)."
        else:
            why = f"No change given: {c.note or 'no reason recorded'}"
        return ComparisonEntry("no_change", pre, value, label, c.status, c.note, why=why)
    return ComparisonEntry("plain", pre, value, label, c.status, c.note)


@dataclass
class KpiRow:
    objective: str
    sub_objective: str | None
    spec: KpiSpec
    figures: list[Figure]

    @property
    def multi(self) -> bool:
        return len(self.figures) > 1

    @property
    def computed(self) -> bool:
        return self.spec.availability == "computed"

    @property
    def ids(self) -> str:
        return " ".join(f.measure for f in self.spec.figures)

    @cached_property
    def current(self) -> CurrentCell:
        labels = {f.period_label for f in self.figures if f.state == "ok"}
        shared = len(labels) == 1 and all(f.state == "ok" for f in self.figures)
        reasons = {f.reason for f in self.figures}
        if all(f.state != "ok" for f in self.figures) and len(reasons) == 1:
            return CurrentCell((CurrentLine("", None, reasons.pop(), None),), None)
        lines = []
        for f in self.figures:
            pre = f"{f.label} " if self.multi else ""
            if f.state != "ok" or f.value is None:
                lines.append(CurrentLine(pre, None, f.reason, None))
            else:
                lines.append(CurrentLine(pre, f.value_text, None, None if shared else f.period_label))
        return CurrentCell(tuple(lines), labels.pop() if shared else None)

    @cached_property
    def historical(self) -> list[ComparisonLine]:
        out = []
        for token in self.spec.comparisons:
            pairs = [(f, c) for f in self.figures if (c := f.comparison(token)) is not None]
            if not pairs:
                continue
            labels = {c.label for _, c in pairs}
            shared = labels.pop() if len(labels) == 1 else None
            entries = tuple(comparison_entry(f, c, multi=self.multi, label=None if shared is not None else c.label) for f, c in pairs)
            out.append(ComparisonLine(token, entries, shared))
        return out

    def current_text(self) -> str:
        if not self.computed:
            return self.spec.reason or ""
        return self.current.text

    def historical_text(self) -> str:
        return " | ".join(line.text for line in self.historical)

    def target_text(self) -> str:
        targets = [(f.label, f.target) for f in self.figures if f.target]
        if len(targets) < len(self.figures) and self.spec.target:
            return self.spec.target  # the Plan's rule, unless every figure carries its own
        if not targets:
            directions = sorted({f.direction for f in self.figures if f.direction})
            return "; ".join(directions)
        if len(self.figures) == 1 or len({t for _, t in targets}) == 1:
            return targets[0][1]
        return "; ".join(f"{label} {t}" for label, t in targets)

    def statuses(self) -> list[tuple[str | None, str]]:
        """(figure label or None, status) per badge: one badge when the figures agree."""
        if not self.computed:
            return [(None, self.spec.availability or "")]
        sts = [f.status for f in self.figures]
        if len(set(sts)) == 1:
            return [(None, sts[0])]
        return [(f.label, f.status) for f in self.figures]

    def status_text(self) -> str:
        return "; ".join(f"{p}: {STATUS_WORDS.get(s, s)}" if p else STATUS_WORDS.get(s, s) for p, s in self.statuses())


def build_scorecard_rows(layout: ScorecardLayout, idx: MeasureIndex, month: str, defs) -> list[KpiRow]:
    """A row per KPI of the layout, in layout order, with its figures resolved."""
    rows = []
    for o in layout.objectives:
        for s in o.sub_objectives:
            for k in s.kpis:
                figs = [resolve_figure(idx, month, f.measure, f.label, f.extracts, k.current, k.comparisons, defs) for f in k.figures]
                rows.append(KpiRow(o.title, s.title, k, figs))
    return rows


# --------------------------------------------------------------------------------------------------
# The page


@dataclass
class RowGroup:
    """The rows of one sub-objective (its title spans them)."""

    title: str | None
    rows: list[KpiRow]


@dataclass
class ObjectiveTable:
    anchor: str
    title: str
    groups: list[RowGroup]


# --------------------------------------------------------------------------------------------------
# Restated figures (issue 12): a figure a later run moved since the state the caller names


@dataclass(frozen=True)
class Restatement:
    """One restated value of a figure: what it was at the earlier state, what it is now, and the run that changed it."""

    measure_id: str
    period: str | None
    comparison: str | None
    old_value: float | None
    new_value: float | None
    run: str | None
    at: str | None

    def text(self, unit: str | None) -> str:
        """'was 12, now 14 (run load-..., 2024-01-02 10:00 UTC)'; the comparison's value is named."""
        what = "" if not self.comparison else f"{humanise_tokens(self.comparison)} value "
        old = "not available" if self.old_value is None else format_value(self.old_value, unit)
        new = "not available" if self.new_value is None else format_value(self.new_value, unit)
        by = ", ".join(x for x in (f"run {self.run}" if self.run else "", self.at or "") if x)
        return f"{what}was {old}, now {new}" + (f" ({by})" if by else "")


@dataclass
class RestatedNote:
    """A footnote of the page: the KPI's figure and its restatements."""

    number: int
    kpi: str
    figure: str  # the figure's measure id and period label
    lines: list[str]

    @property
    def text(self) -> str:
        return f"[{self.number}] {self.kpi} ({self.figure}): " + "; ".join(self.lines)


@dataclass
class Restated:
    """The figures restated since ``since`` (the text the caller gives: the earlier run or time compared with)."""

    since: str
    by_figure: dict[tuple[str, str | None], list[Restatement]] = field(default_factory=dict)

    def of(self, f: Figure) -> list[Restatement]:
        if f.state != "ok":
            return []
        return self.by_figure.get((f.measure_id, f.period), []) or self.by_figure.get((f.measure_id, None), [])


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def restated_marks(frame: Any, since: str | None, period_end: str | None = None) -> Restated | None:
    """`Restated` from a frame with measure_id, period, comparison, old_value, new_value, changed_by_run,
    changed_at (e.g. `etl.trail.changes.restated`); None when no frame is given. Rows of another window
    end (a ``period_end`` column) than ``period_end`` are left out; a value restated on several
    comparison rows alike is listed once."""
    if frame is None:
        return None
    out = Restated(since or "the last report")
    cols = set(frame.columns)
    seen: set[tuple] = set()
    for r in frame.to_dicts():  # a few rows: the figures a re-run moved
        if period_end is not None and "period_end" in cols and r.get("period_end") not in (None, period_end):
            continue
        at = r.get("changed_at")
        item = Restatement(
            str(r.get("measure_id")),
            r.get("period"),
            r.get("comparison") or None,
            _clean(r.get("old_value")),
            _clean(r.get("new_value")),
            r.get("changed_by_run"),
            f"{at:%Y-%m-%d %H:%M} UTC" if hasattr(at, "strftime") else (str(at) if at else None),
        )
        key = (item.measure_id, item.period, item.old_value, item.new_value)
        if key in seen:
            continue
        seen.add(key)
        out.by_figure.setdefault((item.measure_id, item.period), []).append(item)
    for items in out.by_figure.values():  # the figure's own value first, then its comparisons
        items.sort(key=lambda x: (x.comparison is not None, x.comparison or ""))
    return out


@dataclass
class ScorecardPage:
    force_id: str
    month: str
    month_label: str
    layout_version: str
    layout_source: str
    provenance: str
    tables: list[ObjectiveTable]
    rows: list[KpiRow]
    legend_statuses: tuple[str, ...] = LEGEND_STATUSES
    restated: Restated | None = None
    notes: list[RestatedNote] = field(default_factory=list)  # the restated figures' footnotes, in page order
    note_of: dict[tuple[str, int], RestatedNote] = field(default_factory=dict)  # (KPI id, figure index) -> its footnote
    public: bool = False  # a public-data warehouse (data.police.uk files only: `etl.reporting.national.is_public_data`)

    @property
    def n_computed(self) -> int:
        return sum(1 for r in self.rows if r.computed)

    @staticmethod
    def has_values(row: KpiRow) -> bool:
        """Whether any figure of the row has a value in the measures table."""
        return any(f.state == "ok" and f.value is not None for f in row.figures)

    @property
    def shown_tables(self) -> list[ObjectiveTable]:
        """The tables the page shows: every KPI of the layout; in a public-data warehouse only the KPIs
        with a value (the others are named in one list, `not_shown`), since none of the force's own
        extracts is there and a page of rows saying "not available" helps nobody."""
        if not self.public:
            return self.tables
        kept = []
        for t in self.tables:
            groups = [RowGroup(g.title, [r for r in g.rows if self.has_values(r)]) for g in t.groups]
            groups = [g for g in groups if g.rows]
            if groups:
                kept.append(ObjectiveTable(t.anchor, t.title, groups))
        return kept

    @property
    def not_shown(self) -> list[tuple[str, list[str]]]:
        """In a public-data warehouse: per objective, the KPIs left out (no value from public data)."""
        if not self.public:
            return []
        out = []
        for t in self.tables:
            names = [r.spec.kpi for g in t.groups for r in g.rows if not self.has_values(r)]
            if names:
                out.append((t.title, names))
        return out

    def line_notes(self, row: KpiRow) -> list[RestatedNote | None]:
        """The footnote of each line of the row's Current cell (a line per figure), None where nothing was restated."""
        if len(row.current.lines) != len(row.figures):
            return [None] * len(row.current.lines)
        return [self.note_of.get((row.spec.id, i)) for i in range(len(row.figures))]


def scorecard_page(
    layout: ScorecardLayout,
    rows: list[KpiRow],
    force_id: str,
    month: str,
    provenance: str,
    restated: Restated | None = None,
    *,
    public: bool = False,
) -> ScorecardPage:
    """The page: one table per objective of the layout, rows grouped by sub-objective. ``restated``: the
    figures a later run moved since the earlier state it names, marked on the page with a footnote each.
    ``public``: a public-data warehouse (see `ScorecardPage.shown_tables`)."""
    by_id = {r.spec.id: r for r in rows}
    tables = [
        ObjectiveTable(f"obj-{n + 1}", o.title, [RowGroup(s.title, [by_id[k.id] for k in s.kpis if k.id in by_id]) for s in o.sub_objectives])
        for n, o in enumerate(layout.objectives)
    ]
    page = ScorecardPage(force_id, month, mon_yy(Month.parse(month)), layout.version, layout.source, provenance, tables, rows, restated=restated, public=public)
    if restated is not None:
        for table in tables:
            for group in table.groups:
                for row in group.rows:
                    for k, f in enumerate(row.figures):
                        items = restated.of(f)
                        if not items:
                            continue
                        figure = f"{f.measure_id}, {f.period_label}" if f.period_label else f.measure_id
                        note = RestatedNote(len(page.notes) + 1, row.spec.kpi, figure, [i.text(f.unit) for i in items])
                        page.notes.append(note)
                        page.note_of[(row.spec.id, k)] = note
    return page


__all__ = [
    "ComparisonEntry",
    "ComparisonLine",
    "CurrentCell",
    "CurrentLine",
    "KpiRow",
    "ObjectiveTable",
    "Restated",
    "RestatedNote",
    "Restatement",
    "RowGroup",
    "ScorecardPage",
    "build_scorecard_rows",
    "comparison_entry",
    "restated_marks",
    "scorecard_page",
]
