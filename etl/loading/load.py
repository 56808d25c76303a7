"""The monthly load's entry points: plan a source's month (`etl.loading.sources`), then run the batch
load (`etl.loading.stages`). The command line, the flows and the backfill call these.

One reason to change: what a caller asks a monthly load for, and what it gets back.
"""

from __future__ import annotations

from pathlib import Path

from etl.core.warehouse import Warehouse
from etl.loading.results import MonthReport
from etl.loading.sources import plan_force_folder, plan_source_month
from etl.loading.stages import load_batch


def load_source_month(source: str | Path, month: str, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True) -> list[MonthReport]:
    """Load a month of any source layout, all its forces in one commit:

    * a force folder (SOURCE/YYYY-MM/recorded_crime.csv ...): one force-month; raises `LoadFailed`
      when a file fails its contract (nothing written);
    * a folder of force folders (SOURCE/<force>/YYYY-MM/...), e.g. a region or the 43 forces: every
      force's month validated together and committed at once, one audit run per force-month;
    * data.police.uk files anywhere under SOURCE (YYYY-MM-<force>-street.csv ...): one run per force.

    With several forces, a force whose files fail is reported (outcome ``failed``, nothing of it
    written) and the others are loaded.
    """
    return load_batch(plan_source_month(source, month, force_id), Warehouse(warehouse), compute)


def load_month(source: str | Path, month: str, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True) -> MonthReport:
    """Load one month of a force folder. Raises `LoadFailed` (nothing written) when a file fails its contract."""
    (report,) = load_batch(plan_force_folder(source, month, force_id), Warehouse(warehouse), compute)
    return report
