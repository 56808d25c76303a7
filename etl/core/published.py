"""Published figures: ONS "Crime in England and Wales: Police Force Area data tables", Table P1.

Table P1 is police recorded crime (number of offences, fraud excluded) by offence group for England
and Wales, England, the English regions, Wales, every police force area and British Transport Police,
for the year ending a quarter. The official xlsx workbooks are read with polars (calamine engine)
into one tidy frame (``PUBLISHED_SCHEMA``): one row per area x offence group x period, so our own
figures can be compared with what was published.

The layout is found from the sheet, not assumed by row or column number:

* the sheet whose name is ``Table P1`` (the workbooks spell it with trailing spaces sometimes);
* the title cell (``Table P1: ... number of offences, year ending June 2019``) gives the period. The
  year is written with two digits in some workbooks (``June 18``) and the footnote markers are glued
  on (``June 20191,2`` = June 2019 + notes 1 and 2); a reading is accepted only when every glued
  marker is one of the numbered notes under the table;
* the row holding ``Area Code`` / ``Area Name`` is the heading row; a value column's offence group is
  the lowest heading cell above it in that column (banners such as ``Victim-based crime`` span several
  columns and are not columns of their own); columns with no heading are spacers and must hold no
  numbers;
* area rows follow the heading row (after a unit row that must say ``Numbers``) down to the
  ``Source:`` line / the numbered notes. British Transport Police has no area code (``area_code`` is
  null for it).

Footnote markers are removed from area names (``West Midlands 3,4`` -> ``West Midlands``) and
offence groups (``Total recorded crime (excluding fraud3)`` -> ``... (excluding fraud)``); whitespace
is normalised. ``..`` / ``[x]`` style markers become a null value; any other text, a blank cell, a
negative or fractional count is an error: nothing is dropped silently. Table P1 in these workbooks
gives the current year only (the comparison with the previous year is Table P2, percentages), so only
the current period is emitted; a sheet with repeated offence headings or period / percentage columns
is refused rather than guessed at.

Force ids (data.police.uk slugs) map to ONS police force area codes and the names P1 uses through
``contracts/reference/force_areas.yaml``.
"""

from __future__ import annotations

import hashlib
import io
import re
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from etl.core.paths import not_a_regular_file
from etl.core.periods import Month
from etl.core.reference import contracts_dir
from etl.errors import DataError

TABLE = "P1"

PUBLISHED_SCHEMA: dict[str, pl.DataType] = {
    "area_code": pl.Utf8(),
    "area_name": pl.Utf8(),
    "period_start": pl.Utf8(),
    "period_end": pl.Utf8(),
    "offence_group": pl.Utf8(),
    "value": pl.Float64(),
    "source_file": pl.Utf8(),
    "source_sha256": pl.Utf8(),
    "table": pl.Utf8(),
}

# What the tables print where there is no figure ('..' = not available; the later ONS style uses [x]).
NOT_AVAILABLE_MARKERS = ["..", ".", "[x]", "[z]", "[c]", "[u]", "[low]", "x", "-", "\u2013", "*", ":", "n/a"]

_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
_TITLE_RE = re.compile(r"^\s*table\s+p1\b", re.IGNORECASE)
_PERIOD_RE = re.compile(r"year\s+ending\s+([A-Za-z]+)\.?\s+(\d[\d,\s]*)", re.IGNORECASE)
_NOTE_RE = re.compile(r"^\s*(\d+)\s*\.\s")
_AREA_CODE_RE = r"^[A-Z]\d{8}$"
# footnote markers after a word or ')' - 'fraud3)', 'harassment 5', 'burglary5,6'
_HEADING_NOTE_RE = re.compile(r"(?<=[A-Za-z)])\s?\d+(?:\s*,\s*\d+)*(?=[\s),;:]|$)")
# footnote markers at the end of an area name - 'ENGLAND AND WALES7,8', 'North West 7,8'
_NAME_NOTE_RE = r"\s*\d+(?:\s*,\s*\d+)*\s*$"
# headings that would mean a comparison-period or percentage layout this reader does not handle
_NOT_A_COUNT_HEADING = re.compile(r"year ending|%|percent|rate per|change|\b(?:19|20)\d\d\b", re.IGNORECASE)


