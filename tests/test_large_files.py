"""A file above ETL_CHUNK_BYTES is read, validated and loaded in chunks (`etl.core.chunks`, `etl.core.staging`)
with exactly the result of reading it whole: the same rows and row numbers, the same quarantine with its
failed rules, the same checks and file verdicts, the same tables in the warehouse, the same messages and exit
codes for a file that fails. Every comparison runs the same files with the threshold tiny (a few rows per
chunk, or one byte) and huge (the whole-file reading)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core import chunks, staging
from etl.core.chunks import ChunkedExtract, chunk_bytes, read_chunked
from etl.core.contracts import load_contract
from etl.core.extracts import ExtractError, RawExtract, read_extract
from etl.core.periods import Month
from etl.core.validation import ExtractInput, ExtractResult, FileFailure, ValidationContext, validate_extracts
from etl.core.warehouse import Warehouse
from etl.errors import ConfigError
from etl.loading import pipeline
from tests.conftest import CRIME_HEADER, crime

MONTH = "2019-03"
HUGE = str(1 << 40)
TINY = "300"  # two or three rows a chunk


@pytest.fixture(autouse=True)
def staging_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "staging"
    monkeypatch.setenv("ETL_STAGING_DIR", str(d))
    return d


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --------------------------------------------------------------------------------------------------
# A file with something of every kind


def _encode(rows: list[list[str]], newline: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)  # quotes a field holding a comma, quote or line break
    return buf.getvalue()


def tricky_rows() -> list[dict]:
    """~100 crimes of March 2019: good rows, bad rows of many kinds, quoted line breaks and commas, a repeated
    reference far from the first, and a bad row last."""
    rows = [crime(f"R{i:04d}", f"{MONTH}-{i % 28 + 1:02d}", ("8N", "28E", "34B", "58A")[i % 4], age=str(20 + i % 50)) for i in range(100)]
    rows[4]["hocr_code"] = "99Z"  # unknown code
    rows[9]["knife_sharp"] = "y"  # not Y/N
    rows[13]["npu"] = ""  # required
    rows[17]["victim_age"] = "abc"  # not a whole number (personal: redacted in the record)
    rows[21]["victim_age"] = "130"  # out of range
    rows[25]["lsoa_code"] = "X0112345"  # pattern
    rows[29]["offence_date"] = f"{MONTH}-28"  # after recorded_date (row 29 is recorded on the 2nd)
    rows[33]["status"] = "unknown"  # not an allowed value
    rows[37]["npu"] = "North,\nEast"  # a quoted comma and line break: loads as it is
    rows[41]["npu"] = 'N"1'  # a doubled quote
    rows[45]["lsoa_code"] = "E01\n000001"  # a quoted line break that breaks the pattern: quarantined with it
    rows[52]["hocr_code"] = "8N "  # trimmed: loads
    rows[88] = dict(rows[3])  # repeats row 3's crime_ref, several chunks later
    rows[99]["hocr_code"] = "99Z"  # a bad row in the last chunk
    return rows


def tricky_file(path: Path, *, newline: str = "\n", encoding: str = "utf-8", extra: str = "") -> Path:
    rows = tricky_rows()
    if encoding != "utf-8":
        rows[60]["npu"] = "Montréal"
    table = [CRIME_HEADER] + [[r.get(h, "") for h in CRIME_HEADER] for r in rows]
    text = (
        _encode(table[:50], newline) + newline + "R9999,test-force,2019-03-05" + newline + _encode(table[50:], newline) + extra
    )  # a blank line, a malformed row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------------------------------
# Reading


def _read(path: Path | str, data: bytes | None, chunk: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setenv("ETL_CHUNK_BYTES", chunk)
    try:
        r = read_extract(path, data)
    except ExtractError as exc:
        return ("error", exc.reason, exc.message, str(exc))
    assert isinstance(r, ChunkedExtract) == (len(data if data is not None else Path(path).read_bytes()) > int(chunk))
    return (
        "read",
        r.sha256,
        r.encoding,
        r.header,
        r.frame,
        [(m.row_number, m.expected_fields, m.actual_fields) for m in r.malformed],
        r.ends_with_newline,
        r.rows_in,
    )


def _same_reading(a: tuple, b: tuple) -> None:
    assert a[0] == b[0], (a[:3], b[:3])
    if a[0] == "error":
        assert a == b
    else:
        assert a[1:4] == b[1:4] and a[5:] == b[5:]
        assert a[4].equals(b[4]), (a[4], b[4])


READABLE = [
    b"a,b\r\n1,2\r\n3,4",
    b"a,b\n1,\xc3",  # no UTF-8 text: Windows-1252
    b"a,b\r1,2\r3,4\r",
    b'a,b\n1,"x\ny"\n3,4\n\n\n5,6\n',
    b'a,b\n1,"x\r\ny,""q"""\n3,4,5\n6\n',
    b"\xef\xbb\xbfa,b\n1,\xc3\xa9\n2,\xe2\x82\xac\n",
    b"a,b\n1,\xe9\n2,\x96\n",
    b'a,b\n1,x"y\n2,"z"\n3,q""\n',
    b"a,b\n  ,  \n1,2\n",
    b"a,b\n1,2\r\r\n3,4\n",
    b"a,b\n1,2\n\xef\xbb\xbfz,3\n",  # U+FEFF opening a row in the middle of the file is text
    b'"a\nx",b\n1,2\n',
]

