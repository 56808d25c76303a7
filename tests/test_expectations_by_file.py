"""Expectations validated file by file (`etl.quality.expectations._ByFile`) give exactly the results of
validating the whole table, run after run, while each run validates only the files written since the last."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import etl.quality.expectations as E
from etl.core.warehouse import Warehouse, Write
from etl.quality.expectations import run_expectations

SUITE = {
    "name": "things",
    "meta": {"table": "things", "description": "test suite"},
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "k"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a", "b"]}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", "min_value": 0}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "k", "regex": "^K"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["g", "k"]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "k"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["g", "n"]}},
        {"type": "expect_column_values_to_be_null", "kwargs": {"column": "k", "row_condition": 's == "b"', "condition_parser": "pandas"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["k", "s"], "row_condition": 'g == "x"', "condition_parser": "pandas"}},
    ],
}


def _month(month: str, rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"g": pl.Utf8, "k": pl.Utf8, "s": pl.Utf8, "n": pl.Int64}, orient="row").with_columns(pl.lit(month).alias("month"))


MONTHS = {
    # a key repeated within a file, one repeated across three files, a null key, a value out of set, a negative number
    "2019-01": [("x", "K1", "a", 1), ("x", "K2", "a", 2), ("x", "K2", "b", 3), ("y", "K1", "a", 4), ("y", None, "a", 5)],
    "2019-02": [("x", "K3", "a", 6), ("x", "K1", "c", 7), ("y", "K9", "a", -1), ("y", None, "b", 5)],
    "2019-03": [("x", "K1", "a", 8), ("z", "Q1", "a", 9), ("y", "K4", None, None)],
    "2019-04": [("x", "K5", "a", 10), ("x", "K6", "b", 11)],
}


def _load(wh: Warehouse, month: str, rows: list[tuple]) -> None:
    with wh.run():
        wh.commit(f"load-{month}", [Write("things", _month(month, rows), f"month = '{month}'")], {"run_id": f"load-{month}", "kind": "load", "month": month})


def _results(report) -> list[tuple]:
    return [(c.check, c.passed, c.failing_rows, c.rows_checked) for s in report.suites for c in s.checks]


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(E, "BY_FILE_MIN_ROWS", 0)  # these tables are tiny
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "things.json").write_text(json.dumps(SUITE), encoding="utf-8")
    monkeypatch.setenv("ETL_EXPECTATIONS_DIR", str(folder))
    return folder


def _whole(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    with monkeypatch.context() as m:
        m.setattr(E, "BY_FILE", False)
        return _results(run_expectations(warehouse, commit=False))


def test_file_by_file_equals_the_whole_table_run_after_run(tmp_path: Path, suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "wh"
    wh = Warehouse(warehouse)
    for month in ("2019-01", "2019-02"):
        _load(wh, month, MONTHS[month])
    first = run_expectations(warehouse, commit=False)
    whole = _whole(warehouse, monkeypatch)
    assert _results(first) == whole
    by_check = {c: (p, f, n) for c, p, f, n in whole}
    # (x, K2) twice in a file, (x, K1) in two files, (y, null) in two files (GX compares nulls as equal here)
    assert by_check["expect_compound_columns_to_be_unique(g,k)"] == (False, 6, 9)
    assert by_check["expect_column_values_to_be_unique(k)"] == (False, 5, 9)  # K1 x3, K2 x2 (nulls are not counted)
    assert by_check["expect_compound_columns_to_be_unique(g,n)"] == (False, 2, 9)  # (y, 5) in two files
    # a GX run per file (both new), and for each of the three keys repeated across the files: one on those rows
    # of each file and one on them together
    assert first.suites[0].partitions == 2 + 3 * 3

    # nothing changed: every per-file result is remembered, only the keys repeated across files are validated again
    again = run_expectations(warehouse, commit=False)
    assert _results(again) == whole
    assert again.suites[0].partitions == 3 * 3

    # a new month (a key repeated in a third file) and a month replaced (its file removed, another written)
    _load(wh, "2019-03", MONTHS["2019-03"])
    _load(wh, "2019-01", MONTHS["2019-01"][:2] + [("y", "K1", "a", 4)])
    after = run_expectations(warehouse, commit=False)
    assert _results(after) == _whole(warehouse, monkeypatch)
    assert _results(after) != whole

    # a month without any repeated key, then the repeated keys removed
    _load(wh, "2019-04", MONTHS["2019-04"])
    assert _results(run_expectations(warehouse, commit=False)) == _whole(warehouse, monkeypatch)
    _load(wh, "2019-03", [("z", "Q1", "a", 9)])
    _load(wh, "2019-02", [("x", "K3", "a", 6)])
    last = run_expectations(warehouse, commit=False)
    assert _results(last) == _whole(warehouse, monkeypatch)
    state = json.loads((warehouse / E.BY_FILE_FOLDER / "things.json").read_text())
    assert len(state["files"]) == len(wh.files("things"))  # results of removed files are forgotten


def test_file_by_file_with_partitions_and_many_files(tmp_path: Path, suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "wh"
    wh = Warehouse(warehouse)
    for month, rows in MONTHS.items():
        _load(wh, month, rows)
    whole = _whole(warehouse, monkeypatch)
    monkeypatch.setattr(E, "CHUNK_ROWS", 2)  # each file validated in partitions (by key within the file)
    assert _results(run_expectations(warehouse, commit=False)) == whole
    monkeypatch.setattr(E, "MAX_LEADS", 1)  # zones over the key's first column only
    (warehouse / E.BY_FILE_FOLDER / "things.json").unlink()
    assert _results(run_expectations(warehouse, commit=False)) == whole
    monkeypatch.setattr(E, "MAX_SHARED_FILES", 1)  # a key in more files than this: that check on the whole table
    (warehouse / E.BY_FILE_FOLDER / "things.json").unlink()
    assert _results(run_expectations(warehouse, commit=False)) == whole


def test_zones_skip_files_that_cannot_share_a_key(tmp_path: Path, suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys growing month by month: a new file's zones overlap no earlier file's, so no file's keys are read;
    a key whose values repeat every month ((g, n)) reads the new file's keys and those of the files it overlaps."""
    warehouse = tmp_path / "wh"
    wh = Warehouse(warehouse)
    read: list[tuple[tuple[str, ...], str]] = []
    original = E._ByFile._keys

    def keys(self, path, schema, key, enc):
        read.append((tuple(key), Path(path).name))
        return original(self, path, schema, key, enc)

    monkeypatch.setattr(E._ByFile, "_keys", keys)
    for i, month in enumerate(("2019-01", "2019-02", "2019-03")):
        _load(wh, month, [("x", f"K{i}{j}", "a", j) for j in range(5)])
        run_expectations(warehouse, commit=False)
    assert {k for k, _ in read} == {("g", "n")}
    assert len(read) == 2 + 3  # the second file and the first; the third and the two before it
    assert _results(run_expectations(warehouse, commit=False)) == _whole(warehouse, monkeypatch)


