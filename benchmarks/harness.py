"""Running the sides of one benchmark size, each in its own process, and shaping their results."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import config, data, machine
from benchmarks.config import CACHE_DIR, REPO_ROOT, Size

GiB = 1024**3
MiB = 1024**2


class BenchError(RuntimeError):
    pass


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------------
# running one side in a child process


def _child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_") and k != "PREFECT_PROFILES_PATH"}
    env.update(
        GX_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONWARNINGS="ignore",
        PYTHONPATH=str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    )
    env.update(extra or {})
    return env


def warm_cache(files: list[dict]) -> None:
    """Read every input file once, so that every side reads them from the page cache: the floor, measured first,
    would otherwise pay the disk (after a larger size evicted them, or when they were just generated) and the
    sides after it not, which flatters every ratio to the floor."""
    for f in files:
        with open(f["path"], "rb") as fh:
            while fh.read(1 << 24):
                pass


def run_child(side: str, job: dict, run_dir: Path, env: dict | None = None) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path, result_path, log_path = (run_dir / f"{side}.{x}" for x in ("job.json", "result.json", "log"))
    job_path.write_text(json.dumps(job))
    result_path.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log_path, "w") as lf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", side, str(job_path), str(result_path)],
            cwd=REPO_ROOT,
            env=_child_env(env),
            stdout=lf,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS only
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"side {side} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    res = json.loads(result_path.read_text())
    res["process_wall_seconds"] = round(wall, 3)
    # the child's own peak (VmHWM); ru_maxrss from wait4 starts at this parent's size at the fork, an upper bound
    res["peak_rss_bytes"] = res.get("vmhwm_bytes") or usage.ru_maxrss * 1024
    res["wait4_maxrss_bytes"] = usage.ru_maxrss * 1024
    res["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # 1-minute load before/after (others share the machine)
    return res


def _r(x, n=3):
    return None if x is None else round(float(x), n)


def _rounded(d: dict, n=3) -> dict:
    return {k: _r(v, n) for k, v in d.items()}


# ------------------------------------------------------------------------------------------------
# one size


def measure_size(size: Size, args, sides: tuple[str, ...] | None = None, series: str | None = None) -> dict:
    started = time.perf_counter()
    log(f"\n== {size.name}: {size.description}")
    ds = data.ensure(size, log=log)
    log(f"  {len(ds.files)} files, {ds.rows:,} rows" + (f" (generated in {ds.generated_seconds:.0f} s)" if ds.generated_forces else " (from cache)"))
    run_dir = CACHE_DIR / "runs" / size.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    files = ds.files
    code_at_start = machine.code_fingerprint()
    entry: dict = {
        "size": size.name,
        "description": size.description,
        "measured": True,
        "code_sha256": code_at_start,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "forces": len(size.forces),
        "months": size.months,
        "first_month": size.first_month,
        "files": len(files),
        "rows": ds.rows,
        "data": {
            "cache": str(data.force_dir(size, size.forces[0][0]).parent),
            "generated_seconds": ds.generated_seconds,
            "seed": config.SEED,
            "bad_rows_per_month": config.BAD_ROWS_PER_MONTH,
            "crimes_per_month": {f: c for f, c in size.forces}
            if len(size.forces) <= 3
            else {"min": min(c for _, c in size.forces), "max": max(c for _, c in size.forces), "sum": sum(c for _, c in size.forces)},
        },
        "sides": {},
    }
    sides = sides or size.sides
    rows = ds.rows

    if "floor" in sides:
        warm_cache(files)
        r = run_child("floor", {"files": files, "work_dir": str(run_dir / "floor-out")}, run_dir)
        shutil.rmtree(run_dir / "floor-out", ignore_errors=True)
        entry["sides"]["floor"] = _side(r, rows)
        log(f"  floor        {r['work_seconds']:8.2f} s   peak {r['peak_rss_bytes'] / MiB:7.0f} MiB")

    if "project" in sides:
        if series:
            entry["sides"]["project"] = project_series_side(size, ds, args, run_dir, series)
        else:
            wh = str(run_dir / "warehouse")
            phases = {}
            for phase in ("load", "measures", "expectations"):
                r = run_child(f"project-{phase}", {"files": files, "warehouse": wh}, run_dir)
                phases[phase] = r
                log(f"  project {phase:<12} {r['work_seconds']:8.2f} s   peak {r['peak_rss_bytes'] / MiB:7.0f} MiB")
                if r.get("failed_count"):
                    log(f"  WARNING: {r['failed_count']} of {r['loads']} loads failed, e.g. {r['failed'][0]}")
            entry["sides"]["project"] = _project(phases, rows)

    if "alternative" in sides:
        r = run_child("alternative", {"files": files, "work_dir": str(run_dir / "alt-out")}, run_dir)
        shutil.rmtree(run_dir / "alt-out", ignore_errors=True)
        entry["sides"]["alternative"] = _side(r, rows)
        entry["sides"]["alternative"].update({k: r[k] for k in ("rows_quarantined", "gx_expectation_errors", "expectations", "setup_seconds")})
        log(f"  alternative  {r['work_seconds']:8.2f} s   peak {r['peak_rss_bytes'] / MiB:7.0f} MiB")

    if size.prefect and not args.no_prefect:
        home = run_dir / "prefect-home"
        env = {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        }
        first_force = size.forces[0][0]
        months = [f["month"] for f in files if f["force_id"] == first_force][:3]
        job = {
            "files": [f for f in files if f["force_id"] == first_force],
            "work_dir": str(run_dir / "prefect"),
            "repeats": args.repeats or (1 if size.name == "small" else 3),
            "backfill_months": months,
        }
        r = run_child("prefect", job, run_dir, env)
        entry["prefect"] = _prefect(r)
        p = entry["prefect"]
        log(
            f"  prefect      flow {p['flow_seconds_median']:.2f} s vs plain {p['plain_seconds_median']:.2f} s "
            f"(overhead {p['overhead_seconds']:+.2f} s); server start-up {p['server_startup_seconds']:.1f} s"
        )

    s = entry["sides"]
    ratios = {}
    if "floor" in s and "project" in s:
        ratios["project_over_floor"] = _r(s["project"]["seconds"] / s["floor"]["seconds"], 2)
        ratios["project_load_only_over_floor"] = _r(s["project"]["phases"]["load"]["seconds"] / s["floor"]["seconds"], 2)
        # the monthly load as the issue defines it: read, validation, quarantine, Delta write, audit, expectations
        ph = s["project"]["phases"]
        ratios["project_monthly_load_over_floor"] = _r((ph["load"]["seconds"] + ph["expectations"]["seconds"]) / s["floor"]["seconds"], 2)
    if "alternative" in s and "project" in s:
        ratios["alternative_over_project"] = _r(s["alternative"]["seconds"] / s["project"]["seconds"], 2)
        ratios["alternative_over_project_load_only"] = _r(s["alternative"]["seconds"] / s["project"]["phases"]["load"]["seconds"], 2)
    if "alternative" in s and "floor" in s:
        ratios["alternative_over_floor"] = _r(s["alternative"]["seconds"] / s["floor"]["seconds"], 2)
    entry["ratios"] = ratios
    if size.extra.get("large_file_bytes"):
        entry.update(_large_file(files, s))
    entry["run_seconds"] = round(time.perf_counter() - started, 1)
    if machine.code_fingerprint() != code_at_start:
        entry["code_changed_during_run"] = True
        log("  WARNING: the project's code changed during this measurement (others edit the library); each process used the code it started with")
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return entry


def _large_file(files: list[dict], sides: dict) -> dict:
    """One large file: its bytes, the chunk size the load read it in, wall time and peak RSS per input byte."""
    from etl.core.chunks import chunk_bytes

    n = sum(int(f.get("bytes") or Path(f["path"]).stat().st_size) for f in files)
    per_byte: dict = {}
    if "floor" in sides:
        per_byte["floor"] = {"peak_rss_per_byte": _r(sides["floor"]["peak_rss_bytes"] / n, 2), "seconds_per_GB": _r(sides["floor"]["seconds"] / n * 1e9, 2)}
    for phase, d in (sides.get("project") or {}).get("phases", {}).items():
        per_byte[f"project_{phase}"] = {"peak_rss_per_byte": _r(d["peak_rss_bytes"] / n, 2), "seconds_per_GB": _r(d["seconds"] / n * 1e9, 2)}
    return {"bytes": n, "chunk_bytes": chunk_bytes(), "per_input_byte": per_byte}


# ------------------------------------------------------------------------------------------------
# a long series of loads into one warehouse: resumable and time-budgeted
#
# A load's cost grows with the number of runs already in the warehouse (see BENCHMARKS.md), so the
# national year (516 loads) and the growth sizes (up to 4,128) are loaded as one series into a kept
# warehouse, CACHE/warehouses/<series>/, with every load's time in loads.json. A run loads the next
# files in order until its budget is spent; what is not loaded is extrapolated from a straight-line fit
# of the per-load time against the number of loads already in the warehouse, and marked as such.


def series_dir(name: str) -> Path:
    return CACHE_DIR / "warehouses" / name


def load_series(
    name: str, size: Size, files: list[dict], upto: int, budget_s: float, fresh: bool, checkpoints: list[int] | None = None
) -> tuple[dict, dict | None]:
    """Continue the series `name` up to `upto` loads of `files` (in order) or until `budget_s` is spent."""
    d = series_dir(name)
    code = machine.code_fingerprint()
    key = {"data_key": size.data_key, "first_month": size.first_month, "forces": [f for f, _ in size.forces]}
    state = None
    if not fresh:
        try:
            state = json.loads((d / "loads.json").read_text())
        except (OSError, ValueError):
            state = None
        if state is not None and (state.get("key") != key or not (d / "warehouse").exists()):
            state = None
        if state is not None and state.get("code_sha256") != code:
            log(f"  the project's code changed since the series {name} was started: starting it again (a series is one code version)")
            state = None
    if state is None:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        state = {"key": key, "code_sha256": code, "per_load": [], "segments": [], "maxrss_at": {}}
    n = len(state["per_load"])
    seg = None
    if n < upto and budget_s > 0:
        log(f"  project load: loads {n + 1}..{upto} into the series warehouse {d} (budget {budget_s / 60:.0f} min) ...")
        run_dir = CACHE_DIR / "runs" / f"series-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        r = run_child(
            "project-load",
            {
                "files": files[n:upto],
                "warehouse": str(d / "warehouse"),
                "budget_seconds": budget_s,
                "checkpoints": [c - n for c in (checkpoints or []) if c > n],
            },
            run_dir,
        )
        state["per_load"] += r["per_load_list"]
        for c, v in (r.get("maxrss_at_checkpoint") or {}).items():
            state["maxrss_at"][str(int(c) + n)] = v
        seg = {
            "first_load": n + 1,
            "last_load": n + r["loads"],
            "seconds": _r(r["work_seconds"], 2),
            "stopped_by_budget": r["stopped_by_budget"],
            "peak_rss_bytes": r["peak_rss_bytes"],
            "load_average": r["load_average"],
            "code_sha256": code,
            "code_changed_during_segment": machine.code_fingerprint() != code,
            "at": dt.datetime.now().isoformat(timespec="seconds"),
            "rows_in": r["rows"],
            "rows_quarantined": r["rows_quarantined"],
            "failed_count": r["failed_count"],
            "failed": r["failed"],
            "stages": _rounded(r["stages"], 2),
            "stages_by_month": r.get("stages_by_month"),
            "mean_load_seconds_by_month": r.get("mean_load_seconds_by_month"),
        }
        state["segments"].append(seg)
        if seg["code_changed_during_segment"]:
            log("  WARNING: the project's code changed while this segment ran; its processes kept the code they started with")
        (d / "loads.json").write_text(json.dumps(state))
        shutil.rmtree(run_dir, ignore_errors=True)
        log(
            f"  project load: {r['loads']} loads in {r['work_seconds']:.0f} s"
            + (" (budget spent)" if r["stopped_by_budget"] else "")
            + f", peak {r['peak_rss_bytes'] / MiB:.0f} MiB"
        )
        if r.get("failed_count"):
            log(f"  WARNING: {r['failed_count']} of {r['loads']} loads failed, e.g. {r['failed'][0]}")
    return state, seg


def per_load_model(per_load: list[float], skip: int) -> tuple[float, float]:
    """per-load seconds = a + b x (loads already in the warehouse), least squares (first `skip` loads left out: warm-up)."""
    xs = list(range(len(per_load)))[skip:]
    ys = per_load[skip:]
    if len(xs) < 2:
        xs, ys = list(range(len(per_load))), per_load
    if len(xs) < 2:
        return (ys[0] if ys else 0.0), 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    if b < 0:  # not growing (noise): extrapolate with the recent mean instead of a falling line
        tail = ys[-max(1, len(ys) // 10) :]
        return sum(tail) / len(tail), 0.0
    return my - b * mx, b


def series_total(per_load: list[float], n: int, model: tuple[float, float]) -> tuple[float, bool]:
    """Seconds of the first n loads: measured, or measured + the model for the loads not measured."""
    if n <= len(per_load):
        return sum(per_load[:n]), True
    a, b = model
    return sum(per_load) + sum(a + b * i for i in range(len(per_load), n)), False


def project_series_side(size: Size, ds, args, run_dir: Path, series: str) -> dict:
    files = ds.files
    total = len(files)
    nforces = len(size.forces)
    state, seg = load_series(series, size, files, total, args.national_budget * 60, fresh=True)
    per_load = state["per_load"]
    done = len(per_load)
    model = per_load_model(per_load, skip=nforces)
    load_s, complete = series_total(per_load, total, model)
    phases_wh: dict = {}
    if complete:
        wh = run_dir / "warehouse"
        shutil.copytree(series_dir(series) / "warehouse", wh)  # measures and expectations write runs: keep the series clean
        for phase in ("measures", "expectations"):
            r = run_child(f"project-{phase}", {"warehouse": str(wh)}, run_dir)
            phases_wh[phase] = r
            log(f"  project {phase:<12} {r['work_seconds']:8.2f} s   peak {r['peak_rss_bytes'] / MiB:7.0f} MiB")
        shutil.rmtree(wh, ignore_errors=True)
        how_mx = "measured on the loaded warehouse"
    else:
        log(f"  project load stopped by the budget after {done} of {total} loads: measures and expectations on a warehouse built directly")
        t = time_on_built(f"{size.name}-built", [list(f) for f in size.forces], size.months, size.first_month, ("measures", "expectations"))
        for phase in ("measures", "expectations"):
            phases_wh[phase] = {
                "work_seconds": t[phase]["seconds"],
                "peak_rss_bytes": t[phase]["peak_rss_bytes"],
                "import_seconds": t[phase]["import_seconds"],
                "stages": t[phase]["stages"],
                "process_wall_seconds": t[phase]["process_wall_seconds"],
                "load_average": t[phase]["load_average"],
                **{k: t[phase][k] for k in ("measure_rows", "expectations", "not_met", "by_table") if k in t[phase]},
            }
        how_mx = f"measured on a warehouse of the same rows built directly ({t['rows']:,} rows): the load did not finish in its budget"
    a, b = model
    ls = seg["stages"] if seg else {}
    meas, exp = phases_wh["measures"], phases_wh["expectations"]
    total_s = load_s + meas["work_seconds"] + exp["work_seconds"]
    stages = _project_stages(ls, meas["stages"], exp["stages"])
    return {
        "seconds": _r(total_s),
        "rows_per_second": round(ds.rows / total_s) if total_s else None,
        "how": "measured" if complete else "load partly extrapolated",
        "import_seconds": _r(max(x.get("import_seconds") or 0 for x in (meas, exp))),
        "peak_rss_bytes": max(x for x in ((seg or {}).get("peak_rss_bytes"), meas["peak_rss_bytes"], exp["peak_rss_bytes"]) if x),
        "stages": _rounded(stages),
        "stages_note": None if complete else f"load stages are those of the {done} loads measured",
        "phases": {
            "load": {
                "seconds": _r(load_s),
                "how": "measured"
                if complete
                else f"extrapolated: {done} of {total} loads measured ({sum(per_load):.0f} s), the rest from per-load = "
                f"{a:.3f} s + {b * 1000:.3f} ms x loads already in the warehouse",
                "loads_measured": done,
                "loads": total,
                "measured_seconds": _r(sum(per_load)),
                "model": {"intercept_seconds": _r(a, 4), "seconds_per_prior_load": _r(b, 6)},
                "peak_rss_bytes": (seg or {}).get("peak_rss_bytes"),
                "load_average": (seg or {}).get("load_average"),
                "rows_in": (seg or {}).get("rows_in"),
                "rows_quarantined": (seg or {}).get("rows_quarantined"),
                "failed_count": (seg or {}).get("failed_count"),
                "failed": (seg or {}).get("failed"),
                "per_load_seconds": {
                    "median": _r(sorted(per_load)[len(per_load) // 2], 4) if per_load else None,
                    "first_tenth_mean": _r(sum(per_load[: max(1, done // 10)]) / max(1, done // 10), 4) if per_load else None,
                    "last_tenth_mean": _r(sum(per_load[-max(1, done // 10) :]) / max(1, done // 10), 4) if per_load else None,
                },
                "mean_load_seconds_by_month": (seg or {}).get("mean_load_seconds_by_month"),
                "stages_by_month": (seg or {}).get("stages_by_month"),
            },
            "measures": {
                "seconds": _r(meas["work_seconds"]),
                "how": how_mx,
                "peak_rss_bytes": meas["peak_rss_bytes"],
                "import_seconds": _r(meas.get("import_seconds")),
                "measure_rows": meas.get("measure_rows"),
                "stages": _rounded(meas["stages"]),
                "load_average": meas.get("load_average"),
            },
            "expectations": {
                "seconds": _r(exp["work_seconds"]),
                "how": how_mx,
                "peak_rss_bytes": exp["peak_rss_bytes"],
                "import_seconds": _r(exp.get("import_seconds")),
                "by_table": _rounded(exp.get("by_table") or {}),
                "expectations": exp.get("expectations"),
                "not_met": exp.get("not_met"),
                "stages": _rounded(exp["stages"]),
                "load_average": exp.get("load_average"),
            },
        },
    }


def _side(r: dict, rows: int) -> dict:
    return {
        "seconds": _r(r["work_seconds"]),
        "rows_per_second": round(rows / r["work_seconds"]) if r["work_seconds"] else None,
        "import_seconds": _r(r.get("import_seconds")),
        "process_wall_seconds": r["process_wall_seconds"],
        "peak_rss_bytes": r["peak_rss_bytes"],
        "stages": _rounded(r.get("stages", {})),
        "load_average": r.get("load_average"),
    }


def _project_stages(load: dict, measures: dict, expectations: dict) -> dict:
    """The project's stage seconds by name, from the stage events of its load, measures and expectations processes."""
    return {
        "read": load.get("read", 0.0),
        "validate": load.get("validate", 0.0),
        "cross_month": load.get("cross_month", 0.0),
        "write": load.get("write", 0.0),
        "load_other": load.get("other", 0.0),
        "measures": measures.get("measures", 0.0),
        "measures_write": measures.get("write", 0.0),
        "measures_other": measures.get("other", 0.0),
        "expectations": expectations.get("expectations", 0.0),
        "expectations_other": expectations.get("other", 0.0),
    }


