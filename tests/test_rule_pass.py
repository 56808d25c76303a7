"""The compiled rule pass (`etl.core.rule_pass`) gives exactly pandera's answer (issue 13).

Differential tests: for a corpus of frames - every contract's rows (synthetic demo rows, real data.police.uk
rows read from ../shared/data/real at run time) with a seeded share of their cells replaced by bad text of
every kind, batches of several files with and without a known force, areas and lookups, chunked files with
their "seen in an earlier chunk" helpers, empty and all-null frames - the single polars pass finds the same
set of failing (index, rule) pairs as running the pandera schema (`validation._run_schema`), and no rule
error. Where the pass cannot run (a pattern polars rejects, a column of the wrong dtype or absent) it
declines and `_run_rules` gives pandera's answer, reasons included.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest

from etl.core import validation as v
from etl.core.contracts import Contract, list_contracts, load_contract, parse_contract
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.reference import contracts_dir
from etl.core.rule_pass import RulePass
from etl.demo.extracts import generate_extracts
from etl.demo.generator import generate_demo
from tests.conftest import CRIME_HEADER, crime, write_csv

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
MONTH = "2020-03"
FORCES = ["demo-force", None, "other-force"]  # the files of a batch: a known force, an unknown one, another force

# Text that breaks some rule of some type: dates, date-times, whole numbers (overflow, Unicode digits),
# numbers (NaN, infinities), flags, codes valid only on some dates, areas, patterns, blanks.
BAD_TEXT = [
    "",
    " ",
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "-1e999",
    "1.5",
    "1e3",
    "-4",
    "0",
    "51",
    "130",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    "\u0663",
    "+7",
    "-0042",
    "2019-02-30",
    "2019-3-5",
    "2020-03-05",
    "2020-02-29",
    "2016-01-01",
    "2017-03-31",
    "1900-01-01",
    "2020-03-31 23:59:59",
    "2020-03-10T08:00:00",
    "2020-03-10 25:00:00",
    "2020-03",
    "2020-13",
    "Y",
    "N",
    "y",
    "yes",
    "TRUE",
    "1",
    "E01000001",
    "X01000001",
    "e01000001",
    "8N",
    "28A",
    "28E",
    "99Z",
    "recorded",
    "no crime",
    "BE",
    "N1",
    "demo-force",
    "other-force",
    "Other Force",
    "Café",
    "a\nb",
    *[None] * 6,  # an empty cell (as read)
]


def pairs(frame: pl.DataFrame) -> set[tuple[int, str]]:
    return set(frame.iter_rows())


def same_as_pandera(builder: v._SchemaBuilder, schema: pa.DataFrameSchema, frame: pl.DataFrame) -> set[tuple[int, str]]:
    """The compiled pass ran and found exactly pandera's failures (and pandera found no rule error); returns them."""
    compiled = builder.compiled.run(frame)
    assert compiled is not None, "the compiled pass declined a frame it must run"
    expected, errors = v._run_schema(schema, frame)
    assert errors == {}
    assert compiled.schema == expected.schema == pl.Schema({"index": pl.Int64, "rule": pl.Utf8})
    assert compiled.height == compiled.unique().height
    assert pairs(compiled) == pairs(expected)
    found, found_errors = v._run_rules(builder, schema, frame)
    assert pairs(found) == pairs(expected) and found_errors == {}
    return pairs(expected)


# --------------------------------------------------------------------------------------------------
# The corpus


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A small demo source: recorded crime and outcomes for a financial year (so the reference files hold
    rows), every further extract for one month, each with deliberately bad rows."""
    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, first_month="2019-04", last_month=MONTH, crimes_per_month=150, bad_rows_per_month=3)
    generate_extracts(out, [MONTH], scale=0.01, bad_rows_per_month=3)
    return out


def _real_files(contract: Contract) -> list[Path]:
    pattern = {"police_uk_street": "street/*/*-street.csv", "police_uk_outcomes": "outcomes/*/*-outcomes.csv"}.get(
        contract.id, "stop-and-search/*/*-stop-and-search.csv"
    )
    return sorted(p for p in REAL.glob(pattern) if "legacy" not in str(p) and "aggregates" not in str(p))


def source_file(contract: Contract, demo: Path) -> Path:
    """A file of good (or nearly good) rows for the contract: real data for data.police.uk contracts."""
    if contract.profile == "police_uk":
        files = _real_files(contract) if REAL.is_dir() else []
        if not files:
            pytest.skip(f"real data.police.uk files not present at {REAL}")
        return files[-1]
    return demo / contract.file_name if contract.reference else demo / MONTH / contract.file_name


def text_frame(contract: Contract, path: Path) -> pl.DataFrame:
    """The contract's columns as validation sees them: read as text, renamed to the property names."""
    frame = read_extract(path).frame
    return frame.select([pl.col(c.source_name).alias(c.name) for c in contract.columns])


