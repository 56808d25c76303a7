"""The pages of a public-data warehouse: data.police.uk files of City of London Police (July 2018 to
June 2019, ../shared/data/real, see its SOURCES.md) and the ONS Police Force Area tables, loaded with
the police_uk_* contracts. The national page lists the proxies first, leaves out the national measures
the public files cannot give (saying how many), labels every window with its own dates, and shows the
records against the published statistics. A force's own warehouse keeps its page as it was.
"""

from __future__ import annotations

import csv
import html
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from etl.core.published import read_pfa_table_p1
from etl.core.reference import contracts_dir
from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from etl.measures.engine import MEASURE_SCHEMA, load_definitions
from etl.reporting.figures import MeasureIndex
from etl.reporting.formatting import comparison_label, period_label, window_dates
from etl.reporting.layout import load_scorecard_layout
from etl.reporting.national import build_national_rows, is_public_data, national_page
from etl.reporting.reconciliation import reconciliation
from etl.reporting.render import national_html
from etl.reporting.reports import write_report
from tests.conftest import SHARED

REAL = SHARED / "data" / "real"
WORKBOOKS = REAL / "prc" / "ons-pfa-tables"
JUNE_2019 = WORKBOOKS / "policeforceareatablesyearendingjune2019.xlsx"
FORCE = "city-of-london"
CITY_AREA = "E23000034"
MONTHS = [f"2018-{k:02d}" for k in range(7, 13)] + [f"2019-{k:02d}" for k in range(1, 7)]

needs_real = pytest.mark.skipif(not JUNE_2019.exists(), reason=f"the real data.police.uk files are not at {REAL} (shared/data/real beside the repository)")