def _project(phases: dict, rows: int) -> dict:
    load, meas, exp = phases["load"], phases["measures"], phases["expectations"]
    total = load["work_seconds"] + meas["work_seconds"] + exp["work_seconds"]
    ls = load["stages"]
    stages = _project_stages(ls, meas["stages"], exp["stages"])
    return {
        "seconds": _r(total),
        "rows_per_second": round(rows / total) if total else None,
        "import_seconds": _r(max(p["import_seconds"] for p in phases.values())),
        "process_wall_seconds": _r(sum(p["process_wall_seconds"] for p in phases.values())),
        "peak_rss_bytes": max(p["peak_rss_bytes"] for p in phases.values()),
        "stages": _rounded(stages),
        "phases": {
            "load": {
                "seconds": _r(load["work_seconds"]),
                "peak_rss_bytes": load["peak_rss_bytes"],
                "import_seconds": _r(load["import_seconds"]),
                "load_average": load.get("load_average"),
                "loads": load["loads"],
                "rows_in": load["rows"],
                "rows_quarantined": load["rows_quarantined"],
                "failed_count": load["failed_count"],
                "failed": load["failed"],
                "per_load_seconds": _rounded(load["per_load_seconds"], 4),
                "mean_load_seconds_by_month": load["mean_load_seconds_by_month"],
            },
            "measures": {
                "seconds": _r(meas["work_seconds"]),
                "peak_rss_bytes": meas["peak_rss_bytes"],
                "import_seconds": _r(meas["import_seconds"]),
                "measure_rows": meas["measure_rows"],
            },
            "expectations": {
                "seconds": _r(exp["work_seconds"]),
                "peak_rss_bytes": exp["peak_rss_bytes"],
                "import_seconds": _r(exp["import_seconds"]),
                "by_table": _rounded(exp["by_table"]),
                "expectations": exp["expectations"],
                "not_met": exp["not_met"],
            },
        },
    }


