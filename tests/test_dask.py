"""Scale-out on Dask (`etl.loading.parallel`, `etl.flows.scale`): each force's files read and validated by a
worker process of a local cluster, the rows passed back as staged Parquet paths, one commit in the parent.
It must give exactly the tables of the single-process load - curated rows, quarantine with its row numbers,
the verdicts in audit_checks - and leave nothing in the staging folder, also when the load fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from etl.core.warehouse import Warehouse
from etl.errors import ConfigError
from etl.loading import parallel, pipeline
from tests.conftest import CRIME_HEADER, crime, write_month, write_population

pytestmark = pytest.mark.slow

MONTHS = ["2019-01", "2019-02", "2019-03"]
# south's bad code: header line 1, twenty rows on lines 2-21, the row over two lines on 22-23, then lines 24 and 25
ROW_AFTER_TWO_LINES = 25


def _region(src: Path) -> Path:
    """Four forces, three months: north has a bad code every month and outcomes that look up crimes of its
    month, of the month before and of none; south has a quoted field over two lines (loaded as it is) before
    a bad code; east's February file lacks columns (that force-month fails); west has its own reference folder."""
    for i, month in enumerate(MONTHS):
        rows = [crime(f"N{month}-{k}", f"{month}-{k % 27 + 1:02d}", "8N" if k % 3 else "28E", force="north") for k in range(30)]
        rows[4]["hocr_code"] = "99Z"  # not in the code list
        outcomes = [
            {"crime_ref": f"N{month}-1", "outcome_type": "18", "outcome_date": f"{month}-28"},
            {"crime_ref": f"N{month}-9", "outcome_type": "1", "outcome_date": f"{month}-01"},  # before its crime: quarantined
            {"crime_ref": "N-NEVER", "outcome_type": "1", "outcome_date": f"{month}-20"},
        ]
        if i:
            outcomes.append({"crime_ref": f"N{MONTHS[i - 1]}-2", "outcome_type": "18", "outcome_date": f"{month}-10"})  # the month before's crime
        write_month(src / "north", month, rows, outcomes)

        path = write_month(src / "south", month, [crime(f"S{month}-{k}", f"{month}-{k % 27 + 1:02d}", force="south") for k in range(20)])
        two_lines = crime(f"S{month}-x", f"{month}-05", force="south", npu='"N\n1"')
        extra = [crime(f"S{month}-{k}", f"{month}-06", "99Z" if k == 21 else "8N", force="south") for k in range(20, 23)]
        with path.open("a", encoding="utf-8") as fh:
            for r in [two_lines, *extra]:
                fh.write(",".join(str(r.get(h, "")) for h in CRIME_HEADER) + "\n")

        write_month(src / "east", month, [crime(f"E{month}-{k}", f"{month}-{k % 27 + 1:02d}", force="east") for k in range(15)])
        write_month(src / "west", month, [crime(f"W{month}-{k}", f"{month}-{k % 27 + 1:02d}", force="west") for k in range(25)])
    (src / "east" / "2019-02" / "recorded_crime.csv").write_text("crime_ref,force_id\nE1,east\n", encoding="utf-8")
    write_population(src / "west", {2019: 300_000}, force="west")
    return src


def _tables(wh: Path) -> dict[str, pl.DataFrame]:
    w = Warehouse(wh)
    out = {}
    for table in ("recorded_crime", "crime_outcomes", "quarantine", "population"):
        frame = w.read(table)
        assert frame is not None, table
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[table] = frame.sort(frame.columns, nulls_last=True)
    checks = ["force_id", "month", "extract", "source_file", "check", "column", "severity", "passed", "failing_rows", "rows_checked", "detail"]
    runs = w.read("audit_runs").filter(pl.col("kind") == "load")  # type: ignore[union-attr]
    loads = w.read("audit_checks").filter(pl.col("run_id").is_in(runs["run_id"].implode()))  # type: ignore[union-attr]  # not the flows' expectations
    out["audit_checks"] = loads.select(checks).sort(checks, nulls_last=True)
    out["audit_runs"] = runs.select("force_id", "month", "outcome", "rows_in", "rows_loaded", "rows_quarantined", "source_files", "message").sort(
        "month", "force_id"
    )
    return out


def _same_tables(a: Path, b: Path) -> None:
    ta, tb = _tables(a), _tables(b)
    for name in ta:
        assert ta[name].equals(tb[name]), name


def _reports(reports) -> list[tuple]:
    return [(r.month, r.force_id, r.outcome, r.rows_in, r.rows_loaded, r.rows_quarantined, r.message, tuple(r.warnings)) for r in reports]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _region(tmp_path_factory.mktemp("dask") / "src")


@pytest.fixture(scope="module")
def on_dask() -> Iterator[parallel.RunUnits]:
    """A local cluster of two worker processes for the module."""
    with parallel.dask_client(2) as run_units:
        yield run_units


@pytest.fixture
def staging_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "staging"
    monkeypatch.setenv("ETL_STAGING_DIR", str(folder))
    return folder


