"""Scale-out on Dask: the national month(s) loaded in one process, then with 1, 2 and 4 local Dask workers.

    python -m benchmarks.scale_out [--months N] [--workers 1,2,4] [--engine local|prefect] [--keep]

The 43 forces' synthetic extracts come from the benchmark cache (`benchmarks.data`, generated once if
absent) and are laid out as one source, a folder of force folders (links). Each run loads them into a
fresh warehouse in its own process: one month with `load_source_month` (measures included), several with
the backfill (in batches, measures refreshed at the end); ``single`` is the single-process load, ``dask-N``
the same with each force's files read and validated on a `distributed.LocalCluster` of N worker processes
(`etl.loading.parallel`; ``--engine prefect``: through the flows and prefect-dask's task runner). Wall time
is measured twice: the whole child process (Python start, imports, cluster start and stop) and the load
alone. The tables (recorded_crime, quarantine with row numbers, audit_checks of the loads, without run
ids) are compared with the single-process warehouse. Printed, and written to
benchmarks/results/scale_out-<timestamp>.json.

On a 2-core machine 4 workers oversubscribe the cores (each worker is a process with its own polars
thread pool): the figure shows the cost of that, not a speed-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.config import NATIONAL_FIRST, RESULTS_DIR, Size, month_range, national_forces
from benchmarks.harness import _child_env, log


def national_size(months: int) -> Size:
    return Size(f"national-{months}m", national_forces(), NATIONAL_FIRST, months, "national", f"43 forces x {months} month(s)")


def national_source(months: int, folder: Path) -> tuple[Path, int]:
    """A folder of force folders (links to the cached forces), and the rows of its months' files."""
    from benchmarks import data

    ds = data.ensure(national_size(months))
    folder.mkdir(parents=True, exist_ok=True)
    for force_id, _ in national_forces():
        link = folder / force_id
        if not link.exists():
            link.symlink_to(data.force_dir(ds.size, force_id), target_is_directory=True)
    return folder, sum(f["rows"] for f in ds.files)


# ----------------------------------------------------------------------------------------------------
# One run, in a child process


