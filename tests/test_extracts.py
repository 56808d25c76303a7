"""Reading: text columns, encodings, line endings, row numbers, and files that cannot be read."""

import pytest

from etl.core.extracts import ExtractError, read_extract


def test_codes_stay_text_and_rows_keep_their_line_numbers(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"code,npu\n4.10,08\n4.1,8\n\n37.2,0009\n")
    r = read_extract(p)
    assert r.frame["code"].to_list() == ["4.10", "4.1", "37.2"]
    assert r.frame["npu"].to_list() == ["08", "8", "0009"]
    assert r.frame["row_number"].to_list() == [2, 3, 5]  # line 4 is blank
    assert r.rows_in == 3 and r.encoding == "utf-8"


@pytest.mark.parametrize(
    "data,encoding",
    [
        ("a,b\nCafé,x\n".encode(), "utf-8"),
        (b"\xef\xbb\xbf" + "a,b\nCafé,x\n".encode(), "utf-8-sig"),
        ("a,b\nCafé,x\n".encode("cp1252"), "windows-1252"),
        ("a,b\r\nCafé,x\r\n".encode("cp1252"), "windows-1252"),
        ("a,b\rCafé,x\r".encode(), "utf-8"),
    ],
)
def test_encodings_and_line_endings(tmp_path, data, encoding):
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    r = read_extract(p)
    assert r.encoding == encoding
    assert r.header == ["a", "b"]
    assert r.frame.select("a", "b", "row_number").rows() == [("Café", "x", 2)]


def test_en_dash_in_windows_1252(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes("npu\nErdington\u2013Kingstanding\n".encode("cp1252"))
    assert read_extract(p).frame["npu"].to_list() == ["Erdington\u2013Kingstanding"]


def test_rows_with_the_wrong_number_of_fields_are_kept_apart(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    r = read_extract(p)
    assert r.frame["row_number"].to_list() == [2, 5]
    assert [(m.row_number, m.actual_fields) for m in r.malformed] == [(3, 2), (4, 4)]
    assert r.rows_in == 4


def test_quoted_commas_and_whitespace(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b'a,b\n"x, y", z \n')
    r = read_extract(p)
    assert r.frame.row(0)[:2] == ("x, y", "z")


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty_file"),
        (b"   \n\n", "empty_file"),
        (b"a,b,c\n", "empty_file"),
        (b"a,b,c\n1,2,3\n4,5", "truncated_file"),
        (b"a,a,b\n1,2,3\n", "bad_header"),
        (b"\xff\xfea\x00,\x00b\x00", "encoding"),
        (b"a,b\n\x81\x8d,\x90\n", "encoding"),
    ],
)
def test_unreadable_files_fail_with_a_reason(tmp_path, data, reason):
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    with pytest.raises(ExtractError) as exc:
        read_extract(p)
    assert exc.value.reason == reason
    assert str(p) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ExtractError) as exc:
        read_extract(tmp_path / "nope.csv")
    assert exc.value.reason == "missing_file"


def test_no_final_newline_is_fine_when_the_last_row_is_whole(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\n1,2\n3,4")
    r = read_extract(p)
    assert r.frame["row_number"].to_list() == [2, 3] and not r.ends_with_newline


def test_sha256_is_of_the_bytes(tmp_path):
    import hashlib

    p = tmp_path / "x.csv"
    p.write_bytes(b"a\n1\n")
    assert read_extract(p).sha256 == hashlib.sha256(b"a\n1\n").hexdigest()
