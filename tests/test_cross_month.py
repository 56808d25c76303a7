"""Checks across months: a gap, a crime reference loaded twice, outcomes for unknown crimes, and a month
outside its normal volume - each reported exactly in audit_checks, with nothing lost."""

import polars as pl
import pytest

from etl.core.periods import months_between
from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import crime, write_month


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    source = tmp_path_factory.mktemp("src")
    warehouse = tmp_path_factory.mktemp("wh")
    months = [str(m) for m in months_between("2018-07", "2019-10")]
    for i, m in enumerate(months):
        if m == "2019-03":
            continue  # never sent
        burglaries = 60 if m == "2019-08" else 20 + (i % 3)  # August 2019: three times the usual burglary
        rows = [crime(f"{m}-b{k}", f"{m}-{k % 28 + 1:02d}", "28E") for k in range(burglaries)]
        rows += [crime(f"{m}-v{k}", f"{m}-{k % 28 + 1:02d}", "8N") for k in range(30 + (i % 4))]
        if m == "2019-05":
            rows += [crime("2019-02-b1", "2019-05-20", "28E"), crime("2019-02-b2", "2019-05-21", "28E")]  # loaded in February too
        outcomes = [{"crime_ref": f"{m}-b0", "outcome_type": "18", "outcome_date": f"{m}-28"}]
        if m == "2019-06":
            outcomes.append({"crime_ref": "OLD-2017-1", "outcome_type": "1", "outcome_date": "2019-06-28"})
        write_month(source, m, rows, outcomes)
    report = pipeline.backfill(source, "2018-07", "2019-10", warehouse)
    return report, Warehouse(warehouse)


def checks_for(wh, month, check):
    runs = wh.read("audit_runs").filter((pl.col("kind") == "load") & (pl.col("month") == month))
    return wh.read("audit_checks").filter(pl.col("run_id").is_in(runs["run_id"].implode()) & (pl.col("check") == check))


def test_missing_month_is_reported_and_the_backfill_goes_on(history):
    report, wh = history
    assert [m.month for m in report.months if m.outcome != "loaded"] == ["2019-03"]
    c = checks_for(wh, "2019-04", "continuity").row(0, named=True)
    assert (c["passed"], c["failing_rows"], c["severity"]) == (False, 1, "warning")
    assert c["detail"] == "1 month(s) between 2018-07 and 2019-04 are not loaded: 2019-03"
    assert checks_for(wh, "2019-02", "continuity")["passed"].to_list() == [True]


def test_crime_reference_loaded_in_two_months(history):
    report, wh = history
    c = checks_for(wh, "2019-05", "crime_ref.not_in_other_months").row(0, named=True)
    assert (c["passed"], c["failing_rows"]) == (False, 2)
    assert c["detail"].startswith("2 crime_ref value(s) in 2019-05 were already loaded in: 2019-02 (2)")
    # nothing lost: both copies are loaded
    rc = wh.read("recorded_crime")
    assert rc.filter(pl.col("crime_ref") == "2019-02-b1")["month"].sort().to_list() == ["2019-02", "2019-05"]
    may_refs = rc.filter(pl.col("month") == "2019-05")["crime_ref"]
    assert c["rows_checked"] == may_refs.n_unique() == may_refs.len()  # distinct in a file (the contract's rule): counted
    may = next(m for m in report.months if m.month == "2019-05")
    assert any("already loaded in: 2019-02" in w for w in may.warnings)
    assert all(checks_for(wh, m, "crime_ref.not_in_other_months")["passed"].to_list() == [True] for m in ("2019-04", "2019-06"))


def test_outcome_for_a_crime_never_loaded(history):
    _, wh = history
    c = checks_for(wh, "2019-06", "crime_ref.refers_to_loaded_recorded_crime").row(0, named=True)
    assert (c["passed"], c["failing_rows"], c["rows_checked"]) == (False, 1, 2)
    assert wh.read("crime_outcomes").filter(pl.col("crime_ref") == "OLD-2017-1").height == 1  # kept


def test_month_outside_its_normal_range(history):
    _, wh = history
    c = checks_for(wh, "2019-08", "volume.within_normal_range").row(0, named=True)
    assert c["passed"] is False
    assert "grp_burglary_residential: 60 vs normal range " in c["detail"]
    assert "all_recorded_crime" in c["detail"]  # the total moved too
    assert "grp_vwi" not in c["detail"]
    assert checks_for(wh, "2019-07", "volume.within_normal_range")["passed"].to_list() == [True]
    early = checks_for(wh, "2018-09", "volume.within_normal_range").row(0, named=True)
    assert early["passed"] and early["detail"] == "not checked: 2 previous month(s) loaded, 6 needed"
