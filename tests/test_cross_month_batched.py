"""The checks across months of a batch of months (`etl.loading.batches`) reuse, from one month to the next, what they
read of the committed tables (`Pending.memo`) and what they made of each month's rows: the verdicts must stay exactly
those of loading the months one by one - with a gap, a month that fails, a month loaded again with other rows and a
force whose history starts inside the volume chart's baseline window."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.core import cross_month, key_index
from etl.core.key_index import Pending
from etl.core.periods import months_between
from etl.core.warehouse import Warehouse
from etl.loading import pipeline, stages
from etl.loading.measuring import loaded_months
from etl.loading.sources import plan_source_month
from tests.conftest import crime, write_month

CHECKS = ["force_id", "month", "extract", "check", "column", "passed", "failing_rows", "rows_checked", "detail"]


def _early(root: Path, m: str, i: int) -> None:
    """Force "early": 2018-01 on, 2018-10 never sent, September 2019 three times the usual burglary; repeated
    references (of a committed month, of a month earlier in the same batch)."""
    burglaries = 66 if m == "2019-09" else 20 + (i % 3)
    rows = [crime(f"E{m}-b{k}", f"{m}-{k % 28 + 1:02d}", "28E", force="early") for k in range(burglaries)]
    rows += [crime(f"E{m}-v{k}", f"{m}-{k % 28 + 1:02d}", "8N", force="early") for k in range(30 + (i % 4))]
    if m == "2019-05":
        rows.append(crime("E2018-02-b1", f"{m}-20", "28E", force="early"))
    if m == "2019-08":
        rows += [crime("E2019-06-b2", f"{m}-20", "28E", force="early"), crime("E2019-06-v3", f"{m}-21", "8N", force="early")]
    write_month(root / "early", m, rows, [{"crime_ref": f"E{m}-b0", "outcome_type": "18", "outcome_date": f"{m}-28"}])


def _late(root: Path, m: str, i: int) -> None:
    """Force "late": its history starts in 2019-04 (inside the 24-month baseline window); 2019-07's file is broken."""
    if m < "2019-04":
        return
    rows = [crime(f"L{m}-b{k}", f"{m}-{k % 28 + 1:02d}", "28E", force="late") for k in range(10 + (i % 2))]
    rows += [crime(f"L{m}-r{k}", f"{m}-{k % 28 + 1:02d}", "34B", force="late") for k in range(5)]
    write_month(root / "late", m, rows, [{"crime_ref": "NEVER-LOADED", "outcome_type": "1", "outcome_date": f"{m}-28"}])
    if m == "2019-07":
        (root / "late" / m / "recorded_crime.csv").write_text("crime_ref,force_id\nX1,late\n", encoding="utf-8")


def _source(root: Path) -> Path:
    for i, m in enumerate(str(x) for x in months_between("2018-01", "2019-12")):
        if m != "2018-10":
            _early(root, m, i)
        _late(root, m, i)
    return root


def _load(source: Path, wh: Path, months: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """2018-01..2019-06 loaded, then early's March 2019 changed (more crimes, one of May's references) and
    2019-01..2019-12 loaded again over it, ``months`` months per commit."""
    monkeypatch.setenv("ETL_BATCH_MONTHS", months)
    pipeline.backfill(source, "2018-01", "2019-06", wh, measures=False)
    rows = [crime(f"E2019-03-x{k}", f"2019-03-{k % 28 + 1:02d}", "28E", force="early") for k in range(45)]
    rows.append(crime("E2019-05-v1", "2019-03-15", "8N", force="early"))
    write_month(source / "early", "2019-03", rows, [{"crime_ref": "E2019-03-x0", "outcome_type": "18", "outcome_date": "2019-03-28"}])
    pipeline.backfill(source, "2019-01", "2019-12", wh, measures=False)
    return wh


@pytest.fixture(scope="module")
def loads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Warehouse]:
    root = tmp_path_factory.mktemp("batched")
    out = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for months in ("1", "5"):
            out[months] = Warehouse(_load(_source(root / f"src{months}"), root / f"wh{months}", months, monkeypatch))
    return out


def _checks(wh: Warehouse) -> pl.DataFrame:
    return wh.read("audit_checks").select(CHECKS).sort(CHECKS, nulls_last=True)  # type: ignore[union-attr]


def _check(wh: Warehouse, force: str, month: str, check: str) -> list[dict]:
    return _checks(wh).filter((pl.col("force_id") == force) & (pl.col("month") == month) & (pl.col("check") == check)).to_dicts()


def test_batched_checks_equal_month_by_month(loads: dict[str, Warehouse]) -> None:
    one, batched = loads["1"], loads["5"]
    assert _checks(batched).equals(_checks(one))
    for table in (key_index.KEY_INDEX, key_index.VOLUME_COUNTS):
        a, b = one.read(table), batched.read(table)
        assert a is not None and b is not None
        assert a.sort(a.columns, nulls_last=True).equals(b.sort(b.columns, nulls_last=True)), table


