"""Statement checker: do a published statement's figures follow from one another, and from the warehouse?

One reason to change: the rules by which a statement's printed figures are checked.

A statement is transcribed as a table (CSV or YAML), one row per printed line, with the figures
exactly as printed (see ``contracts/statements/README.md``). For each line the checker reports whether

* the absolute change follows from the two counts (``change``),
* the percentage change follows from the two counts (``change_pct``),
* a share follows from its part and its whole (``share``),
* a rate follows from its count and population (``rate``),
* a total follows from its parts (``total``: the sum, or at least the sum when the parts are only some),
* lines that print the same figure (same measure, force, period and comparison) agree (``agrees``),
* and, given a warehouse, the printed figure matches the measures table (``warehouse ...``).

Rounding is honest interval arithmetic on exact fractions: a printed figure with d decimals stands for
every number that rounds (half away from zero) to it; inputs printed as whole numbers are exact counts
unless the line says ``inputs: rounded``; a figure printed with decimals or a k/m suffix, or any input
of an ``inputs: rounded`` line, is the interval of half a unit of its last printed digit either side. A derived figure follows when some value in the
range its inputs allow rounds to the printed figure: no false alarm from rounding.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from etl.core.periods import PeriodError, period_window
from etl.errors import ConfigError

log = logging.getLogger(__name__)

COLUMNS = (
    "line",
    "source",
    "what",
    "measure",
    "force",
    "period",
    "period_end",
    "comparison",
    "value",
    "comparison_value",
    "change",
    "change_pct",
    "share_of",
    "share_pct",
    "rate",
    "population",
    "rate_per",
    "total_of",
    "total_kind",
    "rounding",
    "inputs",
    "note",
)
FIGURES = ("value", "comparison_value", "change", "change_pct", "share_of", "share_pct", "rate", "population")
RATE_PER = (100, 1000, 10_000, 100_000, 1_000_000)
FOLLOWS, FAILS, SKIPPED = "follows", "does not follow", "not checked"

_NUMBER = re.compile(r"^([+-]?)[£$€]?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s*([kKmM]?)\s*(?:%|per\s*cent|percent|pp|ppt|percentage\s+points?)?$", re.IGNORECASE)
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-"})  # minus signs and dashes printed for "-"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class StatementError(ConfigError, ValueError):
    """A statement file that cannot be read as a statement (exit 2): names the file, row, column and rule."""

    def __init__(self, path: str | Path, message: str, row: int | None = None, column: str | None = None):
        where = str(path) + (f": row {row}" if row is not None else "") + (f", column {column}" if column else "")
        self.path, self.row, self.column = str(path), row, column
        self.message = f"{where}: {message}"
        super().__init__(self.message)


class Printed(BaseModel):
    """A figure as printed: its text, its value and the decimals it is printed to (negative for a
    k/m suffix: "3m" is printed to the nearest million, -6). ``scaled``: written with a k/m suffix."""

    model_config = ConfigDict(frozen=True)

    text: str
    value: Decimal
    decimals: int
    scaled: bool = False

    @property
    def exact(self) -> Fraction:
        return Fraction(self.value)

    def half_unit(self, decimals: int | None = None) -> Fraction:
        return Fraction(1, 2) * Fraction(10) ** -(self.decimals if decimals is None else decimals)


def parse_figure(text: str) -> Printed | None:
    """A printed figure ("1,369", "-11.5", "61%", "2.9m", "£1.2m", "\u221212%", "3.1pp", "18.5 per cent"), or
    None when the text is not a number. A minus sign or dash as typeset stands for "-"."""
    m = _NUMBER.match(text.strip().translate(_MINUS))
    if not m:
        return None
    sign, whole, frac, suffix = m.groups()
    decimals = len(frac or "")
    value = Decimal(f"{sign}{whole.replace(',', '')}.{frac or '0'}")
    scale = {"k": 3, "m": 6}.get(suffix.lower(), 0)
    if scale:
        value = value.scaleb(scale)
    return Printed(text=text.strip(), value=value, decimals=decimals - scale, scaled=bool(scale))


class StatementLine(BaseModel):
    """One printed line of a statement: identifiers, the figures as printed and how they relate."""

    model_config = ConfigDict(frozen=True)

    line: str
    row: int
    source: str = ""
    what: str = ""
    measure: str = ""
    force: str = ""
    period: str = ""
    period_end: str = ""
    comparison: str = ""
    value: Printed | None = None
    comparison_value: Printed | None = None
    change: Printed | None = None
    change_pct: Printed | None = None
    share_of: Printed | None = None
    share_pct: Printed | None = None
    rate: Printed | None = None
    population: Printed | None = None
    rate_per: int | None = None
    total_of: tuple[str, ...] = ()
    total_kind: Literal["sum", "at_least"] = "sum"
    rounding: int | None = None
    inputs: Literal["exact", "rounded"] = "exact"
    note: str = ""

    def interval(self, figure: Printed) -> tuple[Fraction, Fraction]:
        """The range of true values an input figure allows: a whole number is an exact count unless the
        line's inputs are rounded; a figure printed with decimals or a k/m suffix is itself rounded."""
        x = figure.exact
        if self.inputs == "exact" and figure.decimals <= 0 and not figure.scaled:
            return x, x
        h = figure.half_unit()
        return x - h, x + h

    def decimals(self, figure: Printed) -> int:
        """The decimals a derived figure is printed to: the line's ``rounding`` when given, else as written."""
        return figure.decimals if self.rounding is None else self.rounding


