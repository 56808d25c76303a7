"""Tests for etl/demo_extracts.py: the synthetic further extracts (calls, incidents, stop and search,
use of force, hospital admissions, firearm discharges, drugs, NRM, victim survey, workforce) and their
contracts in contracts/."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.core.contracts import load_contract
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import ValidationContext, validate_extract
from etl.demo.extracts import COLUMNS, EXTRACTS, FAULTS, generate_extracts

MONTHS = ["2020-03", "2020-04", "2020-05"]
SCALE = 0.05  # ~7k calls and ~3.5k incidents a month: small and quick, large enough for shares
BAD = 2


def _validate(source: Path, month: str, extract: str):
    contract = load_contract(extract)
    raw = read_extract(source / month / contract.file_name)
    return validate_extract(contract, raw, ValidationContext(month=Month.parse(month), force_id="demo-force"))


def _read(source: Path, month: str, extract: str) -> pl.DataFrame:
    return pl.read_csv(source / month / f"{extract}.csv", infer_schema=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("clean")
    return out, generate_extracts(out, MONTHS, scale=SCALE)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("dirty")
    return out, generate_extracts(out, MONTHS, scale=SCALE, bad_rows_per_month=BAD)


FULL_SCALE_SEEDS = range(20180701, 20180721)


@pytest.fixture(scope="module")
def full_scale(tmp_path_factory) -> dict[int, Path]:
    """The small-count extracts at scale 1.0 (a large metropolitan force), where levels matter, for
    20 seeds: monthly counts are Poisson draws, so a level is checked on their distribution (one
    seed's single month can fall in a 1 % tail)."""
    out = tmp_path_factory.mktemp("full")
    for seed in FULL_SCALE_SEEDS:
        generate_extracts(out / str(seed), MONTHS, seed=seed, scale=1.0, extracts=["hospital_admissions", "firearm_discharges"])
    return {seed: out / str(seed) for seed in FULL_SCALE_SEEDS}


def _u25_sharp(source: Path, month: str) -> int:
    h = _read(source, month, "hospital_admissions")
    u25 = h.filter(pl.col("cause") == "assault_sharp_object", pl.col("age_band").is_in(["0-17", "18-24"]))
    return int(u25["episodes"].cast(pl.Int64).sum())


# ---- files, layouts, contracts ----------------------------------------------------------------


def test_every_extract_has_a_contract_matching_its_layout():
    for extract in EXTRACTS:
        contract = load_contract(extract)
        assert contract.extract == extract and contract.file_name == f"{extract}.csv"
        assert tuple(c.source_name for c in contract.columns) == COLUMNS[extract]
        assert contract.optional and contract.month_column in COLUMNS[extract]
        assert (contract.reject_fraction, contract.reject_min_rows) == (0.05, 25)
        assert contract.force_column is None  # the force comes from the run


def test_files_exist_for_every_month_with_the_contract_header(clean):
    out, written = clean
    assert set(written) == set(EXTRACTS)
    for extract in EXTRACTS:
        total = 0
        for month in MONTHS:
            path = out / month / f"{extract}.csv"
            assert path.exists(), path
            lines = path.read_text(encoding="utf-8").splitlines()
            assert lines[0] == ",".join(COLUMNS[extract])
            assert len(lines) >= 2  # never header-only
            total += len(lines) - 1
        assert written[extract] == total


@pytest.mark.parametrize("extract", EXTRACTS)
def test_clean_files_validate_with_nothing_quarantined(clean, extract):
    out, _ = clean
    for month in MONTHS:
        result = _validate(out, month, extract)
        assert result.rows_quarantined == 0, result.quarantine["failed_checks"].to_list()
        assert result.rows_loaded == result.rows_in > 0


@pytest.mark.parametrize("extract", EXTRACTS)
def test_injected_bad_rows_are_exactly_the_quarantined_rows(clean, dirty, extract):
    out_clean, _ = clean
    out_dirty, written = dirty
    kinds = {name for name, _ in FAULTS[extract]}
    seen = set()
    for month in MONTHS:
        result = _validate(out_dirty, month, extract)
        assert result.rows_quarantined == BAD, result.quarantine["failed_checks"].to_list()
        assert result.rows_in == result.rows_loaded + BAD
        # Removing the quarantined lines gives back the clean file: the valid rows do not change.
        dirty_lines = (out_dirty / month / f"{extract}.csv").read_text(encoding="utf-8").splitlines()
        bad_lines = set(result.quarantine["row_number"].to_list())
        kept = [line for i, line in enumerate(dirty_lines, start=1) if i not in bad_lines]
        assert kept == (out_clean / month / f"{extract}.csv").read_text(encoding="utf-8").splitlines()
        seen.update(result.quarantine["failed_checks"].to_list())
    assert len(seen) >= 2 and len(kinds) >= 2  # the faults rotate from month to month
    assert written[extract] == sum(_read(out_dirty, m, extract).height for m in MONTHS)


def test_same_seed_same_bytes_and_months_are_independent(clean, tmp_path):
    out, _ = clean
    again = tmp_path / "again"
    generate_extracts(again, MONTHS, scale=SCALE)
    for month in MONTHS:
        for extract in EXTRACTS:
            assert (again / month / f"{extract}.csv").read_bytes() == (out / month / f"{extract}.csv").read_bytes()
    # One month alone (and one extract alone) gives the same file as inside the three-month run.
    alone = tmp_path / "alone"
    generate_extracts(alone, ["2020-04"], scale=SCALE, extracts=["workforce", "calls"])
    for extract in ("workforce", "calls"):
        assert (alone / "2020-04" / f"{extract}.csv").read_bytes() == (out / "2020-04" / f"{extract}.csv").read_bytes()
    other = tmp_path / "other"
    generate_extracts(other, ["2020-04"], scale=SCALE, seed=1, extracts=["calls"])
    assert (other / "2020-04" / "calls.csv").read_bytes() != (out / "2020-04" / "calls.csv").read_bytes()


# ---- plausibility ---------------------------------------------------------------------------------


def test_999_calls_answered_within_10_seconds_share(clean):
    out, _ = clean
    for month in MONTHS:
        calls = _read(out, month, "calls").filter(pl.col("channel") == "999")
        wait = (pl.col("answered_at").str.to_datetime() - pl.col("presented_at").str.to_datetime()).dt.total_seconds()
        share = calls.select((wait <= 10).sum() / pl.len()).item()
        assert 0.8 <= share <= 0.97, (month, share)
        # 101 calls wait minutes: most answered within 3 minutes, far from all.
        c101 = _read(out, month, "calls").filter(pl.col("channel") == "101", pl.col("answered_at").is_not_null())
        within_3m = c101.select((wait <= 180).mean()).item()
        assert 0.5 <= within_3m <= 0.9, (month, within_3m)


def test_p1_and_p2_attendance_medians(clean):
    out, _ = clean
    inc = pl.concat([_read(out, m, "incidents") for m in MONTHS])
    minutes = (pl.col("first_arrival_at").str.to_datetime() - pl.col("created_at").str.to_datetime()).dt.total_seconds() / 60
    med = dict(inc.group_by("priority").agg(minutes.median().alias("m")).iter_rows())
    assert 6 <= med["P1"] <= 15 and 25 <= med["P2"] <= 60


def test_hospital_admissions_under_25_sharp_object_at_full_scale(full_scale):
    counts = {m: [_u25_sharp(path, m) for path in full_scale.values()] for m in MONTHS}
    values = [v for vs in counts.values() for v in vs]
    assert sum(5 <= v <= 30 for v in values) >= 0.95 * len(values), counts
    for month, vs in counts.items():
        assert 8 <= sorted(vs)[len(vs) // 2] <= 20, (month, vs)  # median month: the 10-15 band of 002:807
    for path in full_scale.values():
        h = _read(path, "2020-04", "hospital_admissions")
        assert set(h["icd10_code"].filter(h["cause"] == "assault_sharp_object")) == {"X99"}


def test_firearm_discharges_a_month_at_full_scale(full_scale):
    counts = {m: [_read(path, m, "firearm_discharges").height for path in full_scale.values()] for m in MONTHS}
    values = [v for vs in counts.values() for v in vs]
    assert sum(3 <= v <= 30 for v in values) >= 0.95 * len(values), counts
    for month, vs in counts.items():
        assert 5 <= sorted(vs)[len(vs) // 2] <= 20, (month, vs)  # ~162 a year at the baseline, fewer since


def test_pandemic_dip_in_incidents_and_asb_rise(clean):
    out, _ = clean
    march, april = (_read(out, m, "incidents") for m in ("2020-03", "2020-04"))
    assert april.height < march.height
    asb = [f.filter(pl.col("nsir_category").str.starts_with("asb")).height for f in (march, april)]
    assert asb[1] > asb[0]  # lockdown breach reports were logged as ASB


def test_workforce_is_the_same_people_month_to_month(clean):
    out, _ = clean
    frames = [_read(out, m, "workforce") for m in MONTHS]
    a, b = frames[0], frames[1]
    both = a.join(b, on="person_id", suffix="_next")
    assert both.height > 0.9 * a.height
    for col in ("role", "sex", "ethnicity_group", "joined_date", "uplift_joiner"):
        assert both.filter(pl.col(col).ne_missing(pl.col(f"{col}_next"))).height == 0, col
    # The uplift: officers in post never fall during the programme.
    officers = [f.filter(pl.col("role") == "officer", pl.col("leaver_date").is_null()).height for f in frames]
    assert officers == sorted(officers)
    # A leaver of a month is gone the month after.
    left = a.filter(pl.col("leaver_date").is_not_null())["person_id"]
    assert not b["person_id"].is_in(left.implode()).any()


def test_rejects_unknown_extracts_and_bad_months(tmp_path):
    with pytest.raises(ValueError, match="unknown extract"):
        generate_extracts(tmp_path, ["2020-04"], extracts=["calls", "nope"])
    with pytest.raises(ValueError, match="YYYY-MM"):
        generate_extracts(tmp_path, ["2020-4"])
    with pytest.raises(ValueError, match="scale"):
        generate_extracts(tmp_path, ["2020-04"], scale=0)
