"""A region or the 43 forces in one source (SOURCE/<force>/YYYY-MM/...): each month of every force is
validated together and committed at once, and must give exactly what loading each force alone gives."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import load_contract
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import ExtractInput, FileFailure, ValidationContext, validate_extract, validate_extracts
from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import crime, write_month, write_population

MONTHS = ["2019-01", "2019-02", "2019-03"]


def _crimes(force: str, prefix: str, month: str, n: int, *, bad: int = 0, repeat: bool = False) -> list[dict]:
    rows = [crime(f"{prefix}{month}-{i:03d}", f"{month}-{(i % 27) + 1:02d}", "8N" if i % 3 else "28E", force=force) for i in range(n)]
    for k in range(bad):
        rows[k]["hocr_code"] = "99Z"  # not in the code list: quarantined
    if repeat:
        rows.append(dict(rows[-1]))  # a duplicate crime_ref: the repeat is quarantined
    return rows


@pytest.fixture
def region(tmp_path: Path) -> Path:
    """Three forces: north (a bad code in February), south (a repeated reference in March), east."""
    src = tmp_path / "region"
    for month in MONTHS:
        write_month(src / "north", month, _crimes("north", "N", month, 40, bad=1 if month == "2019-02" else 0))
        write_month(src / "south", month, _crimes("south", "S", month, 30, repeat=month == "2019-03"))
        write_month(src / "east", month, _crimes("east", "E", month, 20))
    for force, pop in (("north", 400_000), ("south", 700_000), ("east", 250_000)):
        write_population(src / force, {2019: pop}, force=force)  # each force folder's own reference data
    return src


def _table(wh: Path, name: str, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    frame = Warehouse(wh).read(name)
    assert frame is not None
    return frame.drop([c for c in drop if c in frame.columns])


def test_a_region_month_is_one_commit_with_a_run_per_force(region: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    reports = pipeline.load_source_month(region, "2019-02", wh, compute=False)
    assert [(r.force_id, r.outcome, r.rows_in, r.rows_loaded, r.rows_quarantined) for r in reports] == [
        ("east", "loaded", 21, 21, 0),
        ("north", "loaded", 41, 40, 1),
        ("south", "loaded", 31, 31, 0),
    ]  # + 1 population row each
    runs = _table(wh, "audit_runs")
    assert runs.height == 3 and runs["table_versions"].n_unique() == 1  # one commit, a run row per force-month
    assert [f["file"] for f in json.loads(runs.filter(pl.col("force_id") == "north")["source_files"][0])] == [
        "north/2019-02/recorded_crime.csv",
        "north/reference/population.csv",
    ]
    assert Warehouse(wh).history("recorded_crime")[0]["operation"] in ("WRITE", "CREATE TABLE")
    assert len(Warehouse(wh).history("recorded_crime")) == 1
    q = _table(wh, "quarantine")
    assert q.select("force_id", "source_file", "row_number", "failed_checks").rows() == [
        ("north", "north/2019-02/recorded_crime.csv", 2, "hocr_code.code_list")
    ]


def test_batch_equals_loading_each_force_alone(region: Path, tmp_path: Path) -> None:
    together, alone = tmp_path / "together", tmp_path / "alone"
    report = pipeline.backfill(region, MONTHS[0], MONTHS[-1], together)
    assert report.ok and len(report.months) == 9
    for force in ("east", "north", "south"):
        pipeline.backfill(region / force, MONTHS[0], MONTHS[-1], alone)
    lineage = ("run_id",)
    for table, key in [
        ("recorded_crime", ["force_id", "crime_ref"]),
        ("quarantine", ["force_id", "source_file", "row_number"]),
        ("measures", ["force_id", "measure_id", "period", "period_end", "comparison"]),
    ]:
        a = _table(together, table, lineage).sort(key)
        b = _table(alone, table, lineage).sort(key)
        if table != "recorded_crime":  # files are named relative to the source they were loaded from
            a = a.with_columns(pl.col("source_file").str.replace(r"^[a-z]+/", "")) if "source_file" in a.columns else a
        else:
            a = a.with_columns(pl.col("source_file").str.replace(r"^[a-z]+/", ""))
        assert a.equals(b), table
    pop = ["force_id", "year", "population"]
    assert _table(together, "population").select(pop).sort(pop).equals(_table(alone, "population").select(pop).sort(pop))
    checks = ["force_id", "month", "extract", "check", "passed", "failing_rows", "rows_checked", "detail"]
    a = _table(together, "audit_checks").filter(pl.col("month").is_not_null()).select(checks).sort(checks[:4])
    b = _table(alone, "audit_checks").filter(pl.col("month").is_not_null()).select(checks).sort(checks[:4])
    assert a.equals(b)


def test_a_failing_force_is_reported_and_the_others_load(region: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    (region / "south" / "2019-01" / "recorded_crime.csv").write_text("crime_ref,force_id\nX1,south\n", encoding="utf-8")
    reports = pipeline.load_source_month(region, "2019-01", wh, compute=False)
    by_force = {r.force_id or "?": r for r in reports}
    assert by_force["east"].outcome == by_force["north"].outcome == "loaded"
    failed = [r for r in reports if r.outcome == "failed"]
    assert len(failed) == 1
    assert failed[0].message.startswith("south/2019-01/recorded_crime.csv: column 'recorded_date'")
    assert sorted(_table(wh, "recorded_crime")["force_id"].unique().to_list()) == ["east", "north"]
    assert sorted(_table(wh, "audit_runs")["force_id"].to_list()) == ["east", "north"]


def test_top_level_and_force_reference_files(region: Path, tmp_path: Path) -> None:
    """SOURCE/reference/population.csv covers every force; a force folder's own file wins for its force."""
    write_population(region, {2019: 1}, force="north")
    wh = tmp_path / "wh"
    reports = pipeline.load_source_month(region, "2019-01", wh, compute=False)
    assert all(r.outcome == "loaded" for r in reports)
    assert _table(wh, "population").select("force_id", "population").sort("force_id").rows() == [("east", 250_000), ("north", 400_000), ("south", 700_000)]
    files = {r["force_id"]: [f["file"] for f in json.loads(r["source_files"])] for r in _table(wh, "audit_runs").iter_rows(named=True)}
    assert files["east"] == ["east/2019-01/recorded_crime.csv", "reference/population.csv", "east/reference/population.csv"]
    assert files["north"] == ["north/2019-01/recorded_crime.csv", "north/reference/population.csv"]


