"""Control limits recalculated at a sustained shift (etl.measures.xmr.phases), seasonal factors
(etl.measures.spc.seasonal_factors) and the new base line on the trend chart (etl.reporting.charts)."""

import math
import random
import re

import polars as pl
import pytest

from etl.core.periods import Month, months_between
from etl.measures import SPC_SCHEMA, control_charts, xmr
from etl.measures.spc import seasonal_factors
from etl.reporting.charts import trend_svg
from tests.test_measures_kinds import crimes, loaded


def phased(values: list[float], base: int = 12) -> pl.DataFrame:
    frame = pl.DataFrame({"s": ["a"] * len(values), "i": list(range(len(values))), "v": [float(v) for v in values]})
    frame = xmr.phases(frame.with_columns((pl.col("i") < base).alias("b")), ["s"], "v", "i", baseline="b")
    return xmr.chart(frame, ["s", "phase"], "v", "i", baseline="b").sort("i")


STABLE = [10, 12] * 6 + [12, 10] * 3  # 18 months around 11, no run: the month before the step is below the centre
STEP = STABLE + [20, 22] * 7  # from month 18 a sustained step up to 21


def test_a_step_change_recalculates_the_limits_once_at_the_first_month_of_the_run():
    out = phased(STEP)
    assert out["phase"].to_list() == [1] * 18 + [2] * 14
    new = out.filter(pl.col("phase") == 2).row(0, named=True)
    assert (new["first"], new["last"], new["centre"], new["mr_bar"]) == (18, 29, 21.0, 2.0)  # limits from the 12 months of the new phase
    assert new["upper"] == pytest.approx(21 + 2.66 * 2) and new["lower"] == pytest.approx(21 - 2.66 * 2)
    old = out.row(0, named=True)
    assert (old["first"], old["last"], old["centre"]) == (0, 11, 11.0)
    assert out["signal"].null_count() == out.height  # the step is marked by the new base line, not by 14 signals


def test_a_stable_series_and_a_single_spike_do_not_move_the_limits():
    stable = phased([10, 12] * 20)
    assert stable["phase"].unique().to_list() == [1] and stable["signal"].null_count() == 40
    spike = phased([10, 12] * 8 + [40] + [10, 12] * 8)
    assert spike["phase"].unique().to_list() == [1]
    assert [i for i, s in enumerate(spike["signal"].to_list()) if s] == [16] and spike["signal"][16] == "outside_limits"


def test_a_run_the_year_does_not_confirm_or_a_run_without_a_year_yet_is_a_signal_not_a_new_base_line():
    # 7 months at 13 then back to 9: the 12 months from the run's start average 11.33, within 3 standard
    # errors (3 x 2 / 1.128 / sqrt 12 = 1.54) of the centre 11
    fades = phased(STABLE + [13] * 7 + [9] * 5 + [10, 12] * 3)
    assert fades["phase"].unique().to_list() == [1]
    assert [i for i, s in enumerate(fades["signal"].to_list()) if s == "run_above"] == list(range(18, 25))
    recent = phased(STABLE + [14] * 10)  # 10 months of the new level: not 12 yet
    assert recent["phase"].unique().to_list() == [1] and recent["signal"].to_list()[18:] == ["run_above"] * 10
    flat = phased(STABLE[:-1] + [11] + [0] * 14)  # a run of zeros (from month 18): limits of no width would flag every later change
    assert flat["phase"].unique().to_list() == [1] and flat["signal"].to_list()[18:] == ["outside_limits"] * 14


def test_the_spc_table_lists_the_phase_and_its_baseline_for_every_month():
    months = [str(m) for m in months_between("2018-07", "2021-02")]
    rows = [(m, "39", {}) for m, v in zip(months, STEP) for _ in range(v)]
    spc = control_charts({"recorded_crime": crimes(rows).lazy()}, loaded("2018-07", "2021-02"))
    assert dict(spc.schema) == SPC_SCHEMA
    s = spc.filter(pl.col("measure_id") == "nm_nc_theft_from_person").sort("month")
    by_month = {r["month"]: r for r in s.iter_rows(named=True)}
    before, after = by_month["2019-12"], by_month["2020-01"]
    assert (before["phase"], before["phase_start"], before["baseline_start"], before["baseline_end"], before["centre"]) == (
        1,
        "2018-07",
        "2018-07",
        "2019-06",
        11.0,
    )
    assert (after["phase"], after["phase_start"], after["baseline_start"], after["baseline_end"], after["centre"]) == (2, "2020-01", "2020-01", "2020-12", 21.0)
    assert set(s["seasonal_factor"]) == {1.0}  # 32 months: too short to estimate a seasonal pattern


