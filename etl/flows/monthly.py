"""Prefect flows for the monthly load and the backfill.

The flows only orchestrate: every decision lives in `etl.loading.pipeline`, which tests call directly.
A month that fails its contract ends the monthly flow in a Failed state whose message names the
month, the force, the file and the rule in plain words (no stack trace for bad data); in a backfill it
is reported and the other months go on. Each run publishes a markdown summary and a table of the
month's headline measures (`etl.flows.artifacts`). Tasks are retried with back-off for transient
errors only (`is_transient`).

Run from a deployment (`etl.flows.deployments`, served by `etl serve`), a flow holds its warehouse's
global concurrency limit for its whole run, so runs of the same warehouse never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import cast

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from etl.core import progress
from etl.core.periods import months_between
from etl.errors import ConfigError, DataError, EtlError
from etl.flows.artifacts import publish
from etl.flows.deployments import is_url, previous_month, warehouse_limit_name
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


class MonthFailed(DataError):
    """The data of a monthly run's Failed state: its message names the month, the force, the file and the rule
    of each failed force-month; ``reports`` are the run's month reports (those that loaded too)."""

    def __init__(self, message: str, reports: list[dict]):
        super().__init__(message)
        self.reports = reports


class PlainProjectErrors(logging.Filter):
    """No stack trace for a project error in a flow run's logs: Prefect's engine logs a failed run's exception
    with its traceback ("Engine execution exited with unexpected exception"); for an `EtlError` (whose message
    already names the file, row, column and rule) the record keeps the message and loses the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, EtlError):
            record.msg = f"{record.getMessage()}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _plain_run_logs() -> None:
    """Add `PlainProjectErrors` to Prefect's flow- and task-run loggers (once)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, PlainProjectErrors) for f in logger.filters):
            logger.addFilter(PlainProjectErrors())


_plain_run_logs()

log = logging.getLogger(__name__)
SLOT_PROBE_SECONDS = 2.0  # how long a deployment run tries for its warehouse's slot before saying it waits

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


