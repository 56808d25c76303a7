"""The measures refresh: recompute the measures of loaded forces from the committed tables, in one run.

One reason to change: how a refresh chooses its forces and records itself.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl

from etl.core import audit, progress
from etl.core.warehouse import Warehouse, sql_literal
from etl.loading.measuring import (
    definition_versions,
    loaded_months,
    measure_extracts,
    measure_writes,
)

log = logging.getLogger(__name__)


def refresh_measures(warehouse: str | Path, forces: list[str] | None = None) -> tuple[str, int]:
    """Recompute the measures of the given forces (default: all loaded) from the committed tables.
    Returns the run id and the number of measure rows."""
    wh = Warehouse(warehouse)
    with wh.run():
        return _refresh_in(wh, forces)


def _refresh_in(wh: Warehouse, forces: list[str] | None) -> tuple[str, int]:
    run_id = audit.new_run_id("measures")
    started = audit.utcnow()
    clock = time.perf_counter()
    loaded = loaded_months(wh)
    if forces:
        loaded = loaded.filter(pl.col("force_id").is_in(forces))
    if loaded.height == 0:
        log.info("run %s refresh: no loaded months%s; nothing written", run_id, f" for {len(forces)} force(s)" if forces else "")
        return run_id, 0
    done = loaded["force_id"].unique().sort().to_list()
    tables = {e: wh.scan(e) for e in measure_extracts()}
    in_forces = "force_id IN (" + ", ".join(sql_literal(f) for f in done) + ")"
    writes = measure_writes(
        tables,
        loaded,
        wh.read("population"),
        run_id=run_id,
        published=wh.read("published_statistics"),
        external=wh.read("external_statistics"),
        replace=in_forces,
    )
    rows = writes[0].frame.height
    run = audit.run_row(run_id, "measures", ",".join(done), None, started, [], definition_versions(), f"{rows} measure rows for {', '.join(done)}")
    progress.emit("before_commit", run_ids=[run_id], month=None)
    with progress.stage("write", rows=rows):
        wh.commit(run_id, writes, run)
    log.info(
        "run %s refresh: %d force(s), %d loaded extract-month(s), %d measure row(s), %.2f s",
        run_id,
        len(done),
        loaded.height,
        rows,
        time.perf_counter() - clock,
    )
    return run_id, rows
