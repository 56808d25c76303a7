"""The measure kinds beyond counts, each on data small enough to compute by hand: shares with a
crime's outcome, SLA shares, means and medians of durations, sums, snapshots, targets, declared and
external measures, and the SPC control charts."""

import datetime as dt
import statistics

import polars as pl
import pytest

from etl.core.periods import months_between
from etl.measures import DefinitionError, compute_measures, control_charts, load_definitions

FLAGS = ("domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim")


def crimes(rows):
    out = []
    for i, (month, code, flags) in enumerate(rows):
        r = {"force_id": "f", "crime_ref": f"c{i}", "month": month, "hocr_code": code, "status": "recorded", "victim_age": flags.get("age")}
        r.update({f: bool(flags.get(f, False)) for f in FLAGS})
        out.append(r)
    return pl.DataFrame(
        out,
        schema={"force_id": pl.Utf8, "crime_ref": pl.Utf8, "month": pl.Utf8, "hocr_code": pl.Utf8, "status": pl.Utf8, "victim_age": pl.Int64}
        | {f: pl.Boolean for f in FLAGS},
    )


def shaped(extract, frame):
    """The frame with every other column of the extract's curated table, empty."""
    from etl.core.contracts import load_contract
    from etl.core.validation import curated_schema

    schema = curated_schema(load_contract(extract))
    return frame.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns])


def loaded(first, last, extract="recorded_crime"):
    ms = [str(m) for m in months_between(first, last)]
    return pl.DataFrame({"force_id": ["f"] * len(ms), "month": ms, "extract": [extract] * len(ms)})


def row(t, mid, end, period, comp):
    r = t.filter((pl.col("measure_id") == mid) & (pl.col("period_end") == end) & (pl.col("period") == period) & (pl.col("comparison") == comp))
    assert r.height == 1, (mid, end, period, comp, r)
    return r.row(0, named=True)


def test_positive_outcome_rate_uses_each_crimes_latest_outcome_and_is_judged_against_its_target():
    months = [str(m) for m in months_between("2019-04", "2020-03")]
    rows = [(m, "8N", {"domestic_abuse": True}) for m in months for _ in range(10)]  # 120 DA crimes
    c = crimes(rows)
    # 9 charged (type 1), one first charged then later NFA'd (latest outcome 16 wins), 20 outcome 16
    out = [
        {"force_id": "f", "crime_ref": f"c{i}", "outcome_type": 1, "outcome_date": dt.date(2020, 3, 1), "month": "2020-03", "source_row": i} for i in range(10)
    ]
    out.append({"force_id": "f", "crime_ref": "c9", "outcome_type": 16, "outcome_date": dt.date(2020, 3, 20), "month": "2020-03", "source_row": 99})
    out += [
        {"force_id": "f", "crime_ref": f"c{i}", "outcome_type": 16, "outcome_date": dt.date(2020, 3, 2), "month": "2020-03", "source_row": i}
        for i in range(50, 70)
    ]
    tables = {"recorded_crime": shaped("recorded_crime", c).lazy(), "crime_outcomes": shaped("crime_outcomes", pl.DataFrame(out)).lazy()}
    t = compute_measures(tables, loaded("2019-04", "2020-03"), None)
    r = row(t, "pk_positive_outcome_rate_da", "2020-03", "fytd", "target")
    assert r["value"] == pytest.approx(9 / 120 * 100)  # cohort basis: 9 positive of 120 DA crimes
    assert (r["comparison_value"], r["status"], r["target"]) == (6.0, "met", "> 6%")
    assert r["change_abs"] == pytest.approx(9 / 120 * 100 - 6)
    assert "cohort" in r["note"]
    oc16 = row(t, "pk_oc16_share_da", "2020-03", "fytd", "sp_2019_20")
    assert oc16["value"] == pytest.approx(21 / 30 * 100)  # of the 30 DA crimes with an outcome, 21 are outcome 16
    r = row(t, "pk_positive_outcome_rate_da", "2019-05", "fytd", "target")  # April-May 2019: the 9 charged crimes are April's
    assert (r["value"], r["status"]) == (45.0, "met")
    r = row(t, "pk_positive_outcome_rate_da", "2019-07", "fytd", "sply")
    assert r["status"] == "incomplete" and r["value"] == pytest.approx(9 / 40 * 100)


