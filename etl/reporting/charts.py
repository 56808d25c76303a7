"""The SVG trend chart: changes when the chart's drawing (scales, marks, legend, description) does.

`trend_chart` computes the geometry of a monthly series with its SPC (XmR) centre line, control
limits, signals and baseline level as a `TrendChart`; the template ``templates/trend.svg`` draws it
(autoescaped like the pages). `trend_svg` renders one chart on its own. No script, no external file.

Where the limits were recalculated at a sustained shift (a new ``phase`` of the ``spc`` table, or a new
``baseline_start``/``baseline_end``), the centre line, limits and band are drawn as steps, a vertical
marker labelled "New base line <month>" stands between the last month of the old phase and the first of
the new, and the description lists every base line. A caption under the chart states the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from etl.core.periods import Month
from etl.measures.spc import RECALCULATION_RULE, SEASONALITY_NOTE
from etl.measures.xmr import RUN_LENGTH, SHIFT_BASELINE
from etl.reporting.formatting import SIGNAL_WORDS, axis_number, mon_yy
from etl.reporting.templating import render

WIDTH, HEIGHT = 860, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 44, 76
# The rule in one visible line under the chart (the description holds it in full).
CAPTION = (
    f"Limits recalculated only at a sustained shift: a run of {RUN_LENGTH}+ months on one side of the centre, "
    f"confirmed by the {SHIFT_BASELINE} months from its start (NHS Making Data Count). Seasonal series: limits follow the calendar month."
)
_NONNEGATIVE_UNITS = ("count", "pct", "per_1000", "per_100k", "per_million", "seconds")
_UNIT_WORDS = {
    "count": "count per month",
    "pct": "per cent",
    "per_1000": "per 1,000",
    "per_100k": "per 100,000",
    "per_million": "per million",
    "seconds": "seconds",
}
_LEGEND = (
    ("value", "Monthly value"),
    ("outside", "Outside limits"),
    ("run", "Run of 7+"),
    ("centre", "SPC centre"),
    ("limits", "Control limits"),
    ("baseline", "Baseline (YE Jun 19) monthly mean"),
)


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the drawing
    label: str


@dataclass(frozen=True)
class Line:
    cls: str  # limit | centre | values
    points: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    tip: str
    signal: str | None = None  # outside_limits | run_above | run_below
    marker: str = ""  # the triangle of a run (its points), empty otherwise


@dataclass(frozen=True)
class Rebase:
    """The vertical marker of a new base line: where the limits were recalculated."""

    x: float
    label_y: float
    anchor: str  # start | end (the label's side of the marker)
    label: str  # "New base line Mar 21"
    tip: str  # the months the new limits come from


@dataclass(frozen=True)
class LegendEntry:
    x: int
    kind: str
    text: str


@dataclass
class TrendChart:
    uid: str
    title: str
    desc: str
    unit_words: str
    n_months: int = 0
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    baseline_y: float | None = None
    values: list[Line] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    rebases: list[Rebase] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)
    caption: str = CAPTION
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: int = WIDTH - LEFT - RIGHT
    plot_height: int = HEIGHT - TOP - BOTTOM


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(mult * mag for mult in (1, 2, 2.5, 5, 10) if raw <= mult * mag + 1e-12)
    start = math.floor(lo / step) * step
    end = math.ceil(hi / step - 1e-9) * step
    ticks, t = [], start
    while t <= end + step / 2:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _segments(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    segs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if segs[-1]:
                segs.append([])
        else:
            segs[-1].append(p)
    return [s for s in segs if s]


def _pts(seg: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)


def _phase_starts(series: list[dict]) -> list[int]:
    """Indexes of the months where the limits were recalculated: a new ``phase``, or (when the series
    does not carry phases) a new baseline run."""

    def phase_of(p: dict) -> object:
        if p.get("phase") is not None:
            return p["phase"]
        if p.get("baseline_start") is not None:
            return (p.get("baseline_start"), p.get("baseline_end"))
        return None

    starts, prev = [], None
    for i, p in enumerate(series):
        ph = phase_of(p)
        if ph is None:
            continue
        if prev is not None and ph != prev:
            starts.append(i)
        prev = ph
    return starts


def _months_text(first: object, last: object) -> str:
    return f"{mon_yy(Month.parse(str(first)))} to {mon_yy(Month.parse(str(last)))}"


def _description(series: list[dict], span: float, baseline_level: float | None, baseline_note: str) -> str:
    n = len(series)
    n_sig = sum(1 for p in series if p.get("signal"))
    cvals = [p for p in series if p.get("centre") is not None]
    last_val = next((p for p in reversed(series) if p.get("value") is not None), None)
    bits = [f"{n} monthly values from {mon_yy(Month.parse(series[0]['month']))} to {mon_yy(Month.parse(series[-1]['month']))}" if series else "no values"]
    if last_val:
        bits.append(f"latest {axis_number(last_val['value'], span)} in {mon_yy(Month.parse(last_val['month']))}")
    if cvals:
        c = cvals[-1]
        lim = ""
        if c.get("lower") is not None and c.get("upper") is not None:
            lim = f", control limits {axis_number(c['lower'], span)} to {axis_number(c['upper'], span)}"
        basis = f" (limits from {c.get('baseline_start')} to {c.get('baseline_end')})" if c.get("baseline_start") else ""
        bits.append(f"centre line {axis_number(c['centre'], span)}{lim}{basis}")
    starts = _phase_starts(series)
    if starts:
        lines = []
        for i in starts:
            p = series[i]
            basis = f", limits from {_months_text(p['baseline_start'], p['baseline_end'])}" if p.get("baseline_start") and p.get("baseline_end") else ""
            lines.append(f"{mon_yy(Month.parse(p['month']))}{basis}")
        bits.append(f"limits recalculated at a sustained shift: new base line{'s' if len(lines) > 1 else ''} from {', '.join(lines)}")
    else:
        bits.append("limits not recalculated (no sustained shift)")
    if baseline_level is not None:
        bits.append(f"baseline level {axis_number(baseline_level, span)} ({baseline_note})")
    bits.append(f"{n_sig} signalled point{'s' if n_sig != 1 else ''}")
    return "; ".join(bits) + f". {RECALCULATION_RULE} {SEASONALITY_NOTE}"


@dataclass(frozen=True)
class _Scale:
    """Months to x and values to y in the drawing (values clipped at 0 for a unit that cannot be negative)."""

    n: int  # months in the series
    y0: float  # the lowest and highest y tick
    y1: float
    nonneg: bool
    pw: int = WIDTH - LEFT - RIGHT
    ph: int = HEIGHT - TOP - BOTTOM

    def x(self, i: int) -> float:
        return LEFT + (self.pw / 2 if self.n == 1 else i * self.pw / (self.n - 1))

    def y(self, v: float) -> float:
        return TOP + self.ph - (v - self.y0) / (self.y1 - self.y0) * self.ph

    def clip(self, v: float) -> float:
        return max(v, 0.0) if self.nonneg else v

    def between(self, i: int) -> float:
        """x halfway between month i - 1 and month i (where a new base line is marked)."""
        return (self.x(i - 1) + self.x(i)) / 2

    def steps_of(self, series: list[dict], key: str, starts: list[int]) -> list[tuple[float, float] | None]:
        """The points of KEY drawn as steps: flat within a phase, a vertical step halfway between the
        last month of a phase and the first of the next (None where a month has no value for it)."""
        out: list[tuple[float, float] | None] = []
        for i, p in enumerate(series):
            v = p.get(key)
            if v is None:
                out.append(None)
                continue
            y = self.y(self.clip(v))
            prev = series[i - 1].get(key) if i else None
            if i in starts and prev is not None:
                xb = self.between(i)
                out += [(xb, self.y(self.clip(prev))), (xb, y)]
            out.append((self.x(i), y))
        return out


def _y_range(series: list[dict], nonneg: bool, baseline_level: float | None) -> tuple[float, float]:
    """(lowest, highest) value the chart must show, with headroom above; from 0 for a non-negative unit."""
    vals: list[float] = []
    for p in series:
        for k in ("value", "centre", "upper", "lower"):
            v = p.get(k)
            if v is not None:
                vals.append(max(v, 0.0) if (k == "lower" and nonneg) else v)
    if baseline_level is not None:
        vals.append(baseline_level)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if nonneg:
        lo = min(lo, 0.0)
    hi += (hi - lo) * 0.06 or 1.0  # headroom so the highest point and its marker are not on the frame
    return lo, hi


def _x_ticks(series: list[dict], scale: _Scale) -> list[Tick]:
    """Month labels: every month up to 14 months, else every STEP months (January when a year or more)."""
    n = len(series)
    if not n:
        return []
    ticks = []
    step = next((s for s in (1, 2, 3, 6, 12, 24, 36, 60) if n / s <= 14), 120)
    for i, p in enumerate(series):
        mm = Month.parse(p["month"])
        if (step >= 12 and mm.month == 1) or (step < 12 and (mm.index % step == 0)) or (n <= 14):
            ticks.append(Tick(scale.x(i), mon_yy(mm)))
    return ticks


def _bands(series: list[dict], scale: _Scale, starts: list[int]) -> list[str]:
    """The control-limit band: one polygon per run of months with both limits within a phase, reaching
    the marker of a new base line on either side of it."""
    bands = []
    run: list[tuple[float, float, float]] = []
    for i, q in enumerate([*series, None]):
        has = q is not None and q.get("upper") is not None and q.get("lower") is not None
        if run and (not has or i in starts):
            if i in starts and has:  # the old phase's band reaches the marker
                run.append((scale.between(i), run[-1][1], run[-1][2]))
            bands.append(_pts([(x, yu) for x, yu, _ in run] + [(x, yl) for x, _, yl in reversed(run)]))
            run = []
        if has and q is not None:
            yu, yl = scale.y(scale.clip(q["upper"])), scale.y(scale.clip(q["lower"]))
            if i in starts and i and series[i - 1].get("upper") is not None and series[i - 1].get("lower") is not None:
                run.append((scale.between(i), yu, yl))  # the new phase's band starts at the marker
            run.append((scale.x(i), yu, yl))
    return bands


def _rebases(series: list[dict], scale: _Scale, starts: list[int]) -> list[Rebase]:
    """One marker per new base line; labels alternate between two heights so close markers stay legible."""
    out = []
    for k, i in enumerate(starts):
        p = series[i]
        x = scale.between(i)
        anchor = "end" if x > LEFT + scale.pw * 0.8 else "start"
        when = mon_yy(Month.parse(p["month"]))
        basis = (
            f"limits from {_months_text(p['baseline_start'], p['baseline_end'])}"
            if p.get("baseline_start") and p.get("baseline_end")
            else "limits recalculated"
        )
        out.append(Rebase(x, TOP + 12 + 12 * (k % 2), anchor, f"New base line {when}", f"New base line from {when}: {basis}"))
    return out


def _point(p: dict, i: int, scale: _Scale, span: float) -> Point:
    """The point of a month with a value: its tip, its signal and, for a run, the triangle marker."""
    x, y = scale.x(i), scale.y(p["value"])
    sig = p.get("signal")
    tip = f"{mon_yy(Month.parse(p['month']))}: {axis_number(p['value'], span)}" + (f" - {SIGNAL_WORDS.get(sig, sig)}" if sig else "")
    marker = ""
    if sig and sig != "outside_limits":
        d = -1 if sig == "run_above" else 1
        tip_y = y + d * 8
        marker = f"{x - 4:.1f},{tip_y - d * 6:.1f} {x + 4:.1f},{tip_y - d * 6:.1f} {x:.1f},{tip_y:.1f}"
    return Point(x, y, tip, sig or None, marker)


def _legend() -> list[LegendEntry]:
    legend = []
    lx = LEFT
    for kind, text in _LEGEND:
        legend.append(LegendEntry(lx, kind, text))
        lx += 40 + int(len(text) * 6.2)
    return legend


def trend_chart(series: list[dict], *, uid: str, title: str, unit: str | None, baseline_level: float | None, baseline_note: str = "") -> TrendChart:
    """The chart of a monthly series (dicts with month, value, centre, lower, upper, baseline_start,
    baseline_end, signal): one point per month with a value, lines broken where months are missing."""
    n = len(series)
    nonneg = unit in _NONNEGATIVE_UNITS
    ticks = _nice_ticks(*_y_range(series, nonneg, baseline_level))
    scale = _Scale(n, ticks[0], ticks[-1], nonneg)
    span = scale.y1 - scale.y0

    chart = TrendChart(uid, title, _description(series, span, baseline_level, baseline_note), _UNIT_WORDS.get(unit or "", unit or "value"))
    chart.n_months = n
    chart.y_ticks = [Tick(scale.y(t), axis_number(t, span)) for t in ticks]
    chart.x_ticks = _x_ticks(series, scale)
    starts = _phase_starts(series)
    chart.bands = _bands(series, scale, starts)
    for key, cls in (("upper", "limit"), ("lower", "limit"), ("centre", "centre")):
        chart.lines += [Line(cls, _pts(seg)) for seg in _segments(scale.steps_of(series, key, starts))]
    chart.rebases = _rebases(series, scale, starts)
    if baseline_level is not None:
        chart.baseline_y = scale.y(baseline_level)
    chart.values = [
        Line("values", _pts(seg))
        for seg in _segments([(scale.x(i), scale.y(p["value"])) if p.get("value") is not None else None for i, p in enumerate(series)])
    ]
    chart.points = [_point(p, i, scale, span) for i, p in enumerate(series) if p.get("value") is not None]
    chart.legend = _legend()
    return chart


def trend_svg(series: list[dict], *, uid: str, title: str, unit: str | None, baseline_level: float | None, baseline_note: str = "") -> str:
    """An inline SVG line chart of a monthly series with its SPC centre, control limits, signals and baseline.

    One <circle class="pt"> per month with a value; signalled points also carry class "signal" and a
    marker (a ring for a point outside the limits, a triangle for a run); one <line class="rebase"> per
    new base line (limits recalculated). No script, no external file.
    """
    chart = trend_chart(series, uid=uid, title=title, unit=unit, baseline_level=baseline_level, baseline_note=baseline_note)
    return render("trend.svg", chart=chart)


__all__ = ["CAPTION", "Rebase", "TrendChart", "trend_chart", "trend_svg"]
