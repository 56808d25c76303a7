"""Expectation suites (GX) over the warehouse: results in audit_checks, Data Docs without raw values."""

import polars as pl

from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from etl.quality.expectations import load_suites, run_expectations
from tests.conftest import crime, write_month


def test_suites_run_record_results_and_keep_values_out_of_data_docs(source, warehouse):
    write_month(source, "2019-01", [crime("SECRET-REF-1", "2019-01-02", victim_age="97"), crime("B", "2019-01-03")])
    write_month(source, "2019-02", [crime("SECRET-REF-1", "2019-02-02", victim_age="97"), crime("C", "2019-02-03")])  # loaded twice
    for m in ("2019-01", "2019-02"):
        pipeline.load_month(source, m, warehouse)
    report = run_expectations(warehouse)
    assert report.total == sum(len(s["expectations"]) for s in load_suites() if s["meta"]["table"] != "population")
    dup = next(c for s in report.suites for c in s.checks if c.check == "expect_compound_columns_to_be_unique(force_id,crime_ref)")
    assert (dup.passed, dup.failing_rows, dup.rows_checked) == (False, 2, 4)
    assert report.failed == 1

    checks = Warehouse(warehouse).read("audit_checks").filter(pl.col("run_id") == report.run_id)
    assert checks.height == report.total
    assert checks.filter(~pl.col("passed"))["check"].to_list() == ["expect_compound_columns_to_be_unique(force_id,crime_ref)"]
    runs = Warehouse(warehouse).read("audit_runs")
    assert runs.filter(pl.col("run_id") == report.run_id)["kind"].to_list() == ["expectations"]

    assert report.data_docs is not None and report.data_docs.exists()
    html = "".join(p.read_text(errors="ignore") for p in (warehouse / "gx").rglob("*.html"))
    assert "expect_compound_columns_to_be_unique" in html or "compound" in html.lower()
    assert "SECRET-REF-1" not in html
    json_results = "".join(p.read_text(errors="ignore") for p in (warehouse / "gx").rglob("*.json"))
    assert "SECRET-REF-1" not in json_results

    again = run_expectations(warehouse)  # re-running on an existing GX project works
    assert again.total == report.total


def _two_force_warehouse(tmp_path, warehouse):
    """Two forces, three months: every (source_file, source_row) of force a is also in force b (source_file
    names the month folder of the force's own source: not a duplicate, lineage is per force), a crime ref is
    loaded in two months of force a, and force b reuses a crime ref of force a (not a duplicate either)."""
    rows = {"a": {}, "b": {}}
    for f in ("a", "b"):
        for k, m in enumerate(("2019-01", "2019-02", "2019-03")):
            rows[f][m] = [
                crime(f"{f.upper()}{m}-{i:02d}", f"{m}-{i % 27 + 1:02d}", "8N" if i % 3 else "28E", force=f, victim_age="97")
                for i in range(6 + 3 * k + (2 if f == "a" else 0))
            ]
    for f in ("a", "b"):  # quarantined: line 2 of 2019-01/recorded_crime.csv in both forces
        rows[f]["2019-01"].insert(0, crime(f"{f}-bad", "2019-01-05", force=f, victim_age="200"))
    rows["a"]["2019-03"].append(crime("SECRET-REF-9", "2019-03-20", force="a"))
    rows["a"]["2019-02"].append(crime("SECRET-REF-9", "2019-02-20", force="a"))  # loaded in two months of force a
    rows["b"]["2019-02"].append(crime("A2019-01-00", "2019-02-21", force="b"))  # a's ref "A2019-01-00", in force b
    for f, months in rows.items():
        for m, crimes in months.items():
            write_month(tmp_path / f, m, crimes)
            pipeline.load_month(tmp_path / f, m, warehouse)


def _results(report):
    return [(s.table, c.check, c.passed, c.failing_rows, c.rows_checked) for s in report.suites for c in s.checks]


