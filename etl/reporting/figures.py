"""Figure resolution: changes when the way a report reads the measures table does.

A *figure* is one measure's value for one period window, with its comparisons, status and reason:
the row of the latest window of the period at or before the report month, or, when the measure is
absent from the table or has no such window, the reason it is not available (the extract it needs,
the periods it has). Both the scorecard and the national page are built from figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from etl.core.periods import Month
from etl.reporting.formatting import (
    PERIOD_NAMES,
    comparison_label,
    format_value,
    humanise_tokens,
    mon_yy,
    period_label,
)


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

    def comparison(self, *tokens: str) -> Comparison | None:
        """The first comparison of this figure whose token is one of ``tokens``."""
        return next((c for c in self.comparisons if c.token in tokens), None)


class MeasureIndex:
    """The measures rows of one force up to the report month, looked up by measure, period, end, comparison."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.by_window: dict[tuple, dict[Any, dict]] = {}
        self.ends: dict[tuple[Any, Any], list[Any]] = {}
        self.periods: dict[Any, set[Any]] = {}
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


def clean(v: Any) -> Any:
    """NaN as None (a missing value, never a number to print)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def definition(defs, measure_id: str):
    """The measure's definition, or None when there are no definitions or none for it."""
    if defs is None:
        return None
    try:
        return defs.get(measure_id)
    except KeyError:
        return None


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


def resolve_figure(
    idx: MeasureIndex, month: str, spec_measure: str, label: str, extracts: tuple[str, ...], period: str, comparisons: tuple[str, ...], defs
) -> Figure:
    """The figure of ``spec_measure`` for ``period``: its latest window at or before ``month`` with the
    ``comparisons`` asked for, or the reason it is not available."""
    measure = definition(defs, spec_measure)
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
        fig.reason = f"not available: no {PERIOD_NAMES.get(period, period)} figure up to {mon_yy(Month.parse(month))} (computed periods: {have or 'none'})"
        return fig
    rows = idx.rows(spec_measure, period, end)
    primary = next((rows[c] for c in comparisons if c in rows), None) or rows.get("target") or next(iter(rows.values()))
    fig.unit = primary.get("unit") or fig.unit
    fig.period, fig.period_start, fig.period_end = period, primary.get("period_start"), end
    fig.period_label = period_label(period, fig.period_start or end, end)
    fig.value = clean(primary.get("value"))
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
        fig.reason = primary.get("note") or "no value for the current window"
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
                clean(r.get("comparison_value")),
                clean(r.get("change_abs")),
                clean(r.get("change_pct")),
                r.get("status"),
                r.get("note"),
                r.get("comparison_source"),
            )
        )
    return fig


def provenance(rows: list[dict]) -> str:
    """The runs and definition versions the figures come from: 'run r1; definitions measures 1.0.0'."""
    runs = sorted({str(r["run_id"]) for r in rows if r.get("run_id")})
    versions = sorted({str(r.get("definition_version")).split(";")[0] for r in rows if r.get("definition_version")})
    parts = []
    if runs:
        parts.append(f"run{'s' if len(runs) > 1 else ''} {', '.join(runs[:6])}{' and others' if len(runs) > 6 else ''}")
    if versions:
        parts.append(f"definitions {'; '.join(versions[:6])}")
    return "; ".join(parts)


__all__ = ["Comparison", "Figure", "MeasureIndex", "clean", "definition", "provenance", "resolve_figure"]
