"""The reporting layer: scorecard and national measures pages, CSVs, rounding, labels and the SVG trend chart.

Every test builds a small synthetic measures table (and SPC series) here, so the expected text is
stated next to the figures it comes from.
"""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from etl.core.periods import Month
from etl.measures.engine import MEASURE_SCHEMA
from etl.reporting.charts import trend_svg
from etl.reporting.errors import ReportError
from etl.reporting.formatting import (
    ROUNDING_STATEMENT,
    comparison_label,
    format_change_pct,
    format_value,
    period_label,
    round_half_up,
)
from etl.reporting.layout import load_scorecard_layout
from etl.reporting.reports import write_report

FORCE = "test-force"
MONTH = "2022-01"
F = ("fytd", "2021-04", "2022-01")
SPLY = ("sply", "2020-04", "2021-01")
SP19 = ("sp_2019_20", "2019-04", "2020-01")
R12 = ("r12", "2021-02", "2022-01")
YE = ("ye_jun19", "2018-07", "2019-06")
PREV = ("prev_r12", "2020-02", "2021-01")


def row(
    mid,
    period,
    start,
    end,
    value,
    unit,
    comparison,
    cstart,
    cend,
    cvalue,
    change_abs=None,
    change_pct=None,
    *,
    status="monitor",
    target=None,
    note=None,
    force=FORCE,
    source="force_records",
    **extra,
):
    r = {
        "force_id": force,
        "measure_id": mid,
        "family": "national_measure" if mid.startswith(("nm_", "pu_")) else "plan_kpi",
        "period": period,
        "period_start": start,
        "period_end": end,
        "value": value,
        "unit": unit,
        "comparison": comparison,
        "comparison_start": cstart,
        "comparison_end": cend,
        "comparison_value": cvalue,
        "change_abs": change_abs,
        "change_pct": change_pct,
        "target": target,
        "status": status,
        "definition_version": "measures 1.0.0; offence_groups 1.0.0; grp@1",
        "run_id": "run-test-1",
        "note": note,
        "comparison_source": source if cvalue is not None else None,
    }
    r.update(extra)
    return r


