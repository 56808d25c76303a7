"""Published statistics in the pipeline: loaded from SOURCE/reference/published/, used as the baseline
when the force's own baseline months are not loaded, and reconciled with the force's records."""

import csv
import shutil
from pathlib import Path

import polars as pl
import pytest

from etl.core.published import read_pfa_table_p1
from etl.core.warehouse import Warehouse
from etl.loading import pipeline
from tests.conftest import SHARED, crime, write_month

REAL = SHARED / "data" / "real"
JUNE_2019 = REAL / "prc" / "ons-pfa-tables" / "policeforceareatablesyearendingjune2019.xlsx"
pytestmark = pytest.mark.skipif(not JUNE_2019.exists(), reason="shared/data/real is not beside the repository")


def add_workbook(source: Path) -> Path:
    folder = source / "reference" / "published"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(JUNE_2019, folder / JUNE_2019.name))


def published(force_area_code: str, group: str) -> float:
    t = read_pfa_table_p1(JUNE_2019)
    return t.filter((pl.col("area_code") == force_area_code) & (pl.col("offence_group") == group))["value"][0]


def test_baseline_from_published_statistics_when_the_force_records_are_missing(tmp_path):
    source, warehouse = tmp_path / "s", tmp_path / "w"
    add_workbook(source)
    months = [f"2019-{m:02d}" for m in range(7, 13)] + [f"2020-{m:02d}" for m in range(1, 7)]
    for i, m in enumerate(months):
        rows = [crime(f"{m}-h", f"{m}-05", "1", force="west-midlands")] if i % 2 == 0 else []
        rows += [crime(f"{m}-r{k}", f"{m}-06", "34B", force="west-midlands") for k in range(3)]
        write_month(source, m, rows)
    report = pipeline.backfill(source, "2019-07", "2020-06", warehouse)
    assert report.ok
    wh = Warehouse(warehouse)
    pub = wh.read("published_statistics")
    assert pub.filter(pl.col("area_code") == "E23000014").height == 23  # West Midlands: every P1 offence group
    files = wh.read("audit_runs").filter(pl.col("month") == "2019-07")["source_files"][0]
    assert JUNE_2019.name in files

    m = wh.read("measures").filter((pl.col("period_end") == "2020-06") & (pl.col("period") == "r12") & (pl.col("comparison") == "ye_jun19"))
    hom = m.filter(pl.col("measure_id") == "nm_homicide_count").row(0, named=True)
    expected = published("E23000014", "Homicide")
    assert hom["comparison_value"] == expected and hom["comparison_source"] == "published_statistics"
    assert hom["value"] == 6 and hom["status"] == "monitor"
    assert hom["change_pct"] == pytest.approx((6 - expected) / expected * 100)
    assert "baseline from published statistics" in hom["note"] and JUNE_2019.name in hom["note"]
    # P1 has all robbery, not robbery of personal property: no honest baseline, so incomplete
    rob = m.filter(pl.col("measure_id") == "nm_nc_robbery").row(0, named=True)
    assert (rob["status"], rob["comparison_value"], rob["comparison_source"]) == ("incomplete", None, None)
    # prev_r12 never uses published figures
    prev = wh.read("measures").filter(
        (pl.col("measure_id") == "nm_homicide_count") & (pl.col("period_end") == "2020-06") & (pl.col("comparison") == "prev_r12")
    )
    assert prev["status"].to_list() == ["incomplete"]
    # a second backfill does not load the same workbook twice
    pipeline.backfill(source, "2020-06", "2020-06", warehouse)
    assert wh.read("published_statistics").height == pub.height


