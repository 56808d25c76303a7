"""Runs are serialisable: overlapping runs on one warehouse give the result of some one-at-a-time order.

A run holds the warehouse from its first read to its commit; a second run waits (and says so), then
computes from what the first committed. A writer that ignores the lock cannot make a run publish
figures from a stale snapshot: the commit refuses and writes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

import etl.core.warehouse as warehouse_mod
from etl.core import progress
from etl.core.warehouse import StaleSnapshot, Warehouse, WarehouseBusy
from etl.loading import pipeline
from tests.conftest import crime, write_month, write_population

REPO = Path(__file__).resolve().parents[1]
MONTHS = ("2019-01", "2019-02")


def month_rows(month: str, n: int) -> list[dict]:
    codes = ["8N", "34B", "28E", "45", "1", "28E"]
    return [crime(f"{month}-{i}", f"{month}-{(i % 27) + 1:02d}", codes[i % len(codes)]) for i in range(n)]


@pytest.fixture
def two_months(source: Path) -> Path:
    write_population(source, {2018: 1000, 2019: 1010})
    write_month(source, "2019-01", month_rows("2019-01", 30), [{"crime_ref": "2019-01-3", "outcome_type": "1", "outcome_date": "2019-01-28"}])
    write_month(source, "2019-02", month_rows("2019-02", 45), [{"crime_ref": "2019-02-4", "outcome_type": "2", "outcome_date": "2019-02-20"}])
    return source


def figures(path: Path) -> dict[str, pl.DataFrame]:
    """The published state of a warehouse, without run ids and timestamps (they differ between runs)."""
    wh = Warehouse(path)
    out = {}
    for table in ("recorded_crime", "crime_outcomes", "quarantine", "measures", "spc"):
        frame = wh.read(table)
        assert frame is not None, table
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[table] = frame.sort(frame.columns)
    loads = wh.read("audit_runs").filter(pl.col("kind") == "load")
    out["loads"] = loads.select("force_id", "month", "rows_in", "rows_loaded", "rows_quarantined").sort("month")
    return out


def assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    for table in a:
        assert a[table].equals(b[table]), table


def sequential(source: Path, path: Path) -> dict[str, pl.DataFrame]:
    for m in MONTHS:
        pipeline.load_month(source, m, path)
    return figures(path)


def test_a_run_that_overlaps_another_waits_and_computes_from_its_commit(two_months, tmp_path, monkeypatch):
    monkeypatch.setattr(warehouse_mod, "LOCK_REPORT_EVERY", 0.1)
    expected = sequential(two_months, tmp_path / "sequential")
    wh = tmp_path / "overlapping"
    a_at_commit, go, b_waits = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hook(event: str, data: dict) -> None:
        me = threading.current_thread().name
        if event == "before_commit" and me == "run-a":
            a_at_commit.set()  # A has computed its measures from a snapshot without B's month
            assert go.wait(30)
        if event == "lock_wait" and me == "run-b":
            b_waits.set()

    def load(month: str) -> None:
        try:
            pipeline.load_month(two_months, month, wh)
        except BaseException as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    a = threading.Thread(target=load, args=("2019-01",), name="run-a")
    b = threading.Thread(target=load, args=("2019-02",), name="run-b")
    with progress.listening(hook):
        a.start()
        assert a_at_commit.wait(60)
        b.start()
        assert b_waits.wait(30), "the second run must wait for the warehouse, and say so"
        go.set()
        a.join(60)
        b.join(60)
    assert not errors, errors
    got = figures(wh)
    assert_same(got, expected)
    # both months are in the published figures: the later run's measures include the earlier run's month
    assert set(got["measures"]["period_end"].unique().to_list()) >= set(MONTHS)


def test_the_same_force_month_run_twice_at_once_equals_one_after_the_other(two_months, tmp_path):
    sequential(two_months, tmp_path / "sequential")
    pipeline.load_month(two_months, "2019-02", tmp_path / "sequential")  # the re-run, after the first
    expected = figures(tmp_path / "sequential")
    wh = tmp_path / "overlapping"
    pipeline.load_month(two_months, "2019-01", wh)
    threads = [threading.Thread(target=pipeline.load_month, args=(two_months, "2019-02", wh)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert_same(figures(wh), expected)
    assert Warehouse(wh).read("audit_runs").filter(pl.col("kind") == "load").height == 3


def test_a_commit_refuses_a_snapshot_that_moved_and_writes_nothing(two_months, warehouse):
    pipeline.load_month(two_months, "2019-01", warehouse)
    wh = Warehouse(warehouse)
    before = {t: wh._log_version(t) for t in wh._delta_tables()}

    def rogue_writer(event: str, data: dict) -> None:
        # a writer that ignores the lock records a run while this one computes
        if event == "before_commit":
            other = Warehouse(warehouse)
            other._append_run({"run_id": "rogue", "kind": "measures", "outcome": "success"}, other.committed_versions())

    with progress.listening(rogue_writer), pytest.raises(StaleSnapshot, match="changed while run load-.* was computing"):
        pipeline.load_month(two_months, "2019-02", warehouse)
    after = {t: wh._log_version(t) for t in wh._delta_tables()}
    assert after == {**before, "audit_runs": before["audit_runs"] + 1}  # only the rogue's row
    assert wh.read("recorded_crime")["month"].unique().to_list() == ["2019-01"]


def test_a_busy_warehouse_is_refused_after_the_timeout_with_nothing_written(two_months, warehouse, monkeypatch):
    pipeline.load_month(two_months, "2019-01", warehouse)
    wh = Warehouse(warehouse)
    before = {t: wh._log_version(t) for t in wh._delta_tables()}
    holder_ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Warehouse(warehouse).lock():
            holder_ready.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holder_ready.wait(10)
        monkeypatch.setenv("ETL_LOCK_TIMEOUT", "0.3")
        with pytest.raises(WarehouseBusy, match=r"another run is writing to this warehouse \(pid \d+ on .*\) and did not finish within 0 s"):
            pipeline.load_month(two_months, "2019-02", warehouse)
    finally:
        release.set()
        t.join(10)
    assert {t: wh._log_version(t) for t in wh._delta_tables()} == before


@pytest.mark.slow
def test_two_etl_run_processes_at_once_both_succeed_with_the_sequential_figures(two_months, tmp_path):
    expected = sequential(two_months, tmp_path / "sequential")
    wh = tmp_path / "overlapping"
    env = {**os.environ, "ETL_ENGINE": "local"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "etl", "run", "--source", str(two_months), "--month", m, "--warehouse", str(wh)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in MONTHS
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    assert_same(figures(wh), expected)
