"""The warehouse: a re-run leaves identical tables; a failed or killed run leaves every table as it was."""

import json

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import crime, write_month, write_population


def month_rows(month, n, bad=0):
    rows = [crime(f"{month}-{i}", f"{month}-{(i % 27) + 1:02d}", ["8N", "34B", "28E", "45", "1"][i % 5]) for i in range(n)]
    for i in range(bad):
        rows[i]["hocr_code"] = "ZZZ"
    return rows


@pytest.fixture
def loaded(source, warehouse):
    write_population(source, {2018: 1000, 2019: 1010})
    for m in ("2019-01", "2019-02", "2019-03"):
        write_month(source, m, month_rows(m, 40, bad=2), [{"crime_ref": f"{m}-3", "outcome_type": "1", "outcome_date": f"{m}-28"}])
        pipeline.load_month(source, m, warehouse)
    return Warehouse(warehouse)


def snapshot(wh):
    out = {}
    for t in ("recorded_crime", "crime_outcomes", "population", "quarantine", "measures"):
        f = wh.read(t)
        f = f.drop([c for c in ("run_id",) if c in f.columns])
        out[t] = f.sort(f.columns)
    return out


def test_audit_records_rows_and_hashes(loaded, source):
    runs = loaded.read("audit_runs").sort("commit_seq")
    assert runs["kind"].to_list() == ["load", "load", "load"]
    r = runs.row(0, named=True)
    assert (r["rows_in"], r["rows_loaded"], r["rows_quarantined"]) == (40 + 1 + 2, 38 + 1 + 2, 2)
    files = json.loads(r["source_files"])
    import hashlib

    rc = next(f for f in files if f["extract"] == "recorded_crime")
    assert rc["sha256"] == hashlib.sha256((source / "2019-01" / "recorded_crime.csv").read_bytes()).hexdigest()
    assert rc["file"] == "2019-01/recorded_crime.csv" and rc["contract_version"] == "1.0.0"
    assert json.loads(r["contract_versions"]) == {"recorded_crime": "1.0.0", "crime_outcomes": "1.0.0", "population": "1.0.0"}
    checks = loaded.read("audit_checks").filter(pl.col("run_id") == r["run_id"])
    code = checks.filter((pl.col("check") == "hocr_code.code_list") & (pl.col("extract") == "recorded_crime")).row(0, named=True)
    assert (code["passed"], code["failing_rows"], code["rows_checked"]) == (False, 2, 40)
    assert checks.filter(pl.col("check") == "recorded_date.in_extract_month")["passed"].to_list() == [True]


def test_rerun_of_a_month_leaves_identical_tables(loaded, source, warehouse):
    before = snapshot(loaded)
    pipeline.load_month(source, "2019-02", warehouse)
    after = snapshot(loaded)
    for t in before:
        assert before[t].equals(after[t]), t
    assert loaded.read("recorded_crime").height == 3 * 38


def test_rerun_with_a_corrected_file_replaces_exactly_that_month(loaded, source, warehouse):
    write_month(source, "2019-02", month_rows("2019-02", 10))
    (source / "2019-02" / "crime_outcomes.csv").unlink()  # outcomes withdrawn: the month's outcomes go too
    pipeline.load_month(source, "2019-02", warehouse)
    rc = loaded.read("recorded_crime")
    assert rc.group_by("month").len().sort("month").rows() == [("2019-01", 38), ("2019-02", 10), ("2019-03", 38)]
    q = loaded.read("quarantine")
    assert q.group_by("month").len().sort("month").rows() == [("2019-01", 2), ("2019-03", 2)]
    assert loaded.read("crime_outcomes").group_by("month").len().sort("month").rows() == [("2019-01", 1), ("2019-03", 1)]


def test_a_file_failure_writes_nothing(loaded, source, warehouse):
    versions = {t: loaded._table(t).version() for t in ("recorded_crime", "quarantine", "audit_runs", "measures")}
    rows = month_rows("2019-04", 20)
    rows[5]["recorded_date"] = "2019-05-01"
    write_month(source, "2019-04", rows)
    with pytest.raises(pipeline.LoadFailed) as exc:
        pipeline.load_month(source, "2019-04", warehouse)
    assert "2019-04/recorded_crime.csv" in exc.value.message and "row 7" in exc.value.message
    assert {t: loaded._table(t).version() for t in versions} == versions


def test_a_run_that_fails_part_way_leaves_every_table_as_it_was(loaded, source, warehouse, monkeypatch):
    before = snapshot(loaded)
    write_month(source, "2019-02", month_rows("2019-02", 5))
    real = Warehouse._write
    calls = []

    def flaky(self, w, run_id):
        calls.append(w.table)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, w, run_id)

    monkeypatch.setattr(Warehouse, "_write", flaky)
    with pytest.raises(OSError):
        pipeline.load_month(source, "2019-02", warehouse)
    monkeypatch.setattr(Warehouse, "_write", real)
    assert calls[:2] == ["recorded_crime", "crime_outcomes"]  # two tables were written, then it failed
    after = snapshot(loaded)
    for t in before:
        assert before[t].equals(after[t]), t
    # the raw Delta tables were restored too, not just hidden
    assert pl.read_delta(str(warehouse / "recorded_crime")).filter(pl.col("month") == "2019-02").height == 38
    runs = loaded.read("audit_runs")
    assert runs.filter(pl.col("kind") == "recovery")["outcome"].to_list() == ["recovered"]


