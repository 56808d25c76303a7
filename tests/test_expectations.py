"""Expectation suites (GX) over the warehouse: results in audit_checks, Data Docs without raw values."""

import polars as pl

from etl import pipeline
from etl.expectations import load_suites, run_expectations
from etl.warehouse import Warehouse
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
