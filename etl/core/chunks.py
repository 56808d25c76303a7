"""Reading a large extract in chunks: bounded memory, exactly the result of reading it whole.

A file larger than ``ETL_CHUNK_BYTES`` (default 64 MiB; a number of bytes, or with a K, M or G suffix) is
read by `read_chunked` instead of in one piece (`etl.core.extracts.read_extract` decides), in two passes
over the file, a block at a time:

1. the bytes are hashed (sha256) and their encoding decided as for a whole file - empty, UTF-16, a NUL
   byte, UTF-8 with or without a byte order mark, UTF-8 with a broken byte (the file holds UTF-8 text
   somewhere), Windows-1252, neither - with the same messages, lines and columns;
2. the text is cut into chunks at row boundaries: a line end outside quoted fields. Each chunk starts at
   a row boundary, so the quote state inside it is the whole file's; a CR ending a block is never taken
   as a line end before the next byte is seen (it may be half of a CRLF). Each chunk is parsed as the
   whole-file reader parses a file (`etl.core.extracts`): the same rows, row numbers (the line a row
   starts on, counted from the start of the file), trimming and malformed rows. Its rows are staged as
   a Parquet file (`etl.core.staging`); the chunk is then freed.

A row longer than a chunk makes its chunk grow until the row fits (a quoted field that never closes is
refused as soon as no quote follows it in the file). A file that fails keeps the whole-file order of
verdicts: a quoted field that never closes (known at the end of the file) comes before a stray line
break, which comes before a header problem or a parser error, then the truncated last line and "no data
rows". The file is checked not to change between the two passes (size and modification time).

`ChunkedExtract` is a `RawExtract` whose rows stay on disk: validation reads them chunk by chunk
(`etl.core.validation`); its ``frame`` and ``malformed`` read them all into memory (for small files and
tests). The text of a malformed row is not kept (it is never loaded nor shown).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from etl.core import staging
from etl.core.extracts import (
    _BOM,
    _NOT_SPACE,
    _UTF8_CHAR,
    ROW_NUMBER,
    ExtractError,
    MalformedRow,
    RawExtract,
    _Layout,
    _parse_header,
    _parse_records,
    _read_error,
    _refuse_truncated,
)
from etl.errors import ConfigError

CHUNK_ENV = "ETL_CHUNK_BYTES"
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
SCAN_BLOCK_MIN = 1 << 16  # the first pass reads at least this much at a time
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE = re.compile(r"^(\d+)\s*([KMG]?)(?:I?B)?$", re.IGNORECASE)
_NOT_ASCII = re.compile(rb"[\x80-\xff]")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")  # bytes Windows-1252 has no character for


def chunk_bytes() -> int:
    """Files larger than this many bytes are read in chunks of about this size (``ETL_CHUNK_BYTES``)."""
    text = os.environ.get(CHUNK_ENV, "").strip()
    if not text:
        return DEFAULT_CHUNK_BYTES
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"{CHUNK_ENV} must be a number of bytes, e.g. 67108864 or 64M (it is set to {text!r})")
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 1:
        raise ConfigError(f"{CHUNK_ENV} must be at least 1 byte")
    return value


# --- the file, a block at a time -------------------------------------------------------------------


class _Source:
    """The bytes of an open file (read with pread, the descriptor's position untouched) or held in memory."""

    def __init__(self, path: Path, fd: int | None, data: bytes | None):
        self.path, self.fd, self.data = path, fd, data
        self.size = len(data) if data is not None else os.fstat(fd).st_size  # type: ignore[arg-type]
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[int, int] | None:
        if self.fd is None:
            return None
        st = os.fstat(self.fd)
        return st.st_size, st.st_mtime_ns

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[offset : offset + n]
        parts, got = [], 0
        try:
            while got < n:
                b = os.pread(self.fd, n - got, offset + got)  # type: ignore[arg-type]
                if not b:
                    break
                parts.append(b)
                got += len(b)
        except OSError as exc:
            raise _read_error(self.path, exc) from exc
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def blocks(self, start: int, end: int, size: int) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of ``start`` .. ``end`` in blocks of ``size``."""
        pos = start
        while pos < end:
            b = self.read(pos, min(size, end - pos))
            if not b:
                raise self.changed()
            yield pos, b
            pos += len(b)

    def changed(self) -> ExtractError:
        return ExtractError(self.path, "unreadable_file", "changed while it was being read; nothing was loaded")

    def check_unchanged(self) -> None:
        if self._stamp() != self.stamp:
            raise self.changed()


@dataclass
class _Facts:
    """What the first pass learns about the whole file."""

    sha256: str
    encoding: str
    bom: bool
    ends_with_newline: bool
    mixed: bool  # the file holds both CR and LF bytes (a stray line break is then possible)


def _line_and_column(src: _Source, base: int, pos: int, block: int) -> tuple[int, int]:
    """`etl.core.extracts._line_and_column` of the bytes from ``base``, at ``base + pos``, a block at a time."""
    lf = cr = crlf = 0
    last_break = -1  # offset (from base) of the last LF or CR before pos
    prev_cr = False
    for at, b in src.blocks(base, base + pos, block):
        lf += b.count(b"\n")
        cr += b.count(b"\r")
        crlf += b.count(b"\r\n") + (1 if prev_cr and b[:1] == b"\n" else 0)
        prev_cr = b[-1:] == b"\r"
        i = max(b.rfind(b"\n"), b.rfind(b"\r"))
        if i >= 0:
            last_break = at - base + i
    return lf + cr - crlf + 1, pos - (last_break + 1) + 1


class _Scan:
    """The first pass, fed the file block by block: sha256 and what decides the encoding."""

    def __init__(self, head: bytes):
        self.digest = hashlib.sha256()
        self.head = head
        self.skip = 3 if head == _BOM else 0  # the text ("raw") starts after a byte order mark
        self.all_space = self.text_space = True
        self.has_cr = self.has_lf = False
        self.nul: int | None = None
        self.strict = codecs.getincrementaldecoder("utf-8")("strict")
        self.escaped = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.bad: int | None = None  # offset in raw of the first byte that is not valid UTF-8
        self.utf8_after_bad = False  # a valid non-ASCII UTF-8 character at or after it
        self.first_non_ascii: int | None = None
        self.last = b""  # the file's last byte

    def feed(self, at: int, b: bytes) -> None:
        self.digest.update(b)
        self.last = b[-1:]
        if self.all_space and not b.isspace():
            self.all_space = False
        if self.nul is None and (i := b.find(b"\x00")) >= 0:
            self.nul = at + i
        self.has_cr = self.has_cr or b"\r" in b
        self.has_lf = self.has_lf or b"\n" in b
        cut = max(0, self.skip - at)
        piece = b[cut:] if cut else b
        if piece:
            self._text(at + cut - self.skip, piece)

    def _text(self, rpos: int, piece: bytes) -> None:
        """A piece of the text (after any byte order mark) starting at offset ``rpos`` of it."""
        if self.text_space and not piece.isspace():
            self.text_space = False
        ascii_only = piece.isascii()  # the usual block: valid UTF-8, nothing more to look for
        if self.first_non_ascii is None and not ascii_only and (m := _NOT_ASCII.search(piece)):
            self.first_non_ascii = rpos + m.start()
        if self.bad is None:
            pending = self.strict.getstate()[0]
            if ascii_only and not pending:
                return
            try:
                self.strict.decode(piece)
            except UnicodeDecodeError as exc:
                self.bad = rpos - len(pending) + exc.start
                self._after_bad((pending + piece)[exc.start :])
        elif not ascii_only or self.escaped.getstate()[0]:
            self._after_bad(piece)

    def _after_bad(self, text: bytes, final: bool = False) -> None:
        # (an ASCII piece holds no UTF-8 character: the caller skips it unless a sequence is pending)
        if not self.utf8_after_bad:
            self.utf8_after_bad = _UTF8_CHAR.search(self.escaped.decode(text, final)) is not None

    def finish(self, size: int) -> None:
        if self.bad is None and size > self.skip:
            pending = self.strict.getstate()[0]
            try:
                self.strict.decode(b"", final=True)
            except UnicodeDecodeError as exc:  # a sequence cut off by the end of the file
                self.bad = size - self.skip - len(pending) + exc.start
                self._after_bad(pending[exc.start :], final=True)
        elif self.bad is not None:
            self._after_bad(b"", final=True)

    @property
    def holds_utf8_text(self) -> bool:
        """The file holds UTF-8 text (a BOM, or a valid non-ASCII character) besides its broken byte."""
        assert self.bad is not None
        return bool(self.skip) or (self.first_non_ascii is not None and self.first_non_ascii < self.bad) or self.utf8_after_bad


def _first_undefined_in_cp1252(src: _Source, skip: int, block: int) -> int | None:
    """Offset in the text of the first byte Windows-1252 has no character for (a file that is not UTF-8 only)."""
    for at, b in src.blocks(skip, src.size, block):
        if not b.isascii() and (m := _CP1252_UNDEFINED.search(b)):
            return at - skip + m.start()
    return None


def _scan(src: _Source, block: int) -> _Facts:
    """The first pass: sha256 and encoding (raises `ExtractError` as `etl.core.extracts._to_utf8` does)."""
    path, size = src.path, src.size
    scan = _Scan(src.read(0, 3))
    for at, b in src.blocks(0, size, block):
        scan.feed(at, b)
    scan.finish(size)
    src.check_unchanged()

    if size == 0 or scan.all_space:
        raise ExtractError(path, "empty_file", "is empty (no header and no rows)")
    if scan.head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ExtractError(path, "encoding", "is UTF-16; save it as UTF-8 or Windows-1252 CSV")
    if scan.nul is not None:
        line, _ = _line_and_column(src, 0, scan.nul, block)
        raise ExtractError(path, "encoding", f"line {line} contains a NUL byte (\\x00): not a plain text CSV; nothing was loaded")
    if scan.bad is None:
        encoding = "utf-8-sig" if scan.skip else "utf-8"
    elif scan.holds_utf8_text:
        line, col = _line_and_column(src, scan.skip, scan.bad, block)
        raise ExtractError(
            path,
            "encoding",
            f"is UTF-8 with a broken byte: line {line}, byte {col} is not valid UTF-8 (the file mixes UTF-8 with "
            "another encoding); save it again as UTF-8 CSV; nothing was loaded",
        )
    elif (cp_bad := _first_undefined_in_cp1252(src, scan.skip, block)) is not None:
        line, col = _line_and_column(src, scan.skip, cp_bad, block)
        raise ExtractError(
            path,
            "encoding",
            f"is neither UTF-8 nor Windows-1252: line {line}, byte {col} is not a character in either; nothing was loaded",
        )
    else:
        encoding = "windows-1252"
    if scan.text_space:
        raise ExtractError(path, "empty_file", "is empty (no header and no rows)")
    return _Facts(scan.digest.hexdigest(), encoding, bool(scan.skip), scan.last.endswith((b"\n", b"\r")), scan.has_cr and scan.has_lf)


# --- the extract read in chunks ---------------------------------------------------------------------


@dataclass(frozen=True)
class RawPart:
    """One chunk's rows: its staged Parquet file (text columns as in the header + row_number), how many
    rows it holds and its malformed rows (row_number, expected_fields, actual_fields)."""

    file: Path
    rows: int
    malformed: pl.DataFrame

    def read(self) -> pl.DataFrame:
        return pl.read_parquet(self.file)

    def malformed_rows(self) -> list[MalformedRow]:
        return [MalformedRow(r, e, a, "") for r, e, a in self.malformed.iter_rows()]


_MALFORMED_SCHEMA = {ROW_NUMBER: pl.Int64, "expected_fields": pl.Int64, "actual_fields": pl.Int64}


class ChunkedExtract(RawExtract):
    """An extract read in chunks (`read_chunked`): the same extract as `read_extract` gives for a small file,
    its rows staged on disk chunk by chunk (``parts``, in file order) in ``stage``."""

    def __init__(self, path: Path, sha256: str, encoding: str, header: list[str], parts: list[RawPart], stage: staging.Stage, ends_with_newline: bool = True):
        # RawExtract's own __init__ would store ``frame`` and ``malformed``: here they are read from the parts
        self.path, self.sha256, self.encoding, self.header = path, sha256, encoding, header
        self.parts, self.stage, self.ends_with_newline = parts, stage, ends_with_newline

    @property
    def frame(self) -> pl.DataFrame:
        """Every row, read into memory (validation reads the parts one at a time instead)."""
        return self.scan().collect()

    @frame.setter
    def frame(self, value: pl.DataFrame) -> None:
        raise AttributeError("the rows of a file read in chunks are staged on disk; they cannot be replaced")

    @property
    def malformed(self) -> list[MalformedRow]:
        return [m for p in self.parts for m in p.malformed_rows()]

    @malformed.setter
    def malformed(self, value: list[MalformedRow]) -> None:
        raise AttributeError("the rows of a file read in chunks are staged on disk; they cannot be replaced")

    @property
    def rows(self) -> int:
        """Rows parsed (the malformed rows apart)."""
        return sum(p.rows for p in self.parts)

    @property
    def malformed_count(self) -> int:
        return sum(p.malformed.height for p in self.parts)

    @property
    def rows_in(self) -> int:
        return self.rows + self.malformed_count

    def scan(self) -> pl.LazyFrame:
        """Every row, lazily (text columns named as in the header, plus row_number)."""
        if not self.parts:
            return pl.LazyFrame(schema={**{h: pl.Utf8 for h in self.header}, ROW_NUMBER: pl.Int64})
        return pl.scan_parquet([p.file for p in self.parts])

    def __repr__(self) -> str:
        return f"ChunkedExtract(path={str(self.path)!r}, encoding={self.encoding!r}, rows_in={self.rows_in}, chunks={len(self.parts)})"


def _unclosed(path: Path, line: int) -> ExtractError:
    return ExtractError(
        path,
        "unreadable",
        f'has a quoted field that opens on line {line} and never closes (an unmatched " character): '
        "a quote is missing or the file was cut off; nothing was loaded",
    )


def read_chunked(path: str | Path, *, fd: int | None = None, data: bytes | None = None, chunk: int | None = None) -> ChunkedExtract:
    """Read an extract in chunks of about ``chunk`` bytes (default ``ETL_CHUNK_BYTES``) from an open file
    descriptor or from bytes; the same result and errors as `etl.core.extracts.read_extract` of the whole file."""
    path = Path(path)
    chunk = chunk or chunk_bytes()
    src = _Source(path, fd, data)
    facts = _scan(src, max(chunk, SCAN_BLOCK_MIN))
    stage = staging.Stage("extract")
    try:
        header, parts = _read_chunks(src, facts, chunk, stage)
        src.check_unchanged()
    except BaseException:
        stage.close()
        raise
    finally:
        pa.default_memory_pool().release_unused()  # the CSV parser's buffers: give them back rather than keep them for later stages
    return ChunkedExtract(path, facts.sha256, facts.encoding, header, parts, stage, facts.ends_with_newline)


def _quote_ahead(src: _Source, offset: int, block: int) -> bool:
    return any(b'"' in b for _, b in src.blocks(offset, src.size, block))


class _Chunks:
    """The second pass, one chunk at a time: the header, the staged rows and the verdicts that wait for the
    whole file (see the module docstring for their order)."""

    def __init__(self, src: _Source, facts: _Facts, stage: staging.Stage):
        self.src, self.facts, self.stage, self.path = src, facts, stage, src.path
        self.line = 1  # the line the next chunk starts on
        self.at_header = True
        self.header: list[str] = []
        self.cr_file: bool | None = None
        self.stray: ExtractError | None = None  # the first stray line break
        self.pending: ExtractError | None = None  # a header or parser error
        self.any_body = False  # a non-space character after the header
        self.body_started = False  # a chunk held bytes after the header (the start of what the whole-file reader parses)
        self.last_malformed: MalformedRow | None = None
        self.last_line = 0
        self.parts: list[RawPart] = []

    def take(self, buf: bytes, layout: _Layout) -> None:
        """A chunk: ``buf`` up to ``layout.end``, starting at a row boundary on line ``self.line``."""
        if self.at_header:
            self.cr_file = layout.cr_file
        if self.stray is None:
            self.stray = layout.stray
        if self.pending is None and self.stray is None:  # else only the layout of the rest matters
            try:
                self._rows(buf, layout)
            except ExtractError as exc:
                self.pending = exc
        self.at_header = False
        self.line += len(layout.line_ends)

    def _rows(self, buf: bytes, layout: _Layout) -> None:
        if self.at_header:
            self.header = _parse_header(buf[: layout.rec_end[0]].decode("utf-8"), self.path)
        body_at = layout.body_at
        self.any_body = self.any_body or _NOT_SPACE.search(memoryview(buf)[body_at : layout.end]) is not None
        continued, self.body_started = self.body_started, self.body_started or body_at < layout.end
        if not len(layout.body_lines()):
            return
        frame, malformed, physical = _parse_records(buf, body_at, layout, self.header, self.path, keep_bom=continued)
        self.last_line = int(physical[-1])
        if malformed:
            self.last_malformed = malformed[-1]
        bad = pl.DataFrame([(m.row_number, m.expected_fields, m.actual_fields) for m in malformed], schema=_MALFORMED_SCHEMA, orient="row")
        self.parts.append(RawPart(self.stage.write(frame, "rows"), frame.height, bad))

    def verdict(self) -> None:
        """After the last chunk: the file's first failure in the whole-file order, if any."""
        if self.stray is not None:
            raise self.stray
        if self.pending is not None:
            raise self.pending
        if not self.any_body:
            raise ExtractError(self.path, "empty_file", "has a header but no data rows")
        if not self.facts.ends_with_newline and self.last_malformed is not None:
            _refuse_truncated(self.path, self.last_malformed, self.last_line)
        if not any(p.rows or p.malformed.height for p in self.parts):
            raise ExtractError(self.path, "empty_file", "has a header but no data rows")


def _read_chunks(src: _Source, facts: _Facts, chunk: int, stage: staging.Stage) -> tuple[list[str], list[RawPart]]:
    """The second pass: the header and the staged chunks (raises `ExtractError` as the whole-file reader does)."""
    size = src.size
    offset = 3 if facts.bom else 0
    carry, want = b"", chunk
    chunks = _Chunks(src, facts, stage)
    while True:
        block = src.read(offset, min(want, size - offset)) if offset < size else b""
        if offset < size and not block:
            raise src.changed()
        offset += len(block)
        if facts.encoding == "windows-1252":
            block = block.decode("cp1252").encode("utf-8")
        buf = carry + block if carry else block
        final = offset >= size
        layout = _Layout(buf, src.path, header=chunks.at_header, final=final, first_line=chunks.line, cr_file=chunks.cr_file, mixed=facts.mixed)
        if not final and layout.end == 0:  # no row boundary yet: a row longer than the chunk
            if layout.unclosed is not None and not _quote_ahead(src, offset, max(chunk, SCAN_BLOCK_MIN)):
                raise _unclosed(src.path, layout.line_of(layout.unclosed))
            carry, want = buf, max(chunk, len(buf))
            continue
        chunks.take(buf, layout)
        if final:
            break
        carry, want = buf[layout.end :], chunk
        del buf, layout
    chunks.verdict()
    return chunks.header, chunks.parts


__all__ = ["CHUNK_ENV", "DEFAULT_CHUNK_BYTES", "ChunkedExtract", "RawPart", "chunk_bytes", "read_chunked"]
