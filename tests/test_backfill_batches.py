"""A backfill loads several months of a force per commit (`etl.loading.batches`) and must give exactly what
loading the months one by one gives: curated tables, quarantine, the verdicts in audit_checks, measures."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from etl.core.periods import months_between
from etl.core.warehouse import Warehouse
from etl.loading import batches, pipeline
from tests.conftest import crime, write_month, write_population

FIRST, LAST = "2018-07", "2019-10"


def _source(root: Path, force: str = "test-force") -> Path:
    """Sixteen months of a force: 2019-03 never sent, 2019-01's file broken, references repeated across
    months (inside a batch and across batches), an outcome of a crime never loaded, a month three times
    the usual burglary, an outcome dated before its crime, which is recorded the month after (quarantined
    only when that month is already loaded: a look-up sees the months loaded before, never after)."""
    months = [str(m) for m in months_between(FIRST, LAST)]
    for i, m in enumerate(months):
        if m == "2019-03":
            continue
        burglaries = 60 if m == "2019-08" else 20 + (i % 3)
        rows = [crime(f"{m}-b{k}", f"{m}-{k % 28 + 1:02d}", "28E", force=force) for k in range(burglaries)]
        rows += [crime(f"{m}-v{k}", f"{m}-{k % 28 + 1:02d}", "8N", force=force, age=str(20 + k)) for k in range(30 + (i % 4))]
        rows.append(crime(f"{m}-bad", f"{m}-03", "99Z", force=force))  # quarantined: not in the code list
        if m in ("2018-09", "2019-05", "2019-06"):
            rows += [crime("2018-08-b1", f"{m}-20", "28E", force=force), crime("2018-07-v2", f"{m}-21", "8N", force=force)]  # loaded before
        outcomes = [{"crime_ref": f"{m}-b0", "outcome_type": "18", "outcome_date": f"{m}-28"}]
        if m == "2019-06":
            outcomes.append({"crime_ref": "OLD-2017-1", "outcome_type": "1", "outcome_date": "2019-06-28"})
        if m == "2018-10":
            outcomes.append({"crime_ref": "2018-11-b3", "outcome_type": "1", "outcome_date": "2018-10-01"})  # before its crime (November)
        write_month(root, m, rows, outcomes)
    (root / "2019-01" / "recorded_crime.csv").write_text("crime_ref,force_id\nX1,test-force\n", encoding="utf-8")
    write_population(root, {2018: 500_000, 2019: 510_000}, force=force)
    return root


def _tables(wh: Path) -> dict[str, pl.DataFrame]:
    w = Warehouse(wh)
    out = {}
    for table in ("recorded_crime", "crime_outcomes", "quarantine", "measures", "population", "key_index", "volume_counts"):
        frame = w.read(table)
        assert frame is not None, table
        frame = frame.drop([c for c in ("run_id", "computed_at") if c in frame.columns])
        out[table] = frame.sort(frame.columns, nulls_last=True)
    checks = ["force_id", "month", "extract", "source_file", "check", "column", "passed", "failing_rows", "rows_checked", "detail"]
    out["audit_checks"] = w.read("audit_checks").select(checks).sort(checks, nulls_last=True)  # type: ignore[union-attr]
    runs = w.read("audit_runs").filter(pl.col("kind") == "load")  # type: ignore[union-attr]
    out["audit_runs"] = runs.select("force_id", "month", "outcome", "rows_in", "rows_loaded", "rows_quarantined", "source_files", "message").sort("month")
    return out


def _reports(report) -> list[tuple]:
    return [(r.month, r.outcome, r.force_id, r.rows_in, r.rows_loaded, r.rows_quarantined, r.message, tuple(r.warnings)) for r in report.months]


@pytest.fixture(scope="module")
def month_by_month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("mbm")
    source = _source(root / "src")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ETL_BATCH_MONTHS", "1")
        report = pipeline.backfill(source, FIRST, LAST, root / "wh")
    return source, root / "wh", report


@pytest.mark.parametrize("months", ["5", "12"])
def test_batched_backfill_equals_month_by_month(month_by_month, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, months: str) -> None:
    source, one_by_one, expected = month_by_month
    commits: list[int] = []
    original = Warehouse.commit

    def counting(self, run_id, writes, run_row, checks=None):
        commits.append(len(run_row) if isinstance(run_row, list) else 1)
        return original(self, run_id, writes, run_row, checks)

    monkeypatch.setattr(Warehouse, "commit", counting)
    monkeypatch.setenv("ETL_BATCH_MONTHS", months)
    report = pipeline.backfill(source, FIRST, LAST, tmp_path / "wh")
    assert _reports(report) == _reports(expected)
    assert [(r.month, r.outcome) for r in report.months if r.outcome != "loaded"] == [("2019-01", "failed"), ("2019-03", "missing")]
    # 14 months loaded in batches (one commit each) and the measures
    assert commits[:-1] == ([5, 4, 5] if months == "5" else [7, 7]), commits  # 12: 15 months in two batches of 8 and 7
    got, want = _tables(tmp_path / "wh"), _tables(one_by_one)
    for table in want:
        assert got[table].equals(want[table]), table
    checks = got["audit_checks"]
    repeated = checks.filter(pl.col("check") == "crime_ref.not_in_other_months").filter(~pl.col("passed"))
    assert repeated.select("month", "failing_rows").rows() == [("2018-09", 2), ("2019-05", 2), ("2019-06", 2)]
    gap = checks.filter((pl.col("check") == "continuity") & (pl.col("month") == "2019-04")).row(0, named=True)
    assert gap["detail"] == "2 month(s) between 2018-07 and 2019-04 are not loaded: 2019-01, 2019-03"
    assert got["quarantine"].filter(pl.col("extract") == "crime_outcomes").height == 0  # November was not loaded yet


def test_a_batched_backfill_run_again_equals_month_by_month_run_again(month_by_month, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a loaded warehouse, each month's look-ups and checks also see the later months loaded before."""
    source, _, _ = month_by_month
    runs = {}
    for label, months in (("one", "1"), ("batched", "12")):
        monkeypatch.setenv("ETL_BATCH_MONTHS", "1")
        pipeline.backfill(source, FIRST, LAST, tmp_path / label)
        monkeypatch.setenv("ETL_BATCH_MONTHS", months)
        runs[label] = _reports(pipeline.backfill(source, FIRST, LAST, tmp_path / label))
    assert runs["batched"] == runs["one"]
    got, want = _tables(tmp_path / "batched"), _tables(tmp_path / "one")
    for table in want:
        assert got[table].equals(want[table]), table
    q = got["quarantine"].filter(pl.col("extract") == "crime_outcomes")
    assert q.select("month", "row_number", "failed_checks").rows() == [("2018-10", 3, "outcome_date_not_before_recorded_date")]


