"""The report entry point: changes when the set of files a report writes, or their order, does.

``write_report(measures, month, out_dir)`` writes, for one force and one report month:

* ``scorecard.html`` - the Police and Crime Plan KPI scorecard laid out like paper 002 Appendix A:
  one table per objective, rows grouped by sub-objective; columns Sub-objective | KPI | Current |
  Historical / baseline | Target | Status. The layout is data: ``contracts/definitions/scorecard.yaml``
  (`etl.reporting.layout`).
* ``national.html`` - one section per national measure (``nm_*``, and ``pu_*`` public-data proxies
  when present): the rolling 12 months to the month against the year ending June 2019 baseline and
  the previous 12 months, with the status and its reason, and an inline SVG trend chart of the
  monthly series with its SPC (XmR) centre line, control limits and signals.
* ``scorecard.csv`` and ``national_measures.csv`` - the same rows with the unrounded values and the
  displayed text. Text cells starting ``= + - @`` (a negative change such as ``-3%`` too) get a leading
  ``'`` so a spreadsheet never runs them as formulas (`etl.reporting.exports.csv_safe`); numbers are unchanged.
* ``scorecard.xlsx`` - the scorecard for people who finish board papers in Office: an About sheet
  (force, month, provenance, rounding) and a sheet per objective, with the page's values as numbers
  formatted to the displayed rounding beside the page's text, statuses coloured as on the page
  (`etl.reporting.excel`, openpyxl).
* ``index.html`` - links to both pages, and a data-quality summary (checks failed per extract) when
  an ``audit_checks`` frame is given.

How it is built, one reason to change per module: `formatting` (rounding, units, labels), `layout`
(the scorecard layout file), `figures` (reading the measures table), the view models `scorecard`,
`national` and `overview`, `charts` (the SVG chart), `csv_tables` (the CSV columns), `excel` (the
workbook), `render` with ``templates/`` and ``static/report.css`` (the pages, Jinja2 with autoescaping), `exports` (safe writing).

Every label is derived from the period tokens and the dates of the rows (never free text), every
value is HTML-escaped, and nothing but aggregate figures is shown (the measures table has no personal
data; the data-quality summary shows counts and check names only, never a check's detail text).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from etl.core.periods import Month
from etl.reporting.csv_tables import national_frame, scorecard_frame
from etl.reporting.errors import ReportError
from etl.reporting.excel import write_scorecard_workbook
from etl.reporting.exports import write_csv, write_text
from etl.reporting.figures import MeasureIndex, provenance
from etl.reporting.layout import ScorecardLayout, load_scorecard_layout
from etl.reporting.national import build_national_rows, national_page
from etl.reporting.overview import data_quality_summary, index_page
from etl.reporting.render import index_html, national_html, scorecard_html
from etl.reporting.scorecard import build_scorecard_rows, scorecard_page

logger = logging.getLogger(__name__)


@dataclass
class ReportPaths:
    index: Path
    scorecard: Path
    national: Path
    csv: list[Path]
    workbook: Path


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
    """Write index.html, scorecard.html, national.html, scorecard.csv, national_measures.csv and scorecard.xlsx into ``out_dir``.

    ``measures``: the measures table (MEASURE_SCHEMA columns; extra columns are ignored).
    ``month``: the report month ``YYYY-MM``: current windows end at it (or at the latest period end
    before it, labelled with its own dates). ``spc``: optional monthly series with XmR limits and signals.
    ``force_id``: required when the table holds several forces. ``defs``: measure definitions (names,
    units, extracts; default ``load_definitions()``). ``data_quality``: an ``audit_checks`` frame.
    ``layout``: the scorecard layout or its file (default ``contracts/definitions/scorecard.yaml``).
    """
    started = time.perf_counter()
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
        rows_all = measures.filter((pl.col("force_id") == force_id) & (pl.col("period_end") <= month)).to_dicts()
    idx = MeasureIndex(rows_all)
    prov = provenance([r for r in rows_all if r.get("period_end") == month] or rows_all)

    krows = build_scorecard_rows(layout, idx, month, defs)
    nrows = build_national_rows(idx, rows_all, month, force_id, spc, defs)
    dq = data_quality_summary(data_quality) if data_quality is not None else None

    paths = ReportPaths(
        out_dir / "index.html",
        out_dir / "scorecard.html",
        out_dir / "national.html",
        [out_dir / "scorecard.csv", out_dir / "national_measures.csv"],
        out_dir / "scorecard.xlsx",
    )
    page = scorecard_page(layout, krows, force_id, month, prov)
    write_text(paths.scorecard, scorecard_html(page))
    write_text(paths.national, national_html(national_page(nrows, force_id, month, prov, spc is not None, checks=data_quality)))
    write_csv(paths.csv[0], scorecard_frame(layout, krows))
    write_csv(paths.csv[1], national_frame(nrows))
    write_scorecard_workbook(paths.workbook, page)
    write_text(paths.index, index_html(index_page(force_id, month, krows, nrows, layout, dq, data_quality, prov)))
    logger.info(
        "report for %s: %d measure rows, %d KPI rows, %d national measures, written to %s in %.2f s",
        month,
        len(rows_all),
        len(krows),
        len(nrows),
        out_dir,
        time.perf_counter() - started,
    )
    return paths


__all__ = ["ReportError", "ReportPaths", "write_report"]
