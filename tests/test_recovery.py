"""Recovery only touches what the warehouse owns, and never loses a loaded month.

* a table folder the warehouse did not create (another team's Delta table, any other folder) survives
  every run and every recovery, byte for byte;
* a table an unfinished run created is emptied with a Delta delete (history kept), never removed;
* a warehouse whose audit_runs is missing or unreadable is refused with a plain message and exit 2,
  and nothing is changed, so putting audit_runs back restores every loaded month;
* every run records the code that produced it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core.warehouse import Warehouse, WarehouseError, WarehouseStateError
from etl.loading import pipeline
from etl.version import code_version
from tests.conftest import crime, write_month, write_population


def month_rows(month: str, n: int) -> list[dict]:
    return [crime(f"{month}-{i}", f"{month}-{(i % 27) + 1:02d}", ["8N", "34B", "28E", "45"][i % 4]) for i in range(n)]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def loaded(source: Path, warehouse: Path) -> Warehouse:
    write_population(source, {2018: 1000, 2019: 1010})
    for m in ("2019-01", "2019-02"):
        write_month(source, m, month_rows(m, 20), [{"crime_ref": f"{m}-3", "outcome_type": "1", "outcome_date": f"{m}-28"}])
        pipeline.load_month(source, m, warehouse)
    return Warehouse(warehouse)


def foreign_table(path: Path) -> None:
    """Another team's Delta table, written without this package's marks."""
    write_deltalake(str(path), pl.DataFrame({"team": ["finance"], "budget": [1.5]}).to_arrow(), mode="append")
    write_deltalake(str(path), pl.DataFrame({"team": ["hr"], "budget": [2.5]}).to_arrow(), mode="append")


def test_a_foreign_table_and_folder_survive_runs_and_recovery(loaded, source, warehouse):
    foreign_table(warehouse / "finance_budget")
    (warehouse / "notes").mkdir()
    (warehouse / "notes" / "readme.txt").write_text("kept by the analysts\n")
    foreign = {**tree_digest(warehouse / "finance_budget"), **{f"notes/{k}": v for k, v in tree_digest(warehouse / "notes").items()}}
    # a run killed after writing a table: the next run must recover ours, and leave theirs alone
    junk = loaded.read("recorded_crime").head(3).with_columns(pl.lit("2099-01").alias("month"))
    write_deltalake(str(warehouse / "recorded_crime"), junk.to_arrow(), mode="append")
    pipeline.load_month(source, "2019-02", warehouse)
    after = {**tree_digest(warehouse / "finance_budget"), **{f"notes/{k}": v for k, v in tree_digest(warehouse / "notes").items()}}
    assert after == foreign
    assert pl.read_delta(str(warehouse / "finance_budget")).sort("team")["team"].to_list() == ["finance", "hr"]
    recovery = loaded.read("audit_runs").filter(pl.col("kind") == "recovery")
    assert recovery.height == 1 and "recorded_crime: restored" in recovery["message"][0]
    assert "finance_budget" not in recovery["message"][0]
    assert "2099-01" not in pl.read_delta(str(warehouse / "recorded_crime"))["month"].to_list()


def test_a_table_an_unfinished_run_created_is_emptied_not_deleted(loaded, source, warehouse):
    # an unfinished run created a new table of ours (marked as ours) and died before its audit row
    from etl.core.contracts import load_contract
    from etl.core.validation import curated_schema
    from etl.core.warehouse import _props

    schema = curated_schema(load_contract("incidents"))
    frame = pl.DataFrame([{"force_id": "test-force", "month": "2019-02"}], schema=schema)
    write_deltalake(str(warehouse / "incidents"), frame.to_arrow(), mode="append", commit_properties=_props("load-20990101T000000-dead"))
    assert "incidents" not in loaded.committed_versions()
    pipeline.load_month(source, "2019-02", warehouse)
    assert (warehouse / "incidents" / "_delta_log").is_dir()  # the folder is still there
    assert pl.read_delta(str(warehouse / "incidents")).height == 0  # its rows are gone
    assert pl.read_delta(str(warehouse / "incidents"), version=0).height == 1  # and its history kept
    note = loaded.read("audit_runs").filter(pl.col("kind") == "recovery")["message"][0]
    assert "incidents: rows of an unfinished run removed" in note


def test_a_missing_audit_runs_is_refused_and_no_month_is_lost(loaded, source, warehouse, tmp_path):
    aside = tmp_path / "audit_runs.aside"
    shutil.move(str(warehouse / "audit_runs"), aside)
    before = tree_digest(warehouse)
    with pytest.raises(WarehouseStateError, match=r"has tables \(.*recorded_crime.*\) but no readable audit_runs table.*nothing was changed"):
        pipeline.load_month(source, "2019-02", warehouse)
    result = CliRunner().invoke(app, ["run", "--source", str(source), "--month", "2019-02", "--warehouse", str(warehouse), "--engine", "local"])
    assert result.exit_code == 2, result.output
    assert "no readable audit_runs table" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["measures", "--month", "2019-02", "--warehouse", str(warehouse)])
    assert result.exit_code == 2 and "no readable audit_runs table" in result.output
    assert tree_digest(warehouse) == before  # nothing changed, nothing deleted
    shutil.move(str(aside), warehouse / "audit_runs")  # the operator restores it: every month is there
    assert sorted(loaded.read("recorded_crime")["month"].unique().to_list()) == ["2019-01", "2019-02"]


def test_an_unreadable_audit_runs_is_refused(loaded, source, warehouse):
    for f in (warehouse / "audit_runs").glob("*.parquet"):
        f.write_bytes(b"not parquet")
    before = tree_digest(warehouse)
    with pytest.raises(WarehouseStateError, match="run record cannot be read"):
        pipeline.load_month(source, "2019-02", warehouse)
    assert tree_digest(warehouse) == before


def test_a_missing_committed_table_is_refused(loaded, source, warehouse, tmp_path):
    shutil.move(str(warehouse / "crime_outcomes"), tmp_path / "aside")
    before = tree_digest(warehouse)
    with pytest.raises(WarehouseStateError, match=r"crime_outcomes: the table is missing \(the last run recorded version \d+\)"):
        pipeline.load_month(source, "2019-02", warehouse)
    assert tree_digest(warehouse) == before


def test_a_warehouse_path_that_is_a_file_is_refused_before_anything_is_read(source, tmp_path):
    write_population(source, {2019: 1000})
    write_month(source, "2019-01", month_rows("2019-01", 5))
    target = tmp_path / "warehouse.txt"
    target.write_text("not a folder\n")
    with pytest.raises(WarehouseError, match="must be a folder, and this is a file"):
        pipeline.load_month(source, "2019-01", target)
    assert target.read_text() == "not a folder\n"


def test_every_run_records_the_code_that_produced_it(loaded):
    runs = loaded.read("audit_runs")
    assert runs["code_version"].to_list() == [code_version()] * runs.height
    assert code_version().startswith("police-etl ")
    if (Path(__file__).resolve().parents[1] / ".git").exists():
        assert "(git " in code_version()


def test_an_older_audit_runs_without_code_version_takes_the_column(source, warehouse):
    write_population(source, {2019: 1000})
    write_month(source, "2019-01", month_rows("2019-01", 5))
    pipeline.load_month(source, "2019-01", warehouse)
    # rewrite audit_runs as an older version of the package wrote it (no code_version column)
    old = pl.read_delta(str(warehouse / "audit_runs")).drop("code_version")
    shutil.rmtree(warehouse / "audit_runs")
    write_deltalake(str(warehouse / "audit_runs"), old.to_arrow(), mode="append", commit_properties=None)
    write_month(source, "2019-02", month_rows("2019-02", 5))
    pipeline.load_month(source, "2019-02", warehouse)
    runs = Warehouse(warehouse).read("audit_runs").sort("commit_seq")
    assert runs["code_version"].to_list()[0] is None and runs["code_version"].to_list()[-1] == code_version()
    assert DeltaTable(str(warehouse / "audit_runs")).schema().to_arrow().field("code_version") is not None
