"""Safe exports: what every CSV this project writes goes through.

``csv_safe(frame)`` neutralises CSV (formula) injection, following the OWASP guidance: a spreadsheet
opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return
before one) as a formula, e.g. ``=HYPERLINK("http://...")``. Every text cell starting with one of
those characters gets a single quote ``'`` in front, so it is shown as text. Numeric, date and boolean
columns are left as they are (a negative number stays a number). Use it for every CSV written for
people: the report CSVs (`write_csv`, for `etl.reporting.csv_tables`) and ``etl measures --format csv``.

``classified_columns()`` names the columns that any contract classifies as identifier, personal,
sensitive or restricted; `classified_in(frame)` lists such columns of a frame, so a writer can refuse
to put one in a report or an export (reports show aggregate figures only, never a classified column).

``write_csv(path, frame)`` does both for a report CSV, and ``write_text`` writes any report file
atomically (a temporary file renamed over the target: a reader never sees half a file).

One reason to change: what makes a file this project writes for people safe.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from etl.reporting.errors import ReportError

# Characters a spreadsheet takes as the start of a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_PATTERN = r"^[=+\-@\t\r]"
# A signed number as text ("-5%", "+1.2", "-1,234.5 per 1,000" is not one) cannot run as a formula:
# left as it is, so a report's displayed changes read as numbers.
_SIGNED_NUMBER = r"^[+-]\d[\d,]*(\.\d+)?%?$"


def _text_columns(frame: pl.DataFrame) -> list[str]:
    return [name for name, dtype in frame.schema.items() if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))]


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every text cell that starts with ``= + - @``, a tab or a carriage return prefixed
    by a single quote ``'`` (a signed number written as text, e.g. ``-5%``, is left as it is: it cannot
    run as a formula); other columns (numbers, dates, booleans) and other cells unchanged.

    Categorical and enum columns come back as text (their values may gain the quote). Null stays null.
    """
    text = _text_columns(frame)
    if not text:
        return frame
    return frame.with_columns(
        [
            pl.when(pl.col(c).cast(pl.String).str.contains(_FORMULA_PATTERN) & ~pl.col(c).cast(pl.String).str.contains(_SIGNED_NUMBER))
            .then(pl.lit("'") + pl.col(c).cast(pl.String))
            .otherwise(pl.col(c).cast(pl.String))
            .alias(c)
            for c in text
        ]
    )


def write_csv_safe(frame: pl.DataFrame) -> str:
    """The frame as CSV text, formula injection neutralised (`csv_safe`)."""
    return csv_safe(frame).write_csv()


def usable_contracts() -> list:
    """Every contract in the contracts directory that parses (a broken one fails its own load, with its
    own message; it must not stop a report or an export)."""
    from etl.core.contracts import ContractError, load_contract
    from etl.core.reference import contracts_dir

    found = []
    for path in sorted(contracts_dir().glob("*.yaml")):
        try:
            found.append(load_contract(path.stem))
        except ContractError:
            continue
    return found


def classified_columns() -> frozenset[str]:
    """Names (warehouse and file names) of every column a contract classifies as identifier, personal,
    sensitive or restricted."""
    names: set[str] = set()
    for contract in usable_contracts():
        for c in contract.columns:
            if c.personal:
                names.update((c.name, c.source_name))
    return frozenset(names)


def classified_in(frame: pl.DataFrame) -> list[str]:
    """The frame's columns that a contract classifies (see `classified_columns`), in frame order."""
    hidden = classified_columns()
    return [c for c in frame.columns if c in hidden]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8, ``\\n`` line ends as given, mode 0644) through a temporary file renamed over it."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0644) through a temporary file renamed over it: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: Path, frame: pl.DataFrame) -> None:
    """Write a report CSV: never a classified column, text cells safe from formula injection (`csv_safe`)."""
    classified = classified_in(frame)
    if classified:  # a programming error, not a data problem: the report frames have fixed columns
        raise ReportError(f"{path.name}: refusing to write column(s) {', '.join(classified)}, classified as personal or identifying in a contract")
    write_text(path, write_csv_safe(frame))


__all__ = ["FORMULA_START", "classified_columns", "classified_in", "csv_safe", "usable_contracts", "write_csv", "write_csv_safe", "write_text"]
