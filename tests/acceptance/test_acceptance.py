"""Independent acceptance test: the project's published figures equal hand computation.

Nothing here imports ``etl``: the source is written by ``builder.py`` (plain csv + random), the
project is driven only through its command line (``python -m etl ...``) and its Delta tables, and
every expected figure is computed by plain Python loops over the builder's ground truth.

Two sources are built and back-filled (in parallel, each with its own PREFECT_HOME):

* ``clean``: 2018-07..2020-12, every month present, no bad rows; one month Windows-1252 with an en
  dash in npu, one UTF-8 with BOM, one with CRLF line endings; crime_outcomes.csv in 2 of 3 months.
  Expect exit 0 and every figure equal to hand computation.
* ``gaps``: the same data with the 2019-03 folder omitted and bad rows injected in 2019-05 (one of
  each kind) and 2020-02. Expect exit 1, ``incomplete`` figures where a window touches 2019-03, the
  injected rows (and only those) in quarantine, nothing lost.

Both warehouses then re-run 2019-05 alone; tables and 2020-12 measures must not change.

Set ACCEPTANCE_SERIAL=1 to run the two scenarios one after the other, ACCEPTANCE_TIMEOUT to change
the per-command time limit (seconds, default 900).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

try:
    from . import builder as B
except ImportError:  # pragma: no cover - collected without package context
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import builder as B  # type: ignore[no-redef]

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = int(os.environ.get("ACCEPTANCE_TIMEOUT", "900"))
FIRST, LAST = B.FIRST_MONTH, B.LAST_MONTH
RERUN_MONTH = "2019-05"
GAP_MONTH = "2019-03"
GAP_BAD_ROWS = {
    "2019-05": list(B.BAD_KINDS),  # one of each kind (9 rows)
    "2020-02": ["bad_code", "dup_ref", "age_range", "npu_empty"],
}
CLEAN_PERIOD_ENDS = ["2019-06", "2019-12", "2020-06", "2020-12"]
GAP_PERIOD_ENDS = ["2019-06", "2019-12", "2020-06", "2020-12"]
REL_TOL = 1e-9
# columns / keys that legitimately differ between two runs of the same input
VOLATILE_MARKERS = ("run_id", "_at", "timestamp", "time", "ingest", "loaded", "computed", "created", "updated", "inserted", "commit")


# ------------------------------------------------------------------------------------ running
@dataclass
class Run:
    args: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    def describe(self, tail: int = 3000) -> str:
        return (
            f"`python -m etl {' '.join(self.args)}` -> exit {self.returncode} in {self.seconds:.0f}s\n"
            f"--- stdout (tail) ---\n{self.stdout[-tail:]}\n--- stderr (tail) ---\n{self.stderr[-tail:]}"
        )


def _env(prefect_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):  # isolate from any Prefect server/profile configured in the caller's shell
        if key.startswith("PREFECT_API_") or key == "PREFECT_PROFILES_PATH":
            env.pop(key)
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        NO_COLOR="1",
        COLUMNS="200",
        PYTHONIOENCODING="utf-8",
    )
    return env


def run_etl(args: list[str], prefect_home: Path, timeout: int = TIMEOUT) -> Run:
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "etl", *args],
            cwd=REPO,
            env=_env(prefect_home),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
        )
        return Run(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Run(args, None, out, err + f"\n[acceptance] TIMEOUT after {timeout}s", time.monotonic() - started)


@dataclass
class Measures:
    run: Run
    rows: list[dict] | None
    error: str | None


def get_measures(month: str, warehouse: Path, prefect_home: Path) -> Measures:
    run = run_etl(["measures", "--month", month, "--warehouse", str(warehouse), "--format", "json"], prefect_home, timeout=min(TIMEOUT, 600))
    if run.returncode != 0:
        return Measures(run, None, f"measures command failed\n{run.describe()}")
    try:
        rows = json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        return Measures(run, None, f"stdout is not a JSON array ({exc})\n{run.describe()}")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return Measures(run, None, f"stdout JSON is not an array of objects\n{run.describe()}")
    return Measures(run, rows, None)


@dataclass
class Table:
    df: pl.DataFrame | None
    error: str | None


def read_table(warehouse: Path, name: str) -> Table:
    path = warehouse / name
    try:
        return Table(pl.read_delta(str(path)), None)
    except Exception as exc:
        return Table(None, f"cannot read Delta table {path}: {type(exc).__name__}: {exc}")


@dataclass
class Scenario:
    name: str
    built: B.BuiltSource
    warehouse: Path
    prefect_home: Path
    backfill: Run | None = None
    measures: dict[str, Measures] = field(default_factory=dict)
    curated: Table | None = None
    quarantine: Table | None = None
    rerun: Run | None = None
    curated_after: Table | None = None
    quarantine_after: Table | None = None
    measures_after: Measures | None = None

    def loaded_months(self) -> set[str]:
        return set(self.built.present_months)


def _play(s: Scenario, period_ends: list[str]) -> Scenario:
    s.backfill = run_etl(["backfill", "--source", str(s.built.root), "--from", FIRST, "--to", LAST, "--warehouse", str(s.warehouse)], s.prefect_home)
    for month in period_ends:
        s.measures[month] = get_measures(month, s.warehouse, s.prefect_home)
    s.curated = read_table(s.warehouse, "recorded_crime")
    s.quarantine = read_table(s.warehouse, "quarantine")
    s.rerun = run_etl(["backfill", "--source", str(s.built.root), "--from", RERUN_MONTH, "--to", RERUN_MONTH, "--warehouse", str(s.warehouse)], s.prefect_home)
    s.curated_after = read_table(s.warehouse, "recorded_crime")
    s.quarantine_after = read_table(s.warehouse, "quarantine")
    s.measures_after = get_measures("2020-12", s.warehouse, s.prefect_home)
    return s


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict[str, Scenario]:
    base = tmp_path_factory.mktemp("acceptance")
    clean = Scenario("clean", B.build_source(base / "source_clean"), base / "warehouse_clean", base / "prefect_clean")
    gaps = Scenario(
        "gaps", B.build_source(base / "source_gaps", omit_months=[GAP_MONTH], bad_rows=GAP_BAD_ROWS), base / "warehouse_gaps", base / "prefect_gaps"
    )
    for s in (clean, gaps):
        s.prefect_home.mkdir()
    jobs = [(clean, CLEAN_PERIOD_ENDS), (gaps, GAP_PERIOD_ENDS)]
    if os.environ.get("ACCEPTANCE_SERIAL"):
        for s, ends in jobs:
            _play(s, ends)
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(_play, s, ends) for s, ends in jobs]:
                future.result()
    return {"clean": clean, "gaps": gaps}


@pytest.fixture(scope="module")
def clean(scenarios) -> Scenario:
    return scenarios["clean"]


@pytest.fixture(scope="module")
def gaps(scenarios) -> Scenario:
    return scenarios["gaps"]


# ------------------------------------------------------------------------------------ helpers
def _need_backfill(s: Scenario) -> None:
    assert s.backfill is not None
    if s.backfill.returncode not in (0, 1):
        pytest.fail(f"[{s.name}] backfill did not complete normally\n{s.backfill.describe()}")


def _need_measures(s: Scenario, month: str) -> list[dict]:
    _need_backfill(s)
    m = s.measures[month]
    if m.error:
        pytest.fail(f"[{s.name}] measures for {month}: {m.error}")
    return m.rows  # type: ignore[return-value]


def _need_table(t: Table | None, what: str) -> pl.DataFrame:
    assert t is not None
    if t.error:
        pytest.fail(f"{what}: {t.error}")
    return t.df  # type: ignore[return-value]


def _month_series(df: pl.DataFrame, what: str) -> list[str]:
    if "month" not in df.columns:
        pytest.fail(f"{what} has no 'month' column; columns are {df.columns}")
    return [None if v is None else str(v)[:7] for v in df["month"].to_list()]


def _close(expected, got) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    if isinstance(got, float) and math.isnan(got):
        return False
    return math.isclose(float(expected), float(got), rel_tol=REL_TOL, abs_tol=1e-9)


NUMERIC_FIELDS = ("value", "comparison_value", "change_abs", "change_pct")
TEXT_FIELDS = ("period_start", "period_end", "comparison_start", "comparison_end", "status")


def _index_rows(rows: list[dict]) -> tuple[dict, list[str]]:
    """(measure_id, period, comparison) -> row for force test-force; plus duplicate-key problems."""
    index: dict = {}
    problems = []
    for r in rows:
        if r.get("force_id") != B.FORCE_ID or r.get("measure_id") not in B.ALL_MEASURES:
            continue
        key = (r.get("measure_id"), r.get("period"), r.get("comparison"))
        if key in index:
            problems.append(f"duplicate row for {key}: {index[key]} and {r}")
        index[key] = r
    return index, problems


def compare_measures(s: Scenario, period_end: str) -> list[str]:
    rows = _need_measures(s, period_end)
    expected = B.expected_measures(s.built, period_end, s.loaded_months())
    got, problems = _index_rows(rows)
    if not got:
        seen = sorted({(str(r.get("force_id")), str(r.get("measure_id"))) for r in rows})[:20]
        return [
            f"[{s.name}] no rows for force {B.FORCE_ID!r} and the tested measures ending {period_end}; {len(rows)} rows with (force_id, measure_id) e.g. {seen}"
        ]
    for key, e in expected.items():
        measure, period, comp = key
        label = f"[{s.name}] {measure} {period} ending {period_end} vs {comp}"
        g = got.get(key)
        if g is None:
            present = sorted({(k[1], k[2]) for k in got if k[0] == measure})
            problems.append(f"{label}: row missing (rows present for this measure: {present})")
            continue
        for f in TEXT_FIELDS:
            if g.get(f) != e[f]:
                problems.append(f"{label}: {f} expected {e[f]!r} got {g.get(f)!r}")
        for f in NUMERIC_FIELDS:
            if not _close(e[f], g.get(f)):
                problems.append(f"{label}: {f} expected {e[f]!r} got {g.get(f)!r}")
    return problems


def _fail_if(problems: list[str], header: str) -> None:
    if problems:
        shown = "\n".join(problems[:80])
        more = f"\n... and {len(problems) - 80} more" if len(problems) > 80 else ""
        pytest.fail(f"{header}: {len(problems)} problem(s)\n{shown}{more}")


def _is_volatile(name: str) -> bool:
    low = name.lower()
    return any(marker in low for marker in VOLATILE_MARKERS)


def _stable_rows(df: pl.DataFrame) -> tuple[list[str], list[str]]:
    cols = sorted(c for c in df.columns if not _is_volatile(c) and not isinstance(df.schema[c], pl.Datetime))
    return cols, sorted(repr(row) for row in df.select(cols).rows())


def _stable_measures(rows: list[dict]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if not _is_volatile(k)}, sort_keys=True, default=str) for r in rows)


def _diff_lines(before: list[str], after: list[str], limit: int = 10) -> str:
    cb, ca = Counter(before), Counter(after)
    gone = list((cb - ca).elements())[:limit]
    new = list((ca - cb).elements())[:limit]
    return (
        f"{len(before)} rows before, {len(after)} after\nonly before (first {limit}):\n  "
        + "\n  ".join(gone)
        + f"\nonly after (first {limit}):\n  "
        + "\n  ".join(new)
    )


def _recorded_crime_quarantine(s: Scenario, table: Table | None) -> pl.DataFrame | None:
    """Quarantine rows of extract recorded_crime, or None when the table does not exist."""
    if table is None or table.error:
        if not (s.warehouse / "quarantine").exists():
            return None
        _need_table(table, f"[{s.name}] quarantine table")
    df = table.df  # type: ignore[union-attr]
    for col in ("extract", "row_number", "month"):
        if col not in df.columns:
            pytest.fail(f"[{s.name}] quarantine table has no {col!r} column; columns are {df.columns}")
    return df.filter(pl.col("extract").cast(pl.Utf8) == "recorded_crime")


def _quarantined_pairs(s: Scenario, table: Table | None) -> list[tuple[str, int]]:
    df = _recorded_crime_quarantine(s, table)
    if df is None:
        return []
    months = _month_series(df, f"[{s.name}] quarantine")
    return sorted(zip(months, [int(v) for v in df["row_number"].to_list()]))


# ----------------------------------------------------------------------------- builder sanity
def test_builder_self_check(tmp_path):
    """The builder writes what its ground truth says (re-read with the csv module)."""
    B.self_check(tmp_path)


# --------------------------------------------------------------------------------- exit codes
def test_clean_backfill_exits_0(clean):
    assert clean.backfill.returncode == 0, "a backfill in which every month loads must exit 0\n" + clean.backfill.describe()


def test_backfill_with_missing_month_exits_1(gaps):
    assert gaps.backfill.returncode == 1, f"a backfill with month {GAP_MONTH} missing must exit 1\n" + gaps.backfill.describe()


def test_missing_month_is_named(gaps):
    text = gaps.backfill.stdout + gaps.backfill.stderr
    assert GAP_MONTH in text, "the backfill output should name the missing month\n" + gaps.backfill.describe()
    assert "Traceback (most recent call last)" not in text, "a missing month is bad input, not a crash: no stack trace\n" + gaps.backfill.describe()


def test_rerun_of_one_month_exits_0(scenarios):
    for s in scenarios.values():
        assert s.rerun is not None and s.rerun.returncode == 0, (
            f"[{s.name}] re-running {RERUN_MONTH} (which loads; bad rows are quarantined, not fatal) must exit 0\n{s.rerun.describe()}"
        )


def test_usage_error_exits_2(tmp_path):
    source = B.build_source(tmp_path / "src", months=["2020-01"])
    run = run_etl(
        ["backfill", "--source", str(source.root), "--from", "2020-13", "--to", "2020-12", "--warehouse", str(tmp_path / "wh")],
        tmp_path,
        timeout=min(TIMEOUT, 600),
    )
    assert run.returncode == 2, "an impossible month (2020-13) is a usage error: exit 2\n" + run.describe()
    assert "Traceback (most recent call last)" not in run.stdout + run.stderr, run.describe()


# ------------------------------------------------------------------------- clean: loading
def test_clean_every_month_loaded_with_the_right_rows(clean):
    """Every file loads whole, including the Windows-1252, BOM and CRLF variants."""
    _need_backfill(clean)
    df = _need_table(clean.curated, "[clean] recorded_crime table")
    months = _month_series(df, "[clean] recorded_crime")
    refs = [str(v) for v in df["crime_ref"].to_list()]
    got: dict[str, Counter] = {}
    for m, r in zip(months, refs):
        got.setdefault(m, Counter())[r] += 1
    problems = []
    for month in clean.built.months:
        want = Counter(r["crime_ref"] for r in clean.built.good_rows_for(month))
        have = got.get(month, Counter())
        if have != want:
            variant = clean.built.variants.get(month, "utf-8, LF")
            problems.append(
                f"{month} ({variant}): expected {sum(want.values())} rows, got {sum(have.values())}; "
                f"missing e.g. {sorted((want - have).elements())[:3]}, "
                f"unexpected e.g. {sorted((have - want).elements())[:3]}"
            )
    extra = sorted(set(got) - set(clean.built.months))
    if extra:
        problems.append(f"rows for months outside the backfill: {extra}")
    _fail_if(problems, "[clean] curated recorded_crime differs from the source files")


def test_clean_nothing_quarantined(clean):
    _need_backfill(clean)
    pairs = _quarantined_pairs(clean, clean.quarantine)
    assert pairs == [], f"[clean] the clean source has no bad rows, but quarantine holds {pairs[:20]}"


def test_clean_non_ascii_npu_decoded(clean):
    """The Windows-1252 month's en dash / e-acute arrive as the same characters as in UTF-8 months."""
    _need_backfill(clean)
    df = _need_table(clean.curated, "[clean] recorded_crime table")
    if "npu" not in df.columns:
        pytest.skip("curated recorded_crime has no npu column")
    months = _month_series(df, "[clean] recorded_crime")
    problems = []
    for month, variant in clean.built.variants.items():
        want = {r["npu"] for r in clean.built.good_rows_for(month)}
        have = {str(n) for m, n in zip(months, df["npu"].to_list()) if m == month}
        if want != have:
            problems.append(f"{month} ({variant}): npu values expected {sorted(want)} got {sorted(have)}")
    _fail_if(problems, "[clean] npu text was not decoded faithfully")


