"""Crash safety: a run killed dead (``os._exit``, as ``kill -9``) at any commit point leaves the
warehouse so that the next run succeeds and the tables equal a clean run's.

`etl.core.faults.POINTS` lists the points; ``ETL_FAULT=<point>[#n]`` stops a real ``etl run`` process at
the n-th time it reaches that point. The points inside recovery are reached by killing a run first
(so that the next one has to recover) and then killing the recovering run too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from etl.core.faults import FAULT_EXIT, POINTS
from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import crime, write_month, write_population

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TABLES = ("recorded_crime", "crime_outcomes", "population", "quarantine", "measures", "spc", "audit_checks")


def month_rows(month: str, n: int, bad: int = 1) -> list[dict]:
    rows = [crime(f"{month}-{i}", f"{month}-{(i % 27) + 1:02d}", ["8N", "34B", "28E", "45"][i % 4]) for i in range(n)]
    for i in range(bad):
        rows[i]["hocr_code"] = "ZZZ"  # a quarantined row, so the quarantine table is written too
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A source of two months, a warehouse with the first loaded, and the clean result of loading the second."""
    root = tmp_path_factory.mktemp("faults")
    source = root / "source"
    write_population(source, {2018: 1000, 2019: 1010})
    for m in ("2019-01", "2019-02"):
        write_month(source, m, month_rows(m, 25), [{"crime_ref": f"{m}-3", "outcome_type": "1", "outcome_date": f"{m}-28"}])
    base = root / "base"
    pipeline.load_month(source, "2019-01", base)
    clean = root / "clean"
    shutil.copytree(base, clean)
    pipeline.load_month(source, "2019-02", clean)
    return {"source": source, "base": base, "clean": clean, "first_only": base}


def state(path: Path) -> dict[str, pl.DataFrame]:
    wh = Warehouse(path)
    out = {}
    for t in TABLES:
        frame = wh.read(t)
        assert frame is not None, t
        if t == "audit_checks":
            # the load runs' checks (the CLI also records an expectations run), each distinct check once:
            # a run killed after its audit row was committed, and its re-run records the same checks again
            frame = frame.filter(pl.col("run_id").str.starts_with("load-")).unique(subset=[c for c in frame.columns if c != "run_id"])
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[t] = frame.sort(frame.columns)
    runs = wh.read("audit_runs").filter(pl.col("kind") == "load")
    out["loads"] = runs.select("force_id", "month", "rows_in", "rows_loaded", "rows_quarantined", "source_files").unique().sort("month")
    return out


def assert_same(path: Path, expected: Path) -> None:
    got, want = state(path), state(expected)
    for t in want:
        assert got[t].equals(want[t]), t


def etl_run(source: Path, month: str, warehouse: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ETL_FAULT"}
    if fault:
        env["ETL_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "etl", "run", "--source", str(source), "--month", month, "--warehouse", str(warehouse), "--engine", "local"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


LOAD_POINTS = [
    "lock.acquired",
    "commit.start",
    "commit.before_write#1",
    "commit.after_write#1",
    "commit.before_write#3",
    "commit.after_write#4",
    "commit.after_write#7",
    "commit.after_checks",
    "commit.after_run_row",
]


def test_every_point_is_exercised():
    covered = {p.split("#")[0] for p in LOAD_POINTS} | {"commit.audit_runs_created"} | {p.split("#")[0] for p in RECOVERY_POINTS}
    assert covered == set(POINTS)


@pytest.mark.parametrize("point", LOAD_POINTS)
def test_a_run_killed_at_a_commit_point_is_repaired_by_the_next(world, tmp_path, point):
    wh = tmp_path / "wh"
    shutil.copytree(world["base"], wh)
    killed = etl_run(world["source"], "2019-02", wh, point)
    assert killed.returncode == FAULT_EXIT, killed.stderr
    assert f"fault injected at {point}" in killed.stderr
    # readers see the last complete run (or, past the audit row, the killed run itself: it was committed)
    months = sorted(Warehouse(wh).read("recorded_crime")["month"].unique().to_list())
    assert months == (["2019-01", "2019-02"] if point == "commit.after_run_row" else ["2019-01"])
    again = etl_run(world["source"], "2019-02", wh, None)
    assert again.returncode == 0, again.stderr
    assert_same(wh, world["clean"])


def test_the_first_run_of_a_new_warehouse_killed_after_creating_audit_runs(world, tmp_path):
    wh = tmp_path / "new"
    killed = etl_run(world["source"], "2019-01", wh, "commit.audit_runs_created")
    assert killed.returncode == FAULT_EXIT, killed.stderr
    again = etl_run(world["source"], "2019-01", wh, None)
    assert again.returncode == 0, again.stderr
    assert_same(wh, world["first_only"])


RECOVERY_POINTS = ["recover.start", "recover.after_restore#1", "recover.after_restore#3", "recover.before_run_row"]


@pytest.mark.parametrize("point", RECOVERY_POINTS)
def test_a_recovery_killed_part_way_is_finished_by_the_next_run(world, tmp_path, point):
    wh = tmp_path / "wh"
    shutil.copytree(world["base"], wh)
    first = etl_run(world["source"], "2019-02", wh, "commit.after_write#6")  # leaves six tables ahead
    assert first.returncode == FAULT_EXIT, first.stderr
    second = etl_run(world["source"], "2019-02", wh, point)  # killed while recovering
    assert second.returncode == FAULT_EXIT, second.stderr
    assert sorted(Warehouse(wh).read("recorded_crime")["month"].unique().to_list()) == ["2019-01"]
    third = etl_run(world["source"], "2019-02", wh, None)
    assert third.returncode == 0, third.stderr
    assert_same(wh, world["clean"])
    assert Warehouse(wh).read("audit_runs").filter(pl.col("kind") == "recovery").height >= 1
