"""A backfill reads the next batch's files while a batch is written (`etl.loading.files.reading_ahead`): each file
is read once, a file changed since it was read ahead is read again, and the loaded tables are those of reading
every file in its turn."""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path

import polars as pl
import pytest

from etl.core.extracts import RawExtract
from etl.core.warehouse import Warehouse
from etl.loading import files, pipeline
from tests.conftest import crime, write_month

backfill_module = importlib.import_module("etl.loading.backfill")
MONTHS = ["2019-01", "2019-02", "2019-03", "2019-04", "2019-05"]


def _source(root: Path) -> Path:
    for i, m in enumerate(MONTHS):
        write_month(root, m, [crime(f"{m}-{k}", f"{m}-{k % 28 + 1:02d}", "28E" if k % 2 else "8N") for k in range(20 + i)])
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(file name, thread name) of every file read."""
    seen: list[tuple[str, str]] = []
    real = files.read_extract

    def counted(path: Path, data: bytes | None = None) -> RawExtract:
        seen.append((f"{Path(path).parent.name}/{Path(path).name}", threading.current_thread().name))
        return real(path, data)

    monkeypatch.setattr(files, "read_extract", counted)
    return seen


def test_a_file_read_ahead_is_taken_as_read_and_not_read_again(tmp_path: Path, reads: list[tuple[str, str]]) -> None:
    source = _source(tmp_path / "src")
    paths = [source / m / "recorded_crime.csv" for m in MONTHS[:3]]
    direct = [r.frame for r in files.read_files(paths, source)]  # type: ignore[union-attr]
    reads.clear()
    with files.reading_ahead() as ahead:
        ahead.queue([(p, source) for p in paths])
        ahead.start()
        got = files.read_files(paths, source)
    assert [g.frame.equals(d) for g, d in zip(got, direct, strict=True)] == [True, True, True]  # type: ignore[union-attr]
    assert sorted(reads) == [(f"{m}/recorded_crime.csv", "read-ahead_0") for m in MONTHS[:3]]


def test_a_file_changed_after_it_was_read_ahead_is_read_again(tmp_path: Path, reads: list[tuple[str, str]]) -> None:
    source = _source(tmp_path / "src")
    path = source / MONTHS[0] / "recorded_crime.csv"
    with files.reading_ahead() as ahead:
        ahead.queue([(path, source)])
        ahead.start()
        ahead._started[path][1].result()  # read ahead, then changed
        write_month(source, MONTHS[0], [crime("X1", f"{MONTHS[0]}-02")])
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        (got,) = files.read_files([path], source)
    assert isinstance(got, RawExtract) and got.frame["crime_ref"].to_list() == ["X1"]
    assert [t for _, t in reads] == ["read-ahead_0", "MainThread"]


def test_a_file_the_thread_had_not_reached_is_read_in_its_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[tuple[str, str]]) -> None:
    source = _source(tmp_path / "src")
    first, second = (source / m / "recorded_crime.csv" for m in MONTHS[:2])
    release = threading.Event()
    counted = files.read_extract

    def slow(path: Path, data: bytes | None = None) -> RawExtract:
        if Path(path) == first:
            release.wait(10)
        return counted(path, data)

    monkeypatch.setattr(files, "read_extract", slow)
    with files.reading_ahead() as ahead:
        ahead.queue([(first, source), (second, source)])
        ahead.start()
        (got,) = files.read_files([second], source)  # the thread is still on the first file
        release.set()
    assert isinstance(got, RawExtract) and got.frame.height == 21
    assert sorted(reads) == [(f"{MONTHS[0]}/recorded_crime.csv", "read-ahead_0"), (f"{MONTHS[1]}/recorded_crime.csv", "MainThread")]


@pytest.mark.parametrize("months", ["1", "2"])  # a month per commit (a national source's months), or several
def test_a_backfill_reads_each_file_once_some_ahead_and_loads_what_reading_in_turn_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[tuple[str, str]], months: str
) -> None:
    source = _source(tmp_path / "src")
    monkeypatch.setenv("ETL_BATCH_MONTHS", months)
    ahead = pipeline.backfill(source, MONTHS[0], MONTHS[-1], tmp_path / "ahead", measures=False)
    by_thread = {t for _, t in reads}
    assert sorted(n for n, _ in reads) == sorted(f"{m}/recorded_crime.csv" for m in MONTHS)  # each file once
    assert "read-ahead_0" in by_thread and by_thread - {"read-ahead_0"}  # the batches after the first read ahead, the first not
    monkeypatch.setattr(files, "reading_ahead", lambda: pytest.fail("not read ahead here"))
    report = backfill_module.load_range(source, MONTHS[0], MONTHS[-1], lambda group: backfill_module.load_months(group, Warehouse(tmp_path / "turn")))
    assert [r.outcome for r in report] == [r.outcome for r in ahead.months] == ["loaded"] * 5
    for table in ("recorded_crime", "key_index", "volume_counts", "audit_checks"):
        want, got = (Warehouse(tmp_path / w).read(table) for w in ("turn", "ahead"))
        assert want is not None and got is not None, table
        want, got = (f.drop([c for c in ("run_id", "checked_at") if c in f.columns]) for f in (want, got))
        assert got.sort(got.columns, nulls_last=True).equals(want.sort(want.columns, nulls_last=True)), table
    assert pl.read_delta(str(tmp_path / "ahead" / "recorded_crime")).height == sum(20 + i for i in range(5))
