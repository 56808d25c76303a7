"""The auditor's data-quality report (issue 12, item 5) and the scorecard's restated mark (item 3), on
small audit frames whose every number is stated here: the month's latest load, its files with their
sha256 and rows by rule, checks passed / failed / not run, the reconciliation, the 12-month trend and the
crime data integrity figures - and no value of a quarantined row anywhere."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import polars as pl
import pytest

from etl.core.validation import QUARANTINE_SCHEMA
from etl.core.warehouse import AUDIT_CHECKS_SCHEMA, AUDIT_RUNS_SCHEMA
from etl.reporting.overview import data_quality_summary
from etl.reporting.quality import check_state, data_docs_link, quality_checks_frame, quality_files_frame, quality_page
from etl.reporting.render import Nav, quality_html
from etl.reporting.reports import write_report
from etl.reporting.scorecard import restated_marks
from tests.test_reports import FORCE as REPORT_FORCE
from tests.test_reports import MONTH as REPORT_MONTH
from tests.test_reports import kpi_row, measures_frame

FORCE = "f"
MONTH = "2022-01"
MARK = "ZZPLANTED99"
SHA_OLD, SHA_NEW = "a" * 64, "b" * 64
RUN_OLD, RUN_NEW, RUN_DEC = "load-20240101T000000-aaaa", "load-20240105T000000-bbbb", "load-20231201T000000-cccc"


def _files(sha: str, quarantined: int) -> str:
    return json.dumps(
        [
            {
                "extract": "recorded_crime",
                "file": f"{MONTH}/recorded_crime.csv",
                "sha256": sha,
                "encoding": "utf-8",
                "contract": "recorded_crime",
                "contract_version": "1.0.0",
                "rows_in": 90,
                "rows_loaded": 90 - quarantined,
                "rows_quarantined": quarantined,
                "source_root": "/data/source",
            },
            {
                "extract": "crime_outcomes",
                "file": f"{MONTH}/crime_outcomes.csv",
                "sha256": "c" * 64,
                "encoding": "windows-1252",
                "contract": "crime_outcomes",
                "contract_version": "1.1.0",
                "rows_in": 10,
                "rows_loaded": 10,
                "rows_quarantined": 0,
                "source_root": "/data/source",
            },
        ]
    )


def _run(run_id: str, seq: int, month: str | None, rows_in: int, quarantined: int, files: str = "[]", *, kind: str = "load", force: str = FORCE) -> dict:
    r: dict = dict.fromkeys(AUDIT_RUNS_SCHEMA)
    r.update(
        run_id=run_id,
        commit_seq=seq,
        kind=kind,
        force_id=force,
        month=month,
        finished_at=dt.datetime(2024, 1, seq, 10, 0, tzinfo=dt.UTC),
        outcome="success",
        source_files=files,
        rows_in=rows_in,
        rows_loaded=rows_in - quarantined,
        rows_quarantined=quarantined,
        contract_versions=json.dumps({"recorded_crime": "1.0.0", "crime_outcomes": "1.1.0"}),
        definition_versions=json.dumps({"measures": "2.0.0", "offence_groups": "1.0.0"}),
        code_version="police-etl 0.1.0",
    )
    return r


def audit_runs() -> pl.DataFrame:
    return pl.DataFrame(
        [
            _run(RUN_OLD, 1, MONTH, 100, 5, _files(SHA_OLD, 5)),
            _run(RUN_DEC, 2, "2021-12", 50, 10),
            _run(RUN_NEW, 3, MONTH, 100, 2, _files(SHA_NEW, 2)),  # the month re-loaded with a corrected file
            _run("load-20240106T000000-dddd", 4, MONTH, 7, 7, force="other"),  # another force
            _run("measures-20240105T000001-eeee", 5, None, 0, 0, kind="measures"),
        ],
        schema=AUDIT_RUNS_SCHEMA,
    )


def _check(run, extract, check, severity, passed, failing=0, *, file=True, detail=None, month=MONTH, description=None, checked=90) -> dict:
    return {
        "run_id": run,
        "force_id": FORCE,
        "month": month,
        "extract": extract,
        "source_file": f"{month}/{extract}.csv" if file else None,
        "contract": extract,
        "contract_version": "1.0.0",
        "check": check,
        "column": None,
        "description": description or f"{check} holds",
        "severity": severity,
        "passed": passed,
        "failing_rows": failing,
        "rows_checked": checked,
        "detail": detail,
    }


TRC = "Total recorded crime (excluding fraud)"
RECONCILED = f"year ending 2021-12 (2021-01..2021-12), p1.xlsx: Robbery: records 99 vs published 100 (-1.0%); {TRC}: records 900 vs published 1000 (-10.0% OUTSIDE tolerance)"


def audit_checks() -> pl.DataFrame:
    rows = [
        # the re-load of January
        _check(RUN_NEW, "recorded_crime", "crime_ref.unique", "error", False, 2, description="crime_ref must be unique in the file"),
        _check(RUN_NEW, "recorded_crime", "victim_age.range", "error", False, 1, description="victim_age must be 0 to 120"),
        _check(RUN_NEW, "recorded_crime", "hocr_code.code_list", "error", True),
        _check(RUN_NEW, "recorded_crime", "continuity", "warning", False, 1, detail=f"1 month(s) not loaded {MARK}"),
        _check(RUN_NEW, "recorded_crime", "volume.within_normal_range", "warning", True, detail="not checked: 2 previous month(s) loaded, 6 needed"),
        _check(RUN_NEW, "recorded_crime", "published.reconciliation", "warning", None, detail="not checked: no published table for the year ending 2022-01"),
        _check(RUN_NEW, "crime_outcomes", "outcome_type.range", "error", True, checked=10),
        _check(RUN_NEW, "calls", "file.present", "warning", False, file=False, description=f"{MONTH}/calls.csv is present", checked=0),
        _check(RUN_NEW, "stop_search", "file.present", "warning", False, file=False, description=f"{MONTH}/stop_search.csv is present", checked=0),
        # the first load of January (replaced)
        _check(RUN_OLD, "recorded_crime", "crime_ref.unique", "error", False, 5),
        # December
        _check(RUN_DEC, "recorded_crime", "crime_ref.unique", "error", False, 10, month="2021-12"),
        _check(RUN_DEC, "recorded_crime", "continuity", "warning", True, month="2021-12"),
        _check(RUN_DEC, "recorded_crime", "published.reconciliation", "warning", False, 1, month="2021-12", detail=RECONCILED, description="... within 2%"),
        # a quarter end never checked: not run, shown as not checked
        _check(
            "load-20231001T000000-ffff",
            "recorded_crime",
            "published.reconciliation",
            "warning",
            None,
            month="2021-09",
            detail="not checked: 2 month(s) of 2020-10..2021-09 not loaded",
            description="... within 2%",
        ),
    ]
    return pl.DataFrame(rows, schema=AUDIT_CHECKS_SCHEMA)


def quarantine() -> pl.DataFrame:
    rows = [
        {"row_number": 7, "failed_checks": "crime_ref.unique", "run_id": RUN_NEW},
        {"row_number": 9, "failed_checks": "crime_ref.unique; victim_age.range", "run_id": RUN_NEW},
        {"row_number": 3, "failed_checks": "crime_ref.unique", "run_id": RUN_OLD},  # the replaced load's row
    ]
    frame = pl.DataFrame(
        [
            dict.fromkeys(QUARANTINE_SCHEMA)
            | {
                "extract": "recorded_crime",
                "force_id": FORCE,
                "month": MONTH,
                "source_file": f"{MONTH}/recorded_crime.csv",
                "source_sha256": SHA_NEW,
                "failure_detail": f"victim_age: {MARK}",
                "record": json.dumps({"crime_ref": MARK, "victim_age": MARK}),
                "contract_version": "1.0.0",
            }
            | r
            for r in rows
        ]
    )
    return frame


def cdi_rows() -> list[dict]:
    base = {"force_id": FORCE, "family": "plan_milestone", "unit": "pct", "period": "r12", "period_start": "2021-02", "period_end": MONTH, "status": "monitor"}
    return [
        base | {"measure_id": "ml_cdi_incident_compliance", "value": 88.84, "comparison": "national", "comparison_value": 96.0},
        base | {"measure_id": "ml_cdi_incident_compliance", "value": 88.84, "comparison": "sample", "comparison_value": 120.0},
        base | {"measure_id": "ml_cdi_incident_compliance", "value": 50.0, "comparison": "national", "comparison_value": 90.0, "period_end": "2021-12"},
        base | {"measure_id": "ml_cdi_incident_compliance", "value": 10.0, "comparison": "national", "comparison_value": 90.0, "period_end": "2022-02"},
        # as the per-sample measures write them (etl.measures.samples): the 100% target and the sample counts in the note
        base
        | {
            "measure_id": "ml_cdi_drc_compliance",
            "period": "month",
            "period_start": "2021-11",
            "period_end": "2021-11",
            "value": 92.5,
            "comparison": "target",
            "comparison_value": 100.0,
            "note": "basis: x; sample counts 37 / 40 from 45 audited item(s)",
        },
        base | {"measure_id": "nm_homicide_count", "value": 3.0, "unit": "count", "comparison": None},
    ]


@pytest.fixture
def page():
    return quality_page(
        FORCE, MONTH, audit_runs=audit_runs(), checks=audit_checks(), quarantine=quarantine(), measure_rows=cdi_rows(), data_docs_href="../w/gx/index.html"
    )


# --------------------------------------------------------------------------------------------------
# the view model


def test_check_state_counts_a_check_that_could_not_judge_as_not_run():
    frame = audit_checks().with_columns(check_state(AUDIT_CHECKS_SCHEMA.keys()).alias("state")).filter(pl.col("run_id") == RUN_NEW)
    assert dict(zip(frame["check"], frame["state"])) == {
        "crime_ref.unique": "failed",
        "victim_age.range": "failed",
        "hocr_code.code_list": "passed",
        "continuity": "failed",
        "volume.within_normal_range": "not_run",  # passed true, but it said it did not check
        "published.reconciliation": "not_run",  # passed null
        "outcome_type.range": "passed",
        "file.present": "failed",
    }


def test_the_month_is_its_latest_load(page):
    run = page.run
    assert run is not None
    assert (run.run_id, run.finished, run.rows_in, run.rows_loaded, run.rows_quarantined, run.rate_text) == (
        RUN_NEW,
        "2024-01-03 10:00:00 UTC",
        100,
        98,
        2,
        "2.0%",
    )
    assert (run.contract_versions, run.definition_versions, run.code_version, run.source_root) == (
        "crime_outcomes 1.1.0, recorded_crime 1.0.0",
        "measures 2.0.0, offence_groups 1.0.0",
        "police-etl 0.1.0",
        "/data/source",
    )


def test_each_file_with_its_hash_rows_by_rule_and_checks(page):
    rc, oc = page.files
    assert (rc.extract, rc.file, rc.sha256, rc.sha_short, rc.encoding, rc.contract, rc.contract_version) == (
        "recorded_crime",
        f"{MONTH}/recorded_crime.csv",
        SHA_NEW,
        "b" * 12,
        "utf-8",
        "recorded_crime",
        "1.0.0",
    )
    assert (rc.rows_in, rc.rows_loaded, rc.rows_quarantined, rc.rate_text) == (90, 88, 2, "2.2%")
    # two quarantined rows: both failed crime_ref.unique, one victim_age.range too (the replaced load's row is not counted)
    assert [(r.rule, r.rows, r.description) for r in rc.by_rule] == [
        ("crime_ref.unique", 2, "crime_ref must be unique in the file"),
        ("victim_age.range", 1, "victim_age must be 0 to 120"),
    ]
    assert (rc.n("passed"), rc.n("failed"), rc.n("not_run")) == (1, 3, 2)
    assert [(c.check, c.state_words, c.failing_text) for c in rc.attention] == [
        ("crime_ref.unique", "failed", "2"),
        ("victim_age.range", "failed", "1"),
        ("continuity", "failed", "1"),
        ("published.reconciliation", "not run", "-"),
        ("volume.within_normal_range", "not run", "-"),
    ]
    assert (oc.sha_short, oc.encoding, oc.contract_version, oc.rate_text, oc.by_rule, [c.check for c in oc.passed]) == (
        "c" * 12,
        "windows-1252",
        "1.1.0",
        "0.0%",
        [],
        ["outcome_type.range"],
    )
    # the optional files not supplied are listed apart, not counted as failed checks
    assert page.absent == ["calls", "stop_search"] and page.run_checks_shown == []
    assert page.totals == {"passed": 2, "failed": 3, "not_run": 2}


def test_reconciliation_not_checked_is_distinct_from_passed(page):
    rec = page.reconciliation
    assert rec is not None
    assert [(y.label, [(r.group, r.records_text, r.published_text, r.difference_text, r.verdict_words) for r in y.rows]) for y in rec.years] == [
        ("Dec 21", [("Robbery", "99", "100", "-1 (-1.0%)", "within tolerance"), (TRC, "900", "1,000", "-100 (-10.0%)", "outside tolerance")]),
        ("Sep 21", [("", "-", "-", "-", "not checked")]),
    ]
    assert rec.years[1].rows[0].reason == "2 month(s) of 2020-10..2021-09 not loaded"


def test_the_last_12_months(page):
    assert [t.month for t in page.trend] == [f"2021-{m:02d}" for m in range(2, 13)] + [MONTH]
    assert [t.label for t in page.trend if t.loaded] == ["Dec 21", "Jan 22"]
    dec, jan = page.trend[-2:]
    assert (dec.rows_in, dec.rows_quarantined, dec.rate_text, dec.failed_errors, dec.failed_warnings, dec.not_run, dec.not_supplied) == (
        50,
        10,
        "20.0%",
        1,
        1,
        0,
        0,
    )
    assert (jan.rows_in, jan.rows_quarantined, jan.rate_text, jan.failed_errors, jan.failed_warnings, jan.not_run, jan.not_supplied) == (
        100,
        2,
        "2.0%",
        2,
        1,
        2,
        2,
    )
    assert page.trend[0].rate_text == "-" and not page.trend[0].loaded
    chart = page.chart
    assert chart is not None and chart.top_text == "20.0%"
    heights = [round(b["h"], 1) for b in chart.bars]
    assert heights[:10] == [0.0] * 10 and heights[10] == 130.0 and heights[11] == 13.0  # 20% fills the plot, 2% a tenth


def test_crime_data_integrity_latest_figure_sample_benchmark_and_aspiration(page):
    assert [
        (d.measure_id, d.period, d.value_text, d.sample_text, d.benchmark_text, d.versus_benchmark, d.aspiration_text, d.gap_to_aspiration) for d in page.cdi
    ] == [
        ("ml_cdi_drc_compliance", "Nov 21", "92.5%", "37 of 40", "none recorded", "-", "100.0%", "7.5 pts"),
        ("ml_cdi_incident_compliance", "12 months to Jan 22", "88.8%", "120", "96.0%", "-7.2 pts", "100.0%", "11.2 pts"),
    ]


def test_the_csvs_hold_the_full_hash_and_every_row_of_the_page(page):
    files = quality_files_frame(page)
    assert files.select(
        "extract", "sha256", "rows_in", "rows_loaded", "rows_quarantined", "quarantined_by_rule", "checks_passed", "checks_failed", "checks_not_run"
    ).rows() == [
        ("recorded_crime", SHA_NEW, 90, 88, 2, "crime_ref.unique: 2; victim_age.range: 1", 1, 3, 2),
        ("crime_outcomes", "c" * 64, 10, 10, 0, None, 1, 0, 0),
    ]
    assert files["run_id"].unique().to_list() == [RUN_NEW] and files["definition_versions"][0] == "measures 2.0.0, offence_groups 1.0.0"
    assert files["quarantine_rate_pct"].to_list() == pytest.approx([2 / 90 * 100, 0.0])
    other = quality_checks_frame(page)
    sections = other.group_by("section").len().sort("section").rows()
    assert sections == [("check", 9), ("crime_data_integrity", 2), ("quarantine_rule", 2), ("reconciliation", 3), ("trend", 12)]
    trc = other.filter((pl.col("section") == "reconciliation") & (pl.col("item") == TRC)).row(0, named=True)
    assert (trc["records"], trc["published"], trc["difference"], trc["difference_pct"], trc["tolerance_pct"], trc["verdict"]) == (
        900,
        1000,
        -100,
        -10.0,
        2.0,
        "outside tolerance",
    )
    not_checked = other.filter((pl.col("section") == "reconciliation") & (pl.col("verdict") == "not checked"))
    assert not_checked["month"].to_list() == ["2021-09"]
    absent = other.filter(pl.col("item") == "file.present")
    assert absent["verdict"].to_list() == ["failed", "failed"]


def test_the_page_shows_every_section_and_no_row_value(page):
    text = quality_html(page, Nav(quality=True, data_docs="../w/gx/index.html"))
    plain = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
    assert "Data quality: f, Jan 22" in plain
    assert '<a class="data-docs" href="../w/gx/index.html">open the Data Docs</a>' in text
    assert f'<code title="{SHA_NEW}">{"b" * 12}</code>' in text and SHA_OLD not in text
    assert "100 in = 98 loaded + 2 quarantined (2.0%)" in plain
    assert "2 passed, 3 failed, 2 not run" in plain and "2 optional extracts: calls, stop_search" in plain
    assert "crime_ref.unique crime_ref must be unique in the file 2" in plain
    assert "Dec 21 Jan-Dec 21, recorded_crime; p1.xlsx Robbery 99 100 -1 (-1.0%) 2% within tolerance" in plain
    assert "Sep 21 Oct 20 to Sep 21, recorded_crime - - - - 2% not checked 2 month(s) of 2020-10..2021-09 not loaded" in plain
    assert "Jan 22 100 2 2.0% 2 1 2 2" in plain and "Dec 21 50 10 20.0% 1 1 0 0" in plain
    assert "88.8% 120 96.0% -7.2 pts 100.0% 11.2 pts" in plain
    assert text.count("<svg") == 1 and text.count('<rect x="') == 12
    assert MARK not in text  # neither a quarantined record, nor a failure detail, nor a check's detail


def test_no_audit_tables_says_so_and_still_renders():
    page = quality_page(FORCE, MONTH)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", quality_html(page))).split())
    assert "No audit runs or checks were given to the report." in text
    assert "Data Docs not built" in text and "No crime data integrity audit loaded." in text
    assert "Not checked: no published statistics were reconciled for f" in text
    assert quality_files_frame(page).height == 0 and quality_checks_frame(page).filter(pl.col("section") != "trend").height == 0


def test_data_docs_link_is_relative_to_the_report_folder(tmp_path):
    docs = tmp_path / "w" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    out = tmp_path / "reports" / "2022-01"
    out.mkdir(parents=True)
    assert data_docs_link(docs, out) is None  # not built
    docs.parent.mkdir(parents=True)
    docs.write_text("<html></html>")
    href = data_docs_link(docs, out)
    assert href == "../../w/gx/uncommitted/data_docs/local_site/index.html"
    assert (out / href).resolve() == docs.resolve()


def test_the_index_summary_counts_not_run_apart_from_failed():
    s = data_quality_summary(audit_checks().filter(pl.col("run_id") == RUN_NEW))
    assert s.select("extract", "checks", "failed", "not_run", "failing_rows").rows() == [
        ("calls", 1, 1, 0, 0),
        ("crime_outcomes", 1, 0, 0, 0),
        ("recorded_crime", 6, 3, 2, 4),
        ("stop_search", 1, 1, 0, 0),
    ]


def test_write_report_writes_the_quality_page_and_links_it(tmp_path):
    measures = pl.DataFrame(cdi_rows(), infer_schema_length=None).filter(pl.col("measure_id") != "nm_homicide_count")
    paths = write_report(
        measures, MONTH, tmp_path, force_id=FORCE, data_quality=audit_checks(), audit_runs=audit_runs(), quarantine=quarantine(), as_of="2024-01-04 00:00 UTC"
    )
    assert paths.quality == tmp_path / "quality.html" and paths.quality_csv == [tmp_path / "data_quality.csv", tmp_path / "data_quality_checks.csv"]
    for p in [paths.quality, *paths.quality_csv]:
        assert p.exists()
        assert MARK not in p.read_text(encoding="utf-8")
    index = paths.index.read_text(encoding="utf-8")
    assert '<a href="quality.html">Data-quality report</a>' in index and '<span class="no-docs">Data Docs not built</span>' in index
    for page in (paths.index, paths.scorecard, paths.national, paths.quality):
        assert '<a href="quality.html">Data quality</a><span class="no-docs">Data Docs not built</span>' in page.read_text(encoding="utf-8")
    assert "As of 2024-01-04 00:00 UTC" in paths.quality.read_text(encoding="utf-8")
    csv = pl.read_csv(paths.quality_csv[0])
    assert csv["sha256"].to_list() == [SHA_NEW, "c" * 64]


# --------------------------------------------------------------------------------------------------
# the scorecard's restated mark


def _restated() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "measure_id": ["pk_homicide_count", "pk_homicide_count", "pk_nc_robbery_personal", "nm_homicide_count"],
            "period": ["fytd", "fytd", "fytd", "r12"],
            "comparison": ["sply", "sp_2019_20", "sp_2019_20", "ye_jun19"],
            "old_value": [44.0, 44.0, 1020.0, 50.0],
            "new_value": [45.0, 45.0, 1025.0, 52.0],
            "changed_by_run": ["measures-20220210T000000-abcd"] * 3 + ["measures-x"],
            "changed_at": [dt.datetime(2022, 2, 10, 9, 30, tzinfo=dt.UTC)] * 4,
        }
    )


def test_restated_marks_group_by_figure_and_list_a_value_once():
    marks = restated_marks(_restated(), "the report of 2022-02-01")
    assert marks is not None and marks.since == "the report of 2022-02-01"
    hom = marks.by_figure[("pk_homicide_count", "fytd")]
    assert len(hom) == 1  # the same value restated on two comparison rows: once
    assert hom[0].text("count") == "same period last year value was 44, now 45 (run measures-20220210T000000-abcd, 2022-02-10 09:30 UTC)"
    assert restated_marks(None, "x") is None


def test_scorecard_marks_a_restated_figure(tmp_path):
    paths = write_report(
        measures_frame(), REPORT_MONTH, tmp_path, force_id=REPORT_FORCE, restated=_restated(), restated_since="the report of run load-1 (2022-02-01)"
    )
    page = paths.scorecard.read_text(encoding="utf-8")
    # in page order: the neighbourhood crime row (robbery restated, burglary not), then homicides
    nc = kpi_row(page, "pk_nc_robbery_personal")
    assert re.search(
        r'<span class="line">Robbery <strong>1,025</strong><a class="restated" href="#restated-1" title="[^"]*">restated<sup>1</sup></a></span>', nc
    )
    assert '<span class="line">Burglary <strong>975</strong></span>' in nc and nc.count('class="restated"') == 1
    hom = kpi_row(page, "pk_homicide_count")
    assert '<a class="restated" href="#restated-2"' in hom and "restated<sup>2</sup>" in hom
    assert 'class="restated"' not in kpi_row(page, "pk_positive_outcome_rate_da")
    assert '<li id="restated-1" value="1">' in page and '<li id="restated-2" value="2">' in page
    plain = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "was changed by a later run (a re-load or a correction) since the report of run load-1 (2022-02-01)" in plain
    assert "same period last year value was 44, now 45 (run measures-20220210T000000-abcd, 2022-02-10 09:30 UTC)" in plain
    assert "same period 2019/20 value was 1,020, now 1,025" in plain
    sc = pl.read_csv(paths.csv[0], infer_schema=False)
    marked = sc.filter(pl.col("restated").is_not_null())
    assert sorted(marked["measure_id"].to_list()) == ["pk_homicide_count", "pk_nc_robbery_personal"]
    assert marked.filter(pl.col("measure_id") == "pk_nc_robbery_personal")["restated"][0] == (
        "restated since the report of run load-1 (2022-02-01): same period 2019/20 value was 1,020, now 1,025 (run measures-20220210T000000-abcd, 2022-02-10 09:30 UTC)"
    )


def test_scorecard_says_when_nothing_was_restated(tmp_path):
    empty = _restated().clear()
    paths = write_report(measures_frame(), REPORT_MONTH, tmp_path, force_id=REPORT_FORCE, restated=empty, restated_since="run load-1")
    page = paths.scorecard.read_text(encoding="utf-8")
    assert "No figure on this page was restated since run load-1." in page and '<a class="restated"' not in page
    none = write_report(measures_frame(), REPORT_MONTH, tmp_path / "n", force_id=REPORT_FORCE).scorecard.read_text(encoding="utf-8")
    assert 'id="restated"' not in none