# ------------------------------------------------------------------------ clean: measures
@pytest.mark.parametrize("period_end", CLEAN_PERIOD_ENDS)
def test_clean_measures_equal_hand_computation(clean, period_end):
    _fail_if(compare_measures(clean, period_end), f"[clean] measures ending {period_end}")


def test_clean_measure_metadata(clean):
    rows = _need_measures(clean, "2020-12")
    got, problems = _index_rows(rows)
    for (measure, period, comp), r in got.items():
        label = f"{measure} {period} vs {comp}"
        if r.get("unit") != B.UNITS[measure]:
            problems.append(f"{label}: unit expected {B.UNITS[measure]!r} got {r.get('unit')!r}")
        if r.get("family") != "national_measure":
            problems.append(f"{label}: family expected 'national_measure' got {r.get('family')!r}")
        if not r.get("run_id"):
            problems.append(f"{label}: run_id is empty")
        if r.get("definition_version") in (None, ""):
            problems.append(f"{label}: definition_version is empty")
    _fail_if(problems, "[clean] measure metadata for 2020-12")


def test_no_calendar_period_outside_december(clean):
    problems = []
    for month in ("2019-06", "2020-06"):
        rows = _need_measures(clean, month)
        cal = [(r.get("measure_id"), r.get("comparison")) for r in rows if r.get("period") == "cal" and r.get("measure_id") in B.ALL_MEASURES]
        if cal:
            problems.append(f"period end {month} is not December but has cal rows {cal[:10]}")
    _fail_if(problems, "[clean] cal period")


