"""Markdown tables of a results file, for BENCHMARKS.md: ``python -m benchmarks.report [benchmarks/results/latest.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.config import RESULTS_DIR

GiB = 1024**3
MiB = 1024**2


def mem(b) -> str:
    if b is None:
        return "-"
    return f"{b / GiB:.2f} GiB" if b >= GiB else f"{b / MiB:.0f} MiB"


def sec(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def rate(x) -> str:
    if not x:
        return "-"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def machine(r: dict) -> str:
    m = r["machine"]
    v = m["versions"]
    return "\n".join(
        [
            "| | |",
            "|---|---|",
            f"| CPU | {m['cpu_model']} ({m['nproc']} cores as nproc) |",
            f"| memory | {m['memory_bytes'] / GiB:.1f} GiB |",
            f"| OS | {m['platform']} |",
            f"| Python | {m['python']} |",
            "| libraries | " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + " |",
            "| code measured (sha256 prefixes) | " + ", ".join(f"{k} {h}" for k, h in m.get("code_sha256", {}).items()) + " |",
        ]
    )


def sizes_table(r: dict) -> str:
    rows = [
        "| size | rows | floor s | project s (load + measures + expectations) | alternative s | monthly load (load + expectations) / floor | project / floor | alternative / project | peak RSS floor / project / alternative | measured |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for name in ("small", "force-month", "national-year", "backfill-10y"):
        e = r["sizes"].get(name)
        if not e:
            continue
        s = e["sides"]
        f, p, a = s.get("floor"), s.get("project"), s.get("alternative")
        ph = p["phases"] if p else {}
        proj = f"**{sec(p['seconds'])}** = {sec(ph['load']['seconds'])} + {sec(ph['measures']['seconds'])} + {sec(ph['expectations']['seconds'])}" if p else "-"
        how = p.get("how", "measured") if p else "-"
        monthly = e["ratios"].get("project_monthly_load_over_floor")
        if monthly is None and f and p:
            monthly = round((ph["load"]["seconds"] + ph["expectations"]["seconds"]) / f["seconds"], 2)
        rows.append(
            f"| {name} | {e['rows']:,} | {sec(f['seconds']) if f else '-'} | {proj} | {sec(a['seconds']) if a else '-'} | "
            f"{monthly if monthly is not None else '-'}x | {e['ratios'].get('project_over_floor', '-')}x | {e['ratios'].get('alternative_over_project', '-')}x | "
            f"{mem(f['peak_rss_bytes']) if f else '-'} / {mem(p['peak_rss_bytes']) if p else '-'} / {mem(a['peak_rss_bytes']) if a else '-'} | "
            f"{how}, {e['measured_at']} |"
        )
    return "\n".join(rows)


def stages_table(r: dict) -> str:
    rows = [
        "| size | read | validate | cross_month | write | load other | measures | measures write | expectations (GX) | expectations other | per load: median / first tenth / last tenth |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("small", "force-month", "national-year", "backfill-10y"):
        e = r["sizes"].get(name)
        if not e or "project" not in e["sides"]:
            continue
        p = e["sides"]["project"]
        st = p["stages"]
        pl = p["phases"]["load"]["per_load_seconds"]
        rows.append(
            f"| {name} | "
            + " | ".join(
                sec(st[k])
                for k in ("read", "validate", "cross_month", "write", "load_other", "measures", "measures_write", "expectations", "expectations_other")
            )
            + f" | {pl['median']:.2f} / {pl['first_tenth_mean']:.2f} / {pl['last_tenth_mean']:.2f} s |"
        )
    return "\n".join(rows)


def alt_table(r: dict) -> str:
    rows = ["| size | read | prepare | GX validate | quarantine | write | rows/s | quarantined (project / GX) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in ("small", "force-month", "national-year", "backfill-10y"):
        e = r["sizes"].get(name)
        if not e or "alternative" not in e["sides"]:
            continue
        a = e["sides"]["alternative"]
        st = a["stages"]
        q = e["sides"].get("project", {}).get("phases", {}).get("load", {}).get("rows_quarantined")
        rows.append(
            f"| {name} | "
            + " | ".join(sec(st.get(k)) for k in ("read", "prepare", "validate", "quarantine", "write"))
            + f" | {rate(a['rows_per_second'])} | {q if q is not None else '-'} / {a['rows_quarantined']} |"
        )
    return "\n".join(rows)


def prefect_table(r: dict) -> str:
    rows = [
        "| size | rows | monthly_load flow s | plain functions s | overhead s | ephemeral server start-up s | trivial flow s | first run in a new process s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("small", "force-month"):
        e = r["sizes"].get(name)
        if not e or "prefect" not in e:
            continue
        p = e["prefect"]
        rows.append(
            f"| {name} | {p['rows']:,} | {p['flow_seconds_median']:.2f} | {p['plain_seconds_median']:.2f} | {p['overhead_seconds']:+.2f} | "
            f"{p['server_startup_seconds']:.1f} | {p['noop_flow_seconds']:.2f} | {p['plain_cold_seconds']:.2f} |"
        )
    return "\n".join(rows)


def growth_table(r: dict) -> str:
    g = r["sizes"].get("growth")
    if not g:
        return "(growth not measured)"
    names = ("floor", "project_load", "project_measures", "project_expectations", "project", "alternative")
    rows = ["| size | rows | " + " | ".join(names) + " |", "|---|---:|" + "---|" * len(names)]
    for p in g["points"]:
        cells = []
        for n in names:
            v = p.get(n)
            if not v:
                cells.append("-")
                continue
            mark = "" if v["how"].startswith("measured") else "~"
            cells.append(
                f"{mark}{sec(v['seconds'])} s, {v['seconds'] / p['rows'] * 1e6:.1f} us/row, {mark if v.get('peak_note') or mark else ''}{mem(v['peak_rss_bytes'])}"
            )
        rows.append(f"| {p['multiple']}x | {p['rows']:,} | " + " | ".join(cells) + " |")
    a = g["analysis"]
    rows.append("")
    rows.append("| | " + " | ".join(names) + " |")
    rows.append("|---|" + "---|" * len(names))
    rows.append("| exponent (measured points) | " + " | ".join(str(a.get(n, {}).get("exponent_measured", "-")) for n in names) + " |")
    rows.append("| exponent (with extrapolated) | " + " | ".join(str(a.get(n, {}).get("exponent_all", "-")) for n in names) + " |")
    rows.append(
        "| 24 GiB reached at | "
        + " | ".join(
            (
                "flat"
                if a.get(n, {}).get("memory_fit", {}).get("national_years_at_24GiB") is None
                else f"{a[n]['memory_fit']['national_years_at_24GiB']} national years"
            )
            if "memory_fit" in a.get(n, {})
            else "-"
            for n in names
        )
        + " |"
    )
    return "\n".join(rows)


def large_files_table(r: dict) -> str:
    rows = [
        "| size | file | rows | chunk | floor s, peak | project load s, peak | measures s, peak | expectations s, peak | peak RSS per input byte: floor / load / measures / expectations | measured |",
        "|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for name in ("large-file-200mb", "large-file-2gb"):
        e = r["sizes"].get(name)
        if not e or "per_input_byte" not in e:
            continue
        f, p = e["sides"].get("floor"), e["sides"].get("project")
        ph = p["phases"] if p else {}
        pb = e["per_input_byte"]

        def cell(d):
            return f"{sec(d['seconds'])}, {mem(d['peak_rss_bytes'])}" if d else "-"

        per = " / ".join(f"{pb[k]['peak_rss_per_byte']:.2f}" if k in pb else "-" for k in ("floor", "project_load", "project_measures", "project_expectations"))
        rows.append(
            f"| {name} | {e['bytes'] / 1e6:,.0f} MB | {e['rows']:,} | {e['chunk_bytes'] / MiB:.0f} MiB | {cell(f)} | {cell(ph.get('load'))} | "
            f"{cell(ph.get('measures'))} | {cell(ph.get('expectations'))} | {per} | {e['measured_at']} |"
        )
    return "\n".join(rows)


def targets_table(r: dict) -> str:
    rows = ["| target | measured | target | ratio | met | source |", "|---|---:|---:|---:|---|---|"]
    for t in r["targets"]:
        if t["measured"] is None:
            rows.append(f"| {t['what']} | - | {t['target']} {t['unit']} | - | not measured | |")
            continue
        rows.append(f"| {t['what']} | {t['measured']:.2f} | {t['target']} {t['unit']} | {t['ratio']:.2f} | {'yes' if t['met'] else '**no**'} | {t['source']} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else RESULTS_DIR / "latest.json"
    r = json.loads(path.read_text())
    for title, fn in (
        ("Machine", machine),
        ("Sizes", sizes_table),
        ("Project stages (s)", stages_table),
        ("Alternative stages (s)", alt_table),
        ("Prefect", prefect_table),
        ("Growth", growth_table),
        ("Large files", large_files_table),
        ("Targets", targets_table),
    ):
        print(f"### {title}\n\n{fn(r)}\n")
    d = r["sizes"].get("demo")
    if d:
        print(
            f"demo: `etl demo` (default size) from a cold process and a fresh folder: exit {d['exit_code']}, {d['seconds']:.1f} s, "
            f"peak RSS {mem(d['peak_rss_bytes'])}, {d['written_bytes'] / 1e6:.0f} MB written ({d['measured_at']}; load average at start "
            f"{', '.join(f'{x:.2f}' for x in d['load_average'])})\n"
        )
    m = r["sizes"].get("measures-10y")
    if m:
        rm = m["refresh_measures"]
        print(
            f"measures-10y: {m['forces']} forces x {m['months']} months, {m['rows']:,} rows: refresh_measures {rm['seconds']:.2f} s, "
            f"peak {mem(rm['peak_rss_bytes'])}, stages {rm['stages']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