class Finding(BaseModel):
    """The outcome of one check of one line."""

    model_config = ConfigDict(frozen=True)

    line: str
    row: int
    source: str
    check: str
    printed: str
    computed: str
    verdict: Literal["follows", "does not follow", "not checked"]
    reason: str = ""


# --------------------------------------------------------------------------------------------------
# Reading


def read_statement(path: str | Path) -> list[StatementLine]:
    """The lines of a statement file (``.csv``, ``.yaml`` or ``.yml``). Raises `StatementError`."""
    path = Path(path)
    if not path.exists():
        raise StatementError(path, "no such file")
    if not path.is_file():
        raise StatementError(path, "not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError(path, "not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, text)
    elif suffix in (".yaml", ".yml"):
        rows = _yaml_rows(path, text)
    else:
        raise StatementError(path, "not a statement file: use .csv, .yaml or .yml")
    if not rows:
        raise StatementError(path, "no statement lines")
    lines = [_line(path, row, cells) for row, cells in rows]
    _check_references(path, lines)
    log.info("read statement %s: %d lines", path.name, len(lines))
    return lines


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                _check_header(path, header, row=reader.line_num)
                continue
            if len(cells) > len(header):
                raise StatementError(path, f"{len(cells)} cells, the header has {len(header)}", row=reader.line_num)
            rows.append((reader.line_num, {h: c.strip() for h, c in zip(header, cells, strict=False)}))
    except csv.Error as exc:
        raise StatementError(path, f"not valid CSV ({exc})", row=reader.line_num) from None
    if header is None:
        raise StatementError(path, "no header row")
    return rows


def _yaml_rows(path: Path, text: str) -> list[tuple[int, dict[str, str]]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise StatementError(path, "not valid YAML", row=mark.line + 1 if mark is not None else None) from None
    if isinstance(data, dict):
        data = data.get("lines")
    if not isinstance(data, list):
        raise StatementError(path, "a YAML statement is a list of lines (or a mapping with a `lines:` list)")
    rows = []
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise StatementError(path, "a line must be a mapping of column to figure", row=i)
        keys = [str(k).strip().lower() for k in entry]
        _check_header(path, keys, row=i)
        rows.append((i, {str(k).strip().lower(): _yaml_cell(v) for k, v in entry.items()}))
    return rows


def _yaml_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v).strip()


