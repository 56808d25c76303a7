"""The checks across months read their history from indexes (`etl.core.key_index`) instead of scanning the
curated tables: the same answers as the scan they replace, for any warehouse, reading only what can answer."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.core import cross_month, key_index
from etl.core.periods import Month
from etl.core.warehouse import Warehouse
from etl.loading import pipeline, stages
from etl.loading.measuring import loaded_months
from etl.loading.sources import plan_source_month
from tests.conftest import crime, write_month

MONTHS = ["2019-01", "2019-02", "2019-03", "2019-04", "2019-05", "2019-06", "2019-07", "2019-08"]


def _month(root: Path, force: str, m: str, extra: list[dict] | None = None, outcomes: list[dict] | None = None, n: int = 25) -> None:
    rows = [crime(f"{force[0].upper()}{m}-{k:03d}", f"{m}-{k % 27 + 1:02d}", "28E" if k % 3 else "8N", force=force) for k in range(n)]
    write_month(
        root / force,
        m,
        rows + (extra or []),
        outcomes if outcomes is not None else [{"crime_ref": rows[0]["crime_ref"], "outcome_type": "1", "outcome_date": f"{m}-28"}],
    )


def _region(root: Path) -> Path:
    """Two forces: force a repeats references of earlier months (and of force b), outcomes name old crimes."""
    for i, m in enumerate(MONTHS):
        extra = []
        if m in ("2019-03", "2019-06"):
            extra = [crime("A2019-01-003", f"{m}-10", "28E", force="alpha"), crime("B2019-02-001", f"{m}-11", "28E", force="alpha")]
        outcomes = [
            {"crime_ref": "A2019-02-007", "outcome_type": "1", "outcome_date": f"{m}-28"},
            {"crime_ref": "NEVER", "outcome_type": "1", "outcome_date": f"{m}-28"},
        ]
        _month(root, "alpha", m, extra, outcomes, n=25 + 10 * (m == "2019-07"))
        _month(root, "beta", m, n=15 + i)
    return root


def _validated(source: Path, wh: Warehouse, month: str) -> list[tuple[str, object]]:
    with wh.snapshot():
        v = stages.validate(stages.read_files(stages.start(plan_source_month(source, month))), wh)
    return [(u.force, r) for u in v.live for r in u.results]


def _scan_answers(wh: Warehouse, month: str, items: list) -> dict:
    """What the checks read before the indexes: scans of the committed curated tables."""
    out = {}
    crimes = [(f, r) for f, r in items if r.contract.extract == "recorded_crime"]
    forces = sorted({f for f, _ in crimes})
    keys = pl.concat([r.clean.select(pl.lit(f).alias("force_id"), pl.col("crime_ref").cast(pl.Utf8)) for f, r in crimes]).unique()
    lf = wh.scan("recorded_crime")
    if lf is None:
        lf = pl.DataFrame(schema={"force_id": pl.Utf8, "crime_ref": pl.Utf8, "month": pl.Utf8, "status": pl.Utf8, "hocr_code": pl.Utf8}).lazy()
    out["earlier"] = (
        lf.filter(pl.col("force_id").is_in(forces) & (pl.col("month") != month))
        .select("force_id", "crime_ref", "month")
        .join(keys.lazy(), on=["force_id", "crime_ref"], how="semi")
        .collect()
    )
    outcome_keys = pl.concat(
        [r.clean.select(pl.lit(f).alias("force_id"), pl.col("crime_ref").cast(pl.Utf8)) for f, r in items if r.contract.extract == "crime_outcomes"]
    )
    out["known"] = (
        lf.filter(pl.col("force_id").is_in(forces))
        .select("force_id", "crime_ref")
        .join(outcome_keys.lazy(), on=["force_id", "crime_ref"], how="semi")
        .unique()
        .collect()
    )
    oldest = str(Month(Month.parse(month).index - 36))
    counts = (
        lf.filter(pl.col("force_id").is_in(forces) & (pl.col("month") >= oldest) & (pl.col("month") < month) & (pl.col("status") == "recorded"))
        .group_by("force_id", "month", "hocr_code")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
    )
    out["volume"] = cross_month.volume_checks(crimes, month, 24, 6, counts)
    return out


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    cols = sorted(a.columns)
    return a.select(cols).sort(cols).equals(b.select(cols).sort(cols))


def _compare(wh: Warehouse, source: Path, month: str) -> None:
    items = _validated(source, wh, month)
    with wh.snapshot():
        history = cross_month.prefetch(wh, month, items, loaded_months(wh))  # type: ignore[arg-type]
        want = _scan_answers(wh, month, items)
    assert _same(history.earlier_keys[("recorded_crime", "crime_ref")], want["earlier"]), month
    assert _same(history.known_keys[("recorded_crime", "crime_ref", "crime_ref")], want["known"]), month
    got_volume = {f: c for (e, f), c in history.volume_checks.items() if e == "recorded_crime"}
    assert {f: c.__dict__ for f, c in got_volume.items()} == {f: c.__dict__ for f, c in want["volume"].items()}, month


def test_look_ups_equal_a_scan_of_the_curated_table(tmp_path: Path) -> None:
    source = _region(tmp_path / "src")
    wh = Warehouse(tmp_path / "wh")
    order = ["2019-01", "2019-02", "2019-04", "2019-03", "2019-05", "2019-06", "2019-07"]  # one month loaded out of order
    for m in order:
        _compare(wh, source, m)
        pipeline.load_source_month(source, m, wh.root, compute=False)
    _month(source, "alpha", "2019-02", [crime("A2019-06-001", "2019-02-12", "28E", force="alpha")])  # a month loaded again, changed
    _compare(wh, source, "2019-02")
    pipeline.load_source_month(source, "2019-02", wh.root, compute=False)
    for m in ("2019-08", "2019-03"):
        _compare(wh, source, m)
    checks = wh.read("audit_checks").filter((pl.col("check") == "crime_ref.not_in_other_months") & ~pl.col("passed"))
    # 2019-02 loaded again with June's reference; March and June repeat January's and (alpha's copy of) beta's
    assert checks.select("force_id", "month", "failing_rows").sort("month").rows() == [
        ("alpha", "2019-02", 1),
        ("alpha", "2019-03", 1),
        ("alpha", "2019-06", 2),
    ]
    june = checks.filter(pl.col("month") == "2019-06")["detail"].item()
    assert june.startswith("2 crime_ref value(s) in 2019-06 were already loaded in: 2019-01 (1), 2019-03 (2)"), june


def test_a_warehouse_loaded_before_the_index_gets_it_from_the_curated_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _region(tmp_path / "src")
    with monkeypatch.context() as m:
        m.setattr(cross_month, "index_writes", lambda *a, **k: [])  # as a version of the package without the indexes
        for month in MONTHS[:5]:
            pipeline.load_source_month(source, month, tmp_path / "old", compute=False)
    assert Warehouse(tmp_path / "old").read("key_index") is None
    for month in MONTHS[:5]:
        pipeline.load_source_month(source, month, tmp_path / "new", compute=False)
    for month in MONTHS[5:]:
        for wh in ("old", "new"):
            pipeline.load_source_month(source, month, tmp_path / wh, compute=False)
    old, new = Warehouse(tmp_path / "old"), Warehouse(tmp_path / "new")
    cols = ["force_id", "month", "check", "passed", "failing_rows", "rows_checked", "detail"]
    a = old.read("audit_checks").select(cols).sort(cols, nulls_last=True)
    b = new.read("audit_checks").select(cols).sort(cols, nulls_last=True)
    assert a.equals(b)
    for table in (key_index.KEY_INDEX, key_index.VOLUME_COUNTS):  # written for every loaded month by the first run that needed them
        x, y = old.read(table), new.read(table)
        assert _same(x, y), table
    counted = old.read(key_index.VOLUME_COUNTS).select("force_id", "month").unique()
    assert counted.height == 2 * len(MONTHS)


def test_a_look_up_reads_only_the_files_that_can_hold_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _region(tmp_path / "src")
    read: list[tuple[str, str]] = []
    original = key_index._files_holding

    def holding(files, keys):
        hits = original(files, keys)
        read.extend((f, m) for p, f, m in hits if p.endswith(".parquet"))
        return hits

    monkeypatch.setattr(key_index, "_files_holding", holding)
    for m in MONTHS:
        read.clear()
        pipeline.load_source_month(source, m, tmp_path / "wh", compute=False)
        # alpha's February holds the outcomes' crime (from March on); a month holding old references (March, June)
        # spans the range between them, and is read for any key in it after
        want = {("alpha", "2019-02")} if m > "2019-02" else set()
        want |= {("alpha", "2019-03")} if m > "2019-03" else set()
        want |= {("alpha", "2019-06")} if m > "2019-06" else set()
        want |= {("alpha", "2019-01")} if m in ("2019-03", "2019-06") else set()  # the repeated reference's own month
        assert set(read) == want, m
    assert ("beta", "2019-01") not in read


def test_index_rows_replace_their_force_months(tmp_path: Path) -> None:
    source = _region(tmp_path / "src")
    for m in MONTHS[:3]:
        pipeline.load_source_month(source, m, tmp_path / "wh", compute=False)
    wh = Warehouse(tmp_path / "wh")
    before = wh.read(key_index.KEY_INDEX)
    pipeline.load_source_month(source, "2019-02", tmp_path / "wh", compute=False)
    assert _same(wh.read(key_index.KEY_INDEX), before)
    rc = wh.read("recorded_crime").select("force_id", "month", pl.col("crime_ref").alias("key")).unique()
    idx = wh.read(key_index.KEY_INDEX).drop_nulls("key").select("force_id", "month", "key")
    assert _same(idx, rc)
    marks = wh.read(key_index.KEY_INDEX).filter(pl.col("key").is_null()).select("force_id", "month").sort("force_id", "month")
    assert marks.rows() == [(f, m) for f in ("alpha", "beta") for m in MONTHS[:3]]
    files = wh.files(key_index.KEY_INDEX)
    assert files.height == 2 * 3 and set(files["partition.indexed"]) == {"recorded_crime.crime_ref"}


def test_loaded_months_read_incrementally_equal_a_full_read(tmp_path: Path) -> None:
    from etl.loading import measuring

    source = _region(tmp_path / "src")
    wh = Warehouse(tmp_path / "wh")
    seen = []
    for m in MONTHS[:4] + ["2019-02"]:
        pipeline.load_source_month(source, m, wh.root, compute=False)
        seen.append(loaded_months(wh))  # kept from the previous call, the new runs added
        measuring._LOADED.clear()
        assert loaded_months(wh).equals(seen[-1]), m  # read whole
    assert seen[-1].filter(pl.col("extract") == "recorded_crime").height == 2 * 4
    assert loaded_months(wh, "crime_outcomes")["month"].unique().sort().to_list() == MONTHS[:4]


@pytest.mark.parametrize("how", ["backfill", "month by month"])
def test_volume_counts_equal_a_recount_of_the_curated_rows(tmp_path: Path, how: str) -> None:
    """The index rows are the counts the volume check made (`cross_month._counted`), or a fresh count: either
    way, every force-month's recorded rows by offence code as the curated table holds them."""
    source = _region(tmp_path / "src")
    for k, m in enumerate(MONTHS[:4]):  # some rows cancelled: only recorded rows count
        _month(source, "beta", m, [crime(f"BX{m}-{j}", f"{m}-0{j + 1}", "8N", status="cancelled", force="beta") for j in range(k + 1)], n=15)
    wh = Warehouse(tmp_path / "wh")
    if how == "backfill":
        pipeline.backfill(source, MONTHS[0], MONTHS[-1], wh.root, measures=False)
    else:
        for m in MONTHS:
            pipeline.load_source_month(source, m, wh.root, compute=False)
    _month(source, "alpha", "2019-02", [crime("A2019-06-001", "2019-02-12", "8N", force="alpha")])  # a month loaded again, changed
    pipeline.load_source_month(source, "2019-02", wh.root, compute=False)
    recount = (
        wh.read("recorded_crime").filter(pl.col("status") == "recorded").group_by("force_id", "month", "hocr_code").agg(pl.len().cast(pl.Int64).alias("n"))
    )
    counts = wh.read("volume_counts")
    written = counts.filter(pl.col("hocr_code").is_not_null()).select("force_id", "month", "hocr_code", "n")
    assert _same(written, recount)
    markers = counts.filter(pl.col("hocr_code").is_null())
    assert sorted(markers.select("force_id", "month").rows()) == sorted((f, m) for f in ("alpha", "beta") for m in MONTHS)
    assert markers["n"].to_list() == [0] * markers.height


def test_distinct_rows_of_one_force_month_and_of_several() -> None:
    from etl.core.key_index import distinct_rows

    cols = ["indexed", "force_id", "month"]
    one = pl.DataFrame({"indexed": ["r.c"] * 3, "force_id": ["a"] * 3, "month": ["2019-01"] * 3, "key": ["x", "y", None]})
    assert distinct_rows(one, cols).rows() == [("r.c", "a", "2019-01")]
    two = one.with_columns(pl.Series("month", ["2019-01", "2019-02", "2019-01"]))
    assert sorted(distinct_rows(two, cols).rows()) == [("r.c", "a", "2019-01"), ("r.c", "a", "2019-02")]
    with_null = one.with_columns(pl.Series("force_id", ["a", None, "a"]))  # a null is a value of its own
    assert sorted(distinct_rows(with_null, cols).rows(), key=str) == [("r.c", "a", "2019-01"), ("r.c", None, "2019-01")]
    assert distinct_rows(one.clear(), cols).height == 0
    as_categories = two.with_columns(pl.col(c).cast(pl.Categorical) for c in cols)
    assert sorted(distinct_rows(as_categories, cols).rows()) == sorted(distinct_rows(two, cols).rows())
