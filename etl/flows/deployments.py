"""The deployments of the flows: what runs unattended, when, with which parameters and limits.

One reason to change: how the monthly load and the backfill are deployed (schedule, time zone,
parameters, concurrency). The flows themselves are in `etl.flows.monthly`; `etl serve` serves these
deployments against the Prefect server in ``PREFECT_API_URL`` (`etl.cli.serve`).

* ``monthly-load/scheduled``: on a cron in the Europe/London time zone (default 06:00 on the 8th, after
  the forces' extract deadline of the 5th working day), loading the previous calendar month (London
  time), with the landing source, warehouse and forces as parameters.
* ``backfill/on-demand``: no schedule; triggered by hand with ``first`` and ``last``.

The source may be a landing URL (``file://``, ``s3://``): the monthly run then waits for the month's
extracts (parameters ``wait_minutes`` or ``deadline``, ``forces``) and copies them to the warehouse's raw
area before loading (`etl.loading.landing`); ``storage_options`` names a Prefect Secret block of fsspec
storage options when the AWS_* environment is not to be used.

Both deployments allow one run at a time (a second trigger waits: ``ENQUEUE``), and every run of a
deployment takes the warehouse's global concurrency limit (``etl-warehouse-<digest>``, one slot, made
by `etl serve`), so two runs on the same warehouse never interleave whichever deployment started them;
a run waiting for it shows as ``AwaitingConcurrencySlot`` in the UI. The warehouse's own lock
(`etl.core.warehouse`) serialises them as well, also against command-line runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from etl.core.periods import Month

TIMEZONE = "Europe/London"
MONTHLY_CRON = "0 6 8 * *"  # 06:00 on the 8th of each month, London time
MONTHLY_DEPLOYMENT = "scheduled"
BACKFILL_DEPLOYMENT = "on-demand"
TAGS = ["police-etl"]
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # a scheme of two or more characters (not a drive letter)


def previous_month(now: dt.datetime | None = None, timezone: str = TIMEZONE) -> str:
    """The calendar month before ``now`` (default: the current time) in ``timezone``, as ``YYYY-MM``."""
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    local = now.astimezone(ZoneInfo(timezone))
    return str(Month.of(local.year, local.month) - 1)


def is_url(location: str) -> bool:
    """A location with a scheme (``s3://``, ``file://``) rather than a local path."""
    return _URL.match(location) is not None


def warehouse_key(warehouse: str) -> str:
    """One name per warehouse, however it is written: the resolved path (or the URL as given)."""
    return warehouse if is_url(warehouse) else str(Path(warehouse).expanduser().resolve())


def warehouse_limit_name(warehouse: str) -> str:
    """The name of the warehouse's global concurrency limit (Prefect): ``etl-warehouse-`` and a digest of its location."""
    return "etl-warehouse-" + hashlib.sha256(warehouse_key(warehouse).encode()).hexdigest()[:12]


def build_deployments(
    source: str,
    warehouse: str,
    *,
    force_id: str | None = None,
    cron: str = MONTHLY_CRON,
    timezone: str = TIMEZONE,
    paused: bool = False,
    forces: list[str] | None = None,
    wait_minutes: float | None = None,
    storage_options: str | None = None,
) -> list:
    """The two runner deployments (``prefect.deployments.runner.RunnerDeployment``) for one source and warehouse.

    For a landing URL (`etl.loading.landing`): ``forces`` expected each month (default: those found),
    ``wait_minutes`` the monthly run waits for late extracts after it starts (default 0), ``storage_options``
    the name of a Prefect Secret block of fsspec storage options (default: the AWS_* environment of the
    process that runs the flows). Each is a parameter of the deployments only when given, and can be set
    per run (``--param``)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from etl.flows.monthly import backfill, monthly_load

    ZoneInfo(timezone)  # an unknown zone fails here, before anything is registered
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    landing = {k: v for k, v in (("forces", forces), ("storage_options", storage_options)) if v}
    common = {"source": source, "warehouse": warehouse, "force_id": force_id, **landing}
    monthly = monthly_load.to_deployment(
        name=MONTHLY_DEPLOYMENT,
        schedule=Cron(cron, timezone=timezone),
        paused=paused,
        parameters={**common, "month": "previous", **({"wait_minutes": wait_minutes} if wait_minutes else {})},
        concurrency_limit=one_at_a_time,
        description=f"The monthly load of the previous calendar month ({timezone}), on the cron '{cron}'.",
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    filling = backfill.to_deployment(
        name=BACKFILL_DEPLOYMENT,
        parameters=common,
        concurrency_limit=one_at_a_time,
        description="Every month from first to last in order, then the measures (trigger with first and last, YYYY-MM).",
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [monthly, filling]


def ensure_warehouse_limit(warehouse: str) -> str:
    """Create the warehouse's global concurrency limit (one slot) on the server if it is missing; returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    name = warehouse_limit_name(warehouse)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return name


__all__ = [
    "BACKFILL_DEPLOYMENT",
    "MONTHLY_CRON",
    "MONTHLY_DEPLOYMENT",
    "TIMEZONE",
    "build_deployments",
    "ensure_warehouse_limit",
    "is_url",
    "previous_month",
    "warehouse_limit_name",
]
