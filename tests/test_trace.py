"""``etl trace``: a figure traced to its sources (issue 12, item 1).

A warehouse of two years of one force is built through the library (`etl.loading.backfill`) from
extracts written row by row, with a month read as Windows-1252 (a failing warning) and rejected rows
that carry planted personal data. The trace must give exactly what was fed in: counts by month and
offence group as written, the files' sha256 as hashlib computes them, row counts, the checks (the
warning included), the runs, and never a planted value.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core.warehouse import Warehouse
from etl.loading import backfill, load_source_month
from etl.trail.asof import warehouse_as_of
from etl.trail.trace import SAFE_DETAIL_CHECKS, TraceError, trace_figure
from tests.conftest import CRIME_HEADER, crime, write_csv, write_month, write_population

FORCE = "test-force"
MONTHS = [f"{y}-{m:02d}" for y in (2018, 2019, 2020) for m in range(1, 13)][6:30]  # 2018-07 .. 2020-06
PLANTED = "ZZPLANTED"  # planted in personal / identifying columns of rejected rows: must never be shown
ENCODED_MONTH = "2020-03"  # written in Windows-1252: the file.encoding warning fails
BAD_MONTH = "2020-06"  # two rejected rows
NC_GROUPS = {"34B": "grp_robbery_personal", "39": "grp_theft_from_person", "28E": "grp_burglary_residential", "45": "grp_vehicle_offences"}
HOMICIDE = {"1", "4.1"}


def month_crimes(k: int, m: str) -> list[dict]:
    """Month number k: homicides k % 3, robbery of personal property 2 (+1 cancelled), theft from the person
    k % 2, residential burglary 1, vehicle offences k % 4, other crime 3."""
    codes = ["1"] * (k % 3) + ["34B", "34B"] + ["39"] * (k % 2) + ["28E"] + ["45"] * (k % 4) + ["8N", "8N", "8N"]
    rows = [crime(f"{m}-{i}", f"{m}-{(i % 27) + 1:02d}", code) for i, code in enumerate(codes)]
    if k % 3 and k % 2 == 0:
        rows[0]["knife_sharp"] = "Y"  # a knife-linked homicide every other month with homicides
    rows.append(crime(f"{m}-c", f"{m}-02", "34B", status="cancelled"))
    if m == ENCODED_MONTH:
        rows[0]["npu"] = "Ñ1"  # not UTF-8 once written in Windows-1252
    return rows


def bad_rows(m: str) -> list[dict]:
    """Two rows that fail: an unknown offence code, and a planted victim_age (personal) and crime_ref (identifier)."""
    return [crime(f"{m}-bad1", f"{m}-03", "ZZZ"), crime(f"{PLANTED}98", f"{m}-04", "1", age=f"{PLANTED}99")]


def expected_counts(rows_by_month: dict[str, list[dict]], groups: dict[str, str], months: list[str]) -> dict[tuple[str, str], float]:
    """(month, group) -> recorded rows written in the month whose code is in the group (hand-counted from the rows)."""
    out: dict[tuple[str, str], float] = {}
    for m in months:
        for r in rows_by_month[m]:
            if r["status"] == "recorded" and r["hocr_code"] in groups:
                key = (m, groups[r["hocr_code"]])
                out[key] = out.get(key, 0.0) + 1
    return out


def write_source(source: Path) -> dict[str, list[dict]]:
    write_population(source, {2018: 490_000, 2019: 500_000, 2020: 510_000})
    written = {}
    for k, m in enumerate(MONTHS):
        rows = month_crimes(k, m)
        written[m] = rows  # the rows that load (the bad rows are rejected)
        feed = rows + (bad_rows(m) if m == BAD_MONTH else [])
        if m == ENCODED_MONTH:
            write_csv(source / m / "recorded_crime.csv", CRIME_HEADER, feed, encoding="cp1252")
        else:
            write_month(source, m, feed)
    return written


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("trace")
    source, warehouse = root / "source", root / "warehouse"
    written = write_source(source)
    report = backfill(source, MONTHS[0], MONTHS[-1], warehouse)
    assert [r.outcome for r in report.months] == ["loaded"] * len(MONTHS)
    return source, warehouse, written, report.measures_run_id


@pytest.fixture
def copy(built, tmp_path):
    """A copy of the built source and warehouse that a test may change."""
    source, warehouse, written, run_id = built
    shutil.copytree(source, tmp_path / "source")
    shutil.copytree(warehouse, tmp_path / "warehouse")
    return tmp_path / "source", tmp_path / "warehouse", written, run_id


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trace_of_a_count_adds_up_by_month_and_group(built):
    source, warehouse, written, run_id = built
    t = trace_figure(Warehouse(warehouse), "nm_nc_total", "2020-06")
    assert t.force_id == FORCE and t.month == "2020-06"
    assert [(f.period, f.comparison) for f in t.figures] == [("r12", "ye_jun19"), ("r12", "prev_r12")]
    current, previous = MONTHS[12:], MONTHS[:12]
    want_counts = expected_counts(written, NC_GROUPS, MONTHS)
    assert {(c.month, c.group): c.value for c in t.counts} == want_counts
    assert {c.component for c in t.counts} == {"value"}
    value = sum(v for (m, _g), v in want_counts.items() if m in current)
    baseline = sum(v for (m, _g), v in want_counts.items() if m in previous)
    for f in t.figures:
        assert (f.value, f.comparison_value, f.status, f.run_id) == (value, baseline, "monitor", run_id)
        assert (f.current.start, f.current.end, f.current.recomputed, f.current.adds_up) == ("2019-07", "2020-06", value, True)
        assert (f.comparison_window.start, f.comparison_window.end, f.comparison_window.recomputed) == ("2018-07", "2019-06", baseline)
        assert f.comparison_window.adds_up is True and f.comparison_window.source == "force_records"
        assert f.current.parts == {"rows counted": value}
    # the definition: formula, groups with the codes in force, versions
    d = t.definition
    assert d["kind"] == "count" and "offence groups grp_burglary_residential + grp_robbery_personal" in d["formula"] and "status recorded" in d["formula"]
    burglary = next(g for g in d["offence_groups"] if g["group"] == "grp_burglary_residential")
    assert burglary["version"] == "2017-04" and "28E" in burglary["codes"] and burglary["months"] == "2018-07 to 2020-06"
    assert d["run_versions"]["measures"] == d["file_versions"]["measures"] and d["versions_note"] is None
    text = t.to_text()
    assert "the counts below add up to the stored value" in text and "does NOT add up" not in text
    assert f"  2019-07  current     {int(want_counts[('2019-07', 'grp_burglary_residential')])}" in text


def test_trace_names_each_months_load_run_files_hashes_and_row_counts(built):
    source, warehouse, written, run_id = built
    wh = Warehouse(warehouse)
    t = trace_figure(wh, "nm_homicide_count", "2020-06", FORCE, period="r12", comparison="prev_r12")
    assert [s.month for s in t.sources] == MONTHS and all(s.loaded for s in t.sources)
    runs = wh.read("audit_runs")
    loads = dict(runs.filter(pl.col("kind") == "load").select("month", "run_id").iter_rows())
    for s in t.sources:
        assert s.run_id == loads[s.month] and s.reloaded_by == [] and s.contract_versions == {"recorded_crime": "1.0.0"}
        (f,) = s.files
        path = source / s.month / "recorded_crime.csv"
        assert (f.extract, f.file, f.sha256, f.contract, f.contract_version) == (
            "recorded_crime",
            f"{s.month}/recorded_crime.csv",
            sha(path),
            "recorded_crime",
            "1.0.0",
        )
        assert f.source_root in (None, str(source.resolve()))  # recorded by runs that know it
        bad = 2 if s.month == BAD_MONTH else 0
        assert (f.rows_in, f.rows_loaded, f.rows_quarantined) == (len(written[s.month]) + bad, len(written[s.month]), bad)
        assert f.encoding == ("windows-1252" if s.month == ENCODED_MONTH else "utf-8")
        assert s.windows == (["current"] if s.month >= "2019-07" else ["comparison"])
    assert t.runs["figure"]["run_id"] == run_id and t.runs["figure"]["kind"] == "measures"
    assert t.runs["loads"] == sorted(loads.values())
    assert t.warehouse["table_versions"]["measures"] == wh.committed_versions()["measures"]
    assert set(t.warehouse["table_versions"]) == {"measures", "audit_runs", "audit_checks", "recorded_crime"}
    text = t.to_text()
    assert f"sha256 {sha(source / BAD_MONTH / 'recorded_crime.csv')}" in text
    assert f"rows in {len(written[BAD_MONTH]) + 2}, loaded {len(written[BAD_MONTH])}, quarantined 2" in text


def test_trace_lists_the_checks_with_warnings_and_never_an_unsafe_detail(built):
    _source, warehouse, _written, _run_id = built
    t = trace_figure(Warehouse(warehouse), "nm_homicide_count", "2020-06", period="r12", comparison="prev_r12")
    by = {(c.month, c.check): c for c in t.checks}
    enc = by[(ENCODED_MONTH, "file.encoding")]
    assert (enc.severity, enc.passed, enc.source_file) == ("warning", False, f"{ENCODED_MONTH}/recorded_crime.csv")
    assert enc.note == "read as Windows-1252 (not UTF-8); check accented characters"
    assert by[("2020-05", "file.encoding")].passed is True
    code = by[(BAD_MONTH, "hocr_code.code_list")]
    assert (code.severity, code.passed, code.failing_rows, code.rows_checked) == ("error", False, 1, len(_written[BAD_MONTH]) + 2)
    age = by[(BAD_MONTH, "victim_age.type")]
    assert (age.passed, age.failing_rows, age.description) == (False, 1, "victim_age must be a whole number")
    assert len({c.month for c in t.checks}) == 24 and {c.extract for c in t.checks} == {"recorded_crime"}
    assert all(c.note is None for c in t.checks if c.check not in SAFE_DETAIL_CHECKS)
    text = t.to_text()
    assert f"{ENCODED_MONTH} {ENCODED_MONTH}/recorded_crime.csv: file.encoding (warning) 0 failing row(s): read as Windows-1252" in text
    assert f"{BAD_MONTH} {BAD_MONTH}/recorded_crime.csv: victim_age.type (error) 1 failing row(s)" in text


def test_a_rate_shows_the_count_and_the_population(built):
    _source, warehouse, written, _run_id = built
    t = trace_figure(Warehouse(warehouse), "nm_homicide_rate_per_million", "2020-06", period="r12", comparison="prev_r12")
    (f,) = t.figures
    homicides = sum(1 for m in MONTHS[12:] for r in written[m] if r["hocr_code"] in HOMICIDE)
    before = sum(1 for m in MONTHS[:12] for r in written[m] if r["hocr_code"] in HOMICIDE)
    assert f.current.parts == {"nm_homicide_count (rows counted)": homicides, "population": 510_000, "population_year": 2020}
    assert f.comparison_window.parts == {"nm_homicide_count (rows counted)": before, "population": 500_000, "population_year": 2019}
    assert f.current.adds_up and f.comparison_window.adds_up
    assert f.value == pytest.approx(homicides / 510_000 * 1_000_000, rel=1e-12)
    assert t.extracts == ["recorded_crime", "population"]
    assert {x.extract for s in t.sources for x in s.files} == {"recorded_crime", "population"}


def test_a_share_shows_numerator_and_denominator(built):
    _source, warehouse, written, _run_id = built
    t = trace_figure(Warehouse(warehouse), "nm_homicide_share_knife", "2020-06", period="r12", comparison="prev_r12")
    (f,) = t.figures
    homicides = [r for m in MONTHS[12:] for r in written[m] if r["hocr_code"] in HOMICIDE]
    knife = [r for r in homicides if r["knife_sharp"] == "Y"]
    assert 0 < len(knife) < len(homicides)
    assert t.components == {"num": "numerator rows", "den": "denominator rows"}
    assert f.current.parts == {"numerator rows": len(knife), "denominator rows": len(homicides)} and f.current.adds_up is True
    assert f.value == pytest.approx(len(knife) / len(homicides) * 100, rel=1e-12)
    by_month = {(c.month, c.component): c.value for c in t.counts if c.group == "grp_homicide"}
    assert sum(v for (m, comp), v in by_month.items() if comp == "num" and m in MONTHS[12:]) == len(knife)


def test_a_figure_that_is_not_there_says_what_is(built):
    _source, warehouse, _written, _run_id = built
    wh = Warehouse(warehouse)
    with pytest.raises(TraceError, match=r"no figure of nm_nc_total for test-force ends 2020-07: its period ends are 2018-07 to 2020-06"):
        trace_figure(wh, "nm_nc_total", "2020-07")
    with pytest.raises(TraceError, match=r"--measure nm_nc_totl: no such measure in the measures table; did you mean nm_nc_total"):
        trace_figure(wh, "nm_nc_totl", "2020-06")
    with pytest.raises(TraceError, match=r"--force other: no figures of nm_nc_total for this force \(forces: test-force\)"):
        trace_figure(wh, "nm_nc_total", "2020-06", "other")
    with pytest.raises(TraceError, match=r"--period fytd: nm_nc_total has no fytd figure ending 2020-06 \(periods: r12\)"):
        trace_figure(wh, "nm_nc_total", "2020-06", period="fytd")
    with pytest.raises(TraceError, match=r"--comparison sply: .* \(comparisons: prev_r12, ye_jun19\)"):
        trace_figure(wh, "nm_nc_total", "2020-06", period="r12", comparison="sply")


def test_an_incomplete_window_names_the_months_not_loaded(built):
    _source, warehouse, _written, _run_id = built
    t = trace_figure(Warehouse(warehouse), "nm_nc_total", "2019-06", period="r12", comparison="prev_r12")
    (f,) = t.figures
    assert f.status == "incomplete" and f.comparison_value is None
    assert f.comparison_window.months_not_loaded == [f"2017-{m:02d}" for m in range(7, 13)] + [f"2018-{m:02d}" for m in range(1, 7)]
    assert f.comparison_window.adds_up is True and "12 month(s) of the window not loaded (2017-07 to 2018-06)" in f.comparison_window.explanation
    assert [s.month for s in t.sources if not s.loaded] == f.comparison_window.months_not_loaded
    assert f.current.adds_up is True


def test_json_is_the_same_data_and_no_planted_value_appears(built):
    _source, warehouse, _written, _run_id = built
    wh = Warehouse(warehouse)
    for measure in ("nm_nc_total", "nm_homicide_count", "nm_homicide_victims_u25_share"):
        t = trace_figure(wh, measure, "2020-06")
        data = json.loads(t.to_json())
        assert data == t.to_dict() and data["measure_id"] == measure
        assert data["figures"][0]["current"]["adds_up"] is True
        assert PLANTED not in t.to_text() and PLANTED not in t.to_json()
    # the planted values did reach the warehouse (redacted), so the check above could fail
    q = wh.read("quarantine").filter(pl.col("month") == BAD_MONTH)
    assert q.height == 2 and PLANTED not in "".join(q["record"].to_list())


def test_a_corrected_reload_is_traced_with_the_hashes_before_and_after(copy):
    source, warehouse, written, refresh_run = copy
    wh = Warehouse(warehouse)
    old_sha = sha(source / BAD_MONTH / "recorded_crime.csv")
    before = trace_figure(wh, "nm_homicide_count", BAD_MONTH, period="r12", comparison="prev_r12")
    corrected = written[BAD_MONTH] + [crime(f"{BAD_MONTH}-new", f"{BAD_MONTH}-05", "1")]
    write_month(source, BAD_MONTH, corrected)
    (report,) = load_source_month(source, BAD_MONTH, warehouse)
    now = trace_figure(wh, "nm_homicide_count", BAD_MONTH, period="r12", comparison="prev_r12")
    assert now.figures[0].value == before.figures[0].value + 1 and now.figures[0].current.adds_up is True
    assert now.runs["figure"]["run_id"] == report.run_id and now.runs["figure"]["kind"] == "load"
    new_file = now.sources[-1].files[0]
    assert (now.sources[-1].run_id, new_file.sha256, new_file.rows_quarantined) == (report.run_id, sha(source / BAD_MONTH / "recorded_crime.csv"), 0)
    # as published: the figure, its run and the old file's hash, read back as of the refresh run
    then = trace_figure(warehouse_as_of(wh, refresh_run), "nm_homicide_count", BAD_MONTH, period="r12", comparison="prev_r12")
    assert then.figures[0].value == before.figures[0].value and then.figures[0].current.adds_up is True
    assert then.runs["figure"]["run_id"] == refresh_run and then.sources[-1].files[0].sha256 == old_sha != new_file.sha256
    assert then.warehouse["as_of"].startswith(f"as of run {refresh_run}") and then.warehouse["run_id"] == refresh_run
    assert then.warehouse["table_versions"]["measures"] < now.warehouse["table_versions"]["measures"]


def test_a_month_reloaded_after_the_figure_is_flagged_and_does_not_add_up(copy):
    source, warehouse, written, refresh_run = copy
    write_month(source, BAD_MONTH, written[BAD_MONTH] + [crime(f"{BAD_MONTH}-new", f"{BAD_MONTH}-05", "1")])
    (report,) = load_source_month(source, BAD_MONTH, warehouse, compute=False)  # the measures are not recomputed
    t = trace_figure(Warehouse(warehouse), "nm_homicide_count", BAD_MONTH, period="r12", comparison="prev_r12")
    last = t.sources[-1]
    assert last.reloaded_by == [report.run_id] and last.run_id != report.run_id and t.runs["figure"]["run_id"] == refresh_run
    (f,) = t.figures
    assert f.current.adds_up is False and f.current.recomputed == f.value + 1
    assert f"does NOT add up: recomputed {int(f.value + 1)} from the tables as read, stored {int(f.value)}" in t.to_text()
    assert f"reloaded after the figure was computed by run(s) {report.run_id}" in t.to_text()


def test_each_force_of_a_batch_commit_gets_its_own_load_run(tmp_path):
    """Forces loaded in one commit: the figures carry the first force's run id; every force's month is
    traced to its own load run of that commit, none of them taken for a later reload."""
    region = tmp_path / "region"
    for force in ("east", "north"):
        for m in ("2019-01", "2019-02"):
            write_month(region / force, m, [crime(f"{force}-{m}-{i}", f"{m}-1{i}", "1", force=force) for i in range(3 if force == "north" else 1)])
    for m in ("2019-01", "2019-02"):
        reports = load_source_month(region, m, tmp_path / "wh")
    runs = {r.force_id: r.run_id for r in reports}
    wh = Warehouse(tmp_path / "wh")
    t = trace_figure(wh, "nm_homicide_count", "2019-02", "north", period="r12", comparison="prev_r12")
    assert t.runs["figure"]["run_id"] == runs["east"]  # the batch's first run id is on every force's rows
    last = t.sources[-1]
    assert (last.month, last.run_id, last.reloaded_by, last.files[0].file) == ("2019-02", runs["north"], [], "north/2019-02/recorded_crime.csv")
    assert [c.value for c in t.counts] == [3.0, 3.0] and t.figures[0].status == "incomplete"


runner = CliRunner()


def test_cli_trace_text_json_and_errors(built):
    _source, warehouse, _written, _run_id = built
    r = runner.invoke(app, ["trace", "--measure", "nm_nc_total", "--month", "2020-06", "--warehouse", str(warehouse)])
    assert r.exit_code == 0, r.output
    for heading in ("Figures", "Definition", "Counts by month and offence group", "Sources", "Checks on those files", "Runs", "Warehouse"):
        assert f"\n{heading}" in r.stdout
    r = runner.invoke(
        app,
        [
            "trace",
            "--measure",
            "nm_nc_total",
            "--month",
            "2020-06",
            "--period",
            "r12",
            "--comparison",
            "ye_jun19",
            "--format",
            "json",
            "--warehouse",
            str(warehouse),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(f["period"], f["comparison"]) for f in data["figures"]] == [("r12", "ye_jun19")]
    r = runner.invoke(app, ["trace", "--measure", "nm_nc_total", "--month", "2021-06", "--warehouse", str(warehouse)])
    assert r.exit_code == 2 and "its period ends are 2018-07 to 2020-06" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["trace", "--measure", "nm_nc_total", "--month", "2020-06", "--as-of", "no-such-run", "--warehouse", str(warehouse)])
    assert r.exit_code == 2 and "no run with that id" in r.output
    r = runner.invoke(app, ["trace", "--measure", "nm_nc_total", "--month", "2020-06", "--format", "xml", "--warehouse", str(warehouse)])
    assert r.exit_code == 2 and "--format xml: must be text or json" in r.output


@pytest.mark.slow
def test_cli_trace_in_a_subprocess_as_of_a_run(copy):
    source, warehouse, written, refresh_run = copy
    write_month(source, BAD_MONTH, written[BAD_MONTH] + [crime(f"{BAD_MONTH}-new", f"{BAD_MONTH}-05", "1")])
    load_source_month(source, BAD_MONTH, warehouse)
    args = [sys.executable, "-m", "etl", "trace", "--measure", "nm_homicide_count", "--month", BAD_MONTH, "--period", "r12", "--comparison", "prev_r12"]
    args += ["--warehouse", str(warehouse), "--format", "json"]
    now = subprocess.run(args, capture_output=True, text=True, timeout=300)
    then = subprocess.run([*args, "--as-of", refresh_run], capture_output=True, text=True, timeout=300)
    assert now.returncode == 0 and then.returncode == 0, now.stderr + then.stderr
    a, b = json.loads(now.stdout), json.loads(then.stdout)
    assert a["figures"][0]["value"] == b["figures"][0]["value"] + 1
    assert b["sources"][-1]["files"][0]["sha256"] != a["sources"][-1]["files"][0]["sha256"]
    assert PLANTED not in now.stdout + then.stdout + now.stderr + then.stderr
