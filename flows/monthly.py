"""Deployment entry point for the monthly load (the flows themselves ship in the package: `etl.flows.monthly`).

python -m flows.monthly serve --source /data/force --warehouse /data/warehouse
"""

from etl.flows.monthly import backfill, guard_ephemeral_server, monthly_load

__all__ = ["backfill", "guard_ephemeral_server", "monthly_load"]

if __name__ == "__main__":  # pragma: no cover - deployment entry point
    import runpy

    runpy.run_module("etl.flows.monthly", run_name="__main__")
