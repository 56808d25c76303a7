"""The extract reader against hostile and real-world bytes: values arrive exactly or not at all, and every
file that cannot be read exactly fails with one plain `ExtractError` (a reason id and a line number)."""

import errno
import os
import socket
import stat
import sys
import threading

import pyarrow as pa
import pytest

import etl.core.extracts as extracts
from etl.core.extracts import ExtractError, read_extract


def _write(tmp_path, data: bytes, name: str = "x.csv"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _fails(path, reason: str, *fragments: str) -> ExtractError:
    with pytest.raises(ExtractError) as exc:
        read_extract(path)
    err = exc.value
    assert type(err) is ExtractError
    assert err.reason == reason, err.message
    for fragment in fragments:
        assert fragment in err.message, err.message
    assert str(path) in str(err)
    return err


# --- 1. NUL bytes ---------------------------------------------------------------------------------


def test_a_nul_byte_far_into_the_file_fails_naming_its_line(tmp_path):
    rows = b"".join(b"%d,x\n" % i for i in range(70_000))  # ~500 KB: far past the first 64 KiB
    p = _write(tmp_path, b"a,b\n" + rows + b"1,y\x00z\n2,w\n")
    _fails(p, "encoding", "line 70002 contains a NUL byte (\\x00)", "nothing was loaded")


def test_a_nul_byte_after_crlf_and_cr_line_ends_is_counted_on_the_right_line(tmp_path):
    p = _write(tmp_path, b"a,b\r\n1,2\r3,4\r\n5,\x006\r\n")
    _fails(p, "encoding", "line 4 contains a NUL byte")


def test_utf16_without_byte_order_mark_fails_on_line_1(tmp_path):
    p = _write(tmp_path, "a,b\n1,2\n".encode("utf-16-le"))
    _fails(p, "encoding", "line 1 contains a NUL byte")


# --- 2. encoding ----------------------------------------------------------------------------------


def test_a_utf8_file_with_one_broken_byte_fails_instead_of_turning_to_mojibake(tmp_path):
    p = _write(tmp_path, "a,b\nCafé,x\n".encode() + b"y,caf\xe9\n")
    _fails(p, "encoding", "line 3, byte 6 is not valid UTF-8", "nothing was loaded")


def test_a_broken_byte_before_any_utf8_text_still_counts_as_broken_utf8(tmp_path):
    p = _write(tmp_path, b"a,b\nx,\x92\n" + "y,Café\n".encode())
    _fails(p, "encoding", "line 2, byte 3 is not valid UTF-8")


def test_a_broken_byte_after_a_byte_order_mark_fails(tmp_path):
    p = _write(tmp_path, b"\xef\xbb\xbfa,b\n1,2\n3,\xff\n")
    _fails(p, "encoding", "line 3, byte 3 is not valid UTF-8")


def test_a_genuine_windows_1252_file_reads_with_the_right_text(tmp_path):
    p = _write(tmp_path, b"amount,name\r\n\xa35,Ren\xe9e \x96 caf\xe9\r\n")
    r = read_extract(p)
    assert r.encoding == "windows-1252"
    assert r.frame.rows() == [("£5", "Renée – café", 2)]


def test_a_windows_1252_header_reads_too(tmp_path):
    p = _write(tmp_path, "café,b\n1,2\n".encode("cp1252"))
    r = read_extract(p)
    assert (r.encoding, r.header) == ("windows-1252", ["café", "b"])


def test_a_utf8_file_with_accents_reads_as_utf8(tmp_path):
    p = _write(tmp_path, "a,b\nRenée,é\n".encode())
    r = read_extract(p)
    assert r.encoding == "utf-8"
    assert r.frame.rows() == [("Renée", "é", 2)]


def test_a_utf8_header_with_a_broken_byte_fails_on_line_1(tmp_path):
    p = _write(tmp_path, b"caf\xe9,b\n" + "Café,2\n".encode())
    _fails(p, "encoding", "line 1, byte 4 is not valid UTF-8")


def test_bytes_undefined_in_windows_1252_fail_naming_the_line(tmp_path):
    p = _write(tmp_path, b"a,b\n\xe9,x\ny,\x81\n")
    _fails(p, "encoding", "neither UTF-8 nor Windows-1252: line 3, byte 3")


def test_the_encoding_field_is_documented_for_the_validation_layer():
    assert "file.encoding" in (extracts.RawExtract.__doc__ or "")


# --- 3. RFC 4180 quoting --------------------------------------------------------------------------


def test_rfc4180_quoted_line_breaks_commas_and_doubled_quotes_arrive_exactly(tmp_path):
    data = (
        b"id,note,place\r\n"
        b'1,"first line\nsecond line","Leeds, West Yorkshire"\r\n'
        b'2,"she said ""stop""",plain\r\n'
        b'3,"crlf\r\ninside\r\nthree lines",x\r\n'
        b"\r\n"
        b'4,"",""""\r\n'
        b"5,last,y\r\n"
    )
    r = read_extract(_write(tmp_path, data))
    assert r.header == ["id", "note", "place"]
    assert r.frame.rows() == [
        ("1", "first line\nsecond line", "Leeds, West Yorkshire", 2),
        ("2", 'she said "stop"', "plain", 4),
        ("3", "crlf\r\ninside\r\nthree lines", "x", 5),
        ("4", None, '"', 9),  # line 8 is blank
        ("5", "last", "y", 10),
    ]
    assert r.rows_in == 5 and not r.malformed


def test_malformed_rows_after_a_multi_line_record_keep_their_start_line(tmp_path):
    data = b'a,b,c\n1,"x\ny\nz",3\n4,5\n"6\n7",8,9,10\n11,12,13\n'
    r = read_extract(_write(tmp_path, data))
    assert r.frame.select("a", "row_number").rows() == [("1", 2), ("11", 8)]
    assert [(m.row_number, m.actual_fields) for m in r.malformed] == [(5, 2), (6, 4)]
    assert r.rows_in == 4


def test_a_truncated_last_line_is_still_detected_in_a_quoted_file(tmp_path):
    p = _write(tmp_path, b'a,b,c\n1,"x\ny",3\n4,"5"')
    _fails(p, "truncated_file", "the last line (4)", "2 of 3 fields")


def test_a_quoted_field_that_never_closes_fails_naming_the_line_it_opens_on(tmp_path):
    p = _write(tmp_path, b'a,b\n1,2\n3,"four\n5,6\n7,8\n')
    _fails(p, "unreadable", "opens on line 3 and never closes", "nothing was loaded")


def test_a_quote_inside_an_unquoted_field_is_an_ordinary_character(tmp_path):
    # 12" starts no quoted field; the quoted line break after it still spans two lines
    data = b'a,b\n12" TV,1\n"x\ny",2\n5\'10",3\n'
    r = read_extract(_write(tmp_path, data))
    assert r.frame.rows() == [('12" TV', "1", 2), ("x\ny", "2", 3), ("5'10\"", "3", 5)]


def test_a_quoted_header_with_a_line_break_and_a_comma(tmp_path):
    r = read_extract(_write(tmp_path, b'"a\nb","c,d"\n1,2\n'))
    assert r.header == ["a\nb", "c,d"]
    assert r.frame.rows() == [("1", "2", 3)]


# --- 4. wrong delimiter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sep,words,shown",
    [(b";", "semicolons", "';'"), (b"\t", "tabs", "tabs"), (b"|", "vertical bars", "'|'")],
)
def test_a_file_separated_by_something_else_than_commas(tmp_path, sep, words, shown):
    header = sep.join(b"col%d" % i for i in range(16))
    p = _write(tmp_path, header + b"\n" + sep.join([b"1"] * 16) + b"\n")
    _fails(p, "delimiter", f"is separated by {words}, not commas", f"the header has 16 fields when split on {shown}")


