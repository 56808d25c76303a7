"""The warehouse in a bucket of a real S3 API server on loopback (moto's server mode; deltalake, polars and s3fs talk
to it over HTTP, no mock of a client): `etl run`, `etl measures` (as of a run too) and `etl report` against
``s3://bucket/prefix`` give the tables and figures of the same months loaded into a folder; the lock is a lease
object that a second writer waits for and is refused by plainly; a run killed in its commit is rolled back by the
next one once its lease expires; a landing zone in a bucket is copied into the warehouse's raw area in the bucket."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from etl.core.faults import FAULT_EXIT
from etl.core.storage import Location
from etl.core.warehouse import Warehouse
from tests.conftest import S3_CREDENTIALS, crime, write_month, write_population

pytestmark = pytest.mark.slow

BUCKET = "warehouses"
TABLES = ("recorded_crime", "quarantine", "population", "measures", "audit_checks")


@pytest.fixture(scope="module")
def s3(s3_server):
    fs, endpoint = s3_server
    fs.mkdir(BUCKET)
    fs.mkdir("landing-zone")
    return fs, endpoint


def months(folder: Path, forces: list[str], ms: list[str]) -> Path:
    """Force folders, each with its population and, per month, two crimes (one of them quarantined)."""
    for force in forces:
        write_population(folder / force, {2019: 100_000}, force=force)
        for m in ms:
            write_month(folder / force, m, [crime(f"{force}-{m}-a", f"{m}-03", "34B", force=force), crime(f"{force}-{m}-b", f"{m}-04", "BAD", force=force)])
    return folder


def etl(endpoint: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        **S3_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "ETL_ENGINE": "local",
        "PREFECT_API_URL": "",
        "ETL_WORK_DIR": str(cwd / "work"),
        "ETL_LANDING_SETTLE_SECONDS": "1",
        **env,
    }
    environ.pop("ETL_WAREHOUSE", None)
    return subprocess.run([sys.executable, "-m", "etl", *args], env=environ, cwd=cwd, capture_output=True, text=True, timeout=600)


def same_text(text: str, warehouse: str) -> str:
    """Command output with the warehouse's name, the run ids and the times taken out."""
    text = re.sub(r"\b[a-z]+-\d{8}T\d{6}\S*", "RUN", " ".join(text.replace(warehouse, "W").split()))
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "TIME", text)


def table(wh: Warehouse, name: str) -> pl.DataFrame:
    frame = wh.read(name)
    assert frame is not None, name
    frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
    return frame.sort(frame.columns)


