"""The published-statistics reconciliation view model: changes when how the national page reads the
``published.reconciliation`` checks does.

At every load the ``reconcile_published`` check (`etl.core.cross_month.reconcile_published`) compares the
force's records for the 12 months ending the loaded month with ONS PFA Table P1 (``published_statistics``),
total recorded crime and every offence group named as a published heading, and records one ``audit_checks``
row: ``passed`` (null when the comparison could not be made: not run, never a pass), the tolerance in its
``description`` ("... within 5%", from the contract's ``tolerancePercent``) and, in ``detail``, either
``not checked: <why>`` or ``year ending <YYYY-MM> (<start>..<end>), <workbook>: <group>: records <n> vs
published <n> (<+d.d>%[ OUTSIDE tolerance]); <group>: records <n>, not published; ...``. This module reads
those rows back into a table (records, published, difference, tolerance, verdict) - the numbers the
check judged, from the warehouse, not recomputed. The counts are aggregate figures (no personal data).

Only the latest run of each (month, extract) counts (a reloaded month replaces its check). Months that
are not a quarter end are left out when not checked (ONS publishes years ending a quarter only); a
quarter end that was not checked is a row of its own, ``not checked`` with the reason - never a pass.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

import polars as pl

from etl.core.periods import Month, PeriodError
from etl.reporting.formatting import mon_yy, round_half_up, window_dates

logger = logging.getLogger(__name__)

CHECK = "published.reconciliation"
NO_PUBLISHED = "not checked: no published statistics for this force"
_NOT_CHECKED = "not checked: "
_HEADER = re.compile(r"^year ending (?P<end>\d{4}-\d{2}) \((?P<start>\d{4}-\d{2})\.\.\d{4}-\d{2}\), (?P<source>.*?): (?P<body>.*)$", re.S)
_COMPARED = re.compile(
    r"^(?P<group>.+?): records (?P<records>\d+) vs published (?P<published>\d+) \((?P<pct>[+-]?(?:\d+(?:\.\d+)?|inf))%(?P<outside> OUTSIDE tolerance)?\)$"
)
_UNPUBLISHED = re.compile(r"^(?P<group>.+?): records (?P<records>\d+), not published$")
_TOLERANCE = re.compile(r"within (\d+(?:\.\d+)?)%")
_RUN_TIME = r"(\d{8}T\d{6})"

# verdict -> (words, badge class of report.css)
VERDICTS = {
    "within": ("within tolerance", "met"),
    "outside": ("outside tolerance", "not_met"),
    "not_published": ("not published", "not_available"),
    "not_checked": ("not checked", "incomplete"),
    "unreadable": ("not readable", "not_available"),
}


@dataclass
class ReconciliationRow:
    """One offence group of one year ending (``group`` empty for a year that was not checked)."""

    group: str
    verdict: str  # a key of VERDICTS
    records: int | None = None
    published: int | None = None
    reason: str = ""  # why not checked / not readable

    @property
    def difference(self) -> int | None:
        return None if self.records is None or self.published is None else self.records - self.published

    @property
    def difference_pct(self) -> float | None:
        """(records - published) / published x 100, the check's rule (None when nothing was published to compare)."""
        if self.difference is None or not self.published:
            return None
        return self.difference / self.published * 100

    @property
    def verdict_words(self) -> str:
        return VERDICTS[self.verdict][0]

    @property
    def badge(self) -> str:
        return VERDICTS[self.verdict][1]

    @property
    def records_text(self) -> str:
        return "-" if self.records is None else f"{self.records:,}"

    @property
    def published_text(self) -> str:
        return "-" if self.published is None else f"{self.published:,}"

    @property
    def difference_text(self) -> str:
        """'-8 (-5.6%)': the count and the percent of the published figure, one decimal as the check judged it."""
        d = self.difference
        if d is None:
            return "-"
        text = f"{d:+,}" if d else "0"
        pct = self.difference_pct
        if pct is not None:
            p = round_half_up(pct, 1)
            text += f" ({p:+.1f}%)" if p else " (0.0%)"
        return text


@dataclass
class YearEnding:
    """The check of one year ending (one extract): its rows and where the published figures come from."""

    end: str  # YYYY-MM
    extract: str
    tolerance: float | None
    source: str  # the published workbook ('' when not checked)
    rows: list[ReconciliationRow]

    @property
    def label(self) -> str:
        return mon_yy(Month.parse(self.end))

    @property
    def window(self) -> str:
        e = Month.parse(self.end)
        return window_dates(str(e - 11), self.end)

    @property
    def tolerance_text(self) -> str:
        return "-" if self.tolerance is None else f"{self.tolerance:g}%"

    @property
    def checked(self) -> bool:
        return any(r.verdict in ("within", "outside", "not_published") for r in self.rows)