def test_the_scenario_reaches_every_verdict(loads: dict[str, Warehouse]) -> None:
    """What the comparison above covers (the same in both loads)."""
    wh = loads["5"]
    # the force whose history starts inside the baseline window: too few months, then judged over its own months
    assert [c["detail"] for c in _check(wh, "late", "2019-09", "volume.within_normal_range")] == ["not checked: 4 previous month(s) loaded, 6 needed"]
    assert [c["detail"] for c in _check(wh, "late", "2019-11", "volume.within_normal_range")] == [
        "all 5 groups inside their XmR limits (2019-04..2019-10, 6 months)"
    ]
    # the month loaded again with other rows: judged again, and seen by the later months' charts (in the batch or committed)
    march = _check(wh, "early", "2019-03", "volume.within_normal_range")
    assert sorted((c["passed"], c["failing_rows"]) for c in march) == [(False, 4), (True, 0)]
    spike = _check(wh, "early", "2019-09", "volume.within_normal_range")
    assert [c["detail"] for c in spike] == [
        "2 group(s) outside their normal range in 2019-09 (XmR over 2018-01..2019-08, 19 months): "
        "all_recorded_crime: 96 vs normal range 45.8-58.8; grp_burglary_residential: 66 vs normal range 12.0-32.7"
    ]
    # the gaps: a month never sent, a month whose file failed
    assert [c["detail"] for c in _check(wh, "early", "2019-12", "continuity")] == ["1 month(s) between 2018-01 and 2019-12 are not loaded: 2018-10"]
    assert [c["detail"] for c in _check(wh, "late", "2019-08", "continuity")] == ["1 month(s) between 2019-04 and 2019-08 are not loaded: 2019-07"]
    # references of a committed month, of the month loaded again (committed later, then earlier in the batch) and
    # of a month earlier in the same batch
    repeated = _checks(wh).filter((pl.col("check") == "crime_ref.not_in_other_months") & ~pl.col("passed"))
    assert [(r["month"], r["failing_rows"], r["detail"].split(" were already loaded in: ")[1].split(";")[0]) for r in repeated.to_dicts()] == [
        ("2019-03", 1, "2019-05 (1)"),
        ("2019-05", 1, "2018-02 (1)"),
        ("2019-05", 2, "2018-02 (1), 2019-03 (1)"),
        ("2019-08", 2, "2019-06 (2)"),
    ]


def _validated(source: Path, wh: Warehouse, month: str) -> list[tuple[str, object]]:
    with wh.snapshot():
        v = stages.validate(stages.read_files(stages.start(plan_source_month(source, month))), wh)
    return [(u.force, r) for u in v.live for r in u.results]