CODED = {
    "name": "refs",
    "meta": {"table": "refs", "description": "a reference column only uniqueness and null checks name: GX sees numbers"},
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "r"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "r"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["g", "r"]}},
    ],
}


@pytest.mark.parametrize("repeat", [False, True])
def test_values_sharing_a_hash_never_make_a_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repeat: bool) -> None:
    """GX is given a hash of each reference (`_codes`). Two references sharing one would look like a repeat, so a
    frame where a uniqueness check finds one is validated again with exact numbers: the results are those of
    the values, whether or not every value shares a hash; GX runs again only where two values do share one."""
    monkeypatch.setattr(E, "BY_FILE_MIN_ROWS", 0)
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "refs.json").write_text(json.dumps(CODED), encoding="utf-8")
    monkeypatch.setenv("ETL_EXPECTATIONS_DIR", str(folder))
    assert E._code_safe(CODED["expectations"], ["g", "r", "month"]) >= {"g", "r"}
    warehouse = tmp_path / "wh"
    wh = Warehouse(warehouse)
    rows = [("x", f"R{i}") for i in range(6)] + [("y", None)] + ([("y", "R2")] if repeat else [])
    frame = pl.DataFrame(rows, schema={"g": pl.Utf8, "r": pl.Utf8}, orient="row").with_columns(pl.lit("2019-01").alias("month"))
    with wh.run():
        wh.commit("load-2019-01", [Write("refs", frame, "month = '2019-01'")], {"run_id": "load-2019-01", "kind": "load", "month": "2019-01"})

    exact: list[bool] = []
    codes = E._codes
    monkeypatch.setattr(E, "_codes", lambda columns, ex: exact.append(ex) or codes(columns, ex))
    honest = _results(run_expectations(warehouse, commit=False))
    by_check = {c: (p, f, n) for c, p, f, n in honest}
    assert by_check["expect_column_values_to_not_be_null(r)"] == (False, 1, 8 if repeat else 7)
    assert by_check["expect_column_values_to_be_unique(r)"] == ((False, 2, 8) if repeat else (True, 0, 7))
    assert by_check["expect_compound_columns_to_be_unique(g,r)"] == (True, 0, 8 if repeat else 7)
    assert exact == [False]  # a real repeat with every hash distinct (`_hashes_exact`): GX runs once

    (warehouse / E.BY_FILE_FOLDER / "refs.json").unlink()
    exact.clear()
    monkeypatch.setattr(E, "_hashed", lambda c: pl.when(pl.col(c).is_null()).then(None).otherwise(pl.lit(7, pl.Int64)).alias(c))  # every value one hash
    assert _results(run_expectations(warehouse, commit=False)) == honest
    assert exact == [False, True]
