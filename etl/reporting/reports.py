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
* ``quality.html`` - the auditor's data-quality report for the month (`etl.reporting.quality`): each
  source file of the month's load with its sha256, rows in / loaded / quarantined by rule, every check
  passed, failed or not run with its plain description, the contract and definition versions, the
  published-statistics reconciliation, the last 12 months' quarantine rates and check failures, and the
  crime data integrity audit; with ``data_quality.csv`` (a row per source file, the full sha256) and
  ``data_quality_checks.csv`` (every other row of the page). Every page's navigation links it and the
  Great Expectations Data Docs (relative to the report folder), or says they are not built.
* ``index.html`` - links to the pages, and a data-quality summary (checks failed per extract) when
  an ``audit_checks`` frame is given.

With ``restated`` (the figures a later run moved, e.g. `etl.trail.changes.restated`) the scorecard marks
each such figure "restated", with its earlier value and the run that changed it in a footnote, and says
what it is compared with (``restated_since``). With ``as_of`` every page says the figures are as of then.

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
from etl.reporting.national import build_national_rows, is_public_data, national_page
from etl.reporting.overview import data_quality_summary, index_page
from etl.reporting.quality import data_docs_link, quality_checks_frame, quality_files_frame, quality_page
from etl.reporting.render import Nav, index_html, national_html, quality_html, scorecard_html
from etl.reporting.scorecard import build_scorecard_rows, restated_marks, scorecard_page

logger = logging.getLogger(__name__)


@dataclass
class ReportPaths:
    index: Path
    scorecard: Path
    national: Path
    csv: list[Path]
    workbook: Path
    quality: Path | None = None  # quality.html
    quality_csv: list[Path] | None = None  # data_quality.csv, data_quality_checks.csv


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
    audit_runs: pl.DataFrame | None = None,
    quarantine: pl.DataFrame | None = None,
    data_docs: Path | None = None,
    restated: pl.DataFrame | None = None,
    restated_since: str | None = None,
    as_of: str | None = None,
) -> ReportPaths:
    """Write index.html, scorecard.html, national.html, quality.html, scorecard.csv, national_measures.csv,
    data_quality.csv, data_quality_checks.csv and scorecard.xlsx into ``out_dir``.

    ``measures``: the measures table (MEASURE_SCHEMA columns; extra columns are ignored).
    ``month``: the report month ``YYYY-MM``: current windows end at it (or at the latest period end
    before it, labelled with its own dates). ``spc``: optional monthly series with XmR limits and signals.
    ``force_id``: required when the table holds several forces. ``defs``: measure definitions (names,
    units, extracts; default ``load_definitions()``). ``data_quality``: an ``audit_checks`` frame.
    ``layout``: the scorecard layout or its file (default ``contracts/definitions/scorecard.yaml``).
    ``audit_runs`` and ``quarantine``: the warehouse tables of those names, for the data-quality report
    (of the quarantine only its extract, month, file and failed_checks columns are read). ``data_docs``:
    the Great Expectations Data Docs index (linked when the file exists). ``restated``: rows with
    measure_id, period, comparison, old_value, new_value, changed_by_run, changed_at - the figures
    restated since ``restated_since`` (words such as "the report of run load-... (2024-01-02)"; default
    "the last report"). ``as_of``: the time or run the tables were read as of, said on every page.
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
    if as_of:
        prov = f"{prov}; as of {as_of}" if prov else f"as of {as_of}"
    nav = Nav(quality=True, data_docs=data_docs_link(data_docs, out_dir))
    marks = restated_marks(restated, restated_since, month)

    krows = build_scorecard_rows(layout, idx, month, defs)
    nrows = build_national_rows(idx, rows_all, month, force_id, spc, defs)
    dq = data_quality_summary(data_quality) if data_quality is not None else None

    quality, quality_csv = out_dir / "quality.html", [out_dir / "data_quality.csv", out_dir / "data_quality_checks.csv"]
    paths = ReportPaths(
        out_dir / "index.html",
        out_dir / "scorecard.html",
        out_dir / "national.html",
        [out_dir / "scorecard.csv", out_dir / "national_measures.csv"],
        out_dir / "scorecard.xlsx",
        quality,
        quality_csv,
    )
    page = scorecard_page(layout, krows, force_id, month, prov, marks, public=is_public_data(rows_all))
    write_text(paths.scorecard, scorecard_html(page, nav))
    write_text(paths.national, national_html(national_page(nrows, force_id, month, prov, spc is not None, checks=data_quality), nav))
    write_csv(paths.csv[0], scorecard_frame(layout, krows, marks))
    write_csv(paths.csv[1], national_frame(nrows))
    qpage = quality_page(
        force_id,
        month,
        audit_runs=audit_runs,
        checks=data_quality,
        quarantine=quarantine,
        measure_rows=rows_all,
        defs=defs,
        data_docs_href=nav.data_docs,
        as_of=as_of,
        provenance=prov,
    )
    write_text(quality, quality_html(qpage, nav))
    write_csv(quality_csv[0], quality_files_frame(qpage))
    write_csv(quality_csv[1], quality_checks_frame(qpage))
    write_scorecard_workbook(paths.workbook, page)
    write_text(paths.index, index_html(index_page(force_id, month, krows, nrows, layout, dq, data_quality, prov), nav))
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
