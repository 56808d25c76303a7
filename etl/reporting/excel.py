"""The scorecard as an Excel workbook: changes when what ``scorecard.xlsx`` holds or how it looks does.

Performance teams finish board papers in Office, so the Plan KPI scorecard is also written as a
workbook (openpyxl), made from the same view model as ``scorecard.html`` (`etl.reporting.scorecard`):
no figure is computed here, every text is the page's.

* A first sheet **About**: force, report month, where the figures come from (the warehouse runs and
  definition versions, as the page's header gives them), the layout version, the rounding rule, the
  status colours and which sheet holds which objective.
* One sheet per objective, named from its title (Excel allows 31 characters and no ``[]:*?/\\``;
  names are made unique), with the objective's title above a bold, frozen header row. One line per
  figure of a KPI row (one for a row without figures); the sub-objective, KPI wording, target and a
  status shared by all figures are merged over the KPI's lines, as the page spans them. Values,
  comparison values and changes are numbers (unrounded) whose number format shows them rounded as
  the page does (``4.3%``, ``1,025``, ``+0.7 pts``, ``-3%``); beside them, the ``(as shown)``
  columns hold the page's text (``8m 44s``, ``not available (...)``, ``800 (incomplete, no change
  given: ...)``). Status cells are coloured like the page's badges (read from ``static/report.css``).

Safety: every text cell is written as text, never as a formula (openpyxl writes a string starting
``=`` as a formula unless its type is set to text), and one that starts like a formula (``= + - @``,
a tab or a carriage return) carries Excel's quote prefix, so editing the cell keeps it text.
Characters an XML file cannot hold are dropped. Only the scorecard's aggregate figures are written:
no column of any extract, so no classified (personal) value.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from etl.reporting.exports import FORMULA_START, write_bytes
from etl.reporting.figures import Figure
from etl.reporting.formatting import ROUNDING_DETAIL, ROUNDING_STATEMENT, STATUS_WORDS, status_words
from etl.reporting.layout import NO_DATA_KINDS
from etl.reporting.scorecard import CurrentLine, KpiRow, ObjectiveTable, ScorecardPage, comparison_entry
from etl.reporting.templating import stylesheet

logger = logging.getLogger(__name__)

ABOUT_SHEET = "About"
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_RESERVED_SHEET_NAMES = {"history", ABOUT_SHEET.lower()}  # Excel reserves "History"

# Number formats showing a value rounded as `etl.reporting.formatting` displays it (Excel rounds half
# away from zero for display, as the pages do). The "%" is a quoted literal: the values are percents.
_VALUE_FORMATS = {
    "count": "#,##0",
    "pct": '0.0"%"',
    "per_1000": '#,##0.0" per 1,000"',
    "per_100k": '#,##0.0" per 100,000"',
    "per_million": '#,##0.0" per million"',
    "days": '#,##0.0" days"',
    "seconds": '#,##0" s"',
}
_CHANGE_FORMATS = {
    "count": "+#,##0;-#,##0;0",
    "pct": '+0.0" pts";-0.0" pts";0.0" pts"',
    "seconds": '+#,##0" s";-#,##0" s";0" s"',
}
_DEFAULT_VALUE_FORMAT = "#,##0.0"
_DEFAULT_CHANGE_FORMAT = "+#,##0.0;-#,##0.0;0.0"
CHANGE_PCT_FORMAT = '+0"%";-0"%";0"%"'

_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="E8EAED")
_TOP = Alignment(vertical="top")
_WRAP = Alignment(vertical="top", wrap_text=True)

# (heading, width, wraps)
_LEAD_COLUMNS = (
    ("Sub-objective", 24, True),
    ("KPI", 48, True),
    ("Figure", 22, True),
    ("Measure", 30, False),
    ("Current", 13, False),
    ("Current (as shown)", 30, True),
    ("Period", 16, False),
)
_COMPARISON_COLUMNS = (("", 22, True), (" value", 13, False), (" change", 12, False), (" % change", 11, False), (" (as shown)", 36, True))
_TAIL_COLUMNS = (("Target", 28, True), ("Status", 18, True))


# --------------------------------------------------------------------------------------------------
# Cells


def put_text(cell: Cell, text: str | None) -> Cell:
    """Write ``text`` as a text cell, never a formula; one that starts like a formula gets Excel's quote
    prefix (kept as text when the cell is edited). ``None`` leaves the cell empty."""
    if text is None:
        return cell
    text = ILLEGAL_CHARACTERS_RE.sub("", str(text))
    cell.value = text
    cell.data_type = "s"  # openpyxl would write a string starting "=" as a formula
    if text.startswith(FORMULA_START):
        cell.quotePrefix = True
    return cell


def put_number(cell: Cell, value: float | None, number_format: str) -> Cell:
    """Write a number with its display format; a missing or non-finite value leaves the cell empty."""
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        return cell
    cell.value = float(value)
    cell.number_format = number_format
    return cell


def value_format(unit: str | None) -> str:
    """The number format showing a value of ``unit`` rounded as `format_value` shows it."""
    return _VALUE_FORMATS.get(unit or "", _DEFAULT_VALUE_FORMAT)


def change_format(unit: str | None) -> str:
    """The number format showing a change of ``unit`` as `format_change_abs` shows it."""
    return _CHANGE_FORMATS.get(unit or "", _DEFAULT_CHANGE_FORMAT)


@lru_cache(maxsize=1)
def status_colours() -> dict[str, tuple[str, str]]:
    """(background, text) colour per status, as the page's badges (``.b-<status>`` in report.css)."""
    colours: dict[str, tuple[str, str]] = {}
    for selectors, body in re.findall(r"((?:\.b-\w+\s*,\s*)*\.b-\w+)\s*\{([^}]*)\}", stylesheet()):
        bg = re.search(r"background:\s*#([0-9a-fA-F]{6})", body)
        fg = re.search(r"(?<![-\w])color:\s*#([0-9a-fA-F]{6})", body)
        if bg and fg:
            for status in re.findall(r"\.b-(\w+)", selectors):
                colours[status] = (bg.group(1).upper(), fg.group(1).upper())
    return colours


