"""One benchmark side in its own process: ``python -m benchmarks.worker SIDE JOB.json RESULT.json``.

Run by `benchmarks.run`, which starts each side as a child process and reads its peak resident memory
from the kernel (os.wait4 rusage), so the peaks of different sides never mix. Each side reports its
import time apart from its work time; the work time is what the ratios compare.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

T_PROCESS = time.perf_counter()


def _maxrss_bytes() -> int:
    """This process's peak resident size so far (`vmhwm_bytes`, else ``ru_maxrss``)."""
    return vmhwm_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def vmhwm_bytes() -> int | None:
    """This process's own peak resident size (VmHWM), which starts afresh at exec - unlike ``ru_maxrss``,
    which Linux starts from the parent's resident size at the fork (None where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Stages:
    """Collects the pipeline's ("stage", {name, seconds, ...}) events."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.current = 0.0  # seconds of stage events since the last reset (one load)
        self.by_table: dict[str, float] = {}
        self.by_month: dict[str, dict[str, float]] = {}
        self.month: str | None = None

    def __call__(self, event: str, data: dict) -> None:
        if event != "stage":
            return
        name, sec = data["name"], float(data["seconds"])
        self.totals[name] = self.totals.get(name, 0.0) + sec
        self.counts[name] = self.counts.get(name, 0) + 1
        self.current += sec
        if self.month is not None:
            m = self.by_month.setdefault(self.month, {})
            m[name] = m.get(name, 0.0) + sec
        if name == "expectations" and data.get("table"):
            self.by_table[data["table"]] = self.by_table.get(data["table"], 0.0) + sec


def side_floor(job: dict) -> dict:
    t = time.perf_counter()
    import polars as pl

    imported = time.perf_counter() - t
    out = Path(job["work_dir"])
    stages = {"read": 0.0, "write": 0.0}
    rows = 0
    start = time.perf_counter()
    for f in job["files"]:
        t0 = time.perf_counter()
        df = pl.read_csv(f["path"], infer_schema=False)  # every column as text, as the project reads it
        t1 = time.perf_counter()
        d = out / f["force_id"]
        d.mkdir(parents=True, exist_ok=True)
        df.write_parquet(d / f"{f['month']}.parquet", compression="zstd")
        t2 = time.perf_counter()
        stages["read"] += t1 - t0
        stages["write"] += t2 - t1
        rows += df.height
    return {"import_seconds": imported, "work_seconds": time.perf_counter() - start, "stages": stages, "rows": rows}


def _batches(files: list[dict]) -> list[list[dict]]:
    """Consecutive files of the same month whose force folders share a parent: loaded as one run."""
    out: list[list[dict]] = []
    for f in files:
        if out and out[-1][0]["month"] == f["month"] and Path(out[-1][0]["source"]).parent == Path(f["source"]).parent:
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _one_force_series(files: list[dict]) -> bool:
    """Several months of one force folder: loaded as `etl backfill` loads them (several months per commit)."""
    return len(files) > 1 and len({(f["force_id"], f["source"]) for f in files}) == 1


def _backfill(job: dict, stages: Stages) -> list[tuple[str, float]]:
    """The months of one force through `pipeline.backfill` (no measures: timed as their own phase); the
    time of each batch of months shared by its months."""
    from etl.loading import pipeline

    files = job["files"]
    first = files[0]
    done: list[tuple[str, float]] = []

    def on_month(rep) -> None:
        done.append((rep.month, time.perf_counter()))

    stages.month = None
    start = time.perf_counter()
    report = pipeline.backfill(
        first["source"], first["month"], files[-1]["month"], job["warehouse"], force_id=first["force_id"], on_month=on_month, measures=False
    )
    # a batch's months are reported together when it commits: split where reports are more than 10 ms apart
    groups: list[list[tuple[str, float]]] = []
    for month, at in done:
        if groups and at - groups[-1][-1][1] <= 0.01:
            groups[-1].append((month, at))
        else:
            groups.append([(month, at)])
    per_load, previous = [], start
    for g in groups:
        per_load += [(m, (g[-1][1] - previous) / len(g)) for m, _ in g]
        previous = g[-1][1]
    job["_report"] = report
    return per_load