def _check_header(path: Path, header: Sequence[str], row: int) -> None:
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        raise StatementError(path, f"unknown column (the columns are: {', '.join(COLUMNS)})", row=row, column=unknown[0])
    repeated = [h for h in header if h and header.count(h) > 1]
    if repeated:
        raise StatementError(path, "column given twice", row=row, column=repeated[0])
    if "line" not in header:
        raise StatementError(path, "no `line` column (each line needs a reference)", row=row)


def _line(path: Path, row: int, cells: dict[str, str]) -> StatementLine:
    def fail(column: str, rule: str) -> StatementError:
        return StatementError(path, rule, row=row, column=column)

    fields: dict[str, Any] = {"row": row}
    if not cells.get("line"):
        raise fail("line", "empty: each line needs a reference")
    for name in ("line", "source", "what", "measure", "force", "period", "comparison", "note"):
        fields[name] = cells.get(name, "")
    end = cells.get("period_end", "")
    if end and not _MONTH.match(end):
        raise fail("period_end", "not a month (YYYY-MM)")
    fields["period_end"] = end
    for name in FIGURES:
        text = cells.get(name, "")
        if text:
            figure = parse_figure(text)
            if figure is None:
                raise fail(name, "not a number as printed (digits, optional thousands commas, decimals, k/m, %)")
            fields[name] = figure
    fields.update(_relations(cells, fields, fail))
    return StatementLine(**fields)


def _relations(cells: dict[str, str], figures: dict[str, Any], fail: Callable[[str, str], StatementError]) -> dict[str, Any]:
    """The columns that say how a line's figures relate: rate_per, rounding, total_of, total_kind, inputs."""
    fields: dict[str, Any] = {}
    per = cells.get("rate_per", "").replace(",", "")
    if per:
        if not per.isdigit() or int(per) not in RATE_PER:
            raise fail("rate_per", f"must be one of {', '.join(f'{p:,}' for p in RATE_PER)}")
        fields["rate_per"] = int(per)
    if figures.get("rate") is not None and figures.get("population") is not None and "rate_per" not in fields:
        raise fail("rate_per", "empty: a rate with a population needs rate_per")
    rounding = cells.get("rounding", "")
    if rounding:
        if not rounding.isdigit() or int(rounding) > 6:
            raise fail("rounding", "must be a number of decimals, 0 to 6")
        fields["rounding"] = int(rounding)
    parts = tuple(p for p in re.split(r"[\s;+]+", cells.get("total_of", "")) if p)
    fields["total_of"] = parts
    if parts and figures.get("value") is None:
        raise fail("value", "empty: a total needs its value")
    kind = cells.get("total_kind", "") or "sum"
    if kind not in ("sum", "at_least"):
        raise fail("total_kind", "must be sum or at_least")
    fields["total_kind"] = kind
    inputs = cells.get("inputs", "") or "exact"
    if inputs not in ("exact", "rounded"):
        raise fail("inputs", "must be exact or rounded")
    fields["inputs"] = inputs
    return fields


def _check_references(path: Path, lines: list[StatementLine]) -> None:
    by_ref: dict[str, StatementLine] = {}
    for ln in lines:
        if ln.line in by_ref:
            raise StatementError(path, f"line reference repeated (first at row {by_ref[ln.line].row})", row=ln.row, column="line")
        by_ref[ln.line] = ln
    for ln in lines:
        for part in ln.total_of:
            if part not in by_ref:
                raise StatementError(path, "names a line that is not in the file", row=ln.row, column="total_of")
            if part == ln.line:
                raise StatementError(path, "a total cannot be one of its own parts", row=ln.row, column="total_of")
            if by_ref[part].value is None:
                raise StatementError(path, "names a line without a value", row=ln.row, column="total_of")


# --------------------------------------------------------------------------------------------------
# Interval arithmetic