# Records against ONS PFA Table P1, year ending June 2019, City of London (street rows of 2018-07..2019-06):
# the mapped proxies (police_uk_mapping.yaml published_offence_group), total recorded crime (every crime type
# but anti-social behaviour) and the crime types named as a P1 heading (issue 12)
EXPECTED_JUNE_2019 = [
    ("Bicycle theft", 529, 522, "+7 (+1.3%)", "within tolerance"),
    ("Burglary", 305, 316, "-11 (-3.5%)", "within tolerance"),
    ("Criminal damage and arson", 245, 234, "+11 (+4.7%)", "within tolerance"),
    ("Possession of weapons offences", 61, 62, "-1 (-1.6%)", "within tolerance"),
    ("Robbery", 135, 143, "-8 (-5.6%)", "outside tolerance"),
    ("Shoplifting", 1003, 990, "+13 (+1.3%)", "within tolerance"),
    ("Theft from the person", 710, 692, "+18 (+2.6%)", "within tolerance"),
    ("Total recorded crime (excluding fraud)", 7870, 7888, "-18 (-0.2%)", "within tolerance"),
    ("Vehicle offences", 209, 197, "+12 (+6.1%)", "outside tolerance"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """Every month of street and stop-and-search files of the year ending June 2019, and every ONS workbook."""
    if not JUNE_2019.exists():
        pytest.skip(f"the real data.police.uk files are not at {REAL}")
    tmp = tmp_path_factory.mktemp("public")
    source, wh = tmp / "source", tmp / "warehouse"
    (source / "reference" / "published").mkdir(parents=True)
    for f in sorted(WORKBOOKS.glob("*.xlsx")):
        shutil.copy(f, source / "reference" / "published" / f.name)
    for kind in ("street", "stop-and-search"):
        (source / kind).mkdir()
        for m in MONTHS:
            shutil.copy(REAL / kind / FORCE / f"{m}-{FORCE}-{kind}.csv", source / kind)
    report = pipeline.backfill(source, MONTHS[0], MONTHS[-1], wh)
    assert report.ok and {r.force_id for r in report.months} == {FORCE}
    return wh


def _report(warehouse: Path, month: str, out: Path):
    wh = Warehouse(warehouse)
    return write_report(wh.read("measures"), month, out, spc=wh.read("spc"), force_id=FORCE, data_quality=wh.read("audit_checks"))


def _national_with_checks(warehouse: Path, month: str) -> str:
    """The national page as write_report builds it, with the audit_checks given to the page."""
    wh = Warehouse(warehouse)
    measures, checks = wh.read("measures"), wh.read("audit_checks")
    rows = measures.filter((pl.col("force_id") == FORCE) & (pl.col("period_end") <= month)).to_dicts()
    nrows = build_national_rows(MeasureIndex(rows), rows, month, FORCE, wh.read("spc"), load_definitions())
    return national_html(national_page(nrows, FORCE, month, "", True, checks=checks))


@pytest.fixture(scope="module")
def june(warehouse, tmp_path_factory):
    return _report(warehouse, "2019-06", tmp_path_factory.mktemp("june"))


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def summary_rows(page: str) -> list[tuple[str, list[str]]]:
    """(measure id, cell texts) of the summary table, in page order."""
    body = page.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    out = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        mid = re.search(r'href="#m-([^"]+)"', tr)
        if mid:
            out.append((mid.group(1), [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)]))
    return out


def detail_rows(page: str, measure_id: str) -> dict[str, str]:
    """Row name -> window of a measure's own table."""
    start = page.index(f'id="m-{measure_id}"')
    table = page[start:].split('<table class="national">', 1)[1].split("</table>", 1)[0]
    return {_text(name): _text(window) for name, window in re.findall(r'<th scope="row">(.*?)</th><td>(.*?)</td>', table, flags=re.S)}


def reconciliation_rows(page: str) -> list[list[str]]:
    """The cells of the reconciliation table (the year-ending cell only on a year's first row)."""
    table = page.split('<table class="reconciliation">', 1)[1].split("</table>", 1)[0]
    return [
        [_text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, flags=re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>", 1)[1], flags=re.S)
    ]


# --------------------------------------------------------------------------------------------------
# the public-data warehouse, as loaded from the real files


@needs_real
def test_proxies_are_listed_first_and_national_measures_it_cannot_give_are_not_rows(warehouse, june):
    measures = Warehouse(warehouse).read("measures")
    proxies = sorted(measures.filter(pl.col("measure_id").str.starts_with("pu_"))["measure_id"].unique().to_list())
    assert len(proxies) == 11
    page = june.national.read_text(encoding="utf-8")
    assert [mid for mid, _ in summary_rows(page)] == proxies
    assert 'id="m-nm_' not in page and 'href="#m-nm_' not in page
    national = [m for m in load_definitions().measures if m.family == "national_measure" and m.id.startswith("nm_")]
    assert len(national) == 41
    assert "41 national measures need the force's own extracts and are not shown: the public files cannot give them." in _text(page)
    assert page.count("need the force's own extracts") == 1
    assert "This warehouse holds the public data.police.uk files" in page
    # no row says 'incomplete' for a measure the warehouse could never hold
    assert all(not mid.startswith("nm_") for mid, _ in summary_rows(page))
    # a proxy's reasons do not repeat the proxy text shown above its table, nor a reason twice
    assert "No change given: proxy for" not in page
    rate = page[page.index('id="m-pu_nc_rate_per_1000"') :].split("</section>", 1)[0]
    assert '<span class="reason">no population estimate for 2019 or earlier</span>' in rate
    # the CSV lists the same rows as the page
    assert sorted(pl.read_csv(june.csv[1])["measure_id"].to_list()) == proxies
    index = june.index.read_text(encoding="utf-8")
    assert "11 public-data proxies of national measures (41 national measures need the force's own extracts and are not shown)" in index


@pytest.mark.parametrize("month", ["2019-06", "2019-03"])
@needs_real
def test_every_window_label_is_its_own_rows_window(warehouse, tmp_path, month):
    measures = Warehouse(warehouse).read("measures").filter(pl.col("period_end") == month)
    page = _report(warehouse, month, tmp_path).national.read_text(encoding="utf-8")
    rows = summary_rows(page)
    assert rows
    for mid, cells in rows:
        mine = measures.filter((pl.col("measure_id") == mid) & (pl.col("period") == "r12"))
        r = mine.row(0, named=True)
        assert cells[1] == period_label("r12", r["period_start"], r["period_end"]), mid
        details = detail_rows(page, mid)
        assert details["Current"] == cells[1]
        for c in mine.iter_rows(named=True):
            name = {"ye_jun19": "Baseline", "prev_r12": "Previous 12 months"}[c["comparison"]]
            label = comparison_label(c["comparison"], "r12", c["period_start"], month, c["comparison_start"], c["comparison_end"])
            assert details[name] == f"{label} ({window_dates(c['comparison_start'], c['comparison_end'])})", (mid, name)
    expected = f"12 months to {'Jun 19' if month == '2019-06' else 'Mar 19'}"
    assert {cells[1] for _, cells in rows} == {expected}
    assert "12 months to Jul 18" not in page


@needs_real
def test_reconciliation_table_rows_and_verdicts(warehouse):
    page = _national_with_checks(warehouse, "2019-06")
    rows = reconciliation_rows(page)
    june_head, *june_rest = rows[:9]
    assert june_head[0] == "Jun 19 Jul 18 to Jun 19; policeforceareatablesyearendingjune2019.xlsx"
    june_cells = [june_head[1:], *june_rest]
    assert [(c[0], int(c[1].replace(",", "")), int(c[2].replace(",", "")), c[3], c[4], c[5]) for c in june_cells] == [
        (g, rec, pub, diff, "5%", verdict) for g, rec, pub, diff, verdict in EXPECTED_JUNE_2019
    ]
    # the quarters whose 12 months are not all loaded: not checked, with the reason - never a pass
    assert rows[9:] == [
        ["Mar 19 Apr 18 to Mar 19", "-", "-", "-", "-", "5%", "not checked 3 month(s) of 2018-04..2019-03 not loaded"],
        ["Dec 18 Jan-Dec 18", "-", "-", "-", "-", "5%", "not checked 6 month(s) of 2018-01..2018-12 not loaded"],
        ["Sep 18 Oct 17 to Sep 18", "-", "-", "-", "-", "5%", "not checked 9 month(s) of 2017-10..2018-09 not loaded"],
    ]
    assert page.count('<span class="badge b-incomplete">not checked</span>') == 3
    assert page.count('<span class="badge b-met">within tolerance</span>') == 7 and page.count('<span class="badge b-not_met">outside tolerance</span>') == 2
    assert 'id="reconciliation"' in page and "Records: the police_uk_street extract." in page


@needs_real
def test_reconciliation_numbers_follow_from_the_files_and_the_contract(warehouse):
    """The expected rows again, from the CSV files, Table P1 and the contract's tolerance."""
    mapping = yaml.safe_load((contracts_dir() / "definitions" / "police_uk_mapping.yaml").read_text(encoding="utf-8"))
    groups = {p["published_offence_group"]: set(p["crime_types"]) for p in mapping["proxy_measures"] if p.get("published_offence_group")}
    p1 = read_pfa_table_p1(JUNE_2019).filter(pl.col("area_code") == CITY_AREA)
    crime_types = {t["crime_type"] for t in mapping["crime_types"] if not t["valid_to"]} - {"Anti-social behaviour"}  # an incident, not a crime
    for t in sorted(crime_types & set(p1["offence_group"].to_list())):  # a crime type named as a published heading
        groups.setdefault(t, {t})
    groups["Total recorded crime (excluding fraud)"] = crime_types
    counts = dict.fromkeys(groups, 0)
    for m in MONTHS:
        with open(REAL / "street" / FORCE / f"{m}-{FORCE}-street.csv", newline="", encoding="utf-8-sig") as fh:
            for r in csv.DictReader(fh):
                for g, types in groups.items():
                    counts[g] += r["Crime type"] in types
    published = {g: int(p1.filter(pl.col("offence_group") == g)["value"][0]) for g in groups}
    street = yaml.safe_load((contracts_dir() / "police_uk_street.yaml").read_text(encoding="utf-8"))
    checks = next(p["value"] for p in street["customProperties"] if p["property"] == "crossMonthChecks")
    tolerance = next(c["tolerancePercent"] for c in checks if c["check"] == "reconcile_published")
    assert tolerance == 5.0
    expected = []
    for g in sorted(groups):
        pct = (counts[g] - published[g]) / published[g] * 100
        expected.append((g, counts[g], published[g], "within tolerance" if abs(pct) <= tolerance else "outside tolerance"))
    assert expected == [(g, rec, pub, verdict) for g, rec, pub, _, verdict in EXPECTED_JUNE_2019]
    rec = reconciliation(Warehouse(warehouse).read("audit_checks"), FORCE, "2019-06")
    assert rec is not None
    june = rec.years[0]
    assert (june.end, june.tolerance, june.extract) == ("2019-06", 5.0, "police_uk_street")
    assert [(r.group, r.records, r.published, r.verdict_words) for r in june.rows] == expected
    assert rec.summary() == "year ending Jun 19 (5% tolerance): 7 offence groups within tolerance, 2 offence groups outside tolerance"


@needs_real
def test_index_sums_up_the_reconciliation(june):
    index = june.index.read_text(encoding="utf-8")
    assert (
        'Records against published statistics, <a href="national.html#reconciliation">year ending Jun 19 (5% tolerance): '
        "7 offence groups within tolerance, 2 offence groups outside tolerance</a>."
    ) in index


@needs_real
def test_an_earlier_report_month_shows_only_its_own_years(warehouse):
    page = _national_with_checks(warehouse, "2019-03")
    assert [r[0] for r in reconciliation_rows(page)] == ["Mar 19 Apr 18 to Mar 19", "Dec 18 Jan-Dec 18", "Sep 18 Oct 17 to Sep 18"]
    assert "within tolerance" not in page and page.count(">not checked<") == 3


@needs_real
def test_write_report_puts_the_reconciliation_on_the_national_page(june):
    page = june.national.read_text(encoding="utf-8")
    assert 'id="reconciliation"' in page and "-8 (-5.6%)" in page


# --------------------------------------------------------------------------------------------------
# rules, on small frames


def _row(mid: str, value: float | None, **kw) -> dict:
    r = dict.fromkeys(MEASURE_SCHEMA)
    r.update(force_id="f", measure_id=mid, family="national_measure", period="r12", period_start="2021-02", period_end="2022-01", value=value, unit="count")
    r.update(comparison="ye_jun19", comparison_start="2018-07", comparison_end="2019-06", status="monitor" if value is not None else "incomplete")
    r.update(kw)
    return r


def _check(month: str, detail: str, run: str = "load-20240101T000000-a", force: str = "f", description: str = "... within 2%") -> dict:
    return {
        "run_id": run,
        "force_id": force,
        "month": month,
        "extract": "recorded_crime",
        "check": "published.reconciliation",
        "description": description,
        "severity": "warning",
        "passed": "OUTSIDE" not in detail,
        "failing_rows": detail.count("OUTSIDE"),
        "rows_checked": 0,
        "detail": detail,
    }


@needs_real
def test_the_scorecard_of_a_public_data_warehouse_names_its_kpis_instead_of_73_empty_rows(june):
    page = june.scorecard.read_text(encoding="utf-8")
    text = _text(page)
    layout_rows = sum(1 for o in load_scorecard_layout().objectives for s in o.sub_objectives for _ in s.kpis)
    assert "This warehouse holds data.police.uk files only" in text and f"none of the {layout_rows} KPIs has a value here" in text
    assert '<table class="scorecard">' not in page  # no table of rows saying "not available"
    listed = [int(n) for n in re.findall(r"(\d+) KPIs? not available from public data", text)]
    assert sum(listed) == layout_rows and len(listed) == len(load_scorecard_layout().objectives)
    with june.csv[0].open(encoding="utf-8") as fh:  # the exports still hold every KPI
        assert len({r["kpi_id"] for r in csv.DictReader(fh)}) == layout_rows
    index = _text(june.index.read_text(encoding="utf-8"))
    assert "none has a value from the public data files" in index and "Scorecard figures by status" not in index


def test_a_force_warehouse_is_not_public_data_and_keeps_every_national_measure(tmp_path):
    rows = [_row("nm_homicide_count", 12.0), _row("nm_nc_total", None, note="needs the recorded_crime extract, not loaded for f"), _row("pu_nc_total", 30.0)]
    assert not is_public_data(rows)
    assert is_public_data([_row("nm_nc_total", None), _row("pu_nc_total", 30.0)])
    assert not is_public_data([_row("nm_nc_total", None)])
    paths = write_report(pl.DataFrame(rows, schema=MEASURE_SCHEMA), "2022-01", tmp_path, force_id="f")
    page = paths.national.read_text(encoding="utf-8")
    ids = [mid for mid, _ in summary_rows(page)]
    assert ids[0] == "nm_homicide_count" and ids[-1] == "pu_nc_total" and "nm_nc_total" in ids and len(ids) == 42
    assert "not shown" not in page and "public data.police.uk files" not in page and 'id="reconciliation"' not in page


def test_no_published_statistics_means_no_reconciliation_table():
    checks = pl.DataFrame([_check(m, "not checked: no published statistics for this force") for m in ("2021-12", "2022-01")])
    assert reconciliation(checks, "f", "2022-01") is None
    assert reconciliation(None, "f", "2022-01") is None
    assert reconciliation(pl.DataFrame({"check": ["x"], "month": ["2022-01"], "detail": ["y"]}), "f", "2022-01") is None


def test_the_latest_run_of_a_month_counts_and_other_forces_do_not():
    old = "year ending 2021-12 (2021-01..2021-12), p.xlsx: Robbery: records 90 vs published 100 (-10.0% OUTSIDE tolerance)"
    new = "year ending 2021-12 (2021-01..2021-12), p.xlsx: Robbery: records 99 vs published 100 (-1.0%); Homicide: records 3, not published"
    checks = pl.DataFrame(
        [
            _check("2021-12", new, run="load-20240102T000000-a"),
            _check("2021-12", old, run="load-20240101T235959-z"),
            _check("2021-12", old, run="load-20240105T000000-b", force="other"),
            _check("2021-11", "not checked: no published table for the year ending 2021-11"),
            _check("2022-03", old),  # after the report month
        ]
    )
    rec = reconciliation(checks, "f", "2022-01")
    assert rec is not None and len(rec.years) == 1
    y = rec.years[0]
    assert (y.label, y.window, y.source, y.tolerance_text) == ("Dec 21", "Jan-Dec 21", "p.xlsx", "2%")
    assert [(r.group, r.records_text, r.published_text, r.difference_text, r.verdict_words) for r in y.rows] == [
        ("Robbery", "99", "100", "-1 (-1.0%)", "within tolerance"),
        ("Homicide", "3", "-", "-", "not published"),
    ]
    assert rec.summary() == "year ending Dec 21 (2% tolerance): 1 offence group within tolerance, 1 offence group not published"


def test_a_detail_not_in_the_checks_form_is_not_read_as_a_pass():
    checks = pl.DataFrame([_check("2021-12", "something else entirely"), _check("2020-12", "year ending 2020-12 (2020-01..2020-12), p.xlsx: Robbery: 5 of 6")])
    rec = reconciliation(checks, "f", "2021-12")
    assert rec is not None
    assert [(r.verdict_words, r.reason) for r in rec.years[0].rows] == [("not readable", "the check's detail is not in the expected form; see audit_checks")]
    assert rec.years[0].rows[0].badge == "not_available" and rec.earlier_checked == 1
    assert rec.summary() == ""


def test_the_page_shows_a_reconciliation_for_a_force_warehouse_too(tmp_path):
    rows = [_row("nm_homicide_count", 12.0)]
    detail = "year ending 2021-12 (2021-01..2021-12), p.xlsx: Total recorded crime (excluding fraud): records 1000 vs published 1030 (-2.9% OUTSIDE tolerance)"
    checks = pl.DataFrame([_check("2021-12", detail), _check("2022-01", "not checked: no published table for the year ending 2022-01")])
    nrows = build_national_rows(MeasureIndex(rows), rows, "2022-01", "f", None, load_definitions())
    page = national_html(national_page(nrows, "f", "2022-01", "", False, checks=checks))
    assert reconciliation_rows(page) == [
        ["Dec 21 Jan-Dec 21; p.xlsx", "Total recorded crime (excluding fraud)", "1,000", "1,030", "-30 (-2.9%)", "2%", "outside tolerance"]
    ]
    assert 'href="#m-nm_homicide_count"' in page and "not shown" not in page