# --- 5. files that are not regular files ----------------------------------------------------------


def test_a_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    _fails(tmp_path / "d.csv", "not_a_file", "is a folder")


def test_a_fifo_fails_without_blocking(tmp_path):
    p = tmp_path / "pipe.csv"
    os.mkfifo(p)
    outcome: list = []

    def read():
        try:
            read_extract(p)
        except ExtractError as exc:
            outcome.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert outcome and outcome[0].reason == "not_a_file" and "named pipe" in outcome[0].message


def test_a_socket(tmp_path):
    p = tmp_path / "s.csv"
    if len(str(p)) > 100:
        pytest.skip("path too long for a unix socket")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(p))
        _fails(p, "not_a_file", "is a socket")
    finally:
        s.close()


def test_a_device():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with pytest.raises(ExtractError) as exc:
        read_extract("/dev/null")
    assert exc.value.reason == "not_a_file" and "is a device" in exc.value.message


def test_a_dangling_symlink(tmp_path):
    (tmp_path / "x.csv").symlink_to(tmp_path / "gone.csv")
    _fails(tmp_path / "x.csv", "broken_link", "symbolic link to a file that does not exist")


def test_a_symlink_to_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "x.csv").symlink_to(tmp_path / "d")
    _fails(tmp_path / "x.csv", "not_a_file", "is a folder (through a symbolic link)")


