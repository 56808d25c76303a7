"""Monthly components (etl.measures.components) are an explicit object: computed once by the caller and
passed to the measures and the control charts, never taken from a hidden cache."""

import polars as pl
import pytest

from etl.core.periods import Month, months_between
from etl.measures import MonthlyComponents, compute_measures, control_charts, load_definitions, monthly_components, monthly_counts
from tests.test_xmr import _crimes


def _tables(counts: dict[str, int]) -> tuple[dict[str, pl.LazyFrame], pl.DataFrame]:
    crimes = pl.concat([_crimes(m, n) for m, n in counts.items()])
    return {"recorded_crime": crimes.lazy()}, pl.DataFrame({"force_id": ["f"] * len(counts), "month": list(counts)})


def test_components_passed_in_give_the_same_tables_and_are_used():
    months = [str(m) for m in months_between("2018-07", "2020-06")]
    tables, loaded = _tables({m: 10 + i % 3 for i, m in enumerate(months)})
    defs = load_definitions()
    comps = monthly_components(tables, defs)
    assert isinstance(comps, MonthlyComponents) and comps.histograms.height == 0
    theft = comps.components.filter(pl.col("measure_id") == "nm_nc_theft_from_person").sort("idx")
    assert theft["value"].to_list() == [float(10 + i % 3) for i in range(24)] and theft["idx"][0] == Month.parse("2018-07").index
    assert compute_measures(tables, loaded, None, components=comps).equals(compute_measures(tables, loaded, None))
    assert control_charts(tables, loaded, components=comps).equals(control_charts(tables, loaded))
    assert monthly_counts(tables, defs, comps).sort(pl.all()).equals(monthly_counts(tables, defs).sort(pl.all()))
    # what is passed is what is used: components doubled give doubled counts
    doubled = MonthlyComponents(comps.components.with_columns(pl.col("value") * 2), comps.histograms)
    r = compute_measures(tables, loaded, None, components=doubled).filter(
        (pl.col("measure_id") == "nm_nc_theft_from_person") & (pl.col("period_end") == "2020-06") & (pl.col("comparison") == "prev_r12")
    )
    assert r["value"].to_list() == [2 * sum(10 + i % 3 for i in range(12, 24))]


def test_no_hidden_cache_the_same_table_object_read_again_gives_its_new_rows():
    """A table whose rows change between calls (the same LazyFrame object) is read again on every call:
    nothing computed by an earlier call is reused."""
    month = "2019-01"
    rows = {"n": 3}
    tables = {"recorded_crime": pl.defer(lambda: _crimes(month, rows["n"]), schema=_crimes(month, 1).schema)}
    loaded = pl.DataFrame({"force_id": ["f"], "month": [month]})
    defs = load_definitions()

    def thefts() -> tuple[list[float], list[float], list[float]]:
        theft = pl.col("measure_id") == "nm_nc_theft_from_person"
        comps = monthly_components(tables, defs).components.filter(theft)["value"].to_list()
        charts = control_charts(tables, loaded, defs).filter(theft)["value"].to_list()
        counts = monthly_counts(tables, defs).filter(theft)["value"].to_list()
        return comps, charts, counts

    assert thefts() == ([3.0], [3.0], [3.0])
    compute_measures(tables, loaded, None, defs)
    rows["n"] = 5
    assert thefts() == ([5.0], [5.0], [5.0])


@pytest.mark.parametrize("charted_only", [True, False])
def test_control_charts_need_only_the_charted_measures(charted_only):
    """Charts computed alone (only count and sum measures) equal charts from all the components."""
    months = [str(m) for m in months_between("2018-07", "2019-12")]
    tables, loaded = _tables({m: 5 + (i * 7) % 4 for i, m in enumerate(months)})
    defs = load_definitions()
    comps = None if charted_only else monthly_components(tables, defs)
    spc = control_charts(tables, loaded, defs, components=comps)
    s = spc.filter(pl.col("measure_id") == "nm_nc_theft_from_person")
    assert s.height == len(months) and s["baseline_start"][0] == "2018-07" and s["baseline_end"][0] == "2019-06"
    assert s["centre"][0] == pytest.approx(sum(5 + (i * 7) % 4 for i in range(12)) / 12)
