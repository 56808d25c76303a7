"""The report CSVs' columns: changes when what scorecard.csv or national_measures.csv holds does.

Both hold the unrounded values beside the text displayed on the pages (made by the same view
models, so they cannot differ), one row per figure of a scorecard row and one per national measure.
They are written through `etl.reporting.exports.write_csv` (formula injection neutralised, no
classified column).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from etl.reporting.figures import Figure
from etl.reporting.formatting import format_change_abs, format_change_pct, format_value
from etl.reporting.layout import ScorecardLayout
from etl.reporting.national import NationalRow
from etl.reporting.scorecard import KpiRow, Restated, comparison_entry

_SCORECARD_TEXT = (
    "objective",
    "sub_objective",
    "kpi_id",
    "kpi",
    "kpi_ref",
    "availability",
    "current_text",
    "historical_text",
    "target_text",
    "status_text",
    "figure_label",
    "measure_id",
    "unit",
    "period",
    "period_start",
    "period_end",
    "current_label",
)


def _scorecard_schema(nslots: int) -> dict[str, Any]:
    schema: dict[str, Any] = {k: pl.Utf8 for k in _SCORECARD_TEXT}
    schema["value"] = pl.Float64
    schema.update({"value_text": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8, "note": pl.Utf8})
    for i in range(nslots):
        p = f"comparison_{i + 1}"
        schema.update(
            {
                p: pl.Utf8,
                f"{p}_label": pl.Utf8,
                f"{p}_start": pl.Utf8,
                f"{p}_end": pl.Utf8,
                f"{p}_value": pl.Float64,
                f"{p}_change_abs": pl.Float64,
                f"{p}_change_pct": pl.Float64,
                f"{p}_status": pl.Utf8,
                f"{p}_text": pl.Utf8,
            }
        )
    schema["restated"] = pl.Utf8
    return schema


def scorecard_frame(layout: ScorecardLayout, rows: list[KpiRow], restated: Restated | None = None) -> pl.DataFrame:
    """scorecard.csv: a row per figure of each KPI row (one for a row without figures), with as many
    comparison column groups as the layout's longest list of comparisons, and ``restated``: the figure's
    earlier value and the run that changed it when ``restated`` lists it (else empty)."""
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
        figures: list[Figure | None] = list(r.figures) or [None]
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
                rec[f"{p}_text"] = comparison_entry(f, c).text if (c and f) else None
            items = restated.of(f) if (restated is not None and f is not None) else []
            rec["restated"] = f"restated since {restated.since}: " + "; ".join(i.text(f.unit) for i in items) if (items and restated and f) else None
            records.append(rec)
    return pl.DataFrame(records, schema=_scorecard_schema(nslots))


def _national_schema() -> dict[str, Any]:
    schema: dict[str, Any] = {k: pl.Utf8 for k in ("measure_id", "name", "proxy_for", "unit", "period", "period_start", "period_end", "current_label")}
    schema["value"] = pl.Float64
    schema.update({"value_text": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8})
    for p in ("baseline", "previous"):
        schema.update(
            {
                f"{p}_label": pl.Utf8,
                f"{p}_start": pl.Utf8,
                f"{p}_end": pl.Utf8,
                f"{p}_value": pl.Float64,
                f"{p}_text": pl.Utf8,
                f"{p}_source": pl.Utf8,
                f"{p}_change_abs": pl.Float64,
                f"{p}_change_pct": pl.Float64,
                f"{p}_change_text": pl.Utf8,
                f"{p}_change_pct_text": pl.Utf8,
                f"{p}_status": pl.Utf8,
                f"{p}_note": pl.Utf8,
            }
        )
    schema.update({"series_months": pl.Int64, "baseline_level": pl.Float64, "signals": pl.Utf8})
    return schema


def national_frame(rows: list[NationalRow]) -> pl.DataFrame:
    """national_measures.csv: a row per national measure, its baseline and previous-period comparisons side by side."""
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
            shows = bool(c and c.shows_change)
            rec.update(
                {
                    f"{p}_label": c.label if c else None,
                    f"{p}_start": c.start if c else None,
                    f"{p}_end": c.end if c else None,
                    f"{p}_value": c.value if c else None,
                    f"{p}_text": (format_value(c.value, nr.unit) if c and c.status else None),
                    f"{p}_source": c.source if c else None,
                    f"{p}_change_abs": c.change_abs if shows else None,  # type: ignore[union-attr]
                    f"{p}_change_pct": c.change_pct if shows else None,  # type: ignore[union-attr]
                    f"{p}_change_text": (format_change_abs(c.change_abs, nr.unit) if shows else None),  # type: ignore[union-attr]
                    f"{p}_change_pct_text": (format_change_pct(c.change_pct) if shows and nr.unit != "pct" else None),  # type: ignore[union-attr]
                    f"{p}_status": c.status if c else None,
                    f"{p}_note": c.note if c else None,
                }
            )
        rec["series_months"] = len(nr.series)
        rec["baseline_level"] = nr.baseline_level
        rec["signals"] = "; ".join(f"{p['month']} {p['signal']}" for p in nr.signals) or None
        recs.append(rec)
    return pl.DataFrame(recs, schema=_national_schema())


__all__ = ["national_frame", "scorecard_frame"]