def colour_status(cell: Cell, status: str) -> None:
    colours = status_colours().get(status)
    if colours:
        cell.fill = PatternFill("solid", fgColor=colours[0])
        cell.font = Font(color=colours[1])


# --------------------------------------------------------------------------------------------------
# Sheet names


def sheet_names(titles: Iterable[str]) -> list[str]:
    """A valid, unique (case-insensitively, as Excel compares them) sheet name per objective title:
    no ``[]:*?/\\``, no leading or trailing apostrophe, at most 31 characters (cut at a word when one
    is near), never "About" or Excel's reserved "History"."""
    names: list[str] = []
    taken = set(_RESERVED_SHEET_NAMES)
    for n, title in enumerate(titles, start=1):
        base = " ".join(ILLEGAL_CHARACTERS_RE.sub("", _SHEET_FORBIDDEN.sub(" ", title)).split()).strip("' ")
        base = _cut(base, SHEET_NAME_MAX) or f"Objective {n}"
        name, k = base, 1
        while name.lower() in taken:
            k += 1
            suffix = f" ({k})"
            name = _cut(base, SHEET_NAME_MAX - len(suffix)) + suffix
        taken.add(name.lower())
        names.append(name)
    return names


_TRAILING_SMALL_WORDS = re.compile(r"(?:[\s,;.'-]+(?:a|an|and|by|for|in|of|on|or|the|to|with))+$", re.IGNORECASE)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word when one ends in its second half, without a
    dangling "and", "the", ... ("Increased confidence in the police" -> "Increased confidence")."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = _TRAILING_SMALL_WORDS.sub("", cut[:space]) or cut[:space]
    return cut.rstrip(" ,;.-'")


# --------------------------------------------------------------------------------------------------
# The objective sheets


def _headings(nslots: int) -> list[tuple[str, int, bool]]:
    slots = [(f"Comparison {i + 1}{suffix}", width, wraps) for i in range(nslots) for suffix, width, wraps in _COMPARISON_COLUMNS]
    return [*_LEAD_COLUMNS, *slots, *_TAIL_COLUMNS]


def _current_lines(row: KpiRow) -> list[CurrentLine]:
    """The page's Current line of each figure, without the figure's label and period (the Figure and Period
    columns have them)."""
    lines = row.current.lines
    if len(lines) != len(row.figures):  # no figure available, for one reason: one line for all
        lines = lines * len(row.figures)
    return [replace(line, prefix="", label=None) for line in lines]


def _write_figure(ws: Worksheet, r: int, row: KpiRow, f: Figure, line: CurrentLine, nslots: int) -> None:
    put_text(ws.cell(r, 3), f.label)
    put_text(ws.cell(r, 4), f.measure_id)
    if line.value is not None:
        put_number(ws.cell(r, 5), f.value, value_format(f.unit))
    put_text(ws.cell(r, 6), line.text)
    put_text(ws.cell(r, 7), f.period_label or None)
    for i in range(nslots):
        c = f.comparison(row.spec.comparisons[i]) if i < len(row.spec.comparisons) else None
        if c is None:
            continue
        col = len(_LEAD_COLUMNS) + 1 + i * len(_COMPARISON_COLUMNS)
        entry = comparison_entry(f, c)
        put_text(ws.cell(r, col), c.label)
        if c.status is not None:
            put_number(ws.cell(r, col + 1), c.value, value_format(f.unit))
        if entry.kind == "change":
            put_number(ws.cell(r, col + 2), c.change_abs, change_format(f.unit))
            if entry.change_pct:
                put_number(ws.cell(r, col + 3), c.change_pct, CHANGE_PCT_FORMAT)
        put_text(ws.cell(r, col + 4), entry.text)


