"""Every rule a contract compiles to can fail (issue 9: no rule passes without running).

For EVERY contract in contracts/ and EVERY rule the schema builder creates for it, a file of valid
rows plus one row that breaks that rule is validated: the broken row must be quarantined with that
rule (its row number exact) and every other row loaded. The rule ids come from the builder itself
(`_SchemaBuilder`), so a rule kind added later without a way to break it here fails
`test_every_rule_the_builder_makes_has_a_breaking_row`; SKIP may only list rules that cannot be
broken by one row, each with its reason.

Valid rows come from the demo generators (`etl.demo.generator`, `etl.demo.extracts`), which write every
contract's extract except the data.police.uk public files; those get the sample rows below. One
`validate_extracts` call per contract checks all its files at once (each file is judged alone).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import Contract, list_contracts
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import ExtractInput, ExtractResult, ValidationContext, _SchemaBuilder, validate_extracts
from etl.demo.extracts import generate_extracts
from etl.demo.generator import generate_demo

MONTH = Month.parse("2019-03")
FORCE = "demo-force"
VALID_ROWS = 6  # valid rows in each file, besides the broken one
CONTRACTS: dict[str, Contract] = {c.id: c for c in list_contracts()}

# Rules that one row cannot break, with the reason. Keep it empty unless a rule truly needs more.
SKIP: dict[tuple[str, str], str] = {}


# --------------------------------------------------------------------------------------------------
# Valid rows


def _street(i: int) -> dict:
    return {
        "crime_id": hashlib.sha256(f"street{i}".encode()).hexdigest(),
        "month_text": str(MONTH),
        "reported_by": "West Midlands Police",
        "falls_within": "West Midlands Police",
        "longitude": f"-1.8{i}",
        "latitude": f"52.4{i}",
        "location": "On or near Broad Street",
        "lsoa_code": f"E0100{9000 + i}",
        "lsoa_name": "Birmingham 050A",
        "crime_type": ["Burglary", "Drugs", "Robbery"][i % 3],
        "last_outcome_category": "Under investigation" if i % 2 else None,
        "context": None,
    }


def _outcome(i: int) -> dict:
    row = {k: v for k, v in _street(i).items() if k not in ("crime_type", "last_outcome_category", "context")}
    return {**row, "outcome_type": ["Local resolution", "Suspect charged", "Offender given a caution"][i % 3]}


def _search(i: int) -> dict:
    return {
        "search_type": "Person search",
        "date_utc": f"2019-03-{i + 2:02d}T1{i % 10}:00:00+00:00",
        "part_of_policing_operation": "False",
        "policing_operation": None,
        "latitude": f"52.4{i}",
        "longitude": f"-1.8{i}",
        "gender": "Male",
        "age_range": "18-24",
        "self_defined_ethnicity": "White - English/Welsh/Scottish/Northern Irish/British",
        "officer_defined_ethnicity": "White",
        "legislation": "Misuse of Drugs Act 1971 (section 23)",
        "object_of_search": "Controlled drugs",
        "outcome": "A no further action disposal",
        "outcome_linked_to_object_of_search": "False",
        "removal_of_more_than_just_outer_clothing": "False",
    }


# data.police.uk public files: no generator writes them (real ones are not in the repository)
SAMPLES = {"police_uk_street": _street, "police_uk_outcomes": _outcome, "police_uk_stop_and_search": _search}


@pytest.fixture(scope="module")
def valid_rows(tmp_path_factory) -> dict[str, list[dict]]:
    """Per contract: valid rows as validation reads them (property name -> text or None)."""
    root = tmp_path_factory.mktemp("demo")
    # 2017-04: the first month of the demo; the reference data then covers whole years up to MONTH.
    generate_demo(root, force_id=FORCE, first_month="2017-04", last_month=str(MONTH), crimes_per_month=40)
    generate_extracts(root, [str(MONTH)], force_id=FORCE, scale=0.3)
    out = {}
    for cid, c in CONTRACTS.items():
        if cid in SAMPLES:
            out[cid] = [SAMPLES[cid](i) for i in range(VALID_ROWS + 1)]
            continue
        path = root / c.file_name if "/" in c.file_name else root / str(MONTH) / c.file_name
        assert path.exists(), f"no valid rows for contract {cid}: neither the demo generators nor SAMPLES write it"
        raw = read_extract(path)
        out[cid] = raw.frame.select([pl.col(col.source_name).alias(col.name) for col in c.columns]).head(VALID_ROWS + 1).to_dicts()
        assert len(out[cid]) >= 3, f"{cid}: the demo wrote too few rows ({len(out[cid])})"
    return out


# --------------------------------------------------------------------------------------------------
# The rules the builder makes, and how to break each


def _context(c: Contract, rows: list[dict], lookup_dates: dict | None = None) -> ValidationContext:
    """Month, force, the force's areas (the valid rows' values) and lookups for the file's rows."""
    ref_cols = [col.name for col in c.columns if col.reference_list]
    areas = {FORCE: sorted({r[n] for r in rows for n in ref_cols if r.get(n)} | {"AREA-1"})} if ref_cols else None
    lookups = {}
    for r in c.rules:
        if r.kind == "not_before_lookup":
            a, key, other = r.args["column"], r.args["key"], r.args["other"]
            pairs = [(row[key], (lookup_dates or {}).get(row[key]) or _parse(row[a], "date")) for row in rows if row.get(key) and row.get(a)]
            pairs = pairs or [("KEY-1", dt.date(MONTH.year, MONTH.month, 1))]
            lookups[r.args["lookup"]] = pl.DataFrame({key: [k for k, _ in pairs], other: [d for _, d in pairs]}, schema={key: pl.Utf8, other: pl.Date})
    return ValidationContext(month=MONTH if c.month_column else None, force_id=FORCE, areas=areas, lookups=lookups)


