"""The flows' scale-out on Dask through prefect-dask: a month of several forces, or a backfill of a local
folder, with each force's files read and validated by a Prefect task on a `DaskTaskRunner`.

`monthly_load` (a local folder, or a month taken from a landing zone) and `backfill` (`etl.flows.monthly`) take
``workers`` and ``dask_address`` (else the
settings ``ETL_DASK_WORKERS`` and ``ETL_DASK_ADDRESS``; 0 workers and no address: the single-process
load, unchanged). With Dask, the load runs as a subflow whose task runner is a `DaskTaskRunner`: a
`distributed.LocalCluster` of that many worker processes, started for the subflow and closed after it,
or the existing scheduler at the address. The subflow holds the warehouse, sends one ``validate-force-
files`` task per force (file paths in, a small description of the staged rows out:
`etl.loading.parallel`), then checks, writes and commits in its own process: one writer, one commit
per month (or per backfill batch).

One reason to change: how the flows put the load's tasks on Dask.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from etl.core import progress
from etl.core.warehouse import Warehouse
from etl.loading import parallel
from etl.loading.results import LoadFailed, MonthReport


@task(name="validate-force-files", cache_policy=NO_CACHE)
def validate_force_files(units: list[parallel.UnitTask]) -> list[list[parallel.UnitMonth]]:
    """A group of forces' files of the batch read and validated on a Dask worker, the rows staged (`parallel.validate_units`)."""
    return parallel.validate_units(units)


def _on_dask(units: list[parallel.UnitTask]) -> list[list[parallel.UnitMonth]]:
    """The forces in a couple of groups per Dask worker (`parallel.partition`), a task per group."""

    def run_groups(groups: list[list[parallel.UnitTask]]) -> list[list[list[parallel.UnitMonth]]]:
        futures = [validate_force_files.submit(g) for g in groups]
        return [f.result() for f in futures]

    return parallel.run_grouped(units, parallel.TASKS_PER_WORKER * _dask_workers(), run_groups)


def _dask_workers() -> int:
    """The workers of the flow's Dask cluster (the client of its `DaskTaskRunner`, made on first use), else 1."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    client = getattr(ctx.task_runner, "client", None) if ctx is not None else None
    try:
        return (len(client.scheduler_info()["workers"]) or 1) if client is not None else 1
    except (ValueError, OSError):
        return 1


@flow(name="load-month-on-dask", log_prints=False)
def load_month_on_dask(source: str, month: str, warehouse: str, force_id: str | None, compute: bool) -> list[dict]:
    """One month of a local source: each force's files validated on Dask, one commit here (reports as `load_month_task`'s)."""
    return _month_reports(month, lambda: parallel.load_source_month(source, month, warehouse, _on_dask, force_id=force_id, compute=compute))


@flow(name="load-landed-on-dask", log_prints=False)
def load_landed_on_dask(landed: dict, warehouse: str, force_id: str | None, compute: bool) -> list[dict]:
    """A month taken from a landing zone (`etl.loading.landing.land_month`): each force's files validated on Dask - read
    from the raw area when the warehouse is in a bucket, so workers need no disk of this machine - one commit here."""
    from etl.loading import landing

    month = landed["month"]
    load = parallel.folder_loader(_on_dask)
    return _month_reports(month, lambda: landing.load_landed(landing.Landed.from_dict(landed), warehouse, force_id=force_id, compute=compute, load=load))


def _month_reports(month: str, load: Callable[[], list[MonthReport]]) -> list[dict]:
    """A month's reports as the flows give them: a failure of the month (`LoadFailed`) as its one report, with its rule."""
    rule = None
    try:
        reports = load()
    except LoadFailed as exc:
        reports = [MonthReport(month=month, outcome="missing" if exc.rule == "missing_month" else "failed", message=exc.message)]
        rule = exc.rule
    for report in reports:
        progress.emit("month", report=report)
    return [r.to_dict() | ({"rule": rule} if rule else {}) for r in reports]


@flow(name="backfill-on-dask", log_prints=False)
def backfill_on_dask(source: str, first: str, last: str, warehouse: str, force_id: str | None) -> list[dict]:
    """The months of a local folder in batches (`etl.loading.backfill.load_range`), each batch's force files
    validated on Dask and committed here in one commit; the month reports in order."""
    from etl.loading.backfill import load_range

    wh = Warehouse(warehouse)

    def on_month(report: MonthReport) -> None:
        progress.emit("month", report=report)

    loaded = load_range(source, first, last, lambda group: parallel.load_months(group, wh, _on_dask), force_id=force_id, on_month=on_month)
    return [r.to_dict() for r in loaded]


def task_runner(workers: int | None = None, address: str | None = None):
    """prefect-dask's `DaskTaskRunner`: on the scheduler at ``address`` (or ETL_DASK_ADDRESS), else on a
    local cluster of ``workers`` (or ETL_DASK_WORKERS) worker processes."""
    from prefect_dask import DaskTaskRunner

    n, where = parallel.dask_settings(workers, address)
    if where is not None:
        return DaskTaskRunner(address=where)
    options = parallel.local_cluster_options(max(n, 1))
    api = prefect_api_url()
    if api:  # the workers report their task runs to this flow's server (else each would start a temporary one)
        options["env"] = {"PREFECT_API_URL": api}
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=options)


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to: PREFECT_API_URL, else the temporary server it started (if any)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    return server.api_url if server is not None and server.running else None


def month(source: str, month: str, warehouse: str, force_id: str | None, compute: bool, workers: int | None, address: str | None) -> list[dict]:
    """`load_month_on_dask` on its task runner."""
    return load_month_on_dask.with_options(task_runner=task_runner(workers, address))(source, month, warehouse, force_id, compute)


def landed(landed: dict, warehouse: str, force_id: str | None, compute: bool, workers: int | None, address: str | None) -> list[dict]:
    """`load_landed_on_dask` on its task runner."""
    return load_landed_on_dask.with_options(task_runner=task_runner(workers, address))(landed, warehouse, force_id, compute)


def backfill(source: str, first: str, last: str, warehouse: str, force_id: str | None, workers: int | None, address: str | None) -> list[dict]:
    """`backfill_on_dask` on its task runner."""
    return backfill_on_dask.with_options(task_runner=task_runner(workers, address))(source, first, last, warehouse, force_id)