def measures_frame(extra_rows: list[dict] | None = None) -> pl.DataFrame:
    rows = [
        # a percentage with a target (not met), and one that meets its target
        row("pk_positive_outcome_rate_da", *F, 4.3499, "pct", "target", None, None, None, status="not_met", target="> 6%"),
        row("pk_positive_outcome_rate_da", *F, 4.3499, "pct", *SP19, 5.0, -0.6501, -13.002, target="> 6%"),
        row("pk_positive_outcome_rate_rape", *F, 5.55, "pct", "target", None, None, None, status="met", target="> 5%"),
        row("pk_positive_outcome_rate_rape", *F, 5.55, "pct", *SP19, 5.0, 0.55, 11.0, target="> 5%"),
        # counts whose percent changes sit exactly on a half: -2.5 and +2.5
        row("pk_nc_residential_burglary", *F, 975.0, "count", *SP19, 1000.0, -25.0, -2.5, target="direction: reduce"),
        row("pk_nc_robbery_personal", *F, 1025.0, "count", *SP19, 1000.0, 25.0, 2.5, target="direction: reduce"),
        # incomplete current window: no value, no change, the reason
        row(
            "pk_nc_vehicle_theft",
            *F,
            None,
            "count",
            *SP19,
            800.0,
            None,
            None,
            status="incomplete",
            note="current window 2021-04..2022-01 has 1 month(s) not loaded",
        ),
        # not comparable: both values, no change
        row(
            "pk_nc_theft_from_person",
            *F,
            3149.0,
            "count",
            *SP19,
            2537.0,
            None,
            None,
            status="not_comparable",
            note="definitions differ: current [grp_theft_from_person@2] vs comparison [grp_theft_from_person@1] <b>bold</b>",
        ),
        row("pk_homicide_count", *F, 45.0, "count", *SPLY, 33.0, 12.0, 36.3636, target="direction: monitor"),
        row("pk_homicide_count", *F, 45.0, "count", *SP19, 28.0, 17.0, 60.7143, target="direction: monitor"),
        row("pk_999_mean_answer_s", *F, 524.4, "seconds", *SPLY, 225.0, 299.4, 133.0667),
        # national measures: a rate, a count with an incomplete comparison, an incomplete current window, a proxy
        row("nm_nc_rate_per_1000", *R12, 12.345, "per_1000", *YE, 13.0, -0.655, -5.0385),
        row("nm_nc_rate_per_1000", *R12, 12.345, "per_1000", *PREV, 12.0, 0.345, 2.875),
        row("nm_homicide_count", *R12, 52.0, "count", *YE, 50.0, 2.0, 4.0, target="reduce vs ye_jun19 baseline (no numeric target)"),
        row(
            "nm_homicide_count",
            *R12,
            52.0,
            "count",
            *PREV,
            None,
            None,
            None,
            status="incomplete",
            note="comparison window 2020-02..2021-01 has 2 month(s) not loaded",
        ),
        row(
            "nm_nc_total", *R12, None, "count", *YE, 30000.0, None, None, status="incomplete", note="current window 2021-02..2022-01 has 1 month(s) not loaded"
        ),
        row("pu_nc_total", *R12, 31000.0, "count", *YE, 28000.0, 3000.0, 10.7143, note="proxy for nm_nc_total: counts all burglary, not residential burglary"),
        # an earlier month and another force: must not leak into the January report
        row("pk_homicide_count", "fytd", "2021-04", "2021-12", 40.0, "count", "sply", "2020-04", "2020-12", 30.0, 10.0, 33.3),
        row("nm_homicide_count", *R12, 999.0, "count", *YE, 50.0, 949.0, 1898.0, force="other-force"),
    ]
    return pl.DataFrame(rows + (extra_rows or []), schema=MEASURE_SCHEMA)


def spc_frame(n: int = 43) -> pl.DataFrame:
    months = [str(Month.parse("2018-07") + i) for i in range(n)]
    recs = []
    for i, m in enumerate(months):
        value, signal = 4.0 + (i % 5) * 0.5, None
        if i == 20:
            value, signal = 9.0, "outside_limits"
        if 30 <= i <= 36:
            signal = "run_above"
        recs.append(
            {
                "force_id": FORCE,
                "measure_id": "nm_homicide_count",
                "month": m,
                "value": value,
                "centre": 5.0,
                "lower": 1.2,
                "upper": 8.0,
                "baseline_start": "2018-07",
                "baseline_end": "2020-02",
                "signal": signal,
            }
        )
    return pl.DataFrame(recs)


@pytest.fixture
def report(tmp_path: Path):
    checks = pl.DataFrame(
        {
            "run_id": ["r1", "r1", "r1", "r2"],
            "month": ["2022-01"] * 4,
            "extract": ["recorded_crime", "recorded_crime", "crime_outcomes", "recorded_crime"],
            "check": ["victim_age_range", "hocr_code_valid", "outcome_type_range", "victim_age_range"],
            "severity": ["error", "error", "warning", "error"],
            "passed": [False, True, False, True],
            "failing_rows": [3, 0, 1, 0],
            "detail": ["victim_age 137 on row 12 (SECRET-VALUE)", None, "SECRET-VALUE", None],
        }
    )
    paths = write_report(measures_frame(), MONTH, tmp_path / "out", spc=spc_frame(), force_id=FORCE, data_quality=checks)
    return paths


def text(p: Path) -> str:
    return p.read_text(encoding="utf-8")


def section(page: str, measure_id: str) -> str:
    start = page.index(f'id="m-{measure_id}"')
    end = page.find('<section class="measure"', start)
    return page[start : end if end > 0 else len(page)]


