"""Tests for etl/demo.py: the synthetic demo-force extract generator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from etl.demo.generator import DemoSummary, generate_demo

RECORDED_HEADER = (
    "crime_ref,force_id,recorded_date,offence_date,hocr_code,status,npu,lsoa_code,"
    "domestic_abuse,hate_crime,knife_sharp,firearm,online,business_victim,victim_age"
)
OUTCOME_HEADER = "crime_ref,outcome_type,outcome_date"
ALLOWED_CODES = set(
    "1, 2, 3B, 4.1, 4.2, 4.4, 4.8, 5D, 5E, 8L, 8M, 8N, 8P, 8Q, 8R, 8S, 8T, 8U, 104, 105A, 105B, "
    "106, 10A, 10C, 10D, 17A, 20A, 19C, 19D, 19F, 21, 22B, 28E, 28F, 29A, 30C, 30D, 31A, 34A, "
    "34B, 37.1, 37.2, 39, 40, 41, 44, 45, 46, 48, 49, 49A, 56A, 56B, 58A, 58B, 58C, 58D, 58J, "
    "62A, 66, 9A, 9B, 92A, 92D, 92E, 126, 81, 99, 33, 54, 80, 83, 88A, 88E".split(", ")
)
FLAGS = ("domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim")
MONTHS = ["2019-01", "2019-02", "2019-03", "2019-04", "2019-05", "2019-06"]
CPM = 3000


def _gen(out: Path, **kw) -> DemoSummary:
    args = dict(first_month=MONTHS[0], last_month=MONTHS[-1], crimes_per_month=CPM)
    args.update(kw)
    return generate_demo(out, **args)


def _read(path: Path) -> pl.DataFrame:
    # All columns as text: missing values come back as null.
    return pl.read_csv(path, infer_schema=False)


def _month_bounds(month: str) -> tuple[dt.date, dt.date]:
    y, m = map(int, month.split("-"))
    first = dt.date(y, m, 1)
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    seen: list[str] = []
    summary = _gen(out, on_month=seen.append)
    return out, summary, seen


@pytest.fixture(scope="module")
def crimes(demo) -> pl.DataFrame:
    out, _, _ = demo
    return pl.concat([_read(out / m / "recorded_crime.csv").with_columns(month=pl.lit(m)) for m in MONTHS])


@pytest.fixture(scope="module")
def outcomes(demo) -> pl.DataFrame:
    out, _, _ = demo
    return pl.concat([_read(out / m / "crime_outcomes.csv").with_columns(month=pl.lit(m)) for m in MONTHS])


# ---- files and summary ----------------------------------------------------------------------


def test_summary_and_progress_callback(demo, crimes, outcomes):
    out, summary, seen = demo
    assert summary == DemoSummary(
        source_dir=out,
        force_id="demo-force",
        first_month="2019-01",
        last_month="2019-06",
        months=6,
        recorded_crimes=crimes.height,
        outcomes=outcomes.height,
        injected_bad_rows=0,
    )
    assert seen == MONTHS


def test_files_and_headers(demo):
    out, _, _ = demo
    for m in MONTHS:
        for name, header in (("recorded_crime.csv", RECORDED_HEADER), ("crime_outcomes.csv", OUTCOME_HEADER)):
            data = (out / m / name).read_bytes()
            assert data.split(b"\n", 1)[0].decode() == header
            assert data.endswith(b"\n") and b"\r" not in data and b'"' not in data
            data.decode("utf-8")
    assert sorted(p.name for p in out.iterdir()) == sorted(MONTHS + ["reference"])


def test_reference_files(demo, crimes):
    out, _, _ = demo
    pop = pl.read_csv(out / "reference" / "population.csv")
    assert pop.columns == ["force_id", "year", "population"]
    assert pop["year"].to_list() == [2018, 2019]
    assert pop["population"][0] == 2_900_000
    growth = pop["population"][1] / pop["population"][0] - 1
    assert 0.003 < growth < 0.01
    assert set(pop["force_id"]) == {"demo-force"}

    areas = pl.read_csv(out / "reference" / "areas.csv")
    assert areas.columns == ["force_id", "npu"]
    assert areas.height == 8 and areas["npu"].n_unique() == 8
    assert set(crimes["npu"]) == set(areas["npu"])


def test_population_covers_longer_range(tmp_path):
    generate_demo(tmp_path, first_month="2018-07", last_month="2021-02", crimes_per_month=200)
    pop = pl.read_csv(tmp_path / "reference" / "population.csv")
    assert pop["year"].to_list() == [2017, 2018, 2019, 2020, 2021]
    assert pop["population"].is_sorted() and pop["population"][0] == 2_900_000


# ---- recorded crimes ------------------------------------------------------------------------


def test_recorded_dates_inside_month(crimes):
    for m in MONTHS:
        first, last = _month_bounds(m)
        dates = crimes.filter(pl.col("month") == m)["recorded_date"].str.to_date("%Y-%m-%d")
        assert dates.null_count() == 0
        assert dates.min() >= first and dates.max() <= last


def test_monthly_volume(crimes):
    counts = crimes.group_by("month").len()
    assert counts.height == len(MONTHS)
    for n in counts["len"]:
        assert 0.65 * CPM <= n <= 1.35 * CPM


def test_crime_ref_unique_and_shaped(crimes):
    assert crimes["crime_ref"].n_unique() == crimes.height
    assert crimes["crime_ref"].str.contains(r"^DF19/\d{7}$").all()
    assert set(crimes["force_id"]) == {"demo-force"}


def test_offence_date_not_after_recorded(crimes):
    d = crimes.select(
        rec=pl.col("recorded_date").str.to_date("%Y-%m-%d"),
        off=pl.col("offence_date").str.to_date("%Y-%m-%d"),
    )
    present = d.filter(pl.col("off").is_not_null())
    assert (present["off"] <= present["rec"]).all()
    lag = (present["rec"] - present["off"]).dt.total_days()
    assert lag.max() <= 365 and lag.median() <= 3
    missing = d["off"].null_count() / d.height
    assert 0.01 < missing < 0.06


def test_codes_statuses_and_geography(crimes):
    assert set(crimes["hocr_code"]) <= ALLOWED_CODES
    # Small-share codes still appear in six months of a 3k/month force.
    assert {"34A", "29A", "5E", "10A", "88A", "62A"} <= set(crimes["hocr_code"])
    assert set(crimes["status"]) == {"recorded", "cancelled", "transferred"}
    assert (crimes["status"] == "recorded").mean() > 0.95
    lsoa = crimes["lsoa_code"].drop_nulls()
    assert lsoa.str.contains(r"^E01\d{6}$").all()
    assert 0.005 < crimes["lsoa_code"].null_count() / crimes.height < 0.04
    assert crimes["npu"].null_count() == 0


def test_flags_and_victim_age(crimes):
    for f in FLAGS:
        assert crimes[f].null_count() == 0
        assert set(crimes[f]) <= {"Y", "N"}
    share = {f: (crimes[f] == "Y").mean() for f in FLAGS}
    assert 0.10 < share["domestic_abuse"] < 0.22
    assert 0.04 < share["online"] < 0.14
    by_code = crimes.group_by("hocr_code").agg([(pl.col(f) == "Y").mean().alias(f) for f in FLAGS])
    rate = {r["hocr_code"]: r for r in by_code.iter_rows(named=True)}
    assert rate["46"]["business_victim"] == 1.0 and rate["46"]["domestic_abuse"] == 0.0
    assert rate["8M"]["hate_crime"] == 1.0 and rate["58J"]["hate_crime"] == 1.0
    assert rate["10D"]["knife_sharp"] == 0.0
    assert rate["34B"]["knife_sharp"] > 0.1

    age = crimes["victim_age"]
    present = age.drop_nulls().cast(pl.Int64)
    assert present.min() >= 0 and present.max() <= 120
    assert 25 <= present.median() <= 40
    business = crimes.filter(pl.col("business_victim") == "Y")
    assert business["victim_age"].null_count() == business.height
    # Child-only offences have child victims.
    child = crimes.filter(pl.col("hocr_code") == "21")["victim_age"].drop_nulls().cast(pl.Int64)
    assert child.len() == 0 or child.max() <= 12


# ---- outcomes -------------------------------------------------------------------------------


def test_outcomes_consistent_with_crimes(crimes, outcomes):
    assert outcomes["crime_ref"].n_unique() == outcomes.height  # at most one per crime
    joined = outcomes.join(crimes.select("crime_ref", "recorded_date", "status", rec_month="month"), on="crime_ref", how="left")
    assert joined["recorded_date"].null_count() == 0  # every outcome's crime exists
    assert (joined["status"] == "recorded").all()
    assert (joined["rec_month"] <= joined["month"]).all()
    od = joined["outcome_date"].str.to_date("%Y-%m-%d")
    rd = joined["recorded_date"].str.to_date("%Y-%m-%d")
    assert (od >= rd).all()
    for m in MONTHS:
        first, last = _month_bounds(m)
        dates = od.filter(joined["month"] == m)
        assert dates.len() > 0 and dates.min() >= first and dates.max() <= last


def test_outcome_types_and_rate(crimes, outcomes):
    types = outcomes["outcome_type"].cast(pl.Int64)
    assert types.min() >= 1 and types.max() <= 22
    dist = outcomes["outcome_type"].value_counts(normalize=True)
    share = dict(zip(dist["outcome_type"], dist["proportion"]))
    assert share["18"] == max(share.values())
    assert 0.3 < share["18"] < 0.5
    # Crimes of the first month have had 5 more months for outcomes: most have one.
    jan = crimes.filter((pl.col("month") == "2019-01") & (pl.col("status") == "recorded"))
    with_outcome = jan["crime_ref"].is_in(outcomes["crime_ref"].implode()).mean()
    assert 0.8 < with_outcome < 0.95
    # The latest month has fewer outcomes: later ones are not written yet.
    jun = crimes.filter((pl.col("month") == "2019-06") & (pl.col("status") == "recorded"))
    assert jun["crime_ref"].is_in(outcomes["crime_ref"].implode()).mean() < with_outcome


# ---- determinism ----------------------------------------------------------------------------


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def test_deterministic(demo, tmp_path):
    out, _, _ = demo
    _gen(tmp_path / "same")
    assert _all_bytes(tmp_path / "same") == _all_bytes(out)
    _gen(tmp_path / "other", seed=12345)
    other = _all_bytes(tmp_path / "other")
    base = _all_bytes(out)
    assert other.keys() == base.keys()
    assert other["2019-01/recorded_crime.csv"] != base["2019-01/recorded_crime.csv"]
    assert other["2019-03/crime_outcomes.csv"] != base["2019-03/crime_outcomes.csv"]


# ---- injected bad rows ----------------------------------------------------------------------


def _is_bad(row: dict, earlier_refs: set[str]) -> bool:
    rec = dt.date.fromisoformat(row["recorded_date"])
    age = row["victim_age"]
    return (
        row["hocr_code"] not in ALLOWED_CODES
        or any(row[f] not in ("Y", "N") for f in FLAGS)
        or row["npu"] is None
        or (age is not None and not (age.isdigit() and 0 <= int(age) <= 120))
        or row["crime_ref"] in earlier_refs
        or (row["offence_date"] is not None and dt.date.fromisoformat(row["offence_date"]) > rec)
        or (row["lsoa_code"] is not None and not row["lsoa_code"].startswith("E01"))
    )


def test_bad_rows(demo, tmp_path):
    out, _, _ = demo
    bad_out = tmp_path / "bad"
    summary = _gen(bad_out, bad_rows_per_month=3)
    assert summary.injected_bad_rows == 3 * len(MONTHS)
    good_total = 0
    for m in MONTHS:
        good = _read(out / m / "recorded_crime.csv")
        mixed = _read(bad_out / m / "recorded_crime.csv")
        good_total += good.height
        assert mixed.height == good.height + 3
        # The valid rows are untouched and keep their order (a subsequence of the new file).
        good_lines = (out / m / "recorded_crime.csv").read_text().splitlines()
        mixed_lines = iter((bad_out / m / "recorded_crime.csv").read_text().splitlines())
        assert all(line in mixed_lines for line in good_lines)
        first, last = _month_bounds(m)
        rows = mixed.to_dicts()
        seen: set[str] = set()
        n_bad = 0
        for row in rows:
            assert first <= dt.date.fromisoformat(row["recorded_date"]) <= last
            n_bad += _is_bad(row, seen)
            seen.add(row["crime_ref"])
        assert n_bad == 3
        # Outcomes are unaffected by the injected rows.
        assert (bad_out / m / "crime_outcomes.csv").read_bytes() == (out / m / "crime_outcomes.csv").read_bytes()
    assert summary.recorded_crimes == good_total + 3 * len(MONTHS)


def test_bad_rows_cover_every_fault(tmp_path):
    summary = generate_demo(tmp_path, first_month="2019-01", last_month="2019-03", crimes_per_month=300, bad_rows_per_month=3)
    assert summary.injected_bad_rows == 9
    rows = pl.concat([_read(tmp_path / m / "recorded_crime.csv") for m in ("2019-01", "2019-02", "2019-03")])
    assert (rows["hocr_code"] == "999X").any()
    assert rows["npu"].null_count() > 0
    assert rows["victim_age"].is_in(["-4", "abc"]).any()
    assert (rows["lsoa_code"] == "X0112345").any()
    assert rows["crime_ref"].n_unique() < rows.height
    assert any((~rows[f].is_in(["Y", "N"]) | rows[f].is_null()).any() for f in FLAGS)
    late = rows.filter(pl.col("offence_date").is_not_null()).select(pl.col("offence_date").str.to_date() > pl.col("recorded_date").str.to_date())
    assert late.to_series().any()


# ---- longer runs and arguments ----------------------------------------------------------------


def test_homicides_plausible_over_long_run(tmp_path):
    cpm = 2000
    summary = generate_demo(tmp_path, first_month="2019-01", last_month="2023-12", crimes_per_month=cpm)
    hom = 0
    for m in (p for p in sorted(tmp_path.iterdir()) if p.name != "reference"):
        codes = _read(m / "recorded_crime.csv")["hocr_code"]
        hom += codes.is_in(["1", "4.1", "4.2"]).sum()
    # ~3-5 a month at 25k crimes a month, scaled to this force's size.
    per_month_at_25k = hom / summary.months * 25_000 / cpm
    assert hom > 0
    assert 2.0 <= per_month_at_25k <= 7.0


def test_default_last_month_is_last_complete_month(tmp_path):
    today = dt.date.today()
    expected = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    summary = generate_demo(tmp_path, first_month=expected, crimes_per_month=100)
    assert summary.last_month == expected and summary.months == 1
    assert (tmp_path / expected / "recorded_crime.csv").exists()


@pytest.mark.parametrize(
    "kw",
    [
        {"first_month": "2019-13"},
        {"first_month": "2019-06", "last_month": "2019-05"},
        {"first_month": "2016-01"},
        {"crimes_per_month": 0},
        {"bad_rows_per_month": -1},
    ],
)
def test_invalid_arguments(tmp_path, kw):
    args = dict(first_month="2019-01", last_month="2019-02", crimes_per_month=100)
    args.update(kw)
    with pytest.raises(ValueError):
        generate_demo(tmp_path, **args)


def test_a_short_demo_range_writes_no_header_only_external_statistics_and_loads(tmp_path):
    """A range without a whole published year has no external figures: no file (a header-only file would fail every month)."""
    from etl.loading import load_source_month

    generate_demo(tmp_path, first_month="2019-01", last_month="2019-02", crimes_per_month=150)
    assert not (tmp_path / "reference" / "external_statistics.csv").exists()
    (report,) = load_source_month(tmp_path, "2019-02", tmp_path / "wh", compute=False)
    assert report.outcome == "loaded" and report.rows_loaded > 0