def _builder(c: Contract, ctx: ValidationContext) -> _SchemaBuilder:
    builder = _SchemaBuilder(c, [ctx], [ctx.force_id])
    builder.build()
    return builder


def builder_rules(c: Contract) -> list[str]:
    """Every rule id the schema builder creates for C, given a file with areas, lookups and a force."""
    return list(_builder(c, _context(c, [])).rules)


def rule_kind(c: Contract, rid: str) -> tuple[str, str | None]:
    """(kind, column) of a rule id: a cross-column rule, a unique key, or '<column>.<kind>'."""
    for r in c.rules:
        if r.id == rid:
            return r.kind, r.args.get("column")
    if any(k.id == rid for k in c.unique_keys):
        return "unique_key", None
    col, _, kind = rid.partition(".")
    if col in c.column_names:
        return ("valid_on" if kind.startswith("valid_on_") else kind), col
    return "unknown", None


def _parse(text: str, logical_type: str):
    value = dt.datetime.fromisoformat(text.replace("T", " ")[:19])
    return value.date() if logical_type == "date" else value


def _fmt(value, logical_type: str) -> str:
    if logical_type == "date":
        return (value.date() if isinstance(value, dt.datetime) else value).isoformat()
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12))
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _not_matching(pattern: str) -> str:
    for candidate in ("#", "x", "0", "XXXX-not-matching"):
        if not pl.select(pl.lit(candidate).str.contains(pattern)).item():
            return candidate
    raise AssertionError(f"no text found that breaks the pattern {pattern}")


def _break_type(c: Contract, col: str, row: dict, first: dict) -> None:
    row[col] = {"date": "2019-02-30", "timestamp": "2019-03-10 25:00:00", "integer": "99999999999999999999999", "number": "1e999"}[c.column(col).logical_type]


def _break_range(c: Contract, col: str, row: dict, first: dict) -> None:
    column = c.column(col)
    value = column.maximum + 1 if column.maximum is not None else column.minimum - 1
    row[col] = str(int(value)) if column.logical_type == "integer" else str(value)