def test_sla_share_mean_and_median_of_answer_times():
    base = dt.datetime(2021, 4, 1, 9, 0, 0)
    waits = [3, 5, 8, 10, 11, 40, None]  # None: abandoned
    calls = pl.DataFrame(
        {
            "force_id": ["f"] * 8,
            "month": ["2021-04"] * 8,
            "channel": ["999"] * 7 + ["101"],
            "presented_at": [base] * 8,
            "answered_at": [None if w is None else base + dt.timedelta(seconds=w) for w in waits] + [base + dt.timedelta(seconds=200)],
        }
    )
    t = compute_measures({"calls": shaped("calls", calls).lazy()}, loaded("2021-04", "2021-04", "calls"), None)
    sla = row(t, "pk_999_within_10s_pct", "2021-04", "fytd", "target")
    assert sla["value"] == pytest.approx(4 / 7 * 100) and sla["status"] == "not_met" and sla["target"] == "90% within 10 s"
    mean = row(t, "pk_999_mean_answer_s", "2021-04", "fytd", "sply")
    assert mean["value"] == pytest.approx(statistics.mean([3, 5, 8, 10, 11, 40])) and mean["status"] == "incomplete"
    assert row(t, "pk_101_within_3m_pct", "2021-04", "fytd", "target")["value"] == 0.0

    inc = pl.DataFrame(
        {
            "force_id": ["f"] * 5,
            "month": ["2021-04"] * 5,
            "priority": ["P1", "P1", "P1", "P1", "P2"],
            "created_at": [base] * 5,
            "first_arrival_at": [base + dt.timedelta(minutes=m) for m in (5, 9, 14)] + [None, base + dt.timedelta(minutes=70)],
        }
    )
    t = compute_measures({"incidents": shaped("incidents", inc).lazy()}, loaded("2021-04", "2021-04", "incidents"), None)
    assert row(t, "pk_p1_median_attend", "2021-04", "fytd", "sply")["value"] == 9 * 60.0
    assert row(t, "pk_p1_within_15m_pct", "2021-04", "fytd", "sply")["value"] == 100.0  # of attended P1 incidents
    assert row(t, "pk_p2_within_60m_pct", "2021-04", "fytd", "sply")["value"] == 0.0


def test_median_of_an_even_number_of_values():
    base = dt.datetime(2021, 4, 1, 9, 0, 0)
    inc = pl.DataFrame(
        {
            "force_id": ["f"] * 4,
            "month": ["2021-04"] * 4,
            "priority": ["P1"] * 4,
            "created_at": [base] * 4,
            "first_arrival_at": [base + dt.timedelta(seconds=s) for s in (100, 200, 300, 1000)],
        }
    )
    t = compute_measures({"incidents": shaped("incidents", inc).lazy()}, loaded("2021-04", "2021-04", "incidents"), None)
    assert row(t, "pk_p1_median_attend", "2021-04", "fytd", "sply")["value"] == 250.0


def test_sum_of_episodes_and_a_snapshot_with_a_count_target():
    months = [str(m) for m in months_between("2018-07", "2019-06")]
    hosp = pl.DataFrame(
        {
            "force_id": ["f"] * 36,
            "month": [m for m in months for _ in range(3)],
            "age_band": ["0-17", "18-24", "25+"] * 12,
            "cause": ["assault_sharp_object"] * 36,
            "episodes": [2, 3, 50] * 12,
        }
    )
    t = compute_measures({"hospital_admissions": shaped("hospital_admissions", hosp).lazy()}, loaded("2018-07", "2019-06", "hospital_admissions"), None)
    assert row(t, "nm_sv_hosp_adm_u25_sharp", "2019-06", "r12", "ye_jun19")["value"] == 60.0  # under-25 bands only

    wf = pl.DataFrame(
        {
            "force_id": ["f"] * 5,
            "month": ["2021-03"] * 5,
            "role": ["officer", "officer", "officer", "pcso", "officer"],
            "leaver_date": [None, None, None, None, dt.date(2021, 3, 10)],
            "uplift_joiner": [True, False, False, False, True],
            "neighbourhood_role": [False] * 5,
            "ethnicity_group": ["white"] * 5,
            "sex": ["female", "male", "male", "female", "male"],
            "special_duty_hours": [None] * 5,
        }
    )
    t = compute_measures({"workforce": shaped("workforce", wf).lazy()}, loaded("2021-03", "2021-03", "workforce"), None)
    r = row(t, "pk_officer_headcount", "2021-03", "month", "target")
    assert (r["value"], r["comparison_value"], r["status"]) == (3.0, 8000.0, "not_met")  # the leaver does not count
    assert t.filter((pl.col("measure_id") == "pk_officer_headcount") & (pl.col("period") != "month")).height == 0


def test_snapshots_cannot_be_summed_over_months(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "version: '9'\nmeasures:\n  - {id: x, unit: count, snapshot: true, count: {extract: workforce}, periods: {r12: [prev_r12]}}\n"
    )
    with pytest.raises(DefinitionError, match="snapshot"):
        load_definitions(tmp_path / "m.yaml")