def _merge(ws: Worksheet, col: int, first: int, last: int) -> None:
    if last > first:
        ws.merge_cells(start_row=first, start_column=col, end_row=last, end_column=col)


def _write_kpi(ws: Worksheet, r: int, row: KpiRow, nslots: int) -> int:
    """Write the KPI's lines from sheet row ``r``; the number of lines."""
    status_col = len(_headings(nslots))
    put_text(ws.cell(r, 2), row.spec.kpi)
    put_text(ws.cell(r, status_col - 1), row.target_text() or None)
    badges = row.statuses()
    if not row.computed:
        put_text(ws.cell(r, 6), row.spec.reason)
        n = 1
    else:
        for j, (f, line) in enumerate(zip(row.figures, _current_lines(row), strict=True)):
            _write_figure(ws, r + j, row, f, line, nslots)
        n = len(row.figures)
    if len(badges) == 1:
        colour_status(put_text(ws.cell(r, status_col), status_words(badges[0][1])), badges[0][1])
        _merge(ws, status_col, r, r + n - 1)
    else:  # the figures differ: a badge per figure, on its line
        for j, (_, status) in enumerate(badges):
            colour_status(put_text(ws.cell(r + j, status_col), status_words(status)), status)
    _merge(ws, 2, r, r + n - 1)
    _merge(ws, status_col - 1, r, r + n - 1)
    return n


def _objective_sheet(ws: Worksheet, table: ObjectiveTable) -> None:
    rows = [row for g in table.groups for row in g.rows]
    nslots = max([len(row.spec.comparisons) for row in rows if row.computed] + [0])
    headings = _headings(nslots)
    put_text(ws.cell(1, 1), table.title).font = _TITLE
    for col, (heading, width, _) in enumerate(headings, start=1):
        cell = put_text(ws.cell(2, col), heading)
        cell.font, cell.fill, cell.alignment = _BOLD, _HEADER_FILL, _WRAP
        ws.column_dimensions[get_column_letter(col)].width = width
    r = 3
    for group in table.groups:
        first = r
        for row in group.rows:
            r += _write_kpi(ws, r, row, nslots)
        if r > first:
            put_text(ws.cell(first, 1), group.title)
            _merge(ws, 1, first, r - 1)
    for col, (_, _, wraps) in enumerate(headings, start=1):
        for line in range(3, r):
            ws.cell(line, col).alignment = _WRAP if wraps else _TOP
    ws.freeze_panes = "C3"
    ws.print_title_rows = "2:2"
    fit_row_heights(ws, first_row=2)
    _print_setup(ws, "landscape")


# --------------------------------------------------------------------------------------------------
# Row heights: spreadsheet programs do not grow a row to its wrapped text when a file is opened
# (LibreOffice and Excel print such rows one line high, the lines over each other), so each row gets
# the height its longest wrapped cell needs.

LINE_HEIGHT = 15.0  # points per line of 11-point text
CHARS_PER_WIDTH = 1.1  # characters of body text per unit of column width (a unit is one "0" of the default font)


def text_lines(text: str, width: float) -> int:
    """How many lines ``text`` takes in a wrapped column of ``width``: words wrap whole; a word longer
    than a line is broken over lines."""
    per_line = max(1, int(width * CHARS_PER_WIDTH) - 1)
    total = 0
    for paragraph in text.split("\n"):
        n, used = 1, 0
        for word in paragraph.split():
            size = len(word)
            if used and used + 1 + size <= per_line:
                used += 1 + size
                continue
            if used:
                n += 1
            n += (size - 1) // per_line
            used = (size - 1) % per_line + 1
        total += n
    return total


def fit_row_heights(ws: Worksheet, first_row: int = 1) -> None:
    """Set each row's height to hold its wrapped cells; a cell merged over several rows adds what its
    text needs beyond those rows' own heights to the last of them."""
    widths = {c: (d.width or 8.43) for c, d in ws.column_dimensions.items()}
    merged = {(m.min_row, m.min_col): m for m in ws.merged_cells.ranges}
    inside = {(r, c) for m in merged.values() for r in range(m.min_row, m.max_row + 1) for c in range(m.min_col, m.max_col + 1)}

    def need(cell: Cell) -> int:
        if not isinstance(cell.value, str) or not (cell.alignment and cell.alignment.wrap_text):
            return 1
        return text_lines(cell.value, widths.get(cell.column_letter, 8.43))

    lines: dict[int, int] = {}
    for row in ws.iter_rows(min_row=first_row):
        for cell in row:
            if (cell.row, cell.column) not in inside:
                lines[cell.row] = max(lines.get(cell.row, 1), need(cell))
    for (r, c), m in merged.items():
        if r < first_row:
            continue
        rows = range(m.min_row, m.max_row + 1)
        short = need(ws.cell(r, c)) - sum(lines.get(x, 1) for x in rows)
        if short > 0:
            lines[m.max_row] = lines.get(m.max_row, 1) + short
    for r, n in lines.items():
        if n > 1:
            ws.row_dimensions[r].height = n * LINE_HEIGHT