def kpi_row(page: str, measure_id: str) -> str:
    """The <tr> of the scorecard row listing this measure id."""
    for tr in re.findall(r"<tr[ >].*?</tr>", page, flags=re.S):
        if 'class="ids">' in tr and re.search(rf'class="ids">[^<]*\b{measure_id}\b', tr):
            return tr
    raise AssertionError(f"no scorecard row for {measure_id}")


# --------------------------------------------------------------------------------------------------
# rounding


@pytest.mark.parametrize(
    "x, places, expected",
    [
        (2.5, 0, 3.0),
        (-2.5, 0, -3.0),
        (0.5, 0, 1.0),
        (1.5, 0, 2.0),
        (3.5, 0, 4.0),
        (-0.5, 0, -1.0),
        (2.4999, 0, 2.0),
        (12.345, 1, 12.3),
        (12.35, 1, 12.4),
        (12.345, 2, 12.35),
        (2.675, 2, 2.68),
        (1.005, 2, 1.01),
        (-1.005, 2, -1.01),
        (1234.5, 0, 1235.0),
        (0.0, 1, 0.0),
        (7, 0, 7.0),
    ],
)
def test_round_half_up_is_half_away_from_zero(x, places, expected):
    assert round_half_up(x, places) == expected


def test_round_half_up_differs_from_bankers_rounding_and_has_no_negative_zero():
    assert round(2.5) == 2 and round_half_up(2.5, 0) == 3  # Python's round() is banker's rounding; ours is not
    assert round(0.125, 2) == 0.12 and round_half_up(0.125, 2) == 0.13
    r = round_half_up(-0.4, 0)
    assert r == 0 and math.copysign(1.0, r) == 1.0
    assert math.isnan(round_half_up(float("nan"), 1))
    with pytest.raises(TypeError):
        round_half_up(None, 0)  # type: ignore[arg-type]


def test_display_formats():
    assert format_change_pct(2.5) == "+3%"
    assert format_change_pct(-2.5) == "-3%"
    assert format_change_pct(0.4) == "0%" and format_change_pct(-0.4) == "0%"
    assert format_change_pct(None) == ""
    assert format_value(12.345, "per_1000") == "12.3 per 1,000"
    assert format_value(4.35, "pct") == "4.4%"
    assert format_value(5302.5, "count") == "5,303"
    assert format_value(16.4, "seconds") == "16 s"
    assert format_value(524.4, "seconds") == "8m 44s"
    assert format_value(5191.0, "seconds") == "1h 26m 31s"
    assert format_value(None, "count") == "not available"


# --------------------------------------------------------------------------------------------------
# labels


def test_period_labels_are_derived_from_dates():
    assert period_label("fytd", "2021-04", "2022-01") == "YTD Jan 22"
    assert period_label("r12", "2020-11", "2021-10") == "12 months to Oct 21"
    assert period_label("cal", "2021-01", "2021-12") == "Jan-Dec 21"
    assert period_label("month", "2022-01", "2022-01") == "Jan 22"
    assert period_label("qtr", "2021-10", "2021-12") == "Oct-Dec 21"
    # a label that disagrees with its dates is not trusted (measures.md DQ08)
    assert "do not match" in period_label("fytd", "2021-01", "2022-01")


def test_comparison_labels():
    assert comparison_label("sply", "fytd", "2021-04", "2022-01", "2020-04", "2021-01") == "Same period 2020/21"
    assert comparison_label("sp_2019_20", "fytd", "2021-04", "2022-01", "2019-04", "2020-01") == "Same period 2019/20"
    assert comparison_label("ye_jun19", "r12", "2021-02", "2022-01", "2018-07", "2019-06") == "Year ending June 2019"
    assert comparison_label("prev_r12", "r12", "2021-02", "2022-01", "2020-02", "2021-01") == "Previous 12 months"
    assert comparison_label("sply", "cal", "2021-01", "2021-12", "2020-01", "2020-12") == "Jan-Dec 20"
    assert "do not match" in comparison_label("sp_2019_20", "fytd", "2021-04", "2022-01", "2018-04", "2019-01")