def test_public_data_reconciled_with_the_published_year(tmp_path):
    source, warehouse = tmp_path / "s", tmp_path / "w"
    add_workbook(source)
    street = source / "street"
    street.mkdir(parents=True)
    robberies = 0
    for m in [f"2018-{k:02d}" for k in range(7, 13)] + [f"2019-{k:02d}" for k in range(1, 7)]:
        f = REAL / "street" / "city-of-london" / f"{m}-city-of-london-street.csv"
        shutil.copy(f, street / f.name)
        with open(f, newline="", encoding="utf-8-sig") as fh:
            robberies += sum(1 for r in csv.DictReader(fh) if r["Crime type"] == "Robbery")
    report = pipeline.backfill(source, "2018-07", "2019-06", warehouse)
    assert report.ok and {r.force_id for r in report.months} == {"city-of-london"}
    wh = Warehouse(warehouse)
    runs = wh.read("audit_runs").filter((pl.col("kind") == "load") & (pl.col("month") == "2019-06"))
    c = wh.read("audit_checks").filter(pl.col("run_id").is_in(runs["run_id"].implode()) & (pl.col("check") == "published.reconciliation")).row(0, named=True)
    pub = published("E23000034", "Robbery")
    diff = (robberies - pub) / pub * 100
    assert f"Robbery: records {robberies} vs published {pub:.0f} ({diff:+.1f}%" in c["detail"]
    # reconciled: the five mapped proxies, total recorded crime (every crime type but anti-social behaviour, an
    # incident) and the three crime types named as a published heading (issue 12: TRC and every same-named group)
    groups = [part.split(":")[0] for part in c["detail"].split(": ", 1)[1].split("; ")]
    assert groups == [
        "Bicycle theft",
        "Burglary",
        "Criminal damage and arson",
        "Possession of weapons offences",
        "Robbery",
        "Shoplifting",
        "Theft from the person",
        "Total recorded crime (excluding fraud)",
        "Vehicle offences",
    ]
    crimes = sum(pl.read_csv(f, infer_schema=False).filter(pl.col("Crime type") != "Anti-social behaviour").height for f in street.iterdir())
    total = published("E23000034", "Total recorded crime (excluding fraud)")
    assert f"Total recorded crime (excluding fraud): records {crimes} vs published {total:.0f} ({(crimes - total) / total * 100:+.1f}%)" in c["detail"]
    assert c["rows_checked"] == 9 and c["severity"] == "warning"
    assert c["passed"] is (c["failing_rows"] == 0)
    earlier = wh.read("audit_checks").filter(pl.col("check") == "published.reconciliation")
    not_checked = earlier.filter(pl.col("detail").str.starts_with("not checked"))
    assert earlier.height == 12 and not_checked.height == 11
    # a year that could not be compared did not run: passed is null, never true (issue 12)
    assert not_checked["passed"].null_count() == 11


def test_public_data_backfill_loads_every_file_as_published_and_a_republished_month_replaces_it(tmp_path):
    source, warehouse = tmp_path / "s", tmp_path / "w"
    for kind in ("street", "outcomes", "stop-and-search"):
        for m in ("2021-06", "2021-07"):
            f = REAL / kind / "city-of-london" / f"{m}-city-of-london-{kind}.csv"
            if f.exists():
                (source / kind).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, source / kind / f.name)
    report = pipeline.backfill(source, "2021-06", "2021-07", warehouse)
    assert report.ok and [r.force_id for r in report.months] == ["city-of-london", "city-of-london"]
    wh = Warehouse(warehouse)
    street = wh.read("police_uk_street")

    def rows_in(path):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return sum(1 for _ in csv.DictReader(fh))

    june = source / "street" / "2021-06-city-of-london-street.csv"
    assert street.filter(pl.col("month") == "2021-06").height == rows_in(june)
    assert wh.read("quarantine") is None or wh.read("quarantine").height == 0
    measures = wh.read("measures")
    assert measures.filter(pl.col("measure_id").str.starts_with("pu_")).height > 0
    assert measures.filter(pl.col("measure_id") == "nm_homicide_count").height == 0  # not this profile's measure
    # data.police.uk re-publishes months: the later download replaces the force-month whole
    revised = REAL / "street" / "city-of-london" / "revisions" / "2021-06-city-of-london-street.AlinZohari-STDM.csv"
    shutil.copy(revised, june)
    before = street.filter(pl.col("month") == "2021-06")
    pipeline.backfill(source, "2021-06", "2021-06", warehouse)
    after = wh.read("police_uk_street").filter(pl.col("month") == "2021-06")
    assert after.height == rows_in(revised)
    assert set(after["source_sha256"].unique()) != set(before["source_sha256"].unique())
    changed = after.join(before, on=["source_row"], how="inner").filter(pl.col("last_outcome_category") != pl.col("last_outcome_category_right"))
    assert changed.height > 0  # the re-published rows differ (outcomes matured)
    assert wh.read("police_uk_street").filter(pl.col("month") == "2021-07").height == street.filter(pl.col("month") == "2021-07").height