def test_a_warehouse_in_a_bucket_holds_what_a_folder_holds_and_reads_back_as_of_a_run(s3, tmp_path):
    fs, endpoint = s3
    source = months(tmp_path / "src", ["north", "south"], ["2019-01", "2019-02"])
    url = f"s3://{BUCKET}/main"
    for m in ("2019-01", "2019-02"):
        done = etl(endpoint, tmp_path, "run", "--source", str(source), "--month", m, "--warehouse", url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"loaded {m} for north: 3 rows in = 2 loaded + 1 quarantined" in done.stdout
        assert f"quarantined rows are in {url}/quarantine" in done.stdout
        done = etl(endpoint, tmp_path, "run", "--source", str(source), "--month", m, "--warehouse", str(tmp_path / "local"))
        assert done.returncode == 0, done.stdout + done.stderr
    remote, local = Warehouse(url), Warehouse(tmp_path / "local")
    for name in TABLES:
        assert table(remote, name).equals(table(local, name)), name
    assert not (tmp_path / "warehouse").exists()  # nothing written to a local warehouse folder
    assert not fs.exists(f"{BUCKET}/main/.etl.lock")  # the lease is released
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{BUCKET}/main/audit_runs/_delta_log")) == sorted(
        os.listdir(tmp_path / "local" / "audit_runs" / "_delta_log")
    )  # the same commits and checkpoints
    docs = list((tmp_path / "work").glob("warehouses-*/gx/uncommitted/data_docs/local_site/index.html"))
    assert len(docs) == 1  # the Data Docs of a warehouse in a bucket: in its local work folder

    shown = etl(endpoint, tmp_path, "measures", "--warehouse", url, "--force", "north", "--month", "2019-02")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    same = etl(endpoint, tmp_path, "measures", "--warehouse", str(tmp_path / "local"), "--force", "north", "--month", "2019-02")
    assert same_text(shown.stdout, url) == same_text(same.stdout, str(tmp_path / "local"))
    first = remote.read("audit_runs").filter(pl.col("kind") == "load").sort("commit_seq")["run_id"][0]
    before = etl(endpoint, tmp_path, "measures", "--warehouse", url, "--force", "north", "--month", "2019-01", "--as-of", first)
    assert before.returncode == 0, before.stdout + before.stderr
    assert f"as of run {first}" in before.stdout

    traced = etl(endpoint, tmp_path, "trace", "--warehouse", url, "--measure", "nm_nc_total", "--month", "2019-02", "--force", "north")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    local_trace = etl(endpoint, tmp_path, "trace", "--warehouse", str(tmp_path / "local"), "--measure", "nm_nc_total", "--month", "2019-02", "--force", "north")
    assert same_text(traced.stdout, url) == same_text(local_trace.stdout, str(tmp_path / "local"))

    out = tmp_path / "report"
    done = etl(endpoint, tmp_path, "report", "--warehouse", url, "--force", "north", "--month", "2019-02", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "index.html").is_file()
    assert json.loads((out / "report.json").read_text())["warehouse"] == url