FAILING = [
    (b"a,b\n1,2\n3", "truncated_file"),
    (b'a,b\n1,"2\n3,4\n', "unreadable"),  # a quoted field that never closes
    (b'a,b\n1,2\n3,"4\n5,6\n7,8\n', "unreadable"),
    (b"a,b\n1,2\r3,4\n", "unreadable"),  # a stray CR inside a row of an LF file
    (b"a,b\r1,2\n3,4\r", "unreadable"),  # a stray LF in a CR file
    (b'a,b\n1,2\r3,4\n5,"6\n', "unreadable"),  # both: the quote that never closes is reported
    (b"a,b\n1,\xe9\n2,\xc3\xa9\n", "encoding"),  # UTF-8 text with a broken byte
    (b"a,b\n1,\xc3\xa9\n2,\xe9\n", "encoding"),
    (b"a,b\n1,\x81\n", "encoding"),  # neither UTF-8 nor Windows-1252
    (b"a,b\r\n1,2\r\n3,\x00\r\n", "encoding"),  # a NUL byte, its line counted across CRLFs
    (b"\xff\xfea\x00,\x00b\x00", "encoding"),
    (b"a,b\n\n  \n", "empty_file"),
    (b"\xef\xbb\xbf\r\n", "empty_file"),
    (b"a;b;c\n1;2;3\n", "delimiter"),
    (b"a,a\n1,2\n", "bad_header"),
    (b'a,a\n1,2\n3,"4\n', "unreadable"),  # a bad header and a quote that never closes: the quote
    (b"a,b\n1,\xc3\xa9\n2,\xc3", "encoding"),  # a UTF-8 sequence cut off by the end of the file
]


@pytest.mark.parametrize("chunk", ["1", "7", "64"])
@pytest.mark.parametrize("data", READABLE)
def test_a_file_read_in_chunks_is_the_file_read_whole(tmp_path, monkeypatch, data, chunk):
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    whole = _read(p, None, HUGE, monkeypatch)
    assert whole[0] == "read"
    _same_reading(_read(p, None, chunk, monkeypatch), whole)
    _same_reading(_read(p, data, chunk, monkeypatch), whole)  # bytes given rather than a file


@pytest.mark.parametrize("chunk", ["1", "5", "64"])
@pytest.mark.parametrize("data,reason", FAILING)
def test_a_file_that_fails_fails_alike_in_chunks(tmp_path, monkeypatch, data, reason, chunk):
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    whole = _read(p, None, HUGE, monkeypatch)
    assert whole[0] == "error" and whole[1] == reason, whole
    _same_reading(_read(p, None, chunk, monkeypatch), whole)


