"""The published-statistics reconciliation check (`etl.core.cross_month.reconcile_published`), on small
frames: total recorded crime and every group named as a published heading are reconciled, with their
verdicts (within tolerance, outside tolerance, not published), and a year that cannot be compared is
stored as not run (passed null) - never as passed (issue 12)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import load_contract
from etl.core.cross_month import TOTAL_GROUP, reconcile_published
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import ValidationContext, validate_extract
from etl.core.warehouse import Warehouse
from tests.conftest import CRIME_HEADER, crime, write_csv

FORCE = "west-midlands"
AREA = "E23000014"
MONTH = "2019-06"
LOADED = [f"2018-{m:02d}" for m in range(7, 13)] + [f"2019-{m:02d}" for m in range(1, 6)]  # the 11 months before June


def _result(tmp_path: Path, rows: list[dict]):
    path = write_csv(tmp_path / MONTH / "recorded_crime.csv", CRIME_HEADER, rows)
    return validate_extract(load_contract("recorded_crime"), read_extract(path), ValidationContext(month=Month.parse(MONTH), force_id=FORCE))


def _published(figures: dict[str, float | None], *, start: str = "2018-07", end: str = MONTH, area: str = AREA) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "area_code": area,
                "area_name": "West Midlands",
                "period_start": start,
                "period_end": end,
                "offence_group": g,
                "value": v,
                "source_file": "p1.xlsx",
                "source_sha256": "0" * 64,
                "table": "P1",
            }
            for g, v in figures.items()
        ],
        schema={
            "area_code": pl.Utf8,
            "area_name": pl.Utf8,
            "period_start": pl.Utf8,
            "period_end": pl.Utf8,
            "offence_group": pl.Utf8,
            "value": pl.Float64,
            "source_file": pl.Utf8,
            "source_sha256": pl.Utf8,
            "table": pl.Utf8,
        },
    )


ROWS = (
    [crime(f"R{i}", "2019-06-05", "34B", force=FORCE) for i in range(3)]  # robbery of personal property
    + [crime("RB", "2019-06-06", "34A", force=FORCE)]  # robbery of business property
    + [crime(f"B{i}", "2019-06-07", "28E", force=FORCE) for i in range(2)]  # residential burglary
    + [crime(f"S{i}", "2019-06-08", "46", force=FORCE) for i in range(4)]  # shoplifting
    + [crime("C1", "2019-06-09", "46", force=FORCE, status="cancelled")]  # not a recorded crime: never counted
)


def _lines(detail: str) -> dict[str, str]:
    head, body = detail.split(": ", 1)
    assert head == f"year ending {MONTH} (2018-07..{MONTH}), p1.xlsx"
    return {part.split(": ", 1)[0]: part.split(": ", 1)[1] for part in body.split("; ")}


def test_total_recorded_crime_and_every_same_named_group_are_reconciled(tmp_path):
    result = _result(tmp_path, ROWS)
    published = _published(
        {
            TOTAL_GROUP: 10,  # 10 recorded crimes (the cancelled one is not): within
            "Robbery": 4,  # offence group of 34A and 34B: within
            "Residential burglary": 3,  # the measure nm_nc_residential_burglary's published group: 2 vs 3 outside 2%
            "Burglary": 2,  # nm_nc_total_burglary_proxy: within
            "Shoplifting": 5,  # offence subgroup of 46: 4 vs 5 outside
            "Theft offences": 6,  # offence group of 28E and 46: within
            "Drug offences": 9,  # no such records: 0 vs 9, outside
            "Homicide": None,  # published as not available: not published
        }
    )
    c = reconcile_published(result, Warehouse(tmp_path / "w"), FORCE, MONTH, LOADED, published, 2.0)
    lines = _lines(c.detail or "")
    assert lines == {
        "Burglary": "records 2 vs published 2 (+0.0%)",
        "Drug offences": "records 0 vs published 9 (-100.0% OUTSIDE tolerance)",
        "Homicide": "records 0, not published",
        "Residential burglary": "records 2 vs published 3 (-33.3% OUTSIDE tolerance)",
        "Robbery": "records 4 vs published 4 (+0.0%)",
        "Shoplifting": "records 4 vs published 5 (-20.0% OUTSIDE tolerance)",
        "Theft offences": "records 6 vs published 6 (+0.0%)",
        TOTAL_GROUP: "records 10 vs published 10 (+0.0%)",
        # measures' published groups the table does not have: listed, not published
        "Possession of weapons offences": "records 0, not published",
        "Theft from the person": "records 0, not published",
        "Vehicle offences": "records 0, not published",
    }
    assert (c.check, c.severity, c.passed, c.failing_rows, c.rows_checked) == ("published.reconciliation", "warning", False, 3, 11)
    assert c.description == "the force's records for a year ending a quarter match the published statistics within 2%"


def test_within_tolerance_passes(tmp_path):
    result = _result(tmp_path, ROWS)
    c = reconcile_published(result, Warehouse(tmp_path / "w"), FORCE, MONTH, LOADED, _published({TOTAL_GROUP: 10.1, "Robbery": 4}), 2.0)
    assert _lines(c.detail or "")[TOTAL_GROUP] == "records 10 vs published 10 (-1.0%)"
    assert (c.passed, c.failing_rows) == (True, 0)


def test_the_total_alone_outside_tolerance_fails_the_check(tmp_path):
    result = _result(tmp_path, ROWS)
    c = reconcile_published(result, Warehouse(tmp_path / "w"), FORCE, MONTH, LOADED, _published({TOTAL_GROUP: 12, "Robbery": 4}), 5.0)
    assert _lines(c.detail or "")[TOTAL_GROUP] == "records 10 vs published 12 (-16.7% OUTSIDE tolerance)"
    assert (c.passed, c.failing_rows) == (False, 1)


@pytest.mark.parametrize(
    ("force", "published", "loaded", "why"),
    [
        (FORCE, None, LOADED, "no published statistics for this force"),
        ("british-transport-police", "table", LOADED, "no published statistics for this force"),  # P1 gives it no area code
        (FORCE, "other year", LOADED, f"no published table for the year ending {MONTH}"),
        (FORCE, "table", LOADED[2:], f"2 month(s) of 2018-07..{MONTH} not loaded"),
    ],
)
def test_a_year_that_cannot_be_compared_is_not_run_never_passed(tmp_path, force, published, loaded, why):
    result = _result(tmp_path, [dict(r, force_id=force) for r in ROWS])
    table = {None: None, "table": _published({TOTAL_GROUP: 10}), "other year": _published({TOTAL_GROUP: 10}, start="2018-04", end="2019-03")}[published]
    c = reconcile_published(result, Warehouse(tmp_path / "w"), force, MONTH, loaded, table, 2.0)
    assert c.passed is None  # not run: null in audit_checks
    assert (c.detail, c.failing_rows, c.rows_checked) == (f"not checked: {why}", 0, 0)
