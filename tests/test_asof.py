"""Reading the warehouse as it stood (`etl.trail.asof`, ``--as-of``), the history retention every table
keeps, and the source root each run records."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core.warehouse import DEFAULT_HISTORY_RETENTION_DAYS, RETENTION_PROPERTIES, Warehouse, WarehouseError, history_retention_days
from etl.loading import pipeline
from etl.trail.asof import AsOfError, parse_moment, warehouse_as_of
from tests.conftest import crime, write_month, write_population

runner = CliRunner()
FIGURE = {"measure_id": "ml1314_overall_crime", "period": "fytd", "period_end": "2019-05", "comparison": "sply"}


def month_rows(month: str, n: int) -> list[dict]:
    return [crime(f"{month}-{i}", f"{month}-{(i % 27) + 1:02d}", ["8N", "34B", "28E", "45", "1"][i % 5]) for i in range(n)]


def figure(measures: pl.DataFrame, **key: str) -> float:
    rows = measures.filter(*[pl.col(k) == v for k, v in {**FIGURE, **key}.items()])
    assert rows.height == 1
    return rows["value"][0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Corrected:
    """Two months loaded (runs 1 and 2), then April re-loaded from a corrected extract (run 3)."""

    def __init__(self, source: Path, warehouse: Path, report_before: Path | None = None):
        write_population(source, {2018: 1000, 2019: 1010})
        write_month(source, "2019-04", month_rows("2019-04", 20))
        self.run1 = pipeline.load_month(source, "2019-04", warehouse).run_id
        write_month(source, "2019-05", month_rows("2019-05", 20), [{"crime_ref": "2019-05-3", "outcome_type": "1", "outcome_date": "2019-05-28"}])
        self.run2 = pipeline.load_month(source, "2019-05", warehouse).run_id
        self.wh = Warehouse(warehouse)
        self.measures_before = self.wh.read("measures")
        if report_before is not None:  # the report as published before the correction
            r = runner.invoke(app, ["report", "--month", "2019-05", "--warehouse", str(warehouse), "--out", str(report_before)])
            assert r.exit_code == 0, r.output
        self.sha_before = sha(source / "2019-04" / "recorded_crime.csv")
        write_month(source, "2019-04", month_rows("2019-04", 15))  # the force's corrected extract: 5 crimes fewer
        self.sha_after = sha(source / "2019-04" / "recorded_crime.csv")
        self.run3 = pipeline.load_month(source, "2019-04", warehouse).run_id
        self.source, self.warehouse = source, warehouse


@pytest.fixture
def corrected(source, warehouse) -> Corrected:
    return Corrected(source, warehouse)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ----------------------------------------------------------------------------------------------------
# reading as of a run or a time


def test_as_of_an_earlier_run_reads_the_figures_exactly_as_they_stood(corrected):
    assert figure(corrected.wh.read("measures")) == 35.0  # the correction moved the figure
    reader = warehouse_as_of(corrected.wh, corrected.run2)
    old = reader.read("measures")
    assert figure(old) == 40.0
    assert old.sort(old.columns).equals(corrected.measures_before.sort(old.columns))
    assert reader.run_id == corrected.run2 and reader.describe().startswith(f"as of run {corrected.run2} (finished ")
    assert reader.describe().endswith(" UTC)")
    assert warehouse_as_of(corrected.wh, None).describe() == "current"


def test_tables_and_runs_that_came_later_do_not_exist_as_of_an_earlier_run(corrected):
    reader = warehouse_as_of(corrected.wh, corrected.run1)
    assert reader.read("crime_outcomes") is None  # first written by run 2
    assert reader.version("crime_outcomes") is None
    assert reader.read("audit_runs")["run_id"].to_list() == [corrected.run1]
    assert set(reader.read("audit_checks")["run_id"].unique().to_list()) == {corrected.run1}
    assert reader.read("measures")["period_end"].unique().to_list() == ["2019-04"]
    assert reader.read("recorded_crime").height == 20
    assert warehouse_as_of(corrected.wh, corrected.run2).read("audit_runs").sort("commit_seq")["run_id"].to_list() == [corrected.run1, corrected.run2]


def test_a_time_selects_the_last_run_finished_by_then(corrected):
    runs = corrected.wh.read("audit_runs").sort("commit_seq")
    finished = dict(zip(runs["run_id"].to_list(), runs["finished_at"].to_list()))
    at_run2 = finished[corrected.run2]
    assert warehouse_as_of(corrected.wh, at_run2.isoformat()).run_id == corrected.run2
    naive_utc = at_run2.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    assert warehouse_as_of(corrected.wh, naive_utc).run_id == corrected.run2  # no offset: UTC
    in_paris = at_run2.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
    assert warehouse_as_of(corrected.wh, in_paris).run_id == corrected.run2
    just_before = (at_run2 - dt.timedelta(microseconds=1)).isoformat()
    assert warehouse_as_of(corrected.wh, just_before).run_id == corrected.run1
    day = finished[corrected.run3].astimezone(dt.UTC).date().isoformat()
    assert warehouse_as_of(corrected.wh, day).run_id == corrected.run3  # a date: by the end of that day


def test_parse_moment():
    assert parse_moment("2026-11-30") == dt.datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert parse_moment("2026-11-30T10:45") == dt.datetime(2026, 11, 30, 10, 45, tzinfo=dt.UTC)
    assert parse_moment("2026-11-30 10:45:00+01:00") == dt.datetime(2026, 11, 30, 9, 45, tzinfo=dt.UTC)
    assert parse_moment("2026-11-30T10:45Z") == dt.datetime(2026, 11, 30, 10, 45, tzinfo=dt.UTC)
    assert parse_moment("load-20261130T104107-ab12cd34") is None  # a run id
    with pytest.raises(AsOfError, match=r"^--as-of 2026-13-01: not a date or time"):
        parse_moment("2026-13-01")


def test_unknown_run_and_a_time_before_the_first_run_are_refused(corrected):
    with pytest.raises(AsOfError, match=r"^--as-of load-nope: no run with that id in .*audit_runs"):
        warehouse_as_of(corrected.wh, "load-nope")
    with pytest.raises(AsOfError, match=r"^--as-of 2001-01-01: that is before the first run recorded in .* \(it finished \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"):
        warehouse_as_of(corrected.wh, "2001-01-01")
    with pytest.raises(AsOfError, match=r"^--since x: no run"):
        warehouse_as_of(corrected.wh, "x", option="--since")


def test_a_warehouse_without_runs_has_no_as_of(warehouse):
    with pytest.raises(AsOfError, match="has no runs recorded yet"):
        warehouse_as_of(Warehouse(warehouse), "2026-01-01")
    assert warehouse_as_of(Warehouse(warehouse), None).read("measures") is None


def test_history_removed_by_a_vacuum_is_a_plain_error(corrected):
    DeltaTable(str(corrected.warehouse / "measures")).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    with pytest.raises(AsOfError, match=r"measures: version \d+ of the table \(as of run .*\) can no longer be read: its history was removed"):
        warehouse_as_of(corrected.wh, corrected.run1).read("measures")
    assert figure(corrected.wh.read("measures")) == 35.0  # the current state is untouched


# ----------------------------------------------------------------------------------------------------
# the command line


def test_measures_as_of_on_the_command_line(corrected):
    r = invoke(
        "measures", "--month", "2019-05", "--warehouse", corrected.warehouse, "--measure", FIGURE["measure_id"], "--format", "json", "--as-of", corrected.run2
    )
    assert r.exit_code == 0, r.output
    assert [x["value"] for x in json.loads(r.stdout) if x["period"] == "fytd" and x["comparison"] == "sply"] == [40]
    r = invoke("measures", "--month", "2019-05", "--warehouse", corrected.warehouse, "--measure", FIGURE["measure_id"], "--format", "json")
    assert [x["value"] for x in json.loads(r.stdout) if x["period"] == "fytd" and x["comparison"] == "sply"] == [35]
    r = invoke("measures", "--month", "2019-05", "--warehouse", corrected.warehouse, "--as-of", corrected.run2)
    assert r.exit_code == 0 and f"as of run {corrected.run2}" in r.stdout


@pytest.mark.parametrize(
    "as_of, message",
    [
        ("load-nope", "error: --as-of load-nope: no run with that id in "),
        ("2001-01-01", "error: --as-of 2001-01-01: that is before the first run recorded in "),
    ],
)
def test_bad_as_of_is_exit_2_with_one_plain_line(corrected, as_of, message):
    for command in (["measures"], ["report", "--out", str(corrected.warehouse.parent / "r")]):
        r = invoke(*command, "--month", "2019-05", "--warehouse", corrected.warehouse, "--as-of", as_of)
        assert r.exit_code == 2
        assert r.output.startswith(message) and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1


def test_report_as_of_an_earlier_run_gives_the_tables_as_published(source, warehouse, tmp_path):
    corrected = Corrected(source, warehouse, report_before=tmp_path / "before")
    r = invoke("report", "--month", "2019-05", "--warehouse", corrected.warehouse, "--out", tmp_path / "as-of", "--as-of", corrected.run2)
    assert r.exit_code == 0, r.output
    assert "(figures as of " in r.output
    r = invoke("report", "--month", "2019-05", "--warehouse", corrected.warehouse, "--out", tmp_path / "now")
    assert r.exit_code == 0, r.output
    for name in ("scorecard.csv", "national_measures.csv"):
        published = (tmp_path / "before" / name).read_text(encoding="utf-8")
        assert (tmp_path / "as-of" / name).read_text(encoding="utf-8") == published, name
    assert (tmp_path / "now" / "scorecard.csv").read_text(encoding="utf-8") != (tmp_path / "before" / "scorecard.csv").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------------
# history retention


def retention(path: Path) -> dict[str, str | None]:
    configuration = DeltaTable(str(path)).metadata().configuration
    return {k: configuration.get(k) for k in RETENTION_PROPERTIES}


def test_every_table_keeps_ten_years_of_history(corrected):
    tables = sorted(p.name for p in corrected.warehouse.iterdir() if (p / "_delta_log").is_dir())
    assert {"audit_runs", "audit_checks", "measures", "spc", "recorded_crime", "crime_outcomes", "quarantine", "population"} <= set(tables)
    for table in tables:
        assert retention(corrected.warehouse / table) == dict.fromkeys(RETENTION_PROPERTIES, "interval 3650 days"), table
    # a vacuum that respects the retention removes nothing an as-of read needs
    assert DeltaTable(str(corrected.warehouse / "measures")).vacuum(dry_run=True) == []
    assert DEFAULT_HISTORY_RETENTION_DAYS == 3650


def test_existing_tables_take_a_new_retention_at_the_next_commit(corrected, monkeypatch):
    monkeypatch.setenv("ETL_HISTORY_RETENTION_DAYS", "400")
    wh = Warehouse(corrected.warehouse)
    before = wh.committed_versions()
    pipeline.load_month(corrected.source, "2019-05", corrected.warehouse, compute=False)  # does not write measures or spc
    after = wh.committed_versions()
    for table in before:
        assert retention(corrected.warehouse / table) == dict.fromkeys(RETENTION_PROPERTIES, "interval 400 days"), table
    assert after["measures"] == before["measures"] + 1  # the property change is part of the run, recorded in its versions
    assert wh._uncommitted() == {}  # nothing left ahead of the committed state
    runs = wh.read("audit_runs")
    assert runs["kind"].to_list().count("recovery") == 0
    assert figure(warehouse_as_of(wh, corrected.run2).read("measures")) == 40.0


@pytest.mark.parametrize("value, message", [("ten", "must be a whole number of days"), ("0", "must be 1 or more days")])
def test_a_bad_retention_setting_is_a_plain_error(monkeypatch, value, message):
    monkeypatch.setenv("ETL_HISTORY_RETENTION_DAYS", value)
    with pytest.raises(WarehouseError, match=f"ETL_HISTORY_RETENTION_DAYS {message}"):
        history_retention_days()


# ----------------------------------------------------------------------------------------------------
# source root


def test_runs_record_the_source_root_so_files_can_be_found_again(corrected):
    runs = corrected.wh.read("audit_runs")
    entries = {r: json.loads(runs.filter(pl.col("run_id") == r)["source_files"][0]) for r in (corrected.run1, corrected.run3)}
    root = str(corrected.source.resolve())
    for files in entries.values():
        assert {f["extract"] for f in files} == {"recorded_crime", "population"}
        assert {f["source_root"] for f in files} == {root} and not any(Path(f["file"]).is_absolute() for f in files)
    for f in entries[corrected.run3]:  # the files as they are now are the ones the last run read
        assert sha(Path(f["source_root"]) / f["file"]) == f["sha256"]
    assert next(f for f in entries[corrected.run1] if f["extract"] == "recorded_crime")["sha256"] == corrected.sha_before