def test_a_symlink_to_a_file_reads_the_file(tmp_path):
    _write(tmp_path, b"a\n1\n", "real.csv")
    (tmp_path / "x.csv").symlink_to(tmp_path / "real.csv")
    assert read_extract(tmp_path / "x.csv").frame.rows() == [("1", 2)]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files without read permission")
def test_a_file_without_read_permission(tmp_path):
    p = _write(tmp_path, b"a\n1\n")
    p.chmod(0)
    _fails(p, "unreadable_file", "permission denied")


def test_a_permission_error_on_open_is_unreadable(tmp_path, monkeypatch):
    # tests run as root, who can read any file: make opening fail as it does for other users
    p = _write(tmp_path, b"a\n1\n")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))

    monkeypatch.setattr(extracts.os, "open", refuse)
    _fails(p, "unreadable_file", "cannot be read: permission denied")


def test_another_os_error_names_the_reason_in_words(tmp_path, monkeypatch):
    p = _write(tmp_path, b"a\n1\n")

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(p))

    monkeypatch.setattr(extracts.os, "open", broken)
    _fails(p, "unreadable_file", "cannot be read: input/output error")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem is Linux")
def test_a_regular_file_that_fails_to_read():
    # /proc/self/mem looks like a regular file, but reading its first page is an I/O error
    with pytest.raises(ExtractError) as exc:
        read_extract("/proc/self/mem")
    assert exc.value.reason == "unreadable_file" and "cannot be read: input/output error" in exc.value.message


def test_a_path_through_a_file_is_a_missing_file(tmp_path):
    _write(tmp_path, b"a\n1\n")
    _fails(tmp_path / "x.csv" / "y.csv", "missing_file", "file not found")


# --- 6. huge fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("quoted", [False, True])
def test_a_header_with_a_field_past_the_csv_module_limit(tmp_path, quoted):
    name = "n" * 200_000
    head = f'"{name}",b' if quoted else f"{name},b"
    r = read_extract(_write(tmp_path, head.encode() + b"\n1,2\n"))
    assert r.header == [name, "b"]


def test_a_data_field_of_several_megabytes_arrives_whole(tmp_path):
    big = "é" * 3_000_000  # 6 MB of UTF-8
    r = read_extract(_write(tmp_path, f'a,b\n1,{big}\n2,"{big},\n"\n3,x\n'.encode()))
    assert r.frame["b"].to_list() == [big, big + ",", "x"]
    assert r.frame["row_number"].to_list() == [2, 3, 5]


def test_a_row_longer_than_the_parser_block_gets_a_larger_block(tmp_path, monkeypatch):
    monkeypatch.setattr(extracts, "_BLOCK_SIZE", 1 << 16)
    long = "y" * 300_000
    r = read_extract(_write(tmp_path, f"a,b\n1,{long}\n2,z\n".encode()))
    assert r.frame["b"].to_list() == [long, "z"]


