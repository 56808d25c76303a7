"""The landing zone on a real S3 API server on loopback (moto's server mode, through s3fs and botocore's
HTTP client: no mock of the client). A month's extracts uploaded to a bucket load through `etl run --source
s3://...` (AWS_ENDPOINT_URL pointing at the server) and through the monthly flow, into the same tables as
the same files loaded from a local folder; a file uploaded while the run waits is read; a force missing its
required extract at the deadline ends the flow Failed with a plain message; storage options may come from
a Prefect Secret block instead of the environment."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from etl.core.warehouse import Warehouse
from tests.conftest import S3_CREDENTIALS, crime, write_month, write_population

pytestmark = pytest.mark.slow

BUCKET = "landing"
PREFIX = "police"
URL = f"s3://{BUCKET}/{PREFIX}"
CREDENTIALS = S3_CREDENTIALS
TABLES = ("recorded_crime", "quarantine", "population", "measures")


@pytest.fixture(scope="module")
def s3(s3_server):
    """The S3 server with the landing bucket."""
    fs, endpoint = s3_server
    fs.mkdir(BUCKET)
    return fs, endpoint


def write_landing(folder: Path, month: str, forces: list[str]) -> Path:
    """A folder of force folders: each force's month (two crimes, one of them quarantined) and population."""
    for force in forces:
        write_population(folder / force, {2019: 100_000}, force=force)
        write_month(
            folder / force,
            month,
            [crime(f"{force}-{month}-a", f"{month}-03", "34B", force=force), crime(f"{force}-{month}-b", f"{month}-04", "BAD", force=force)],
        )
    return folder


def upload(fs, folder: Path, prefix: str = PREFIX) -> list[str]:
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{BUCKET}/{prefix}/{path.relative_to(folder).as_posix()}"
        fs.pipe(key, path.read_bytes())
        keys.append(key)
    return keys


