"""Strict validation (issue 9, items 3 and 4): no rule passes without running; values arrive exactly
or not at all; a contract the project cannot use is a plain ContractError / lint finding."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.core import validation
from etl.core.contracts import ContractError, lint_contract, load_contract, parse_contract
from etl.core.extracts import RawExtract, read_extract
from etl.core.periods import Month
from etl.core.reference import contracts_dir
from etl.core.validation import ExtractInput, FileFailure, ValidationContext, validate_extract, validate_extracts
from tests.conftest import CRIME_HEADER, crime, write_csv

MARCH = Month.parse("2019-03")
RECORDED_CRIME = (contracts_dir() / "recorded_crime.yaml").read_text()
LSOA = '{pattern: "^(E01|W01)[0-9]{6}$"}'


def good(n: int) -> list[dict]:
    return [crime(f"R{i}", f"2019-03-{(i % 28) + 1:02d}", ["8N", "34B", "28E"][i % 3]) for i in range(n)]


def contract_copy(tmp_path: Path, old: str, new: str, name: str = "recorded_crime") -> Path:
    assert old in RECORDED_CRIME
    p = tmp_path / "contracts" / f"{name}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(RECORDED_CRIME.replace(old, new, 1))
    return p


# --------------------------------------------------------------------------------------------------
# A rule that cannot run fails the file (it is never counted as passed)


@pytest.mark.parametrize(
    "pattern,reason",
    [
        ("^(?=E)(E01|W01)[0-9]{6}$", "look-around, including look-ahead and look-behind, is not supported"),
        ("^(E)\\\\1[0-9]{6}$", "backreferences are not supported"),
    ],
)
def test_a_pattern_polars_cannot_compile_fails_every_file_and_lint_reports_it(tmp_path, pattern, reason):
    path = contract_copy(tmp_path, LSOA, f'{{pattern: "{pattern}"}}')
    contract = parse_contract(path)  # Python's re accepts it: the contract parses
    files = [write_csv(tmp_path / f"rc{i}.csv", CRIME_HEADER, good(5)) for i in range(2)]
    outcomes = validate_extracts(contract, [ExtractInput(read_extract(p), ValidationContext(month=MARCH)) for p in files])
    assert all(isinstance(o, FileFailure) for o in outcomes)
    for o, p in zip(outcomes, files):
        assert o.rule == "lsoa_code.pattern"
        assert o.message == (
            f"rule lsoa_code.pattern could not be run (its pattern is not supported by the polars regex engine validation uses: {reason}); "
            "the contract recorded_crime v1.0.0 needs fixing; nothing was loaded"
        )
        assert str(o).startswith(str(p))
    findings = [f for f in lint_contract(path) if f.severity == "error"]
    assert [(f.where, reason in f.message, "polars" in f.message) for f in findings] == [("property lsoa_code", True, True)]


def test_a_rule_that_cannot_run_is_not_an_audited_pass(tmp_path):
    """Before: the erroring pattern was recorded as passed with 0 failing rows and every row loaded."""
    contract = parse_contract(contract_copy(tmp_path, LSOA, '{pattern: "^(?=E)E01[0-9]{6}$"}'))
    p = write_csv(tmp_path / "rc.csv", CRIME_HEADER, good(3))
    with pytest.raises(FileFailure) as exc:
        validate_extract(contract, read_extract(p), ValidationContext(month=MARCH))
    assert exc.value.rule == "lsoa_code.pattern"


def test_a_column_of_the_wrong_dtype_fails_the_file_without_showing_values(tmp_path):
    raw = read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, good(3)))
    frame = raw.frame.with_columns(pl.Series("victim_age", [4242, 4243, 4244], pl.Int64))  # not text as read
    typed_raw = RawExtract(raw.path, raw.sha256, raw.encoding, raw.header, frame)
    with pytest.raises(FileFailure) as exc:
        validate_extract(load_contract("recorded_crime"), typed_raw, ValidationContext(month=MARCH))
    assert exc.value.rule == "victim_age.dtype"
    assert "rule victim_age.dtype could not be run (column victim_age holds Int64 values, not text as read from the file)" in exc.value.message
    assert "rule(s) victim_age.type could not be run either" in exc.value.message  # its text check could not run either
    assert "4242" not in exc.value.message and "nothing was loaded" in exc.value.message


def test_row_failures_still_quarantine_only_their_rows(tmp_path):
    rows = good(6)
    rows[2]["lsoa_code"] = "X01000001"
    r = validate_extract(load_contract("recorded_crime"), read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)), ValidationContext(month=MARCH))
    assert dict(zip(r.quarantine["row_number"], r.quarantine["failed_checks"])) == {4: "lsoa_code.pattern"}
    assert r.rows_loaded == 5


# --------------------------------------------------------------------------------------------------
# Values arrive exactly or the row is quarantined

MEASURES = """\
apiVersion: v3.2.0
kind: DataContract
id: measures_test
name: Typed values
version: 2.1.0
status: active
customProperties:
  - property: rejectThreshold
    value: {fraction: 0.5, minimumRows: 25}