# ------------------------------------------------------------------------- gaps: measures
@pytest.mark.parametrize("period_end", GAP_PERIOD_ENDS)
def test_gap_measures_equal_hand_computation(gaps, period_end):
    """Missing 2019-03 and quarantined rows: every figure (or its null) equals hand computation."""
    _fail_if(compare_measures(gaps, period_end), f"[gaps] measures ending {period_end}")


def test_gap_windows_are_incomplete(gaps):
    """The specific statements of the spec about a missing month, asserted one by one."""
    problems = []
    for month in GAP_PERIOD_ENDS:
        got, dup = _index_rows(_need_measures(gaps, month))
        problems += dup
        for measure in B.ALL_MEASURES:
            for period in ["r12", "cal"] if month.endswith("-12") else ["r12"]:
                r = got.get((measure, period, "ye_jun19"))
                label = f"{measure} {period} ending {month} vs ye_jun19 (contains {GAP_MONTH})"
                if r is None:
                    problems.append(f"{label}: row missing")
                elif r.get("comparison_value") is not None or r.get("status") != "incomplete":
                    problems.append(
                        f"{label}: expected comparison_value null and status incomplete, got "
                        f"comparison_value={r.get('comparison_value')!r} status={r.get('status')!r}"
                    )
            if month in ("2019-06", "2019-12"):
                for comp in ("ye_jun19", "prev_r12"):
                    r = got.get((measure, "r12", comp))
                    label = f"{measure} r12 ending {month} vs {comp} (current window contains {GAP_MONTH})"
                    if r is None:
                        problems.append(f"{label}: row missing")
                        continue
                    bad = {k: r.get(k) for k in ("value", "change_abs", "change_pct") if r.get(k) is not None}
                    if r.get("status") != "incomplete" or bad:
                        problems.append(f"{label}: expected status incomplete and null value/change, got status={r.get('status')!r} non-null={bad}")
        if month == "2020-12":
            for measure in B.ALL_MEASURES:
                r = got.get((measure, "r12", "prev_r12"))
                e = B.expected_measures(gaps.built, month, gaps.loaded_months())[(measure, "r12", "prev_r12")]
                label = f"{measure} r12 ending 2020-12 (complete) vs prev_r12 2019-01..2019-12 (incomplete)"
                if r is None:
                    problems.append(f"{label}: row missing")
                    continue
                if (
                    r.get("status") != "incomplete"
                    or r.get("change_abs") is not None
                    or r.get("change_pct") is not None
                    or r.get("comparison_value") is not None
                ):
                    problems.append(f"{label}: expected incomplete with null comparison/change, got {r}")
                if not _close(e["value"], r.get("value")):
                    problems.append(f"{label}: value expected {e['value']!r} (hand count) got {r.get('value')!r}")
    _fail_if(problems, "[gaps] incomplete windows")


