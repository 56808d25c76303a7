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