# --------------------------------------------------------------------------------------------------
# the layout


def test_layout_lists_every_appendix_a_objective_with_unique_rows():
    layout = load_scorecard_layout()
    titles = [o.title for o in layout.objectives]
    assert titles[:3] == ["Rebuilding community policing", "Preventing and reducing crime", "Increased confidence in the police"]
    assert "Reducing violence" in titles and "Safer travel" in titles and len(titles) == 8
    kpis = layout.kpis
    assert len(kpis) == 73
    assert len({k.id for k in kpis}) == len(kpis)
    computed = [k for k in kpis if k.availability == "computed"]
    assert all(k.figures for k in computed)
    assert all(k.reason for k in kpis if k.availability != "computed")
    ids = {f.measure for k in kpis for f in k.figures}
    assert {"pk_positive_outcome_rate_da", "pk_nc_residential_burglary", "pk_999_within_10s_pct", "pk_ss_positive_outcome_rate", "pk_homicide_count"} <= ids


def test_layout_errors_name_the_row(tmp_path: Path):
    bad = tmp_path / "scorecard.yaml"
    bad.write_text(
        "version: '1'\nobjectives:\n  - title: T\n    sub_objectives:\n      - title: null\n        kpis:\n"
        "          - {id: a, kpi: K, figures: [{measure: m}], current: weekly}\n",
        encoding="utf-8",
    )
    with pytest.raises(ReportError, match="KPI 'a'.*current period 'weekly'"):
        load_scorecard_layout(bad)


# --------------------------------------------------------------------------------------------------
# the pages


def test_files_are_written(report):
    for p in (report.index, report.scorecard, report.national, *report.csv):
        assert p.exists() and p.stat().st_size > 0
    assert [p.name for p in report.csv] == ["scorecard.csv", "national_measures.csv"]


def test_scorecard_holds_every_objective_and_kpi_wording(report):
    page = text(report.scorecard)
    layout = load_scorecard_layout()
    for o in layout.objectives:
        assert f">{html.escape(o.title)}</h2>" in page
        for s in o.sub_objectives:
            if s.title:
                assert html.escape(s.title) in page
        for k in o.kpis:
            assert html.escape(k.kpi) in page, k.id
    assert page.count("<table") == len(layout.objectives)
    assert ROUNDING_STATEMENT in page


def test_scorecard_values_labels_and_rounding(report):
    page = text(report.scorecard)
    pos = kpi_row(page, "pk_positive_outcome_rate_da")
    assert "DA <strong>4.3%</strong>" in pos and "Rape <strong>5.6%</strong>" in pos
    assert "[YTD Jan 22]" in pos and "[Same period 2019/20]" in pos
    assert "-0.7 pts" in pos  # a change of a percentage is in points, with no percent-of-percent
    assert "</span> not met</span>" in pos and "Rape:</span> met</span>" in pos
    assert "not computed: needs the recorded_crime and crime_outcomes extracts" in pos  # S&H is absent from the table
    nc = kpi_row(page, "pk_nc_residential_burglary")
    assert "Burglary <strong>975</strong>" in nc and "Robbery <strong>1,025</strong>" in nc
    assert "(-25, -3%)" in nc and "(+25, +3%)" in nc
    hom = kpi_row(page, "pk_homicide_count")
    assert "<strong>45</strong>" in hom and "[Same period 2020/21]" in hom and "[Same period 2019/20]" in hom
    assert "(+12, +36%)" in hom and "(+17, +61%)" in hom
    assert "40" not in re.sub(r"<[^>]+>", " ", hom).split()  # the December figure is not the January one
    calls = kpi_row(page, "pk_999_mean_answer_s")
    assert "8m 44s" in calls