def _print_setup(ws: Worksheet, orientation: str) -> None:
    """Printed one page wide, as many pages down as it needs."""
    ws.page_setup.orientation = orientation
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


# --------------------------------------------------------------------------------------------------
# The About sheet and the workbook


def provenance_text(page: ScorecardPage) -> str:
    """As the page's header says it (the ``provenance`` macro of ``_macros.html``)."""
    return "Figures from the measures table" + (f": {page.provenance}" if page.provenance else "") + "."


def _about_sheet(ws: Worksheet, page: ScorecardPage, names: list[str]) -> None:
    put_text(ws.cell(1, 1), f"Police and Crime Plan KPI scorecard: {page.force_id}, {page.month_label}").font = _TITLE
    n_rows = len(page.rows)
    facts = [
        ("Force", page.force_id),
        ("Report month", f"{page.month} ({page.month_label})"),
        ("Provenance", provenance_text(page)),
        ("Layout", f"scorecard.yaml version {page.layout_version} ({page.layout_source})"),
        ("Rounding", f"{ROUNDING_STATEMENT} {ROUNDING_DETAIL}"),
        (
            "This workbook",
            "Values, comparison values and changes are numbers (unrounded) formatted to the rounding shown; the "
            "'(as shown)' columns hold the page's text, worded as in scorecard.csv. A status shared by all figures of a "
            "KPI spans its lines, as on the page.",
        ),
        (
            "KPI rows",
            f"{n_rows} KPI rows: {page.n_computed} with measures from the force's extracts, {n_rows - page.n_computed} in "
            "development, monitored elsewhere or not computable from force data.",
        ),
    ]
    r = 3
    for label, text in facts:
        put_text(ws.cell(r, 1), label).font = _BOLD
        put_text(ws.cell(r, 2), text)
        r += 1
    r += 1
    put_text(ws.cell(r, 1), "Status").font = _BOLD
    for status in (*page.legend_statuses, *NO_DATA_KINDS):
        colour_status(put_text(ws.cell(r, 2), STATUS_WORDS.get(status, status)), status)
        r += 1
    r += 1
    put_text(ws.cell(r, 1), "Sheets").font = _BOLD
    for table, name in zip(page.tables, names, strict=True):
        put_text(ws.cell(r, 2), name)
        put_text(ws.cell(r, 3), table.title)
        r += 1
    for line in range(2, r):  # the title (row 1) runs on to the right, unwrapped
        for col in (1, 2, 3):
            ws.cell(line, col).alignment = _WRAP
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 90
    ws.column_dimensions["C"].width = 60
    fit_row_heights(ws, first_row=2)
    _print_setup(ws, "portrait")


def scorecard_workbook(page: ScorecardPage) -> Workbook:
    """The workbook: About, then a sheet per objective of the page, in page order."""
    wb = Workbook()
    about = wb.active
    assert about is not None  # a new workbook has one sheet
    about.title = ABOUT_SHEET
    names = sheet_names(t.title for t in page.tables)
    _about_sheet(about, page, names)
    for table, name in zip(page.tables, names, strict=True):
        _objective_sheet(wb.create_sheet(name), table)
    wb.properties.title = f"Police and Crime Plan KPI scorecard: {page.force_id}, {page.month_label}"
    return wb


def write_scorecard_workbook(path: Path, page: ScorecardPage) -> None:
    """Write ``scorecard.xlsx`` through a temporary file renamed over it (a reader never sees half a file)."""
    buffer = io.BytesIO()
    scorecard_workbook(page).save(buffer)
    write_bytes(path, buffer.getvalue())
    logger.info("scorecard workbook: %d objective sheets, %d KPI rows, written to %s", len(page.tables), len(page.rows), path)


__all__ = [
    "ABOUT_SHEET",
    "CHANGE_PCT_FORMAT",
    "change_format",
    "fit_row_heights",
    "put_number",
    "put_text",
    "scorecard_workbook",
    "sheet_names",
    "status_colours",
    "text_lines",
    "value_format",
    "write_scorecard_workbook",
]