def _prefect(r: dict) -> dict:
    out = {
        "force_id": r["force_id"],
        "month": r["month"],
        "rows": r["rows"],
        "repeats": r["repeats"],
        "flow_seconds_median": _r(r["flow_median"]),
        "plain_seconds_median": _r(r["plain_median"]),
        "overhead_seconds": _r(r["overhead_seconds"]),
        "flow_seconds": [_r(x) for x in r["flow_seconds"]],
        "plain_seconds": [_r(x) for x in r["plain_seconds"]],
        "plain_cold_seconds": _r(r["plain_cold_seconds"]),
        "server_startup_seconds": _r(r["server_startup_seconds"]),
        "noop_flow_seconds": _r(r["noop_flow_seconds"]),
        "import_project_seconds": _r(r["import_project_seconds"]),
        "import_prefect_seconds": _r(r["import_prefect_seconds"]),
        "peak_rss_bytes": r["peak_rss_bytes"],
        "process_wall_seconds": r["process_wall_seconds"],
        "note": "flow = flows.monthly.monthly_load (load with measures + expectations as Prefect tasks); plain = "
        "pipeline.load_source_month(compute=True) + run_expectations; each on a fresh warehouse after a warm-up run",
    }
    if "backfill" in r:
        out["backfill"] = _rounded(r["backfill"])
    return out


