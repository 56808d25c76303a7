"""Periods and comparison windows (domain/measures.md section 0.4).

Every window is a run of whole calendar months, inclusive at both ends, written ``YYYY-MM``.
Months are handled as integer indexes (year * 12 + month - 1) so that window arithmetic is
plain integer arithmetic; `Month` converts to and from the ``YYYY-MM`` text used everywhere else.

Period tokens (the current window, ending at month m):
    month  m..m                     one calendar month
    r12    m-11..m                  rolling 12 months
    fytd   1 April of m's financial year..m
    cal    January..December of m's year (only meaningful when m is December)
    qtr    the calendar quarter containing m (only meaningful when m ends a quarter)

Comparison tokens (derived from the current window):
    sply        both ends shifted back 12 months (same period last year)
    prev_r12    the 12 months before an r12 window (= sply of an r12 window)
    sp_2019_20  the same months in financial year 2019/20
    ye_jun19    the national baseline, July 2018..June 2019

Benchmark tokens (not a window: a published figure for the same period as the value):
    national    the national figure a per-sample measure (an audit's compliance rate) is compared
                with, from ``contracts/reference/national_benchmarks.yaml``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.errors import ConfigError

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

PERIOD_TOKENS = ("month", "r12", "fytd", "cal", "qtr")
COMPARISON_TOKENS = ("sply", "prev_r12", "sp_2019_20", "ye_jun19")
BENCHMARK_TOKENS = ("national",)


class PeriodError(ConfigError, ValueError):
    """A period or month that cannot be computed, with a plain-words reason."""


@dataclass(frozen=True, order=True)
class Month:
    index: int  # year * 12 + (month - 1)

    @classmethod
    def parse(cls, text: str) -> Month:
        m = _MONTH_RE.match(str(text).strip())
        if not m:
            raise PeriodError(f"'{text}' is not a month; write it as YYYY-MM, e.g. 2021-10")
        return cls(int(m.group(1)) * 12 + int(m.group(2)) - 1)

    @classmethod
    def of(cls, year: int, month: int) -> Month:
        return cls(year * 12 + month - 1)

    @property
    def year(self) -> int:
        return self.index // 12

    @property
    def month(self) -> int:
        return self.index % 12 + 1

    def __add__(self, months: int) -> Month:
        return Month(self.index + months)

    def __sub__(self, months: int) -> Month:
        return Month(self.index - months)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def fy_start(self) -> Month:
        """April of the financial year (1 April - 31 March) that contains this month."""
        return Month.of(self.year if self.month >= 4 else self.year - 1, 4)


@dataclass(frozen=True)
class Window:
    start: Month
    end: Month

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"window ends ({self.end}) before it starts ({self.start})")

    @property
    def months(self) -> list[Month]:
        return [Month(i) for i in range(self.start.index, self.end.index + 1)]

    @property
    def length(self) -> int:
        return self.end.index - self.start.index + 1

    def shift(self, months: int) -> Window:
        return Window(self.start + months, self.end + months)

    def june_year(self) -> int | None:
        """The calendar year of the 30 June inside the window (None if it holds no June).

        Used to pick a mid-year population estimate: every 12-month window holds exactly one June.
        """
        for m in self.months:
            if m.month == 6:
                return m.year
        return None

    def label(self) -> str:
        return f"{self.start}..{self.end}"


YE_JUN19 = Window(Month.of(2018, 7), Month.of(2019, 6))


def months_between(first: str | Month, last: str | Month) -> list[Month]:
    a = first if isinstance(first, Month) else Month.parse(first)
    b = last if isinstance(last, Month) else Month.parse(last)
    if b < a:
        raise PeriodError(f"--to {b} is before --from {a}")
    return Window(a, b).months


def period_window(token: str, end: str | Month) -> Window:
    """The current window of a period token ending at month ``end``."""
    m = end if isinstance(end, Month) else Month.parse(end)
    if token == "month":
        return Window(m, m)
    if token == "r12":
        return Window(m - 11, m)
    if token == "fytd":
        return Window(m.fy_start(), m)
    if token == "cal":
        return Window(Month.of(m.year, 1), m)
    if token == "qtr":
        return Window(Month.of(m.year, ((m.month - 1) // 3) * 3 + 1), m)
    raise PeriodError(f"unknown period token '{token}' (known: {', '.join(PERIOD_TOKENS)})")


def period_applies(token: str, end: str | Month) -> bool:
    """Whether a period token is reported at this period end (cal at December, qtr at quarter ends)."""
    m = end if isinstance(end, Month) else Month.parse(end)
    if token == "cal":
        return m.month == 12
    if token == "qtr":
        return m.month % 3 == 0
    return token in PERIOD_TOKENS


def comparison_window(token: str, current: Window) -> Window:
    """The comparison window of a comparator token for a current window."""
    if token in ("sply", "prev_r12"):
        return current.shift(-12)
    if token == "ye_jun19":
        return YE_JUN19
    if token == "sp_2019_20":
        # Same months, moved into financial year 2019/20 (April 2019 - March 2020).
        fy_start_year = current.start.fy_start().year
        return current.shift((2019 - fy_start_year) * 12)
    raise PeriodError(f"unknown comparison token '{token}' (known: {', '.join(COMPARISON_TOKENS)})")


def month_index_expr(col: str):
    """A polars expression: the ``YYYY-MM`` text column as a month index (year * 12 + month - 1)."""
    import polars as pl

    return (pl.col(col).str.slice(0, 4).cast(pl.Int32) * 12 + pl.col(col).str.slice(5, 2).cast(pl.Int32) - 1).cast(pl.Int32)
