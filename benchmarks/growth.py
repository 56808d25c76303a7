"""Growth: the same figures at 1x, 2x, 4x and 8x the national year, scaled by years (forces x years).

k x the national year = the 43 forces x 12k months from 2018-04, so every force-month partition keeps
its size and only the warehouse's history grows. Each figure comes from the cheapest honest source:

* floor, alternative  - measured on the k-year extracts (one file per force-month, no shared state),
                        unless the time predicted from the previous multiple is over the side budget;
* project load        - measured as one growing warehouse: the national-year run's warehouse is copied
                        and the next years are loaded into it, in order, until the load budget runs out;
                        the k x total is the sum of the per-load times up to load 516k (the same loads,
                        in the same order, a fresh k-year run makes). Past the budget it is extrapolated
                        from a straight-line fit of the per-load time against the number of loads already
                        in the warehouse (that is what drives it: see BENCHMARKS.md);
* project measures and expectations - measured on a warehouse of the k-year curated rows built directly
                        (benchmarks/measures_table.py), since loading k years is what the budget forbids.

Every value says whether it was measured or extrapolated.
"""

from __future__ import annotations

import datetime as dt
import math
import time

from benchmarks import config, data, machine
from benchmarks.config import GROWTH_MULTIPLES
from benchmarks.harness import GiB, MiB, _r, load_series, log, measure_size, per_load_model, series_total, time_on_built

MACHINE_MEMORY_GIB = 24


def fit_loglog(xs, ys):
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return my - b * mx, b


def fit_linear(xs, ys):
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - b * mx, b


def _value(seconds, peak, how: str, **extra) -> dict:
    return {"seconds": _r(seconds, 2), "peak_rss_bytes": round(peak) if peak is not None else None, "how": how, **extra}