def test_two_folders_with_the_same_force_are_refused(region: Path, tmp_path: Path) -> None:
    write_month(region / "east-copy", "2019-01", _crimes("east", "E", "2019-01", 20))
    reports = pipeline.load_source_month(region, "2019-01", tmp_path / "wh", compute=False)
    failed = [r for r in reports if r.outcome == "failed"]
    assert [r.message for r in failed] == ["east-copy and east both hold east's 2019-01; keep one"]


def test_rerunning_a_region_month_replaces_only_that_month(region: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    pipeline.backfill(region, MONTHS[0], MONTHS[-1], wh)
    before = _table(wh, "recorded_crime", ("run_id",)).sort("force_id", "crime_ref")
    pipeline.load_source_month(region, "2019-02", wh)
    after = _table(wh, "recorded_crime", ("run_id",)).sort("force_id", "crime_ref")
    assert after.equals(before)


def test_batch_validation_judges_each_file_alone(tmp_path: Path) -> None:
    """A reference repeated across two files of a batch is not a duplicate; within one file it is."""
    contract = load_contract("recorded_crime")
    a = write_month(tmp_path / "a", "2019-01", [crime("R1", "2019-01-05", force="a"), crime("R2", "2019-01-06", force="a")])
    b = write_month(
        tmp_path / "b", "2019-01", [crime("R1", "2019-01-05", force="b"), crime("R1", "2019-01-07", force="b"), crime("R3", "2019-01-07", force="a")]
    )
    c = write_month(tmp_path / "c", "2019-01", [crime("R9", "2019-02-01", force="c")])
    m = Month.parse("2019-01")
    inputs = [ExtractInput(read_extract(p), ValidationContext(month=m, force_id=f), str(p)) for p, f in ((a, "a"), (b, "b"), (c, "c"))]
    ra, rb, rc = validate_extracts(contract, inputs)
    assert ra.rows_quarantined == 0 and ra.rows_loaded == 2
    assert rb.quarantine.select("row_number", "failed_checks").rows() == [(3, "crime_ref.unique"), (4, "force_id.matches_extract")]
    assert isinstance(rc, FileFailure) and rc.rule == "recorded_date.in_extract_month"
    # the same outcome as validating each alone, check by check
    for inp, together in ((inputs[0], ra), (inputs[1], rb)):
        single = validate_extract(contract, inp.raw, inp.ctx, inp.source_file)
        assert single.quarantine.equals(together.quarantine) and single.clean.equals(together.clean)
        assert [c.__dict__ for c in single.checks] == [c.__dict__ for c in together.checks]


def test_run_command_on_a_region_loads_the_good_forces_and_exits_1(region: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from etl.cli.app import app

    (region / "north" / "2019-01" / "recorded_crime.csv").write_bytes(b"")
    r = CliRunner().invoke(app, ["run", "--source", str(region), "--month", "2019-01", "--warehouse", str(tmp_path / "wh"), "--engine", "local"])
    assert r.exit_code == 1
    assert "loaded 2019-01 for east: 21 rows in = 21 loaded + 0 quarantined" in r.output
    assert "loaded 2019-01 for south" in r.output
    assert "north/2019-01/recorded_crime.csv: is empty (no header and no rows)" in r.output
    assert "Traceback" not in r.output


def test_area_lists_top_level_and_per_force(region: Path, tmp_path: Path) -> None:
    """SOURCE/reference/areas.csv lists every force's areas; a force folder's own list replaces it for that force."""
    from tests.conftest import write_csv

    write_csv(
        region / "reference" / "areas.csv",
        ["force_id", "npu"],
        [{"force_id": f, "npu": "N1"} for f in ("north", "south")] + [{"force_id": "east", "npu": "ZZ"}],
    )
    write_csv(region / "east" / "reference" / "areas.csv", ["force_id", "npu"], [{"force_id": "east", "npu": "N1"}])
    reports = pipeline.load_source_month(region, "2019-01", tmp_path / "wh", compute=False)
    assert [(r.force_id, r.rows_quarantined) for r in reports] == [("east", 0), ("north", 0), ("south", 0)]  # every crime is in N1
    write_csv(region / "reference" / "areas.csv", ["force_id", "area"], [{"force_id": "north", "area": "N1"}])
    reports = pipeline.load_source_month(region, "2019-01", tmp_path / "wh2", compute=False)
    assert {(r.force_id, r.outcome) for r in reports} == {("east", "loaded"), (None, "failed")}
    assert {r.message for r in reports if r.outcome == "failed"} == {"reference/areas.csv: needs columns force_id and npu (missing npu)"}


def test_one_force_of_a_region(region: Path, tmp_path: Path) -> None:
    reports = pipeline.load_source_month(region, "2019-01", tmp_path / "wh", force_id="south", compute=False)
    assert [(r.force_id, r.outcome) for r in reports] == [("south", "loaded")]
    with pytest.raises(pipeline.LoadFailed, match="no force folder named west holds 2019-01"):
        pipeline.load_source_month(region, "2019-01", tmp_path / "wh", force_id="west", compute=False)


def test_a_month_followed_stage_by_stage_gives_what_the_load_gives(region: Path, tmp_path: Path) -> None:
    """The named stages, run by hand in order, each on the previous stage's output."""
    from etl.loading import stages
    from etl.loading.sources import plan_source_month

    plan = plan_source_month(region, "2019-02")
    assert [u.root.name for u in plan.units] == ["east", "north", "south"] and not plan.single
    wh = Warehouse(tmp_path / "staged")
    with wh.run():
        read = stages.read_files(stages.start(plan))
        assert [sorted(u.raws) for u in read.units] == [["recorded_crime"]] * 3
        validated = stages.validate_references(stages.validate(read, wh), wh)
        assert [(u.force, [r.rows_quarantined for r in u.results], [r.contract.extract for r in u.references.results]) for u in validated.units] == [
            ("east", [0], ["population"]),
            ("north", [1], ["population"]),
            ("south", [0], ["population"]),
        ]
        checked = stages.check_across_months(validated, wh)
        writes = stages.build_writes(checked, wh)
        assert [w.table for w in writes.writes] == ["recorded_crime", "quarantine", "population", "key_index", "volume_counts"]
        writes = stages.compute_measures(checked, writes, wh)
        assert [w.table for w in writes.writes][-2:] == ["measures", "spc"]
        staged = stages.commit(checked, writes, wh)
    loaded = pipeline.load_source_month(region, "2019-02", tmp_path / "loaded")
    fields = [(r.force_id, r.outcome, r.rows_in, r.rows_loaded, r.rows_quarantined, r.message) for r in staged]
    assert fields == [(r.force_id, r.outcome, r.rows_in, r.rows_loaded, r.rows_quarantined, r.message) for r in loaded]
    for table in ("recorded_crime", "quarantine", "measures"):
        drop = ("run_id", "computed_at")
        assert _table(tmp_path / "staged", table, drop).sort(pl.all()).equals(_table(tmp_path / "loaded", table, drop).sort(pl.all())), table


def test_every_stage_logs_one_line_with_run_id_and_counts_never_a_value(region: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="etl.loading")
    (region / "south" / "2019-02" / "recorded_crime.csv").write_bytes(b"")
    reports = pipeline.load_source_month(region, "2019-02", tmp_path / "wh")
    assert [(r.force_id, r.outcome) for r in reports] == [("east", "loaded"), ("north", "loaded"), (None, "failed")]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("etl.loading.")]
    key = f"run {reports[0].run_id} (+2) 2019-02"
    for stage in ("read", "validate", "validate_references", "check_across_months", "build_writes", "compute_measures", "commit"):
        assert len([ln for ln in lines if ln.startswith(f"{key} {stage}: ")]) == 1, stage
    assert any(ln.startswith(f"{key} read: 3 file(s), 60 row(s), 1 unreadable, ") for ln in lines)
    assert any(ln.startswith(f"{key} validate: 2 file(s), 59 row(s) passed, 1 quarantined, 1 failed (south: empty_file), ") for ln in lines)
    assert any(ln.startswith(f"{key} commit: 2 force-month(s) loaded (east, north), 1 failed (south: empty_file), ") for ln in lines)
    assert any(ln.startswith("batch ") and reports[1].run_id in ln and "(north)" in ln for ln in lines)
    text = "\n".join(lines)
    assert "99Z" not in text and "N2019-02-" not in text  # the quarantined code and the crime references are values


def test_reference_files_are_validated_again_only_when_their_bytes_change(region: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later month whose reference files are the same bytes reuses their validation (same tables); a changed
    file, or a published workbook folder, is read again."""
    from etl.loading import stages

    stages._REFERENCES_SEEN.clear()
    calls: list[int] = []
    original = stages.read_references

    def counting(roots, source, wh):
        calls.append(len(roots))
        return original(roots, source, wh)

    monkeypatch.setattr(stages, "read_references", counting)
    wh = tmp_path / "wh"
    pipeline.load_source_month(region, "2019-01", wh, compute=False)
    pipeline.load_source_month(region, "2019-02", wh, compute=False)
    assert calls == [4]  # SOURCE and the three force folders, read once
    write_population(region / "north", {2019: 401_000}, force="north")
    pipeline.load_source_month(region, "2019-03", wh, compute=False)
    assert calls == [4, 4]
    assert _table(wh, "population").filter(pl.col("force_id") == "north")["population"].to_list() == [401_000]
    (region / "reference" / "published").mkdir(parents=True)
    pipeline.load_source_month(region, "2019-01", wh, compute=False)
    pipeline.load_source_month(region, "2019-02", wh, compute=False)
    assert calls == [4, 4, 4, 4]
    runs = _table(wh, "audit_runs").filter(pl.col("month") == "2019-02").sort("commit_seq")
    files = [json.loads(s) for s in runs["source_files"].to_list()]
    assert all(any(f["file"].endswith("reference/population.csv") for f in fs) for fs in files)  # recorded in every run


def test_forces_told_by_the_rows_of_a_batch_are_each_file_alone() -> None:
    """`_infer_forces` (one query for a batch's files) gives what `infer_force` gives each file: the most frequent
    force, the first in order on a tie, nulls not counted, None for a file of empty force values."""
    from etl.core.validation import _infer_forces, infer_force

    contract = load_contract("recorded_crime")
    frames = {
        0: pl.DataFrame({"force_id": ["b", "a", "b", None, None, None]}),
        1: pl.DataFrame({"force_id": ["z", "y", "y", "z"]}),  # a tie: the first in order
        3: pl.DataFrame({"force_id": [None, None]}, schema={"force_id": pl.Utf8}),
        4: pl.DataFrame({"force_id": ["only"]}),
    }
    assert _infer_forces(contract, frames) == {i: infer_force(contract, f) for i, f in frames.items()} == {0: "b", 1: "y", 3: None, 4: "only"}
    assert _infer_forces(contract, {}) == {}