@pytest.mark.parametrize("data,reason", FAILING[6:11])
def test_the_first_pass_finds_encoding_faults_across_its_blocks(tmp_path, monkeypatch, data, reason):
    """The first pass (hash and encoding) reads blocks of at least SCAN_BLOCK_MIN: with one-byte blocks every
    UTF-8 sequence, CRLF and byte order mark is split, and the verdict, line and column stay the same."""
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    whole = _read(p, None, HUGE, monkeypatch)
    monkeypatch.setattr(chunks, "SCAN_BLOCK_MIN", 1)
    for block in (1, 2, 3):
        _same_reading(_read(p, None, str(block), monkeypatch), whole)


def test_a_quoted_field_longer_than_a_chunk_grows_its_chunk(tmp_path, monkeypatch):
    big = "x,\n" * 5000
    p = tmp_path / "x.csv"
    p.write_bytes(f'a,b\n1,"{big}"\n2,3\n'.encode())
    r = _read(p, None, "100", monkeypatch)
    assert r[4]["b"].to_list() == [big.strip(), "3"] and r[4]["row_number"].to_list() == [2, 5003]
    _same_reading(r, _read(p, None, HUGE, monkeypatch))


def test_a_quote_that_never_closes_is_refused_without_reading_the_rest_into_memory(tmp_path, monkeypatch):
    p = tmp_path / "x.csv"
    p.write_bytes(b'a,b\n1,"x\n' + b"2,3\n" * 20000)
    err = _read(p, None, "64", monkeypatch)
    assert err[:2] == ("error", "unreadable") and "opens on line 2 and never closes" in err[2]
    _same_reading(err, _read(p, None, HUGE, monkeypatch))


def test_the_chunk_setting(monkeypatch):
    monkeypatch.delenv("ETL_CHUNK_BYTES", raising=False)
    assert chunk_bytes() == 64 * 1024 * 1024
    for text, value in (("1000", 1000), ("64M", 64 << 20), ("2g", 2 << 30), ("512 KiB", 512 << 10)):
        monkeypatch.setenv("ETL_CHUNK_BYTES", text)
        assert chunk_bytes() == value
    for text in ("abc", "0", "-5", "1.5M"):
        monkeypatch.setenv("ETL_CHUNK_BYTES", text)
        with pytest.raises(ConfigError) as exc:
            chunk_bytes()
        assert exc.value.exit_code == 2 and "ETL_CHUNK_BYTES" in str(exc.value)


def test_a_file_that_changes_between_the_two_passes_fails(tmp_path, monkeypatch):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\n" + b"1,2\n" * 100)
    real = chunks._read_chunks

    def grow(src, *args):
        with p.open("ab") as fh:
            fh.write(b"3,4\n")
        return real(src, *args)

    monkeypatch.setattr(chunks, "_read_chunks", grow)
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(ExtractError) as exc:
            read_chunked(p, fd=fd, chunk=64)
    finally:
        os.close(fd)
    assert exc.value.reason == "unreadable_file" and "changed while it was being read" in exc.value.message


