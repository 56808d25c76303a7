"""How figures and periods read on a report: changes when a display rule (rounding, units, labels) does.

Rounding: values are stored unrounded and only rounded for display, half away from zero
(``round_half_up``: 2.5 -> 3, -2.5 -> -3), on the decimal representation of the value: whole numbers
for counts, one decimal place for percentages and rates, whole percent for percent changes (as in the
national statement), whole seconds for times. A change of a percentage is shown in percentage points
only (a percent change of a percentage is ambiguous, measures.md section 6 Q27).

Labels are derived from the period tokens and the dates of the rows, never free text (measures.md
DQ08): a window whose dates do not match its token is labelled with its dates and a warning.
Everything here returns plain text; escaping is the templates' business.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal

from etl.core.periods import Month, PeriodError, comparison_window, period_window

ROUNDING_STATEMENT = (
    "Values are stored unrounded; shown rounded half away from zero: whole percent for changes in the "
    "national statement, one decimal place for rates, whole numbers for counts."
)
ROUNDING_DETAIL = (
    "Percentages are shown to one decimal place and their changes in percentage points (pts); "
    "times are shown to the whole second. CSV files hold the unrounded values beside the displayed text."
)

STATUS_WORDS = {
    "met": "met",
    "not_met": "not met",
    "monitor": "monitor",
    "not_comparable": "not comparable",
    "incomplete": "incomplete",
    "not_available": "not available",
    "in_development": "in development",
    "monitored_elsewhere": "monitored elsewhere",
    "not_computable": "not computable",
}
SIGNAL_WORDS = {
    "outside_limits": "outside the control limits",
    "run_above": "in a run of 7+ above the centre line",
    "run_below": "in a run of 7+ below the centre line",
}
PERIOD_NAMES = {"month": "monthly", "r12": "rolling 12 months", "fytd": "financial year to date", "cal": "calendar year", "qtr": "quarter"}
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNIT_SUFFIX = {"pct": "%", "per_1000": " per 1,000", "per_100k": " per 100,000", "per_million": " per million", "days": " days"}
_TOKEN_WORDS = {
    "sp_2019_20": "same period 2019/20",
    "sply": "same period last year",
    "ye_jun19": "year ending June 2019",
    "prev_r12": "previous 12 months",
}


def status_words(status: str) -> str:
    """A status token as the words of its badge: 'not_met' -> 'not met' (an unknown token loses its underscores)."""
    return STATUS_WORDS.get(status, status.replace("_", " "))


# --------------------------------------------------------------------------------------------------
# Rounding and numbers


def _quantize(x: float, places: int) -> Decimal:
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return abs(d) if d == 0 else d  # never "-0"


def round_half_up(x: float, places: int = 0) -> float:
    """Round half away from zero at ``places`` decimal places: 2.5 -> 3.0, -2.5 -> -3.0, 0.125 -> 0.13 (2).

    Decimal-based: the value's shortest decimal representation (``repr``) is rounded with
    ``ROUND_HALF_UP`` (which in ``decimal`` means half away from zero), so 2.675 -> 2.68 where binary
    float rounding gives 2.67, and never banker's rounding (Python's ``round(2.5)`` is 2).
    NaN and infinities are returned unchanged.
    """
    if x is None:
        raise TypeError("round_half_up needs a number, got None")
    if isinstance(x, float) and not math.isfinite(x):
        return x
    return float(_quantize(x, places))


def _num(x: float, places: int) -> str:
    return f"{_quantize(x, places):,.{places}f}"


def _signed(text: str, negative: bool, zero: bool) -> str:
    if zero:
        return text
    return ("-" if negative else "+") + text


def _duration(seconds: float) -> str:
    s = int(_quantize(abs(seconds), 0))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def format_value(value: float | None, unit: str | None) -> str:
    """A value as displayed: counts whole, percentages and rates to one decimal place, times in h/m/s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not available"
    if unit == "count":
        return _num(value, 0)
    if unit == "seconds":
        return ("-" if _quantize(value, 0) < 0 else "") + _duration(value)
    return _num(value, 1) + _UNIT_SUFFIX.get(unit or "", "")


def format_change_abs(change: float | None, unit: str | None) -> str:
    """A signed change in the unit of the value: '+25' (count), '-0.7 pts' (percentage), '+4m 59s' (seconds)."""
    if change is None:
        return ""
    if unit == "count":
        q = _quantize(change, 0)
        return _signed(_num(abs(change), 0), q < 0, q == 0)
    if unit == "seconds":
        q = _quantize(change, 0)
        return _signed(_duration(change), q < 0, q == 0)
    q = _quantize(change, 1)
    text = _num(abs(change), 1) + (" pts" if unit == "pct" else "")
    return _signed(text, q < 0, q == 0)