def _staged_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_month_on_dask_gives_the_tables_of_one_process(source: Path, on_dask, staging_dir: Path, tmp_path: Path) -> None:
    one = pipeline.load_source_month(source, "2019-02", tmp_path / "one")
    reports = parallel.load_source_month(source, "2019-02", tmp_path / "dask", on_dask)
    assert _reports(reports) == _reports(one)
    assert [(r.force_id, r.outcome) for r in reports] == [(None, "failed"), ("north", "loaded"), ("south", "loaded"), ("west", "loaded")]
    assert (reports[0].message or "").startswith("east/2019-02/recorded_crime.csv: column 'recorded_date', 'offence_date'")
    _same_tables(tmp_path / "one", tmp_path / "dask")
    q = Warehouse(tmp_path / "dask").read("quarantine")
    assert q is not None
    assert sorted(q.select("force_id", "extract", "row_number", "failed_checks").rows()) == [
        ("north", "crime_outcomes", 3, "outcome_date_not_before_recorded_date"),
        ("north", "recorded_crime", 6, "hocr_code.code_list"),
        ("south", "recorded_crime", ROW_AFTER_TWO_LINES, "hocr_code.code_list"),
    ]
    curated = Warehouse(tmp_path / "dask").read("recorded_crime")
    assert curated is not None and curated.filter(pl.col("crime_ref") == "S2019-02-x")["npu"].to_list() == ["N\n1"]
    m = Warehouse(tmp_path / "dask").read("measures")
    assert m is not None and m.height > 0
    assert _staged_files(staging_dir) == []


def test_a_backfill_on_dask_gives_the_tables_of_one_process(source: Path, on_dask, staging_dir: Path, tmp_path: Path) -> None:
    one = pipeline.backfill(source, MONTHS[0], MONTHS[-1], tmp_path / "one")
    commits: list[str] = []
    original = Warehouse.commit

    def counting(self, run_id, *args, **kwargs):
        commits.append(run_id)
        return original(self, run_id, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Warehouse, "commit", counting)
        rep = parallel.backfill(source, MONTHS[0], MONTHS[-1], tmp_path / "dask", on_dask)
    assert [c.split("-")[0] for c in commits] == ["load", "measures"]  # the three months in one batch: one load commit, then the measures
    assert _reports(rep.months) == _reports(one.months)
    assert [(r.month, r.force_id, r.outcome) for r in rep.months if r.outcome != "loaded"] == [("2019-02", None, "failed")]
    _same_tables(tmp_path / "one", tmp_path / "dask")
    assert rep.measure_rows == one.measure_rows > 0
    assert _staged_files(staging_dir) == []


def test_a_failed_commit_leaves_nothing_staged_and_nothing_written(source: Path, on_dask, staging_dir: Path, tmp_path: Path, monkeypatch) -> None:
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Warehouse, "commit", broken)
    with pytest.raises(OSError, match="disk full"):
        parallel.load_source_month(source, "2019-01", tmp_path / "wh", on_dask)
    assert _staged_files(staging_dir) == []
    assert Warehouse(tmp_path / "wh").read("recorded_crime") is None


def test_a_lone_force_folder_fails_as_in_one_process(source: Path, on_dask, staging_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(pipeline.LoadFailed) as one:
        pipeline.load_source_month(source / "east", "2019-02", tmp_path / "one")
    with pytest.raises(pipeline.LoadFailed) as dask:
        parallel.load_source_month(source / "east", "2019-02", tmp_path / "dask", on_dask)
    assert (dask.value.message, dask.value.rule) == (one.value.message, one.value.rule)
    assert dask.value.rule == "columns_present" and "2019-02/recorded_crime.csv" in dask.value.message
    assert _staged_files(staging_dir) == []


def test_the_flows_on_prefect_dask_give_the_tables_of_one_process(source: Path, staging_dir: Path, tmp_path: Path) -> None:
    from etl.flows.monthly import backfill, monthly_load

    one = pipeline.backfill(source, MONTHS[0], MONTHS[-1], tmp_path / "one")
    result = backfill(str(source), MONTHS[0], MONTHS[-1], str(tmp_path / "dask"), workers=2)
    assert [(m["month"], m["force_id"], m["outcome"], m["rows_in"], m["rows_quarantined"]) for m in result["months"]] == [
        (r.month, r.force_id, r.outcome, r.rows_in, r.rows_quarantined) for r in one.months
    ]
    _same_tables(tmp_path / "one", tmp_path / "dask")
    state = monthly_load(str(source), "2019-03", str(tmp_path / "dask"), workers=2, return_state=True)
    assert state.is_completed()
    assert [(r["force_id"], r["outcome"]) for r in state.result()] == [("east", "loaded"), ("north", "loaded"), ("south", "loaded"), ("west", "loaded")]
    assert _staged_files(staging_dir) == []


def test_dask_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_DASK_WORKERS", raising=False)
    monkeypatch.delenv("ETL_DASK_ADDRESS", raising=False)
    assert parallel.dask_settings() == (0, None) and not parallel.wanted()
    monkeypatch.setenv("ETL_DASK_WORKERS", "3")
    monkeypatch.setenv("ETL_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    assert parallel.dask_settings() == (3, "tcp://10.0.0.1:8786")
    assert parallel.dask_settings(0, None) == (0, "tcp://10.0.0.1:8786")
    monkeypatch.setenv("ETL_DASK_WORKERS", "many")
    with pytest.raises(ConfigError, match="ETL_DASK_WORKERS must be a whole number"):
        parallel.dask_settings()
    with pytest.raises(ConfigError, match="must be 0 or more"):
        parallel.dask_settings(-1)
