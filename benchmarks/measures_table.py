"""A curated warehouse for the measures target (43 forces x 10 years), built directly.

Loading 5,160 force-months (~65M rows) through the monthly load would take hours on 2 cores, so the
curated `recorded_crime` Delta table is written straight from the demo generator's valid rows
(`etl.demo.generator._Generator.crimes`, the same rows its CSVs hold) in the curated schema
(`etl.core.validation.curated_schema`), with a `population` table and one `audit_runs` row of kind
`load` per force-month whose `table_versions` name the tables' versions - what a warehouse filled by
the monthly load holds for the tables `refresh_measures` and `run_expectations` read (there is no
quarantine or audit_checks table: the generator's valid rows only). Each phase is then timed in its
own process on a copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from pathlib import Path


def build(job: dict) -> dict:
    import numpy as np
    import polars as pl
    from deltalake import DeltaTable, write_deltalake

    from benchmarks.config import month_range
    from benchmarks.data import force_seed
    from etl.core.contracts import load_contract
    from etl.core.validation import curated_schema
    from etl.core.warehouse import AUDIT_RUNS_SCHEMA
    from etl.demo.generator import _Generator, _load_profile

    wh = Path(job["warehouse"])
    shutil.rmtree(wh, ignore_errors=True)
    wh.mkdir(parents=True)
    forces: list[list] = job["forces"]  # [force_id, crimes_per_month]
    months = month_range(job["first_month"], job["months"])
    schema = curated_schema(load_contract("recorded_crime"))
    flags = [c for c, t in schema.items() if t == pl.Boolean]
    prof = _load_profile()
    start = time.perf_counter()
    rows = 0
    counts: dict[tuple[str, str], int] = {}
    for force_id, cpm in forces:
        gen = _Generator(prof, force_id=force_id, seed=force_seed(force_id), crimes_per_month=int(cpm), last_month=np.datetime64(months[-1], "M"))
        parts = []
        for m in months:
            frame = gen.crimes(np.datetime64(m, "M")).frame
            counts[(force_id, m)] = frame.height
            sha = hashlib.sha256(f"{force_id}/{m}".encode()).hexdigest()
            parts.append(
                frame.with_columns(
                    *[(pl.col(f) == "Y").alias(f) for f in flags],
                    pl.col("victim_age").cast(pl.Int64),
                    pl.lit(m).alias("month"),
                    pl.lit(f"{m}/recorded_crime.csv").alias("source_file"),
                    pl.lit(sha).alias("source_sha256"),
                    (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("source_row"),
                )
            )
        table = pl.concat(parts).select([pl.col(k).cast(t) for k, t in schema.items()])
        rows += table.height
        write_deltalake(str(wh / "recorded_crime"), table.to_arrow(), mode="append")
        del parts, table
    years = sorted({int(m[:4]) for m in months} | {int(months[0][:4]) - 1})
    pop_schema = curated_schema(load_contract("population"))
    pop = pl.DataFrame(
        [
            {
                "force_id": f,
                "year": y,
                "population": int(cpm * 100 * (1.006 ** (y - years[0]))),
                "month": None,
                "source_file": "reference/population.csv",
                "source_sha256": "0" * 64,
                "source_row": i + 2,
            }
            for f, cpm in forces
            for i, y in enumerate(years)
        ],
        schema=pop_schema,
    )
    write_deltalake(str(wh / "population"), pop.to_arrow(), mode="append")
    versions = {t: DeltaTable(str(wh / t)).version() for t in ("recorded_crime", "population")}
    now = dt.datetime.now(dt.UTC)
    audit = []
    seq = 0
    for m in months:
        for force_id, _ in forces:
            seq += 1
            audit.append(
                {
                    "run_id": f"load-bench-{force_id}-{m}",
                    "commit_seq": seq,
                    "kind": "load",
                    "force_id": force_id,
                    "month": m,
                    "started_at": now,
                    "finished_at": now,
                    "outcome": "success",
                    "source_files": json.dumps(
                        [{"extract": "recorded_crime", "file": f"{m}/recorded_crime.csv"}, {"extract": "population", "file": "reference/population.csv"}]
                    ),
                    "rows_in": counts[(force_id, m)],
                    "rows_loaded": counts[(force_id, m)],
                    "rows_quarantined": 0,
                    "contract_versions": json.dumps({"recorded_crime": "1.0.0"}),
                    "definition_versions": "{}",
                    "table_versions": json.dumps(versions),
                    "message": "benchmarks.measures_table: built directly",
                }
            )
    write_deltalake(str(wh / "audit_runs"), pl.DataFrame(audit, schema=AUDIT_RUNS_SCHEMA).to_arrow(), mode="append")
    return {
        "work_seconds": time.perf_counter() - start,
        "import_seconds": 0.0,
        "rows": rows,
        "force_months": len(audit),
        "forces": len(forces),
        "months": len(months),
        "first_month": months[0],
        "last_month": months[-1],
    }