def rounds_to(lo: Fraction, hi: Fraction, printed: Fraction, decimals: int) -> bool:
    """Whether some x in [lo, hi] rounds half away from zero to ``printed`` at ``decimals``.

    The numbers that round to p > 0 are [p - h, p + h); to p < 0, (p - h, p + h]; to 0, (-h, h)."""
    h = Fraction(1, 2) * Fraction(10) ** -decimals
    if printed > 0:
        return lo < printed + h and hi >= printed - h
    if printed < 0:
        return lo <= printed + h and hi > printed - h
    return lo < h and hi > -h


def truncates_to(lo: Fraction, hi: Fraction, printed: Fraction, decimals: int) -> bool:
    """Whether some x in [lo, hi] truncates (towards zero) to ``printed`` at ``decimals``: a figure that
    does not follow may still have been cut rather than rounded, which the report says."""
    unit = Fraction(10) ** -decimals
    if printed > 0:
        return lo < printed + unit and hi >= printed
    if printed < 0:
        return lo <= printed and hi > printed - unit
    return lo < unit and hi > -unit


def round_half_away(x: Fraction, decimals: int) -> Fraction:
    scale = Fraction(10) ** decimals
    scaled = abs(x) * scale
    n = int(scaled)
    if scaled - n >= Fraction(1, 2):
        n += 1
    return Fraction(n if x >= 0 else -n) / scale


def _range(f: Callable[..., Fraction], *intervals: tuple[Fraction, Fraction]) -> tuple[Fraction, Fraction]:
    """The range of f over a box of intervals, for f monotone in each argument on the box (sums,
    differences and ratios with a denominator of one sign): the extremes are at the corners."""
    values = [f(*corner) for corner in itertools.product(*intervals)]
    return min(values), max(values)


def _crosses_zero(interval: tuple[Fraction, Fraction]) -> bool:
    return interval[0] <= 0 <= interval[1]


def _at(x: Fraction, decimals: int) -> str:
    """x written to ``decimals`` places, as a statement would print it."""
    return f"{float(x):,.{max(decimals, 0)}f}"


def _show(lo: Fraction, hi: Fraction, decimals: int) -> str:
    places = max(decimals, 0) + 2

    def one(x: Fraction) -> str:
        if x.denominator == 1:
            return f"{x.numerator:,}"
        return f"{float(x):,.{places}f}"

    return one(lo) if lo == hi else f"{one(lo)} to {one(hi)}"


# --------------------------------------------------------------------------------------------------
# Checks


def check_lines(
    lines: Sequence[StatementLine],
    warehouse_measures: pl.DataFrame | None = None,
    catalogue: dict[str, str] | None = None,
    population: pl.DataFrame | None = None,
) -> list[Finding]:
    """Every check of every line, in file order. ``warehouse_measures``: the warehouse's measures table
    (or None: no warehouse comparison); ``catalogue``: measure names and ids (lower case) to ids;
    ``population``: the warehouse's population reference (force_id, year, population), used for a rate
    printed without its population."""
    by_ref = {ln.line: ln for ln in lines}
    findings: list[Finding] = []
    for ln in lines:
        findings += _arithmetic(ln, population)
        if ln.total_of:
            findings.append(_total(ln, [by_ref[p] for p in ln.total_of]))
    findings += _agreement(lines, catalogue or {})
    if warehouse_measures is not None:
        findings += _warehouse(lines, warehouse_measures, catalogue or {})
    order = {ln.line: i for i, ln in enumerate(lines)}
    findings.sort(key=lambda f: order[f.line])
    log.info("checked %d statement lines: %d checks, %d do not follow", len(lines), len(findings), sum(f.verdict == FAILS for f in findings))
    return findings


def _finding(ln: StatementLine, check: str, printed: str, computed: str, verdict: str, reason: str = "") -> Finding:
    return Finding(line=ln.line, row=ln.row, source=ln.source, check=check, printed=printed, computed=computed, verdict=verdict, reason=reason)  # type: ignore[arg-type]