# ------------------------------------------------------------------ gaps: quarantine, lineage
def test_gap_quarantine_holds_exactly_the_injected_rows(gaps):
    _need_backfill(gaps)
    df = _recorded_crime_quarantine(gaps, gaps.quarantine)
    assert df is not None, f"[gaps] no quarantine table under {gaps.warehouse}"
    got = _quarantined_pairs(gaps, gaps.quarantine)
    want = sorted(gaps.built.bad_positions)
    kinds = {(m, line): k for m, line, k in gaps.built.bad_rows}
    missing = [(p, kinds[p]) for p in sorted(set(want) - set(got))]
    unexpected = sorted(set(got) - set(want))
    dupes = sorted(p for p, n in Counter(got).items() if n > 1)
    assert not (missing or unexpected or dupes), (
        f"[gaps] quarantine (month, row_number) for recorded_crime differs from the injected bad rows\n"
        f"missing (with the defect injected): {missing}\nunexpected: {unexpected}\nduplicated: {dupes}"
    )


def test_gap_quarantine_rows_are_described(gaps):
    """Each quarantined row says where it came from and which rule failed (naming the column)."""
    _need_backfill(gaps)
    df = _recorded_crime_quarantine(gaps, gaps.quarantine)
    assert df is not None, f"[gaps] no quarantine table under {gaps.warehouse}"
    for col in ("source_file", "force_id", "failed_checks", "run_id"):
        if col not in df.columns:
            pytest.fail(f"[gaps] quarantine has no {col!r} column; columns are {df.columns}")
    kinds = {(m, line): k for m, line, k in gaps.built.bad_rows}
    months = _month_series(df, "[gaps] quarantine")
    problems = []
    for month, rec in zip(months, df.iter_rows(named=True)):
        pos = (month, int(rec["row_number"]))
        label = f"quarantined {pos}"
        src = str(rec["source_file"] or "")
        if "recorded_crime" not in src or month not in src:
            problems.append(f"{label}: source_file {src!r} should name {month}/recorded_crime.csv")
        if rec["force_id"] != B.FORCE_ID:
            problems.append(f"{label}: force_id {rec['force_id']!r}")
        if not rec["run_id"]:
            problems.append(f"{label}: run_id empty")
        checks = str(rec["failed_checks"] or "")
        if not checks.strip():
            problems.append(f"{label}: failed_checks empty")
        elif pos in kinds:
            column = B.BAD_KINDS[kinds[pos]]
            if column not in checks:
                problems.append(f"{label} ({kinds[pos]}): failed_checks {checks!r} does not name column {column!r}")
    _fail_if(problems, "[gaps] quarantine rows")