def test_a_clearly_seasonal_series_is_judged_against_its_calendar_month():
    n = 48
    values = [round(100 * (1 + 0.3 * math.sin(2 * math.pi * i / 12)) + (1 if i % 2 else -1), 1) for i in range(n)]
    data = pl.DataFrame({"k": ["a"] * n, "idx": [Month.parse("2018-07").index + i for i in range(n)], "value": values})
    f = seasonal_factors(data, ["k"])["seasonal_factor"].to_list()
    assert f[3] == pytest.approx(1.3, abs=0.02) and f[9] == pytest.approx(0.7, abs=0.02) and f[3] == f[15] == f[27]
    assert sum(f[:12]) / 12 == pytest.approx(1.0)
    noise = random.Random(7)
    flat = pl.DataFrame({"k": ["b"] * n, "idx": list(range(n)), "value": [100.0 + noise.gauss(0, 5) for _ in range(n)]})
    assert set(seasonal_factors(flat, ["k"])["seasonal_factor"]) == {1.0}  # no pattern beyond its noise: not adjusted
    months = [str(Month.parse("2018-07") + i) for i in range(n)]
    rows = [(m, "39", {}) for m, v in zip(months, values) for _ in range(round(v))]
    spc = control_charts({"recorded_crime": crimes(rows).lazy()}, loaded(months[0], months[-1]))
    s = spc.filter(pl.col("measure_id") == "nm_nc_theft_from_person").sort("month")
    assert s["signal"].null_count() == n  # the season alone is no signal: 24 runs of 6 months would otherwise be judged
    winter = s.row(3, named=True)
    assert winter["centre"] == pytest.approx(winter["seasonal_factor"] * s.row(9, named=True)["centre"] / s.row(9, named=True)["seasonal_factor"])


def _series(with_phase: bool) -> list[dict]:
    out = []
    for i, v in enumerate(STEP):
        new = i >= 18
        p = {
            "month": str(Month.parse("2018-07") + i),
            "value": float(v),
            "centre": 21.0 if new else 11.0,
            "lower": 15.68 if new else 5.68,
            "upper": 26.32 if new else 16.32,
            "baseline_start": "2020-01" if new else "2018-07",
            "baseline_end": "2020-12" if new else "2019-06",
            "signal": None,
        }
        if with_phase:
            p["phase"] = 2 if new else 1
        out.append(p)
    return out


@pytest.mark.parametrize("with_phase", [True, False])
def test_the_chart_marks_the_new_base_line_and_draws_the_limits_as_steps(with_phase):
    svg = trend_svg(_series(with_phase), uid="c", title="T", unit="count", baseline_level=None)
    assert svg.count('<line class="rebase"') == 1 and ">New base line Jan 20</text>" in svg
    assert "<title>New base line from Jan 20: limits from Jan 20 to Dec 20</title>" in svg
    assert "limits recalculated at a sustained shift: new base line from Jan 20, limits from Jan 20 to Dec 20" in svg
    assert "Control limits are recalculated at a sustained shift: a run of 7 or more months" in svg  # the rule in the description
    assert 'class="caption"' in svg and "NHS Making Data Count" in svg
    x = float(re.search(r'<line class="rebase" x1="([0-9.]+)"', svg).group(1))  # type: ignore[union-attr]
    centre = re.search(r'<polyline class="centre" points="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    xs = [float(p.split(",")[0]) for p in centre.split()]
    assert len(xs) == len(STEP) + 2 and xs.count(x) == 2  # one polyline, a vertical step at the marker
    assert svg.count('class="band"') == 2  # one band per phase


def test_a_chart_without_a_new_base_line_has_no_marker():
    series = [{**p, "centre": 11.0, "lower": 5.68, "upper": 16.32, "baseline_start": "2018-07", "baseline_end": "2019-06", "phase": 1} for p in _series(True)]
    svg = trend_svg(series, uid="c", title="T", unit="count", baseline_level=None)
    assert 'class="rebase"' not in svg and "limits not recalculated (no sustained shift)" in svg and svg.count('class="band"') == 1