# ------------------------------------------------------------------------------------------------
# warehouses built directly (measures target, growth of the measures and expectations phases)


def built_warehouse(forces: list[list], months: int, first_month: str) -> tuple[Path, dict]:
    """A curated warehouse of `forces` x `months` written directly (benchmarks/measures_table.py), cached."""
    base = CACHE_DIR / "built" / f"{len(forces)}x{months}-{first_month}"
    marker = base / ".bench.json"
    want = {"forces": [list(f) for f in forces], "months": months, "first_month": first_month, "seed": config.SEED, "builder": 2}
    if marker.exists():
        m = json.loads(marker.read_text())
        if m.get("want") == want and (base / "warehouse" / "audit_runs").exists():
            return base / "warehouse", m["build"]
    log(f"  building a curated warehouse of {len(forces)} forces x {months} months in {base} ...")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    run_dir = CACHE_DIR / "runs" / f"build-{base.name}"
    built = run_child("measures-build", {"warehouse": str(base / "warehouse"), "forces": want["forces"], "months": months, "first_month": first_month}, run_dir)
    marker.write_text(json.dumps({"want": want, "build": built}))
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"  built {built['rows']:,} rows, {built['force_months']} force-months in {built['work_seconds']:.0f} s")
    return base / "warehouse", built


