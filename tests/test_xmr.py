"""One XmR implementation (etl.measures.xmr), figures computed by hand, shared by the control charts
(etl.measures.spc) and the volume_vs_history check (etl.core.cross_month)."""

import types

import polars as pl
import pytest

from etl.core.cross_month import volume_checks
from etl.core.periods import months_between
from etl.measures import control_charts, xmr


def series(**values):
    return pl.DataFrame(
        [(k, i, float(v)) for k, vs in values.items() for i, v in enumerate(vs)], schema={"s": pl.Utf8, "i": pl.Int64, "v": pl.Float64}, orient="row"
    )


def test_limits_by_hand():
    lim = {r["s"]: r for r in xmr.limits(series(a=[10, 12, 10, 12], b=[1, 5], c=[7]), ["s"], "v", "i").iter_rows(named=True)}
    a, b, c = lim["a"], lim["b"], lim["c"]
    assert (a["centre"], a["mr_bar"], a["first"], a["last"]) == (11.0, 2.0, 0, 3)
    assert a["lower"] == pytest.approx(11 - 2.66 * 2) and a["upper"] == pytest.approx(11 + 2.66 * 2)
    assert (b["centre"], b["mr_bar"], b["lower"]) == (3.0, 4.0, 0.0)  # 3 - 10.64 is clipped at zero
    assert b["upper"] == pytest.approx(3 + 2.66 * 4)
    assert (c["centre"], c["mr_bar"], c["lower"], c["upper"]) == (7.0, None, 7.0, 7.0)  # one point: limits at the centre
    unknown = xmr.limits(series(c=[7]), ["s"], "v", "i", no_range="unknown").row(0, named=True)
    assert (unknown["lower"], unknown["upper"]) == (None, None)


def test_the_moving_range_follows_the_order_not_the_row_order():
    shuffled = series(a=[10, 12, 10, 12]).reverse()
    assert xmr.limits(shuffled, ["s"], "v", "i")["mr_bar"].to_list() == [2.0]
    jumbled = pl.DataFrame({"s": ["a"] * 4, "i": [0, 2, 1, 3], "v": [10.0, 20.0, 10.0, 20.0]})  # in order: 10, 10, 20, 20
    assert xmr.limits(jumbled, ["s"], "v", "i")["mr_bar"].to_list() == [pytest.approx(10 / 3)]


def test_chart_signals_outside_limits_and_runs_of_seven():
    values = [10, 12] * 6 + [11, 30] + [14] * 7 + [11]
    frame = series(a=values).with_columns((pl.col("i") < 12).alias("base"))
    out = xmr.chart(frame, ["s"], "v", "i", baseline="base")
    assert out.height == len(values) and out["i"].to_list() == list(range(len(values)))  # flagged, never dropped
    signals = out["signal"].to_list()
    assert signals[13] == "outside_limits"
    assert [i for i, s in enumerate(signals) if s == "run_above"] == list(range(14, 21))
    assert all(s is None for s in signals[:13] + signals[21:])
    below = xmr.chart(series(a=[10, 12] * 6 + [8] * 6).with_columns((pl.col("i") < 12).alias("base")), ["s"], "v", "i", baseline="base")
    assert below["signal"].to_list()[12:] == [None] * 6  # six points below the centre are not yet a run
    below = xmr.chart(series(a=[10, 12] * 6 + [8] * 7).with_columns((pl.col("i") < 12).alias("base")), ["s"], "v", "i", baseline="base")
    assert below["signal"].to_list()[12:] == ["run_below"] * 7


def test_baseline_points_are_judged_against_the_limits_only_and_runs_count_after_them():
    # baseline: 7 low points then 5 high ones (a run of 7 below its own centre), one spike; then 4 above + 3 after
    values = [10, 11, 10, 11, 10, 11, 10] + [14, 15, 14, 40, 15] + [14, 15, 14, 15]
    frame = series(a=values).with_columns((pl.col("i") < 12).alias("base"))
    out = xmr.chart(frame, ["s"], "v", "i", baseline="base")
    signals = out["signal"].to_list()
    assert signals[10] == "outside_limits"  # a baseline point outside the limits is still a signal
    assert [s for s in signals[:12] if s and s.startswith("run")] == []  # the run of 7 inside the baseline is not
    assert signals[12:] == [None] * 4  # 2 baseline points above + 4 after: the 4 after are not yet a run of 7
    longer = xmr.chart(series(a=values[:12] + [16] * 7).with_columns((pl.col("i") < 12).alias("base")), ["s"], "v", "i", baseline="base")
    assert longer["signal"].to_list()[12:] == ["run_above"] * 7


def test_a_point_is_not_outside_unknown_limits():
    lim = xmr.limits(series(c=[7]), ["s"], "v", "i", no_range="unknown")
    judged = pl.DataFrame({"s": ["c"], "v": [100.0]}).join(lim, on="s").select(xmr.outside(pl.col("v")).alias("out"))
    assert judged["out"].to_list() == [None]


def _crimes(month: str, n: int) -> pl.DataFrame:
    """n thefts from the person in the month, shaped like the curated recorded_crime table."""
    from etl.core.contracts import load_contract
    from etl.core.validation import curated_schema

    frame = pl.DataFrame(
        {"force_id": ["f"] * n, "month": [month] * n, "hocr_code": ["39"] * n, "status": ["recorded"] * n, "crime_ref": [f"{month}-{k}" for k in range(n)]}
    )
    schema = curated_schema(load_contract("recorded_crime"))
    return frame.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns]).select(list(schema))


def test_the_control_charts_and_the_volume_check_share_the_one_implementation(monkeypatch):
    months = [str(m) for m in months_between("2018-07", "2019-07")]
    counts = [10, 12] * 6 + [13]
    crimes = pl.concat([_crimes(m, n) for m, n in zip(months, counts)])
    loaded = pl.DataFrame({"force_id": ["f"] * len(months), "month": months})
    history = crimes.filter(pl.col("month") < "2019-07").group_by("force_id", "month", "hocr_code").agg(pl.len().cast(pl.Int64).alias("n"))
    july = [("f", types.SimpleNamespace(clean=crimes.filter(pl.col("month") == "2019-07")))]

    def judged():
        spc = control_charts({"recorded_crime": crimes.lazy()}, loaded)
        point = spc.filter((pl.col("measure_id") == "nm_nc_theft_from_person") & (pl.col("month") == "2019-07")).row(0, named=True)
        return point, volume_checks(july, "2019-07", 12, 6, history)["f"]

    point, check = judged()
    assert (point["centre"], point["upper"], point["signal"]) == (11.0, pytest.approx(11 + 2.66 * 2), None)
    assert check.passed and check.detail == "all 2 groups inside their XmR limits (2018-07..2019-06, 12 months)"
    monkeypatch.setattr(xmr, "XMR_FACTOR", 0.5)  # one rule: both consumers move with it
    point, check = judged()
    assert (point["lower"], point["upper"], point["signal"]) == (10.0, 12.0, "outside_limits")
    assert not check.passed and check.failing_rows == 2
    assert check.detail == (
        "2 group(s) outside their normal range in 2019-07 (XmR over 2018-07..2019-06, 12 months): "
        "all_recorded_crime: 13 vs normal range 10.0-12.0; grp_theft_from_person: 13 vs normal range 10.0-12.0"
    )
