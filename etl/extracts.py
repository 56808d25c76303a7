"""Reading extract files: bytes -> a frame of text columns with a stable row number per row.

Every column is read as text (codes such as ``4.10`` or ``08`` must never become numbers); types are
checked and converted later against the contract. Accepted encodings: UTF-8 with or without a byte
order mark, and Windows-1252 (what a spreadsheet "Save as CSV" gives). Line endings LF, CRLF or CR.

``row_number`` is the row's line number in the file, counting the header as line 1, so the first data
row is 2 - the row number a spreadsheet shows. Rows whose field count differs from the header are
not guessed at: they come back separately as `MalformedRow` so they can be quarantined whole.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

ROW_NUMBER = "row_number"


class ExtractError(ValueError):
    """The file as a whole cannot be read; ``reason`` is a short rule id, the message plain words."""

    def __init__(self, path: Path | str, reason: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MalformedRow:
    row_number: int
    expected_fields: int
    actual_fields: int
    text: str


@dataclass
class RawExtract:
    path: Path
    sha256: str
    encoding: str
    header: list[str]
    frame: pl.DataFrame  # text columns named as in the header, plus row_number (Int64)
    malformed: list[MalformedRow] = field(default_factory=list)
    ends_with_newline: bool = True

    @property
    def rows_in(self) -> int:
        return self.frame.height + len(self.malformed)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, path: Path | str) -> tuple[str, str]:
    """Text of the file and the encoding it was in."""
    if b"\x00" in data[:65536]:
        raise ExtractError(path, "encoding", "is not a text file (it contains NUL bytes); expected a CSV export")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ExtractError(path, "encoding", f"starts with a UTF-8 byte order mark but byte {exc.start + 3} is not UTF-8") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError(path, "encoding", "is UTF-16; save it as UTF-8 or Windows-1252 CSV")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError as exc:
        raise ExtractError(path, "encoding", f"is neither UTF-8 nor Windows-1252 (byte {exc.start} cannot be decoded)") from exc


def _split_header(text: str) -> tuple[str, str]:
    """First line and the rest, with line endings normalised to LF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first, _, rest = text.partition("\n")
    return first, rest


def read_extract(path: str | Path, data: bytes | None = None) -> RawExtract:
    """Read one CSV extract as text columns.

    Raises `ExtractError` for a file that is missing, empty, has no data rows, cannot be decoded,
    or whose header is unusable. A last line cut short (no final newline and too few fields) is a
    truncated file. Other rows with the wrong number of fields are returned in ``malformed``.
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ExtractError(path, "missing_file", "file not found") from exc
    digest = sha256_of(data)
    if not data.strip():
        raise ExtractError(path, "empty_file", "is empty (no header and no rows)")
    text, encoding = decode(data, path)
    if encoding == "utf-8" and b"\r" not in data:
        # Already UTF-8 with LF line ends: parse the bytes as they are (no normalising copy).
        first, _, rest = data.partition(b"\n")
        header_line = first.decode("utf-8")
        has_rows = bool(rest.strip())
        ends_with_newline = data.endswith(b"\n")
        raw = data
    else:
        header_line, body = _split_header(text)
        has_rows = bool(body.strip())
        ends_with_newline = body.endswith("\n")
        raw = (header_line + "\n" + body).encode("utf-8")
    del text
    header = next(iter(_parse_header(header_line, path)))
    if not has_rows:
        raise ExtractError(path, "empty_file", "has a header but no data rows")

    invalid: list[MalformedRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(MalformedRow(int(row.number), row.expected_columns, row.actual_columns, row.text))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(raw),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 26),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            null_values=[""],
        ),
    )
    # pyarrow numbers rows among non-empty lines (header = 1); map them to physical line numbers.
    physical = _non_empty_line_numbers(raw)
    invalid = [MalformedRow(int(physical[m.row_number - 1]), m.expected_fields, m.actual_fields, m.text) for m in invalid]
    malformed = [m for m in invalid if m.text.strip() != ""]  # a line of spaces is blank, not a row
    last_line = int(physical[-1])
    if not ends_with_newline and malformed and malformed[-1].row_number == last_line:
        cut = malformed[-1]
        raise ExtractError(
            path,
            "truncated_file",
            f"looks truncated: the last line ({cut.row_number}) ends without a newline and has "
            f"{cut.actual_fields} of {cut.expected_fields} fields; the export was probably cut off",
        )
    skipped = np.array(sorted(m.row_number for m in invalid), dtype=np.int64)
    row_numbers = np.setdiff1d(physical[1:], skipped, assume_unique=True)
    if len(row_numbers) != table.num_rows:  # pragma: no cover - a reader invariant, not a data problem
        raise ExtractError(path, "unreadable", f"could not number its rows ({len(row_numbers)} lines, {table.num_rows} rows)")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.Series(ROW_NUMBER, row_numbers)).with_columns(
        [pl.col(c).str.strip_chars().replace("", None) for c in header]
    )
    if frame.height == 0 and not malformed:
        raise ExtractError(path, "empty_file", "has a header but no data rows")
    return RawExtract(path, digest, encoding, header, frame, malformed, ends_with_newline)


def _parse_header(line: str, path: Path) -> list[list[str]]:
    import csv

    fields = next(csv.reader([line]))
    fields = [f.strip() for f in fields]
    if not any(fields):
        raise ExtractError(path, "bad_header", "has an empty first line; expected a header row of column names")
    dupes = sorted({f for f in fields if fields.count(f) > 1})
    if dupes:
        raise ExtractError(path, "bad_header", f"has duplicate column names in its header: {', '.join(dupes)}")
    if "" in fields:
        raise ExtractError(path, "bad_header", f"has an unnamed column (column {fields.index('') + 1}) in its header")
    return [fields]


def _non_empty_line_numbers(raw: bytes) -> np.ndarray:
    """1-based physical line numbers of the non-empty lines of LF-separated bytes."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(ends) == 0 or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))  # last line has no newline
    starts = np.concatenate(([0], ends[:-1] + 1))
    return (np.flatnonzero(ends > starts) + 1).astype(np.int64)