def _derived(
    ln: StatementLine, check: str, printed: Printed, f: Callable[..., Fraction], inputs: Iterable[Printed], how: str, denominator: int | None = None
) -> Finding:
    """A derived figure against the range its printed inputs allow."""
    boxes = [ln.interval(p) for p in inputs]
    if denominator is not None and _crosses_zero(boxes[denominator]):
        return _finding(ln, check, printed.text, "", SKIPPED, "the denominator is zero")
    lo, hi = _range(f, *boxes)
    d = ln.decimals(printed)
    ok = rounds_to(lo, hi, printed.exact, d)
    reason = how
    if not ok:
        a, b = _at(round_half_away(lo, d), d), _at(round_half_away(hi, d), d)
        reason += f"; rounded to {d} decimal(s) it would be printed {a if a == b else f'{a} to {b}'}"
        if truncates_to(lo, hi, printed.exact, d):
            reason += "; it follows if the figure was truncated instead"
    return _finding(ln, check, printed.text, _show(lo, hi, d), FOLLOWS if ok else FAILS, reason)


def _population_year(ln: StatementLine) -> int | None:
    """The population year of a line's window, as the measures use it: the first 30 June on or after the
    window's first month (`etl.measures.windows.june_year`)."""
    if not (ln.period and ln.period_end):
        return None
    try:
        first = period_window(ln.period.lower(), ln.period_end).start
    except PeriodError:
        return None
    return first.year + (0 if first.month <= 6 else 1)


def _reference_population(ln: StatementLine, population: pl.DataFrame) -> tuple[int | None, str]:
    """The warehouse's estimate for a line's force and population year, or None and why not."""
    forces = population["force_id"].unique().sort().to_list()
    force = ln.force or (forces[0] if len(forces) == 1 else "")
    if not force:
        return None, "no population printed, and the warehouse holds several forces' populations: give `force`"
    year = _population_year(ln)
    if year is None:
        return None, "no population printed, and no period and period_end to choose the warehouse's estimate"
    rows = population.filter((pl.col("force_id") == force) & (pl.col("year") == year))
    if rows.height != 1:
        return None, f"no population printed, and the warehouse has no {year} estimate for {force}"
    return int(rows["population"][0]), f"{force} mid-{year} estimate in the warehouse's population reference"


def _implied_population(ln: StatementLine, count: Printed, rate: Printed, per: int) -> str:
    """What a printed count and rate say the population was (a range: both are rounded or exact)."""
    (c_lo, c_hi), (r_lo, r_hi) = ln.interval(count), ln.interval(rate)
    if r_lo <= 0:
        return ""
    lo, hi = c_lo / r_hi * per, c_hi / r_lo * per
    return f"; the count and rate imply a population of {float(lo):,.0f} to {float(hi):,.0f}"


def _rate(ln: StatementLine, population: pl.DataFrame | None) -> Finding:
    """A rate against its count and population: the printed population, else the warehouse's estimate."""
    assert ln.rate is not None
    v, per = ln.value, ln.rate_per
    if v is None or per is None:
        missing = " or ".join(n for n, x in (("count", v), ("rate_per", per)) if x is None)
        return _finding(ln, "rate", ln.rate.text, "", SKIPPED, f"no {missing} printed")
    if ln.population is not None:
        return _derived(ln, "rate", ln.rate, lambda a, b: a / b * per, (v, ln.population), f"{v.text} / {ln.population.text} x {per:,}", 1)
    implied = _implied_population(ln, v, ln.rate, per)
    if population is None or population.height == 0:
        return _finding(ln, "rate", ln.rate.text, "", SKIPPED, f"no population printed{implied}")
    held, why = _reference_population(ln, population)
    if held is None:
        return _finding(ln, "rate", ln.rate.text, "", SKIPPED, why + implied)
    pop = Printed(text=f"{held:,}", value=Decimal(held), decimals=0)
    found = _derived(ln, "rate (warehouse population)", ln.rate, lambda a, b: a / b * per, (v, pop), f"{v.text} / {held:,} x {per:,} ({why})", 1)
    return found.model_copy(update={"reason": found.reason + implied}) if found.verdict == FAILS else found


