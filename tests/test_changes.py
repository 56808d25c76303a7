"""What changed (`etl.trail.changes`, ``etl changes``): every figure a later run moved, the run that
moved it and the source files that differed, hash before and after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from etl.loading import pipeline
from etl.trail.asof import AsOfError, warehouse_as_of
from etl.trail.changes import COLUMNS, _compare, changes, restated
from tests.conftest import crime, write_month
from tests.test_asof import FIGURE, Corrected, invoke, month_rows


@pytest.fixture
def corrected(source, warehouse) -> Corrected:
    return Corrected(source, warehouse)


def listed(found: pl.DataFrame, **key: str) -> dict:
    rows = found.filter(*[pl.col(k) == v for k, v in {**FIGURE, **key}.items()])
    assert rows.height == 1
    return rows.row(0, named=True)


def test_a_corrected_extract_is_listed_with_both_hashes(corrected):
    found = changes(warehouse_as_of(corrected.wh, corrected.run2), warehouse_as_of(corrected.wh, None))
    assert found.figures.columns == COLUMNS
    row = listed(found.figures)
    assert (row["change"], row["old_value"], row["new_value"], row["changed_by_run"]) == ("changed", 40.0, 35.0, corrected.run3)
    assert row["changed_at"] == corrected.wh.read("audit_runs").filter(pl.col("run_id") == corrected.run3)["finished_at"][0]
    assert row["sources"] == [
        {
            "extract": "recorded_crime",
            "month": "2019-04",
            "file": "2019-04/recorded_crime.csv",
            "source_root": str(corrected.source.resolve()),
            "sha256_before": corrected.sha_before,
            "sha256_after": corrected.sha_after,
            "run_before": corrected.run1,
            "run_after": corrected.run3,
        }
    ]
    # only figures that moved: May's own month figures do not include April and did not move
    assert found.figures.filter((pl.col("period") == "month") & (pl.col("period_end") == "2019-05")).height == 0
    assert set(found.figures["change"].to_list()) == {"changed"} and found.new_left_out == 0
    assert changes(warehouse_as_of(corrected.wh, corrected.run3), warehouse_as_of(corrected.wh, None)).figures.height == 0


def test_the_run_named_is_the_last_that_moved_the_figure(corrected):
    since = warehouse_as_of(corrected.wh, corrected.run2)
    again = pipeline.load_month(corrected.source, "2019-04", corrected.warehouse).run_id  # the same file: rewrites, moves nothing
    assert listed(changes(since, warehouse_as_of(corrected.wh, None)).figures)["changed_by_run"] == corrected.run3
    write_month(corrected.source, "2019-04", month_rows("2019-04", 12))
    later = pipeline.load_month(corrected.source, "2019-04", corrected.warehouse).run_id
    row = listed(changes(since, warehouse_as_of(corrected.wh, None)).figures)
    assert (row["old_value"], row["new_value"], row["changed_by_run"]) == (40.0, 32.0, later)
    # until a point between the corrections: the first correction's value and run
    row = listed(changes(since, warehouse_as_of(corrected.wh, again)).figures)
    assert (row["new_value"], row["changed_by_run"]) == (35.0, corrected.run3)
    assert row["sources"][0]["sha256_after"] == corrected.sha_after


def test_new_figures_are_counted_and_listed_only_when_asked(corrected):
    write_month(corrected.source, "2019-06", month_rows("2019-06", 10))
    june = pipeline.load_month(corrected.source, "2019-06", corrected.warehouse).run_id
    since, now = warehouse_as_of(corrected.wh, corrected.run2), warehouse_as_of(corrected.wh, None)
    june_figures = corrected.wh.read("measures").filter(pl.col("period_end") == "2019-06").height
    found = changes(since, now)
    assert found.new_left_out == june_figures and "new" not in found.figures["change"].to_list()
    with_new = changes(since, now, include_new=True)
    new = with_new.figures.filter(pl.col("change") == "new")
    assert new.height == june_figures and with_new.new_left_out == 0
    assert new["old_value"].null_count() == june_figures and set(new["changed_by_run"].to_list()) == {june}


def test_restated_figures_of_one_force_and_period_end(corrected):
    found = restated(warehouse_as_of(corrected.wh, None), warehouse_as_of(corrected.wh, corrected.run2), "test-force", "2019-05")
    assert found.columns == ["measure_id", "period", "comparison", "old_value", "new_value", "changed_by_run", "changed_at"]
    row = found.filter((pl.col("measure_id") == FIGURE["measure_id"]) & (pl.col("period") == "fytd") & (pl.col("comparison") == "sply")).row(0, named=True)
    assert (row["old_value"], row["new_value"], row["changed_by_run"]) == (40.0, 35.0, corrected.run3)
    assert set(found["changed_by_run"].to_list()) == {corrected.run3}
    assert restated(warehouse_as_of(corrected.wh, None), warehouse_as_of(corrected.wh, corrected.run3), "test-force", "2019-05").height == 0
    assert restated(warehouse_as_of(corrected.wh, None), warehouse_as_of(corrected.wh, corrected.run2), "other-force", "2019-05").height == 0


def test_since_after_until_is_refused(corrected):
    with pytest.raises(AsOfError, match=r"^--since \(as of run .*\) is after --until"):
        changes(warehouse_as_of(corrected.wh, corrected.run3), warehouse_as_of(corrected.wh, corrected.run1))


def test_compare_lists_changed_removed_and_new_and_ignores_float_noise():
    key = {"force_id": "f", "period": "r12", "period_end": "2019-05", "comparison": "sply"}
    base = {"comparison_value": 10.0, "change_abs": 1.0, "change_pct": 10.0, "status": "monitor", "period_start": "2018-06", "comparison_start": None}
    base["comparison_end"] = None

    def frame(rows):
        return pl.DataFrame([{**key, **base, **r} for r in rows], schema_overrides={"comparison_start": pl.Utf8, "comparison_end": pl.Utf8})

    old = frame(
        [
            {"measure_id": "same", "value": 0.1 + 0.2},
            {"measure_id": "moved", "value": 5.0},
            {"measure_id": "status", "value": 1.0},
            {"measure_id": "gone", "value": 1.0},
        ]
    )
    new = frame(
        [
            {"measure_id": "same", "value": 0.3},
            {"measure_id": "moved", "value": 6.0},
            {"measure_id": "status", "value": 1.0, "status": "met"},
            {"measure_id": "born", "value": 2.0},
        ]
    )
    result = _compare(old, new).sort("measure_id")
    assert result.select("measure_id", "change").rows() == [("born", "new"), ("gone", "removed"), ("moved", "changed"), ("status", "changed")]


def test_two_forces_loaded_together_each_correction_names_its_own_run(source, warehouse):
    def force_month(force: str, month: str, n: int) -> None:
        rows = [crime(f"{force}-{month}-{i}", f"{month}-{(i % 27) + 1:02d}", ["8N", "34B", "28E", "45", "1"][i % 5], force=force) for i in range(n)]
        write_month(source / force, month, rows)

    for force in ("force-a", "force-b"):
        force_month(force, "2019-04", 20)
    first = {r.force_id: r.run_id for r in pipeline.load_source_month(source, "2019-04", warehouse)}
    force_month("force-b", "2019-04", 10)
    again = {r.force_id: r.run_id for r in pipeline.load_source_month(source, "2019-04", warehouse)}
    assert len(set(again.values())) == 2
    from etl.core.warehouse import Warehouse

    wh = Warehouse(warehouse)
    found = changes(warehouse_as_of(wh, first["force-a"]), warehouse_as_of(wh, None)).figures
    assert set(found["force_id"].to_list()) == {"force-b"}  # force-a's file did not change, nor did its figures
    row = listed(found, force_id="force-b", period_end="2019-04")
    assert (row["old_value"], row["new_value"], row["changed_by_run"]) == (20.0, 10.0, again["force-b"])
    assert [(s["file"], s["run_before"], s["run_after"]) for s in row["sources"]] == [
        ("force-b/2019-04/recorded_crime.csv", first["force-b"], again["force-b"])
    ]


# ----------------------------------------------------------------------------------------------------
# the command line


def test_changes_on_the_command_line(corrected):
    r = invoke("changes", "--since", corrected.run2, "--warehouse", corrected.warehouse, "--measure", FIGURE["measure_id"], "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["since"]["run_id"] == corrected.run2 and data["until"]["described"] == "current"
    row = next(f for f in data["figures"] if f["period"] == "fytd" and f["period_end"] == "2019-05" and f["comparison"] == "sply")
    assert (row["old_value"], row["new_value"], row["changed_by_run"]) == (40.0, 35.0, corrected.run3)
    assert [(s["sha256_before"], s["sha256_after"]) for s in row["sources"]] == [(corrected.sha_before, corrected.sha_after)]
    r = invoke("changes", "--since", corrected.run2, "--warehouse", corrected.warehouse, "--measure", FIGURE["measure_id"], "--format", "csv")
    assert r.exit_code == 0
    csv = pl.read_csv(r.stdout.encode())
    assert f"2019-04 2019-04/recorded_crime.csv: {corrected.sha_before} -> {corrected.sha_after}" in csv["sources"].to_list()
    r = invoke("changes", "--since", corrected.run2, "--warehouse", corrected.warehouse, "--measure", FIGURE["measure_id"])
    assert r.exit_code == 0
    assert f"figures moved between run {corrected.run2}" in r.stdout and "changed, 0 removed" in r.stdout
    assert corrected.run3 in r.stdout and corrected.sha_before[:16] in r.stdout and corrected.sha_after[:16] in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "load-nope"], "error: --since load-nope: no run with that id in "),
        (["--since", "2001-01-01"], "error: --since 2001-01-01: that is before the first run recorded in "),
        (["--since", "2019-13-45"], "error: --since 2019-13-45: not a date or time"),
        (["--since", "RUN3", "--until", "RUN1"], "error: --since (as of run "),
        (["--since", "RUN1", "--format", "xml"], "error: --format xml: must be table, json or csv"),
    ],
)
def test_changes_refuses_with_exit_2_and_one_line(corrected, args, message):
    args = [{"RUN1": corrected.run1, "RUN3": corrected.run3}.get(a, a) for a in args]
    r = invoke("changes", "--warehouse", corrected.warehouse, *args)
    assert r.exit_code == 2
    assert r.output.startswith(message) and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_as_of_and_changes_through_python_m_etl(corrected):
    """The issue's check end to end: the old figure reproduced with --as-of, the difference listed by etl changes."""
    env = {**os.environ, "ETL_WAREHOUSE": str(corrected.warehouse)}

    def etl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=env, cwd=Path(corrected.warehouse).parent, timeout=300)

    r = etl("measures", "--month", "2019-05", "--measure", FIGURE["measure_id"], "--format", "json", "--as-of", corrected.run2)
    assert r.returncode == 0, r.stderr
    assert [x["value"] for x in json.loads(r.stdout) if x["period"] == "fytd" and x["comparison"] == "sply"] == [40]
    r = etl("changes", "--since", corrected.run2, "--measure", FIGURE["measure_id"], "--format", "json")
    assert r.returncode == 0, r.stderr
    row = next(f for f in json.loads(r.stdout)["figures"] if f["period"] == "fytd" and f["period_end"] == "2019-05" and f["comparison"] == "sply")
    assert (row["old_value"], row["new_value"]) == (40.0, 35.0)
    assert [(s["sha256_before"], s["sha256_after"]) for s in row["sources"]] == [(corrected.sha_before, corrected.sha_after)]
    r = etl("measures", "--month", "2019-05", "--as-of", "load-nope")
    assert r.returncode == 2 and r.stderr.startswith("error: --as-of load-nope: no run with that id") and "Traceback" not in r.stderr
