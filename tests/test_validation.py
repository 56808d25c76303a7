"""Contract validation: exactly the bad rows are quarantined, file failures stop everything."""

import json

import pytest

from etl.core.contracts import load_contract
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import FileFailure, ValidationContext, validate_extract
from tests.conftest import CRIME_HEADER, crime, write_csv

MARCH = Month.parse("2019-03")


def validate(path, month=MARCH, **ctx):
    return validate_extract(load_contract("recorded_crime"), read_extract(path), ValidationContext(month=month, **ctx))


def good(n, month="2019-03"):
    return [crime(f"R{i}", f"{month}-{(i % 28) + 1:02d}", ["8N", "34B", "28E", "4.10", "37.2"][i % 5]) for i in range(n)]


def test_clean_file_loads_every_row_typed(tmp_path):
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, good(10))
    r = validate(p)
    assert (r.rows_in, r.rows_loaded, r.rows_quarantined) == (10, 10, 0)
    assert r.force_id == "test-force"
    assert str(r.clean.schema["recorded_date"]) == "Date" and str(r.clean.schema["knife_sharp"]) == "Boolean"
    assert str(r.clean.schema["victim_age"]) == "Int64"
    assert r.clean["hocr_code"].to_list()[:5] == ["8N", "34B", "28E", "4.10", "37.2"]
    assert r.clean["source_row"].to_list() == list(range(2, 12))
    assert all(c.passed for c in r.checks if c.severity == "error")


BAD = {
    "hocr_code.code_list": dict(hocr_code="999X"),
    "hocr_code.valid_on_recorded_date": dict(hocr_code="28A"),  # burglary in a dwelling: replaced April 2017
    "hocr_code.required": dict(hocr_code=""),
    "knife_sharp.flag": dict(knife_sharp="y"),
    "online.required": dict(online=""),
    "npu.required": dict(npu=""),
    "victim_age.type": dict(victim_age="abc"),
    "victim_age.range": dict(victim_age="130"),
    "lsoa_code.pattern": dict(lsoa_code="X01123456"),
    "status.allowed_values": dict(status="no crime"),
    "offence_date_not_after_recorded_date": dict(offence_date="2019-03-28"),
    "recorded_date.type": dict(recorded_date="2019-02-30"),
    "force_id.matches_extract": dict(force_id="other-force"),
}


@pytest.mark.parametrize("rule,change", list(BAD.items()))
def test_each_bad_row_is_quarantined_with_its_rule(tmp_path, rule, change):
    rows = good(30)
    rows[7] = {**rows[7], **change}
    if rule == "offence_date_not_after_recorded_date":
        rows[7]["recorded_date"] = "2019-03-02"
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)
    r = validate(p)
    assert (r.rows_loaded, r.rows_quarantined) == (29, 1)
    q = r.quarantine.row(0, named=True)
    assert q["row_number"] == 9  # line 9: header + 8th data row
    assert q["failed_checks"] == rule
    assert q["extract"] == "recorded_crime" and q["month"] == "2019-03"
    # every column is kept, as read, except the classified ones (crime_ref identifier, victim_age personal)
    record = json.loads(q["record"])
    assert list(record) == CRIME_HEADER
    assert record["crime_ref"] == "[redacted: identifier]" and record["victim_age"] == "[redacted: personal]"
    assert {h: v for h, v in record.items() if h not in ("crime_ref", "victim_age")} == {
        h: rows[7][h] or None for h in CRIME_HEADER if h not in ("crime_ref", "victim_age")
    }
    assert "R7" not in r.clean["crime_ref"].to_list()
    failing = {c.check: c.failing_rows for c in r.checks}
    assert failing[rule] == 1


def test_duplicate_reference_keeps_the_first_row(tmp_path):
    rows = good(5) + [crime("R2", "2019-03-20", "39")]
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)
    r = validate(p)
    assert r.quarantine["row_number"].to_list() == [7]
    assert r.quarantine["failed_checks"].to_list() == ["crime_ref.unique"]
    kept = r.clean.filter(r.clean["crime_ref"] == "R2")
    assert kept["hocr_code"].to_list() == ["28E"]


