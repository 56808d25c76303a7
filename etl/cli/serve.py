"""``etl serve``: serve the monthly load and the backfill as Prefect deployments on a real Prefect server.

One reason to change: how the deployments are offered from the command line (options, checks, what
is printed). The deployments themselves are `etl.flows.deployments`; the README's "Operations" section
says how to start a server, serve, trigger a month by hand and read a failure.

Exit code 2 (nothing registered) when no Prefect server is configured, when it cannot be reached, or
when an option is wrong; otherwise it runs until stopped (Ctrl+C or SIGTERM), exit 0.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from etl.cli.engine import prefect_server_configured
from etl.cli.settings import resolve_warehouse
from etl.errors import ConfigError

log = logging.getLogger(__name__)

NO_SERVER = (
    "no Prefect server is configured (PREFECT_API_URL is not set, in the environment or the Prefect profile): "
    "start one with `prefect server start` in another terminal, then `export PREFECT_API_URL=http://127.0.0.1:4200/api` "
    "and run `etl serve` again (README: Operations)"
)


class ServeError(ConfigError):
    """A deployment cannot be served: no server, an unreachable server, a bad option."""


def check_server() -> str:
    """The configured server's API URL, after a health check; `ServeError` when there is none or it does not answer."""
    if not prefect_server_configured():
        raise ServeError(NO_SERVER)
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = str(PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL", ""))
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ServeError(f"cannot reach the Prefect server at {url} ({type(problem).__name__}): is `prefect server start` running there?")
    return url


def _log_runs_at_info() -> None:
    """Flow runs of a served deployment send their logs, the library's included (PREFECT_LOGGING_EXTRA_LOGGERS=etl:
    run ids, counts, timings, lock waits), to the server at INFO: the command line's quieter default is for
    one-off commands only. A level the user set is kept."""
    from etl.cli.app import CLI_APPLIED

    if "PREFECT_LOGGING_LEVEL" in CLI_APPLIED or "PREFECT_LOGGING_LEVEL" not in os.environ:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


def serve(
    source: str = typer.Option(..., "--source", help="The landing source: a folder (SOURCE/YYYY-MM/..., SOURCE/<force>/YYYY-MM/..., data.police.uk files)"),
    warehouse_option: str | None = typer.Option(
        None, "--warehouse", help="Warehouse folder or s3://bucket/prefix URL (default: ETL_WAREHOUSE, else etl.toml, else ./warehouse)"
    ),
    force: str | None = typer.Option(None, "--force", help="Only this force of the source"),
    cron: str | None = typer.Option(None, "--cron", help="When the monthly load runs (default: 06:00 on the 8th)"),
    timezone: str | None = typer.Option(None, "--timezone", help="The cron's time zone (default Europe/London)"),
    paused: bool = typer.Option(False, "--paused", help="Register the schedule paused (resume it in the UI)"),
    forces: str | None = typer.Option(None, "--forces", help="A landing URL: the forces expected every month, comma-separated (default: those found)"),
    wait_minutes: float | None = typer.Option(None, "--wait-minutes", help="A landing URL: how long the monthly run waits for late extracts"),
    storage_options: str | None = typer.Option(
        None, "--storage-options", help="A landing URL: the name of a Prefect Secret block holding its fsspec storage options (JSON)"
    ),
    notify_webhook: str | None = typer.Option(
        None, "--notify-webhook", help="POST a JSON message to this URL when a deployed run fails (a Prefect automation and webhook block)"
    ),
) -> None:
    """Serve the monthly load (on a cron, Europe/London) and the backfill (on demand) against the Prefect server in PREFECT_API_URL."""
    from zoneinfo import ZoneInfoNotFoundError

    from etl.flows import deployments as d

    setting = resolve_warehouse(warehouse_option)
    if not d.is_url(source) and not Path(source).expanduser().is_dir():
        raise ServeError(f"--source {source}: no such folder")
    if (forces or wait_minutes is not None or storage_options) and not d.is_url(source):
        raise ServeError("--forces, --wait-minutes and --storage-options are for a landing URL source (file://, s3://); a folder is read as it is")
    if wait_minutes is not None and not wait_minutes >= 0:
        raise ServeError(f"--wait-minutes {wait_minutes}: must be 0 or more")
    expected = [f.strip() for f in forces.split(",") if f.strip()] if forces else None
    cron = cron or d.MONTHLY_CRON
    timezone = timezone or d.TIMEZONE
    _log_runs_at_info()  # before Prefect reads its settings
    url = check_server()
    try:
        built = d.build_deployments(
            source,
            str(setting.path),
            force_id=force,
            cron=cron,
            timezone=timezone,
            paused=paused,
            forces=expected,
            wait_minutes=wait_minutes,
            storage_options=storage_options,
        )
    except ZoneInfoNotFoundError:
        raise ServeError(f"--timezone {timezone}: not a time zone (e.g. Europe/London)") from None
    except ValueError as exc:
        raise ServeError(f"--cron {cron}: {exc}") from None
    if notify_webhook is not None and not notify_webhook.startswith(("http://", "https://")):
        raise ServeError(f"--notify-webhook {notify_webhook}: not an http(s) URL")
    limit = d.ensure_warehouse_limit(str(setting.path))
    notified = ""
    if notify_webhook:
        from etl.flows.notify import AUTOMATION_NAME, ensure_failure_webhook

        ensure_failure_webhook(notify_webhook, [deployment.apply() for deployment in built])
        notified = f"  a failed or crashed run POSTs to the webhook (automation '{AUTOMATION_NAME}')\n"
    typer.echo(
        f"Serving against {url}:\n"
        f"  monthly-load/{d.MONTHLY_DEPLOYMENT}: cron '{cron}' ({timezone}){' paused' if paused else ''}, loads the previous month of {source}\n"
        f"  backfill/{d.BACKFILL_DEPLOYMENT}: on demand (parameters first, last)\n"
        f"  warehouse {setting.path}, one run at a time (global concurrency limit {limit})\n"
        f"{notified}"
        f"Trigger a month by hand: prefect deployment run 'monthly-load/{d.MONTHLY_DEPLOYMENT}' --param month=YYYY-MM\n"
        f"Watch the runs in the UI ({url.removesuffix('/api')}); stop serving with Ctrl+C."
    )
    from prefect import serve as prefect_serve

    prefect_serve(*built, print_starting_message=False)


__all__ = ["NO_SERVER", "ServeError", "check_server", "serve"]