schema:
  - name: measures_test
    properties:
      - {name: ref, logicalType: string, required: true, unique: true, description: key}
      - {name: count, logicalType: integer, required: false, description: a whole number}
      - {name: amount, logicalType: number, required: false, description: a number}
      - {name: day, logicalType: date, required: false, description: a date}
      - {name: at, logicalType: timestamp, required: false, description: a date and time}
      - {name: share, logicalType: number, required: false, logicalTypeOptions: {minimum: 0, maximum: 1}, description: a share}
"""

TYPED_CASES = [  # (column, text, rule or None when the row loads, the value loaded)
    ("count", "99999999999999999999999", "count.type", None),
    ("count", "9223372036854775808", "count.type", None),  # one above the largest 64-bit integer
    ("count", "-9223372036854775809", "count.type", None),
    ("count", "\u0663", "count.type", None),  # an Arabic-Indic digit: a digit to the regex, not a number
    ("count", "9223372036854775807", None, 9223372036854775807),
    ("count", "-0042", None, -42),
    ("amount", "1e999", "amount.type", None),
    ("amount", "-1e999", "amount.type", None),
    ("amount", "nan", "amount.type", None),
    ("amount", "NaN", "amount.type", None),
    ("amount", "inf", "amount.type", None),
    ("amount", "Infinity", "amount.type", None),
    ("amount", "1.5e3", None, 1500.0),
    ("share", "nan", "share.range; share.type", None),  # NaN is not within 0 to 1 either
    ("day", "2019-02-30", "day.type", None),
    ("day", "2019-2-3", "day.type", None),
    ("at", "2019-03-10 25:00:00", "at.type", None),
    ("at", "2019-03-10T23:59:59", None, None),
]


def test_values_that_do_not_fit_their_type_are_quarantined_not_nulled(tmp_path):
    contract_path = tmp_path / "measures_test.yaml"
    contract_path.write_text(MEASURES)
    contract = parse_contract(contract_path)
    header = ["ref", "count", "amount", "day", "at", "share"]
    rows = [{"ref": f"R{i}", column: text} for i, (column, text, _, _) in enumerate(TYPED_CASES)]
    r = validate_extract(contract, read_extract(write_csv(tmp_path / "m.csv", header, rows)), ValidationContext())
    expected = {i + 2: rule for i, (_, _, rule, _) in enumerate(TYPED_CASES) if rule}
    assert dict(zip(r.quarantine["row_number"], r.quarantine["failed_checks"])) == expected
    details = dict(zip(r.quarantine["row_number"], r.quarantine["failure_detail"]))
    assert details[2] == "count: not a whole number within range" and details[8] == "amount: not a number"
    assert all(text not in " ".join(details.values()) for _, text, rule, _ in TYPED_CASES if rule)
    loaded = {row["source_row"]: row for row in r.clean.to_dicts()}
    assert set(loaded) == {i + 2 for i, case in enumerate(TYPED_CASES) if not case[2]}
    for i, (column, text, rule, value) in enumerate(TYPED_CASES):
        if not rule:
            assert loaded[i + 2][column] is not None  # never silently nulled
            if value is not None:
                assert loaded[i + 2][column] == value
    failing = {c.check: c.failing_rows for c in r.checks}
    assert (failing["count.type"], failing["amount.type"], failing["day.type"], failing["at.type"]) == (4, 6, 2, 1)


def test_an_overflowing_victim_age_is_quarantined_with_its_row_number(tmp_path):
    rows = good(8)
    rows[2]["age"] = rows[2]["victim_age"] = "99999999999999999999999"
    rows[5]["victim_age"] = "9223372036854775808"
    r = validate_extract(load_contract("recorded_crime"), read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)), ValidationContext(month=MARCH))
    assert dict(zip(r.quarantine["row_number"], r.quarantine["failed_checks"])) == {4: "victim_age.type", 7: "victim_age.type"}
    assert r.quarantine["failure_detail"].to_list() == ["victim_age: not a whole number within range"] * 2
    assert r.rows_loaded == 6 and r.clean["victim_age"].null_count() == 0


def test_a_value_nulled_by_typing_fails_the_file(tmp_path, monkeypatch):
    """The guard: should a type rule ever let through a value the conversion cannot hold, nothing loads."""
    real_typed = validation._typed

    def lossy(contract, frame):
        typed = real_typed(contract, frame)
        return typed.with_columns(pl.when(pl.col("source_row") == 4).then(None).otherwise(pl.col("victim_age")).alias("victim_age"))

    monkeypatch.setattr(validation, "_typed", lossy)
    rows = good(5)
    rows[2]["victim_age"] = "41"
    with pytest.raises(FileFailure) as exc:
        validate_extract(load_contract("recorded_crime"), read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)), ValidationContext(month=MARCH))
    assert exc.value.rule == "victim_age.type"
    assert "1 row(s) (first at row 4) have a victim_age value that passed every rule" in exc.value.message
    assert "nothing was loaded" in exc.value.message and "41" not in exc.value.message


# --------------------------------------------------------------------------------------------------
# The encoding the file was read in is a recorded check


@pytest.mark.parametrize(
    "encoding,passed,detail",
    [
        ("cp1252", False, "read as Windows-1252 (not UTF-8); check accented characters"),
        ("utf-8", True, None),
        ("utf-8-sig", True, None),
    ],
)
def test_the_encoding_fallback_is_a_warning_check(tmp_path, encoding, passed, detail):
    rows = good(3)
    rows[1]["npu"] = "Café"
    r = validate_extract(
        load_contract("recorded_crime"), read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows, encoding=encoding)), ValidationContext(month=MARCH)
    )
    (check,) = [c for c in r.checks if c.check == "file.encoding"]
    assert (check.severity, check.passed, check.detail, check.failing_rows, check.rows_checked) == ("warning", passed, detail, 0, 3)
    assert r.clean["npu"].to_list()[1] == "Café" and r.rows_loaded == 3


# --------------------------------------------------------------------------------------------------
# A malformed contract: ContractError naming the file and the property, a lint finding, never a traceback

THRESHOLD = "value: {fraction: 0.05, minimumRows: 25}"
CROSS = "{check: key_in_other_months, column: crime_ref}"
STATUS_ENUM = RECORDED_CRIME[RECORDED_CRIME.index("        enum:\n") : RECORDED_CRIME.index("      - name: npu\n")]

MALFORMED = [  # (old, new, where, fragment of the message)
    (THRESHOLD, "value: 'five percent'", "rejectThreshold", "must be a mapping (fraction, minimumRows), not the text 'five percent'"),
    (THRESHOLD, "value: {fraction: lots, minimumRows: 25}", "rejectThreshold", "fraction must be a number from 0 to 1"),
    (
        THRESHOLD,
        "value: {fraction: -0.1, minimumRows: 25}",
        "rejectThreshold",
        "fraction must be a number from 0 to 1 (a share of the rows), not the number -0.1",
    ),
    (THRESHOLD, "value: {fraction: 1.5, minimumRows: 25}", "rejectThreshold", "not the number 1.5"),
    (THRESHOLD, "value: {fraction: null, minimumRows: 25}", "rejectThreshold", "fraction must be a number from 0 to 1 (a share of the rows), not empty"),
    (THRESHOLD, "value: {fraction: 0.05}", "rejectThreshold", "needs minimumRows"),
    (THRESHOLD, "value: {fraction: 0.05, minimumRows: many}", "rejectThreshold", "minimumRows must be a whole number of rows"),
    (THRESHOLD, "value: {fraction: 0.05, minimumRows: 2.5}", "rejectThreshold", "minimumRows must be a whole number of rows, 0 or more, not the number 2.5"),
    (THRESHOLD, "value: [0.05, 25]", "rejectThreshold", "not a list"),
    (THRESHOLD, "value: {fraction: 0.05, minimumRows: 25, maximumRows: 9}", "rejectThreshold", "unknown key(s) maximumRows"),
    ("      - {check: continuity}\n", "      - continuity\n", "crossMonthChecks", "entry 1 must be a mapping with a 'check', not the text 'continuity'"),
    (CROSS, "{check: key_in_other_months}", "crossMonthChecks", "entry 2: key_in_other_months needs 'column'"),
    (CROSS, "{check: key_in_other_months, column: [crime_ref]}", "crossMonthChecks", "column must be a text, not a list"),
    (CROSS, "{check: [continuity]}", "crossMonthChecks", "entry 2: unknown check a list"),
    ("tolerancePercent: 2.0", "tolerancePercent: two", "crossMonthChecks", "tolerancePercent must be a number"),
    ("baselineMonths: 24", "baselineMonths: 0", "crossMonthChecks", "baselineMonths must be a whole number of months, 1 or more"),
    ("{minimum: 0, maximum: 120}", "{minimum: 130, maximum: 120}", "property victim_age", "minimum is above maximum"),
    (
        "value: {file: reference/areas.csv, column: npu, keyColumn: force_id, optional: true}",
        "value: {column: npu}",
        "property npu",
        "referenceList needs file",
    ),
    ("      - name: force_id\n", "      - name: crime_ref\n", "schema properties", "property name(s) crime_ref used twice"),
    (
        "value: {reference: reference/hocr_offence_codes.yaml, validOnColumn: recorded_date}",
        "value: reference/hocr_offence_codes.yaml",
        "property hocr_code",
        "codeList must be a mapping",
    ),
    ("validOnColumn: recorded_date}", "validOnColumn: status}", "property hocr_code", "codeList validOnColumn 'status' must be a date or timestamp property"),
    ("value: {file: reference/areas.csv, column: npu, keyColumn: force_id, optional: true}", "value: areas", "property npu", "referenceList must be a mapping"),
    ('value: {"true": "Y", "false": "N"}', 'value: {"true": "Y", "false": "Y"}', "property domestic_abuse", "booleanValues true and false are both 'Y'"),
    ("          - property: codeList\n", "          - property: codelist\n", "property hocr_code", "customProperty 'codelist' is not one this project reads"),
    ("value: recorded_date\n", "value: [recorded_date]\n", "monthColumn", "a list is not a property"),
    ("value: force_id\n", "value: force\n", "forceColumn", "'force' is not a property"),
    (
        "implementation: {rule: not_after, column: offence_date, other: recorded_date}",
        "implementation: not_after",
        "quality offence_date_not_after_recorded_date",
        "implementation must be a mapping",
    ),
    (
        "implementation: {rule: not_after, column: offence_date, other: recorded_date}",
        "implementation: {rule: not_after, column: offence_date}",
        "quality offence_date_not_after_recorded_date",
        "implementation needs other",
    ),
    (
        "implementation: {rule: not_after, column: offence_date, other: recorded_date}",
        "implementation: {rule: not_after, column: status, other: recorded_date}",
        "quality offence_date_not_after_recorded_date",
        "column 'status' must be a date or timestamp property",
    ),
    (
        "implementation: {rule: not_after, column: offence_date, other: recorded_date}",
        "implementation: {rule: [not_after], column: offence_date, other: recorded_date}",
        "quality offence_date_not_after_recorded_date",
        "unknown etl rule a list",
    ),
    ("  - property: extract\n", "  - property: optional\n    value: maybe\n  - property: extract\n", "optional", "must be true or false, not the text 'maybe'"),
]


@pytest.mark.parametrize("old,new,where,fragment", MALFORMED, ids=[f"{w}:{f[:30]}" for _, _, w, f in MALFORMED])
def test_a_malformed_contract_is_a_contract_error_and_a_lint_finding(tmp_path, old, new, where, fragment):
    path = contract_copy(tmp_path, old, new)
    with pytest.raises(ContractError) as exc:
        parse_contract(path)
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and f"{where}: " in text and fragment in text
    assert exc.value.problems and exc.value.problems[0][0] == where
    # one finding per problem (a YAML anchor shared by six flags gives six)
    findings = lint_contract(path)
    assert [(f.severity, f.where) for f in findings] == [("error", w) for w, _ in exc.value.problems]
    assert findings[0].where == where and fragment in findings[0].message


@pytest.mark.parametrize(
    "old,new,fragment",
    [
        ("logicalType: integer", "logicalType: decimal", "logicalType"),
        ("logicalType: string", "logicalType: time", "logicalType 'time' is not supported"),
        (STATUS_ENUM, "        enum: recorded\n", 'enum: "recorded" is not of type "array"'),
        (STATUS_ENUM, "        enum:\n          - {description: no value}\n", '"value" is a required property'),
        ("{minimum: 0, maximum: 120}", "{minimum: zero, maximum: 120}", '"zero" is not of type "number"'),
        ("version: 1.0.0", "version: 1.0", 'version: 1.0 is not of type "string"'),
    ],
)
def test_odcs_level_mistakes_are_contract_errors_too(tmp_path, old, new, fragment):
    path = contract_copy(tmp_path, old, new)
    with pytest.raises(ContractError) as exc:
        parse_contract(path)
    assert str(exc.value).startswith(str(path)) and fragment in str(exc.value)
    (finding,) = lint_contract(path)
    assert finding.severity == "error" and fragment in finding.message


def test_every_problem_of_a_contract_is_reported(tmp_path):
    path = contract_copy(tmp_path, THRESHOLD, "value: {fraction: 2, minimumRows: -1}")
    path.write_text(path.read_text().replace("{minimum: 0, maximum: 120}", "{minimum: 130, maximum: 120}"))
    with pytest.raises(ContractError) as exc:
        parse_contract(path)
    assert str(exc.value).startswith(f"{path}: 3 problems:")
    assert [w for w, _ in exc.value.problems] == ["property victim_age", "rejectThreshold", "rejectThreshold"]
    assert [f.where for f in lint_contract(path)] == ["property victim_age", "rejectThreshold", "rejectThreshold"]


def test_unreadable_contract_files_are_contract_errors(tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes(RECORDED_CRIME.replace("Recorded crime monthly", "Recorded crim\xe9 monthly").encode("cp1252"))
    with pytest.raises(ContractError, match="not UTF-8 text"):
        parse_contract(p)
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(ContractError, match="is a folder, not a file"):
        parse_contract(d)
    assert [f.where for f in lint_contract(d)] == ["file"]


def test_lint_accepts_a_pattern_only_python_rejects(tmp_path):
    # \p{Lu} is a Unicode class the polars engine knows (Python's re does not): validation can run it
    path = contract_copy(tmp_path, LSOA, '{pattern: "^\\\\p{Lu}01[0-9]{6}$"}')
    assert [f for f in lint_contract(path) if f.severity == "error"] == []
    rows = good(3)
    rows[1]["lsoa_code"] = "e01000001"
    r = validate_extract(parse_contract(path), read_extract(write_csv(tmp_path / "rc.csv", CRIME_HEADER, rows)), ValidationContext(month=MARCH))
    assert r.quarantine["failed_checks"].to_list() == ["lsoa_code.pattern"]