def time_on_built(name: str, forces: list[list], months: int, first_month: str, phases: tuple[str, ...], keep: bool = False) -> dict:
    """Time the project's measures (and expectations) phases on a pristine copy of a built warehouse."""
    src, built = built_warehouse(forces, months, first_month)
    run_dir = CACHE_DIR / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    wh = run_dir / "warehouse"
    shutil.copytree(src, wh)  # the phases write into the warehouse: time them on a copy
    out = {"rows": built["rows"], "force_months": built["force_months"], "build_seconds": _r(built["work_seconds"], 1)}
    for phase in phases:
        r = run_child(f"project-{phase}", {"warehouse": str(wh)}, run_dir)
        out[phase] = {
            "seconds": _r(r["work_seconds"]),
            "stages": _rounded(r["stages"]),
            "peak_rss_bytes": r["peak_rss_bytes"],
            "import_seconds": _r(r["import_seconds"]),
            "process_wall_seconds": r["process_wall_seconds"],
            "load_average": r["load_average"],
        }
        out[phase].update({k: r[k] for k in ("measure_rows", "expectations", "not_met", "by_table") if k in r})
        log(f"  {phase} on {built['rows']:,} built rows: {r['work_seconds']:.2f} s, peak {r['peak_rss_bytes'] / MiB:.0f} MiB")
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out