def test_staged_chunks_are_removed_once_the_extract_is_dropped(tmp_path, staging_dir, monkeypatch):
    r = _read(tricky_file(tmp_path / "rc.csv"), None, TINY, monkeypatch)
    assert r[0] == "read"
    monkeypatch.setenv("ETL_CHUNK_BYTES", TINY)
    raw = read_extract(tmp_path / "rc.csv")
    assert isinstance(raw, ChunkedExtract) and len(raw.parts) > 10 and _leftovers(staging_dir)
    del raw
    assert _leftovers(staging_dir) == []
    with pytest.raises(ExtractError):
        read_extract(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_bytes(b"a,b\n" + b"1,2\n" * 200 + b'3,"4\n')
    with pytest.raises(ExtractError):
        read_extract(tmp_path / "bad.csv")  # failed after staging some chunks
    assert _leftovers(staging_dir) == []


# --------------------------------------------------------------------------------------------------
# Validation


def _outcome(path: Path, chunk: str, monkeypatch, *, spill: bool = False, **ctx) -> ExtractResult | FileFailure:
    monkeypatch.setenv("ETL_CHUNK_BYTES", chunk)
    try:
        raw = read_extract(path)
    except ExtractError as exc:
        return FileFailure(str(path), exc.reason, exc.message)
    ctx.setdefault("month", Month.parse(MONTH))
    (outcome,) = validate_extracts(load_contract("recorded_crime"), [ExtractInput(raw, ValidationContext(**ctx), "rc.csv")], spill=spill)
    return outcome


def _same_outcome(a: ExtractResult | FileFailure, b: ExtractResult | FileFailure) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, FileFailure):
        assert isinstance(b, FileFailure) and (a.rule, a.message) == (b.rule, b.message)
        return
    assert isinstance(b, ExtractResult)
    assert (a.source_file, a.sha256, a.encoding, a.month, a.force_id, a.rows_in, a.rows_loaded, a.rows_quarantined) == (
        b.source_file,
        b.sha256,
        b.encoding,
        b.month,
        b.force_id,
        b.rows_in,
        b.rows_loaded,
        b.rows_quarantined,
    )
    assert staging.collect(a.clean).equals(staging.collect(b.clean))
    assert staging.collect(a.quarantine).equals(staging.collect(b.quarantine))
    assert [vars(c) for c in a.checks] == [vars(c) for c in b.checks]


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize("newline,encoding", [("\n", "utf-8"), ("\r\n", "utf-8"), ("\n", "cp1252")])
def test_validation_in_chunks_gives_the_whole_file_result(tmp_path, monkeypatch, newline, encoding, spill):
    p = tricky_file(tmp_path / "rc.csv", newline=newline, encoding=encoding)
    whole = _outcome(p, HUGE, monkeypatch)
    assert isinstance(whole, ExtractResult)
    q = whole.quarantine
    # what the file holds, row by row (line numbers: the header is line 1; rows on lines 39 and 48 span two lines; a blank line and a malformed row follow line 52)
    assert dict(zip(q["row_number"], q["failed_checks"])) == {
        6: "hocr_code.code_list",
        11: "knife_sharp.flag",
        15: "npu.required",
        19: "victim_age.type",
        23: "victim_age.range",
        27: "lsoa_code.pattern",
        31: "offence_date_not_after_recorded_date",
        35: "status.allowed_values",
        48: "lsoa_code.pattern",
        54: "row.field_count",
        94: "crime_ref.unique",
        105: "hocr_code.code_list",
    }
    assert whole.rows_in == 101 and whole.rows_loaded == 89
    assert whole.clean.filter(pl.col("source_row") == 39)["npu"].to_list() == ["North,\nEast"]
    assert json.loads(q.filter(pl.col("row_number") == 19)["record"][0])["victim_age"] == "[redacted: personal]"
    chunked = _outcome(p, TINY, monkeypatch, spill=spill)
    assert isinstance(chunked, ExtractResult) and staging.is_staged(chunked.clean) == spill and staging.is_staged(chunked.quarantine) == spill
    _same_outcome(chunked, whole)


def test_validation_one_row_a_chunk_gives_the_whole_file_result(tmp_path, monkeypatch):
    p = tricky_file(tmp_path / "rc.csv")
    _same_outcome(_outcome(p, "1", monkeypatch, spill=True), _outcome(p, HUGE, monkeypatch))


def test_the_force_is_told_by_every_row_and_repeats_are_found_across_chunks(tmp_path, monkeypatch):
    rows = [crime(f"R{i:04d}", f"{MONTH}-{i % 28 + 1:02d}", force="other-force" if i < 10 else "test-force") for i in range(40)]
    rows += [dict(rows[0], force_id="test-force"), dict(rows[12])]  # repeats of a first-chunk row and of a row of another chunk
    p = tmp_path / "rc.csv"
    p.write_text(_encode([CRIME_HEADER] + [[r[h] for h in CRIME_HEADER] for r in rows], "\n"))
    whole = _outcome(p, HUGE, monkeypatch)
    assert isinstance(whole, ExtractResult) and whole.force_id == "test-force"  # ten rows of another force come first
    assert whole.quarantine["row_number"].to_list() == [*range(2, 12), 42, 43]
    _same_outcome(_outcome(p, "200", monkeypatch), whole)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda rows: rows[-1].update(recorded_date="2019-04-01"), id="a row of another month in the last chunk"),
        pytest.param(lambda rows: [r.update(hocr_code="99Z") for r in rows[40:]], id="more bad rows than the contract allows"),
        pytest.param(lambda rows: [r.pop("npu") for r in rows], id="a column missing"),
    ],
)
def test_a_file_failing_its_contract_fails_alike_in_chunks(tmp_path, monkeypatch, change):
    rows = tricky_rows()
    change(rows)
    header = [h for h in CRIME_HEADER if h in rows[0]]
    p = tmp_path / "rc.csv"
    p.write_text(_encode([header] + [[r.get(h, "") for h in header] for r in rows], "\n"))
    whole = _outcome(p, HUGE, monkeypatch)
    assert isinstance(whole, FileFailure)
    for spill in (False, True):
        _same_outcome(_outcome(p, TINY, monkeypatch, spill=spill), whole)


