"""What the command line prints of measures and warnings: changes when the terminal's display of them does.

`measure_cells` turns rows of the measures table into the text of ``etl measures --format table``
(names, units, values rounded as on the report pages by `etl.reporting.formatting`, changes of
percentages in points, readable periods, comparisons and targets, and a note saying why a row is
incomplete or not comparable); `measure_tables` lays them out as rich tables, one per force and
family. `WarningTally` counts a run's warnings and shows only the first few. Display only: stored
values, JSON and CSV output are unrounded and unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl
from rich.markup import escape
from rich.table import Table

from etl.reporting.formatting import (
    comparison_label,
    format_change_abs,
    format_change_pct,
    format_value,
    humanise_tokens,
    period_label,
    status_words,
    window_dates,
)

log = logging.getLogger(__name__)

FAMILY_TITLES = {
    "national_measure": "National crime and policing measures",
    "plan_kpi": "Plan KPIs",
    "plan_milestone_2014_15": "Plan milestones 2014/15",
}
DIRECTION_WORDS = {
    "reduce": "none (lower is better)",
    "decrease": "none (lower is better)",
    "increase": "none (higher is better)",
    "monitor": "none",
}
STATUS_STYLES = {"incomplete": "yellow", "not_comparable": "magenta", "not_met": "red", "met": "green"}
_WINDOW = re.compile(r"\b(\d{4}-\d{2})\.\.(\d{4}-\d{2})\b")
_TABLE_COLUMNS = ("measure", "period", "value", "compared with", "comparison", "change", "change %", "status", "target", "note")
_RIGHT = {"value", "comparison", "change", "change %"}
_WRAPPED = {"measure": 3, "compared with": 2, "target": 2, "note": 4}  # their share of the width left


@dataclass(frozen=True)
class MeasureText:
    """What the table shows of a measure besides its figures: its name and the parts of its notes that
    are the same on every row (a proxy's lead note, the basis), left out of the note column."""

    name: str
    fixed_notes: tuple[str, ...] = ()


def measure_texts(defs) -> dict[str, MeasureText]:
    """measure id -> its name and fixed notes, from the measure definitions (`etl.measures.definitions`)."""
    texts = {}
    for m in defs.measures:
        fixed = []
        if getattr(m, "proxy_for", None):
            fixed.append(f"proxy for {m.proxy_for}: {m.note}")
        if getattr(m, "basis", None):
            fixed.append(f"basis: {m.basis}")
        texts[m.id] = MeasureText(m.name or m.id, tuple(fixed))
    return texts


def target_text(target: str | None) -> str:
    """A row's target as words: 'decrease vs ye_jun19' -> 'decrease vs year ending June 2019';
    'direction: reduce' -> 'none (lower is better)'."""
    text = " ".join(str(target or "").split())
    if not text or text.lower() in ("none", "null"):
        return "none"
    if text.lower().startswith("direction:"):
        direction = text.split(":", 1)[1].strip()
        return DIRECTION_WORDS.get(direction, f"none ({direction.replace('_', ' ')})" if direction else "none")
    return humanise_tokens(text)


def _readable_windows(text: str) -> str:
    """'2018-01..2018-12' -> 'Jan-Dec 18' (a window's months as the pages write them)."""
    return _WINDOW.sub(lambda m: window_dates(m.group(1), m.group(2)) or f"{m.group(1)} to {m.group(2)}", text)


def note_text(status: str | None, note: str | None, fixed_notes: Iterable[str] = ()) -> str:
    """The note column: why a row is incomplete or not comparable (or what else its note says beyond the
    measure's basis), with windows in words. An incomplete or not comparable row always says why."""
    text = (note or "").strip()
    for fixed in fixed_notes:  # the engine writes them first, in this order, joined by '; '
        if text == fixed:
            text = ""
        elif text.startswith(fixed + "; "):
            text = text[len(fixed) + 2 :]
    text = _readable_windows(humanise_tokens(text)).strip()
    if not text and status in ("incomplete", "not_comparable"):
        return "no reason recorded"
    return text


def _cell(value: str, empty: str = "-") -> str:
    return value if value else empty


def measure_cells(row: Mapping, texts: Mapping[str, MeasureText] | None = None) -> dict[str, str]:
    """One row of the measures table as the text of its table row (display rounding only)."""
    mid = str(row["measure_id"])
    info = (texts or {}).get(mid) or MeasureText(mid)
    unit, status, comparison = row.get("unit"), row.get("status"), row.get("comparison")
    start, end = row.get("period_start") or row.get("period_end"), row.get("period_end")
    period = period_label(str(row.get("period")), str(start), str(end)) if end else str(row.get("period") or "-")
    if comparison == "target":
        compared = "Target"
    else:
        label = comparison_label(str(comparison), str(row.get("period")), str(start), str(end), row.get("comparison_start"), row.get("comparison_end"))
        window = window_dates(row.get("comparison_start"), row.get("comparison_end"))
        compared = label + (f" ({window})" if window and window != label and "(" not in label else "")
        if row.get("comparison_source") == "published_statistics":
            compared += ", published"
    value, cvalue = row.get("value"), row.get("comparison_value")
    change_abs, change_pct = row.get("change_abs"), row.get("change_pct")
    return {
        "measure": info.name,
        "id": mid,
        "period": period,
        "value": format_value(value, unit) if value is not None else "-",
        "compared with": compared,
        "comparison": format_value(cvalue, unit) if cvalue is not None else "-",
        "change": _cell(format_change_abs(change_abs, unit)),
        # a change of a percentage is in points only (as on the national page); a percent change of it is ambiguous
        "change %": "" if unit == "pct" else _cell(format_change_pct(change_pct)),
        "status": status_words(str(status or "")),
        "target": target_text(row.get("target")),
        "note": note_text(status, row.get("note"), info.fixed_notes),
    }


def measure_tables(rows: pl.DataFrame, texts: Mapping[str, MeasureText] | None = None, *, ids: bool = False, title: str | None = None) -> list[Table]:
    """Rich tables of measures rows, one per force and family (``title``: the first table's title, else
    the family's name). ``ids``: each measure's id under its name."""
    columns = list(_TABLE_COLUMNS)
    forces = rows["force_id"].unique(maintain_order=True).to_list() if "force_id" in rows.columns else [None]
    tables: list[Table] = []
    for (force, family), part in rows.group_by(["force_id", "family"], maintain_order=True):
        heading = title if (title and not tables) else FAMILY_TITLES.get(str(family), str(family).replace("_", " "))
        if len(forces) > 1 and not title:
            heading = f"{heading}, {force}"
        t = Table(title=escape(heading), title_justify="left")
        for col in columns:
            if col in _WRAPPED:  # long words wrap; figures, periods and statuses stay on one line
                t.add_column(col, overflow="fold", ratio=_WRAPPED[col])
            else:
                t.add_column(col, justify="right" if col in _RIGHT else "left", no_wrap=True)
        records = part.to_dicts()
        for n, r in enumerate(records):
            cells = measure_cells(r, texts)
            first = n == 0 or records[n - 1]["measure_id"] != r["measure_id"]
            last = n == len(records) - 1 or records[n + 1]["measure_id"] != r["measure_id"]
            if not first:  # a measure's name and target once, on its first row
                cells.update({"measure": "", "target": ""})
            elif ids:
                cells["measure"] += f"\n{cells['id']}"
            t.add_row(*(escape(cells[c]) for c in columns), style=STATUS_STYLES.get(str(r.get("status")), ""), end_section=last)
        tables.append(t)
    return tables


@dataclass
class WarningTally:
    """A run's warnings: counted, the first ``show`` of them shown (0: none), the rest summarised."""

    show: int = 10
    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, text: str) -> str | None:
        """Count a warning; returns it when it is one of those to show."""
        self.count += 1
        if len(self.shown) < self.show:
            self.shown.append(text)
            return text
        return None

    def summary(self, where: str) -> str | None:
        """'12 warnings; the first 10 are shown above, all are in WHERE' (None: no warnings)."""
        if self.count == 0:
            return None
        noun = "warning" if self.count == 1 else "warnings"
        if not self.shown:
            return f"{self.count:,} {noun} (not errors: checks to look at); read them in {where}"
        if len(self.shown) == self.count:
            return f"{self.count:,} {noun}, shown above; they are also in {where}"
        rest = self.count - len(self.shown)
        return f"{rest:,} more {'warning' if rest == 1 else 'warnings'} not shown ({self.count:,} in all); read them in {where}"


__all__ = [
    "FAMILY_TITLES",
    "MeasureText",
    "WarningTally",
    "measure_cells",
    "measure_tables",
    "measure_texts",
    "note_text",
    "target_text",
]
