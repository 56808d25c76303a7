"""The index page's view model: changes when the report's overview (status counts, data quality) does.

The data-quality summary counts the checks run, failed and not run per extract from an ``audit_checks``
frame: counts and check names only, never a check's detail text (it may quote a value). A check that
did not run (``passed`` null, or a detail starting "not checked") is counted apart, never as failed or passed.
The whole data-quality report is quality.html (`etl.reporting.quality`), linked from the index. The one
exception is the published-statistics reconciliation, whose detail holds aggregate counts only: its
verdicts for the latest year checked are summed up beside the link to the national page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import polars as pl

from etl.core.periods import Month
from etl.reporting.formatting import mon_yy
from etl.reporting.layout import ScorecardLayout
from etl.reporting.national import NationalRow
from etl.reporting.quality import check_state
from etl.reporting.reconciliation import reconciliation
from etl.reporting.scorecard import KpiRow

# column of data_quality_summary -> its heading, in table order; the numeric ones are right-aligned
_DQ_HEADINGS = {
    "extract": "Extract",
    "runs": "Runs",
    "checks": "Checks run",
    "failed": "Checks failed",
    "failed_errors": "Failed (errors)",
    "failed_warnings": "Failed (warnings)",
    "not_run": "Not run",
    "failing_rows": "Failing rows",
    "failed_checks": "Failed checks",
}
_DQ_NUMERIC = {"runs", "checks", "failed", "failed_errors", "failed_warnings", "not_run", "failing_rows"}


def data_quality_summary(checks: pl.DataFrame) -> pl.DataFrame:
    """Checks run, failed and not run per extract (counts and check names only - never a check's detail text)."""
    cols = set(checks.columns)
    ex = pl.col("extract").fill_null("(run)") if "extract" in cols else pl.lit("(all)")
    state = check_state(cols)
    failed = state == "failed"
    aggs = [pl.len().alias("checks"), failed.sum().cast(pl.Int64).alias("failed"), (state == "not_run").sum().cast(pl.Int64).alias("not_run")]
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


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    numeric: bool


@dataclass
class DataQuality:
    """The data-quality section: ``state`` ``none`` (no checks given), ``empty`` (a frame without checks) or ``table``."""

    state: str
    months: str = ""  # 'Months covered: 2021-11 to 2022-01.' / 'Month: 2022-01.'
    columns: list[Column] | None = None
    rows: list[list[str]] | None = None  # display text, in column order


def data_quality(summary: pl.DataFrame | None, checks: pl.DataFrame | None) -> DataQuality:
    """The section from `data_quality_summary` of ``checks`` (both None when no checks were given)."""
    if summary is None:
        return DataQuality("none")
    if summary.height == 0:
        return DataQuality("empty")
    months = ""
    if checks is not None and "month" in checks.columns:
        ms = checks["month"].drop_nulls().unique().sort().to_list()
        if ms:
            months = f" Months covered: {ms[0]} to {ms[-1]}." if len(ms) > 1 else f" Month: {ms[0]}."
    columns = [Column(c, h, c in _DQ_NUMERIC) for c, h in _DQ_HEADINGS.items() if c in summary.columns]
    rows = [
        [f"{r[c.key]:,}" if c.numeric and isinstance(r[c.key], int) else r[c.key] for c in columns] for r in summary.select([c.key for c in columns]).to_dicts()
    ]
    return DataQuality("table", months, columns, rows)


@dataclass
class IndexPage:
    force_id: str
    month: str
    month_label: str
    provenance: str
    layout_version: str
    n_objectives: int
    n_rows: int
    n_computed: int
    n_national: int
    scorecard_statuses: list[tuple[str, int]]  # (status, figures), sorted by status
    no_data: list[tuple[str, int]]  # (availability, rows) of the rows without figures
    national_statuses: list[tuple[str, int]]
    quality: DataQuality
    public: bool = False  # a public-data warehouse: its national measures are proxies
    n_not_shown: int = 0  # national measures the public files cannot give, not on the page
    reconciliation: str = ""  # 'year ending Jun 19 (5% tolerance): ...'; '' when none was checked
    n_valued: int = 0  # KPI rows with a value in the measures table (what a public-data warehouse can show)


def index_page(
    force_id: str,
    month: str,
    rows: list[KpiRow],
    nrows: list[NationalRow],
    layout: ScorecardLayout,
    summary: pl.DataFrame | None,
    checks: pl.DataFrame | None,
    provenance: str,
) -> IndexPage:
    computed = [r for r in rows if r.computed]
    statuses = Counter(s for r in computed for _, s in r.statuses())
    no_data = Counter(r.spec.availability for r in rows if not r.computed)
    national = Counter(nr.status for nr in nrows)
    return IndexPage(
        force_id,
        month,
        mon_yy(Month.parse(month)),
        provenance,
        layout.version,
        len(layout.objectives),
        len(rows),
        len(computed),
        len(nrows),
        sorted(statuses.items()),
        sorted(no_data.items()),  # type: ignore[arg-type]  # every KPI without data has a kind
        sorted(national.items()),
        data_quality(summary, checks),
        public=bool(getattr(nrows, "public", False)),
        n_not_shown=len(getattr(nrows, "not_shown", [])),
        reconciliation=(rec.summary() if (rec := reconciliation(checks, force_id, month)) else ""),
        n_valued=sum(1 for r in rows if any(f.state == "ok" and f.value is not None for f in r.figures)),
    )


__all__ = ["DataQuality", "IndexPage", "data_quality", "data_quality_summary", "index_page"]