def test_a_file_of_malformed_rows_only_fails_alike(tmp_path, monkeypatch):
    p = tmp_path / "rc.csv"
    p.write_text(",".join(CRIME_HEADER) + "\n" + "R1,test-force\n" * 30)
    whole = _outcome(p, HUGE, monkeypatch)
    assert isinstance(whole, FileFailure) and whole.rule == "reject_threshold"
    _same_outcome(_outcome(p, "64", monkeypatch, spill=True), whole)


# --------------------------------------------------------------------------------------------------
# The load: identical warehouse tables


def _tables(wh: Path) -> dict[str, pl.DataFrame]:
    w = Warehouse(wh)
    out = {}
    for name in ("recorded_crime", "quarantine", "audit_checks"):
        t = w.read(name)
        assert t is not None
        t = t.drop([c for c in ("run_id",) if c in t.columns])
        out[name] = t.sort([c for c in ("source_row", "row_number", "check", "extract") if c in t.columns])
    runs = w.read("audit_runs")
    assert runs is not None
    out["audit_runs"] = runs.filter(pl.col("kind") == "load").select(
        "force_id", "month", "outcome", "rows_in", "rows_loaded", "rows_quarantined", "source_files", "message"
    )
    return out


@pytest.mark.parametrize("newline,encoding", [("\n", "utf-8"), ("\r\n", "cp1252")])
def test_a_large_file_loads_exactly_the_tables_of_a_small_one(tmp_path, staging_dir, monkeypatch, newline, encoding):
    source = tmp_path / "source"
    tricky_file(source / MONTH / "recorded_crime.csv", newline=newline, encoding=encoding)
    loaded = {}
    for chunk in (HUGE, TINY):
        monkeypatch.setenv("ETL_CHUNK_BYTES", chunk)
        rep = pipeline.load_month(source, MONTH, tmp_path / f"wh{chunk}", force_id="test-force")
        assert (rep.outcome, rep.rows_in, rep.rows_loaded, rep.rows_quarantined) == ("loaded", 101, 89, 12)
        loaded[chunk] = _tables(tmp_path / f"wh{chunk}")
        assert _leftovers(staging_dir) == []  # every staged file removed once the run ended
    for name, table in loaded[HUGE].items():
        assert table.equals(loaded[TINY][name]), name
    assert loaded[TINY]["recorded_crime"].height == 89 and loaded[TINY]["quarantine"].height == 12


FAILING_LOADS = [
    pytest.param(lambda rows: rows[-1].update(recorded_date="2019-04-01"), "", id="a row of another month"),
    pytest.param(lambda rows: [r.update(knife_sharp="maybe") for r in rows[30:]], "", id="over the reject threshold"),
    pytest.param(lambda rows: None, 'R9,test-force,"2019-03-01\n', id="a quote that never closes"),
    pytest.param(lambda rows: None, "R9,test-force,2019-03-01\rR10", id="a stray carriage return"),
    pytest.param(lambda rows: None, "R9,test-force,2019", id="a truncated last line"),
]


