"""The deployments of the flows (etl.flows.deployments), the run artifacts (etl.flows.artifacts), the
Failed state's message and `etl serve`'s refusals - without a server (the real server: test_prefect_server.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.flows import artifacts, deployments
from etl.flows.monthly import failure_message
from tests.test_reports import measures_frame

UTC = dt.UTC


@pytest.mark.parametrize(
    ("now", "month"),
    [
        (dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "2026-10"),  # still 30 November in London (GMT)
        (dt.datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "2026-06"),  # 00:30 on 1 July in London (BST): June is the previous month
        (dt.datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "2026-12"),
        (dt.datetime(2026, 3, 1, 0, 30), "2026-02"),  # a naive time is UTC
    ],
)
def test_the_previous_month_is_the_calendar_month_before_now_in_london(now, month):
    assert deployments.previous_month(now) == month


def test_one_concurrency_limit_name_per_warehouse_however_it_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wh").mkdir()
    a, b = deployments.warehouse_limit_name("wh"), deployments.warehouse_limit_name(str(tmp_path / "wh" / ".." / "wh"))
    assert a == b and a.startswith("etl-warehouse-") and len(a) == len("etl-warehouse-") + 12
    assert deployments.warehouse_limit_name(str(tmp_path / "other")) != a
    assert deployments.warehouse_limit_name("s3://bucket/wh") == deployments.warehouse_limit_name("s3://bucket/wh")
    assert deployments.is_url("s3://bucket/x") and deployments.is_url("file:///data") and not deployments.is_url("/data/x") and not deployments.is_url("C://x")


def test_the_deployments_schedule_parameters_and_limits(tmp_path):
    monthly, filling = deployments.build_deployments(str(tmp_path / "landing"), str(tmp_path / "wh"), force_id="west-midlands")
    assert (monthly.flow_name, monthly.name, filling.flow_name, filling.name) == ("monthly-load", "scheduled", "backfill", "on-demand")
    (schedule,) = monthly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 8 * *", "Europe/London")
    assert monthly.parameters == {"source": str(tmp_path / "landing"), "warehouse": str(tmp_path / "wh"), "force_id": "west-midlands", "month": "previous"}
    assert not filling.schedules and "first" not in filling.parameters  # given when triggered
    for d in (monthly, filling):
        assert d.concurrency_limit == 1 and d.concurrency_options.collision_strategy == "ENQUEUE"
        assert d.entrypoint in ("etl.flows.monthly.monthly_load", "etl.flows.monthly.backfill")
    other = deployments.build_deployments("s", "w", cron="30 2 * * 1", timezone="UTC", paused=True)[0]
    assert (other.schedules[0].schedule.cron, other.schedules[0].schedule.timezone, other.paused) == ("30 2 * * 1", "UTC", True)


def test_the_failed_state_names_month_force_file_and_rule():
    failed = [{"month": "2019-05", "outcome": "failed", "message": "2019-05/recorded_crime.csv: looks truncated: the last line (3112) ends without a newline"}]
    assert failure_message(failed, "2019-05", 0, "/data/landing") == (
        "2019-05 source /data/landing failed: 2019-05/recorded_crime.csv: looks truncated: the last line (3112) ends without a newline"
    )
    assert failure_message(failed, "2019-05", 0, "/data/landing", "west-midlands").startswith("2019-05 west-midlands failed: ")
    two = [{"month": "2019-05", "force_id": "a", "outcome": "failed", "message": "x.csv: row 3, column y: rule z"}]
    assert failure_message(two, "2019-05", 2) == "2019-05 a failed: x.csv: row 3, column y: rule z (2 other force(s) of 2019-05 loaded)"


def test_the_summary_artifact_counts_every_force_month():
    reports = [
        {"month": "2019-05", "force_id": "a", "outcome": "loaded", "rows_in": 1200, "rows_loaded": 1197, "rows_quarantined": 3, "message": None},
        {"month": "2019-05", "outcome": "failed", "rows_in": 0, "rows_loaded": 0, "rows_quarantined": 0, "message": "b.csv | bad"},
    ]
    text = artifacts.load_summary(reports, "Monthly load 2019-05")
    assert "| 2019-05 | a | loaded | 1,200 | 1,197 | 3 |  |" in text and "b.csv / bad" in text and "1 loaded, 1 failed or missing." in text


def test_the_headline_table_is_the_months_national_measures_rounded_as_on_the_pages():
    table = measures_frame()
    month = table.filter(pl.col("family") == "national_measure")["period_end"].max()
    force = table["force_id"][0]
    rows = artifacts.headline_rows(table, month, [force])
    expected = table.filter(
        (pl.col("period_end") == month)
        & (pl.col("family") == "national_measure")
        & (pl.col("period") == "r12")
        & pl.col("comparison").is_in(["ye_jun19", "prev_r12"])
    )["measure_id"].n_unique()
    assert expected > 0 and len(rows) == expected  # one row per measure: its ye_jun19 comparison when there is one
    assert set(rows[0]) == {"force", *artifacts.TABLE_COLUMNS} - {"force"} | {"force"}
    assert all(r["force"] == force for r in rows) and all(r["period"].startswith("12 months to ") for r in rows)
    assert artifacts.headline_rows(table, month, []) == [] and artifacts.headline_rows(None, month, [force]) == []


def test_serve_without_a_server_says_what_to_do_and_exits_2(tmp_path, monkeypatch):
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(app, ["serve", "--source", str(tmp_path), "--warehouse", str(tmp_path / "wh")])
    assert r.exit_code == 2 and "no Prefect server is configured" in r.output and "prefect server start" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["serve", "--source", str(tmp_path / "nowhere"), "--warehouse", str(tmp_path / "wh")])
    assert r.exit_code == 2 and "no such folder" in r.output


def test_prefect_yaml_declares_the_same_deployments_for_a_work_pool():
    import yaml

    declared = yaml.safe_load((Path(__file__).resolve().parents[1] / "prefect.yaml").read_text(encoding="utf-8"))
    by_name = {d["name"]: d for d in declared["deployments"]}
    monthly, filling = deployments.build_deployments("S", "W")
    scheduled, on_demand = by_name[monthly.name], by_name[filling.name]
    assert scheduled["entrypoint"] == "etl/flows/monthly.py:monthly_load" and on_demand["entrypoint"] == "etl/flows/monthly.py:backfill"
    (schedule,) = scheduled["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == (monthly.schedules[0].schedule.cron, monthly.schedules[0].schedule.timezone)
    assert set(scheduled["parameters"]) == set(monthly.parameters) - {"force_id"} and scheduled["parameters"]["month"] == "previous"
    assert set(on_demand["parameters"]) == set(filling.parameters) - {"force_id"}
    for d in (scheduled, on_demand):
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"} and d["work_pool"]["name"] == "police-etl"
    assert declared["prefect-version"].split(".")[:2] == __import__("prefect").__version__.split(".")[:2]  # the release line pyproject allows


def test_serve_refuses_landing_options_for_a_folder_and_a_negative_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached: the options are refused first
    for extra, fragment in (
        (["--forces", "a,b"], "--forces, --wait-minutes and --storage-options are for a landing URL source"),
        (["--wait-minutes", "5"], "are for a landing URL source"),
    ):
        r = CliRunner().invoke(app, ["serve", "--source", str(tmp_path), "--warehouse", str(tmp_path / "wh"), *extra])
        assert r.exit_code == 2 and fragment in r.output, r.output
    r = CliRunner().invoke(app, ["serve", "--source", "s3://bucket/landing", "--warehouse", str(tmp_path / "wh"), "--wait-minutes", "-1"])
    assert r.exit_code == 2 and "--wait-minutes -1.0: must be 0 or more" in r.output