def test_gap_nothing_lost(gaps):
    """Per month: rows loaded + rows quarantined == data rows in the file; loaded rows are the good ones."""
    _need_backfill(gaps)
    df = _need_table(gaps.curated, "[gaps] recorded_crime table")
    months = _month_series(df, "[gaps] recorded_crime")
    loaded = Counter(months)
    quarantined = Counter(m for m, _ in _quarantined_pairs(gaps, gaps.quarantine))
    problems = []
    for month in gaps.built.months:
        rows_in = gaps.built.data_rows.get(month, 0)
        if loaded[month] + quarantined[month] != rows_in:
            problems.append(f"{month}: {rows_in} data rows in file but {loaded[month]} loaded + {quarantined[month]} quarantined")
    if loaded[GAP_MONTH]:
        problems.append(f"{GAP_MONTH} has no folder but {loaded[GAP_MONTH]} rows were loaded")
    # the loaded rows are exactly the good rows; for a duplicate crime_ref the FIRST occurrence is kept
    cols = [c for c in ("crime_ref", "hocr_code", "status") if c in df.columns]
    have = Counter((m,) + tuple(str(r[c]) for c in cols) for m, r in zip(months, df.iter_rows(named=True)))
    want = Counter((r["month"],) + tuple(r[c] for c in cols) for r in gaps.built.good_rows)
    if have != want:
        problems.append(
            f"loaded rows ({', '.join(cols)}) differ from the good rows: missing "
            f"{sorted((want - have).elements())[:10]}, unexpected {sorted((have - want).elements())[:10]}"
        )
    _fail_if(problems, "[gaps] rows in = rows loaded + rows quarantined")