@pytest.mark.parametrize("change,extra", FAILING_LOADS)
def test_a_large_file_that_fails_fails_the_load_alike(tmp_path, staging_dir, monkeypatch, change, extra):
    rows = tricky_rows()
    change(rows)
    source = tmp_path / "source"
    table = [CRIME_HEADER] + [[r.get(h, "") for h in CRIME_HEADER] for r in rows]
    (source / MONTH).mkdir(parents=True)
    (source / MONTH / "recorded_crime.csv").write_text(_encode(table, "\n") + extra)
    failures = []
    for chunk in (HUGE, TINY):
        monkeypatch.setenv("ETL_CHUNK_BYTES", chunk)
        with pytest.raises(pipeline.LoadFailed) as exc:
            pipeline.load_month(source, MONTH, tmp_path / f"wh{chunk}", force_id="test-force")
        failures.append((exc.value.message, exc.value.rule, exc.value.exit_code))
        assert Warehouse(tmp_path / f"wh{chunk}").read("recorded_crime") is None  # nothing written
        assert _leftovers(staging_dir) == []
    assert failures[0] == failures[1] and failures[0][2] == 1


def test_the_command_line_reports_a_large_failing_file_alike(tmp_path, monkeypatch):
    rows = tricky_rows()
    rows[70]["recorded_date"] = "2019-02-28"
    source = tmp_path / "source"
    (source / MONTH).mkdir(parents=True)
    (source / MONTH / "recorded_crime.csv").write_text(_encode([CRIME_HEADER] + [[r[h] for h in CRIME_HEADER] for r in rows], "\n"))
    results = []
    for chunk in (HUGE, TINY):
        monkeypatch.setenv("ETL_CHUNK_BYTES", chunk)
        r = CliRunner().invoke(app, ["run", "--source", str(source), "--month", MONTH, "--warehouse", str(tmp_path / f"wh{chunk}"), "--engine", "local"])
        results.append((r.exit_code, r.output))
    assert results[0] == results[1]
    assert results[0][0] == 1 and "row(s) have recorded_date outside the extract's month 2019-03" in results[0][1] and "first at row 74" in results[0][1]


# --------------------------------------------------------------------------------------------------
# Staged frames


def test_a_staged_frame_reads_only_what_it_is_asked_for(tmp_path):
    stage = staging.Stage("test")
    frames = [pl.DataFrame({"k": [i, i + 1], "s": [f"v{i}", None]}) for i in (0, 2, 4)]
    staged = staging.StagedFrame.of_files([stage.write(f, "t") for f in frames], frames[0].schema, 6, stage)
    whole = pl.concat(frames)
    assert staged.height == 6 and staged.columns == ["k", "s"] and staged.schema == whole.schema
    assert staged.select("k").equals(whole.select("k")) and staged["s"].to_list() == whole["s"].to_list()
    assert staged.filter(pl.col("k") > 2).height == 3 and staged.with_columns(x=pl.lit(1)).height == 6
    assert staged.group_by("s").agg(pl.len()).sort("s").equals(whole.group_by("s").agg(pl.len()).sort("s"))
    assert staged.head(2).equals(whole.head(2)) and staged.to_dicts() == whole.to_dicts()  # any other DataFrame method reads the rows
    reader = staged.to_arrow()
    assert isinstance(reader, pa.RecordBatchReader) and reader.read_all().equals(whole.to_arrow())
    mixed = staging.concat(
        [staging.transform(pl.DataFrame({"k": [9], "s": ["z"]}), lambda f: f), staging.transform(staged, lambda f: f.with_columns(pl.col("k") * 2))]
    )
    assert staging.is_staged(mixed) and mixed.height == 7 and staging.collect(mixed)["k"].to_list() == [9, 0, 2, 4, 6, 8, 10]
    assert staging.concat([whole]) is whole and not staging.is_staged(staging.concat([whole, whole]))
    folder = stage.path
    del staged, mixed, stage
    assert not folder.exists()


def test_a_raw_extract_read_in_chunks_is_still_a_raw_extract(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_CHUNK_BYTES", TINY)
    raw = read_extract(tricky_file(tmp_path / "rc.csv"))
    assert isinstance(raw, RawExtract) and isinstance(raw, ChunkedExtract)
    assert raw.rows_in == raw.frame.height + len(raw.malformed) == 101
    assert [(m.row_number, m.actual_fields) for m in raw.malformed] == [(54, 3)] and raw.malformed[0].text == ""  # the text is not kept
    with pytest.raises(AttributeError):
        raw.frame = pl.DataFrame()
    assert "ChunkedExtract(" in repr(raw)
