"""The backfill: every month of a range loaded in order (a failed or missing month does not stop the
others), then the measures refreshed once.

Consecutive months are loaded in batches of several months per commit (`etl.loading.batches`): the same
tables, checks and reports as loading them one by one, for far fewer commits and passes over the rules.

One reason to change: how a range of months is loaded and reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from etl.core.periods import months_between
from etl.core.warehouse import Warehouse
from etl.loading import files
from etl.loading.batches import batch_plans, load_months
from etl.loading.landing import is_landing_url, load_month_from
from etl.loading.refresh import refresh_measures
from etl.loading.results import BackfillReport, LoadFailed, MonthReport
from etl.loading.sources import SourcePlan, plan_source_month

log = logging.getLogger(__name__)


def backfill(
    source: str | Path,
    first: str,
    last: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    on_month: Callable[[MonthReport], None] | None = None,
    measures: bool = True,
) -> BackfillReport:
    """Load every month in order (a failed or missing month does not stop the others), then measures
    (unless ``measures`` is false: then no measures run, ``measures_run_id`` None)."""
    started = time.perf_counter()
    wh = Warehouse(warehouse)
    reports: list[MonthReport] = []
    if is_landing_url(source):  # a landing zone: each month copied to the raw area and staged, then loaded
        for m in months_between(first, last):
            try:
                reps = load_month_from(source, str(m), warehouse, force_id=force_id, compute=False)
            except LoadFailed as exc:
                reps = [MonthReport(month=str(m), outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
            for rep in reps:
                reports.append(rep)
                if on_month:
                    on_month(rep)
        return finish_backfill(reports, warehouse, first, last, measures, started)
    reports.extend(load_range(source, first, last, lambda group: load_months(group, wh), force_id=force_id, on_month=on_month, read_ahead=True))
    return finish_backfill(reports, warehouse, first, last, measures, started)


def load_range(
    source: str | Path,
    first: str,
    last: str,
    load: Callable[[list[SourcePlan]], list[list[MonthReport]]],
    *,
    force_id: str | None = None,
    on_month: Callable[[MonthReport], None] | None = None,
    read_ahead: bool = False,
) -> list[MonthReport]:
    """Every month from first to last of a local source, in order: planned, grouped into batches
    (`batch_plans`) and each batch given to ``load`` (one commit: `load_months`, or the Prefect flow's task
    around it); a month that cannot be planned (missing, two files of one extract) is reported in its place.
    ``read_ahead`` (when ``load`` reads the files in this thread): the next batch's files are read while a batch
    is written (`files.reading_ahead`)."""
    items: list[SourcePlan | MonthReport] = []
    for m in months_between(first, last):
        try:
            items.append(plan_source_month(source, str(m), force_id))
        except LoadFailed as exc:
            items.append(MonthReport(month=str(m), outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message))
    reports: list[MonthReport] = []

    def emit(reps: list[MonthReport]) -> None:
        for rep in reps:
            reports.append(rep)
            if on_month:
                on_month(rep)

    plans = [i for i in items if isinstance(i, SourcePlan)]
    unplanned = {i.month: i for i in items if isinstance(i, MonthReport)}
    done_until = ""
    groups = batch_plans(plans)
    with files.reading_ahead() if read_ahead else nullcontext() as ahead:
        for k, group in enumerate(groups):
            if ahead is not None:
                ahead.queue(
                    [(path, p.source) for p in groups[k + 1] for u in p.units for _, path in u.files if path is not None] if k + 1 < len(groups) else []
                )
            last_month = str(group[-1].month)
            by_month = [(str(p.month), reps) for p, reps in zip(group, load(group))]
            by_month += [(m, [unplanned[m]]) for m in unplanned if done_until < m < last_month]  # months without a plan, in their place
            for _, reps in sorted(by_month, key=lambda x: x[0]):
                emit(reps)
            done_until = last_month
    for month in sorted(m for m in unplanned if m > done_until):
        emit([unplanned[month]])
    return reports


def finish_backfill(reports: list[MonthReport], warehouse: str | Path, first: str, last: str, measures: bool, started: float) -> BackfillReport:
    """Refresh the measures of the forces loaded (unless ``measures`` is false) and report."""
    run_id, n = None, 0
    if measures:
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