def corrupt(frame: pl.DataFrame, rng: random.Random, share: float) -> pl.DataFrame:
    """``frame`` with about ``share`` of its cells replaced: by bad text, a value of another column, or a
    value of the same column from another row (repeats for the unique rules)."""
    cols = {name: frame[name].to_list() for name in frame.columns}
    everything = [x for values in cols.values() for x in values]
    out = {}
    for name, values in cols.items():
        new = []
        for x in values:
            if rng.random() >= share:
                new.append(x)
                continue
            pick = rng.random()
            new.append(rng.choice(BAD_TEXT) if pick < 0.6 else rng.choice(everything) if pick < 0.8 else rng.choice(values))
        out[name] = new
    return pl.DataFrame(out, schema={name: pl.Utf8 for name in cols})


def batch(
    contract: Contract,
    files: list[pl.DataFrame],
    demo: Path | None = None,
    *,
    chunked: bool = False,
    rng: random.Random | None = None,
    forces: list[str | None] | None = None,
) -> tuple[v._SchemaBuilder, pa.DataFrameSchema, pl.DataFrame]:
    """The builder, schema and prepared frame for ``files`` validated as one batch (as `validate_extracts` and
    `_validate_chunked` prepare it): file i belongs to FORCES[i]; the known forces have areas, the first file
    has the month's recorded crimes to look up; a chunked file has random "key seen in an earlier chunk" flags."""
    forces = forces or FORCES[: len(files)]
    areas = {"other-force": ["N1", "N2", "BE"], "test-force": ["N1"]}
    lookups: dict[str, pl.DataFrame] = {}
    if demo is not None:
        areas["demo-force"] = pl.read_csv(demo / "reference" / "areas.csv", infer_schema=False)["npu"].to_list()
        crimes = pl.read_csv(demo / MONTH / "recorded_crime.csv", infer_schema=False)
        lookups["recorded_crime"] = crimes.select("crime_ref", pl.col("recorded_date").str.to_date(strict=False)).drop_nulls()
    ctxs = [
        v.ValidationContext(month=Month.parse(MONTH), force_id=f, areas=areas if f else None, lookups=lookups if i == 0 else {}) for i, f in enumerate(forces)
    ]
    builder = v._SchemaBuilder(contract, ctxs, forces, chunked=chunked)
    schema = builder.build()
    frame = pl.concat([f.with_columns(pl.lit(i, pl.Int32).alias(v._FILE), pl.lit(forces[i], pl.Utf8).alias(v._FORCE)) for i, f in enumerate(files)])
    if chunked:
        rng = rng or random.Random(0)
        frame = frame.with_columns([pl.Series(helper, [rng.random() < 0.2 for _ in range(frame.height)], pl.Boolean) for helper in builder.seen_keys])
    return builder, schema, builder.prepare(frame)


CONTRACT_IDS = [c.id for c in list_contracts()]
CASES = [(0, 0.0, False), (1, 0.08, False), (2, 0.35, False), (3, 0.2, True)]  # seed, share of cells replaced, chunked


@pytest.mark.parametrize("contract_id", CONTRACT_IDS)
def test_the_compiled_pass_finds_what_pandera_finds_on_every_contract(demo, contract_id):
    contract = load_contract(contract_id)
    good = text_frame(contract, source_file(contract, demo))
    failing_rules: set[str] = set()
    for seed, share, chunked in CASES:
        rng = random.Random(f"{contract_id}/{seed}")
        files = [corrupt(good.sample(n=80, with_replacement=(i == 2 or good.height < 80), seed=seed * 10 + i), rng, share) for i in range(3)]
        builder, schema, frame = batch(contract, files, demo, chunked=chunked, rng=rng)
        found = same_as_pandera(builder, schema, frame)
        failing_rules |= {rule for _, rule in found}
        if share >= 0.2:
            assert len(found) >= 10, "a corrupted batch must break rules (else the comparison proves nothing)"
    # the corruption reaches every column rule of the contract (cross-column, force and area rules: see below)
    column_rules = {rid for rid in builder.rules if "." in rid and not rid.endswith((".matches_extract", ".reference_list"))}
    assert column_rules - failing_rules == set()


