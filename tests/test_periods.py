import pytest

from etl.core.periods import Month, PeriodError, Window, comparison_window, months_between, period_applies, period_window


def w(token, end):
    win = period_window(token, end)
    return str(win.start), str(win.end)


def test_period_windows_follow_the_catalogue():
    assert w("month", "2021-11") == ("2021-11", "2021-11")
    assert w("r12", "2021-10") == ("2020-11", "2021-10")  # "last 12 months (Nov 2020-Oct 2021)"
    assert w("fytd", "2022-01") == ("2021-04", "2022-01")  # "YTD Jan 22" = 10 months
    assert w("fytd", "2021-04") == ("2021-04", "2021-04")
    assert w("fytd", "2021-03") == ("2020-04", "2021-03")
    assert w("cal", "2021-12") == ("2021-01", "2021-12")
    assert w("qtr", "2021-12") == ("2021-10", "2021-12")
    assert period_window("fytd", "2022-01").length == 10


def test_comparison_windows():
    cur = period_window("fytd", "2022-01")
    sply = comparison_window("sply", cur)
    assert (str(sply.start), str(sply.end)) == ("2020-04", "2021-01")
    sp = comparison_window("sp_2019_20", cur)
    assert (str(sp.start), str(sp.end)) == ("2019-04", "2020-01")
    base = comparison_window("ye_jun19", period_window("r12", "2021-10"))
    assert (str(base.start), str(base.end)) == ("2018-07", "2019-06")
    prev = comparison_window("prev_r12", period_window("r12", "2020-12"))
    assert (str(prev.start), str(prev.end)) == ("2019-01", "2019-12")


def test_cal_and_qtr_apply_only_at_their_ends():
    assert period_applies("cal", "2020-12") and not period_applies("cal", "2020-11")
    assert period_applies("qtr", "2020-09") and not period_applies("qtr", "2020-08")
    assert period_applies("r12", "2020-08")


def test_june_year_picks_the_population_estimate():
    assert period_window("r12", "2019-06").june_year() == 2019
    assert period_window("r12", "2019-05").june_year() == 2018
    assert period_window("cal", "2020-12").june_year() == 2020


def test_month_parsing_and_errors():
    assert str(Month.parse("2019-03") + 10) == "2020-01"
    assert [str(m) for m in months_between("2019-11", "2020-02")] == ["2019-11", "2019-12", "2020-01", "2020-02"]
    for bad in ("2019-13", "2019-3", "March 2019", ""):
        with pytest.raises(PeriodError):
            Month.parse(bad)
    with pytest.raises(PeriodError):
        months_between("2020-02", "2019-11")
    with pytest.raises(PeriodError):
        Window(Month.parse("2020-02"), Month.parse("2020-01"))
    with pytest.raises(PeriodError):
        period_window("weekly", "2020-01")
