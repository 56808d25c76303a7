"""Reading extract files: bytes -> a frame of text columns with a stable row number per row.

Every column is read as text (codes such as ``4.10`` or ``08`` must never become numbers); types are
checked and converted later against the contract. Accepted encodings: UTF-8 with or without a byte
order mark, and Windows-1252 (what a spreadsheet "Save as CSV" gives) - the latter only when the file
holds no UTF-8 text at all: a UTF-8 file with a broken byte is refused, not re-read as Windows-1252.
Line endings LF, CRLF or CR. Fields follow RFC 4180: a field in double quotes may hold commas, line
breaks and doubled quotes (``""``).

``row_number`` is the line number in the file where the row starts, counting the header as line 1,
so the first data row is 2 - the row number a spreadsheet shows. A row whose quoted field holds a line
break spans several lines; it is numbered by its first, and the rows after it keep their true line
numbers. Rows whose field count differs from the header are not guessed at: they come back separately
as `MalformedRow` so they can be quarantined whole.

Values arrive exactly or not at all: a file that cannot be read exactly (NUL bytes, broken UTF-8, a
quoted field that never closes, a lone CR in the middle of a row of an LF file, the wrong delimiter,
not a regular file, ...) fails as a whole with one `ExtractError` naming the rule and, where there is
one, the line.

A file larger than ``ETL_CHUNK_BYTES`` (`etl.core.chunks`) is read in chunks split at row boundaries,
with the same rows, row numbers, malformed rows and errors as this whole-file reading, in bounded memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from etl.errors import DataError

ROW_NUMBER = "row_number"

_LF, _CR, _QUOTE, _COMMA = 10, 13, 34, 44
_BOM = b"\xef\xbb\xbf"
_BLOCK_SIZE = 1 << 26  # pyarrow reads in blocks of this size; a longer record gets a larger block
_MAX_BLOCK_SIZE = (1 << 31) - 1
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
_UTF8_CHAR = re.compile("[^\x00-\x7f\udc80-\udcff]")  # a non-ASCII character that decoded from valid UTF-8
_SEPARATORS = ((";", "semicolons", "';'"), ("\t", "tabs", "tabs"), ("|", "vertical bars", "'|'"))


class ExtractError(DataError, ValueError):
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
    """One extract as read.

    ``encoding`` is ``utf-8``, ``utf-8-sig`` (UTF-8 with a byte order mark) or ``windows-1252``. The
    latter means the file held no UTF-8 text and was read as Windows-1252 (a spreadsheet's "Save as
    CSV"); the validation layer reports it as the warning check ``file.encoding``.
    """

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
    """Text of the file and the encoding it was in (raises `ExtractError` as `read_extract` does)."""
    raw, encoding = _to_utf8(data, path)
    return raw.decode("utf-8"), encoding


def read_extract(path: str | Path, data: bytes | None = None) -> RawExtract:
    """Read one CSV extract as text columns.

    Raises `ExtractError` for a file that is missing, not a regular file, unreadable, empty, has no
    data rows, cannot be decoded exactly, is not comma-separated, has a quoted field that never closes
    or whose header is unusable. A last line cut short (no final newline and too few fields) is a
    truncated file. Other rows with the wrong number of fields are returned in ``malformed``.

    A file (or ``data``) larger than ``ETL_CHUNK_BYTES`` comes back as an `etl.core.chunks.ChunkedExtract`:
    the same extract, its rows staged on disk chunk by chunk instead of held in memory.
    """
    from etl.core import chunks  # builds on this module

    path = Path(path)
    limit = chunks.chunk_bytes()
    if data is None:
        fd = _open_file(path)
        try:
            if os.fstat(fd).st_size > limit:
                return chunks.read_chunked(path, fd=fd, chunk=limit)
            held = [_read_fd(fd, path)]
        finally:
            os.close(fd)
    elif len(data) > limit:
        return chunks.read_chunked(path, data=data, chunk=limit)
    else:
        held = [data]
        del data
    return _read_whole(path, held)


def _read_whole(path: Path, held: list[bytes]) -> RawExtract:
    """`read_extract` of a file held in memory (passed in a list it takes it from, so that its bytes
    are freed once converted to UTF-8)."""
    data = held.pop()
    digest = sha256_of(data)
    if not data or data.isspace():
        raise ExtractError(path, "empty_file", "is empty (no header and no rows)")
    raw, encoding = _to_utf8(data, path)
    del data
    if _NOT_SPACE.search(raw) is None:
        raise ExtractError(path, "empty_file", "is empty (no header and no rows)")

    layout = _Layout(raw, path)
    if layout.stray is not None:
        raise layout.stray
    header_text = raw[: layout.rec_end[0]].decode("utf-8")
    header = _parse_header(header_text, path)
    body_at = layout.body_at
    if _NOT_SPACE.search(memoryview(raw)[body_at:]) is None:
        raise ExtractError(path, "empty_file", "has a header but no data rows")
    ends_with_newline = raw.endswith((b"\n", b"\r"))

    frame, malformed, physical = _parse_records(raw, body_at, layout, header, path)
    if not ends_with_newline and malformed:
        _refuse_truncated(path, malformed[-1], int(physical[-1]))
    if frame.height == 0 and not malformed:
        raise ExtractError(path, "empty_file", "has a header but no data rows")
    return RawExtract(path, digest, encoding, header, frame, malformed, ends_with_newline)


def _parse_records(
    raw: bytes, body_at: int, layout: _Layout, header: list[str], path: Path, keep_bom: bool = False
) -> tuple[pl.DataFrame, list[MalformedRow], np.ndarray]:
    """The records of ``raw[body_at:layout.end]`` parsed into trimmed text columns numbered by their line, the
    malformed rows (wrong field count; a line of spaces is blank, not a row) and every record's line.

    pyarrow drops a byte order mark at the start of what it parses; ``keep_bom`` keeps one there as text
    (a chunk of a file that starts with U+FEFF in the middle of the file's body)."""
    body = pa.py_buffer(raw).slice(body_at, layout.end - body_at)
    if keep_bom and raw.startswith(_BOM, body_at):
        body = pa.py_buffer(b"\n" + raw[body_at : layout.end])  # an empty line first: skipped, not numbered
    invalid: list[MalformedRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        number = -1 if row.number is None else int(row.number)
        invalid.append(MalformedRow(number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=layout.block_size, column_names=header),
            parse_options=pacsv.ParseOptions(
                # Only a file whose quoted fields hold line breaks needs the slower quote-aware block splitting.
                newlines_in_values=layout.multiline,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowException as exc:
        raise ExtractError(path, "unreadable", _arrow_message(exc, layout)) from exc

    # pyarrow numbers the records among non-empty ones (the first data record = 1); map them to the
    # physical line each record starts on.
    physical = layout.body_lines()
    if any(not 1 <= m.row_number <= len(physical) for m in invalid) or len(physical) != table.num_rows + len(invalid):
        raise ExtractError(  # pragma: no cover - a reader invariant, not a data problem
            path, "unreadable", f"could not number its rows ({len(physical)} records, {table.num_rows + len(invalid)} rows read)"
        )
    invalid = [MalformedRow(int(physical[m.row_number - 1]), m.expected_fields, m.actual_fields, m.text) for m in invalid]
    malformed = [m for m in invalid if m.text.strip() != ""]  # a line of spaces is blank, not a row
    skipped = np.array(sorted(m.row_number for m in invalid), dtype=np.int64)
    row_numbers = np.setdiff1d(physical, skipped, assume_unique=True) if len(skipped) else physical
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.Series(ROW_NUMBER, row_numbers, dtype=pl.Int64)).with_columns([pl.col(c).str.strip_chars().replace("", None) for c in header])
    return frame, malformed, physical


def _refuse_truncated(path: Path, last: MalformedRow, last_line: int) -> None:
    """A file without a final newline whose last record is a malformed row with too few fields was cut off."""
    if last.row_number == last_line and last.actual_fields < last.expected_fields:
        raise ExtractError(
            path,
            "truncated_file",
            f"looks truncated: the last line ({last.row_number}) ends without a newline and has "
            f"{last.actual_fields} of {last.expected_fields} fields; the export was probably cut off",
        )


# --- the file itself ------------------------------------------------------------------------------


def _os_reason(exc: OSError) -> str:
    words = exc.strerror or type(exc).__name__
    return words[:1].lower() + words[1:]


def kind_of(mode: int) -> str:
    """What a file system entry of this mode is, in words ("a folder", "a named pipe (FIFO)" ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _not_a_file(path: Path, mode: int) -> ExtractError:
    link = " (through a symbolic link)" if path.is_symlink() else ""
    return ExtractError(path, "not_a_file", f"is {kind_of(mode)}{link}, not a regular file; expected a CSV file")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; anything but a readable regular file is an `ExtractError` (never a hang)."""
    fd = _open_file(path)
    try:
        return _read_fd(fd, path)
    finally:
        os.close(fd)


def _open_file(path: Path) -> int:
    """An open descriptor of the regular file at ``path`` (the caller closes it); anything but a readable
    regular file is an `ExtractError` (never a hang)."""
    try:
        mode = os.stat(path).st_mode  # before opening: opening a FIFO would block
    except (FileNotFoundError, NotADirectoryError) as exc:
        if os.path.islink(path):
            raise ExtractError(path, "broken_link", "is a symbolic link to a file that does not exist") from exc
        raise ExtractError(path, "missing_file", "file not found") from exc
    except PermissionError as exc:
        raise ExtractError(path, "unreadable_file", "cannot be read: permission denied") from exc
    except (OSError, ValueError) as exc:  # too many links, name too long, NUL in the name, ...
        reason = _os_reason(exc) if isinstance(exc, OSError) else "the path is not valid"
        raise ExtractError(path, "unreadable_file", f"cannot be read: {reason}") from exc
    if not stat.S_ISREG(mode):
        raise _not_a_file(path, mode)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the check, opening it still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise ExtractError(path, "missing_file", "file not found") from exc
    except PermissionError as exc:
        raise ExtractError(path, "unreadable_file", "cannot be read: permission denied") from exc
    except OSError as exc:
        raise ExtractError(path, "unreadable_file", f"cannot be read: {_os_reason(exc)}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_a_file(path, mode)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise _read_error(path, exc) from exc
        raise
    return fd


def _read_error(path: Path | str, exc: OSError) -> ExtractError:
    if isinstance(exc, PermissionError):
        return ExtractError(path, "unreadable_file", "cannot be read: permission denied")
    return ExtractError(path, "unreadable_file", f"cannot be read: {_os_reason(exc)}")


def _read_fd(fd: int, path: Path) -> bytes:
    """Every byte of an open file (from its current position)."""
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise _read_error(path, exc) from exc


# --- encoding -------------------------------------------------------------------------------------


def _line_and_column(data: bytes, pos: int) -> tuple[int, int]:
    """1-based line (LF, CRLF or CR ends a line) and byte column of byte offset ``pos``."""
    line = data.count(b"\n", 0, pos) + data.count(b"\r", 0, pos) - data.count(b"\r\n", 0, pos) + 1
    start = max(data.rfind(b"\n", 0, pos), data.rfind(b"\r", 0, pos)) + 1
    return line, pos - start + 1


def _to_utf8(data: bytes, path: Path | str) -> tuple[bytes, str]:
    """The file as UTF-8 bytes without a byte order mark, and the encoding it was in."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError(path, "encoding", "is UTF-16; save it as UTF-8 or Windows-1252 CSV")
    nul = data.find(b"\x00")
    if nul >= 0:
        line, _ = _line_and_column(data, nul)
        raise ExtractError(path, "encoding", f"line {line} contains a NUL byte (\\x00): not a plain text CSV; nothing was loaded")
    bom = data.startswith(_BOM)
    raw = data[3:] if bom else data
    try:
        raw.decode("utf-8")
        return raw, "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        bad = exc.start
    if bom or not raw[:bad].isascii() or _UTF8_CHAR.search(raw[bad:].decode("utf-8", "surrogateescape")):
        # The file holds UTF-8 text, so it is UTF-8 with broken bytes: reading it as Windows-1252 would
        # turn every accented letter into two wrong ones.
        line, col = _line_and_column(raw, bad)
        raise ExtractError(
            path,
            "encoding",
            f"is UTF-8 with a broken byte: line {line}, byte {col} is not valid UTF-8 (the file mixes UTF-8 with "
            "another encoding); save it again as UTF-8 CSV; nothing was loaded",
        )
    try:
        return raw.decode("cp1252").encode("utf-8"), "windows-1252"
    except UnicodeDecodeError as exc:
        line, col = _line_and_column(raw, exc.start)
        raise ExtractError(
            path,
            "encoding",
            f"is neither UTF-8 nor Windows-1252: line {line}, byte {col} is not a character in either; nothing was loaded",
        ) from exc


# --- lines, quotes and records ---------------------------------------------------------------------


class _Layout:
    """Where the lines and the records (CSV rows, which a quoted line break can spread over several
    lines) of UTF-8 bytes are, computed with numpy over the whole buffer.

    Record 0 is the header. ``rec_start``/``rec_end``: byte range of each record without its line end;
    ``rec_line``: the physical line each record starts on.

    For the chunked reader (`etl.core.chunks`) the buffer can be a piece of a file that starts at a row
    boundary: ``first_line`` is the line it starts on, ``header`` whether it starts with the header,
    ``cr_file``/``mixed`` what the whole file's line ends are (see `_stray_line_break`). A piece that is
    not ``final`` ends at ``end``, its last line end outside quoted fields (the rest belongs to the next
    piece; 0: none yet), and a quoted field still open at its end is not an error: ``unclosed`` is where
    it opens. Lines and records are then those before ``end``.
    """

    def __init__(
        self,
        raw: bytes,
        path: Path | str,
        *,
        header: bool = True,
        final: bool = True,
        first_line: int = 1,
        cr_file: bool | None = None,
        mixed: bool | None = None,
    ):
        buf = np.frombuffer(raw, dtype=np.uint8)
        n = len(buf)
        self.first_line = first_line
        self.header = header
        starts, ends = _line_ends(buf, raw)
        self.unclosed: int | None = None
        quoted = _quoted_spans(buf, raw)
        if quoted is None:
            out = np.arange(len(ends))
            inside = None
        else:
            edges, unclosed = quoted
            if unclosed is not None and final:
                raise ExtractError(
                    path,
                    "unreadable",
                    f'has a quoted field that opens on line {first_line - 1 + _line_number(ends, unclosed)} and never closes (an unmatched " character): '
                    "a quote is missing or the file was cut off; nothing was loaded",
                )
            self.unclosed = unclosed
            # A line end is inside a quoted field when an odd number of opening/closing quotes precede it.
            inside = (np.searchsorted(edges, starts) & 1).astype(bool)
            out = np.flatnonzero(~inside)
        if final:
            self.end = n
        else:
            # The last row boundary before the buffer's last byte: the byte after a line end tells whether
            # it is whole (a CR may be the first half of a CRLF) and whether it is a stray line break.
            bounds = out[ends[out] < n]
            self.end = int(ends[bounds[-1]]) if len(bounds) else 0
        k = int(np.searchsorted(ends, self.end, side="right"))  # line ends before the piece's end
        self.all_line_ends = ends
        self.line_ends = ends[:k]
        self.multiline = bool(inside is not None and inside[:k].any())
        if cr_file is None:  # the header's line end sets the file's kind
            cr_file = bool(len(out) and ends[out[0]] - starts[out[0]] == 1 and buf[starts[out[0]]] == _CR)
        self.cr_file = cr_file
        if mixed is None:
            mixed = raw.find(b"\r") >= 0 and raw.find(b"\n") >= 0
        out = out[: int(np.searchsorted(out, k))]
        self.stray = _stray_line_break(buf, starts[out], ends[out], out, path, cr_file, first_line) if mixed else None
        self.rec_start = np.concatenate(([0], ends[out])).astype(np.int64)
        self.rec_end = np.concatenate((starts[out], [self.end])).astype(np.int64)
        self.rec_line = np.concatenate(([first_line], out + first_line + 1)).astype(np.int64)
        if len(self.rec_start) > 1 and self.rec_start[-1] == self.end:  # nothing after the last line end
            self.rec_start, self.rec_end, self.rec_line = self.rec_start[:-1], self.rec_end[:-1], self.rec_line[:-1]
        longest = int((self.rec_end - self.rec_start).max())
        self.block_size = _BLOCK_SIZE if 2 * longest + 2 < _BLOCK_SIZE else min(_MAX_BLOCK_SIZE, 2 * longest + 2)

    @property
    def body_at(self) -> int:
        """Where the records after the header start (the piece's end when there are none)."""
        if not self.header:
            return 0
        return int(self.rec_start[1]) if len(self.rec_start) > 1 else self.end

    def body_lines(self) -> np.ndarray:
        """Start line of every non-empty record after the header (pyarrow skips empty lines)."""
        first = 1 if self.header else 0
        keep = self.rec_end[first:] > self.rec_start[first:]
        return self.rec_line[first:][keep]

    def line_of(self, offset: int) -> int:
        return self.first_line - 1 + _line_number(self.all_line_ends, offset)


def _line_number(line_ends: np.ndarray, offset: int) -> int:
    """1-based line of a byte offset, given the (exclusive) end offsets of the line ends before it."""
    return int(np.searchsorted(line_ends, offset, side="right")) + 1


def _line_ends(buf: np.ndarray, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) end offsets of every line end (LF, CRLF or a lone CR), in order."""
    lf = np.flatnonzero(buf == _LF)
    if raw.find(b"\r") < 0:
        return lf, lf + 1
    cr = np.flatnonzero(buf == _CR)
    after = np.minimum(cr + 1, len(buf) - 1)
    lone_cr = cr[(cr + 1 >= len(buf)) | (buf[after] != _LF)]
    lf_start = np.where((lf > 0) & (buf[np.maximum(lf - 1, 0)] == _CR), lf - 1, lf)
    starts = np.concatenate((lf_start, lone_cr))
    ends = np.concatenate((lf + 1, lone_cr + 1))
    order = np.argsort(ends, kind="stable")
    return starts[order], ends[order]


def _stray_line_break(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, index: np.ndarray, path: Path | str, cr_file: bool, first_line: int = 1
) -> ExtractError | None:
    """The error for a line break of the other kind in the middle of a row (None: there is none).

    The header's line end sets the file's kind (``cr_file``): LF (or CRLF), or CR alone (old Mac exports). A CR alone in
    an LF file (or an LF alone in a CR file) outside quotes, with more of the row after it, is a stray
    character, yet every CSV reader (pyarrow too) breaks the row there: its values would be cut in two and
    the second part could load as a row of its own. One just before a line end (``\\r\\r\\n``) only
    makes an empty line and is harmless. ``starts``/``ends``: the line ends outside quoted fields;
    ``index``: their positions among all line ends (the first on line ``first_line``).
    """
    n = len(buf)
    if len(starts) == 0:
        return None
    stray_byte, words, file_words = (_LF, "line feed (\\n)", "carriage returns") if cr_file else (_CR, "carriage return (\\r)", "line feeds")
    lone = (ends - starts == 1) & (buf[starts] == stray_byte) & (ends < n)
    if not lone.any():
        return None
    after = buf[np.minimum(ends, n - 1)]
    stray = np.flatnonzero(lone & (after != _LF) & (after != _CR))
    if not len(stray):
        return None
    line = int(index[stray[0]]) + first_line
    return ExtractError(
        path,
        "unreadable",
        f"has a {words} alone inside line {line} while its lines end with {file_words}: the row would "
        "be split in two there; remove the character or quote the field; nothing was loaded",
    )


def _quoted_spans(buf: np.ndarray, raw: bytes) -> tuple[np.ndarray, int | None] | None:
    """Offsets of the quotes that open or close a quoted field, in order (opening, closing, opening, ...),
    and the offset of an opening quote that never closes (or None). None: the file has no quote at all.

    A quote opens a quoted field only at the start of a field; inside one, ``""`` is a literal quote and
    a single quote closes it; elsewhere a quote is an ordinary character (as pyarrow parses). The usual
    case is vectorised: when every other quote (the 1st, 3rd, ...) starts a field, quotes simply
    alternate between opening and closing (a doubled quote closes and at once reopens). Otherwise (a
    quote inside an unquoted field, such as 12" in a description) the quotes are walked one by one.
    """
    if raw.find(b'"') < 0:
        return None
    quotes = np.flatnonzero(buf == _QUOTE)
    opens = quotes[0::2]
    before = buf[np.maximum(opens - 1, 0)]
    at_field_start = (opens == 0) | (before == _COMMA) | (before == _LF) | (before == _CR) | (before == _QUOTE)
    edges = quotes if at_field_start.all() else _walk_quotes(buf, quotes)
    return edges, (int(edges[-1]) if len(edges) % 2 else None)


def _walk_quotes(buf: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """The opening and closing quotes when some quotes are ordinary characters (in an unquoted field).

    Between two such literal quotes the quotes alternate opening/closing, so the walk jumps from one
    literal quote to the next (found with a binary search among the quotes not at a field start whose
    position in the alternation would make them an opening quote), not quote by quote. A run of quotes
    right after a literal quote is literal too (``x""`` is three characters of an unquoted field).
    """
    before = buf[np.maximum(quotes - 1, 0)]
    start = (quotes == 0) | (before == _COMMA) | (before == _LF) | (before == _CR) | (before == _QUOTE)
    not_start = np.flatnonzero(~start)
    candidates = (not_start[not_start % 2 == 0], not_start[not_start % 2 == 1])
    n = len(quotes)
    literal = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        # quote i is outside any quoted field: the quotes from i alternate opening/closing until a would-be
        # opening quote (same parity as i) that is not at a field start
        bad = candidates[i % 2]
        k = int(np.searchsorted(bad, i))
        if k == len(bad):
            break
        j = int(bad[k])
        end = j + 1
        while end < n and quotes[end] == quotes[end - 1] + 1:
            end += 1
        literal[j:end] = True
        i = end
    return quotes[~literal]


def _arrow_message(exc: Exception, layout: _Layout) -> str:
    """Plain words for a pyarrow parse failure (its own message can quote the row's values)."""
    text = str(exc)
    if "straddl" in text or "block" in text:
        return "could not be read as CSV: a row is longer than the reader can hold; nothing was loaded"
    found = re.search(r"Row #(\d+)", text)
    if found:
        body = layout.body_lines()
        k = int(found.group(1))
        if 1 <= k <= len(body):
            return f"could not be read as CSV: the parser failed on line {int(body[k - 1])}; nothing was loaded"
    return "could not be read as CSV: the parser failed; nothing was loaded"


# --- header ---------------------------------------------------------------------------------------


def _parse_header(text: str, path: Path) -> list[str]:
    if '"' in text:
        limit = csv.field_size_limit()
        if len(text) >= limit:  # the csv module refuses fields longer than its limit (131072 by default)
            csv.field_size_limit(len(text) + 1)
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise ExtractError(path, "bad_header", f"has a header row (line 1) that cannot be parsed as CSV ({exc})") from exc
        if len(rows) > 1:  # pragma: no cover - the header is one record by construction
            raise ExtractError(path, "bad_header", "has a header row (line 1) that cannot be parsed as CSV")
        fields = rows[0] if rows else []
    else:
        fields = text.split(",")
    fields = [f.strip() for f in fields]
    if not any(fields):
        if text.strip():
            raise ExtractError(path, "bad_header", "has no column names in its header row (line 1 holds only commas or blanks)")
        raise ExtractError(path, "bad_header", "has an empty first line; expected a header row of column names")
    if len(fields) == 1:
        counts = [(fields[0].count(sep), sep, words, shown) for sep, words, shown in _SEPARATORS]
        n, sep, words, shown = max(counts, key=lambda c: c[0])
        if n:
            raise ExtractError(
                path,
                "delimiter",
                f"is separated by {words}, not commas: export it as comma-separated CSV (the header has {n + 1} fields when split on {shown})",
            )
    dupes = sorted({f for f in fields if fields.count(f) > 1})
    if dupes:
        raise ExtractError(path, "bad_header", f"has duplicate column names in its header: {', '.join(dupes)}")
    if "" in fields:
        raise ExtractError(path, "bad_header", f"has an unnamed column (column {fields.index('') + 1}) in its header")
    if ROW_NUMBER in fields:
        raise ExtractError(path, "bad_header", f"has a column named {ROW_NUMBER}, a name the loader keeps for its own row numbers")
    return fields