def test_incomplete_and_not_comparable_rows_give_no_change_and_say_why(report):
    page = text(report.scorecard)
    nc = kpi_row(page, "pk_nc_vehicle_theft")
    veh = nc[nc.index("Vehicle theft not available") :]
    assert "current window 2021-04..2022-01 has 1 month(s) not loaded" in veh
    assert "Vehicle theft 800" in nc and "incomplete" in nc
    assert "Theft from the person 2,537" in nc and "not comparable" in nc
    assert "No change given: definitions differ" in nc
    assert "&lt;b&gt;bold&lt;/b&gt;" in nc and "<b>bold</b>" not in page  # notes are escaped
    for name in ("Vehicle theft 800", "Theft from the person 2,537"):
        after = nc[nc.index(name) : nc.index(name) + 200]
        assert "(+" not in after and "(-" not in after  # no change printed


def test_rows_without_figures_say_so_as_the_paper_does(report):
    page = text(report.scorecard)
    assert "In development" in page
    assert "Monitored elsewhere: Reducing Reoffending Delivery Group" in page
    assert "Monitored elsewhere: Safer Travel Partnership" in page
    assert "Not computable from force data: published Crime Survey for England and Wales estimate" in page
    assert "not computed: needs the workforce extract" in page
    assert "SECRET-VALUE" not in page


def test_national_page(report):
    page = text(report.national)
    assert ROUNDING_STATEMENT in page
    rate = section(page, "nm_nc_rate_per_1000")
    assert "12.3 per 1,000" in rate and "13.0 per 1,000" in rate and "-5%" in rate and "+3%" in rate
    assert "12 months to Jan 22" in rate and "Year ending June 2019" in rate and "Previous 12 months" in rate
    assert "No monthly series" in rate
    hom = section(page, "nm_homicide_count")
    assert ">52<" in hom and ">50<" in hom and "+4%" in hom and "+2" in hom
    assert "No change given: comparison window 2020-02..2021-01 has 2 month(s) not loaded" in hom
    assert "999" not in hom  # the other force
    nc = section(page, "nm_nc_total")
    assert "incomplete" in nc and "current window 2021-02..2022-01 has 1 month(s) not loaded" in nc
    assert "%" not in re.sub(r"<[^>]+>", " ", nc.split("<table", 1)[1].split("</table>")[0]).replace("% change", "")
    proxy = section(page, "pu_nc_total")
    assert 'class="tag">proxy<' in proxy and "<strong>Proxy</strong> for <code>nm_nc_total</code>" in proxy
    assert "+11%" in proxy


def test_trend_chart_has_one_point_per_month_a_baseline_and_signals(report):
    hom = section(text(report.national), "nm_homicide_count")
    svg = hom[hom.index("<svg") : hom.index("</svg>") + 6]
    assert svg.count('<circle class="pt') == 43
    assert svg.count('class="pt signal outside_limits"') == 1 and svg.count('class="pt signal run_above"') == 7
    assert 'class="baseline"' in svg and 'class="centre"' in svg and svg.count('class="limit"') == 2 and 'class="band"' in svg
    assert "<title id=" in svg and "<desc id=" in svg and 'role="img"' in svg
    assert ">Jul 18<" in svg and ">Jan 22<" in svg
    assert "<script" not in text(report.national) and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # baseline level = mean of the 12 monthly values of Jul 18..Jun 19 (4.0, 4.5, ... repeating)
    vals = [4.0 + (i % 5) * 0.5 for i in range(12)]
    assert sum(vals) / 12 == 4.875 and "baseline level 4.9 (monthly mean of the series over the year ending June 2019)" in svg
    assert "Mar 20: outside the control limits" in hom
    assert "Jan 21 to Jul 21 (7 months): in a run of 7+ above the centre line" in hom


def test_trend_chart_skips_missing_months_and_survives_a_single_point():
    series = [
        {"month": "2021-01", "value": 3.0, "centre": None, "lower": None, "upper": None, "signal": None},
        {"month": "2021-02", "value": None, "centre": None, "lower": None, "upper": None, "signal": None},
        {"month": "2021-03", "value": 5.0, "centre": None, "lower": None, "upper": None, "signal": None},
    ]
    svg = trend_svg(series, uid="x", title="T", unit="count", baseline_level=None)
    assert svg.count('<circle class="pt') == 2 and svg.count('class="values"') == 2 and 'class="baseline"' not in svg
    one = trend_svg(series[:1], uid="y", title="T", unit="count", baseline_level=3.0)
    assert one.count('<circle class="pt') == 1


