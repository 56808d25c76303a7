"""Prefect flows for the monthly load and the backfill.

The flows only orchestrate: every decision lives in `etl.pipeline`, which tests call directly.
A month that fails its contract ends the monthly flow in a Failed state whose message is the plain
error (no stack trace for bad data); in a backfill it is reported and the other months go on.

Schedule the monthly load with a served deployment, e.g.::

    python -m flows.monthly serve --source /data/force --warehouse /data/warehouse

(the ephemeral Prefect server used by `etl run` does not run schedules).
"""

from __future__ import annotations

import datetime
import sys

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from etl import pipeline, progress
from etl.periods import Month, months_between


@task(name="load-month", cache_policy=NO_CACHE)
def load_month_task(source: str, month: str, warehouse: str, force_id: str | None, compute: bool) -> list[dict]:
    """One month of the source: a force folder, or data.police.uk files (one run per force found)."""
    try:
        reports = pipeline.load_source_month(source, month, warehouse, force_id=force_id, compute=compute)
    except pipeline.LoadFailed as exc:
        reports = [pipeline.MonthReport(month=month, outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
    for report in reports:
        progress.emit("month", report=report)
    return [r.to_dict() for r in reports]


@task(name="refresh-measures", cache_policy=NO_CACHE)
def refresh_measures_task(warehouse: str, forces: list[str] | None) -> dict:
    run_id, rows = pipeline.refresh_measures(warehouse, forces)
    return {"run_id": run_id, "rows": rows}


@task(name="expectations", cache_policy=NO_CACHE)
def expectations_task(warehouse: str) -> dict:
    from etl.expectations import run_expectations

    report = run_expectations(warehouse)
    return {"run_id": report.run_id, "total": report.total, "failed": report.failed, "data_docs": str(report.data_docs) if report.data_docs else None}


def _summary(reports: list[dict]) -> str:
    lines = ["| month | outcome | rows in | loaded | quarantined | note |", "|---|---|---|---|---|---|"]
    for r in reports:
        note = (r.get("message") or "").replace("|", "/")
        lines.append(f"| {r['month']} | {r['outcome']} | {r['rows_in']} | {r['rows_loaded']} | {r['rows_quarantined']} | {note} |")
    return "\n".join(lines)


@flow(name="monthly-load", log_prints=False)
def monthly_load(source: str, month: str, warehouse: str, force_id: str | None = None):
    """Load one month of the source's forces and recompute their measures (month 'previous' = last month)."""
    if month == "previous":
        today = datetime.date.today()
        month = str(Month.of(today.year, today.month) - 1)
    reports = load_month_task(source, month, warehouse, force_id, True)
    create_markdown_artifact(key="monthly-load", markdown=_summary(reports), description=f"Monthly load {month}")
    failed = [r for r in reports if r["outcome"] != "loaded"]
    loaded = [r for r in reports if r["outcome"] == "loaded"]
    if loaded:  # a source of several forces loads the forces that pass even when one fails
        expectations = expectations_task(warehouse)
        for r in loaded:
            r["expectations"] = expectations
    if failed:
        others = f" ({len(loaded)} other force(s) of {month} loaded)" if loaded else ""
        return Failed(message="; ".join(r["message"] for r in failed) + others, data=reports)
    return reports


@flow(name="backfill", log_prints=False)
def backfill(source: str, first: str, last: str, warehouse: str, force_id: str | None = None) -> dict:
    """Load every month from first to last in order, then recompute the measures once."""
    reports = [r for m in months_between(first, last) for r in load_month_task(source, str(m), warehouse, force_id, False)]
    forces = sorted({r["force_id"] for r in reports if r.get("force_id")}) or None
    measures = refresh_measures_task(warehouse, forces)
    expectations = expectations_task(warehouse)
    create_markdown_artifact(key="backfill", markdown=_summary(reports), description=f"Backfill {first}..{last}")
    return {"months": reports, "measures_run_id": measures["run_id"], "measure_rows": measures["rows"], "expectations": expectations}


if __name__ == "__main__":  # pragma: no cover - deployment entry point
    import argparse

    parser = argparse.ArgumentParser(description="Serve the monthly load on a schedule (03:00 on the 5th of each month).")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--source", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--cron", default="0 3 5 * *")
    args = parser.parse_args()
    print("Serving 'monthly-load'; each run loads the previous month.", file=sys.stderr)
    monthly_load.serve(name="monthly-load", cron=args.cron, parameters={"source": args.source, "warehouse": args.warehouse, "month": "previous"})
