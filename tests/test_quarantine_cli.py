"""``etl quarantine``: the rows a load rejected, for the people who fix them (issue 12, item 4).

Two months are loaded through the library with rejected rows at known lines, in two extracts; one
rejected row carries planted values in an identifier (crime_ref) and a personal column (victim_age),
another a formula in a plain column. Counts, row numbers, reasons and the export must be exact, the
export CSV-safe, and no planted value may appear in any output.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core.warehouse import Warehouse
from etl.loading import load_source_month
from etl.trail.quarantine import QuarantineError, rejected_rows, shown_cells, write_export
from tests.conftest import crime, write_month, write_population

FORCE = "test-force"
PLANTED = "ZZPLANTED"
FORMULA = "=HYPERLINK(1)"


def good(m: str, n: int) -> list[dict]:
    return [crime(f"{m}-{i}", f"{m}-{(i % 27) + 1:02d}", ["8N", "34B", "1"][i % 3]) for i in range(n)]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """2019-01: nothing rejected. 2019-02: recorded_crime rows at lines 3 (unknown code), 5 (planted
    victim_age and crime_ref: not a whole number), 6 (unknown code and an empty npu; npu of a formula
    elsewhere) and 8 (formula in npu, unknown code); crime_outcomes line 3 (outcome type not allowed)."""
    root = tmp_path_factory.mktemp("quarantine")
    source, warehouse = root / "source", root / "warehouse"
    write_population(source, {2019: 500_000})
    write_month(source, "2019-01", good("2019-01", 10))
    rows = good("2019-02", 8)
    rows[1]["hocr_code"] = "ZZZ"  # line 3
    rows[3].update(crime_ref=f"{PLANTED}98", victim_age=f"{PLANTED}99")  # line 5
    rows[4].update(hocr_code="ZZZ", npu="")  # line 6
    rows[6].update(hocr_code="ZZZ", npu=FORMULA)  # line 8
    outcomes = [
        {"crime_ref": "2019-02-0", "outcome_type": "1", "outcome_date": "2019-02-20"},
        {"crime_ref": "2019-02-2", "outcome_type": "99", "outcome_date": "2019-02-21"},  # line 3
    ]
    write_month(source, "2019-02", rows, outcomes)
    for m in ("2019-01", "2019-02"):
        (report,) = load_source_month(source, m, warehouse)
        assert report.outcome == "loaded"
    return warehouse


def test_counts_by_extract_rule_and_column(loaded):
    r = rejected_rows(Warehouse(loaded), "2019-02")
    assert r.forces == [FORCE] and r.row_count == 5
    counts = {(c["extract"], c["rule"], c["column"]): (c["rows"], c["files"]) for c in r.counts().iter_rows(named=True)}
    assert counts == {
        ("crime_outcomes", "outcome_type.range", "outcome_type"): (1, 1),
        ("recorded_crime", "hocr_code.code_list", "hocr_code"): (3, 1),
        ("recorded_crime", "npu.required", "npu"): (1, 1),
        ("recorded_crime", "victim_age.type", "victim_age"): (1, 1),
    }
    described = dict(r.counts().select("rule", "description").iter_rows())
    assert described["victim_age.type"] == "victim_age must be a whole number"


def test_rows_by_file_and_row_number_with_plain_reasons(loaded):
    r = rejected_rows(Warehouse(loaded), "2019-02", FORCE)
    rows = [(x["file"], x["row_number"], x["rules"], x["reasons"]) for x in r.by_row().iter_rows(named=True)]
    assert rows == [
        ("2019-02/crime_outcomes.csv", 3, "outcome_type.range", "outcome_type: outside 1 to 22"),
        ("2019-02/recorded_crime.csv", 3, "hocr_code.code_list", "hocr_code: unknown code"),
        ("2019-02/recorded_crime.csv", 5, "victim_age.type", "victim_age: not a whole number within range"),
        ("2019-02/recorded_crime.csv", 6, "hocr_code.code_list; npu.required", "hocr_code: unknown code; npu: empty"),
        ("2019-02/recorded_crime.csv", 8, "hocr_code.code_list", "hocr_code: unknown code"),
    ]
    only = rejected_rows(Warehouse(loaded), "2019-02", rule="npu.required")
    assert [(x["row_number"], x["rules"]) for x in only.by_row().iter_rows(named=True)] == [(6, "npu.required")]
    assert only.records["row_number"].to_list() == [6]


def test_the_export_holds_safe_cells_only_and_is_csv_safe(loaded, tmp_path):
    r = rejected_rows(Warehouse(loaded), "2019-02")
    path = tmp_path / "rejected.csv"
    assert write_export(path, r) == 6  # 5 rows, one of them failing two rules
    text = path.read_text(encoding="utf-8")
    assert PLANTED not in text
    lines = list(csv.DictReader(io.StringIO(text)))
    header = list(lines[0])
    assert header[:8] == ["force", "month", "extract", "file", "row_number", "rule", "column", "reason"]
    assert "crime_ref" not in header and "victim_age" not in header  # identifier, personal: never exported
    assert {"hocr_code", "npu", "recorded_date", "outcome_type", "outcome_date"} <= set(header)
    by = {(x["file"], x["row_number"], x["rule"]): x for x in lines}
    eight = by[("2019-02/recorded_crime.csv", "8", "hocr_code.code_list")]
    assert (eight["hocr_code"], eight["npu"], eight["reason"]) == ("ZZZ", "'" + FORMULA, "unknown code")  # formula neutralised
    five = by[("2019-02/recorded_crime.csv", "5", "victim_age.type")]
    assert (five["force"], five["month"], five["column"], five["hocr_code"]) == (FORCE, "2019-02", "victim_age", "8N")
    assert by[("2019-02/crime_outcomes.csv", "3", "outcome_type.range")]["outcome_type"] == "99"
    assert set(shown_cells("recorded_crime")) == {
        "force_id", "recorded_date", "offence_date", "hocr_code", "status", "npu", "lsoa_code",
        "domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim",
    }  # fmt: skip


def test_the_quarantine_table_is_redacted_and_never_shown_even_if_it_held_a_value(loaded, tmp_path):
    wh = Warehouse(loaded)
    q = wh.read("quarantine").filter(pl.col("row_number") == 5)
    assert '"crime_ref":"[redacted: identifier]"' in q["record"][0] and '"victim_age":"[redacted: personal]"' in q["record"][0]
    r = rejected_rows(wh, "2019-02")
    # a record that held the values anyway (written by an older version, say): still not shown
    leaked = r.records.with_columns(pl.col("record").str.replace('"[redacted: personal]"', f'"{PLANTED}99"', literal=True))
    r.records = leaked
    assert PLANTED in "".join(r.records["record"].to_list())
    assert PLANTED not in r.export_frame().write_csv()


def test_unknown_months_and_forces_say_what_is_loaded(loaded):
    wh = Warehouse(loaded)
    with pytest.raises(QuarantineError, match=r"2019-05 has not been loaded: the months loaded are 2019-01 to 2019-02"):
        rejected_rows(wh, "2019-05")
    with pytest.raises(QuarantineError, match=r"--force other: 2019-02 was not loaded for this force \(forces loaded in 2019-02: test-force\)"):
        rejected_rows(wh, "2019-02", "other")
    none = rejected_rows(wh, "2019-01")
    assert none.empty and none.row_count == 0 and none.export_frame().height == 0


runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_counts_rows_export_and_messages(loaded, tmp_path):
    r = invoke("quarantine", "--month", "2019-02", "--warehouse", loaded)
    assert r.exit_code == 0, r.output
    assert "5 row(s) rejected in 2019-02, in 2 file(s); classified columns are never shown" in r.stdout
    assert "hocr_code.code_list" in r.stdout and "victim_age must be a whole number" in r.stdout
    r = invoke("quarantine", "--month", "2019-02", "--force", FORCE, "--rows", "--warehouse", loaded)
    assert r.exit_code == 0
    assert "  2019-02/recorded_crime.csv row 6: hocr_code.code_list; npu.required (hocr_code: unknown code; npu: empty)" in r.stdout
    out = tmp_path / "fix.csv"
    r = invoke("quarantine", "--month", "2019-02", "--rule", "hocr_code.code_list", "--export", out, "--warehouse", loaded)
    assert r.exit_code == 0 and f"exported 3 line(s) (one per row and rule) to {out.resolve()}" in r.stdout
    assert [x["row_number"] for x in csv.DictReader(out.open(encoding="utf-8"))] == ["3", "6", "8"]
    r = invoke("quarantine", "--month", "2019-01", "--warehouse", loaded)
    assert r.exit_code == 0 and r.stdout.strip() == "no rows were rejected in 2019-01"
    r = invoke("quarantine", "--month", "2019-02", "--rule", "status.allowed_values", "--warehouse", loaded)
    assert r.exit_code == 0 and "no rows were rejected by rule status.allowed_values in 2019-02 (rules that rejected rows: hocr_code.code_list," in r.stdout
    r = invoke("quarantine", "--month", "2019-07", "--warehouse", loaded)
    assert r.exit_code == 2 and "the months loaded are 2019-01 to 2019-02" in r.output and "Traceback" not in r.output
    r = invoke("quarantine", "--month", "2019-02", "--export", tmp_path / "no" / "such" / "x.csv", "--warehouse", loaded)
    assert r.exit_code == 2 and "no such folder" in r.output
    r = invoke("quarantine", "--month", "2019-02", "--export", tmp_path, "--warehouse", loaded)
    assert r.exit_code == 2 and "is a folder; give a file name" in r.output


@pytest.mark.slow
def test_cli_in_a_subprocess_shows_no_planted_value(loaded, tmp_path):
    base = [sys.executable, "-m", "etl", "quarantine", "--month", "2019-02", "--warehouse", str(loaded)]
    outputs = []
    for extra in ([], ["--rows"], ["--export", str(tmp_path / "x.csv")]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    outputs.append((tmp_path / "x.csv").read_text(encoding="utf-8"))
    assert all(PLANTED not in o for o in outputs)
    assert "row 5: victim_age.type (victim_age: not a whole number within range)" in outputs[1]
    trace = subprocess.run(
        [sys.executable, "-m", "etl", "trace", "--measure", "nm_homicide_count", "--month", "2019-02", "--warehouse", str(loaded), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trace.returncode == 0, trace.stderr
    assert PLANTED not in trace.stdout + trace.stderr and '"victim_age.type"' in trace.stdout