def test_csvs_hold_unrounded_values_and_the_displayed_text(report):
    sc = pl.read_csv(report.csv[0])
    layout = load_scorecard_layout()
    assert set(sc["kpi_id"].unique().to_list()) == {k.id for k in layout.kpis}
    da = sc.filter(pl.col("measure_id") == "pk_positive_outcome_rate_da").row(0, named=True)
    assert da["value"] == 4.3499 and da["value_text"] == "4.3%" and da["current_label"] == "YTD Jan 22" and da["status"] == "not_met"
    assert da["comparison_1"] == "sp_2019_20" and da["comparison_1_label"] == "Same period 2019/20" and da["comparison_1_value"] == 5.0
    burg = sc.filter(pl.col("measure_id") == "pk_nc_residential_burglary").row(0, named=True)
    assert burg["comparison_1_change_pct"] == -2.5 and "-3%" in burg["comparison_1_text"]
    veh = sc.filter(pl.col("measure_id") == "pk_nc_vehicle_theft").row(0, named=True)
    assert veh["value"] is None and veh["status"] == "incomplete" and veh["comparison_1_change_abs"] is None
    assert "not loaded" in veh["reason"]
    nat = pl.read_csv(report.csv[1])
    rate = nat.filter(pl.col("measure_id") == "nm_nc_rate_per_1000").row(0, named=True)
    assert rate["value"] == 12.345 and rate["value_text"] == "12.3 per 1,000"
    assert rate["baseline_change_pct"] == -5.0385 and rate["baseline_change_pct_text"] == "-5%"
    hom = nat.filter(pl.col("measure_id") == "nm_homicide_count").row(0, named=True)
    assert hom["series_months"] == 43 and hom["previous_status"] == "incomplete" and hom["previous_change_abs"] is None
    assert nat.filter(pl.col("measure_id") == "pu_nc_total")["proxy_for"].to_list() == ["nm_nc_total"]


def test_index_links_pages_and_summarises_data_quality_without_values(report):
    page = text(report.index)
    assert 'href="scorecard.html"' in page and 'href="national.html"' in page
    assert ROUNDING_STATEMENT in page
    dq = page[page.index("Data quality") :]
    assert ">recorded_crime<" in dq and ">crime_outcomes<" in dq and "victim_age_range" in dq
    assert "SECRET-VALUE" not in page and "137" not in dq


class _TagChecker(HTMLParser):
    VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source", "track", "embed", "param"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def test_pages_are_well_formed_html5(report):
    for p in (report.index, report.scorecard, report.national):
        page = text(p)
        assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page and '<html lang="en">' in page
        assert "<style>" in page and "@media print" in page
        checker = _TagChecker()
        checker.feed(page)
        assert checker.errors == [] and checker.stack == [], (p.name, checker.errors[:3], checker.stack)


def test_without_spc_there_is_no_chart_and_no_invented_series(tmp_path: Path):
    paths = write_report(measures_frame(), MONTH, tmp_path, force_id=FORCE)
    page = text(paths.national)
    assert "<svg" not in page and page.count("No monthly series: no SPC table was given to the report") >= 3
    assert "Data quality" in text(paths.index)


def test_several_forces_need_a_force_id(tmp_path: Path):
    with pytest.raises(ReportError, match="pass force_id"):
        write_report(measures_frame(), MONTH, tmp_path)


def test_extra_columns_and_an_empty_table_are_tolerated(tmp_path: Path):
    m = measures_frame().with_columns(pl.lit("x").alias("future_column"))
    write_report(m, MONTH, tmp_path / "a", force_id=FORCE)
    empty = write_report(pl.DataFrame(schema=MEASURE_SCHEMA), MONTH, tmp_path / "b")
    assert "not computed" in text(empty.scorecard)