def test_declared_and_external_measures_are_never_silently_missing():
    c = crimes([(m, "8N", {}) for m in [str(x) for x in months_between("2021-04", "2021-06")]])
    ext = pl.DataFrame(
        {
            "force_id": ["f", "f"],
            "measure_id": ["pk_csew_confidence"] * 2,
            "period": ["fy", "fy"],
            "period_start": ["2019-04", "2020-04"],
            "period_end": ["2020-03", "2021-03"],
            "value": [70.0, 66.5],
            "source": ["CSEW"] * 2,
        }
    )
    t = compute_measures({"recorded_crime": c.lazy()}, loaded("2021-04", "2021-06"), None, external=ext)
    r = row(t, "pk_ss_disproportionality", "2021-06", "fytd", "sp_2019_20")
    assert r["status"] == "incomplete" and r["value"] is None and "population by ethnic group" in r["note"]
    r = row(t, "pk_ss_positive_outcome_rate", "2021-06", "fytd", "target")  # no stop_search extract for this force
    assert r["status"] == "incomplete" and "needs the stop_search extract" in r["note"]
    e = t.filter(pl.col("measure_id") == "pk_csew_confidence").sort("period_end")
    assert e["value"].to_list() == [70.0, 66.5]
    last = e.row(1, named=True)
    assert (last["comparison_value"], last["change_abs"], last["comparison_source"]) == (70.0, pytest.approx(-3.5), "external_statistics")


def test_reduce_by_target_is_judged_on_its_comparison():
    rows = []
    for m in [str(x) for x in months_between("2013-04", "2015-03")]:
        n = 10 if m < "2014-04" else 9  # burglary down 10% in 2014/15
        rows += [(m, "28A", {}) for _ in range(n)]  # burglary in a dwelling: the code in force before April 2017
    t = compute_measures({"recorded_crime": crimes(rows).lazy()}, loaded("2013-04", "2015-03"), None)
    r = row(t, "ml_burglary", "2015-03", "fytd", "sply")  # reduce by 2%
    assert (r["change_pct"], r["status"]) == (pytest.approx(-10.0), "met")
    r = row(t, "ml1314_burglary", "2015-03", "fytd", "sply")  # reduce by 8%
    assert r["status"] == "met"
    r = row(t, "ml_robbery", "2015-03", "fytd", "sply")  # no robbery at all: 0 vs 0
    assert r["status"] == "not_met" and r["change_pct"] is None


def test_control_chart_limits_runs_and_outliers():
    values = [10, 12, 10, 12, 10, 12, 10, 12, 10, 12, 10, 12] + [11] * 2 + [30] + [14] * 7
    months = [str(m) for m in months_between("2018-07", "2020-04")]
    rows = [(m, "39", {}) for m, v in zip(months, values) for _ in range(v)]
    spc = control_charts({"recorded_crime": crimes(rows).lazy()}, loaded("2018-07", "2020-04"))
    s = spc.filter(pl.col("measure_id") == "nm_nc_theft_from_person").sort("month")
    first = s.row(0, named=True)
    assert (first["baseline_start"], first["baseline_end"], first["centre"]) == ("2018-07", "2019-06", 11.0)
    assert first["upper"] == pytest.approx(11 + 2.66 * 2) and first["lower"] == pytest.approx(11 - 2.66 * 2)
    signals = dict(zip(s["month"], s["signal"]))
    assert signals["2019-09"] == "outside_limits"  # the spike of 30
    assert [m for m, sig in signals.items() if sig == "run_above"] == months[-7:]  # 7 months at 14 > centre 11
    assert all(signals[m] is None for m in months[:14])


def test_rape_investigation_length_joins_each_outcome_to_its_crime():
    c = crimes([("2021-04", "19C", {}), ("2021-04", "19C", {}), ("2021-04", "8N", {})]).with_columns(
        pl.Series("recorded_date", [dt.date(2021, 4, 1), dt.date(2021, 4, 11), dt.date(2021, 4, 1)])
    )
    out = pl.DataFrame(
        {
            "force_id": ["f"] * 3,
            "crime_ref": ["c0", "c1", "c2"],
            "outcome_type": [18, 16, 1],
            "outcome_date": [dt.date(2021, 5, 1)] * 3,
            "month": ["2021-05"] * 3,
            "source_row": [2, 3, 4],
        }
    )
    tables = {"recorded_crime": shaped("recorded_crime", c).lazy(), "crime_outcomes": shaped("crime_outcomes", out).lazy()}
    t = compute_measures(tables, loaded("2021-04", "2021-05"), None)
    assert row(t, "pk_rape_investigation_days", "2021-05", "month", "sply")["value"] == 25.0  # (30 + 20) / 2; the 8N outcome is not a rape
    assert row(t, "pk_rape_investigations_concluded", "2021-05", "month", "sply")["value"] == 2.0
    assert row(t, "pk_rape_investigations_concluded", "2021-04", "month", "sply")["value"] == 0.0