def _break_valid_on(c: Contract, col: str, row: dict, first: dict) -> None:
    column = c.column(col)
    on = column.code_list["validOnColumn"]
    day = _parse(row[on], "date")
    codes = _builder(c, _context(c, [])).code_list(column).frame
    stale = codes.filter((pl.col("valid_from") > day) | (pl.col("valid_to").fill_null(dt.date(9999, 12, 31)) < day))
    assert stale.height, f"{c.id}: the code list has no code out of force on {day}"
    row[col] = stale["code"][0]


def _break_not_after(c: Contract, col: str, row: dict, first: dict, rid: str) -> None:
    rule = next(r for r in c.rules if r.id == rid)
    a, b = rule.args["column"], rule.args["other"]
    ta, tb = c.column(a).logical_type, c.column(b).logical_type
    day = dt.timedelta(days=1)
    if a == c.month_column:  # keep the row inside the extract's month: move the other column back
        row[b] = _fmt(_parse(row[a], ta) - day, tb)
        return
    anchor = next(_parse(row[n], c.column(n).logical_type) for n in (b, a, c.month_column) if n and row.get(n))
    row[b] = _fmt(anchor, tb)
    row[a] = _fmt(_parse(row[b], tb) + day, ta)


def _break_not_greater(c: Contract, row: dict, rid: str) -> None:
    rule = next(r for r in c.rules if r.id == rid)
    a, b = rule.args["column"], rule.args["other"]
    if row.get(b) in (None, ""):
        row[b] = "1"
    row[a] = str(int(float(row[b])) + 1)


def _duplicate(columns: list[str], row: dict, first: dict) -> None:
    for n in columns:
        assert first[n] is not None, f"the first valid row has no {n} to repeat"
        row[n] = first[n]


BREAKERS = {
    "type": _break_type,
    "required": lambda c, col, row, first: row.update({col: None}),
    "range": _break_range,
    "pattern": lambda c, col, row, first: row.update({col: _not_matching(c.column(col).pattern)}),
    "allowed_values": lambda c, col, row, first: row.update({col: "not-an-allowed-value"}),
    "flag": lambda c, col, row, first: row.update({col: "maybe"}),
    "unique": lambda c, col, row, first: _duplicate([col], row, first),
    "code_list": lambda c, col, row, first: row.update({col: "NOT-A-CODE"}),
    "valid_on": _break_valid_on,
    "reference_list": lambda c, col, row, first: row.update({col: "NOT-AN-AREA"}),
    "matches_extract": lambda c, col, row, first: row.update({col: "another-force"}),
    "unique_key": None,  # needs the rule: see _broken_row
    "not_after": None,
    "not_greater": None,  # needs the rule: see _broken_row
    "not_before_lookup": None,  # the row is valid; the lookup dates its key after it (see _broken_row)
}


def _broken_row(c: Contract, rid: str, base: dict, first: dict) -> tuple[dict, dict]:
    """BASE with RID broken (FIRST is the file's first row, for repeats); lookup dates to use."""
    kind, col = rule_kind(c, rid)
    row = dict(base)
    if kind == "unique_key":
        _duplicate(list(next(k for k in c.unique_keys if k.id == rid).columns), row, first)
    elif kind == "not_after":
        _break_not_after(c, col, row, first, rid)
    elif kind == "not_greater":
        _break_not_greater(c, row, rid)
    elif kind == "not_before_lookup":
        rule = next(r for r in c.rules if r.id == rid)
        return row, {row[rule.args["key"]]: _parse(row[rule.args["column"]], "date") + dt.timedelta(days=1)}
    else:
        BREAKERS[kind](c, col, row, first)
    return row, {}


