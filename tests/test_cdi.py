"""Crime data integrity (CDI) audit measures (issue 12 item 6; domain/measures.md DQ01_cdi_audit):
the cdi_audit contract, the per-sample shares ml_cdi_* with their sample counts, the 100% aspiration,
the national benchmark (data, not code) and the demo's audit sample.

The February 2015 report (seed 000:94-107) is rebuilt as an audit extract from its counts only; the
rates are computed from the rows, never written down."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import ETL_RULES, ContractError, load_contract, parse_contract
from etl.core.extracts import read_extract
from etl.core.reference import contracts_dir
from etl.core.validation import ExtractInput, ExtractResult, ValidationContext, validate_extracts
from etl.core.warehouse import Warehouse
from etl.demo.generator import CDI_AUDIT_COLUMNS, cdi_audit_sample, generate_demo
from etl.loading.reference import REFERENCE_EXTRACTS
from etl.measures import DefinitionError, compute_measures, load_benchmarks, load_definitions, sample_counts
from etl.measures.samples import Benchmark, Benchmarks
from tests.conftest import crime, write_month

CDI = (
    "ml_cdi_incident_compliance",
    "ml_cdi_drc_compliance",
    "ml_cdi_nocrime_compliance_rape",
    "ml_cdi_nocrime_compliance_robbery",
    "ml_cdi_nocrime_compliance_violence",
)
SCHEMA = {c: pl.Int64 if c.startswith("crimes_") else pl.Boolean if c == "decision_correct" else pl.Utf8 for c in CDI_AUDIT_COLUMNS}
HEADER = ",".join(CDI_AUDIT_COLUMNS)


def items(sample_type, n, should=None, recorded=None, group=None, correct=None, month="2014-05", force="f", start=0):
    return [
        {
            "force_id": force,
            "audit_month": month,
            "sample_type": sample_type,
            "item_ref": f"{sample_type[:3].upper()}{start + i}",
            "crime_group": group,
            "crimes_should_record": should,
            "crimes_recorded": recorded,
            "decision_correct": correct,
        }
        for i in range(n)
    ]


def seed_sample(month="2014-05", force="f") -> pl.DataFrame:
    """The audit of seed 000:94-105 as rows: 341 incidents that should have given 332 crimes, 328
    recorded; 100 directly recorded crimes that should have given 124, 121 recorded; 50 dip samples;
    no-crime decisions correct 24 of 30 rape, 25 of 31 robbery, 21 of 31 violence."""
    kw = {"month": month, "force": force}
    rows = (
        items("incident", 296, 1, 1, "theft", **kw)
        + items("incident", 4, 1, 0, "violence", start=296, **kw)
        + items("incident", 16, 2, 2, "violence", start=300, **kw)
        + items("incident", 25, 0, 0, None, start=316, **kw)  # 296 + 32 = 328 recorded of 296 + 4 + 32 = 332, 341 incidents
        + items("directly_recorded", 76, 1, 1, "theft", **kw)
        + items("directly_recorded", 3, 2, 1, "burglary", start=76, **kw)
        + items("directly_recorded", 21, 2, 2, "violence", start=79, **kw)  # 76 + 3 + 42 = 121 of 76 + 6 + 42 = 124
        + items("dip_sample", 50, group="other", **kw)
        + items("no_crime", 24, group="rape", correct=True, **kw)
        + items("no_crime", 6, group="rape", correct=False, start=24, **kw)
        + items("no_crime", 25, group="robbery", correct=True, start=30, **kw)
        + items("no_crime", 6, group="robbery", correct=False, start=55, **kw)
        + items("no_crime", 21, group="violence", correct=True, start=61, **kw)
        + items("no_crime", 10, group="violence", correct=False, start=82, **kw)
    )
    return pl.DataFrame(rows, schema=SCHEMA)


def loaded(*forces, month="2014-05"):
    return pl.DataFrame({"force_id": list(forces), "month": [month] * len(forces), "extract": ["recorded_crime"] * len(forces)})


@pytest.fixture
def no_benchmarks(monkeypatch):
    """The measures as if no national benchmark were recorded (the shipped file records one: see
    test_the_shipped_benchmarks_file_records_the_published_national_rate_only)."""
    from etl.measures import samples

    monkeypatch.setattr(samples, "load_benchmarks", lambda *a, **k: Benchmarks(version="test"))


def cdi_rows(t: pl.DataFrame) -> pl.DataFrame:
    return t.filter(pl.col("measure_id").str.starts_with("ml_cdi_"))


def one(t, mid, comparison="target", month="2014-05", force="f"):
    r = t.filter((pl.col("measure_id") == mid) & (pl.col("comparison") == comparison) & (pl.col("period_end") == month) & (pl.col("force_id") == force))
    assert r.height == 1, r
    return r.row(0, named=True)


def as_csv(frame: pl.DataFrame) -> bytes:
    text = frame.with_columns(pl.col("decision_correct").replace_strict({True: "Y", False: "N"}, default=None, return_dtype=pl.Utf8)).write_csv(null_value="")
    return text.encode()


def validate(data: bytes, name="reference/cdi_audit.csv") -> ExtractResult:
    (result,) = validate_extracts(load_contract("cdi_audit"), [ExtractInput(read_extract(Path(name), data=data), ValidationContext(), name)])
    assert isinstance(result, ExtractResult), result
    return result


# --------------------------------------------------------------------------------------------------
# The seed's audit, computed from its rows


def test_the_seed_audit_gives_the_reports_rates_from_its_counts(no_benchmarks):
    sample = seed_sample()
    counts = sample_counts({"cdi_audit": sample.lazy()}, load_definitions())
    assert counts.sort("measure_id").select("measure_id", "period", "numerator", "denominator", "items", "inconsistent").rows() == [
        ("ml_cdi_drc_compliance", "2014-05", 121.0, 124.0, 100, 0),
        ("ml_cdi_incident_compliance", "2014-05", 328.0, 332.0, 341, 0),
        ("ml_cdi_nocrime_compliance_rape", "2014-05", 24.0, 30.0, 30, 0),
        ("ml_cdi_nocrime_compliance_robbery", "2014-05", 25.0, 31.0, 31, 0),
        ("ml_cdi_nocrime_compliance_violence", "2014-05", 21.0, 31.0, 31, 0),
    ]
    t = compute_measures({"cdi_audit": sample.lazy()}, loaded("f"), None, run_id="r1")
    expected = {CDI[0]: (328, 332, 341), CDI[1]: (121, 124, 100), CDI[2]: (24, 30, 30), CDI[3]: (25, 31, 31), CDI[4]: (21, 31, 31)}
    # one row per measure: the target (with no national benchmark recorded)
    assert sorted(cdi_rows(t).select("measure_id", "comparison").rows()) == sorted((m, "target") for m in CDI)
    for mid, (num, den, n) in expected.items():
        r = one(t, mid)
        assert r["value"] == num / den * 100
        assert (r["period"], r["period_start"], r["unit"], r["family"]) == ("month", "2014-05", "pct", "plan_milestone_2014_15")
        assert (r["comparison_value"], r["change_abs"], r["change_pct"]) == (100.0, num / den * 100 - 100, None)
        assert (r["target"], r["status"], r["comparison_source"], r["run_id"]) == ("aspiration 100%", "not_met", "target", "r1")
        assert f"sample counts {num} / {den} from {n} audited item(s)" in r["note"]
        assert r["note"].endswith("no national benchmark recorded")
        assert r["definition_version"].startswith(f"measures {load_definitions().version}")
    # as the report prints them (truncated there, 000:97-105): 98.8 / 97.6 / 80.0 / 80.6 / 67.7 to one decimal
    assert [round(one(t, m)["value"], 1) for m in CDI] == [98.8, 97.6, 80.0, 80.6, 67.7]


def test_a_perfect_audit_meets_the_aspiration_and_an_empty_sample_is_incomplete():
    sample = pl.DataFrame(items("incident", 5, 2, 2, "theft") + items("no_crime", 3, group="rape", correct=True), schema=SCHEMA)
    t = compute_measures({"cdi_audit": sample.lazy()}, loaded("f"), None)
    assert (one(t, CDI[0])["value"], one(t, CDI[0])["status"]) == (100.0, "met")
    assert (one(t, CDI[2])["value"], one(t, CDI[2])["status"]) == (100.0, "met")
    assert {CDI[1], CDI[3], CDI[4]}.isdisjoint(cdi_rows(t)["measure_id"].to_list())  # no directly recorded or other no-crime items: no rows
    zero = pl.DataFrame(items("incident", 4, 0, 0), schema=SCHEMA)  # incidents that held no crime
    r = one(compute_measures({"cdi_audit": zero.lazy()}, loaded("f"), None), CDI[0])
    assert (r["value"], r["status"], r["change_abs"]) == (None, "incomplete", None)
    assert "sample counts 0 / 0 from 4 audited item(s); no rows in the denominator" in r["note"]


def test_each_audit_and_force_is_its_own_row_and_other_measures_are_untouched(no_benchmarks):
    a = seed_sample("2014-05", "f")
    b = pl.DataFrame(items("incident", 10, 1, 1, "theft", month="2015-05") + items("incident", 10, 1, 0, "theft", month="2015-05", start=10), schema=SCHEMA)
    other = seed_sample("2014-05", "g")  # a force without loaded months: no rows
    t = compute_measures({"cdi_audit": pl.concat([b, a, other]).lazy()}, loaded("f"), None)
    rows = cdi_rows(t)
    assert set(rows["force_id"]) == {"f"}
    assert rows.filter(pl.col("measure_id") == CDI[0]).select("period_end", "value").rows() == [("2014-05", 328 / 332 * 100), ("2015-05", 50.0)]
    assert rows.filter(pl.col("period_end") == "2015-05")["measure_id"].to_list() == [CDI[0]]
    # a per-sample measure has no monthly windows: nothing declared incomplete for it at other months
    assert rows.filter(pl.col("status") == "incomplete").height == 0
    assert not t.filter(pl.col("measure_id").str.starts_with("ml_cdi_") & (pl.col("period") != "month")).height
    assert t.filter(pl.col("measure_id") == "nm_homicide_count").height > 0  # the window measures are still computed (incomplete: no crimes loaded)


def test_an_item_recording_more_crimes_than_should_be_recorded_is_left_out_and_said_so():
    sample = pl.DataFrame(items("incident", 9, 1, 1, "theft") + items("incident", 1, 1, 3, "theft", start=9), schema=SCHEMA)
    r = one(compute_measures({"cdi_audit": sample.lazy()}, loaded("f"), None), CDI[0])
    assert r["value"] == 100.0
    assert "sample counts 9 / 9 from 9 audited item(s); 1 item(s) left out: more counted in the numerator than in the denominator" in r["note"]


# --------------------------------------------------------------------------------------------------
# National benchmark: data, not code


def benchmarks_file(tmp_path, entries: str, version="9.9") -> Path:
    p = tmp_path / "national_benchmarks.yaml"
    p.write_text(f"version: '{version}'\nbenchmarks:\n{entries}")
    return p


def test_the_national_benchmark_is_a_comparison_row_with_its_source(tmp_path):
    p = benchmarks_file(
        tmp_path,
        "  - {measure_id: ml_cdi_incident_compliance, value: 90, source: 'Demo benchmark, page 1', as_of: 2014-11-18,"
        " period_start: 2014-01, period_end: 2014-10, illustrative: true}\n",
    )
    b = load_benchmarks(p)
    t = compute_measures({"cdi_audit": seed_sample().lazy()}, loaded("f"), None, benchmarks=b)
    r = one(t, CDI[0], "national")
    value = 328 / 332 * 100
    assert (r["value"], r["comparison_value"], r["change_abs"], r["change_pct"]) == (value, 90.0, value - 90, (value - 90) / 90 * 100)
    assert (r["status"], r["comparison_source"], r["comparison_start"]) == ("not_met", "national_benchmark", None)  # judged on the aspiration
    assert r["definition_version"].endswith("; national_benchmarks 9.9")
    assert r["note"].endswith(
        "national benchmark 90% (illustrative value, not a published figure; Demo benchmark, page 1, as of 2014-11-18, national sample 2014-01..2014-10)"
    )
    assert "no national benchmark recorded" not in one(t, CDI[0])["note"]
    assert "no national benchmark recorded" in one(t, CDI[1])["note"]  # none for this measure: no national row
    assert cdi_rows(t).filter(pl.col("comparison") == "national")["measure_id"].to_list() == [CDI[0]]


def test_the_benchmark_chosen_covers_the_audit_month_else_is_the_latest_before_it():
    def bench(value, start, end, as_of="2015-01-01"):
        return Benchmark(measure_id="m", value=value, source="s", as_of=dt.date.fromisoformat(as_of), period_start=start, period_end=end)

    b = Benchmarks(version="1", benchmarks=(bench(70, "2013-01", "2013-12"), bench(80, "2014-01", "2014-10"), bench(81, "2014-01", "2014-10", "2016-01-01")))
    assert b.for_sample("m", "2014-05").value == 81  # covering; the later publication wins
    assert b.for_sample("m", "2014-12").value == 81  # none covers: the latest ending before
    assert b.for_sample("m", "2013-06").value == 70
    assert b.for_sample("m", "2012-06") is None and b.for_sample("other", "2014-05") is None


def test_the_shipped_benchmarks_file_records_the_published_national_rate_only():
    shipped = load_benchmarks()
    assert shipped.path is not None and shipped.path.name == "national_benchmarks.yaml"
    (hmic,) = shipped.benchmarks  # HMIC 2014's national crime-recording rate; nothing for DRC or no-crime decisions
    assert (hmic.measure_id, hmic.value, hmic.illustrative, hmic.period_start, hmic.period_end) == (
        "ml_cdi_incident_compliance",
        81.0,
        False,
        "2012-11",
        "2013-10",
    )
    assert "HMIC" in hmic.source and "making the victim count" in hmic.source
    # the seed's May 2014 audit is compared with it: 328 / 332 = 98.8% against 81% nationally; the others have none
    t = compute_measures({"cdi_audit": seed_sample().lazy()}, loaded("f"), None, run_id="r1")
    national = one(t, CDI[0], "national")
    assert (national["comparison_value"], national["change_abs"]) == (81.0, 328 / 332 * 100 - 81)
    assert "national benchmark 81% (HMIC, Crime-recording: making the victim count" in national["note"]
    assert national["definition_version"].endswith("; national_benchmarks 1.1.0")
    assert sorted(cdi_rows(t).filter(pl.col("comparison") == "national")["measure_id"].to_list()) == [CDI[0]]
    assert one(t, CDI[1])["note"].endswith("no national benchmark recorded")


@pytest.mark.parametrize(
    "entry,message",
    [
        ("  - {measure_id: m, value: 101, source: s, as_of: 2014-11-18}\n", "benchmarks.0.value: Input should be less than or equal to 100"),
        ("  - {measure_id: m, value: 90, source: s, as_of: 2014-11-18, period_end: 2014-13}\n", "benchmarks.0.period_end"),
        ("  - {measure_id: m, value: 90, as_of: 2014-11-18}\n", "benchmarks.0.source: Field required"),
        ("  - {measure_id: m, value: 90, source: s, as_of: 2014-11-18, surprise: 1}\n", "benchmarks.0.surprise: Extra inputs are not permitted"),
    ],
)
def test_a_broken_benchmarks_file_is_one_line_naming_it(tmp_path, entry, message):
    p = benchmarks_file(tmp_path, entry)
    with pytest.raises(DefinitionError) as caught:
        load_benchmarks(p)
    assert str(caught.value).startswith(f"{p}: {message}") and "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# The definition format


def test_the_catalogue_measures_are_per_sample_shares_of_the_audit_extract():
    defs = load_definitions()
    cdi = [defs.get(m) for m in CDI]
    assert all(
        (m.kind, m.extract, m.sample_period, m.unit, m.periods) == ("share", "cdi_audit", "audit_month", "pct", {"month": ("target", "national")}) for m in cdi
    )
    assert [(m.numerator_sum, m.denominator_sum) for m in cdi] == [("crimes_recorded", "crimes_should_record")] * 2 + [(None, None)] * 3
    assert all(m.target.rule == "ge" and m.target.value == 100 for m in cdi)
    assert cdi[4].filter.where == {"sample_type": ("no_crime",), "crime_group": ("violence",)}


def one_measure(tmp_path, entry: str) -> Path:
    p = tmp_path / "measures.yaml"
    p.write_text(f"version: '9'\nmeasures:\n  - {entry}\n")
    return p


S = "{extract: cdi_audit, sample_period: audit_month"


@pytest.mark.parametrize(
    "entry,message",
    [
        (
            f"{{id: x, unit: pct, share: {S}}}, periods: {{r12: [target]}}}}",
            "measure x: a per-sample measure is reported at its sample's month: use period month only",
        ),
        (
            f"{{id: x, unit: pct, share: {S}}}, periods: {{month: [sply]}}}}",
            "measure x: a per-sample measure compares with target or national only, not 'sply'",
        ),
        (f"{{id: x, unit: pct, share: {S}}}, periods: {{month: [target]}}}}", "measure x: comparison target needs a numeric target"),
        (
            f"{{id: x, unit: pct, share: {S}, denominator: {{groups: [grp_homicide]}}}}, periods: {{month: []}}}}",
            "measure x: a per-sample measure cannot filter on offence groups",
        ),
        (
            "{id: x, unit: pct, share: {extract: cdi_audit, sums: {numerator: a}}, periods: {month: []}}",
            "measure x: sums (a share of column sums) are computed per sample only",
        ),
        ("{id: x, unit: count, count: {}, periods: {month: [national]}}", "measure x: unknown comparison 'national'"),
    ],
)
def test_the_rules_of_a_per_sample_measure(tmp_path, entry, message):
    p = one_measure(tmp_path, entry)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(p)
    assert str(caught.value).startswith(f"{p}: {message}"), str(caught.value)


# --------------------------------------------------------------------------------------------------
# The contract


def test_bad_audit_rows_are_quarantined_with_their_row_numbers_and_no_identifier_shown():
    good = seed_sample().head(30)
    bad = pl.DataFrame(
        [
            {**good.row(0, named=True), "item_ref": "SECRET-REF-1", "crime_group": "arson-ish"},  # row 32: unknown crime group
            {**good.row(0, named=True), "item_ref": "SECRET-REF-2", "crimes_should_record": -1, "crimes_recorded": None},  # row 33: negative
            {**good.row(0, named=True), "item_ref": "SECRET-REF-3", "sample_type": "audit"},  # row 34: unknown sample type
            {**good.row(0, named=True), "item_ref": "SECRET-REF-4", "audit_month": "May 2014"},  # row 35: not YYYY-MM
        ],
        schema=SCHEMA,
    )
    r = validate(as_csv(pl.concat([good, bad])))
    assert (r.rows_in, r.rows_loaded, r.rows_quarantined) == (34, 30, 4)
    assert r.quarantine.select("row_number", "failed_checks").rows() == [
        (32, "crime_group.allowed_values"),
        (33, "crimes_should_record.range"),
        (34, "sample_type.allowed_values"),
        (35, "audit_month.pattern"),
    ]
    assert not r.quarantine.filter(pl.col("record").str.contains("SECRET-REF") | pl.col("failure_detail").str.contains("SECRET-REF")).height
    assert r.quarantine["record"].str.contains("redacted: identifier").all()
    t = compute_measures({"cdi_audit": r.clean.lazy()}, loaded("f"), None)
    assert "sample counts 30 / 30 from 30 audited item(s); sample from reference/cdi_audit.csv (sha256 " in one(t, CDI[0])["note"]


@pytest.mark.skipif("not_greater" not in ETL_RULES, reason="needs the not_greater contract rule (etl/core/contracts.py, validation.py)")
def test_an_item_recording_more_crimes_than_should_be_recorded_is_quarantined():
    good = seed_sample().head(30)
    over = pl.DataFrame([{**good.row(0, named=True), "item_ref": "X1", "crimes_should_record": 1, "crimes_recorded": 2}], schema=SCHEMA)
    r = validate(as_csv(pl.concat([good, over])))
    assert r.quarantine.select("row_number", "failed_checks").rows() == [(32, "crimes_recorded_not_greater_than_should_record")]


@pytest.mark.skipif("not_greater" not in ETL_RULES, reason="needs the not_greater contract rule (etl/core/contracts.py, validation.py)")
def test_not_greater_compares_numbers_only(tmp_path):
    text = (contracts_dir() / "cdi_audit.yaml").read_text(encoding="utf-8").replace("other: crimes_should_record}", "other: audit_month}")
    p = tmp_path / "cdi_audit.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as caught:
        parse_contract(p)
    assert "quality crimes_recorded_not_greater_than_should_record: other 'audit_month' must be an integer or number property (it is string)" in str(
        caught.value
    )


# --------------------------------------------------------------------------------------------------
# Loaded from SOURCE/reference/cdi_audit.csv by the monthly load


@pytest.mark.skipif("cdi_audit" not in REFERENCE_EXTRACTS, reason="needs the load to read reference/cdi_audit.csv (etl/loading/stages.py, measuring.py)")
def test_the_monthly_load_reads_the_audit_file_quarantines_its_bad_rows_and_computes_the_measures(source, warehouse):
    from etl.loading import load_source_month

    write_month(source, "2014-05", [crime(f"R{i}", f"2014-05-{i + 1:02d}") for i in range(5)])
    sample = seed_sample(force="test-force")
    bad = pl.DataFrame([{**sample.row(0, named=True), "item_ref": "SECRET-REF", "crime_group": "arson-ish"}], schema=SCHEMA)
    (source / "reference").mkdir(parents=True)
    (source / "reference" / "cdi_audit.csv").write_bytes(as_csv(pl.concat([sample, bad])))
    (report,) = load_source_month(source, "2014-05", warehouse)
    assert report.outcome == "loaded"
    wh = Warehouse(warehouse)
    assert wh.read("cdi_audit").height == sample.height
    q = wh.read("quarantine").filter(pl.col("extract") == "cdi_audit")
    assert q.select("row_number", "failed_checks").rows() == [(sample.height + 2, "crime_group.allowed_values")]
    assert not q["record"].str.contains("SECRET-REF").any()
    files = wh.read("audit_runs")["source_files"][0]
    assert '"file": "reference/cdi_audit.csv"' in files and '"extract": "cdi_audit"' in files
    t = wh.read("measures")
    assert [round(one(t, m, force="test-force")["value"], 1) for m in CDI] == [98.8, 97.6, 80.0, 80.6, 67.7]
    assert "sample from reference/cdi_audit.csv (sha256 " in one(t, CDI[0], force="test-force")["note"]
    # the audit is reference data, not a month of the force's data: a later month keeps the audit's rows
    write_month(source, "2014-06", [crime(f"S{i}", f"2014-06-{i + 1:02d}") for i in range(5)])
    (source / "reference" / "cdi_audit.csv").unlink()
    load_source_month(source, "2014-06", warehouse)
    t = Warehouse(warehouse).read("measures")
    assert one(t, CDI[0], force="test-force")["value"] == 328 / 332 * 100
    assert cdi_rows(t).filter(pl.col("period_end") == "2014-06").height == 0


# --------------------------------------------------------------------------------------------------
# The demo's audit sample


def test_the_demo_audit_sample_passes_its_contract_and_gives_the_measures(tmp_path, no_benchmarks):
    sample = cdi_audit_sample("demo-force", "2017-04", "2019-03")
    assert sample.columns == list(CDI_AUDIT_COLUMNS)
    assert sorted(sample["audit_month"].unique()) == ["2017-05", "2018-05"]
    sizes = sample.filter(pl.col("audit_month") == "2017-05").group_by("sample_type").len().sort("sample_type").rows()
    assert sizes == [("dip_sample", 50), ("directly_recorded", 100), ("incident", 341), ("no_crime", 92)]
    assert sample.equals(cdi_audit_sample("demo-force", "2017-04", "2019-03"))  # deterministic
    assert cdi_audit_sample("demo-force", "2018-06", "2019-04").height == 0  # no May in the range: no audit
    path = tmp_path / "cdi_audit.csv"
    sample.write_csv(path, null_value="")
    r = validate(path.read_bytes())
    assert (r.rows_in, r.rows_loaded, r.rows_quarantined) == (sample.height, sample.height, 0)
    t = compute_measures({"cdi_audit": r.clean.lazy()}, loaded("demo-force", month="2018-05"), None)
    rows = cdi_rows(t)
    assert rows.select("measure_id", "period_end").rows() == [(m, month) for m in CDI for month in ("2017-05", "2018-05")]
    may17 = sample.filter((pl.col("audit_month") == "2017-05") & (pl.col("sample_type") == "incident"))
    assert one(t, CDI[0], month="2017-05", force="demo-force")["value"] == may17["crimes_recorded"].sum() / may17["crimes_should_record"].sum() * 100
    rape = sample.filter((pl.col("audit_month") == "2018-05") & (pl.col("crime_group") == "rape") & (pl.col("sample_type") == "no_crime"))
    assert one(t, CDI[2], month="2018-05", force="demo-force")["value"] == (rape["decision_correct"] == "Y").sum() / 30 * 100
    assert rows["value"].is_between(50, 100).all() and set(rows["status"]) <= {"met", "not_met"}


def test_the_demo_writes_the_audit_file_when_its_range_holds_an_audit(tmp_path):
    generate_demo(tmp_path / "a", first_month="2019-04", last_month="2019-05", crimes_per_month=40)
    written = pl.read_csv(tmp_path / "a" / "reference" / "cdi_audit.csv", infer_schema=False)
    assert written.columns == list(CDI_AUDIT_COLUMNS) and written["audit_month"].unique().to_list() == ["2019-05"]
    generate_demo(tmp_path / "b", first_month="2019-01", last_month="2019-02", crimes_per_month=40)
    assert not (tmp_path / "b" / "reference" / "cdi_audit.csv").exists()