def test_loaded_rows_carry_source_line(gaps):
    """Lineage: a loaded row points back to its line in the file (header = line 1)."""
    _need_backfill(gaps)
    df = _need_table(gaps.curated, "[gaps] recorded_crime table")
    col = next((c for c in ("source_row", "row_number") if c in df.columns), None)
    if col is None:
        pytest.fail(f"curated recorded_crime has neither source_row nor row_number; columns are {df.columns}")
    months = _month_series(df, "[gaps] recorded_crime")
    have = sorted((m, str(r), int(n)) for m, r, n in zip(months, df["crime_ref"].to_list(), df[col].to_list()))
    want = sorted((g["month"], g["crime_ref"], g["line"]) for g in gaps.built.good_rows)
    assert have == want, (
        f"[gaps] curated {col} does not match the rows' line numbers in the source files; first differences: {[p for p in zip(have, want) if p[0] != p[1]][:5]}"
    )


# --------------------------------------------------------------------------------- idempotency
@pytest.mark.parametrize("name", ["clean", "gaps"])
def test_rerun_leaves_recorded_crime_identical(scenarios, name):
    s = scenarios[name]
    _need_backfill(s)
    before = _need_table(s.curated, f"[{name}] recorded_crime before re-run")
    after = _need_table(s.curated_after, f"[{name}] recorded_crime after re-run of {RERUN_MONTH}")
    cols_b, rows_b = _stable_rows(before)
    cols_a, rows_a = _stable_rows(after)
    assert cols_b == cols_a, f"[{name}] recorded_crime columns changed: {cols_b} -> {cols_a}"
    assert rows_b == rows_a, f"[{name}] re-running {RERUN_MONTH} changed recorded_crime (compared columns {cols_b})\n" + _diff_lines(rows_b, rows_a)


@pytest.mark.parametrize("name", ["clean", "gaps"])
def test_rerun_leaves_measures_identical(scenarios, name):
    s = scenarios[name]
    before = _need_measures(s, "2020-12")
    after = s.measures_after
    assert after is not None and not after.error, f"[{name}] measures after re-run: {after and after.error}"
    b, a = _stable_measures(before), _stable_measures(after.rows)
    assert b == a, f"[{name}] measures for 2020-12 changed after re-running {RERUN_MONTH}\n" + _diff_lines(b, a)


def test_rerun_leaves_quarantine_identical(gaps):
    """PRODUCT.md: a re-run of a month gives the same tables - no second copy of its bad rows."""
    _need_backfill(gaps)
    before = _quarantined_pairs(gaps, gaps.quarantine)
    after = _quarantined_pairs(gaps, gaps.quarantine_after)
    assert before == after, (
        f"[gaps] quarantine (month, row_number) changed after re-running {RERUN_MONTH}: "
        f"{len(before)} -> {len(after)} rows; added {sorted((Counter(after) - Counter(before)).elements())}"
        f"; removed {sorted((Counter(before) - Counter(after)).elements())}"
    )