def side_project_load(job: dict) -> dict:
    t = time.perf_counter()
    from etl.core import progress
    from etl.loading import pipeline

    imported = time.perf_counter() - t
    if _one_force_series(job["files"]):
        return _side_backfill(job, imported)
    wh = job["warehouse"]
    stages = Stages()
    per_load, failed, quarantined, rows = [], [], 0, 0
    other = 0.0
    start = time.perf_counter()
    budget = job.get("budget_seconds")
    checkpoints = set(job.get("checkpoints") or [])
    at_checkpoint: dict[int, float] = {}
    maxrss_at: dict[int, int] = {}  # peak RSS so far when a checkpoint (number of loads) is reached
    with progress.listening(stages):
        for batch in _batches(job["files"]):
            if budget is not None and time.perf_counter() - start > budget:
                break
            f = batch[0]
            stages.current = 0.0
            stages.month = f["month"]
            t0 = time.perf_counter()
            try:
                if len(batch) > 1:  # every force of the month in one run: SOURCE/<force>/YYYY-MM/ (etl.loading.pipeline.force_folders)
                    reps = pipeline.load_source_month(str(Path(f["source"]).parent), f["month"], wh, compute=False)
                else:
                    reps = [pipeline.load_month(f["source"], f["month"], wh, force_id=f["force_id"], compute=False)]
                for rep in reps:
                    if rep.outcome != "loaded":
                        failed.append(f"{rep.force_id} {rep.month}: {rep.message}")
                    quarantined += rep.rows_quarantined
                    rows += rep.rows_in
            except pipeline.LoadFailed as exc:
                failed.append(f"{f['force_id']} {f['month']}: {exc.message}")
            sec = time.perf_counter() - t0
            other += sec - stages.current
            bm = stages.by_month.setdefault(f["month"], {})
            bm["other"] = bm.get("other", 0.0) + sec - stages.current
            before = len(per_load)
            per_load += [(f["month"], sec / len(batch))] * len(batch)  # per force-month, so a series counts force-months
            for c in checkpoints:
                if before < c <= len(per_load):
                    at_checkpoint[c] = time.perf_counter() - start
                    maxrss_at[c] = _maxrss_bytes()
            if len(per_load) // 43 != before // 43:
                print(f"{len(per_load)} force-months ({f['month']}): {time.perf_counter() - start:.0f} s, last run {sec:.2f} s for {len(batch)}", flush=True)
    work = time.perf_counter() - start
    if per_load and len(failed) == len(per_load):
        raise RuntimeError(f"every load failed, e.g. {failed[0]}")
    by_month: dict[str, list[float]] = {}
    for m, s in per_load:
        by_month.setdefault(m, []).append(s)
    secs = [s for _, s in per_load]
    return {
        "import_seconds": imported,
        "work_seconds": work,
        "rows": rows,
        "rows_quarantined": quarantined,
        "loads": len(per_load),
        "failed": failed[:10],
        "failed_count": len(failed),
        "stages": {**stages.totals, "other": other},
        "stage_counts": stages.counts,
        "per_load_seconds": {
            "median": statistics.median(secs) if secs else None,
            "min": min(secs, default=None),
            "max": max(secs, default=None),
            "first_tenth_mean": statistics.fmean(secs[: max(1, len(secs) // 10)]) if secs else None,
            "last_tenth_mean": statistics.fmean(secs[-max(1, len(secs) // 10) :]) if secs else None,
        },
        "mean_load_seconds_by_month": {m: round(statistics.fmean(v), 4) for m, v in by_month.items()},
        "stages_by_month": {m: {k: round(v, 3) for k, v in d.items()} for m, d in stages.by_month.items()},
        "per_load_list": [round(s, 4) for s in secs],
        "at_checkpoint": at_checkpoint,
        "maxrss_at_checkpoint": maxrss_at,
        "stopped_by_budget": len(per_load) < len(job["files"]),
    }


def _side_backfill(job: dict, imported: float) -> dict:
    from etl.core import progress

    stages = Stages()
    start = time.perf_counter()
    with progress.listening(stages):
        per_load = _backfill(job, stages)
    work = time.perf_counter() - start
    report = job.pop("_report")
    failed = [f"{r.force_id} {r.month}: {r.message}" for r in report.months if r.outcome != "loaded"]
    secs = [s for _, s in per_load]
    return {
        "import_seconds": imported,
        "work_seconds": work,
        "rows": sum(r.rows_in for r in report.months),
        "rows_quarantined": sum(r.rows_quarantined for r in report.months),
        "loads": len(report.months),
        "how": "pipeline.backfill (several months per commit), measures not refreshed (their own phase)",
        "failed": failed[:10],
        "failed_count": len(failed),
        "stages": {**stages.totals, "other": work - sum(stages.totals.values())},
        "stage_counts": stages.counts,
        "per_load_seconds": {
            "median": statistics.median(secs) if secs else None,
            "min": min(secs, default=None),
            "max": max(secs, default=None),
            "first_tenth_mean": statistics.fmean(secs[: max(1, len(secs) // 10)]) if secs else None,
            "last_tenth_mean": statistics.fmean(secs[-max(1, len(secs) // 10) :]) if secs else None,
        },
        "mean_load_seconds_by_month": {m: round(s, 4) for m, s in per_load},
        "stages_by_month": {},
        "per_load_list": [round(s, 4) for s in secs],
        "at_checkpoint": {},
        "maxrss_at_checkpoint": {},
        "stopped_by_budget": False,
    }


def side_project_measures(job: dict) -> dict:
    t = time.perf_counter()
    from etl.core import progress
    from etl.loading import pipeline

    imported = time.perf_counter() - t
    stages = Stages()
    start = time.perf_counter()
    with progress.listening(stages):
        run_id, n = pipeline.refresh_measures(job["warehouse"])
    work = time.perf_counter() - start
    st = dict(stages.totals)
    st["other"] = work - sum(st.values())
    return {"import_seconds": imported, "work_seconds": work, "stages": st, "measure_rows": n, "run_id": run_id}


def side_project_expectations(job: dict) -> dict:
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    t = time.perf_counter()
    import great_expectations  # noqa: F401  (imported lazily by run_expectations; timed here as import)

    from etl.core import progress
    from etl.quality.expectations import run_expectations

    imported = time.perf_counter() - t
    stages = Stages()
    start = time.perf_counter()
    with progress.listening(stages):
        report = run_expectations(job["warehouse"])
    work = time.perf_counter() - start
    st = dict(stages.totals)
    st["other"] = work - sum(st.values())  # reading the tables, to_pandas, GX context, audit commit
    return {"import_seconds": imported, "work_seconds": work, "stages": st, "by_table": stages.by_table, "expectations": report.total, "not_met": report.failed}


def side_alternative(job: dict) -> dict:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    t = time.perf_counter()
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401

    from benchmarks.alternative import Alternative

    imported = time.perf_counter() - t
    t = time.perf_counter()
    alt = Alternative()
    setup = time.perf_counter() - t
    timings: dict[str, float] = {}
    rows = quarantined = errors = 0
    start = time.perf_counter()
    for f in job["files"]:
        r = alt.process(f, Path(job["work_dir"]), timings)
        rows += r["rows"]
        quarantined += r["quarantined"]
        errors += r["gx_errors"]
    work = time.perf_counter() - start
    timings["other"] = work - sum(timings.values())
    return {
        "import_seconds": imported,
        "setup_seconds": setup,
        "work_seconds": work,
        "stages": timings,
        "rows": rows,
        "rows_quarantined": quarantined,
        "gx_expectation_errors": errors,
        "expectations": alt.n_expectations,
    }


def side_prefect(job: dict) -> dict:
    """Orchestration overhead: the same force-month through flows.monthly.monthly_load and through the
    plain functions the flow calls (pipeline.load_source_month(compute=True) + run_expectations), each on
    a fresh warehouse, after a warm-up; plus the ephemeral server start-up and a trivial flow's cost."""
    import shutil
    import warnings

    warnings.filterwarnings("ignore")
    f = job["files"][0]
    base = Path(job["work_dir"])
    repeats = int(job.get("repeats", 3))
    out: dict = {"force_id": f["force_id"], "month": f["month"], "rows": f["rows"], "repeats": repeats}

    t = time.perf_counter()
    from etl.loading import pipeline
    from etl.quality.expectations import run_expectations

    out["import_project_seconds"] = time.perf_counter() - t

    n = [0]

    def fresh() -> str:
        n[0] += 1
        p = base / f"wh{n[0]}"
        shutil.rmtree(p, ignore_errors=True)
        return str(p)

    def plain() -> float:
        wh = fresh()
        t0 = time.perf_counter()
        pipeline.load_source_month(f["source"], f["month"], wh, force_id=f["force_id"], compute=True)
        run_expectations(wh)
        return time.perf_counter() - t0

    # First call in a fresh process: includes great_expectations' import inside run_expectations.
    out["plain_cold_seconds"] = plain()
    out["plain_seconds"] = [plain() for _ in range(repeats)]

    t = time.perf_counter()
    from prefect import flow

    from etl.flows import monthly

    out["import_prefect_seconds"] = time.perf_counter() - t

    @flow(name="bench-noop")
    def noop() -> int:
        return 1

    t = time.perf_counter()
    noop()
    first = time.perf_counter() - t
    noops = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        noop()
        noops.append(time.perf_counter() - t)
    out["noop_flow_seconds"] = statistics.median(noops)
    out["server_startup_seconds"] = first - statistics.median(noops)

    def flowrun() -> float:
        wh = fresh()
        t0 = time.perf_counter()
        monthly.monthly_load(f["source"], f["month"], wh, force_id=f["force_id"])
        return time.perf_counter() - t0

    flows_, plains = [], []
    for _ in range(repeats):  # alternate, so machine noise hits both alike
        flows_.append(flowrun())
        plains.append(plain())
    out["flow_seconds"] = flows_
    out["plain_seconds"] += plains
    out["flow_median"] = statistics.median(flows_)
    out["plain_median"] = statistics.median(out["plain_seconds"])
    out["overhead_seconds"] = out["flow_median"] - out["plain_median"]

    months = job.get("backfill_months") or []
    if len(months) >= 2:
        fm = [x for x in job["files"] if x["force_id"] == f["force_id"] and x["month"] in months]
        first_m, last_m = fm[0]["month"], fm[-1]["month"]
        wh = fresh()
        t0 = time.perf_counter()
        pipeline.backfill(f["source"], first_m, last_m, wh, force_id=f["force_id"])
        run_expectations(wh)
        bp = time.perf_counter() - t0
        wh = fresh()
        t0 = time.perf_counter()
        monthly.backfill(f["source"], first_m, last_m, wh, force_id=f["force_id"])
        bf = time.perf_counter() - t0
        out["backfill"] = {"months": len(fm), "plain_seconds": bp, "flow_seconds": bf, "overhead_per_month_seconds": (bf - bp) / len(fm)}
    for p in base.glob("wh*"):
        shutil.rmtree(p, ignore_errors=True)
    out["work_seconds"] = time.perf_counter() - T_PROCESS
    out["import_seconds"] = out["import_project_seconds"] + out["import_prefect_seconds"]
    return out


def side_measures_build(job: dict) -> dict:
    from benchmarks.measures_table import build

    return build(job)


SIDES = {
    "floor": side_floor,
    "project-load": side_project_load,
    "project-measures": side_project_measures,
    "project-expectations": side_project_expectations,
    "alternative": side_alternative,
    "prefect": side_prefect,
    "measures-build": side_measures_build,
}


def main(argv: list[str]) -> int:
    side, job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    result = SIDES[side](job)
    result["self_maxrss_bytes"] = _maxrss_bytes()
    result["vmhwm_bytes"] = vmhwm_bytes()
    result["process_seconds"] = time.perf_counter() - T_PROCESS
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
