"""A landing zone given as a URL (etl.loading.landing), on a local folder through file:// (the S3 API on
loopback: test_landing_s3.py): waiting for complete files, the deadline's failures and warnings, raw
copies named by sha256, audit_runs pointing at them, and a local path still loaded where it lies."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from etl.core.warehouse import Warehouse
from etl.errors import ConfigError
from etl.loading import landing
from etl.loading.landing import LandingError, LandingUnavailable, WaitSettings
from etl.loading.results import LoadFailed
from tests.conftest import crime, write_month, write_population

UTC = dt.UTC
QUICK = WaitSettings("stable", settle_seconds=0.05, poll_seconds=0.05)
MARKER = WaitSettings("marker", settle_seconds=0.05, poll_seconds=0.05)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def url(folder: Path) -> str:
    return f"file://{folder}"


class FakeTime:
    """A clock and a sleep that move together; ``on_sleep`` runs at each sleep (a sender writing meanwhile)."""

    def __init__(self, on_sleep=None):
        self.now = dt.datetime.now(UTC).timestamp()
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))

    def after(self, seconds: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now + seconds, UTC)


@pytest.fixture
def landed_source(tmp_path: Path) -> Path:
    source = tmp_path / "landing"
    write_population(source, {2019: 100_000})
    write_month(source, "2019-01", [crime("a", "2019-01-03", "34B"), crime("b", "2019-01-04", "BAD")])
    return source


def test_a_local_path_is_loaded_where_it_lies_with_no_raw_copy(landed_source, tmp_path):
    wh = tmp_path / "wh"
    (report,) = landing.load_month_from(str(landed_source), "2019-01", wh)
    assert (report.outcome, report.rows_loaded, report.rows_quarantined) == ("loaded", 2, 1)
    assert not (wh / "raw").exists() and not (wh / ".landing").exists()
    files = json.loads(Warehouse(wh).read("audit_runs")["source_files"][0])
    assert {f["source_root"] for f in files} == {str(landed_source.resolve())} and not any("raw" in f for f in files)


def test_a_file_url_month_is_copied_to_raw_by_sha256_and_audit_runs_points_to_the_copies(landed_source, tmp_path):
    wh, local = tmp_path / "wh", tmp_path / "wh-local"
    (report,) = landing.load_landing_month(url(landed_source), "2019-01", wh, settings=QUICK)
    assert (report.outcome, report.rows_in, report.rows_loaded, report.rows_quarantined) == ("loaded", 3, 2, 1)
    originals = {
        "2019-01/recorded_crime.csv": landed_source / "2019-01" / "recorded_crime.csv",
        "reference/population.csv": landed_source / "reference" / "population.csv",
    }
    raw = sorted((wh / "raw").iterdir())
    assert [p.name for p in raw] == sorted(f"{sha(p)}.csv" for p in originals.values())
    for p in raw:
        assert sha(p) == p.stem  # named by its own sha256: identical bytes
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    assert list((wh / ".landing").iterdir()) == []  # the staging folder is gone after the load
    files = {f["file"]: f for f in json.loads(Warehouse(wh).read("audit_runs")["source_files"][0])}
    assert set(files) == set(originals)
    for rel, original in originals.items():
        assert files[rel]["source_root"] == url(landed_source)
        assert files[rel]["sha256"] == sha(original)
        assert files[rel]["raw"] == str((wh / "raw" / f"{sha(original)}.csv").resolve())
        assert Path(files[rel]["raw"]).read_bytes() == original.read_bytes()
    # the same tables as loading the folder where it lies
    landing.load_month_from(str(landed_source), "2019-01", local)
    for table in ("recorded_crime", "quarantine", "population", "measures"):
        a, b = Warehouse(wh).read(table), Warehouse(local).read(table)
        drop = [c for c in ("run_id",) if c in a.columns]
        assert a.drop(drop).sort(a.drop(drop).columns).equals(b.drop(drop).sort(b.drop(drop).columns)), table


def test_a_second_load_of_the_same_file_reuses_the_raw_copy(landed_source, tmp_path):
    wh = tmp_path / "wh"
    landing.load_landing_month(url(landed_source), "2019-01", wh, settings=QUICK)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (wh / "raw").iterdir()}
    landing.load_landing_month(url(landed_source), "2019-01", wh, settings=QUICK)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (wh / "raw").iterdir()} == before  # not written again
    zone = landing.open_landing(url(landed_source))
    rel = "2019-01/recorded_crime.csv"
    copy = landing.copy_to_raw(zone, rel, zone.listing()[rel], wh / "raw")
    assert copy.reused and copy.path.name == f"{sha(landed_source / rel)}.csv"
    runs = Warehouse(wh).read("audit_runs").filter(pl.col("kind") == "load")
    assert runs.height == 2
    assert len({f["raw"] for s in runs["source_files"] for f in json.loads(s) if f["extract"] == "recorded_crime"}) == 1


def test_a_file_that_changes_while_it_is_read_is_a_transient_error_and_leaves_no_copy(landed_source, tmp_path):
    zone = landing.open_landing(url(landed_source))
    rel = "2019-01/recorded_crime.csv"
    size, mtime = zone.listing()[rel]
    with pytest.raises(LandingUnavailable, match=r"recorded_crime.csv: changed while it was read; the task is retried") as caught:
        landing.copy_to_raw(zone, rel, (size - 1, mtime), tmp_path / "raw")
    assert caught.value.retryable
    assert list((tmp_path / "raw").iterdir()) == []


def test_a_file_whose_size_changes_between_listings_is_not_read_until_stable(landed_source, tmp_path):
    crimes = landed_source / "2019-01" / "recorded_crime.csv"

    def sender(n: int) -> None:
        if n == 1:  # still being written when first listed
            with crimes.open("a", encoding="utf-8") as fh:
                fh.write("c,test-force,2019-01-05,,34B,recorded,N1,E01000001,N,N,N,N,N,N,30\n")

    t = FakeTime(sender)
    settings = WaitSettings("stable", settle_seconds=10, poll_seconds=60)
    zone = landing.open_landing(url(landed_source))
    arrival = landing.await_month(zone, "2019-01", deadline=t.after(15), settings=settings, clock=t.clock, sleep=t.sleep)
    assert arrival.listings == 3 and t.sleeps == [10, 10]  # seen, changed, then the same twice (past the deadline: settling is finished)
    assert arrival.ready["2019-01/recorded_crime.csv"][0] == crimes.stat().st_size
    assert arrival.missing() and all(not e.required for e in arrival.missing())  # optional extracts only
    # loaded through land_month: the copy holds the finished file
    t2 = FakeTime()
    landed = landing.land_month(url(landed_source), "2019-01", tmp_path / "wh", deadline=t2.after(0), settings=QUICK, clock=t2.clock, sleep=t2.sleep)
    assert Path(landed.raw["2019-01/recorded_crime.csv"]).read_bytes() == crimes.read_bytes()


def test_a_file_still_changing_at_the_deadline_is_never_read(landed_source, tmp_path):
    crimes = landed_source / "2019-01" / "recorded_crime.csv"

    def sender(n: int) -> None:
        with crimes.open("a", encoding="utf-8") as fh:
            fh.write(f"c{n},test-force,2019-01-05,,34B,recorded,N1,E01000001,N,N,N,N,N,N,30\n")

    t = FakeTime(sender)
    settings = WaitSettings("stable", settle_seconds=5, poll_seconds=60)
    with pytest.raises(LoadFailed) as caught:
        landing.load_landed(
            landing.land_month(url(landed_source), "2019-01", tmp_path / "wh", deadline=t.after(12), settings=settings, clock=t.clock, sleep=t.sleep),
            tmp_path / "wh",
        )
    assert caught.value.rule == "file.present"
    assert caught.value.message.startswith(f"{url(landed_source)}/2019-01/recorded_crime.csv: was still being written at the deadline ")
    assert caught.value.message.endswith("; not read; the recorded_crime extract is required every month")
    assert not (tmp_path / "wh" / "raw").exists() or list((tmp_path / "wh" / "raw").iterdir()) == []  # nothing copied


def test_marker_mode_reads_a_file_only_once_its_done_marker_is_there(landed_source, tmp_path):
    wh = tmp_path / "wh"
    crimes = landed_source / "2019-01" / "recorded_crime.csv"
    (landed_source / "reference" / "population.csv.done").touch()
    # no marker at the deadline: the required extract is not read, the month fails with a plain line
    with pytest.raises(LoadFailed) as caught:
        landing.load_landing_month(url(landed_source), "2019-01", wh, settings=MARKER)
    assert caught.value.message == (
        f"{url(landed_source)}/2019-01/recorded_crime.csv: had no completion marker (2019-01/recorded_crime.csv.done expected) "
        f"at the deadline {caught.value.message.split('at the deadline ')[1].split(';')[0]}; not read; the recorded_crime extract is required every month"
    )
    assert not (wh / "raw").exists()

    # the sender writes the marker while the run waits: it is read after the next listing
    t = FakeTime(lambda n: (landed_source / "2019-01" / "recorded_crime.csv.done").touch() if n == 1 else None)
    settings = WaitSettings("marker", settle_seconds=10, poll_seconds=30)
    landed = landing.land_month(url(landed_source), "2019-01", wh, deadline=t.after(120), settings=settings, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [30, 30, 30, 30]  # then waits for the optional extracts until the deadline
    (report,) = landing.load_landed(landed, wh)
    assert (report.outcome, report.rows_loaded) == ("loaded", 2)
    assert sorted(landed.raw) == ["2019-01/recorded_crime.csv", "reference/population.csv"]  # markers are not copied
    assert sorted(p.name for p in (wh / "raw").iterdir()) == sorted([f"{sha(crimes)}.csv", f"{sha(landed_source / 'reference' / 'population.csv')}.csv"])


def test_an_optional_extract_missing_at_the_deadline_is_a_warning_and_the_month_loads(landed_source, tmp_path):
    (report,) = landing.load_landing_month(url(landed_source), "2019-01", tmp_path / "wh", settings=QUICK)
    calls = [w for w in report.warnings if "/2019-01/calls.csv" in w]
    assert len(calls) == 1 and calls[0].startswith(f"{url(landed_source)}/2019-01/calls.csv: had not arrived by the deadline ")
    assert calls[0].endswith("; the optional calls extract is loaded without it")
    assert sum("had not arrived by the deadline" in w for w in report.warnings) == 13  # one per optional extract of the profile


def test_a_force_missing_its_required_extract_fails_by_name_and_the_others_load(tmp_path):
    source, wh = tmp_path / "landing", tmp_path / "wh"
    write_population(source / "north", {2019: 100_000}, force="north")
    write_month(source / "north", "2019-01", [crime("n1", "2019-01-03", "34B", force="north")])
    (source / "south" / "2019-01").mkdir(parents=True)  # south's month folder exists but its recorded crime never came
    (source / "south" / "2019-01" / "calls.csv").write_text("call_ref\n", encoding="utf-8")
    t = FakeTime()
    landed = landing.land_month(
        url(source), "2019-01", wh, forces=["north", "south", "east"], deadline=t.after(0), settings=QUICK, clock=t.clock, sleep=t.sleep
    )
    reports = {r.force_id: r for r in landing.load_landed(landed, wh)}
    assert reports["north"].outcome == "loaded" and reports["north"].rows_loaded == 2
    for force in ("south", "east"):
        assert reports[force].outcome == "failed"
        assert reports[force].message.startswith(f"{url(source)}/{force}/2019-01/recorded_crime.csv: had not arrived by the deadline ")
        assert reports[force].message.endswith("; the recorded_crime extract is required every month")
    assert not any("calls.csv" in p for p in landed.raw)  # a failed force's files are not read or copied
    assert Warehouse(wh).read("recorded_crime")["force_id"].unique().to_list() == ["north"]

    from etl.flows.monthly import failure_message

    failed = [r.to_dict() for r in reports.values() if r.outcome == "failed"]
    message = failure_message(failed, "2019-01", 1, url(source))
    assert message.startswith(f"2019-01 south failed: {url(source)}/south/2019-01/recorded_crime.csv: had not arrived by the deadline ")
    assert f"; 2019-01 east failed: {url(source)}/east/2019-01/recorded_crime.csv" in message and message.endswith("(1 other force(s) of 2019-01 loaded)")


def test_the_month_files_of_each_layout(tmp_path):
    files = ["2019-01/recorded_crime.csv", "2019-01/calls.csv", "reference/population.csv", "reference/published/a.xlsx", "reference/notes.txt"]
    plan = landing.month_files(files, "2019-01")
    assert plan.layout == "force" and plan.forces() == [None] and plan.reference == {None: ["reference/population.csv", "reference/published/a.xlsx"]}
    assert sorted(plan.present) == [(None, "calls"), (None, "recorded_crime")]
    assert [e.rel for e in plan.expected if e.required] == ["2019-01/recorded_crime.csv"]

    files = [
        "a/2019-01/recorded_crime.csv",
        "a/2018-12/recorded_crime.csv",
        "a/reference/areas.csv",
        "b/2018-12/recorded_crime.csv",
        "reference/population.csv",
    ]
    plan = landing.month_files(files, "2019-01")
    assert plan.layout == "folders" and plan.forces() == ["a"]  # b has not sent the month: not expected unless named
    assert plan.reference == {None: ["reference/population.csv"], "a": ["a/reference/areas.csv"]}
    plan = landing.month_files(files, "2019-01", forces=["a", "b"])
    assert plan.forces() == ["a", "b"] and ("b", "recorded_crime") not in plan.present
    assert landing.month_files(["b/2018-12/recorded_crime.csv"], "2019-01", force_id="b").layout == "folders"  # the named force's folder is there
    assert landing.month_files([], "2019-01", forces=["a"]).layout == "folders"

    files = ["street/2019-01-city-of-london-street.csv", "2019-01-avon-and-somerset-outcomes.csv", "reference/2019-01-x-street.csv"]
    plan = landing.month_files(files, "2019-01")
    assert plan.layout == "police_uk" and plan.forces() == ["avon-and-somerset", "city-of-london"]
    assert plan.present == {
        ("avon-and-somerset", "police_uk_outcomes"): ["2019-01-avon-and-somerset-outcomes.csv"],
        ("city-of-london", "police_uk_street"): ["street/2019-01-city-of-london-street.csv"],
    }
    assert not any(e.required for e in plan.expected)


def test_the_raw_area_is_not_a_table_recovery_leaves_it_and_a_first_copy_is_not_refused(landed_source, tmp_path):
    from deltalake import write_deltalake

    wh = tmp_path / "wh"
    t = FakeTime()
    landed = landing.land_month(url(landed_source), "2019-01", wh, deadline=t.after(0), settings=QUICK, clock=t.clock, sleep=t.sleep)
    assert (wh / "raw").is_dir() and not (wh / "audit_runs").exists()  # copied, not loaded yet: a warehouse of raw files only
    landing.load_landed(landed, wh)  # not refused as "tables without audit_runs"
    raw = tree_digest(wh / "raw")
    # a run killed after writing a table: the next run recovers it, and the raw area is untouched
    junk = Warehouse(wh).read("recorded_crime").with_columns(pl.lit("2099-01").alias("month"))
    write_deltalake(str(wh / "recorded_crime"), junk.to_arrow(), mode="append")
    write_month(landed_source, "2019-02", [crime("f", "2019-02-03", "34B")])
    landing.load_landing_month(url(landed_source), "2019-02", wh, settings=QUICK)
    assert "2099-01" not in pl.read_delta(str(wh / "recorded_crime"))["month"].to_list()
    assert "recorded_crime: restored" in Warehouse(wh).read("audit_runs").filter(pl.col("kind") == "recovery")["message"][0]
    assert {k: v for k, v in tree_digest(wh / "raw").items() if k in raw} == raw and len(tree_digest(wh / "raw")) == len(raw) + 1
    assert "raw" not in Warehouse(wh).committed_versions()


def test_a_landing_zone_that_cannot_be_used_is_a_plain_configuration_error(tmp_path):
    with pytest.raises(LandingError, match=r"^landing file://.*/nowhere: no such folder$"):
        landing.open_landing(url(tmp_path / "nowhere"))
    with pytest.raises(LandingError, match=r"^landing nosuchscheme://x/y: "):
        landing.open_landing("nosuchscheme://x/y")
    assert (
        landing.is_landing_url("s3://b/p") and landing.is_landing_url("file:///d") and not landing.is_landing_url("/d") and not landing.is_landing_url("C://d")
    )


def test_wait_settings_and_deadlines(monkeypatch):
    assert WaitSettings.from_env({}) == WaitSettings("stable", 15.0, 60.0)
    assert WaitSettings.from_env({"ETL_LANDING_READY": "Marker", "ETL_LANDING_SETTLE_SECONDS": "2", "ETL_LANDING_POLL_SECONDS": "5"}) == WaitSettings(
        "marker", 2.0, 5.0
    )
    with pytest.raises(LandingError, match="ETL_LANDING_READY=sometimes: must be one of stable, marker"):
        WaitSettings.from_env({"ETL_LANDING_READY": "sometimes"})
    with pytest.raises(LandingError, match="ETL_LANDING_SETTLE_SECONDS=-1: must be a number of seconds, 0 or more"):
        WaitSettings.from_env({"ETL_LANDING_SETTLE_SECONDS": "-1"})
    now = dt.datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    assert landing.parse_deadline(None, None, now) == now
    assert landing.parse_deadline(None, 90, now) == dt.datetime(2026, 12, 8, 7, 30, tzinfo=UTC)
    assert landing.parse_deadline("2026-07-08T09:00", None, now) == dt.datetime(2026, 7, 8, 8, 0, tzinfo=UTC)  # London summer time
    assert landing.parse_deadline("2026-12-08T09:00+00:00", 30, now) == dt.datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # the deadline wins
    with pytest.raises(LandingError, match="deadline tomorrow: not a time"):
        landing.parse_deadline("tomorrow")


def test_landing_parameters_are_refused_for_a_local_folder_and_given_to_the_deployments(tmp_path):
    from etl.flows import deployments
    from etl.flows.monthly import month_reports

    with pytest.raises(ConfigError, match="forces and storage_options apply to a landing URL"):
        month_reports(str(tmp_path), "2019-01", str(tmp_path / "wh"), None, False, ["a"], None, None)
    monthly, filling = deployments.build_deployments(
        "s3://landing/police", str(tmp_path / "wh"), forces=["a", "b"], wait_minutes=120, storage_options="landing-s3"
    )
    assert monthly.parameters == {
        "source": "s3://landing/police",
        "warehouse": str(tmp_path / "wh"),
        "force_id": None,
        "forces": ["a", "b"],
        "storage_options": "landing-s3",
        "month": "previous",
        "wait_minutes": 120,
    }
    assert filling.parameters == {
        "source": "s3://landing/police",
        "warehouse": str(tmp_path / "wh"),
        "force_id": None,
        "forces": ["a", "b"],
        "storage_options": "landing-s3",
    }


def test_the_raw_area_keeps_a_copy_already_there(tmp_path):
    zone_dir = tmp_path / "z"
    (zone_dir / "2019-01").mkdir(parents=True)
    f = zone_dir / "2019-01" / "recorded_crime.csv"
    f.write_bytes(b"crime_ref\nA\n")
    raw = tmp_path / "raw"
    raw.mkdir()
    existing = raw / f"{sha(f)}.csv"
    existing.write_bytes(f.read_bytes())
    os.chmod(existing, 0o444)
    inode = existing.stat().st_ino
    zone = landing.open_landing(url(zone_dir))
    copy = landing.copy_to_raw(zone, "2019-01/recorded_crime.csv", zone.listing()["2019-01/recorded_crime.csv"], raw)
    assert copy.reused and copy.path == existing and existing.stat().st_ino == inode
    assert sorted(p.name for p in raw.iterdir()) == [existing.name]  # no temporary file left


def test_a_backfill_from_a_landing_url_copies_every_month_to_raw_and_gives_the_local_tables(landed_source, tmp_path, monkeypatch):
    from etl.loading.backfill import backfill

    monkeypatch.setenv("ETL_LANDING_SETTLE_SECONDS", "0")  # files long delivered: no second listing to wait for
    write_month(landed_source, "2019-02", [crime("c", "2019-02-03", "34B")])
    by_url = backfill(url(landed_source), "2019-01", "2019-03", tmp_path / "wh")
    local = backfill(str(landed_source), "2019-01", "2019-03", tmp_path / "wh-local")
    # a month with no files: "missing" from a folder; from a landing zone its required extract had not arrived: "failed"
    assert [(r.month, r.outcome) for r in local.months] == [("2019-01", "loaded"), ("2019-02", "loaded"), ("2019-03", "missing")]
    assert [(r.month, r.outcome) for r in by_url.months] == [("2019-01", "loaded"), ("2019-02", "loaded"), ("2019-03", "failed")]
    for table in ("recorded_crime", "quarantine", "measures"):
        a, b = Warehouse(tmp_path / "wh").read(table), Warehouse(tmp_path / "wh-local").read(table)
        keep = [c for c in a.columns if c not in ("run_id", "source_file")]
        assert a.select(keep).sort(keep).equals(b.select(keep).sort(keep)), table
    raw = {p.name.split(".")[0] for p in (tmp_path / "wh" / "raw").iterdir()}
    assert sha(landed_source / "2019-02" / "recorded_crime.csv") in raw and sha(landed_source / "2019-01" / "recorded_crime.csv") in raw