def _csv(c: Contract, rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([col.source_name for col in c.columns])
    for r in rows:
        w.writerow(["" if r[col.name] is None else r[col.name] for col in c.columns])
    return buf.getvalue().encode("utf-8")


_OUTCOMES: dict[str, dict] = {}


def outcomes(cid: str, valid_rows: dict[str, list[dict]]) -> dict:
    """Per rule (and '__control__' for the valid rows alone): (rows in the file, broken row number, outcome)."""
    if cid in _OUTCOMES:
        return _OUTCOMES[cid]
    c = CONTRACTS[cid]
    rows = valid_rows[cid]
    base, kept = rows[0], rows[1:]
    if c.reject_limit(len(rows)) < 1:
        # population and external_statistics reject the whole file for one bad row (by design); what is
        # tested here is the rule, so allow one rejected row.
        c = dataclasses.replace(c, reject_min_rows=1)
    files: list[tuple[str, list[dict], int | None, dict]] = [("__control__", rows, None, {})]
    for rid in builder_rules(c):
        if (cid, rid) in SKIP or rule_kind(c, rid)[0] not in BREAKERS:
            continue
        broken, lookup_dates = _broken_row(c, rid, base, kept[0])
        files.append((rid, [*kept, broken], len(kept) + 2, lookup_dates))  # row number: header is line 1
    inputs = [
        ExtractInput(read_extract(Path(f"{cid}-{i}.csv"), data=_csv(c, file_rows)), _context(c, rows, dates), f"{cid}/{rid}.csv")
        for i, (rid, file_rows, _, dates) in enumerate(files)
    ]
    results = validate_extracts(c, inputs)
    _OUTCOMES[cid] = {rid: (len(file_rows), number, result) for (rid, file_rows, number, _), result in zip(files, results)}
    return _OUTCOMES[cid]


RULES = [(cid, rid) for cid, c in CONTRACTS.items() for rid in builder_rules(c) if (cid, rid) not in SKIP]


# --------------------------------------------------------------------------------------------------
# Tests


def test_every_rule_the_builder_makes_has_a_breaking_row():
    assert len(CONTRACTS) >= 19 and len(RULES) > 250
    made = {(cid, rid) for cid, c in CONTRACTS.items() for rid in builder_rules(c)}
    assert set(SKIP) <= made, f"SKIP lists rules the builder no longer makes: {sorted(set(SKIP) - made)}"
    assert {(cid, rid) for cid, rid in RULES} | set(SKIP) == made
    unbreakable = sorted((cid, rid) for cid, rid in RULES if rule_kind(CONTRACTS[cid], rid)[0] not in BREAKERS)
    assert unbreakable == [], f"rules with no breaking row here (add one to BREAKERS): {unbreakable}"
    kinds = {rule_kind(CONTRACTS[cid], rid)[0] for cid, rid in RULES}
    # every kind of rule is exercised somewhere (areas, lookups and the force make the conditional ones)
    assert kinds == set(BREAKERS), sorted(set(BREAKERS) ^ kinds)


@pytest.mark.parametrize("cid", sorted(CONTRACTS))
def test_the_valid_rows_load_whole(cid, valid_rows):
    n, _, result = outcomes(cid, valid_rows)["__control__"]
    assert isinstance(result, ExtractResult), f"{cid}: the valid rows fail the file: {result}"
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (n, n, 0), result.quarantine.to_dicts()


@pytest.mark.parametrize("cid,rule", RULES, ids=[f"{cid}:{rid}" for cid, rid in RULES])
def test_rule_can_fail(cid, rule, valid_rows):
    n, number, result = outcomes(cid, valid_rows)[rule]
    assert isinstance(result, ExtractResult), f"the file failed instead of quarantining the row: {result}"
    q = result.quarantine
    assert q["row_number"].to_list() == [number], q.select("row_number", "failed_checks").to_dicts()
    assert rule in q["failed_checks"][0].split("; ")
    assert (result.rows_in, result.rows_loaded) == (n, n - 1)
    check = next(ch for ch in result.checks if ch.check == rule)
    assert (check.passed, check.failing_rows) == (False, 1)
