"""Prefect flows for the monthly load and the backfill.

The flows only orchestrate: every decision lives in `etl.loading.pipeline`, which tests call directly.
A month that fails its contract ends the monthly flow in a Failed state whose message is the plain
error (no stack trace for bad data); in a backfill it is reported and the other months go on.

Schedule the monthly load with a served deployment, e.g.::

    python -m flows.monthly serve --source /data/force --warehouse /data/warehouse

(the ephemeral Prefect server used by `etl run` does not run schedules).
"""

from __future__ import annotations

import datetime
import subprocess
import sys

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from etl.core import progress
from etl.core.periods import Month, months_between
from etl.errors import EtlError
from etl.loading import pipeline


def is_transient(task, task_run, state) -> bool:
    """Retry a task only for a transient error (`etl.errors.TransientError`: a busy warehouse, a state
    that moved); a contract failure or a configuration error fails at once, never retried."""
    try:
        state.result()
    except EtlError as exc:
        return exc.retryable
    except Exception:
        return False
    return False


# Transient errors are retried with back-off (the warehouse lock itself already waits ETL_LOCK_TIMEOUT).
RETRIES = 2
RETRY_DELAYS: list[float] = [30, 120]


@task(name="load-month", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def load_month_task(source: str, month: str, warehouse: str, force_id: str | None, compute: bool) -> list[dict]:
    """One month of the source: a force folder, or data.police.uk files (one run per force found)."""
    rule = None
    try:
        reports = pipeline.load_source_month(source, month, warehouse, force_id=force_id, compute=compute)
    except pipeline.LoadFailed as exc:
        reports = [pipeline.MonthReport(month=month, outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
        rule = exc.rule  # the failed file rule: the command line's exit code depends on it (data 1, path 2)
    for report in reports:
        progress.emit("month", report=report)
    return [r.to_dict() | ({"rule": rule} if rule else {}) for r in reports]


@task(name="refresh-measures", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def refresh_measures_task(warehouse: str, forces: list[str] | None) -> dict:
    run_id, rows = pipeline.refresh_measures(warehouse, forces)
    return {"run_id": run_id, "rows": rows}


@task(name="expectations", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def expectations_task(warehouse: str) -> dict:
    from etl.quality.expectations import run_expectations

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


# ---------------------------------------------------------------------------------------------------
# The ephemeral Prefect server never outlives the process that started it.
#
# Without PREFECT_API_URL, Prefect starts a temporary API server as a child process (uvicorn, from
# `prefect.server.api.server.SubprocessASGIServer._run_uvicorn_command`) and stops it at normal exit
# (atexit). A process killed by SIGKILL (or SIGTERM without a handler) runs no atexit handler, so the
# server would keep running. A watchdog - a tiny Python process in its own session, started before the
# first server - is told the pid of every server started; it holds the read end of a pipe whose only
# write end is in this process, so it sees end-of-file the moment this process ends, however it ends,
# and then stops the servers it was told about (SIGTERM, SIGKILL after 5 s). A pid is checked against
# its start time so a recycled pid is never signalled.

_WATCHDOG = r"""
import os, signal, sys, time

def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return None if fields[0] in (b"Z", b"X") else fields[19].decode()

def alive(pid, started):
    if not os.path.isdir("/proc/self"):  # no procfs: the pid alone
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    now = start_time(pid)
    return now is not None and (started in ("", "?") or now == started)

servers = []
for line in sys.stdin:  # "pid start-time" per server; end of file = the process that started them ended
    parts = line.split()
    if parts and parts[0].isdigit():
        servers.append((int(parts[0]), parts[1] if len(parts) > 1 else ""))
for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
    live = [(pid, st) for pid, st in servers if alive(pid, st)]
    for pid, _ in live:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while live and time.monotonic() < deadline:
        time.sleep(0.1)
        live = [(pid, st) for pid, st in live if alive(pid, st)]
    if not live:
        break
"""

_watchdog: subprocess.Popen | None = None


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _ensure_watchdog() -> subprocess.Popen:
    global _watchdog
    if _watchdog is None or _watchdog.poll() is not None:
        _watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
    return _watchdog


def _watch(watchdog: subprocess.Popen, pid: int) -> None:
    assert watchdog.stdin is not None
    watchdog.stdin.write(f"{pid} {_start_time(pid)}\n")
    watchdog.stdin.flush()


def guard_ephemeral_server() -> None:
    """Make every ephemeral Prefect server started from now on in this process end with it (idempotent)."""
    from prefect.server.api.server import SubprocessASGIServer

    start = getattr(SubprocessASGIServer, "_run_uvicorn_command", None)
    if start is None:  # a Prefect release that starts its server another way: say so, run unguarded
        import logging

        logging.getLogger(__name__).warning("this Prefect release has no SubprocessASGIServer._run_uvicorn_command; the ephemeral server is not guarded")
        return
    if getattr(start, "_etl_guarded", False):
        return

    def run_uvicorn_command(self):
        watchdog = _ensure_watchdog()  # before the server, so no moment has a server and no watchdog
        process = start(self)
        _watch(watchdog, process.pid)
        return process

    run_uvicorn_command._etl_guarded = True  # type: ignore[attr-defined]
    SubprocessASGIServer._run_uvicorn_command = run_uvicorn_command  # type: ignore[method-assign]


if __name__ == "__main__":  # pragma: no cover - deployment entry point
    import argparse

    parser = argparse.ArgumentParser(description="Serve the monthly load on a schedule (03:00 on the 5th of each month).")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--source", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--cron", default="0 3 5 * *")
    args = parser.parse_args()
    guard_ephemeral_server()
    print("Serving 'monthly-load'; each run loads the previous month.", file=sys.stderr)
    monthly_load.serve(name="monthly-load", cron=args.cron, parameters={"source": args.source, "warehouse": args.warehouse, "month": "previous"})