def test_the_corpus_breaks_rules_of_every_kind(demo):
    """Across the contracts, the corrupted batches above break a rule of every kind the builder makes."""
    seen: set[str] = set()
    for contract_id in ("recorded_crime", "crime_outcomes", "calls", "cdi_audit", "workforce", "external_statistics", "hospital_admissions"):
        contract = load_contract(contract_id)
        good = text_frame(contract, source_file(contract, demo))
        rng = random.Random(contract_id)
        files = [corrupt(good.sample(n=min(good.height, 80), with_replacement=True, seed=i), rng, 0.3) for i in range(3)]
        builder, schema, frame = batch(contract, files, demo, chunked=contract_id == "calls", rng=rng)
        kinds = {c.name: c.logical_type for c in contract.columns}
        for _, rule in same_as_pandera(builder, schema, frame):
            column, _, what = rule.partition(".")
            seen.add(f"{kinds[column]}.{what}" if what == "type" else what if what else "cross-column")
    assert seen >= {
        "date.type",
        "timestamp.type",
        "integer.type",
        "number.type",
        "flag",
        "range",
        "pattern",
        "allowed_values",
        "unique",
        "code_list",
        "valid_on_recorded_date",
        "reference_list",
        "matches_extract",
        "required",
        "cross-column",
    }


@pytest.mark.parametrize("contract_id", CONTRACT_IDS)
def test_empty_and_all_null_frames(demo, contract_id):
    contract = load_contract(contract_id)
    names = [c.name for c in contract.columns]
    empty = pl.DataFrame(schema={n: pl.Utf8 for n in names})
    assert same_as_pandera(*batch(contract, [empty], demo)) == set()
    assert same_as_pandera(*batch(contract, [empty, empty, empty], demo, chunked=True)) == set()
    nulls = pl.DataFrame({n: [None] * 4 for n in names}, schema={n: pl.Utf8 for n in names})
    found = same_as_pandera(*batch(contract, [nulls, nulls], demo))
    required = {(i, f"{c.name}.required") for i in range(8) for c in contract.columns if c.required}
    repeats = {(i, k.id) for i in (1, 2, 3, 5, 6, 7) for k in contract.unique_keys}  # an all-null key repeats (single-column keys do not)
    assert found == required | repeats
    # one column empty throughout, the others as sent
    good = text_frame(contract, source_file(contract, demo)).head(30)
    for c in contract.columns[:4]:
        same_as_pandera(*batch(contract, [good.with_columns(pl.lit(None, pl.Utf8).alias(c.name)), good], demo))


