"""The Prefect flows end to end, on Prefect's test harness (a temporary local API server)."""

import polars as pl
import pytest

from etl.core.warehouse import Warehouse
from tests.conftest import crime, write_month, write_population

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_monthly_flow_loads_and_a_bad_month_fails_cleanly(prefect, tmp_path):
    from etl.flows.monthly import backfill, monthly_load

    source, warehouse = tmp_path / "s", tmp_path / "w"
    write_population(source, {2019: 100_000})
    for m in ("2019-01", "2019-02"):
        write_month(source, m, [crime(f"{m}-a", f"{m}-03", "34B"), crime(f"{m}-b", f"{m}-04", "BAD")])
    state = monthly_load(str(source), "2019-01", str(warehouse), return_state=True)
    assert state.is_completed()
    (report,) = state.result()
    assert (report["rows_in"], report["rows_loaded"], report["rows_quarantined"]) == (3, 2, 1)  # 2 crimes + 1 population row

    write_month(source, "2019-03", [crime("late", "2019-04-01")])
    state = monthly_load(str(source), "2019-03", str(warehouse), return_state=True)
    assert state.is_failed()
    assert "2019-03/recorded_crime.csv" in state.message and "outside the extract's month" in state.message

    result = backfill(str(source), "2019-01", "2019-03", str(warehouse))
    assert [m["outcome"] for m in result["months"]] == ["loaded", "loaded", "failed"]
    wh = Warehouse(warehouse)
    assert wh.read("recorded_crime").group_by("month").len().sort("month").rows() == [("2019-01", 1), ("2019-02", 1)]
    assert wh.read("quarantine")["row_number"].to_list() == [3, 3]
    assert wh.read("measures").filter(pl.col("period_end") == "2019-02").height > 0


def test_backfill_flow_loads_batches_as_the_local_backfill_does(prefect, tmp_path, monkeypatch):
    """The Prefect backfill of a folder loads its months in batches (one load-months task per batch): the
    same month reports, in month order, and the same tables as `etl.loading.backfill` without Prefect."""
    import threading

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from etl.flows.monthly import backfill as backfill_flow
    from etl.loading import files
    from etl.loading.backfill import backfill as backfill_local

    reads: list[str] = []  # the thread of every file read: the flow's tasks read the next batch ahead too
    real = files.read_extract
    monkeypatch.setattr(files, "read_extract", lambda path, data=None: reads.append(threading.current_thread().name) or real(path, data))
    monkeypatch.setenv("ETL_BATCH_MONTHS", "3")
    source = tmp_path / "s"
    write_population(source, {2019: 100_000})
    for m in ("2019-01", "2019-02", "2019-04", "2019-05", "2019-06"):  # 2019-03 missing
        write_month(source, m, [crime(f"{m}-a", f"{m}-03", "34B"), crime(f"{m}-b", f"{m}-04", "BAD")])
    write_month(source, "2019-05", [crime("late", "2019-06-01")])  # fails: a crime outside its month

    state = backfill_flow(str(source), "2019-01", "2019-06", str(tmp_path / "flow"), return_state=True)
    flow_result = state.result()
    assert "read-ahead_0" in reads and len(reads) == 5 + 1  # five months' files and the population file, each once
    local = backfill_local(source, "2019-01", "2019-06", tmp_path / "local")

    outcomes = [(m["month"], m["outcome"]) for m in flow_result["months"]]
    assert outcomes == [(m.month, m.outcome) for m in local.months]
    assert outcomes == [
        ("2019-01", "loaded"),
        ("2019-02", "loaded"),
        ("2019-03", "missing"),
        ("2019-04", "loaded"),
        ("2019-05", "failed"),
        ("2019-06", "loaded"),
    ]
    assert "2019-05/recorded_crime.csv" in flow_result["months"][4]["message"]
    for table, key in (("recorded_crime", ["crime_ref"]), ("quarantine", ["source_file", "row_number"])):
        got, want = Warehouse(tmp_path / "flow").read(table), Warehouse(tmp_path / "local").read(table)
        drop = [c for c in ("load_run_id", "loaded_at", "run_id") if c in got.columns]
        assert got.drop(drop).sort(key).equals(want.drop(drop).sort(key)), table

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    names = sorted(r.name.rsplit("-", 1)[0] for r in runs)
    assert names.count("load-months") == 2  # the five planned months in batches of three: 01, 02, 04 | 05, 06
    assert "load-month" not in names