def format_change_pct(change_pct: float | None) -> str:
    """Percent change as a whole percent, rounded half away from zero, signed: 2.5 -> '+3%', -2.5 -> '-3%'."""
    if change_pct is None or (isinstance(change_pct, float) and math.isnan(change_pct)):
        return ""
    q = _quantize(change_pct, 0)
    return _signed(f"{abs(q):,.0f}%", q < 0, q == 0)


def axis_number(x: float, span: float) -> str:
    """A number on a chart axis whose range is ``span``: whole above 20, else one or two decimal places."""
    places = 0 if span >= 20 else (1 if span >= 2 else 2)
    return _num(x, places)


# --------------------------------------------------------------------------------------------------
# Period labels


def mon_yy(m: Month) -> str:
    """'Jan 22'."""
    return f"{_MON[m.month - 1]} {m.year % 100:02d}"


def _fy(m: Month) -> str:
    y = m.fy_start().year
    return f"{y}/{(y + 1) % 100:02d}"


def _span(s: Month, e: Month) -> str:
    if s == e:
        return mon_yy(s)
    if s.year == e.year:
        return f"{_MON[s.month - 1]}-{_MON[e.month - 1]} {e.year % 100:02d}"
    return f"{mon_yy(s)} to {mon_yy(e)}"


def period_label(period: str, start: str, end: str) -> str:
    """'YTD Jan 22' (fytd), '12 months to Jan 22' (r12), 'Jan-Dec 21' (cal), 'Jan 22' (month), 'Oct-Dec 21' (qtr).

    A window whose dates do not match its period token is labelled with its dates and a warning.
    """
    try:
        s, e = Month.parse(start), Month.parse(end)
    except PeriodError:
        return f"{start} to {end}"
    try:
        expected = period_window(period, e)
    except PeriodError:
        return _span(s, e)
    if expected.start != s:
        return f"{_span(s, e)} (dates do not match period '{period}')"
    if period == "fytd":
        return f"YTD {mon_yy(e)}"
    if period == "r12":
        return f"12 months to {mon_yy(e)}"
    if period == "month":
        return mon_yy(e)
    return _span(s, e)  # cal, qtr


def comparison_label(comparison: str, period: str, start: str, end: str, c_start: str | None = None, c_end: str | None = None) -> str:
    """'Same period 2020/21' (sply of fytd), 'Same period 2019/20', 'Year ending June 2019', 'Previous 12 months'.

    ``start``/``end`` are the current window; ``c_start``/``c_end`` the comparison window of the row
    (checked against the token; a mismatch is labelled with its dates).
    """
    if comparison == "target":
        return "Target"
    try:
        cur = period_window(period, Month.parse(end))
        if Month.parse(start) != cur.start:
            cur = type(cur)(Month.parse(start), Month.parse(end))
        expected = comparison_window(comparison, cur)
    except PeriodError:
        return f"{comparison} ({c_start} to {c_end})" if c_start else comparison
    if c_start and c_end:
        try:
            cs, ce = Month.parse(c_start), Month.parse(c_end)
        except PeriodError:
            return f"{comparison} ({c_start} to {c_end})"
        if (cs, ce) != (expected.start, expected.end):
            return f"{_span(cs, ce)} (dates do not match comparison '{comparison}')"
    if comparison == "sp_2019_20":
        return "Same period 2019/20"
    if comparison == "ye_jun19":
        return "Year ending June 2019"
    if comparison == "prev_r12":
        return "Previous 12 months"
    if comparison == "sply":
        if period == "fytd":
            return f"Same period {_fy(expected.start)}"
        if period == "r12":
            return f"12 months to {mon_yy(expected.end)}"
        return _span(expected.start, expected.end)
    return _span(expected.start, expected.end)


def window_dates(start: str | None, end: str | None) -> str:
    """A window as its months ('Jul 18 to Jun 19'), or '' when its dates are not months."""
    try:
        return _span(Month.parse(start), Month.parse(end))  # type: ignore[arg-type]
    except (PeriodError, TypeError):
        return ""


def humanise_tokens(text: str) -> str:
    """Comparison tokens in rule text as words: 'decrease vs sp_2019_20' -> 'decrease vs same period 2019/20'."""
    return re.sub(r"\b(sp_2019_20|sply|ye_jun19|prev_r12)\b", lambda m: _TOKEN_WORDS[m.group(1)], text)


__all__ = [
    "PERIOD_NAMES",
    "ROUNDING_DETAIL",
    "ROUNDING_STATEMENT",
    "SIGNAL_WORDS",
    "STATUS_WORDS",
    "axis_number",
    "comparison_label",
    "format_change_abs",
    "format_change_pct",
    "format_value",
    "humanise_tokens",
    "mon_yy",
    "period_label",
    "round_half_up",
    "status_words",
    "window_dates",
]