def measure_measures_10y(args, small: bool = False) -> dict:
    started = time.perf_counter()
    spec = dict(config.MEASURES_10Y)
    forces = [list(f) for f in config.national_forces()]
    name = "measures-10y"
    if small:
        sm = config.sizes()["small"]
        forces = [list(f) for f in sm.forces]
        spec.update(forces=len(forces), months=sm.extra["measures_table"]["months"])
        name = "small-measures"
    log(f"\n== {name}: refresh_measures over {spec['forces']} forces x {spec['months']} months (curated table built directly)")
    t = time_on_built(name, forces, spec["months"], spec["first_month"], ("measures",), keep=args.keep)
    r = t["measures"]
    return {
        "size": name,
        "measured": True,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "code_sha256": machine.code_fingerprint(),
        "method": "curated recorded_crime Delta table (etl.core.validation.curated_schema) + population + one audit_runs load row per "
        "force-month written directly from the demo generator's valid rows (benchmarks/measures_table.py); only "
        "pipeline.refresh_measures is timed, in its own process, on a pristine copy",
        "forces": spec["forces"],
        "months": spec["months"],
        "first_month": spec["first_month"],
        "rows": t["rows"],
        "force_months": t["force_months"],
        "build_seconds": t["build_seconds"],
        "refresh_measures": r,
        "run_seconds": round(time.perf_counter() - started, 1),
    }