def test_a_parser_failure_is_a_plain_error_without_the_row_text(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise pa.ArrowInvalid("CSV parse error: Row #2: Expected 2 columns, got 1: SECRET VALUE")

    monkeypatch.setattr(extracts.pacsv, "read_csv", fail)
    err = _fails(_write(tmp_path, b'a,b\n1,"x\ny"\n3,4\n'), "unreadable", "the parser failed on line 4")
    assert "SECRET" not in str(err)


# --- 7. other odd bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,reason,fragment",
    [
        (b"\r", "empty_file", "is empty"),
        (b"\r\n\r\n \t", "empty_file", "is empty"),
        (b"\xef\xbb\xbf", "empty_file", "is empty"),
        (b"\xef\xbb\xbf\r\n", "empty_file", "is empty"),
        (b"\xef\xbb\xbfa,b\r\n", "empty_file", "has a header but no data rows"),
        (b"a,b", "empty_file", "has a header but no data rows"),
        (b"a,b\n\n  \n", "empty_file", "has a header but no data rows"),
        (b",,,\n1,2,3,4\n", "bad_header", "no column names in its header row"),
        (b" , \n1,2\n", "bad_header", "no column names in its header row"),
        (b"\n1,2\n", "bad_header", "empty first line"),
        (b"a,row_number\n1,2\n", "bad_header", "row_number"),
    ],
)
def test_degenerate_files(tmp_path, data, reason, fragment):
    _fails(_write(tmp_path, data), reason, fragment)


def test_a_lone_cr_inside_an_unquoted_field_would_split_the_row_so_the_file_fails(tmp_path):
    # pyarrow (and every CSV reader) breaks the row at the CR; "y,2" would load as a row with a cut value
    p = _write(tmp_path, b"a,b\n1,2\nx\ry,2\n3,4\n")
    _fails(p, "unreadable", "carriage return (\\r) alone inside line 3", "nothing was loaded")


def test_a_lone_lf_inside_a_cr_file_fails_too(tmp_path):
    _fails(_write(tmp_path, b"a,b\r1,2\rx\ny,2\r"), "unreadable", "line feed (\\n) alone inside line 3")


def test_a_lone_cr_inside_a_quoted_field_arrives_exactly(tmp_path):
    r = read_extract(_write(tmp_path, b'a,b\n"x\ry",2\n3,4\n'))
    assert r.frame.rows() == [("x\ry", "2", 2), ("3", "4", 4)]


def test_cr_cr_lf_line_ends_read_as_blank_lines_between_rows(tmp_path):
    r = read_extract(_write(tmp_path, b"a,b\r\r\n1,2\r\r\n3,4\r\r\n"))
    assert r.frame.rows() == [("1", "2", 3), ("3", "4", 5)]


def test_unicode_line_separators_are_ordinary_characters(tmp_path):
    r = read_extract(_write(tmp_path, "a,b\nx\u2028y,z\u2029w\u0085v\n1,2\n".encode()))
    assert r.frame.rows() == [("x\u2028y", "z\u2029w\u0085v", 2), ("1", "2", 3)]


def test_header_names_are_stripped_and_values_stay_text(tmp_path):
    r = read_extract(_write(tmp_path, b" a , b \n007, 1.50 \n"))
    assert r.header == ["a", "b"]
    assert r.frame.rows() == [("007", "1.50", 2)]


def test_many_columns_and_long_lines(tmp_path):
    header = ",".join(f"c{i}" for i in range(2000))
    row = ",".join(str(i) for i in range(2000))
    r = read_extract(_write(tmp_path, f"{header}\n{row}\n{row}\n".encode()))
    assert r.frame.shape == (2, 2001)
    assert r.frame["c1999"].to_list() == ["1999", "1999"]


def test_rows_in_equals_frame_rows_plus_malformed_rows(tmp_path):
    r = read_extract(_write(tmp_path, b'a,b\n1,2\n"3\n3",4,5\n\n   \n6,"7\n"\n8\n'))
    assert r.frame["row_number"].to_list() == [2, 7]
    assert [m.row_number for m in r.malformed] == [3, 9]
    assert r.rows_in == r.frame.height + len(r.malformed) == 4


def test_file_modes_are_not_changed(tmp_path):
    p = _write(tmp_path, b"a\n1\n")
    before = stat.S_IMODE(p.stat().st_mode)
    read_extract(p)
    assert stat.S_IMODE(p.stat().st_mode) == before