def _arithmetic(ln: StatementLine, population: pl.DataFrame | None = None) -> list[Finding]:
    out: list[Finding] = []
    v, c = ln.value, ln.comparison_value
    if ln.change is not None:
        if v is None or c is None:
            out.append(_finding(ln, "change", ln.change.text, "", SKIPPED, "needs value and comparison_value"))
        else:
            out.append(_derived(ln, "change", ln.change, lambda a, b: a - b, (v, c), f"{v.text} - {c.text}"))
    if ln.change_pct is not None:
        if v is None or c is None:
            out.append(_finding(ln, "change_pct", ln.change_pct.text, "", SKIPPED, "needs value and comparison_value"))
        else:
            out.append(_derived(ln, "change_pct", ln.change_pct, lambda a, b: (a - b) / b * 100, (v, c), f"({v.text} - {c.text}) / {c.text} x 100", 1))
    if ln.share_pct is not None:
        if v is None or ln.share_of is None:
            out.append(_finding(ln, "share", ln.share_pct.text, "", SKIPPED, "needs value and share_of"))
        else:
            out.append(_derived(ln, "share", ln.share_pct, lambda a, b: a / b * 100, (v, ln.share_of), f"{v.text} / {ln.share_of.text} x 100", 1))
    if ln.rate is not None:
        out.append(_rate(ln, population))
    return out


def _total(ln: StatementLine, parts: list[StatementLine]) -> Finding:
    assert ln.value is not None
    boxes = [p.interval(p.value) for p in parts if p.value is not None]
    lo, hi = sum((b[0] for b in boxes), Fraction(0)), sum((b[1] for b in boxes), Fraction(0))
    d = ln.decimals(ln.value)
    names = f"lines {parts[0].line} to {parts[-1].line}" if len(parts) > 3 else " + ".join(p.line for p in parts)
    if ln.total_kind == "at_least":
        ok = lo < ln.value.exact + ln.value.half_unit(d)  # the total may have been rounded down
        reason = f"{names} are some of the total: their sum must not exceed it"
        return _finding(ln, "total (at least its parts)", ln.value.text, _show(lo, hi, d), FOLLOWS if ok else FAILS, reason)
    ok = rounds_to(lo, hi, ln.value.exact, d)
    return _finding(ln, "total", ln.value.text, _show(lo, hi, d), FOLLOWS if ok else FAILS, f"sum of {len(parts)} parts ({names})")


def _key(ln: StatementLine, catalogue: dict[str, str]) -> tuple[str, ...] | None:
    if not (ln.measure and ln.period_end):
        return None
    measure = catalogue.get(ln.measure.lower(), ln.measure.lower())
    return (measure, ln.force.lower(), ln.period.lower(), ln.period_end, ln.comparison.lower())


def _agreement(lines: Sequence[StatementLine], catalogue: dict[str, str]) -> list[Finding]:
    """Lines that print the same figure (same measure, by id or name, force, period, period end and
    comparison) must agree."""
    out: list[Finding] = []
    first: dict[tuple[str, ...], StatementLine] = {}
    for ln in lines:
        key = _key(ln, catalogue)
        if key is None:
            continue
        if key not in first:
            first[key] = ln
            continue
        earlier = first[key]
        for name in ("value", "comparison_value"):
            a, b = getattr(earlier, name), getattr(ln, name)
            if a is None or b is None:
                continue
            lo_a, hi_a = earlier.interval(a)
            lo_b, hi_b = ln.interval(b)
            ok = lo_a <= hi_b and lo_b <= hi_a
            out.append(
                _finding(ln, f"agrees ({name})", b.text, a.text, FOLLOWS if ok else FAILS, f"line {earlier.line} ({earlier.source}) prints the same figure")
            )
    return out