@dataclass
class Reconciliation:
    """The table: years ending a quarter in the 12 months to the report month, newest first."""

    years: list[YearEnding]
    extracts: list[str]
    earlier_checked: int = 0  # years ending before those shown that were checked

    @property
    def rows(self) -> int:
        return sum(len(y.rows) for y in self.years)

    def summary(self) -> str:
        """'year ending Jun 19: 3 offence groups within tolerance, 2 outside tolerance' (the latest year checked), or ''."""
        latest = next((y for y in self.years if y.checked), None)
        if latest is None:
            return ""
        counts = Counter(r.verdict for r in latest.rows)
        parts = [
            f"{n} {'offence group' if n == 1 else 'offence groups'} {VERDICTS[v][0]}"
            for v, n in sorted(counts.items(), key=lambda kv: list(VERDICTS).index(kv[0]))
        ]
        return f"year ending {latest.label} ({latest.tolerance_text} tolerance): " + ", ".join(parts)


def _is_quarter_end(month: str) -> bool:
    try:
        return Month.parse(month).month % 3 == 0
    except PeriodError:
        return False


def _rows(detail: str) -> tuple[str, list[ReconciliationRow]]:
    """(workbook, rows) of a check that ran; one ``unreadable`` row when the detail is not in the check's form."""
    m = _HEADER.match(detail)
    if m is None:
        return "", [ReconciliationRow("", "unreadable", reason="the check's detail is not in the expected form; see audit_checks")]
    rows = []
    for part in m["body"].split("; "):
        c = _COMPARED.match(part)
        if c is not None:
            rows.append(ReconciliationRow(c["group"], "outside" if c["outside"] else "within", int(c["records"]), int(c["published"])))
            continue
        u = _UNPUBLISHED.match(part)
        if u is not None:
            rows.append(ReconciliationRow(u["group"], "not_published", int(u["records"])))
            continue
        rows.append(ReconciliationRow("", "unreadable", reason="a line of the check's detail is not in the expected form; see audit_checks"))
    return m["source"], rows


def reconciliation(checks: pl.DataFrame | None, force_id: str, month: str) -> Reconciliation | None:
    """The reconciliation of ``force_id`` up to the report ``month`` from an ``audit_checks`` frame; None when
    there is nothing to show (no such checks, or no published statistics for the force in any of them)."""
    if checks is None or checks.height == 0 or not {"check", "month", "detail"} <= set(checks.columns):
        return None
    f = checks.filter((pl.col("check") == CHECK) & (pl.col("month") <= month) & pl.col("detail").is_not_null())
    if "force_id" in f.columns:
        f = f.filter(pl.col("force_id") == force_id)
    if f.height == 0 or f.filter(pl.col("detail") != NO_PUBLISHED).height == 0:
        return None
    extract = pl.col("extract").fill_null("") if "extract" in f.columns else pl.lit("")
    run = pl.col("run_id").cast(pl.Utf8).fill_null("") if "run_id" in f.columns else pl.lit("")
    description = pl.col("description").fill_null("") if "description" in f.columns else pl.lit("")
    latest = (
        f.select(pl.col("month"), extract.alias("extract"), run.alias("run_id"), description.alias("description"), pl.col("detail"))
        .with_columns(pl.col("run_id").str.extract(_RUN_TIME).fill_null("").alias("_at"))
        .sort("month", "extract", "_at", "run_id")
        .group_by("month", "extract", maintain_order=True)
        .last()
        .sort("month", "extract", descending=[True, False])
    )
    first_shown = str(Month.parse(month) - 11)
    years: list[YearEnding] = []
    earlier = 0
    for r in latest.iter_rows(named=True):  # one row per checked month (a few dozen at most)
        detail: str = r["detail"]
        not_checked = detail.startswith(_NOT_CHECKED)
        if not_checked and not _is_quarter_end(r["month"]):
            continue
        if r["month"] < first_shown:
            earlier += 0 if not_checked else 1
            continue
        tol = _TOLERANCE.search(r["description"])
        tolerance = float(tol.group(1)) if tol else None
        if not_checked:
            row = ReconciliationRow("", "not_checked", reason=detail[len(_NOT_CHECKED) :])
            years.append(YearEnding(r["month"], r["extract"], tolerance, "", [row]))
            continue
        source, rows = _rows(detail)
        years.append(YearEnding(r["month"], r["extract"], tolerance, source, rows))
    extracts = sorted({y.extract for y in years if y.extract})
    logger.debug("reconciliation for %s to %s: %d year(s) ending shown, %d earlier checked", force_id, month, len(years), earlier)
    return Reconciliation(years, extracts, earlier)


__all__ = ["CHECK", "VERDICTS", "Reconciliation", "ReconciliationRow", "YearEnding", "reconciliation"]