def test_real_files_as_sent(demo):
    """Every modern-format real data.police.uk file of each kind, uncorrupted, then shuffled across columns."""
    if not REAL.is_dir():
        pytest.skip(f"real data.police.uk files not present at {REAL}")
    checked = 0
    for contract_id in ("police_uk_street", "police_uk_outcomes", "police_uk_stop_and_search"):
        contract = load_contract(contract_id)
        files = _real_files(contract)
        for k, path in enumerate(files[:: max(1, len(files) // 6)]):
            frame = text_frame(contract, path)
            same_as_pandera(*batch(contract, [frame]))
            same_as_pandera(*batch(contract, [corrupt(frame, random.Random(k), 0.1), frame.head(50)]))
            checked += 1
    assert checked >= 9


# --------------------------------------------------------------------------------------------------
# Bad inputs of every kind, with the rule each must break


def _crimes(tmp_path: Path, changes: dict[int, dict]) -> pl.DataFrame:
    rows = [crime(f"R{i}", f"2019-03-{i % 28 + 1:02d}", ["8N", "34B", "28E"][i % 3]) for i in range(40)]
    for i, change in changes.items():
        rows[i] = {**rows[i], **change}
    return text_frame(load_contract("recorded_crime"), write_csv(tmp_path / f"rc{len(list(tmp_path.iterdir()))}.csv", CRIME_HEADER, rows))


RECORDED_CRIME_BAD = [  # (row change, the rule it must break)
    (dict(recorded_date="2019-02-30"), "recorded_date.type"),
    (dict(offence_date="2019-3-5"), "offence_date.type"),
    (dict(victim_age="9223372036854775808"), "victim_age.type"),
    (dict(victim_age="99999999999999999999999"), "victim_age.type"),
    (dict(victim_age="\u0663"), "victim_age.type"),
    (dict(victim_age="-1"), "victim_age.range"),
    (dict(victim_age="121"), "victim_age.range"),
    (dict(knife_sharp="y"), "knife_sharp.flag"),
    (dict(online=""), "online.required"),
    (dict(lsoa_code="X01000001"), "lsoa_code.pattern"),
    (dict(status="no crime"), "status.allowed_values"),
    (dict(hocr_code="99Z"), "hocr_code.code_list"),
    (dict(hocr_code="28A"), "hocr_code.valid_on_recorded_date"),  # replaced in April 2017
    (dict(crime_ref="R0"), "crime_ref.unique"),
    (dict(offence_date="2019-03-28", recorded_date="2019-03-02"), "offence_date_not_after_recorded_date"),
    (dict(npu="ZZ"), "npu.reference_list"),
    (dict(force_id="other-force"), "force_id.matches_extract"),
    (dict(force_id="Other Force"), "force_id.pattern"),
]


@pytest.mark.parametrize("change,rule", RECORDED_CRIME_BAD, ids=[r for _, r in RECORDED_CRIME_BAD])
def test_each_bad_value_breaks_its_rule_alike(tmp_path, change, rule):
    contract = load_contract("recorded_crime")
    frame = _crimes(tmp_path, {7: change})
    builder = v._SchemaBuilder(contract, [v.ValidationContext(areas={"test-force": ["N1"]})], ["test-force"])
    schema = builder.build()
    prepared = builder.prepare(frame.with_columns(pl.lit(0, pl.Int32).alias(v._FILE), pl.lit("test-force").alias(v._FORCE)))
    found = same_as_pandera(builder, schema, prepared)
    assert (7, rule) in found
    assert {i for i, _ in found} == {7}


def test_keys_repeat_within_a_file_only(tmp_path):
    """The same crime_ref in two files of a batch is no repeat; twice in one file (null keys never) is."""
    contract = load_contract("recorded_crime")
    a = _crimes(tmp_path, {3: dict(crime_ref="R1"), 5: dict(crime_ref=""), 6: dict(crime_ref="")})
    b = _crimes(tmp_path, {})
    builder, schema, frame = batch(contract, [a, b], forces=["test-force", "test-force"])
    found = same_as_pandera(builder, schema, frame)
    assert found == {(3, "crime_ref.unique"), (5, "crime_ref.required"), (6, "crime_ref.required")}


def test_unique_keys_over_several_columns_and_chunks(demo):
    """A key over several columns (a null part included) repeats within its file, and across chunks when the
    earlier-chunk helper says so."""
    contract = load_contract("population")
    frame = pl.DataFrame(
        {"force_id": ["f", "f", "f", "f", None, None, "g"], "year": ["2019", "2019", "2020", None, "2019", "2019", "2019"], "population": ["1"] * 7},
        schema={"force_id": pl.Utf8, "year": pl.Utf8, "population": pl.Utf8},
    )
    builder, schema, prepared = batch(contract, [frame, frame])
    found = same_as_pandera(builder, schema, prepared)
    rid = contract.unique_keys[0].id
    assert {(i, r) for i, r in found if r == rid} == {(1, rid), (5, rid), (8, rid), (12, rid)}
    chunked, schema2, prepared2 = batch(contract, [frame], chunked=True, rng=random.Random(5))
    (helper,) = chunked.seen_keys
    prepared2 = prepared2.with_columns(pl.Series(helper, [False, False, True, False, False, False, True]))
    found2 = same_as_pandera(chunked, schema2, prepared2)
    assert {i for i, r in found2 if r == rid} == {1, 2, 5, 6}


def test_outcomes_not_before_the_crime_with_lookups(demo):
    contract = load_contract("crime_outcomes")
    frame = pl.DataFrame(
        {
            "crime_ref": ["A", "B", "C", "A", None],
            "outcome_type": ["1", "18", "23", "8", "1"],
            "outcome_date": ["2020-03-10", "2020-03-01", "2020-03-10", "x", "2020-03-01"],
        },
        schema={"crime_ref": pl.Utf8, "outcome_type": pl.Utf8, "outcome_date": pl.Utf8},
    )
    lookup = pl.DataFrame({"crime_ref": ["A", "B"], "recorded_date": [dt.date(2020, 3, 5), dt.date(2020, 3, 5)]})
    ctxs = [v.ValidationContext(lookups={"recorded_crime": lookup}), v.ValidationContext()]
    builder = v._SchemaBuilder(contract, ctxs, ["f", "f"])
    schema = builder.build()
    both = pl.concat([frame.with_columns(pl.lit(i, pl.Int32).alias(v._FILE), pl.lit("f").alias(v._FORCE)) for i in range(2)])
    found = same_as_pandera(builder, schema, builder.prepare(both))
    rule = contract.rules[0].id
    assert {i for i, r in found if r == rule} == {1}  # only in the file with the lookup


def test_not_greater_and_not_after_on_numbers_and_month_strings(demo):
    contract = load_contract("cdi_audit")
    good = text_frame(contract, source_file(contract, demo)).head(6)
    bad = good.with_columns(
        pl.Series("crimes_recorded", ["3", "1", "x", None, "2", "1e999"]), pl.Series("crimes_should_record", ["2", "1", "1", "1", None, "1"])
    )
    found = same_as_pandera(*batch(contract, [bad]))
    assert {i for i, r in found if r == "crimes_recorded_not_greater_than_should_record"} == {0}


# --------------------------------------------------------------------------------------------------
# How pandera reads a verdict: null results, element-wise and frame checks


@pytest.mark.parametrize("ignore_na", [True, False])
@pytest.mark.parametrize("level", ["column", "frame"])
def test_a_null_verdict_is_read_as_pandera_reads_it(ignore_na, level):
    def starts_with_a() -> pl.Expr:
        return pl.col("x").str.starts_with("a")  # null where x is null

    check = pa.Check(lambda data: data.lazyframe.select(starts_with_a().alias("ok")), name="x.a", error="x.a", ignore_na=ignore_na)
    rules = RulePass()
    rules.add("x.a", starts_with_a, check)
    rules.column("x", required=False)
    if level == "column":
        schema = pa.DataFrameSchema({"x": pa.Column(pl.Utf8, checks=[check], nullable=True, required=True)})
    else:
        schema = pa.DataFrameSchema({"x": pa.Column(pl.Utf8, nullable=True, required=True)}, checks=[check])
    frame = pl.DataFrame({"x": ["abc", None, "b", None, "a"]}, schema={"x": pl.Utf8})
    compiled = rules.run(frame)
    assert compiled is not None
    expected = {(2, "x.a")} | (set() if ignore_na else {(1, "x.a"), (3, "x.a")})
    assert pairs(compiled) == pairs(v._run_schema(schema, frame)[0]) == expected


def test_a_rule_id_used_twice_unites_its_failures():
    rules = RulePass()
    for pattern in ("^a", "c$"):

        def expr(p=pattern) -> pl.Expr:
            return pl.col("x").str.contains(p)

        check = pa.Check(lambda data, e=expr: data.lazyframe.select(e().alias("ok")), name="x.form", error="x.form")
        rules.add("x.form", expr, check)
    rules.column("x", required=True)
    frame = pl.DataFrame({"x": ["abc", "bc", "ab", None, "b"]}, schema={"x": pl.Utf8})
    found = rules.run(frame)
    assert found is not None and found.height == 4  # row 4 breaks both: one pair
    assert pairs(found) == {(1, "x.form"), (2, "x.form"), (3, "x.required"), (4, "x.form")}


def test_checks_the_pass_does_not_model_are_left_to_pandera():
    rules = RulePass()
    element_wise = pa.Check(lambda value: value == "a", element_wise=True, error="x.a")
    rules.add("x.a", lambda: pl.col("x") == "a", element_wise)
    rules.column("x", required=False)
    assert rules.run(pl.DataFrame({"x": ["a"]})) is None
    aggregate = RulePass()
    aggregate.add("x.any", lambda: pl.col("x").is_null().any(), pa.Check(lambda data: data.lazyframe.select(pl.col("x").is_null().any()), error="x.any"))
    assert aggregate.run(pl.DataFrame({"x": ["a", "b"]})) is None  # not one verdict per row
    not_boolean = RulePass()
    not_boolean.add("x.len", lambda: pl.col("x").str.len_chars(), pa.Check(lambda data: data.lazyframe.select(pl.col("x").str.len_chars()), error="x.len"))
    assert not_boolean.run(pl.DataFrame({"x": ["a", "b"]})) is None


# --------------------------------------------------------------------------------------------------
# Where the pass cannot run, pandera does, with its plain reasons


def _declines_and_pandera_answers(builder: v._SchemaBuilder, schema: pa.DataFrameSchema, frame: pl.DataFrame) -> dict[str, str]:
    assert builder.compiled.run(frame) is None
    expected, errors = v._run_schema(schema, frame)
    found, found_errors = v._run_rules(builder, schema, frame)
    assert pairs(found) == pairs(expected) and found_errors == errors
    return errors


def test_a_pattern_polars_rejects_falls_back_to_pandera(tmp_path):
    text = (contracts_dir() / "recorded_crime.yaml").read_text().replace('{pattern: "^(E01|W01)[0-9]{6}$"}', '{pattern: "^(?=E)(E01|W01)[0-9]{6}$"}')
    path = tmp_path / "recorded_crime.yaml"
    path.write_text(text)
    contract = parse_contract(path)
    frame = _crimes(tmp_path, {2: dict(hocr_code="99Z")})
    builder, schema, prepared = batch(contract, [frame], forces=["test-force"])
    errors = _declines_and_pandera_answers(builder, schema, prepared)
    assert list(errors) == ["lsoa_code.pattern"] and "not supported by the polars regex engine" in errors["lsoa_code.pattern"]
    assert pairs(v._run_rules(builder, schema, prepared)[0]) == {(2, "hocr_code.code_list")}  # the other rules still judged every row


def test_a_column_of_the_wrong_dtype_or_absent_falls_back_to_pandera(tmp_path):
    contract = load_contract("recorded_crime")
    frame = _crimes(tmp_path, {4: dict(status="no crime")})
    builder, schema, prepared = batch(contract, [frame])
    errors = _declines_and_pandera_answers(builder, schema, prepared.with_columns(pl.col("victim_age").cast(pl.Int64)))
    assert errors["victim_age.dtype"] == "column victim_age holds Int64 values, not text as read from the file"
    errors = _declines_and_pandera_answers(builder, schema, prepared.drop("npu"))
    assert len(errors) == 1 and next(iter(errors)).endswith(".present")  # (validation reports a missing column before this)


# --------------------------------------------------------------------------------------------------
# Through validation itself: whole files, batches, files read in chunks


def test_validation_uses_the_pass_and_matches_pandera_throughout(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_STAGING_DIR", str(tmp_path / "staging"))
    ran: list[bool] = []
    real = v._run_rules

    def spy(builder, schema, frame):
        compiled = builder.compiled.run(frame)
        ran.append(compiled is not None)
        found, errors = real(builder, schema, frame)
        expected, expected_errors = v._run_schema(schema, frame)
        assert pairs(found) == pairs(expected) and errors == expected_errors
        return found, errors

    monkeypatch.setattr(v, "_run_rules", spy)
    rows = [crime(f"R{i:03d}", f"2019-03-{i % 28 + 1:02d}", ["8N", "34B", "28E"][i % 3]) for i in range(60)]
    rows[5]["hocr_code"] = "99Z"
    rows[30] = dict(rows[2])  # a repeat, several chunks later
    rows[44]["victim_age"] = "nan"
    paths = [write_csv(tmp_path / f"rc{k}.csv", CRIME_HEADER, rows) for k in range(2)]
    contract = load_contract("recorded_crime")
    ctx = v.ValidationContext(month=Month.parse("2019-03"))
    whole = v.validate_extracts(contract, [v.ExtractInput(read_extract(p), ctx) for p in paths])
    monkeypatch.setenv("ETL_CHUNK_BYTES", "400")
    chunked = v.validate_extracts(contract, [v.ExtractInput(read_extract(paths[0]), ctx)])
    assert all(ran) and len(ran) > 5  # one call for the batch, one per chunk
    for result in (*whole, *chunked):
        assert isinstance(result, v.ExtractResult)
        assert dict(zip(result.quarantine["row_number"], result.quarantine["failed_checks"])) == {
            7: "hocr_code.code_list",
            32: "crime_ref.unique",
            46: "victim_age.type",
        }