def test_a_row_failing_several_rules_is_quarantined_once_with_all_of_them(tmp_path):
    rows = good(5)
    rows[1] = {**rows[1], "hocr_code": "ZZ", "npu": "", "victim_age": "-4"}
    r = validate(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows))
    assert r.quarantine.height == 1
    assert r.quarantine["failed_checks"][0] == "hocr_code.code_list; npu.required; victim_age.range"
    detail = r.quarantine["failure_detail"][0]
    assert "unknown code" in detail and "empty" in detail
    assert "-4" not in detail  # personal values are described, not shown


def test_malformed_row_is_quarantined_without_its_text(tmp_path):
    p = tmp_path / "rc.csv"
    lines = [",".join(CRIME_HEADER)] + [",".join(crime(f"R{i}", "2019-03-05").values()) for i in range(3)]
    lines.insert(2, "R9,test-force,2019-03-05,,8N")
    p.write_text("\n".join(lines) + "\n")
    r = validate(p)
    assert (r.rows_in, r.rows_loaded, r.rows_quarantined) == (4, 3, 1)
    assert r.quarantine.row(0, named=True)["row_number"] == 3
    assert json.loads(r.quarantine["record"][0]) == {"_raw_line": "[redacted: malformed row, 5 fields]"}
    assert r.quarantine["failure_detail"][0] == "row: 5 fields, the header has 15"


def test_missing_column_fails_the_file_and_names_the_likely_rename(tmp_path):
    header = [h if h != "hocr_code" else "offence_code" for h in CRIME_HEADER]
    rows = [{("offence_code" if k == "hocr_code" else k): v for k, v in r.items()} for r in good(3)]
    p = write_csv(tmp_path / "rc.csv", header, rows)
    with pytest.raises(FileFailure) as exc:
        validate(p)
    assert exc.value.rule == "columns_present"
    assert "'hocr_code'" in exc.value.message and "offence_code" in exc.value.message and "physicalName" in exc.value.message


def test_row_outside_the_month_fails_the_file(tmp_path):
    rows = good(10) + [crime("LATE", "2019-04-01")]
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)
    with pytest.raises(FileFailure) as exc:
        validate(p)
    assert exc.value.rule == "recorded_date.in_extract_month"
    assert "row 12" in exc.value.message and "2019-04" in exc.value.message


def test_wrong_month_file_fails(tmp_path):
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, good(10, month="2019-02"))
    with pytest.raises(FileFailure) as exc:
        validate(p)
    assert "10 row(s)" in exc.value.message


def test_too_many_bad_rows_fails_the_file(tmp_path):
    rows = good(100)
    for i in range(26):
        rows[i]["hocr_code"] = "BAD"
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)
    with pytest.raises(FileFailure) as exc:
        validate(p)
    assert exc.value.rule == "reject_threshold"
    assert "26 of 100" in exc.value.message and "hocr_code.code_list (26 rows)" in exc.value.message
    rows[0]["hocr_code"] = "8N"  # 25 bad rows: at the limit, loads
    r = validate(write_csv(tmp_path / "rc2.csv", CRIME_HEADER, rows))
    assert r.rows_quarantined == 25


def test_physical_name_maps_a_force_export(tmp_path, monkeypatch):
    import shutil

    from etl.core import contracts

    cdir = tmp_path / "contracts"
    shutil.copytree(contracts.contracts_dir(), cdir)
    text = (cdir / "recorded_crime.yaml").read_text()
    text = text.replace("      - name: hocr_code\n", "      - name: hocr_code\n        physicalName: Offence Code\n")
    (cdir / "recorded_crime.yaml").write_text(text)
    c = contracts.parse_contract(cdir / "recorded_crime.yaml")
    header = [h if h != "hocr_code" else "Offence Code" for h in CRIME_HEADER]
    rows = [{("Offence Code" if k == "hocr_code" else k): v for k, v in r.items()} for r in good(3)]
    p = write_csv(tmp_path / "rc.csv", header, rows)
    r = validate_extract(c, read_extract(p), ValidationContext(month=MARCH))
    assert r.clean["hocr_code"].to_list() == ["8N", "34B", "28E"]