def catalogue_ids(measures: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Measure ids and unambiguous names (lower case) to ids, from (id, name) pairs."""
    names: dict[str, list[str]] = {}
    out: dict[str, str] = {}
    for mid, name in measures:
        out[mid.lower()] = mid
        names.setdefault(name.lower(), []).append(mid)
    for name, ids in names.items():
        if len(ids) == 1:
            out.setdefault(name, ids[0])
    return out


def _warehouse(lines: Sequence[StatementLine], table: pl.DataFrame, catalogue: dict[str, str]) -> list[Finding]:
    """Printed figures against the warehouse's measures (same measure id, force, period end, period and comparison)."""
    out: list[Finding] = []
    wanted = []
    for ln in lines:
        if ln.value is None or not (ln.measure and ln.period_end and ln.period and ln.comparison):
            continue
        mid = catalogue.get(ln.measure.lower()) if catalogue else ln.measure
        if mid is None:
            out.append(_finding(ln, "warehouse", ln.value.text, "", SKIPPED, "measure not in the catalogue (or its name is not unique: give the id)"))
            continue
        wanted.append({"line": ln.line, "measure_id": mid, "force": ln.force, "period_end": ln.period_end, "period": ln.period, "comparison": ln.comparison})
    if not wanted:
        return out
    keys = pl.DataFrame(wanted, schema={k: pl.Utf8 for k in ("line", "measure_id", "force", "period_end", "period", "comparison")})
    cols = ["force_id", "measure_id", "period_end", "period", "comparison", "value", "comparison_value", "change_pct", "status"]
    matched = keys.join(table.select(cols), on=["measure_id", "period_end", "period", "comparison"], how="left").filter(
        (pl.col("force") == "") | (pl.col("force") == pl.col("force_id")) | pl.col("force_id").is_null()
    )
    by_line: dict[str, list[dict]] = {}
    for r in matched.iter_rows(named=True):
        by_line.setdefault(r["line"], []).append(r)
    lines_by_ref = {ln.line: ln for ln in lines}
    for key in keys["line"]:
        ln = lines_by_ref[key]
        assert ln.value is not None
        rows = [r for r in by_line.get(key, []) if r["force_id"] is not None]
        if not rows:
            out.append(_finding(ln, "warehouse", ln.value.text, "", SKIPPED, "the warehouse does not hold this figure"))
            continue
        if len(rows) > 1:
            out.append(_finding(ln, "warehouse", ln.value.text, "", SKIPPED, "the warehouse holds it for several forces: give `force`"))
            continue
        r = rows[0]
        for name, column in (("value", "value"), ("comparison_value", "comparison_value"), ("change_pct", "change_pct")):
            printed = getattr(ln, name)
            if printed is None:
                continue
            held = r[column]
            if held is None:
                out.append(_finding(ln, f"warehouse {name}", printed.text, "", SKIPPED, f"the warehouse has no value ({r['status']})"))
                continue
            x = Fraction(held).limit_denominator(10**9)
            d = ln.decimals(printed)
            ok = rounds_to(x, x, printed.exact, d)
            out.append(_finding(ln, f"warehouse {name}", printed.text, _show(x, x, d), FOLLOWS if ok else FAILS, f"measures {r['measure_id']} {r['force_id']}"))
    return out


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """How many checks follow, do not follow and were not checked."""
    return {v: sum(f.verdict == v for f in findings) for v in (FOLLOWS, FAILS, SKIPPED)}


__all__ = [
    "COLUMNS",
    "FAILS",
    "FOLLOWS",
    "SKIPPED",
    "Finding",
    "Printed",
    "StatementError",
    "StatementLine",
    "catalogue_ids",
    "check_lines",
    "parse_figure",
    "read_statement",
    "round_half_away",
    "rounds_to",
    "summary",
    "truncates_to",
]