def test_a_proxy_unknown_to_the_definitions_is_still_marked_with_its_note(tmp_path: Path):
    extra = [row("pu_new_proxy", *R12, 10.0, "count", *YE, 8.0, 2.0, 25.0, note="proxy for nm_sv_vwi_count: all violence & sexual offences")]
    paths = write_report(measures_frame(extra), MONTH, tmp_path, force_id=FORCE)
    sec = section(text(paths.national), "pu_new_proxy")
    assert 'class="tag">proxy<' in sec and "<code>nm_sv_vwi_count</code>" in sec
    assert "all violence &amp; sexual offences" in sec and "+25%" in sec


# --------------------------------------------------------------------------------------------------
# the package: layout model, templates, escaping, shipped files


_KPI = "          - {id: a, kpi: K, figures: [{measure: m}]}\n"


def _layout(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scorecard.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "kpis, message",
    [
        ("          - {kpi: K, figures: [{measure: m}]}\n", "KPI None (T): id missing or repeated"),
        (_KPI + _KPI, "KPI 'a' (T): id missing or repeated"),
        ("          - {id: a, figures: [{measure: m}]}\n", "KPI 'a' (T): no KPI wording"),
        ("          - {id: a, kpi: K, figures: [{label: L}]}\n", "KPI 'a' (T): a figure has no measure id"),
        (
            "          - {id: a, kpi: K, availability: maybe}\n",
            "KPI 'a' (T): availability must be computed, in_development, monitored_elsewhere, not_computable (got 'maybe')",
        ),
        ("          - {id: a, kpi: K, availability: computed}\n", "KPI 'a' (T): a computed KPI needs figures"),
        ("          - {id: a, kpi: K, availability: in_development}\n", "KPI 'a' (T): a KPI without figures needs a reason"),
        (
            "          - {id: a, kpi: K, figures: [{measure: m}], comparisons: [sply, yoy]}\n",
            "KPI 'a' (T): unknown comparison(s) ['yoy'] (known: sply, prev_r12, sp_2019_20, ye_jun19)",
        ),
        (
            "          - 5\n",
            "not shaped as expected: objectives > sub_objectives > kpis > figures, each a list of mappings "
            "(objectives[0].sub_objectives[0].kpis[0]: not a mapping)",
        ),
        ("          - {id: a, kpi: K, figures: 3}\n", "(objectives[0].sub_objectives[0].kpis[0].figures: not a list)"),
    ],
)
def test_layout_rules_each_give_one_line_naming_the_file_and_the_kpi(tmp_path: Path, kpis, message):
    path = _layout(tmp_path, "version: '1'\nobjectives:\n  - title: T\n    sub_objectives:\n      - title: null\n        kpis:\n" + kpis)
    with pytest.raises(ReportError) as info:
        load_scorecard_layout(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and text.endswith(message) and "\n" not in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: '1'\nobjectives: 7\n", "(objectives: not a list)"),
        ("version: '1'\ndefaults: [1]\nobjectives: [{title: T}]\n", "(defaults: not a mapping)"),
        ("version: '1'\nobjectives:\n  - sub_objectives: []\n", ": an objective has no title"),
        ("objectives: [{title: T}]\n", ": the scorecard layout needs a version and objectives"),
    ],
)
def test_layout_of_the_wrong_shape_says_where(tmp_path: Path, text, message):
    path = _layout(tmp_path, text)
    with pytest.raises(ReportError) as info:
        load_scorecard_layout(path)
    assert str(info.value).startswith(str(path)) and str(info.value).endswith(message)