def test_areas_reference_list(tmp_path):
    rows = good(4)
    rows[2]["npu"] = "ZZ"
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)
    r = validate(p, areas={"test-force": ["N1", "N2"]})
    assert r.quarantine["failed_checks"].to_list() == ["npu.reference_list"]
    assert validate(p).rows_quarantined == 0  # no areas file: any npu
    twice = validate(p, areas={"test-force": ["N1", "N2", "N1"]})  # a caller's list with an area twice: the same verdicts, no row repeated
    assert (twice.clean.height, twice.quarantine["failed_checks"].to_list()) == (3, ["npu.reference_list"])


def test_outcome_not_before_its_crime(tmp_path):
    import datetime as dt

    import polars as pl

    p = write_csv(
        tmp_path / "o.csv",
        ["crime_ref", "outcome_type", "outcome_date"],
        [
            {"crime_ref": "A", "outcome_type": "1", "outcome_date": "2019-03-10"},
            {"crime_ref": "B", "outcome_type": "18", "outcome_date": "2019-03-01"},
            {"crime_ref": "C", "outcome_type": "23", "outcome_date": "2019-03-10"},
            {"crime_ref": "D", "outcome_type": "08", "outcome_date": "2019-03-10"},
        ],
    )
    lookup = pl.DataFrame({"crime_ref": ["A", "B"], "recorded_date": [dt.date(2019, 3, 5), dt.date(2019, 3, 5)]})
    r = validate_extract(load_contract("crime_outcomes"), read_extract(p), ValidationContext(month=MARCH, force_id="f", lookups={"recorded_crime": lookup}))
    assert dict(zip(r.quarantine["row_number"], r.quarantine["failed_checks"])) == {3: "outcome_date_not_before_recorded_date", 4: "outcome_type.range"}
    assert r.clean["outcome_type"].to_list() == [1, 8]


def test_the_columns_of_a_batch_frame_share_its_chunks():
    """`_aligned`, `_cut`: a batch frame's columns all take the chunks of its first column (a file each), values and
    order unchanged - the constant columns ``pl.concat`` gives in one chunk, a helper column joined for the rules -
    so that a query on it does not make polars copy every column into one chunk first."""
    import polars as pl

    from etl.core.validation import _aligned, _cut, _layout

    files = [
        pl.DataFrame({"a": [f"{i}-{j}" for j in range(n)], "b": list(range(n))}).with_columns(pl.lit(f"f{i}").alias("force")) for i, n in enumerate((3, 1, 4))
    ]
    batch = pl.concat(files, how="vertical")
    aligned = _aligned(batch)
    assert aligned.equals(batch) and aligned.n_chunks("all") == [3, 3, 3] and _layout(aligned) == [3, 1, 4]
    assert aligned.drop("a").n_chunks("all") == [3, 3]  # a query keeps the chunks: nothing was copied
    column = pl.Series("h", [True, None, False, True, True, None, False, True])
    cut = _cut(column, _layout(aligned))
    assert cut.chunk_lengths() == [3, 1, 4] and cut.equals(column)
    other = pl.concat([column.slice(0, 5), column.slice(5, 3)], rechunk=False)  # chunked another way
    assert _cut(other, [3, 1, 4]).chunk_lengths() == [3, 1, 4] and _cut(other, [3, 1, 4]).equals(column)
    assert _cut(column, [8]).chunk_lengths() == [8] and _aligned(batch.rechunk()).n_chunks("all") == [1, 1, 1]