@task(name="load-months", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def load_months_task(plans: list, warehouse: str) -> list[list[pipeline.MonthReport]]:
    """Consecutive planned months of a local source loaded in one commit (a backfill's batch); the reports per month."""
    from etl.core.warehouse import Warehouse
    from etl.loading.batches import load_months

    return load_months(plans, Warehouse(warehouse))


@task(name="refresh-measures", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def refresh_measures_task(warehouse: str, forces: list[str] | None) -> dict:
    run_id, rows = pipeline.refresh_measures(warehouse, forces)
    return {"run_id": run_id, "rows": rows}


@task(name="expectations", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def expectations_task(warehouse: str) -> dict:
    from etl.quality.expectations import run_expectations

    report = run_expectations(warehouse)
    return {"run_id": report.run_id, "total": report.total, "failed": report.failed, "data_docs": str(report.data_docs) if report.data_docs else None}


@task(name="land-month", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def land_month_task(
    source: str, month: str, warehouse: str, force_id: str | None, forces: list[str] | None, deadline: str | None, storage_options: str | None
) -> dict:
    """A month of a landing zone (URL): wait for its expected extracts until the deadline, copy the complete
    ones to the warehouse's raw area and stage them (`etl.loading.landing`). Listing or reading errors retry."""
    from etl.loading import landing

    when = landing.parse_deadline(deadline)
    return landing.land_month(
        source, month, warehouse, force_id=force_id, forces=forces, deadline=when, storage_options=landing_options(storage_options)
    ).to_dict()


@task(name="load-landed", cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def load_landed_task(landed: dict, warehouse: str, force_id: str | None, compute: bool) -> list[dict]:
    """Load a landed month from its staging folder; force-months missing a required extract are failed reports."""
    from etl.loading import landing

    rule = None
    month = landed["month"]
    try:
        reports = landing.load_landed(landing.Landed.from_dict(landed), warehouse, force_id=force_id, compute=compute)
    except pipeline.LoadFailed as exc:
        reports = [pipeline.MonthReport(month=month, outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
        rule = exc.rule
    for report in reports:
        progress.emit("month", report=report)
    return [r.to_dict() | ({"rule": rule} if rule else {}) for r in reports]


def landing_options(block: str | None) -> dict | None:
    """fsspec storage options from the Prefect Secret block named BLOCK (a JSON object, e.g. ``{"key": ...,
    "secret": ..., "endpoint_url": ...}``); None (the environment's AWS_* settings) without a name."""
    if not block:
        return None
    import json

    from prefect.blocks.system import Secret

    try:
        value = cast(Secret, Secret.load(block, _sync=True)).get()  # type: ignore[call-arg]
    except ValueError:
        raise ConfigError(f"storage_options {block}: no Prefect Secret block of that name (create one holding the storage options as JSON)") from None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise ConfigError(f"storage_options {block}: the Secret block must hold a JSON object of fsspec storage options")
    return value


def refuse_landing_options(source: str, forces: list[str] | None, storage_options: str | None) -> None:
    """A local folder is loaded as it is: forces and storage options belong to a landing URL."""
    if forces or storage_options:
        raise ConfigError(f"{source}: forces and storage_options apply to a landing URL (file://..., s3://...); a local folder is loaded as it is")


def month_reports(
    source: str, month: str, warehouse: str, force_id: str | None, compute: bool, forces: list[str] | None, deadline: str | None, storage_options: str | None
) -> list[dict]:
    """A month's reports: a local folder loaded where it lies, or a landing URL landed (waited for, copied to
    the raw area, staged) then loaded."""
    if not is_url(source):
        refuse_landing_options(source, forces, storage_options)
        return load_month_task(source, month, warehouse, force_id, compute)
    landed = land_month_task(source, month, warehouse, force_id, forces, deadline, storage_options)
    return load_landed_task(landed, warehouse, force_id, compute)


@contextlib.contextmanager
def warehouse_slot(warehouse: str) -> Iterator[None]:
    """Inside a deployment's run: the library's INFO logs (run ids, counts, timings, lock waits) go to
    the run's logs, and the run holds the warehouse's global concurrency limit (one slot, made by `etl
    serve`) throughout. A run started another way (`etl run`) keeps the command line's quieter logging
    and relies on the warehouse lock alone."""
    from prefect.runtime import deployment

    if deployment.id is None:
        yield
        return
    from prefect.concurrency.sync import concurrency

    library = logging.getLogger("etl")
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)
    name = warehouse_limit_name(warehouse)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(concurrency(name, occupy=1, timeout_seconds=SLOT_PROBE_SECONDS, strict=False))
        except TimeoutError:
            log.warning("warehouse %s: another run holds its concurrency slot (%s); this run waits for it", warehouse, name)
            started = time.monotonic()
            held.enter_context(concurrency(name, occupy=1, strict=False))
            log.warning("warehouse %s: slot %s taken after %.0f s of waiting", warehouse, name, time.monotonic() - started)
        yield


def failure_message(failed: list[dict], month: str, n_loaded: int, source: str = "", force_id: str | None = None) -> str:
    """The Failed state's message: per failed force-month, the month, the force (the rows' force, else
    the force asked for, else the source folder when the files could not be read) and the plain error
    (which names the file, row, column and rule)."""

    def who(r: dict) -> str:
        return r.get("force_id") or force_id or (f"source {source}" if source else "")

    parts = [f"{r['month']} {who(r)} {r['outcome']}: {r.get('message') or 'no message'}".replace("  ", " ") for r in failed]
    others = f" ({n_loaded} other force(s) of {month} loaded)" if n_loaded else ""
    return "; ".join(parts) + others


def _on_dask(workers: int | None, address: str | None) -> bool:
    """Whether the load runs on Dask: some workers or a scheduler address, given or set (`etl.loading.parallel`)."""
    from etl.loading.parallel import wanted

    return wanted(workers, address)


@flow(name="monthly-load", log_prints=False)
def monthly_load(
    source: str,
    month: str,
    warehouse: str,
    force_id: str | None = None,
    forces: list[str] | None = None,
    deadline: str | None = None,
    wait_minutes: float = 0,
    storage_options: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
):
    """Load one month of the source's forces and recompute their measures (month 'previous' = the
    previous calendar month in Europe/London time). ``workers`` / ``dask_address`` (else ETL_DASK_WORKERS /
    ETL_DASK_ADDRESS; default 0 and none: one process): the forces of a local folder or of a landed month read and
    validated on Dask - a local cluster of that many worker processes, or the scheduler at the address
    (`etl.flows.scale`).

    A landing URL (``file://``, ``s3://``) is waited for until ``deadline`` (ISO time; without a zone,
    London time) or ``wait_minutes`` after the run starts (default: no waiting), expecting ``forces``
    (default: those found); ``storage_options`` names a Prefect Secret block of fsspec storage options
    (default: the AWS_* environment). The waiting happens before the run takes its warehouse's slot."""
    if month == "previous":
        month = previous_month()
    landed = None
    if is_url(source):
        from etl.loading.landing import parse_deadline

        until = parse_deadline(deadline, wait_minutes).isoformat()
        landed = land_month_task(source, month, warehouse, force_id, forces, until, storage_options)
    elif forces or deadline or wait_minutes or storage_options:
        raise ConfigError(
            f"{source}: forces, deadline, wait_minutes and storage_options apply to a landing URL (file://..., s3://...); a local folder is loaded as it is"
        )
    with warehouse_slot(warehouse):
        if landed is not None and _on_dask(workers, dask_address):
            from etl.flows import scale

            reports = scale.landed(landed, warehouse, force_id, True, workers, dask_address)
        elif landed is not None:
            reports = load_landed_task(landed, warehouse, force_id, True)
        elif _on_dask(workers, dask_address):
            from etl.flows import scale

            reports = scale.month(source, month, warehouse, force_id, True, workers, dask_address)
        else:
            reports = load_month_task(source, month, warehouse, force_id, True)
        failed = [r for r in reports if r["outcome"] != "loaded"]
        loaded = [r for r in reports if r["outcome"] == "loaded"]
        if loaded:  # a source of several forces loads the forces that pass even when one fails
            expectations = expectations_task(warehouse)
            for r in loaded:
                r["expectations"] = expectations
    publish(reports, month, warehouse, key="monthly-load", title=f"Monthly load {month}")
    if failed:
        message = failure_message(failed, month, len(loaded), source, force_id)
        return Failed(message=message, data=MonthFailed(message, reports))
    return reports


@flow(name="backfill", log_prints=False)
def backfill(
    source: str,
    first: str,
    last: str,
    warehouse: str,
    force_id: str | None = None,
    forces: list[str] | None = None,
    storage_options: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
) -> dict:
    """Load every month from first to last in order, then recompute the measures once. A landing URL's
    months are taken as they are (no waiting), each copied to the raw area and staged before it loads.
    ``workers`` / ``dask_address``: a local folder's force files read and validated on Dask (as `monthly_load`)."""
    with warehouse_slot(warehouse):
        if is_url(source):
            reports = [r for m in months_between(first, last) for r in month_reports(source, str(m), warehouse, force_id, False, forces, None, storage_options)]
        else:  # a local folder: months in batches, one task and one commit each (`etl.loading.batches`)
            refuse_landing_options(source, forces, storage_options)
            from etl.loading.backfill import load_range

            def on_month(report: pipeline.MonthReport) -> None:
                progress.emit("month", report=report)

            if _on_dask(workers, dask_address):
                from etl.flows import scale

                reports = scale.backfill(source, first, last, warehouse, force_id, workers, dask_address)
            else:
                loaded = load_range(
                    source, first, last, lambda group: load_months_task(group, warehouse), force_id=force_id, on_month=on_month, read_ahead=True
                )
                reports = [r.to_dict() for r in loaded]
        forces = sorted({r["force_id"] for r in reports if r.get("force_id")}) or None
        measures = refresh_measures_task(warehouse, forces)
        expectations = expectations_task(warehouse)
    publish(reports, str(last), warehouse, key="backfill", title=f"Backfill {first} to {last}")
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