def test_a_batch_that_cannot_be_loaded_together_is_loaded_month_by_month(month_by_month, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, one_by_one, expected = month_by_month

    def broken(groups):
        raise RuntimeError("not today")

    monkeypatch.setattr(batches, "_merge", broken)
    report = pipeline.backfill(source, FIRST, LAST, tmp_path / "wh")
    assert _reports(report) == _reports(expected)
    got, want = _tables(tmp_path / "wh"), _tables(one_by_one)
    for table in ("recorded_crime", "quarantine", "audit_checks"):
        assert got[table].equals(want[table]), table


def test_batches_follow_the_size_and_month_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl.loading.sources import plan_source_month

    source = tmp_path / "src"
    for m in ("2019-01", "2019-02", "2019-03", "2019-04"):
        write_month(source, m, [crime(f"{m}-{k}", f"{m}-02") for k in range(200)])
    plans = [plan_source_month(source, m) for m in ("2019-01", "2019-02", "2019-03", "2019-04")]
    assert [len(g) for g in batches.batch_plans(plans)] == [4]
    monkeypatch.setenv("ETL_BATCH_MONTHS", "3")
    assert [len(g) for g in batches.batch_plans(plans)] == [2, 2]  # two batches, the months shared out evenly (not 3 + 1)
    monkeypatch.setenv("ETL_BATCH_MONTHS", "1")
    assert [len(g) for g in batches.batch_plans(plans)] == [1, 1, 1, 1]
    monkeypatch.setenv("ETL_BATCH_MONTHS", "24")
    size = batches.plan_bytes(plans[0])
    monkeypatch.setenv("ETL_BATCH_MB", str(2.5 * size / 1e6))
    assert [len(g) for g in batches.batch_plans(plans)] == [2, 2]
    assert [g[0].month for g in batches.batch_plans(plans)] == [plans[0].month, plans[2].month]  # in order
    monkeypatch.setenv("ETL_BATCH_MONTHS", "many")
    with pytest.raises(Exception, match="ETL_BATCH_MONTHS must be a number"):
        batches.batch_plans(plans)


def test_batches_share_the_months_out_evenly_within_the_size_limit() -> None:
    """`_even`: as many batches as filling each in turn takes, months shared out evenly - unless an even batch
    would go over the size limit (a big month), then filled in turn; a month bigger than the limit is alone."""
    plans = list(range(10))
    assert [len(g) for g in batches._even(plans, [1] * 10, 4, 100)] == [4, 3, 3]  # filled: 4 + 4 + 2
    assert [len(g) for g in batches._even(plans, [1] * 9 + [50], 24, 58)] == [5, 5]  # filled: 9 + 1; the even second holds 54
    assert [len(g) for g in batches._even(plans, [1] * 9 + [50], 24, 52)] == [9, 1]  # 54 would be over the limit
    assert [len(g) for g in batches._even(plans, [10] * 10, 24, 35)] == [3, 3, 2, 2]  # filled: 3 + 3 + 3 + 1
    assert [len(g) for g in batches._even(plans, [99] + [1] * 9, 24, 50)] == [1, 9]  # the big month alone, first
    assert batches._even(plans, [1] * 10, 4, 100)[1] == [4, 5, 6]


def test_a_region_backfill_in_batches_equals_one_force_at_a_time(tmp_path: Path) -> None:
    """Several forces per month and several months per commit: each force's checks see only its own months."""
    region = tmp_path / "region"
    for force in ("north", "south"):
        _source(region / force, force)
    together = pipeline.backfill(region, FIRST, LAST, tmp_path / "together")
    runs = Warehouse(tmp_path / "together").read("audit_runs").filter(pl.col("kind") == "load")
    assert runs["table_versions"].n_unique() < runs["month"].n_unique()  # months shared commits
    for force in ("north", "south"):
        pipeline.backfill(region / force, FIRST, LAST, tmp_path / "alone")
    a = _tables(tmp_path / "together")
    b = _tables(tmp_path / "alone")
    unprefixed = pl.col("source_file").str.replace(r"^(north|south)/", "")  # files are named relative to the source loaded
    for table in ("recorded_crime", "crime_outcomes", "quarantine", "measures", "key_index", "volume_counts"):
        frame = a[table].with_columns(unprefixed) if "source_file" in a[table].columns else a[table]
        assert frame.sort(frame.columns, nulls_last=True).equals(b[table]), table
    checks = ["force_id", "month", "extract", "check", "passed", "failing_rows", "rows_checked", "detail"]
    assert a["audit_checks"].select(checks).sort(checks, nulls_last=True).equals(b["audit_checks"].select(checks).sort(checks, nulls_last=True))
    assert sum(r.outcome == "loaded" for r in together.months) == 28
    assert json.loads(runs.filter(pl.col("force_id") == "north")["source_files"][0])[0]["file"].startswith("north/")


def test_published_statistics_and_reconciliation_in_batches_equal_month_by_month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workbook in SOURCE/reference/published is loaded by the batch's first month and seen by the later ones
    (baseline from published figures, the reconciliation at the year's end), as month by month."""
    from tests.test_published_integration import JUNE_2019, add_workbook

    if not JUNE_2019.exists():
        pytest.skip("shared/data/real is not beside the repository")
    source = tmp_path / "s"
    add_workbook(source)
    months = [f"2018-{m:02d}" for m in range(7, 13)] + [f"2019-{m:02d}" for m in range(1, 7)]
    for i, m in enumerate(months):
        rows = [crime(f"{m}-h", f"{m}-05", "1", force="west-midlands")] if i % 2 == 0 else []
        rows += [crime(f"{m}-r{k}", f"{m}-06", "34B", force="west-midlands") for k in range(3 + i % 4)]
        write_month(source, m, rows)
    got = {}
    for label, batch in (("one", "1"), ("batched", "12")):
        monkeypatch.setenv("ETL_BATCH_MONTHS", batch)
        got[label] = (_reports(pipeline.backfill(source, months[0], months[-1], tmp_path / label)), _tables_with_published(tmp_path / label))
    assert got["batched"][0] == got["one"][0]
    for table, frame in got["one"][1].items():
        assert got["batched"][1][table].equals(frame), table
    checks = got["batched"][1]["audit_checks"]
    year = checks.filter((pl.col("check") == "published.reconciliation") & (pl.col("month") == "2019-06")).row(0, named=True)
    assert year["passed"] is not None and "year ending 2019-06" in year["detail"]


def _tables_with_published(wh: Path) -> dict[str, pl.DataFrame]:
    out = _tables_light(wh)
    w = Warehouse(wh)
    pub = w.read("published_statistics")
    assert pub is not None
    out["published_statistics"] = pub.sort(pub.columns, nulls_last=True)
    return out


def _tables_light(wh: Path) -> dict[str, pl.DataFrame]:
    w = Warehouse(wh)
    out = {}
    for table in ("recorded_crime", "quarantine", "measures"):
        frame = w.read(table)
        assert frame is not None, table
        frame = frame.drop([c for c in ("run_id", "computed_at") if c in frame.columns])
        out[table] = frame.sort(frame.columns, nulls_last=True)
    checks = ["force_id", "month", "extract", "source_file", "check", "column", "passed", "failing_rows", "rows_checked", "detail"]
    out["audit_checks"] = w.read("audit_checks").select(checks).sort(checks, nulls_last=True)  # type: ignore[union-attr]
    return out