def test_layout_defaults_apply_and_numbers_read_as_text(tmp_path: Path):
    path = _layout(
        tmp_path,
        "version: 2\ndefaults: {current: r12, comparisons: [ye_jun19]}\nobjectives:\n  - title: 12\n    sub_objectives:\n"
        "      - kpis:\n          - {id: 7, kpi: K, figures: [{measure: m, extract: [a, b]}], target: 8000}\n"
        "          - {id: b, kpi: K2, figures: [{measure: n, extract: c, label: N}], current: month, comparisons: []}\n",
    )
    layout = load_scorecard_layout(path)
    a, b = layout.kpis
    assert (layout.version, layout.objectives[0].title, a.id, a.target) == ("2", "12", "7", "8000")
    assert (a.current, a.comparisons, a.availability, a.figures[0].label, a.figures[0].extracts) == ("r12", ("ye_jun19",), "computed", "m", ("a", "b"))
    assert (b.current, b.comparisons, b.figures[0].label, b.figures[0].extracts) == ("month", (), "N", ("c",))
    assert layout.max_comparisons == 1


def test_every_text_of_the_layout_is_escaped_by_the_templates(tmp_path: Path):
    path = _layout(
        tmp_path,
        "version: '1 <i>'\nsource: \"Paper & 'notes'\"\nobjectives:\n  - title: \"<script>alert(1)</script>\"\n"
        '    sub_objectives:\n      - title: "Sub <b>"\n        kpis:\n'
        '          - {id: a, kpi: "The force\'s <em>KPI</em> & more", figures: [{measure: pk_homicide_count, label: "H<1>"}]}\n'
        '          - {id: b, kpi: K, availability: in_development, reason: "<img src=x onerror=alert(1)>"}\n',
    )
    paths = write_report(measures_frame(), MONTH, tmp_path / "out", force_id=FORCE, layout=path)
    page = text(paths.scorecard)
    assert "<script>" not in page and "<img" not in page and "<em>KPI" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</h2>" in page and "The force&#x27;s &lt;em&gt;KPI&lt;/em&gt; &amp; more" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "Sub &lt;b&gt;" in page
    assert "version 1 &lt;i&gt; (Paper &amp; &#x27;notes&#x27;)" in page
    assert "layout version 1 &lt;i&gt;" in text(paths.index)
    svg = trend_svg([{"month": "2021-01", "value": 1.0}], uid='u"><x', title="<T> & 'q'", unit="<u>", baseline_level=None)
    assert '<title id="u&quot;&gt;&lt;x-title">&lt;T&gt; &amp; &#x27;q&#x27;</title>' in svg and ">&lt;u&gt;</text>" in svg


def test_pages_inline_the_shipped_style_sheet_and_build_no_html_in_python(report):
    import ast
    import tomllib
    from fnmatch import fnmatch

    import etl.reporting
    from etl.reporting.templating import environment

    package = Path(etl.reporting.__file__).parent
    css = (package / "static" / "report.css").read_text(encoding="utf-8")
    assert "@media print" in css
    for p in (report.index, report.scorecard, report.national):
        assert f"<style>\n{css}</style>" in text(p)
    shipped = [f.relative_to(package).as_posix() for d in ("templates", "static") for f in (package / d).iterdir()]
    assert {
        "templates/_page.html",
        "templates/scorecard.html",
        "templates/national.html",
        "templates/index.html",
        "templates/trend.svg",
        "static/report.css",
    } <= set(shipped)
    pyproject = tomllib.loads((package.parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["etl.reporting"]
    assert [f for f in shipped if not any(fnmatch(f, g) for g in globs)] == []  # every template ships in the wheel
    assert set(environment().list_templates()) >= {"scorecard.html", "trend.svg"}
    # markup lives in the templates: no string in the package's Python (docstrings aside) holds an HTML or SVG tag
    tag = re.compile(r"<(/?)(span|td|th|tr|table|div|p|li|ul|h[1-6]|svg|circle|polyline|polygon|line|text|a|strong|code|section|style)\b")
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr)
        }
        found = [
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings and tag.search(n.value)
        ]
        assert found == [], (module.name, found[:3])