def measure_growth(args, national: dict | None) -> dict:
    started = time.perf_counter()
    base_size = config.growth_base(args.growth_base)
    if args.growth_base != "national":
        national = None
    LOADS_PER_YEAR = len(base_size.forces) * 12
    nforces = len(base_size.forces)
    measured = [k for k in GROWTH_MULTIPLES if k <= args.growth_max]
    kmax = max(measured)
    budget_side = args.side_budget * 60
    points: dict[int, dict] = {k: {"multiple": k, "forces": nforces, "months": 12 * k, "measured_rows": k in measured} for k in GROWTH_MULTIPLES}
    log(
        f"\n== growth: 1x..8x the national year by years; measured up to {kmax}x, load budget {args.load_budget:.0f} min, "
        f"side budget {args.side_budget:.0f} min"
    )

    # extracts (the kmax folder holds every smaller multiple: same forces, same first month)
    ds_max = data.ensure(config.growth_size(kmax, args.growth_base), log=log)
    rows_by_k = {}
    for k in measured:
        n = LOADS_PER_YEAR * k
        rows_by_k[k] = sum(f["rows"] for f in ds_max.files[:n])
        points[k]["rows"] = rows_by_k[k]
        points[k]["files"] = n
    per_year = rows_by_k[1]
    for k in GROWTH_MULTIPLES:
        if k not in measured:
            points[k]["rows"] = per_year * k
            points[k]["rows_note"] = "estimated: 1x rows x k (extracts not generated)"
            points[k]["files"] = LOADS_PER_YEAR * k

    # floor and alternative
    for side in ("floor", "alternative"):
        prev = None
        for k in GROWTH_MULTIPLES:
            p = points[k]
            if k == 1 and national is not None and side in national.get("sides", {}):
                s = national["sides"][side]
                p[side] = _value(s["seconds"], s["peak_rss_bytes"], "measured (national-year run)")
            elif k in measured and (prev is None or prev * 2 <= budget_side):
                e = measure_size(config.growth_size(k, args.growth_base), args, sides=(side,))
                s = e["sides"][side]
                p[side] = _value(s["seconds"], s["peak_rss_bytes"], "measured", load_average=s.get("load_average"))
            else:
                p[side] = None
            prev = p[side]["seconds"] if p[side] else None

    # project load: one growing series of loads (continues the national-year series when it is there)
    series = "national-year" if args.growth_base == "national" else f"growth-{args.growth_base}"
    state, seg = load_series(
        series, base_size, ds_max.files, LOADS_PER_YEAR * kmax, args.load_budget * 60, fresh=False, checkpoints=[LOADS_PER_YEAR * k for k in measured]
    )
    per_load = state["per_load"]
    n_done = len(per_load)
    a, b = per_load_model(per_load, skip=nforces)
    seg_peaks = [(x["last_load"], x["peak_rss_bytes"]) for x in state["segments"]]
    for k in GROWTH_MULTIPLES:
        n = LOADS_PER_YEAR * k
        secs, complete = series_total(per_load, n, (a, b))
        how = (
            "measured"
            if complete
            else (f"extrapolated: {n_done} of {n} loads measured, the rest from per-load = {a:.3f} s + {b * 1000:.3f} ms x loads already in the warehouse")
        )
        # peak memory of the load processes up to load n (peak so far at a checkpoint, or whole segments ending by then)
        peaks = [v for last, v in seg_peaks if last <= n] + ([state["maxrss_at"][str(n)]] if str(n) in state.get("maxrss_at", {}) else [])
        if complete and peaks:
            points[k]["project_load"] = _value(secs, max(peaks), how)
        else:
            allp = [v for _, v in seg_peaks]
            points[k]["project_load"] = _value(
                secs,
                max(allp) if allp else None,
                how,
                peak_note="not measured at this size: the highest load-process peak measured (loads are per force-month)",
            )

    # project measures and expectations on built warehouses
    forces = [list(f) for f in base_size.forces]
    prev: dict[str, float | None] = {"measures": None, "expectations": None}
    for k in GROWTH_MULTIPLES:
        p = points[k]
        if k in measured and all(v is None or v * 2 <= budget_side for v in prev.values()):
            t = time_on_built(f"growth-{k}x-built", forces, 12 * k, base_size.first_month, ("measures", "expectations"), keep=args.keep)
            p["built_rows"] = t["rows"]
            for ph in ("measures", "expectations"):
                p[f"project_{ph}"] = _value(
                    t[ph]["seconds"],
                    t[ph]["peak_rss_bytes"],
                    "measured on a warehouse built directly",
                    built_rows=t["rows"],
                    load_average=t[ph].get("load_average"),
                    **({"not_met": t[ph].get("not_met")} if ph == "expectations" else {}),
                )
                prev[ph] = t[ph]["seconds"]
        else:
            p["project_measures"] = p["project_expectations"] = None

    analysis = _analyse(points)
    for p in points.values():
        parts = [p.get("project_load"), p.get("project_measures"), p.get("project_expectations")]
        if all(parts):
            how = "measured" if all(x["how"].startswith("measured") for x in parts) else "partly extrapolated"
            p["project"] = _value(sum(x["seconds"] for x in parts), max(x["peak_rss_bytes"] or 0 for x in parts), how)
    analysis = _analyse(points)  # again, with the project totals
    return {
        "size": "growth",
        "measured": True,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "code_sha256": machine.code_fingerprint(),
        "base": base_size.name,
        "scaling": f"forces x years: k x {base_size.name} = {nforces} forces x 12k months from {base_size.first_month}; rows per force-month unchanged",
        "multiples_with_data": measured,
        "load_budget_minutes": args.load_budget,
        "side_budget_minutes": args.side_budget,
        "project_load_model": {
            "intercept_seconds": _r(a, 4),
            "seconds_per_prior_load": _r(b, 6),
            "loads_measured": n_done,
            "series": series,
            "segments": [{k: v for k, v in x.items() if k not in ("stages_by_month", "mean_load_seconds_by_month")} for x in state["segments"]],
            "mean_load_seconds_by_year": {
                str(i + 1): _r(sum(per_load[i * LOADS_PER_YEAR : (i + 1) * LOADS_PER_YEAR]) / len(per_load[i * LOADS_PER_YEAR : (i + 1) * LOADS_PER_YEAR]), 3)
                for i in range(math.ceil(n_done / LOADS_PER_YEAR))
            },
        },
        "points": [points[k] for k in GROWTH_MULTIPLES],
        "analysis": analysis,
        "run_seconds": round(time.perf_counter() - started, 1),
    }


def statistics_mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


SERIES = ("floor", "project", "project_load", "project_measures", "project_expectations", "alternative")