def test_a_second_writer_waits_for_the_lease_and_is_refused_plainly_with_nothing_changed(s3, tmp_path):
    fs, endpoint = s3
    source = months(tmp_path / "src", ["north"], ["2019-01"])
    url = f"s3://{BUCKET}/busy"
    wh = Warehouse(url)
    with wh.lock():
        assert fs.exists(f"{BUCKET}/busy/.etl.lock")
        started = time.monotonic()
        done = etl(endpoint, tmp_path, "run", "--source", str(source), "--month", "2019-01", "--warehouse", url, ETL_LOCK_TIMEOUT="3")
        waited = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{url}: another run is writing to this warehouse (pid {os.getpid()} on " in done.stderr
    assert "did not finish within 3 s; nothing was changed" in done.stderr and "Traceback" not in done.stderr
    assert waited >= 3
    assert not fs.exists(f"{BUCKET}/busy/.etl.lock")
    assert Warehouse(url).committed_versions() == {} and not fs.exists(f"{BUCKET}/busy/recorded_crime")


def test_an_expired_lease_is_taken_over_and_the_killed_run_rolled_back(s3, tmp_path):
    fs, endpoint = s3
    source = months(tmp_path / "src", ["north"], ["2019-01", "2019-02"])
    url = f"s3://{BUCKET}/crash"
    assert etl(endpoint, tmp_path, "run", "--source", str(source), "--month", "2019-01", "--warehouse", url).returncode == 0
    committed = Warehouse(url).committed_versions()
    killed = etl(
        endpoint, tmp_path, "run", "--source", str(source), "--month", "2019-02", "--warehouse", url, ETL_FAULT="commit.after_write#1", ETL_LEASE_SECONDS="3"
    )
    assert killed.returncode == FAULT_EXIT, killed.stdout + killed.stderr
    assert fs.exists(f"{BUCKET}/crash/.etl.lock")  # its holder died: the lease is left until it expires
    assert Warehouse(url).committed_versions() == committed  # the half-written run is not read
    assert table(Warehouse(url), "recorded_crime")["crime_ref"].to_list() == ["north-2019-01-a"]
    again = etl(endpoint, tmp_path, "run", "--source", str(source), "--month", "2019-02", "--warehouse", url, ETL_LEASE_SECONDS="3")
    assert again.returncode == 0, again.stdout + again.stderr
    runs = Warehouse(url).read("audit_runs")
    assert runs.filter(pl.col("kind") == "recovery").height == 1
    assert sorted(table(Warehouse(url), "recorded_crime")["crime_ref"].to_list()) == ["north-2019-01-a", "north-2019-02-a"]


def test_a_landing_zone_in_a_bucket_is_copied_into_the_raw_area_of_the_warehouse_in_a_bucket(s3, tmp_path):
    fs, endpoint = s3
    local = months(tmp_path / "src", ["north"], ["2019-01"])
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe(f"landing-zone/in/{path.relative_to(local).as_posix()}", path.read_bytes())
    url = f"s3://{BUCKET}/landed"
    done = etl(endpoint, tmp_path, "run", "--source", "s3://landing-zone/in", "--month", "2019-01", "--warehouse", url)
    assert done.returncode == 0, done.stdout + done.stderr
    entries = [e for s in Warehouse(url).read("audit_runs").filter(pl.col("kind") == "load")["source_files"] for e in json.loads(s)]
    assert sorted(e["file"] for e in entries) == ["north/2019-01/recorded_crime.csv", "north/reference/population.csv"]
    for e in entries:
        data = (local / e["file"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert e["raw"] == f"{url}/raw/{digest}.csv" and fs.cat(e["raw"].removeprefix("s3://")) == data
    # the staging folders of the load are gone from the local work folder
    work = Location.of(url)
    assert not any(p.is_dir() for p in (tmp_path / "work").glob(f"{BUCKET}-*/.landing/2019-01-*")), work


def test_a_backfill_on_dask_stages_in_a_bucket_and_writes_a_warehouse_in_a_bucket_as_one_process_does(s3, tmp_path, monkeypatch):
    """Workers on other machines share no disk: the rows they validate are staged under ETL_SHARED_STAGING (a prefix
    in the bucket), the parent commits them to the warehouse in the bucket, and the staging prefix is removed."""
    from etl.core import staging
    from etl.loading import parallel, pipeline
    from tests.test_dask import MONTHS, _region, _same_tables

    fs, _ = s3
    source = _region(tmp_path / "src")
    monkeypatch.setenv("ETL_SHARED_STAGING", f"s3://{BUCKET}/staging")
    url = f"s3://{BUCKET}/dask"
    one = pipeline.backfill(source, MONTHS[0], MONTHS[-1], tmp_path / "one")
    staged: list[str] = []
    close = staging.SharedStage.close

    def closing(self):  # what the workers staged, seen just before the stage is removed
        staged.extend(fs.ls(self.location.key()))
        close(self)

    monkeypatch.setattr(staging.SharedStage, "close", closing)
    with parallel.dask_client(2) as on_dask:
        rep = parallel.backfill(source, MONTHS[0], MONTHS[-1], url, on_dask)
    assert [(r.month, r.force_id, r.outcome, r.rows_in, r.rows_quarantined) for r in rep.months] == [
        (r.month, r.force_id, r.outcome, r.rows_in, r.rows_quarantined) for r in one.months
    ]
    _same_tables(tmp_path / "one", url)  # type: ignore[arg-type]
    # 14 files validated (twelve force-months of crimes but the failed one, three of outcomes): curated + quarantined
    assert len(staged) == 2 * 14 and all(p.endswith(("-clean.parquet", "-quarantine.parquet")) for p in staged)
    assert not fs.exists(f"{BUCKET}/staging") or fs.ls(f"{BUCKET}/staging", refresh=True) == []


def test_a_run_that_lost_its_lease_publishes_nothing_and_leaves_the_tables_to_the_new_holder(s3, tmp_path, monkeypatch):
    """A holder that stalled past its lease (its renewals stopped) and was taken over cannot commit: checked on the
    store before its writes and again before its audit_runs row."""
    from etl.core import lease as leases
    from etl.core import warehouse as warehouses

    fs, _ = s3
    monkeypatch.setenv("ETL_LEASE_SECONDS", "3")
    url = f"s3://{BUCKET}/stalled"
    wh = Warehouse(url)
    frame = pl.DataFrame({"k": [1]})
    with wh.lock():
        mine = warehouses._lease(wh.location)
        mine._stop.set()  # a stalled process: no more renewals
        mine._renewer.join()
        time.sleep(3.5)
        other = leases.Lease(wh.location, warehouses.LOCK_FILE)
        assert other.try_acquire() == (True, "")  # expired: taken over
        assert not mine.still_held()
        with pytest.raises(warehouses.LeaseLost, match=f"{url}: run r1 lost the warehouse lock .*; nothing was written. Run it again"):
            wh.commit("r1", [warehouses.Write("t", frame)], {"run_id": "r1", "kind": "load"})
        other.release()
    assert not fs.exists(f"{BUCKET}/stalled/t") and Warehouse(url).committed_versions() == {}
    assert not fs.exists(f"{BUCKET}/stalled/.etl.lock")


def test_a_landed_month_on_dask_is_read_by_the_workers_from_the_raw_area_in_the_bucket(s3, tmp_path, monkeypatch):
    """Workers on other machines cannot see the staging folder a landed month is laid out in: with the warehouse in
    a bucket they read each file's raw copy from it. Shown by spoiling the staging folder's copies of the month's
    extracts after landing: the Dask load still gives the tables of the clean files loaded in one process."""
    from etl.loading import landing, parallel, pipeline
    from tests.test_dask import _region, _tables

    fs, endpoint = s3
    monkeypatch.setenv("ETL_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("ETL_LANDING_SETTLE_SECONDS", "0")
    local = _region(tmp_path / "src")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe(f"landing-zone/dask/{path.relative_to(local).as_posix()}", path.read_bytes())
    url = f"s3://{BUCKET}/landed-dask"
    landed = landing.land_month("s3://landing-zone/dask", "2019-02", url, settings=landing.WaitSettings("stable", settle_seconds=0.0, poll_seconds=0.1))
    assert landed.staging is not None and all(r.startswith(f"{url}/raw/") for r in landed.raw.values())
    spoiled = 0
    for rel in [r for r in landed.raw if "/2019-02/" in r]:  # the month's extracts (the reference data is read here)
        copy = Path(landed.staging) / rel
        copy.unlink()  # the raw cache it was linked to stays as it was
        copy.write_text("crime_ref,force_id\nspoiled,x\n", encoding="utf-8")
        spoiled += 1
    assert spoiled == 5  # four forces' crimes and north's outcomes
    with parallel.dask_client(2) as on_dask:
        reports = landing.load_landed(landed, url, load=parallel.folder_loader(on_dask))
    one = pipeline.load_source_month(local, "2019-02", tmp_path / "one")
    assert sorted((r.force_id or "", r.outcome, r.rows_in, r.rows_quarantined) for r in reports) == sorted(
        (r.force_id or "", r.outcome, r.rows_in, r.rows_quarantined) for r in one
    )
    mine, theirs = _tables(url), _tables(tmp_path / "one")  # type: ignore[arg-type]
    for name in mine:  # audit_runs' source_files name the landing zone and the raw copies in one of them
        drop = ["source_files"] if name == "audit_runs" else []
        assert mine[name].drop(drop).equals(theirs[name].drop(drop)), name
    assert not Path(landed.staging).exists()

    # the same through `etl run --workers 2` (the next month, straight from the bucket)
    done = etl(endpoint, tmp_path, "run", "--source", "s3://landing-zone/dask", "--month", "2019-03", "--warehouse", url, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded 2019-03 for north:" in done.stdout and "Traceback" not in done.stderr
