"""A reference file read again every month is written again only when what the warehouse holds for its forces
would change (`etl.loading.reference.unchanged`): the same file leaves the table's version as it was; a changed
file, a file naming another force or a changed row count replaces the rows as before."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import crime, write_csv, write_month, write_population


def _months(source: Path) -> None:
    for m in ("2019-01", "2019-02", "2019-03", "2019-04"):
        write_month(source, m, [crime(f"{m}-a", f"{m}-03")])


def _version(wh: Warehouse, table: str) -> int:
    return wh.committed_versions()[table]


def _recorded(wh: Warehouse, table: str) -> list[int]:
    """The version of ``table`` each load run recorded, in order."""
    runs = wh.read("audit_runs").filter(pl.col("kind") == "load").sort("commit_seq")  # type: ignore[union-attr]
    return [json.loads(v)[table] for v in runs["table_versions"]]


def test_the_same_population_file_is_not_written_again_and_a_changed_one_is(source: Path, warehouse: Path) -> None:
    _months(source)
    write_population(source, {2018: 100_000, 2019: 101_000})
    pipeline.load_source_month(source, "2019-01", warehouse, compute=False)
    pipeline.load_source_month(source, "2019-02", warehouse, compute=False)
    wh = Warehouse(warehouse)
    assert _recorded(wh, "population") == [0, 0]  # written by the first run only
    first = wh.read("population")

    write_population(source, {2018: 100_000, 2019: 102_000})  # a revised estimate: same rows, another file
    pipeline.load_source_month(source, "2019-03", warehouse, compute=False)
    assert _recorded(wh, "population")[-1] == 1
    after = wh.read("population")
    assert after is not None and first is not None
    assert after.filter(pl.col("year") == 2019)["population"].to_list() == [102_000]
    assert after["source_sha256"].unique().to_list() != first["source_sha256"].unique().to_list()

    write_csv(  # one row fewer, for another force too: replaced
        source / "reference" / "population.csv",
        ["force_id", "year", "population"],
        [{"force_id": "test-force", "year": 2019, "population": 102_000}, {"force_id": "other", "year": 2019, "population": 5}],
    )
    pipeline.load_source_month(source, "2019-04", warehouse, compute=False)
    assert _recorded(wh, "population")[-1] == 2
    rows = wh.read("population")
    assert rows is not None and sorted(rows.select("force_id", "year").rows()) == [("other", 2019), ("test-force", 2019)]
