"""Benchmark entry point: ``python -m benchmarks.run --size small|force-month|national-year|backfill-10y|growth|measures-10y|large-files|all``.

For each size it generates (or reuses) synthetic extracts, then times, one after the other on the same
files and each in its own process (so peak memory is per side):

* floor        polars reads every CSV as text and writes zstd Parquet, nothing else;
* project      the project's own functions: `pipeline.load_source_month(..., compute=False)` per month
               (every force folder of the month in one run when there are several forces, as `etl backfill`
               does for a SOURCE/<force>/YYYY-MM/ source; stage events read / validate / cross_month / write),
               then `pipeline.refresh_measures`, then `etl.quality.expectations.run_expectations` - three processes,
               one warehouse;
* alternative  pandas + Great Expectations (one suite from the recorded_crime contract, COMPLETE
               results with row numbers, quarantine), then Parquet;
* prefect      (small, force-month) one force-month through `flows.monthly.monthly_load` against the
               plain functions it calls, plus the ephemeral server start-up.

The large-file sizes (``large-file-200mb``, ``large-file-2gb``; ``large-files`` runs both) hold one force-month
in one file of 200 MB / 2 GB and measure floor and project only, reporting peak RSS and seconds per input byte.

Results: a table on stdout, ``<out>/<timestamp>.json`` and ``<out>/latest.json`` (latest.json keeps the
sizes not re-measured in this run from the previous latest.json, each with its own timestamp).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import config, machine
from benchmarks.config import CACHE_DIR, GROWTH_MULTIPLES, RESULTS_DIR
from benchmarks.demo import measure_demo
from benchmarks.growth import measure_growth, print_growth
from benchmarks.harness import GiB, MiB, _r, log, measure_measures_10y, measure_size

TARGETS = {
    "national_year_load_within_2x_floor": {
        "target": 2.0,
        "unit": "x floor wall time",
        "what": "national year: project monthly load (read, validation, quarantine, Delta write, audit, "
        "checks across months, expectations) wall time / floor wall time; measures have their own target",
    },
    "measures_43x10y_under_10s": {"target": 10.0, "unit": "s", "what": "refresh_measures over 43 forces x 10 years"},
    "national_year_peak_rss_under_3GiB": {"target": 3.0, "unit": "GiB", "what": "national year: highest peak RSS of the project's processes"},
    "force_month_e2e_under_2s": {
        "target": 2.0,
        "unit": "s",
        "what": "one large force-month end to end through flows.monthly.monthly_load, server already started",
    },
    "backfill_10y_within_5x_floor": {
        "target": 5.0,
        "unit": "x floor wall time",
        "what": "ten-year single-force backfill as `etl backfill` runs it (months batched per commit, then measures and expectations) / floor wall time",
    },
    "growth_exponent_at_most_1_05": {
        "target": 1.05,
        "unit": "exponent",
        "what": "growth from 1x to 8x a national year: the largest exponent (time ~ rows^exponent) of the project's stages (load, measures, expectations)",
    },
    "demo_under_60s": {"target": 60.0, "unit": "s", "what": "`etl demo` (default size, Prefect flows included) from a cold process and a fresh folder"},
    "large_file_2gb_load_peak_rss_under_4GiB": {
        "target": 4.0,
        "unit": "GiB",
        "what": "one 2 GB extract file: peak RSS of the project's load (read, validation, quarantine, checks across months, Delta write, audit)",
    },
}


# ------------------------------------------------------------------------------------------------
# targets


def targets(results: dict) -> list[dict]:
    sizes = results["sizes"]
    out = []

    def add(tid: str, measured: float | None, source: str, extra: dict | None = None):
        t = TARGETS[tid]
        row = {"id": tid, "what": t["what"], "target": t["target"], "unit": t["unit"], "measured": _r(measured, 3), "source": source}
        if measured is None:
            row.update(ratio=None, met=None, note="not measured in the results")
        else:
            row.update(ratio=_r(measured / t["target"], 2), met=bool(measured <= t["target"]))
            if not row["met"]:
                row["missed_by"] = f"{measured - t['target']:.2f} {t['unit'].split()[0]} ({measured / t['target']:.2f}x the target)"
        row.update(extra or {})
        out.append(row)

    nat = sizes.get("national-year")
    if nat and "floor" in nat["sides"] and "project" in nat["sides"]:
        ph = nat["sides"]["project"]["phases"]
        ratio = nat["ratios"].get("project_monthly_load_over_floor")
        if ratio is None:  # results written before this ratio existed
            ratio = _r((ph["load"]["seconds"] + ph["expectations"]["seconds"]) / nat["sides"]["floor"]["seconds"], 2)
        add(
            "national_year_load_within_2x_floor",
            ratio,
            f"national-year ({nat['measured_at']})",
            {
                "floor_seconds": nat["sides"]["floor"]["seconds"],
                "load_seconds": ph["load"]["seconds"],
                "expectations_seconds": ph["expectations"]["seconds"],
                "project_with_measures_over_floor": nat["ratios"].get("project_over_floor"),
                "project_load_only_over_floor": nat["ratios"].get("project_load_only_over_floor"),
            },
        )
    else:
        add("national_year_load_within_2x_floor", None, "national-year")
    m10 = sizes.get("measures-10y")
    add(
        "measures_43x10y_under_10s",
        m10["refresh_measures"]["seconds"] if m10 else None,
        f"measures-10y ({m10['measured_at']})" if m10 else "measures-10y",
        {"method": "curated table built directly, refresh_measures timed alone"} if m10 else None,
    )
    if nat and "project" in nat["sides"]:
        ph = nat["sides"]["project"]["phases"]
        add(
            "national_year_peak_rss_under_3GiB",
            nat["sides"]["project"]["peak_rss_bytes"] / GiB,
            f"national-year ({nat['measured_at']})",
            {"peak_by_phase_GiB": {k: _r(v["peak_rss_bytes"] / GiB, 2) for k, v in ph.items()}},
        )
    else:
        add("national_year_peak_rss_under_3GiB", None, "national-year")
    fm = sizes.get("force-month")
    if fm and "prefect" in fm:
        add(
            "force_month_e2e_under_2s",
            fm["prefect"]["flow_seconds_median"],
            f"force-month ({fm['measured_at']})",
            {
                "plain_seconds_median": fm["prefect"]["plain_seconds_median"],
                "plain_cold_seconds": fm["prefect"]["plain_cold_seconds"],
                "server_startup_seconds_excluded": fm["prefect"]["server_startup_seconds"],
            },
        )
    elif fm and "project" in fm["sides"]:
        add("force_month_e2e_under_2s", fm["sides"]["project"]["seconds"], f"force-month ({fm['measured_at']}), without Prefect")
    else:
        add("force_month_e2e_under_2s", None, "force-month")
    bf = sizes.get("backfill-10y")
    if bf and "floor" in bf["sides"] and "project" in bf["sides"]:
        ph = bf["sides"]["project"]["phases"]
        add(
            "backfill_10y_within_5x_floor",
            bf["ratios"].get("project_over_floor"),
            f"backfill-10y ({bf['measured_at']})",
            {
                "floor_seconds": bf["sides"]["floor"]["seconds"],
                "phases_seconds": {k: v["seconds"] for k, v in ph.items()},
                "project_load_only_over_floor": bf["ratios"].get("project_load_only_over_floor"),
            },
        )
    else:
        add("backfill_10y_within_5x_floor", None, "backfill-10y")
    growth = sizes.get("growth")
    analysis = (growth or {}).get("analysis") or {}
    stages = {k: analysis[k].get("exponent_measured") for k in ("project_load", "project_measures", "project_expectations") if k in analysis}
    if stages and all(v is not None for v in stages.values()):
        add("growth_exponent_at_most_1_05", max(stages.values()), f"growth ({growth['measured_at']})", {"exponents": stages})  # type: ignore[index]
    else:
        add("growth_exponent_at_most_1_05", None, "growth")
    demo = sizes.get("demo")
    if demo and demo.get("measured"):
        add(
            "demo_under_60s",
            demo["seconds"],
            f"demo ({demo['measured_at']})",
            {"peak_rss_bytes": demo["peak_rss_bytes"], "written_bytes": demo["written_bytes"]},
        )
    else:
        add("demo_under_60s", None, "demo")
    big = sizes.get("large-file-2gb")
    if big and "project" in big["sides"]:
        ph = big["sides"]["project"]["phases"]
        add(
            "large_file_2gb_load_peak_rss_under_4GiB",
            ph["load"]["peak_rss_bytes"] / GiB,
            f"large-file-2gb ({big['measured_at']})",
            {
                "file_bytes": big.get("bytes"),
                "chunk_bytes": big.get("chunk_bytes"),
                "peak_by_phase_GiB": {k: _r(v["peak_rss_bytes"] / GiB, 2) for k, v in ph.items()},
            },
        )
    else:
        add("large_file_2gb_load_peak_rss_under_4GiB", None, "large-file-2gb")
    return out


# ------------------------------------------------------------------------------------------------
# printing


def _gib(b: int | None) -> str:
    if b is None:
        return "-"
    return f"{b / GiB:.2f} GiB" if b >= GiB else f"{b / MiB:.0f} MiB"


def _rate(x: float | None) -> str:
    if not x:
        return "-"
    return f"{x / 1e6:.2f}M/s" if x >= 1e6 else f"{x / 1e3:.0f}k/s"


def print_size(e: dict) -> None:
    log(f"\n{e['size']}: {e['forces']} force(s) x {e['months']} month(s) = {e['files']} files, {e['rows']:,} rows   (run took {e.get('run_seconds', 0):.0f} s)")
    s = e["sides"]
    log(f"  {'side':<12} {'wall s':>9} {'rows/s':>9} {'peak RSS':>10} {'import s':>9}   stages (s)")
    for name in ("floor", "project", "alternative"):
        if name not in s:
            continue
        d = s[name]
        st = d["stages"]
        if name == "project":
            ph = d["phases"]
            detail = (
                f"load {ph['load']['seconds']:.2f} [read {st['read']:.2f}, validate {st['validate']:.2f}, cross_month {st['cross_month']:.2f}, "
                f"write {st['write']:.2f}, other {st['load_other']:.2f}] | measures {ph['measures']['seconds']:.2f} "
                f"[compute {st['measures']:.2f}, write {st['measures_write']:.2f}] | expectations {ph['expectations']['seconds']:.2f} "
                f"[GX {st['expectations']:.2f}, other {st['expectations_other']:.2f}]"
            )
        else:
            detail = ", ".join(f"{k} {v:.2f}" for k, v in st.items())
        log(f"  {name:<12} {d['seconds']:9.2f} {_rate(d['rows_per_second']):>9} {_gib(d['peak_rss_bytes']):>10} {d['import_seconds'] or 0:9.2f}   {detail}")
        if name == "project" and d.get("how", "measured") != "measured":
            log(f"  {'':<12} NOTE load {ph['load']['how']}; measures/expectations {ph['measures']['how']}")
        if name == "project":
            log(
                f"  {'':<12} peaks: load {_gib(ph['load']['peak_rss_bytes'])}, measures {_gib(ph['measures']['peak_rss_bytes'])}, "
                f"expectations {_gib(ph['expectations']['peak_rss_bytes'])}; quarantined {ph['load']['rows_quarantined'] or 0:,} rows; "
                f"per load median {ph['load']['per_load_seconds']['median']:.3f} s (first tenth {ph['load']['per_load_seconds']['first_tenth_mean']:.3f}, "
                f"last tenth {ph['load']['per_load_seconds']['last_tenth_mean']:.3f})"
                + (f"; {ph['load']['failed_count']} loads FAILED" if ph["load"]["failed_count"] else "")
            )
        if name == "alternative":
            log(
                f"  {'':<12} {d['expectations']} expectations; quarantined {d['rows_quarantined']:,} rows (GX flags every copy of a "
                f"duplicate crime_ref, the project keeps the first)"
                + (f"; {d['gx_expectation_errors']} expectation errors!" if d["gx_expectation_errors"] else "")
            )
    r = e.get("ratios", {})
    if r:
        log("  ratios: " + ", ".join(f"{k.replace('_over_', '/')} {v:.2f}x" for k, v in r.items()))
    if "per_input_byte" in e:
        log(
            f"  one file of {e['bytes'] / 1e6:,.0f} MB (read in chunks of {e['chunk_bytes'] / MiB:.0f} MiB): peak RSS per input byte "
            + ", ".join(f"{k} {v['peak_rss_per_byte']:.2f}" for k, v in e["per_input_byte"].items())
            + "; seconds per GB "
            + ", ".join(f"{k} {v['seconds_per_GB']:.1f}" for k, v in e["per_input_byte"].items())
        )
    if "prefect" in e:
        p = e["prefect"]
        log(
            f"  prefect: monthly_load flow {p['flow_seconds_median']:.2f} s vs plain functions {p['plain_seconds_median']:.2f} s "
            f"-> orchestration overhead {p['overhead_seconds']:+.2f} s per force-month; ephemeral server start-up {p['server_startup_seconds']:.1f} s; "
            f"trivial flow {p['noop_flow_seconds']:.2f} s; cold first run in a new process {p['plain_cold_seconds']:.2f} s; "
            f"imports: project {p['import_project_seconds']:.1f} s, prefect {p['import_prefect_seconds']:.1f} s"
            + (
                f"; backfill of {p['backfill']['months']:.0f} months: flow {p['backfill']['flow_seconds']:.2f} s vs plain {p['backfill']['plain_seconds']:.2f} s"
                if "backfill" in p
                else ""
            )
        )


def print_measures(e: dict) -> None:
    r = e["refresh_measures"]
    log(
        f"\n{e['size']}: refresh_measures over {e['forces']} forces x {e['months']} months ({e['rows']:,} curated rows, built directly in "
        f"{e['build_seconds']:.0f} s): {r['seconds']:.2f} s, peak {_gib(r['peak_rss_bytes'])}, {r['measure_rows']:,} measure rows; stages "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
    )


def print_targets(ts: list[dict]) -> None:
    log("\ntargets")
    for t in ts:
        if t["measured"] is None:
            log(f"  [ ? ] {t['id']}: not measured")
            continue
        mark = "MET " if t["met"] else "MISS"
        log(
            f"  [{mark}] {t['id']}: measured {t['measured']:.2f} vs target {t['target']} {t['unit']} (ratio {t['ratio']:.2f})"
            + (f" - missed by {t['missed_by']}" if not t["met"] else "")
            + f"   [{t['source']}]"
        )


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--size",
        default="small",
        choices=["small", "force-month", "national-year", "backfill-10y", "growth", "measures-10y", *config.LARGE_FILES, "large-files", "demo", "all"],
    )
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default benchmarks/results)")
    ap.add_argument(
        "--growth-max",
        type=int,
        default=8,
        choices=GROWTH_MULTIPLES,
        help="largest growth multiple whose extracts are generated and measured; larger ones are extrapolated (default 8 = 52M rows, 96 months of 43 forces, ~17 GB of CSV in the cache)",
    )
    ap.add_argument(
        "--national-budget",
        type=float,
        default=30.0,
        help="national-year: minutes of project loads before the rest of the 516 is extrapolated (default 30; 0 = no loads)",
    )
    ap.add_argument(
        "--load-budget", type=float, default=20.0, help="growth: minutes of project loads beyond the national year before the rest is extrapolated (default 20)"
    )
    ap.add_argument(
        "--side-budget",
        type=float,
        default=8.0,
        help="growth: a side is extrapolated at a multiple when its time at half that multiple x 2 is over this many minutes (default 8: the pandas + GX alternative is measured at 1x and 2x and extrapolated at 4x and 8x, where it has grown linearly in every run)",
    )
    ap.add_argument(
        "--growth-base",
        default="national",
        choices=["national", "small"],
        help="growth: the 1x size (small = the small size's forces x 12 months, to try the harness quickly)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="repeats of the Prefect flow / plain comparison (default 1 for small, else 3)")
    ap.add_argument("--no-prefect", action="store_true", help="skip the Prefect overhead measurement")
    ap.add_argument("--keep", action="store_true", help=f"keep warehouses and outputs under {CACHE_DIR}/runs")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "timestamp": stamp,
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine.info(),
        "sizes": {},
    }
    log(
        f"machine: {results['machine']['nproc']} cores, {results['machine']['memory_bytes'] / GiB:.1f} GiB, {results['machine']['cpu_model']}, "
        f"load average {results['machine']['load_average_at_start']}; cache {CACHE_DIR}"
    )

    sz = config.sizes()
    todo = (
        ["small", "force-month", "national-year", "backfill-10y", "measures-10y", "growth", *config.LARGE_FILES, "demo"] if args.size == "all" else [args.size]
    )
    if args.size == "large-files":
        todo = list(config.LARGE_FILES)
    for name in todo:
        if name == "measures-10y":
            results["sizes"][name] = measure_measures_10y(args)
        elif name == "demo":
            results["sizes"][name] = measure_demo(args)
        elif name == "growth":
            national = results["sizes"].get("national-year")
            if national is None and (out_dir / "latest.json").exists():  # reuse the last national-year floor and alternative
                try:
                    prev = json.loads((out_dir / "latest.json").read_text())["sizes"].get("national-year")
                except (ValueError, KeyError):
                    prev = None
                if prev and prev.get("data", {}).get("seed") == config.SEED and prev.get("rows"):
                    national = prev
                    log(f"growth: 1x floor and alternative from the national-year run of {prev.get('measured_at')}")
            results["sizes"]["growth"] = measure_growth(args, national)
        else:
            results["sizes"][name] = measure_size(sz[name], args, series="national-year" if name == "national-year" else None)
            if name == "small":
                results["sizes"]["small-measures"] = measure_measures_10y(args, small=True)
    results["run_seconds"] = round(time.perf_counter() - started, 1)

    # latest.json: this run's sizes over the previous latest's (each size keeps its own timestamp)
    latest_path = out_dir / "latest.json"
    merged = {"sizes": {}}
    if latest_path.exists():
        try:
            merged = json.loads(latest_path.read_text())
        except ValueError:
            pass
    merged_sizes = dict(merged.get("sizes", {}))
    for k, v in results["sizes"].items():
        v["from_run"] = stamp
        merged_sizes[k] = v
    results["targets"] = targets(results)
    latest = {"timestamp": stamp, "machine": results["machine"], "sizes": merged_sizes, "runs": sorted(set(merged.get("runs", [])) | {stamp})}
    latest["targets"] = targets(latest)
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=1))
    latest_path.write_text(json.dumps(latest, indent=1))

    log("\n" + "=" * 100)
    for name, e in results["sizes"].items():
        if name == "growth":
            print_growth(e)
        elif name == "demo":
            log(
                f"\ndemo: `etl demo` exit {e['exit_code']} in {e['seconds']:.1f} s, peak RSS {e['peak_rss_bytes'] / GiB:.2f} GiB, wrote {e['written_bytes'] / 1e6:.0f} MB"
            )
        elif "refresh_measures" in e:
            print_measures(e)
        else:
            print_size(e)
    print_targets(latest["targets"])
    log(f"\nwrote {out_dir / (stamp + '.json')} and {latest_path} (run took {results['run_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