def child(mode: str, source: str, warehouse: str, first: str, last: str, engine: str, result: str) -> None:
    started = time.perf_counter()
    from etl.loading import parallel, pipeline

    workers = 0 if mode == "single" else int(mode.split("-")[1])
    out: dict = {"mode": mode, "engine": engine}
    if engine == "prefect":
        from etl.flows.monthly import backfill, monthly_load

        t = time.perf_counter()
        if first == last:
            reports = monthly_load(source, first, warehouse, workers=workers)
        else:
            reports = backfill(source, first, last, warehouse, workers=workers)["months"]
        out["load_seconds"] = time.perf_counter() - t  # includes the flow's start (and a local cluster's)
        out["outcomes"] = [r["outcome"] for r in reports]
    elif workers == 0:
        t = time.perf_counter()
        reps = pipeline.load_source_month(source, first, warehouse) if first == last else pipeline.backfill(source, first, last, warehouse).months
        out["load_seconds"] = time.perf_counter() - t
        out["outcomes"] = [r.outcome for r in reps]
    else:
        t = time.perf_counter()
        with parallel.dask_client(workers) as on_dask:
            out["cluster_start_seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            if first == last:
                reps = parallel.load_source_month(source, first, warehouse, on_dask)
            else:
                reps = parallel.backfill(source, first, last, warehouse, on_dask).months
            out["load_seconds"] = time.perf_counter() - t
        out["outcomes"] = [r.outcome for r in reps]
    out["in_process_seconds"] = time.perf_counter() - started
    Path(result).write_text(json.dumps(out))


def run(mode: str, source: Path, warehouse: Path, first: str, last: str, engine: str, work: Path) -> dict:
    result = work / f"{mode}.json"
    started = time.perf_counter()
    with open(work / f"{mode}.log", "w") as lf:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.scale_out", "--child", mode, str(source), str(warehouse), first, last, engine, str(result)],
            cwd=Path(__file__).resolve().parent.parent,
            env=_child_env({"ETL_STAGING_DIR": str(work / "staging"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}),
            stdout=lf,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result.exists():
        raise SystemExit(f"{mode} failed (exit {proc.returncode}); log {work / f'{mode}.log'}:\n" + (work / f"{mode}.log").read_text(errors="replace")[-3000:])
    out = json.loads(result.read_text())
    out["process_wall_seconds"] = wall
    return out


# ----------------------------------------------------------------------------------------------------
# Comparing warehouses


def tables(warehouse: Path) -> dict:
    import polars as pl

    from etl.core.warehouse import Warehouse

    w = Warehouse(warehouse)
    runs = w.read("audit_runs")
    assert runs is not None
    loads = runs.filter(pl.col("kind") == "load")
    out = {}
    for name in ("recorded_crime", "crime_outcomes", "quarantine", "audit_checks"):
        frame = w.read(name)
        if frame is None:
            out[name] = None
            continue
        if name == "audit_checks":
            frame = frame.filter(pl.col("run_id").is_in(loads["run_id"].implode()))
            frame = frame.drop([c for c in frame.columns if c in ("run_id", "checked_at")])
        else:
            frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[name] = frame.sort(frame.columns, nulls_last=True)
    out["audit_runs"] = loads.select("force_id", "month", "outcome", "rows_in", "rows_loaded", "rows_quarantined").sort("month", "force_id")
    return out


def same(a: dict, b: dict) -> dict[str, bool]:
    return {k: (a[k] is None and b[k] is None) or (a[k] is not None and b[k] is not None and a[k].equals(b[k])) for k in a}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(*argv[1:])
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__.split("\n\n")[0])
    ap.add_argument("--months", type=int, default=1, help="national months to load (default 1; more: a backfill)")
    ap.add_argument("--workers", default="1,2,4", help="Dask worker counts to measure (default 1,2,4)")
    ap.add_argument("--engine", choices=("local", "prefect"), default="local", help="local: the library on a distributed client; prefect: the flows")
    ap.add_argument("--keep", action="store_true", help="keep the warehouses (their folder is printed)")
    args = ap.parse_args(argv)
    from benchmarks import machine

    work = Path(tempfile.mkdtemp(prefix="scale-out-", dir=os.environ.get("ETL_BENCH_WORK")))
    months = month_range(NATIONAL_FIRST, args.months)
    log(f"scale-out: 43 forces x {args.months} month(s) {months[0]}..{months[-1]}, engine {args.engine}; work folder {work}")
    source, rows = national_source(args.months, work / "national")
    log(f"  {rows:,} rows in the source's recorded_crime files")
    modes = ["single"] + [f"dask-{int(n)}" for n in args.workers.split(",") if n.strip()]
    results: dict[str, dict] = {}
    expected = None
    try:
        for mode in modes:
            wh = work / f"wh-{mode}"
            r = run(mode, source, wh, months[0], months[-1], args.engine, work)
            got = tables(wh)
            if expected is None:
                expected = got
                r["tables_match"] = None
            else:
                r["tables"] = same(expected, got)
                r["tables_match"] = all(r["tables"].values())
            staged = [p for p in (work / "staging").rglob("*") if p.is_file()] if (work / "staging").exists() else []
            r["staged_files_left"] = len(staged)
            results[mode] = r
            log(
                f"  {mode:>8}: {r['process_wall_seconds']:7.2f} s process, {r['load_seconds']:7.2f} s load"
                + (f" (+{r['cluster_start_seconds']:.2f} s cluster start)" if "cluster_start_seconds" in r else "")
                + ("" if r["tables_match"] is None else f", tables {'match' if r['tables_match'] else 'DIFFER: ' + str(r['tables'])}")
                + f", {r['outcomes'].count('loaded')}/{len(r['outcomes'])} force-months loaded, {len(staged)} staged file(s) left"
            )
            if not args.keep and mode != "single":
                shutil.rmtree(wh, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work / "wh-single", ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    report = {
        "benchmark": "scale_out",
        "months": months,
        "forces": len(national_forces()),
        "rows": rows,
        "engine": args.engine,
        "machine": machine.info(),
        "note": "4 workers on a 2-core machine oversubscribe it" if (os.cpu_count() or 0) < 4 else None,
        "results": results,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"scale_out-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    log(f"written {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.get("tables_match") is not False and r["staged_files_left"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