def test_partitioned_run_gives_the_whole_table_results(tmp_path, warehouse, monkeypatch):
    import etl.quality.expectations as E

    _two_force_warehouse(tmp_path, warehouse)
    suites = tmp_path / "suites"  # the suites of the tables with partition keys (measures has ~1,000 rows: slow in 2-row partitions)
    suites.mkdir()
    for name in ("recorded_crime", "quarantine", "audit_runs"):
        (suites / f"{name}.json").write_text((E.expectations_dir() / f"{name}.json").read_text())
    monkeypatch.setenv("ETL_EXPECTATIONS_DIR", str(suites))
    monkeypatch.setattr(E, "BY_FILE", False)  # the whole-table plan (file by file: tests/test_expectations_by_file.py)
    whole = run_expectations(warehouse, commit=False)
    assert all(s.partitions == 1 for s in whole.suites)
    by_check = {(t, c): (p, f, n) for t, c, p, f, n in _results(whole)}
    # the duplicate across months of one force; (source_file, source_row) repeated across the two forces is not one
    assert by_check[("recorded_crime", "expect_compound_columns_to_be_unique(force_id,crime_ref)")] == (False, 2, 63)
    assert by_check[("recorded_crime", "expect_compound_columns_to_be_unique(force_id,source_file,source_row)")] == (True, 0, 63)
    assert by_check[("quarantine", "expect_compound_columns_to_be_unique(force_id,source_file,row_number)")] == (True, 0, 2)

    for chunk in (2, 5, 20):  # one value of a partition column bigger than a partition (hash split), values packed into partitions
        monkeypatch.setattr(E, "CHUNK_ROWS", chunk)
        parted = run_expectations(warehouse, commit=False)
        assert _results(parted) == _results(whole), chunk
        crimes = next(s for s in parted.suites if s.table == "recorded_crime")
        assert crimes.partitions > 2

    # no low-cardinality column in the key: split by key hash only
    monkeypatch.setattr(E, "CHUNK_ROWS", 5)
    monkeypatch.setattr(E, "MAX_PARTITION_VALUES", 1)
    assert _results(run_expectations(warehouse, commit=False)) == _results(whole)

    html = "".join(p.read_text(errors="ignore") for p in (warehouse / "gx").rglob("*.html"))
    stored = "".join(p.read_text(errors="ignore") for p in (warehouse / "gx").rglob("*.json"))
    assert "compound" in html.lower() and "SECRET-REF-9" not in html and "SECRET-REF-9" not in stored


def test_partition_plan_keeps_each_key_whole(tmp_path, warehouse, monkeypatch):
    import etl.quality.expectations as E

    _two_force_warehouse(tmp_path, warehouse)
    monkeypatch.setattr(E, "CHUNK_ROWS", 20)
    lf = Warehouse(warehouse).scan("recorded_crime")
    spec = next(s for s in load_suites() if s["meta"]["table"] == "recorded_crime")
    plan = E._plan(lf, spec["expectations"], spec["meta"]["columns"], lf.select(pl.len()).collect().item())
    unique = [p for p in plan if any(spec["expectations"][i]["type"] == "expect_compound_columns_to_be_unique" for i in p.indices)]
    assert len(unique) == 2 and sum(len(p.indices) for p in plan) == len(spec["expectations"])
    for p in unique:
        key = next(spec["expectations"][i]["kwargs"]["column_list"] for i in p.indices if "column_list" in spec["expectations"][i]["kwargs"])
        assert set(key) <= set(p.columns)
        seen = pl.concat([lf.filter(f).select(key).unique().collect() for f in p.filters])
        assert seen.height == seen.unique().height  # no key value in two partitions
    assert next(p for p in unique if "crime_ref" not in p.columns).columns == ["force_id", "source_file", "source_row"]  # reads only its key


def test_data_docs_keep_the_latest_results_only(source, warehouse, monkeypatch):
    import etl.quality.expectations as E

    monkeypatch.setattr(E, "KEEP_VALIDATION_RESULTS", 2)
    write_month(source, "2019-01", [crime("A", "2019-01-02"), crime("B", "2019-01-03")])
    pipeline.load_month(source, "2019-01", warehouse)
    runs = [run_expectations(warehouse) for _ in range(4)]
    stored = list((warehouse / "gx" / "uncommitted" / "validations" / "recorded_crime").rglob("*.json"))
    pages = list((warehouse / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations" / "recorded_crime").rglob("*.html"))
    assert len(stored) == 2 and len(pages) == 2
    assert {p.parent.parent.name for p in stored} == {r.run_id for r in runs[-2:]}  # run name = audit run id
    index = (warehouse / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    assert runs[-1].run_id in index and runs[0].run_id not in index