def test_a_batch_reads_each_committed_file_once_and_answers_as_a_fresh_look_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Month by month through a batch of a force: the look-ups with the batch's memo read each index and count file
    once and give what the same look-ups give with nothing kept."""
    source = _source(tmp_path / "src") / "early"
    wh = Warehouse(tmp_path / "wh")
    monkeypatch.setenv("ETL_BATCH_MONTHS", "6")
    pipeline.backfill(source, "2018-01", "2019-02", wh.root, measures=False)
    reads: list[str] = []  # the index files read by the look-ups with the memo
    counting = [False]
    scan, read = pl.scan_parquet, pl.read_parquet

    def noted(paths: object) -> None:
        if counting[0]:
            reads.extend(p for p in (paths if isinstance(paths, list) else [paths]) if "key_index" in str(p) or "volume_counts" in str(p))

    monkeypatch.setattr(pl, "scan_parquet", lambda paths, **k: noted(paths) or scan(paths, **k))
    monkeypatch.setattr(pl, "read_parquet", lambda path, **k: noted(path) or read(path, **k))
    pending = Pending()
    committed = loaded_months(wh)
    repeats = []
    for month in ("2019-01", "2019-02", "2019-03", "2019-04", "2019-05", "2019-06"):
        items = _validated(source, wh, month)
        with wh.snapshot():
            fresh = Pending(clean=dict(pending.clean))  # the same months pending, nothing kept
            counting[0] = True
            got = cross_month.prefetch(wh, month, items, committed, pending)  # type: ignore[arg-type]
            counting[0] = False
            want = cross_month.prefetch(wh, month, items, committed, fresh)  # type: ignore[arg-type]
        assert {k: c.__dict__ for k, c in got.volume_checks.items()} == {k: c.__dict__ for k, c in want.volume_checks.items()}, month
        for k, frame in want.earlier_keys.items():
            assert frame.sort(frame.columns).equals(got.earlier_keys[k].sort(frame.columns)), (month, k)
        for k, frame in want.known_keys.items():
            assert frame.sort(frame.columns).equals(got.known_keys[k].sort(frame.columns)), (month, k)
        earlier = got.earlier_keys[("recorded_crime", "crime_ref")]
        if earlier.height:
            repeats.append((month, earlier.rows()))
        for force, r in items:
            pending.add(r.contract.extract, force, month, r.clean)  # type: ignore[attr-defined]
    assert len(reads) == len(set(reads))  # each file once
    assert any("volume_counts" in p for p in reads) and any("key_index" in p for p in reads)
    checked = [c.detail for (_, f), c in got.volume_checks.items() if f == "early"]
    assert checked == ["all 4 groups inside their XmR limits (2018-01..2019-05, 16 months)"]
    assert repeats == [("2019-05", [("early", "E2018-02-b1", "2018-02")])]  # a committed month's reference found


def test_a_batch_counted_ahead_gives_the_volume_verdicts_and_counts_of_each_month_counted_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`count_ahead` counts every month of a batch in one query before the months are checked in turn: each month's
    volume verdict and counts are those it gets counted on its own, and no month is counted again - unless its rows
    are not the ones counted ahead."""
    source = _source(tmp_path / "src") / "early"
    wh = Warehouse(tmp_path / "wh")
    monkeypatch.setenv("ETL_BATCH_MONTHS", "6")
    pipeline.backfill(source, "2018-01", "2019-02", wh.root, measures=False)
    months = ["2019-03", "2019-04", "2019-05", "2019-06"]
    validated = {m: _validated(source, wh, m) for m in months}
    changed = validated["2019-05"][0][1]
    counted_alone: list[str] = []
    alone = key_index.count_rows
    monkeypatch.setattr(key_index, "count_rows", lambda e, f, m, clean: counted_alone.append(m) or alone(e, f, m, clean))
    ahead, fresh = Pending(), Pending()
    cross_month.count_ahead(ahead, [(f, m, r) for m in months for f, r in validated[m]])  # type: ignore[misc]
    changed.clean = changed.clean.head(10)  # type: ignore[attr-defined]  # May's rows are not those counted ahead
    committed = loaded_months(wh)
    for month in months:
        items = validated[month]
        with wh.snapshot():
            got = cross_month.prefetch(wh, month, items, committed, ahead)  # type: ignore[arg-type]
            want = cross_month.prefetch(wh, month, items, committed, fresh)  # type: ignore[arg-type]
        assert {k: c.__dict__ for k, c in got.volume_checks.items()} == {k: c.__dict__ for k, c in want.volume_checks.items()}, month
        assert [("XmR" in c.detail, c.passed) for c in got.volume_checks.values()] == [(True, month != "2019-05")], month  # May: its 10 rows judged
        assert got.counts.keys() == want.counts.keys() == {("recorded_crime", "early", month)}
        for k, (ids, frame) in want.counts.items():
            assert got.counts[k][0] == ids and frame.sort(frame.columns).equals(got.counts[k][1].sort(frame.columns)), month
        for pending in (ahead, fresh):
            for force, r in items:
                pending.add(r.contract.extract, force, month, r.clean)  # type: ignore[attr-defined]
    assert counted_alone == ["2019-03", "2019-04", "2019-05", "2019-05", "2019-06"]  # the fresh batch's four, and May's changed rows


def test_what_a_month_made_of_its_rows_is_used_only_for_those_rows() -> None:
    clean = pl.DataFrame({"crime_ref": ["b", "a", None], "status": ["recorded"] * 3, "hocr_code": ["28E", "8N", "8N"]})
    other = clean.with_columns(pl.lit("z").alias("crime_ref"))
    p = Pending()
    noted = key_index.count_rows("recorded_crime", "f", "2019-01", clean)
    p.note_counts("recorded_crime", "f", "2019-01", clean, noted)
    p.note_bounds("recorded_crime", "f", "2019-01", "crime_ref", clean, ("a", "b"))
    p.add("recorded_crime", "f", "2019-01", clean)
    assert p.counts("recorded_crime", "f", "2019-01") is noted
    assert p.bounds("recorded_crime", "f", "2019-01", "crime_ref") == ("a", "b")
    q = Pending()
    q.note_counts("recorded_crime", "f", "2019-01", clean, noted)
    q.note_bounds("recorded_crime", "f", "2019-01", "crime_ref", clean, ("a", "b"))
    q.add("recorded_crime", "f", "2019-01", other)  # other rows added for the force-month: made from them
    assert q.counts("recorded_crime", "f", "2019-01") is not noted
    assert q.counts("recorded_crime", "f", "2019-01").filter(pl.col("n") > 0).sort("hocr_code")["n"].to_list() == [1, 2]
    assert q.bounds("recorded_crime", "f", "2019-01", "crime_ref") == ("z", "z")
    assert key_index.key_bounds(pl.DataFrame({"crime_ref": [None]}, schema={"crime_ref": pl.Utf8}), "crime_ref") == (None, None)