def tables_equal(a: Path, b: Path) -> None:
    for table in TABLES:
        x, y = Warehouse(a).read(table), Warehouse(b).read(table)
        assert x is not None and y is not None, table
        x, y = x.drop([c for c in ("run_id",) if c in x.columns]), y.drop([c for c in ("run_id",) if c in y.columns])
        assert x.sort(x.columns).equals(y.sort(y.columns)), table


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_etl_run_from_a_bucket_gives_the_tables_of_the_same_files_loaded_from_a_folder(s3, tmp_path):
    fs, endpoint = s3
    local = write_landing(tmp_path / "local", "2019-01", ["north", "south"])
    upload(fs, local, "run")
    wh, wh_local = tmp_path / "wh", tmp_path / "wh-local"
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "ETL_LANDING_SETTLE_SECONDS": "1", "ETL_ENGINE": "local", "PREFECT_API_URL": ""}
    cmd = [sys.executable, "-m", "etl", "run", "--month", "2019-01"]
    done = subprocess.run([*cmd, "--source", f"s3://{BUCKET}/run", "--warehouse", str(wh)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded 2019-01 for north: 3 rows in = 2 loaded + 1 quarantined" in done.stdout
    assert "loaded 2019-01 for south: 3 rows in = 2 loaded + 1 quarantined" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    done = subprocess.run([*cmd, "--source", str(local), "--warehouse", str(wh_local)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    tables_equal(wh, wh_local)
    # every file read is in the raw area under its sha256, and audit_runs points at it with the bucket as root
    runs = Warehouse(wh).read("audit_runs").filter(pl.col("kind") == "load")
    entries = [e for s in runs["source_files"] for e in json.loads(s)]
    assert sorted(e["file"] for e in entries) == [
        "north/2019-01/recorded_crime.csv",
        "north/reference/population.csv",
        "south/2019-01/recorded_crime.csv",
        "south/reference/population.csv",
    ]
    for e in entries:
        data = (local / e["file"]).read_bytes()
        assert e["source_root"] == f"s3://{BUCKET}/run" and e["sha256"] == sha(data)
        assert e["raw"] == str((wh / "raw" / f"{sha(data)}.csv").resolve()) and Path(e["raw"]).read_bytes() == data
    assert not any((wh / ".landing").iterdir())


def test_etl_run_names_a_missing_bucket_plainly(s3, tmp_path):
    _, endpoint = s3
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "ETL_ENGINE": "local", "PREFECT_API_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "etl", "run", "--month", "2019-01", "--source", "s3://no-such-bucket/x", "--warehouse", str(tmp_path / "wh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "landing s3://no-such-bucket/x: no such bucket (no-such-bucket)" in done.stderr and "Traceback" not in done.stderr


def test_a_file_uploaded_while_the_run_waits_is_read(s3, tmp_path):
    from etl.loading import landing

    fs, _ = s3
    local = write_landing(tmp_path / "local", "2019-01", ["north"])
    crimes = local / "north" / "2019-01" / "recorded_crime.csv"
    late = crimes.read_bytes()
    crimes.unlink()
    upload(fs, local, "late")  # population and the month's folder, not the crimes yet
    timer = threading.Timer(2.0, lambda: fs.pipe(f"{BUCKET}/late/north/2019-01/recorded_crime.csv", late))
    timer.start()
    started = time.monotonic()
    settings = landing.WaitSettings("stable", settle_seconds=1.0, poll_seconds=0.5)
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)  # the optional extracts never come: waited for until then
    try:
        landed = landing.land_month(f"s3://{BUCKET}/late", "2019-01", tmp_path / "wh", forces=["north"], deadline=deadline, settings=settings)
    finally:
        timer.cancel()
    waited = time.monotonic() - started
    assert 7.0 <= waited < 40
    assert Path(landed.raw["north/2019-01/recorded_crime.csv"]).read_bytes() == late
    assert not landed.failed and landed.staging is not None


@pytest.fixture(scope="module")
def prefect():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_the_monthly_flow_loads_from_the_bucket_and_fails_plainly_for_a_force_without_its_required_extract(s3, prefect, tmp_path, monkeypatch):
    from prefect.blocks.system import Secret

    from etl.flows.monthly import monthly_load
    from etl.loading import landing

    fs, endpoint = s3
    monkeypatch.setenv("ETL_LANDING_SETTLE_SECONDS", "1")
    local = write_landing(tmp_path / "local", "2019-01", ["north", "south"])
    upload(fs, local, "flow")
    wh, wh_local = tmp_path / "wh", tmp_path / "wh-local"
    state = monthly_load(f"s3://{BUCKET}/flow", "2019-01", str(wh), forces=["north", "south", "east"], return_state=True)
    assert state.is_failed()
    assert state.message.startswith(f"2019-01 east failed: s3://{BUCKET}/flow/east/2019-01/recorded_crime.csv: had not arrived by the deadline ")
    assert state.message.endswith("; the recorded_crime extract is required every month (2 other force(s) of 2019-01 loaded)")
    landing.load_month_from(str(local), "2019-01", wh_local)  # the same folder of force folders, where it lies
    tables_equal(wh, wh_local)

    # the storage options from a Secret block, none from the environment
    write_landing(tmp_path / "local2", "2019-02", ["north"])
    upload(fs, tmp_path / "local2", "flow")
    Secret(value={"key": "testing", "secret": "testing", "endpoint_url": endpoint, "client_kwargs": {"region_name": "us-east-1"}}).save(
        "landing-s3", overwrite=True
    )
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k)
    state = monthly_load(f"s3://{BUCKET}/flow", "2019-02", str(wh), force_id="north", storage_options="landing-s3", return_state=True)
    assert state.is_completed(), state.message
    (report,) = state.result()
    assert (report["force_id"], report["rows_in"], report["rows_loaded"], report["rows_quarantined"]) == ("north", 3, 2, 1)
    raw = {e["raw"] for e in json.loads(Warehouse(wh).read("audit_runs").filter(pl.col("month") == "2019-02")["source_files"][0])}
    assert all(Path(p).parent == (wh / "raw").resolve() for p in raw) and len(raw) == 2


def test_the_monthly_flow_loads_from_the_bucket_into_a_warehouse_in_a_bucket_on_dask(s3, prefect, tmp_path, monkeypatch):
    from etl.flows.monthly import monthly_load
    from etl.loading import landing

    fs, _ = s3
    monkeypatch.setenv("ETL_LANDING_SETTLE_SECONDS", "1")
    monkeypatch.setenv("ETL_WORK_DIR", str(tmp_path / "work"))
    local = write_landing(tmp_path / "local", "2019-01", ["north"])
    upload(fs, local, "flow-to-bucket")
    url = f"s3://{BUCKET}/warehouse"
    # on a local Dask cluster of two workers (prefect-dask): they read the files from the raw area in the bucket
    state = monthly_load(f"s3://{BUCKET}/flow-to-bucket", "2019-01", url, forces=["north"], workers=2, return_state=True)
    assert state.is_completed(), state.message
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])))
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="validate-force-files")))
    assert subflows and any(t.flow_run_id in {f.id for f in subflows} for t in tasks)  # its validate-force-files tasks ran in a subflow
    landing.load_month_from(str(local), "2019-01", tmp_path / "wh-local")
    tables_equal(url, tmp_path / "wh-local")  # type: ignore[arg-type]
    raw = [e["raw"] for s in Warehouse(url).read("audit_runs").filter(pl.col("kind") == "load")["source_files"] for e in json.loads(s)]
    assert raw and all(r.startswith(f"{url}/raw/") and fs.exists(r.removeprefix("s3://")) for r in raw)
    assert not fs.exists(f"{BUCKET}/warehouse/.etl.lock")