class PublishedError(DataError, ValueError):
    """A published workbook (or the force-area reference) that cannot be used; the message names the file."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


# ---------------------------------------------------------------------------------------------------
# reading one workbook


def _clean_heading(text: str) -> str:
    return " ".join(_HEADING_NOTE_RE.sub("", text).split())


def _period_from_title(title: str, notes: set[int], path: Path) -> tuple[str, str]:
    """(period_start, period_end) as YYYY-MM from 'year ending <Month> <year><footnotes>'."""
    m = _PERIOD_RE.search(title)
    if not m:
        raise PublishedError(path, f"the Table P1 title does not say which year it covers ('year ending <month> <year>'): {title!r}")
    month = _MONTHS.get(m.group(1).lower())
    if month is None:
        raise PublishedError(path, f"the Table P1 title names an unknown month {m.group(1)!r}: {title!r}")
    token = re.sub(r"\s+", "", m.group(2)).rstrip(",")
    readings = []
    for width in (4, 2):
        year_text, rest = token[:width], token[width:]
        if len(year_text) != width or not year_text.isdigit():
            continue
        markers = [int(x) for x in rest.split(",")] if rest else []
        if rest and not re.fullmatch(r"\d+(?:,\d+)*", rest):
            continue
        if any(n not in notes for n in markers):
            continue
        year = int(year_text) if width == 4 else 2000 + int(year_text)
        if 2000 <= year <= 2099:
            readings.append(year)
    if not readings:
        raise PublishedError(path, f"cannot read the year in the Table P1 title {title!r} (footnote markers must be notes under the table)")
    end = Month.of(readings[0], month)  # a four-digit reading wins over a two-digit one
    return str(end - 11), str(end)


def _read_bytes(path: Path) -> bytes:
    reason = not_a_regular_file(path)
    if reason:
        raise PublishedError(path, reason)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PublishedError(path, "file not found") from exc
    except OSError as exc:
        raise PublishedError(path, f"cannot be read ({exc.strerror or exc})") from exc


def _p1_sheet_name(data: bytes, path: Path) -> str:
    try:
        import fastexcel
    except ImportError as exc:  # polars' calamine engine is fastexcel
        raise PublishedError(path, "reading xlsx needs the 'fastexcel' package (polars calamine engine)") from exc
    try:
        names = list(fastexcel.read_excel(data).sheet_names)
    except Exception as exc:  # calamine raises its own error types for zip/xml damage
        raise PublishedError(path, f"is not a readable xlsx workbook ({type(exc).__name__}: {exc})") from exc
    matches = [n for n in names if n.strip().casefold() == "table p1"]
    if not matches:
        raise PublishedError(path, f"has no 'Table P1' sheet (sheets: {', '.join(names) or 'none'})")
    if len(matches) > 1:
        raise PublishedError(path, f"has more than one 'Table P1' sheet: {matches}")
    return matches[0]


def _load_sheet(data: bytes, sheet: str, path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_excel(io.BytesIO(data), sheet_name=sheet, engine="calamine", has_header=False, infer_schema_length=0)
    except Exception as exc:
        raise PublishedError(path, f"sheet {sheet!r} cannot be read ({type(exc).__name__}: {exc})") from exc
    # every cell as trimmed text; blank -> null
    cols = raw.columns
    raw = raw.select(
        [pl.col(c).cast(pl.Utf8).str.strip_chars().pipe(lambda e: pl.when(e.str.len_chars() > 0).then(e)).alias(f"c{i}") for i, c in enumerate(cols)]
    ).with_row_index("row")
    return raw


def _find_heading_row(raw: pl.DataFrame, path: Path) -> tuple[int, int]:
    """(row, column of 'Area Code'); 'Area Name' must be the next column."""
    width = raw.width - 1
    hits: list[tuple[int, int]] = []
    for j in range(width - 1):
        rows = raw.filter((pl.col(f"c{j}").str.to_lowercase() == "area code") & (pl.col(f"c{j + 1}").str.to_lowercase() == "area name"))["row"].to_list()
        hits.extend((r, j) for r in rows)
    if len(hits) != 1:
        what = "no" if not hits else f"{len(hits)}"
        raise PublishedError(path, f"Table P1 has {what} 'Area Code' / 'Area Name' heading row; expected exactly one")
    return hits[0]


def _min_row(rows: pl.Series) -> int:
    """The smallest row index in ROWS (a non-empty series of the sheet's row index)."""
    first = rows.min()
    assert isinstance(first, int)  # the row index is a whole number and ROWS is not empty
    return first


def read_pfa_table_p1(path: Path) -> pl.DataFrame:
    """One ONS PFA workbook -> tidy Table P1 frame (``PUBLISHED_SCHEMA``)."""
    path = Path(path)
    data = _read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    sheet = _p1_sheet_name(data, path)
    raw = _load_sheet(data, sheet, path)
    head_row, code_j = _find_heading_row(raw, path)
    name_j = code_j + 1
    code_c, name_c = f"c{code_j}", f"c{name_j}"
    value_js = [j for j in range(raw.width - 1) if j not in (code_j, name_j)]

    # --- title, period and the numbered notes under the table
    title_row, title = _title(raw, head_row, sheet, path)
    below = raw.filter(pl.col("row") > head_row)
    end_row = _table_end(raw, below, code_c)
    notes = {int(m.group(1)) for v in raw.filter(pl.col("row") >= end_row)[code_c].drop_nulls().to_list() if (m := _NOTE_RE.match(v))}
    period_start, period_end = _period_from_title(title, notes, path)

    # --- offence group of each value column; the rows of areas
    heading_block = raw.filter((pl.col("row") > title_row) & (pl.col("row") <= head_row))
    body = below.filter(pl.col("row") < end_row)
    headings = _offence_headings(heading_block, body, value_js, path)
    value_cells = [f"c{j}" for j in headings]
    areas = _area_rows(raw, body, code_c, name_c, value_cells, end_row, path)

    # --- wide -> long; parse the figures
    long = _figures(areas, headings, value_cells, path)
    return (
        long.sort("row", "col_order")
        .with_columns(
            pl.lit(period_start).alias("period_start"),
            pl.lit(period_end).alias("period_end"),
            pl.when(pl.col("marker")).then(None).otherwise(pl.col("value")).alias("value"),
            pl.lit(path.name).alias("source_file"),
            pl.lit(sha).alias("source_sha256"),
            pl.lit(TABLE).alias("table"),
        )
        .select(list(PUBLISHED_SCHEMA))
        .cast(pl.Schema(PUBLISHED_SCHEMA))
    )


def _title(raw: pl.DataFrame, head_row: int, sheet: str, path: Path) -> tuple[int, str]:
    """(row, text) of the 'Table P1: ... number of offences ...' title above the heading row."""
    above = raw.filter(pl.col("row") < head_row).drop("row").rows()
    titles = [(i, v) for i, r in enumerate(above) for v in r if v is not None and _TITLE_RE.match(v)]
    if not titles:
        raise PublishedError(path, f"sheet {sheet!r} has no 'Table P1: ...' title above the table")
    title_row, title = titles[0]
    if "number of offences" not in title.lower():
        raise PublishedError(path, f"the Table P1 title does not say it gives the number of offences: {title!r}")
    return title_row, title


def _table_end(raw: pl.DataFrame, below: pl.DataFrame, code_c: str) -> int:
    """The row after the table: the first 'Source:' line or numbered note in the code column (else the sheet's end)."""
    enders = below.filter(pl.col(code_c).str.to_lowercase().str.starts_with("source") | pl.col(code_c).str.contains(_NOTE_RE.pattern))["row"]
    return _min_row(enders) if enders.len() else raw.height


def _offence_headings(heading_block: pl.DataFrame, body: pl.DataFrame, value_js: list[int], path: Path) -> dict[int, str]:
    """Column -> offence group: the lowest heading cell above (and in) the heading row. A column with
    no heading is a spacer and must hold no numbers; period, percentage and repeated headings are refused."""
    headings: dict[int, str] = {}
    for j in value_js:
        cells = heading_block[f"c{j}"].drop_nulls()
        if cells.len():
            headings[j] = _clean_heading(cells[-1])
        else:
            numeric = body[f"c{j}"].str.replace_all(",", "").cast(pl.Float64, strict=False).drop_nulls()
            if numeric.len():
                raise PublishedError(path, f"Table P1 column {j + 1} holds numbers but has no heading")
    if not headings:
        raise PublishedError(path, "Table P1 has no offence-group columns")
    seen: dict[str, int] = {}
    for j, h in headings.items():
        if _NOT_A_COUNT_HEADING.search(h):
            raise PublishedError(path, f"Table P1 column heading {h!r} looks like a period or percentage column; this layout is not recognised")
        if h in seen:
            raise PublishedError(
                path, f"Table P1 has the offence heading {h!r} twice (columns {seen[h] + 1} and {j + 1}); a comparison-period layout is not recognised"
            )
        seen[h] = j
    return headings


def _area_rows(raw: pl.DataFrame, body: pl.DataFrame, code_c: str, name_c: str, value_cells: list[str], end_row: int, path: Path) -> pl.DataFrame:
    """The area rows with ``area_code`` and a clean ``area_name``. Unit rows (before the first area)
    must say Numbers; any other row with figures, or an area row after the notes, is refused."""
    has_values = pl.any_horizontal(pl.col(value_cells).is_not_null())
    is_area = pl.col(name_c).is_not_null() | pl.col(code_c).is_not_null()
    areas = body.filter(is_area)
    if areas.height == 0:
        raise PublishedError(path, "Table P1 has no area rows under the heading row")
    first_area = _min_row(areas["row"])
    units = body.filter(~is_area & has_values & (pl.col("row") < first_area))
    unit_texts = {v for c in value_cells for v in units[c].drop_nulls().to_list()}
    if any(u.lower() not in ("numbers", "number", "number of offences") for u in unit_texts):
        raise PublishedError(path, f"Table P1 unit row says {sorted(unit_texts)}, expected 'Numbers' (counts)")
    stray = body.filter(~is_area & has_values & (pl.col("row") > first_area))
    if stray.height:
        raise PublishedError(path, f"Table P1 has {stray.height} row(s) with figures but no area code or name")
    late = raw.filter((pl.col("row") >= end_row) & pl.col(name_c).is_not_null())
    if late.height:
        raise PublishedError(path, f"Table P1 has area rows after the notes ({late[name_c].to_list()[:3]})")

    areas = areas.with_columns(
        pl.col(code_c).alias("area_code"),
        pl.col(name_c).str.replace(_NAME_NOTE_RE, "").str.replace_all(r"\s+", " ").str.strip_chars().alias("area_name"),
    )
    bad = areas.filter(
        pl.col("area_name").is_null() | (pl.col("area_name") == "") | (pl.col("area_code").is_not_null() & ~pl.col("area_code").str.contains(_AREA_CODE_RE))
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise PublishedError(
            path, f"Table P1 area row with code {r['area_code']!r} and name {r[name_c]!r} is not a recognisable area (code like E23000014, and a name)"
        )
    return areas


def _figures(areas: pl.DataFrame, headings: dict[int, str], value_cells: list[str], path: Path) -> pl.DataFrame:
    """Area rows wide -> long (row, area, offence_group, col_order, cell, marker, value); every cell a
    whole number of offences or a not-available marker, each area once."""
    long = (
        areas.select(["row", "area_code", "area_name", *value_cells])
        .rename({f"c{j}": h for j, h in headings.items()})
        .unpivot(index=["row", "area_code", "area_name"], variable_name="offence_group", value_name="cell")
        .with_columns(
            pl.col("offence_group").replace_strict(list(headings.values()), list(range(len(headings)))).alias("col_order"),
            pl.col("cell").str.to_lowercase().is_in(NOT_AVAILABLE_MARKERS).alias("marker"),
            # plain numbers only (no 'nan' / 'inf'); thousands separators allowed
            pl.when(pl.col("cell").str.contains(r"^-?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?([eE][+-]?\d+)?$"))
            .then(pl.col("cell").str.replace_all(",", ""))
            .cast(pl.Float64)
            .alias("value"),
        )
    )
    problems = long.filter(
        pl.col("cell").is_null() | (~pl.col("marker") & pl.col("value").is_null()) | (pl.col("value") < 0) | (pl.col("value") != pl.col("value").round(0))
    )
    if problems.height:
        r = problems.row(0, named=True)
        what = "is empty" if r["cell"] is None else f"is {r['cell']!r}, not a whole number of offences"
        raise PublishedError(path, f"Table P1 {problems.height} figure(s) unusable; first: area {r['area_name']!r}, {r['offence_group']!r} {what}")

    dupes = long.filter(pl.struct("area_code", "area_name", "offence_group").is_duplicated())
    if dupes.height:
        r = dupes.row(0, named=True)
        raise PublishedError(path, f"Table P1 lists area {r['area_name']!r} ({r['area_code']}) more than once")
    codes = areas.filter(pl.col("area_code").is_not_null())["area_code"]
    if codes.is_duplicated().any():
        raise PublishedError(path, f"Table P1 lists area code {codes.filter(codes.is_duplicated())[0]} more than once")
    return long


def read_published_folder(folder: Path) -> pl.DataFrame:
    """Every ``*.xlsx`` workbook in ``folder`` (sorted by name) read with ``read_pfa_table_p1``, concatenated.

    Nothing is skipped: a workbook without a recognisable Table P1 raises, and so do two workbooks
    for the same period (e.g. an original and its correction side by side).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishedError(folder, "is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xlsx")
    if not files:
        raise PublishedError(folder, "holds no .xlsx workbooks")
    frames = [read_pfa_table_p1(p) for p in files]
    by_period: dict[tuple[str, str], str] = {}
    for p, f in zip(files, frames):
        key = (f["period_start"][0], f["period_end"][0])
        if key in by_period:
            raise PublishedError(folder, f"{by_period[key]} and {p.name} both give Table P1 for {key[0]}..{key[1]}; keep one of them")
        by_period[key] = p.name
    return pl.concat(frames, how="vertical")


# ---------------------------------------------------------------------------------------------------
# force id -> published area


@lru_cache(maxsize=8)
def _force_areas(path: str) -> dict[str, dict]:
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise PublishedError(p, "file not found") from exc
    except yaml.YAMLError as exc:
        raise PublishedError(p, f"not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "version" not in data or not isinstance(data.get("forces"), list):
        raise PublishedError(p, "expected a mapping with a 'version' and a 'forces' list")
    out: dict[str, dict] = {}
    for i, entry in enumerate(data["forces"]):
        fid = str((entry or {}).get("force_id") or "").strip()
        code = entry.get("area_code")
        name = str(entry.get("area_name") or "").strip()
        if not fid or not name:
            raise PublishedError(p, f"entry {i + 1} needs a force_id and an area_name")
        if fid in out:
            raise PublishedError(p, f"force_id '{fid}' is listed twice")
        if code is not None and not re.fullmatch(_AREA_CODE_RE, str(code)):
            raise PublishedError(p, f"force_id '{fid}': area_code '{code}' is not an ONS code like E23000014")
        out[fid] = {"force_id": fid, "area_code": None if code is None else str(code), "area_name": name}
    return out


def force_areas_path() -> Path:
    return contracts_dir() / "reference" / "force_areas.yaml"


def force_area(force_id: str) -> dict | None:
    """``{"force_id", "area_code", "area_name"}`` for a data.police.uk force id, or None if it is not listed.

    ``area_code`` is None for British Transport Police (P1 gives it no area code).
    """
    entry = _force_areas(str(force_areas_path())).get(str(force_id).strip())
    return dict(entry) if entry else None


def published_value(table: pl.DataFrame, force_id: str, offence_group: str, period_start: str, period_end: str) -> float | None:
    """The published figure for a force's area, offence group (as the table names it) and period.

    None when the table has no such row or shows a not-available marker. A force id that is not in
    ``force_areas.yaml`` raises, and so do two rows for the same figure that disagree.
    """
    area = force_area(force_id)
    if area is None:
        raise PublishedError(force_areas_path(), f"force id '{force_id}' is not listed")
    where = pl.col("area_code") == area["area_code"] if area["area_code"] else (pl.col("area_code").is_null() & (pl.col("area_name") == area["area_name"]))
    rows = table.filter(
        where
        & (pl.col("offence_group") == " ".join(str(offence_group).split()))
        & (pl.col("period_start") == str(Month.parse(period_start)))
        & (pl.col("period_end") == str(Month.parse(period_end)))
    )
    if rows.height == 0:
        return None
    values = rows["value"].unique()
    if values.len() > 1:
        raise PublishedError(
            ", ".join(sorted(set(rows["source_file"].to_list()))), f"disagree on {force_id} {offence_group!r} {period_start}..{period_end}: {values.to_list()}"
        )
    v = values[0]
    return None if v is None else float(v)
