"""The backfill: every month of a range loaded in order (a failed or missing month does not stop the
others), then the measures refreshed once.

One reason to change: how a range of months is loaded and reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from etl.core.periods import months_between
from etl.loading.landing import load_month_from
from etl.loading.refresh import refresh_measures
from etl.loading.results import BackfillReport, LoadFailed, MonthReport

log = logging.getLogger(__name__)


def backfill(
    source: str | Path,
    first: str,
    last: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    on_month: Callable[[MonthReport], None] | None = None,
) -> BackfillReport:
    """Load every month in order (a failed or missing month does not stop the others), then measures."""
    started = time.perf_counter()
    reports = []
    for m in months_between(first, last):
        try:
            reps = load_month_from(source, str(m), warehouse, force_id=force_id, compute=False)  # a landing URL: copied to raw, staged
        except LoadFailed as exc:
            reps = [MonthReport(month=str(m), outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
        for rep in reps:
            reports.append(rep)
            if on_month:
                on_month(rep)
    forces = sorted({r.force_id for r in reports if r.force_id}) or None
    run_id, n = refresh_measures(warehouse, forces)
    outcomes = {o: sum(r.outcome == o for r in reports) for o in ("loaded", "failed", "missing")}
    log.info(
        "backfill %s..%s: %d loaded, %d failed, %d missing force-month(s); measures run %s (%d rows), %.2f s",
        first,
        last,
        outcomes["loaded"],
        outcomes["failed"],
        outcomes["missing"],
        run_id,
        n,
        time.perf_counter() - started,
    )
    return BackfillReport(reports, run_id, n)