def test_a_killed_run_is_invisible_and_repaired_by_the_next(loaded, source, warehouse):
    before = snapshot(loaded)
    # a run killed after writing one table: a Delta commit with no audit_runs row
    junk = loaded.read("recorded_crime").head(5).with_columns(pl.lit("2099-01").alias("month"))
    write_deltalake(str(warehouse / "recorded_crime"), junk.to_arrow(), mode="append")
    assert snapshot(loaded)["recorded_crime"].equals(before["recorded_crime"])  # readers do not see it
    pipeline.load_month(source, "2019-03", warehouse)  # the next writer restores, then runs
    raw = pl.read_delta(str(warehouse / "recorded_crime"))
    assert "2099-01" not in raw["month"].to_list()
    assert snapshot(loaded)["recorded_crime"].equals(before["recorded_crime"])


def test_time_travel_shows_what_a_table_said(loaded, source, warehouse):
    v_before = loaded.committed_versions()["recorded_crime"]
    write_month(source, "2019-03", month_rows("2019-03", 5))
    pipeline.load_month(source, "2019-03", warehouse)
    old = pl.read_delta(str(warehouse / "recorded_crime"), version=v_before)
    assert old.filter(pl.col("month") == "2019-03").height == 38
    assert loaded.read("recorded_crime").filter(pl.col("month") == "2019-03").height == 5
    last_run = loaded.latest_run()["run_id"]
    assert any(h.get("run_id") == last_run for h in loaded.history("recorded_crime"))


@pytest.mark.parametrize("slice_rows", [3, 100])
def test_categorical_columns_are_written_as_text_slice_by_slice(tmp_path, monkeypatch, slice_rows):
    """The key index holds its partition columns as categories in memory; the table gets text, the same rows,
    whether the rows are written in several slices or in one."""
    from deltalake import DeltaTable

    import etl.core.warehouse as warehouse_module
    from etl.core.warehouse import Write

    monkeypatch.setattr(warehouse_module, "WRITE_SLICE_ROWS", slice_rows)
    assert isinstance(
        warehouse_module._arrow(pl.DataFrame({"c": ["x"] * 7}).with_columns(pl.col("c").cast(pl.Categorical))),
        pa.RecordBatchReader,
    )
    frame = pl.DataFrame({"force_id": ["a"] * 4 + ["b"] * 3, "key": [f"k{i}" for i in range(7)]}).with_columns(pl.col("force_id").cast(pl.Categorical))
    wh = Warehouse(tmp_path / "w")
    wh.commit("run-1", [Write("key_index", frame, None, ("force_id",))], {"run_id": "run-1", "kind": "load", "outcome": "loaded"})
    assert DeltaTable(str(tmp_path / "w" / "key_index")).schema().fields[0].type.type == "string"
    got = pl.read_delta(str(tmp_path / "w" / "key_index")).sort("key")
    assert got.schema["force_id"] == pl.Utf8
    assert got.select("force_id", "key").rows() == frame.with_columns(pl.col("force_id").cast(pl.Utf8)).rows()


def test_a_commit_writes_two_tables_at_once_and_a_failed_one_rolls_back_every_table_once_none_is_writing(tmp_path, monkeypatch):
    """The tables of a commit are written two at a time (`Warehouse._write_tables`). When one write fails, the commit
    waits for the one still writing, then rolls every table back: nothing is left ahead of the committed state."""
    import threading
    import time

    import etl.core.warehouse as warehouse_module
    from etl.core.warehouse import Write

    wh = Warehouse(tmp_path / "w")
    first = {t: pl.DataFrame({"k": [1, 2], "t": [t, t]}) for t in ("fails", "slow", "third")}
    wh.commit("run-1", [Write(t, f) for t, f in first.items()], {"run_id": "run-1", "kind": "load", "outcome": "loaded"})
    threads: dict[str, str] = {}
    real = warehouse_module.Warehouse._write

    def write(self, w, run_id):
        threads[w.table] = threading.current_thread().name
        if w.table == "slow":
            time.sleep(0.5)  # still writing when the other fails
        if w.table == "fails" and run_id == "run-2":
            raise OSError("disk full")
        return real(self, w, run_id)

    monkeypatch.setattr(warehouse_module.Warehouse, "_write", write)
    wh.commit("run-x", [Write(t, f) for t, f in first.items()], {"run_id": "run-x", "kind": "load", "outcome": "loaded"})
    assert threads["slow"] != threads["fails"] and {n.split("_")[0] for n in threads.values()} == {"table-write"}
    before = {t: wh.read(t).sort("k") for t in first}
    more = {t: pl.DataFrame({"k": [3], "t": [t]}) for t in first}
    with pytest.raises(OSError, match="disk full"):
        wh.commit("run-2", [Write(t, f) for t, f in more.items()], {"run_id": "run-2", "kind": "load", "outcome": "loaded"})
    again = Warehouse(tmp_path / "w")
    assert again._uncommitted() == {}  # the slow write ended before the rollback, and was rolled back with the others
    assert {t: again.read(t).sort("k").equals(before[t]) for t in first} == {t: True for t in first}
