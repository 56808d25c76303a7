"""Deployment entry point for the monthly load and the backfill (the flows ship in the package:
`etl.flows.monthly`; their deployments in `etl.flows.deployments`).

    python -m flows.monthly --source /data/landing --warehouse /data/warehouse

serves both deployments against the Prefect server in PREFECT_API_URL, as `etl serve` does (the same
options: `etl serve --help`).
"""

from etl.flows.monthly import backfill, guard_ephemeral_server, monthly_load

__all__ = ["backfill", "guard_ephemeral_server", "monthly_load"]

if __name__ == "__main__":  # pragma: no cover - deployment entry point
    import sys

    from etl.cli.app import main

    sys.argv = ["etl", "serve", *sys.argv[1:]]
    main()