def _analyse(points: dict[int, dict]) -> dict:
    base_rows = points[1]["rows"]
    out: dict = {}
    for name in SERIES:
        vals = [(p["rows"], p[name]) for p in points.values() if p.get(name)]
        if not vals:
            continue
        meas = [(r, v) for r, v in vals if v["how"].startswith("measured")]
        fit_m = fit_loglog([r for r, _ in meas], [v["seconds"] for _, v in meas])
        fit_all = fit_loglog([r for r, _ in vals], [v["seconds"] for _, v in vals])
        row = {
            "us_per_row": {f"{r / base_rows:.0f}x": _r(v["seconds"] / r * 1e6, 3) for r, v in vals},
            "exponent_measured": _r(fit_m[1], 3) if fit_m else None,
            "exponent_all": _r(fit_all[1], 3) if fit_all else None,
        }
        mem = fit_linear([r for r, v in meas if v["peak_rss_bytes"]], [v["peak_rss_bytes"] for _, v in meas if v["peak_rss_bytes"]])
        if mem:
            c, d = mem
            row["memory_fit"] = {"intercept_bytes": round(c), "bytes_per_million_rows": round(d * 1e6)}
            if d * 1e6 > 16 * MiB:  # more than 16 MiB per million rows: it grows with the data
                at = (MACHINE_MEMORY_GIB * GiB - c) / d
                row["memory_fit"]["rows_at_24GiB"] = round(at)
                row["memory_fit"]["national_years_at_24GiB"] = _r(at / base_rows, 1)
            else:
                row["memory_fit"]["national_years_at_24GiB"] = None
                row["memory_fit"]["note"] = "flat (under 16 MiB per million rows): memory does not limit it"
        out[name] = row
    # fill extrapolated memory where a point has no measured peak
    for p in points.values():
        for name in ("floor", "alternative", "project_measures", "project_expectations"):
            if p.get(name) is None and name in out and "memory_fit" in out[name]:
                mf = out[name]["memory_fit"]
                fit = (
                    fit_loglog(*zip(*[(q["rows"], q[name]["seconds"]) for q in points.values() if q.get(name)]))
                    if sum(1 for q in points.values() if q.get(name)) >= 2
                    else None
                )
                if fit:
                    p[name] = _value(
                        math.exp(fit[0] + fit[1] * math.log(p["rows"])),
                        mf["intercept_bytes"] + mf["bytes_per_million_rows"] * p["rows"] / 1e6,
                        "extrapolated: time from the log-log fit, peak from the linear fit of the measured sizes",
                    )
    out["exponent_note"] = (
        "time ~ rows^exponent, least squares on log-log; exponent_measured uses measured points only, exponent_all includes extrapolated ones; 1.0 = linear"
    )
    return out


def print_growth(g: dict) -> None:
    log(f"\ngrowth ({g['scaling']})")
    names = [n for n in SERIES if any(p.get(n) for p in g["points"])]
    log(f"  {'size':<5} {'rows':>12}  " + "".join(f"{n:>28}" for n in names))
    log(f"  {'':<5} {'':>12}  " + "".join(f"{'s  us/row  peak':>28}" for _ in names))
    for p in g["points"]:
        cells = []
        for n in names:
            v = p.get(n)
            if not v:
                cells.append(f"{'-':>28}")
                continue
            mark = "" if v["how"].startswith("measured") else "~"
            peak = (
                "-"
                if v["peak_rss_bytes"] is None
                else (f"{v['peak_rss_bytes'] / GiB:.1f}G" if v["peak_rss_bytes"] >= GiB else f"{v['peak_rss_bytes'] / MiB:.0f}M")
            )
            cells.append(f"{mark + format(v['seconds'], ',.1f'):>12} {v['seconds'] / p['rows'] * 1e6:6.1f} {peak:>7}")
        log(f"  {str(p['multiple']) + 'x':<5} {p['rows']:>12,}  " + "".join(f"{c:>28}" for c in cells))
    log("  (~ = extrapolated)")
    a = g["analysis"]
    log(
        "  fitted exponent (time ~ rows^b; measured points / with extrapolated): "
        + ", ".join(f"{n} {a[n]['exponent_measured']}/{a[n]['exponent_all']}" for n in names if n in a)
    )
    log(
        "  peak memory reaches 24 GiB at: "
        + ", ".join(
            f"{n} "
            + (
                "flat"
                if a[n].get("memory_fit", {}).get("national_years_at_24GiB") is None
                else f"{a[n]['memory_fit']['national_years_at_24GiB']} national years"
            )
            for n in names
            if n in a and "memory_fit" in a[n]
        )
    )
    m = g["project_load_model"]
    log(
        f"  project load: per-load time = {m['intercept_seconds']:.3f} s + {m['seconds_per_prior_load'] * 1000:.2f} ms x loads already in the warehouse "
        f"({m['loads_measured']} loads measured); mean per load by year: " + ", ".join(f"y{k} {v:.2f} s" for k, v in m["mean_load_seconds_by_year"].items())
    )
