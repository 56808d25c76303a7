"""Synthetic monthly extracts for a demo police force.

`generate_demo` writes, for every month in a range, the two files a force would send us:

    out_dir/YYYY-MM/recorded_crime.csv   one row per crime recorded in the month
    out_dir/YYYY-MM/crime_outcomes.csv   outcomes assigned in the month (to crimes of that month
                                         or of up to 6 months before)
    out_dir/reference/population.csv     mid-year population estimates
    out_dir/reference/areas.csv          the force's NPUs
    out_dir/reference/cdi_audit.csv      the yearly crime data integrity audit sample (`cdi_audit_sample`)

at the scale of a large metropolitan force (~25k crimes a month). The offence mix, seasonality,
pandemic dip, flag rates, outcome mixes and geography are declared in `demo_profile.yaml` next
to this module; this file only turns them into rows.

Everything is vectorised with numpy per month (loops run over months, offence families, outcome
mixes or NPUs, never over rows) and is deterministic for a given seed: each month draws from its
own random stream seeded by (seed, year, month), so a month's crimes do not depend on which other
months are generated (only the crime_ref sequence numbers and the outcomes carried over from
earlier months do).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from etl.errors import ConfigError

PROFILE_PATH = Path(__file__).with_name("profile.yaml")

RECORDED_CRIME_COLUMNS = (
    "crime_ref",
    "force_id",
    "recorded_date",
    "offence_date",
    "hocr_code",
    "status",
    "npu",
    "lsoa_code",
    "domestic_abuse",
    "hate_crime",
    "knife_sharp",
    "firearm",
    "online",
    "business_victim",
    "victim_age",
)
OUTCOME_COLUMNS = ("crime_ref", "outcome_type", "outcome_date")
FLAGS = ("domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim")
STATUSES = ("recorded", "cancelled", "transferred")

# The HOCR burglary codes the profile uses (28E, 30C, ...) only exist from April 2017.
EARLIEST_MONTH = "2017-04"
# Homicide `monthly_mean`s in the profile are per this monthly volume; they scale linearly.
HOMICIDE_REFERENCE_VOLUME = 25_000
# Bad rows that are not duplicates get sequence numbers from here on (per recording year), so
# they never collide with a real crime_ref and the valid rows are identical with or without them.
BAD_ROW_SEQUENCE_START = 9_000_001
# The deliberately invalid rows, injected in this rotation.
FAULTS = ("bad_hocr", "bad_flag", "missing_npu", "bad_age", "duplicate_ref", "offence_after_recorded", "bad_lsoa")

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class DemoSummary:
    source_dir: Path
    force_id: str
    first_month: str  # "YYYY-MM"
    last_month: str
    months: int
    recorded_crimes: int  # total rows written to recorded_crime files
    outcomes: int  # total rows written to crime_outcomes files
    injected_bad_rows: int  # rows deliberately made invalid


# --------------------------------------------------------------------------------------------
# Profile: the YAML compiled into per-code numpy arrays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    codes: pl.Series  # hocr code strings, index = code index
    share: np.ndarray  # fraction of crimes_per_month (0 for homicide codes)
    homicide_mean: np.ndarray  # Poisson mean per HOMICIDE_REFERENCE_VOLUME (0 for share codes)
    season_amp: np.ndarray
    season_peak: np.ndarray  # month number 1-12
    pandemic_change: np.ndarray  # signed fractional change at the full pandemic shape
    lag_profile: np.ndarray  # index into lag_* arrays
    lag_p_near: np.ndarray
    lag_near_cdf: np.ndarray  # profiles x 4
    lag_tail_mean: np.ndarray
    lag_max_days: int
    offence_missing_rate: float
    flag_rates: np.ndarray  # codes x len(FLAGS)
    flag_per_year: np.ndarray  # len(FLAGS)
    flag_pandemic_uplift: np.ndarray
    age_pmf: np.ndarray  # P(age = i)
    age_ranges: dict[int, tuple[int, int]]  # code index -> (lo, hi)
    age_missing_rate: float
    status_p: np.ndarray
    npus: list[str]
    npu_weights: np.ndarray
    lsoa_pool_size: int
    lsoa_first_code: int
    lsoa_missing_rate: float
    lsoa_hotspot_shape: float
    weekend_weight: float
    scale_by_month_length: bool
    trend_anchor: np.datetime64
    annual_drift: float
    pandemic_shape: dict[str, float]
    outcome_rate: float
    outcome_mix: np.ndarray  # code index -> outcome-mix index
    outcome_cdf: np.ndarray  # mixes x outcome types
    outcome_types: pl.Series  # outcome type strings
    outcome_slow: np.ndarray  # bool per outcome type
    outcome_lag_cdf: np.ndarray  # 2 (quick, slow) x 7
    population_first: int
    population_growth: float


def _cdf(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"invalid weights in demo profile: {weights!r}")
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


def _load_profile(path: Path = PROFILE_PATH) -> _Profile:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    flag_defaults = raw["flag_defaults"]
    lag_names = list(raw["offence_lag"]["profiles"])
    mix_names = list(raw["outcomes"]["types"])

    codes: list[str] = []
    share, hom, amp, peak, pand, lagp, mix, rates = [], [], [], [], [], [], [], []
    age_ranges: dict[int, tuple[int, int]] = {}
    for fam in raw["families"].values():
        for code, spec in fam["codes"].items():
            code = str(code)
            if code in codes:
                raise ValueError(f"demo profile: code {code} appears twice")
            spec = spec or {}
            season = spec.get("seasonality", fam["seasonality"])
            codes.append(code)
            share.append(float(spec.get("share", 0.0)))
            hom.append(float(spec.get("monthly_mean", 0.0)))
            amp.append(float(season["amplitude"]))
            peak.append(int(season["peak_month"]))
            pand.append(float(fam.get("pandemic_change", 0.0)))
            lagp.append(lag_names.index(spec.get("offence_lag_profile", fam["offence_lag"])))
            mix.append(mix_names.index(fam["outcomes"]))
            rates.append([float(spec.get(f, fam.get("flags", {}).get(f, flag_defaults[f]))) for f in FLAGS])
            if "victim_age_range" in spec:
                lo, hi = spec["victim_age_range"]
                age_ranges[len(codes) - 1] = (int(lo), int(hi))
            if share[-1] > 0 and hom[-1] > 0:
                raise ValueError(f"demo profile: code {code} has both a share and a monthly_mean")
    share_arr = np.array(share)
    share_arr /= share_arr.sum()

    lag_profiles = [raw["offence_lag"]["profiles"][n] for n in lag_names]

    bands = raw["victim_age"]["bands"]
    age_pmf = np.zeros(max(b["range"][1] for b in bands) + 1)
    for b in bands:
        lo, hi = b["range"]
        age_pmf[lo : hi + 1] += b["share"] / (hi - lo + 1)
    age_pmf /= age_pmf.sum()

    types_all = sorted({str(t) for m in mix_names for t in raw["outcomes"]["types"][m]}, key=int)
    outcome_cdf = np.stack([_cdf([float(raw["outcomes"]["types"][m].get(t, 0.0)) for t in types_all]) for m in mix_names])
    slow_types = {str(t) for t in raw["outcomes"]["slow_types"]}
    lag_months = raw["outcomes"]["lag_months"]

    flag_time = raw.get("flag_time", {})
    npus = raw["npus"]
    return _Profile(
        codes=pl.Series("hocr_code", codes, dtype=pl.String),
        share=share_arr,
        homicide_mean=np.array(hom),
        season_amp=np.array(amp),
        season_peak=np.array(peak),
        pandemic_change=np.array(pand),
        lag_profile=np.array(lagp),
        lag_p_near=np.array([p["p_near"] for p in lag_profiles]),
        lag_near_cdf=np.stack([_cdf(p["near_weights"]) for p in lag_profiles]),
        lag_tail_mean=np.array([p["tail_mean_days"] for p in lag_profiles], dtype=float),
        lag_max_days=int(raw["offence_lag"]["max_days"]),
        offence_missing_rate=float(raw["offence_lag"]["missing_rate"]),
        flag_rates=np.array(rates),
        flag_per_year=np.array([flag_time.get(f, {}).get("per_year", 0.0) for f in FLAGS]),
        flag_pandemic_uplift=np.array([flag_time.get(f, {}).get("pandemic_uplift", 0.0) for f in FLAGS]),
        age_pmf=age_pmf,
        age_ranges=age_ranges,
        age_missing_rate=float(raw["victim_age"]["missing_rate"]),
        status_p=_cdf([raw["status"][s] for s in STATUSES]),
        npus=list(npus),
        npu_weights=np.array(list(npus.values()), dtype=float) / sum(npus.values()),
        lsoa_pool_size=int(raw["lsoa"]["pool_size"]),
        lsoa_first_code=int(raw["lsoa"]["first_code"]),
        lsoa_missing_rate=float(raw["lsoa"]["missing_rate"]),
        lsoa_hotspot_shape=float(raw["lsoa"]["hotspot_shape"]),
        weekend_weight=float(raw["calendar"]["weekend_weight"]),
        scale_by_month_length=bool(raw["calendar"]["scale_by_month_length"]),
        trend_anchor=np.datetime64(raw["trend"]["anchor_month"], "M"),
        annual_drift=float(raw["trend"]["annual_drift"]),
        pandemic_shape={str(k): float(v) for k, v in raw["trend"]["pandemic_shape"].items()},
        outcome_rate=float(raw["outcomes"]["eventual_rate"]),
        outcome_mix=np.array(mix),
        outcome_cdf=outcome_cdf,
        outcome_types=pl.Series("outcome_type", types_all, dtype=pl.String),
        outcome_slow=np.array([t in slow_types for t in types_all]),
        outcome_lag_cdf=np.stack([_cdf(lag_months["quick"]), _cdf(lag_months["slow"])]),
        population_first=int(raw["population"]["first_year_value"]),
        population_growth=float(raw["population"]["annual_growth"]),
    )


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _parse_month(value: str, name: str) -> np.datetime64:
    if not isinstance(value, str) or not _MONTH_RE.match(value):
        raise ValueError(f"{name} must be 'YYYY-MM', got {value!r}")
    return np.datetime64(value, "M")


def _last_complete_month(today: _dt.date) -> str:
    return (today.replace(day=1) - _dt.timedelta(days=1)).strftime("%Y-%m")


def _month_days(month: np.datetime64) -> tuple[int, int]:
    """First and last day of `month` as days since 1970-01-01."""
    first = int(month.astype("M8[D]").astype(np.int64))
    last = int((month + 1).astype("M8[D]").astype(np.int64)) - 1
    return first, last


def _to_date(days: np.ndarray) -> pl.Series:
    """Days since the epoch (int) -> polars Date."""
    return pl.Series(days.astype(np.int32)).cast(pl.Date)


def _ref_prefix(force_id: str) -> str:
    """'demo-force' -> 'DF': initials of the force id's words, used as the crime_ref prefix."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", force_id) if w]
    return ("".join(w[0] for w in words)[:3] or "XX").upper()


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: category index for each uniform in u."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), cdf.size - 1)


def _rng(seed: int, month: np.datetime64, stream: int) -> np.random.Generator:
    year, mon = divmod(int(month.astype(np.int64)), 12)
    return np.random.default_rng([seed, 1970 + year, mon + 1, stream])


# --------------------------------------------------------------------------------------------
# One month of crimes
# --------------------------------------------------------------------------------------------


@dataclass
class _MonthCrimes:
    frame: pl.DataFrame  # the recorded_crime rows, in file order (valid rows only)
    rec_days: np.ndarray  # recorded date, days since epoch
    code_idx: np.ndarray
    status_idx: np.ndarray


class _Generator:
    def __init__(self, prof: _Profile, *, force_id: str, seed: int, crimes_per_month: int, last_month: np.datetime64):
        self.p = prof
        self.force_id = force_id
        self.seed = seed
        self.cpm = crimes_per_month
        self.last_month = last_month
        self.prefix = _ref_prefix(force_id)
        # Geography: a pool of LSOAs, each NPU owning a contiguous block sized by its weight,
        # with gamma "hotspot" weights inside each block. Drawn once per seed.
        geo = np.random.default_rng([seed, 0])
        sizes = np.floor(prof.npu_weights * prof.lsoa_pool_size).astype(int)
        sizes[np.argmax(sizes)] += prof.lsoa_pool_size - sizes.sum()
        self.lsoa_npu = np.repeat(np.arange(len(prof.npus)), sizes)
        hot = geo.gamma(prof.lsoa_hotspot_shape, 1.0, prof.lsoa_pool_size)
        block_total = np.bincount(self.lsoa_npu, weights=hot)
        self.lsoa_cdf = _cdf(hot / block_total[self.lsoa_npu] * prof.npu_weights[self.lsoa_npu])
        self.lsoa_codes = pl.Series([f"E01{prof.lsoa_first_code + i:06d}" for i in range(prof.lsoa_pool_size)])
        self.npu_series = pl.Series(prof.npus)
        # crime_ref sequences restart each recording year.
        self.seq_year = -1
        self.seq = 0
        self.bad_seq = 0

    # ---- expected volume -----------------------------------------------------------------

    def _pandemic(self, month: np.datetime64) -> float:
        return self.p.pandemic_shape.get(str(month), 0.0)

    def _years_since_anchor(self, month: np.datetime64) -> float:
        return float((month - self.p.trend_anchor).astype(np.int64)) / 12.0

    def expected_counts(self, month: np.datetime64) -> np.ndarray:
        p = self.p
        mon = int(month.astype(np.int64)) % 12 + 1
        season = 1.0 + p.season_amp * np.cos(2 * np.pi * (mon - p.season_peak) / 12.0)
        trend = (1.0 + p.annual_drift) ** self._years_since_anchor(month)
        pandemic = np.maximum(0.0, 1.0 + p.pandemic_change * self._pandemic(month))
        first, last = _month_days(month)
        length = (last - first + 1) / (365.25 / 12) if p.scale_by_month_length else 1.0
        volume = self.cpm * p.share * season * trend * pandemic * length
        # Homicides: a Poisson count scaled with the force's size, no seasonality or trend.
        homicides = p.homicide_mean * self.cpm / HOMICIDE_REFERENCE_VOLUME
        return np.where(p.homicide_mean > 0, homicides, volume)

    # ---- crimes --------------------------------------------------------------------------

    def crimes(self, month: np.datetime64) -> _MonthCrimes:
        p = self.p
        rng = _rng(self.seed, month, 1)
        first, last = _month_days(month)

        counts = rng.poisson(self.expected_counts(month))
        code_idx = np.repeat(np.arange(counts.size), counts)
        n = code_idx.size

        # Recorded date: uniform over the month's days, weekends slightly lighter.
        days = np.arange(first, last + 1)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        day_cdf = _cdf(np.where(weekday >= 5, p.weekend_weight, 1.0))
        rec = days[_draw(day_cdf, rng.random(n))]
        # File order: by recorded date, offences shuffled within a day; crime_refs follow it.
        order = np.lexsort((rng.random(n), rec))
        rec, code_idx = rec[order], code_idx[order]

        # Offence date: mostly 0-3 days before recording, else an exponential tail (long for
        # sexual offences, coercive control, fraud-like codes), capped at max_days.
        prof_i = p.lag_profile[code_idx]
        near = rng.random(n) < p.lag_p_near[prof_i]
        near_lag = _draw_rows(p.lag_near_cdf, prof_i, rng.random(n))
        tail_lag = 4 + np.floor(rng.exponential(1.0, n) * p.lag_tail_mean[prof_i]).astype(np.int64)
        lag = np.where(near, near_lag, np.minimum(tail_lag, p.lag_max_days))
        off = rec - lag
        off_missing = rng.random(n) < p.offence_missing_rate

        status_idx = _draw(p.status_p, rng.random(n))

        lsoa = _draw(self.lsoa_cdf, rng.random(n))
        npu = self.lsoa_npu[lsoa]
        lsoa_missing = rng.random(n) < p.lsoa_missing_rate

        # Flags: per-code rates, online and domestic abuse moved by the trend and the pandemic.
        time_mult = (1.0 + p.flag_per_year) ** self._years_since_anchor(month) * (1.0 + p.flag_pandemic_uplift * self._pandemic(month))
        rates = np.minimum(p.flag_rates[code_idx] * time_mult, 1.0)
        flags = rng.random((n, len(FLAGS))) < rates
        business = flags[:, FLAGS.index("business_victim")]
        flags[:, FLAGS.index("domestic_abuse")] &= ~business

        # Victim age from the banded distribution; child-only / adult-only offences draw from the
        # same distribution restricted to their range. Empty for business victims.
        age_cdf = _cdf(p.age_pmf)
        age = _draw(age_cdf, rng.random(n))
        for ci, (lo, hi) in p.age_ranges.items():
            rows = np.flatnonzero(code_idx == ci)
            if rows.size:
                restricted = np.zeros_like(p.age_pmf)
                restricted[lo : hi + 1] = p.age_pmf[lo : hi + 1]
                age[rows] = _draw(_cdf(restricted), rng.random(rows.size))
        age_missing = business | (rng.random(n) < p.age_missing_rate)

        # crime_ref: prefix + 2-digit recording year + '/' + 7-digit sequence within the year.
        year = int(str(month)[:4])
        if year != self.seq_year:
            self.seq_year, self.seq, self.bad_seq = year, 0, 0
        seq = self.seq + 1 + np.arange(n)
        self.seq += n

        frame = pl.DataFrame(
            {
                "seq": seq,
                "recorded_date": _to_date(rec),
                "offence_date": _to_date(off),
                "off_missing": off_missing,
                "hocr_code": p.codes.gather(code_idx),
                "status": pl.Series(STATUSES).gather(status_idx),
                "npu": self.npu_series.gather(npu),
                "lsoa_code": self.lsoa_codes.gather(lsoa),
                "lsoa_missing": lsoa_missing,
                **{f: flags[:, i] for i, f in enumerate(FLAGS)},
                "victim_age": age,
                "age_missing": age_missing,
            }
        ).select(
            (pl.lit(f"{self.prefix}{year % 100:02d}/") + pl.col("seq").cast(pl.String).str.zfill(7)).alias("crime_ref"),
            pl.lit(self.force_id).alias("force_id"),
            "recorded_date",
            pl.when(~pl.col("off_missing")).then(pl.col("offence_date")).alias("offence_date"),
            "hocr_code",
            "status",
            "npu",
            pl.when(~pl.col("lsoa_missing")).then(pl.col("lsoa_code")).alias("lsoa_code"),
            *[pl.when(pl.col(f)).then(pl.lit("Y")).otherwise(pl.lit("N")).alias(f) for f in FLAGS],
            pl.when(~pl.col("age_missing")).then(pl.col("victim_age").cast(pl.String)).alias("victim_age"),
        )
        return _MonthCrimes(frame, rec, code_idx, status_idx)

    # ---- injected faults ------------------------------------------------------------------

    def with_bad_rows(self, month: np.datetime64, mc: _MonthCrimes, k: int, fault_start: int) -> tuple[pl.DataFrame, int]:
        """The month's rows plus k deliberately invalid ones, each placed right after the valid
        row it was copied from (so a duplicated crime_ref always follows its original and the
        recorded_date stays inside the month). Uses its own random stream, so the valid rows
        are the same whatever k is."""
        good = mc.frame
        n = good.height
        if k <= 0 or n == 0:
            return good, 0
        rng = _rng(self.seed, month, 2)
        src = np.sort(rng.choice(n, size=k, replace=k > n))
        fault = (fault_start + np.arange(k)) % len(FAULTS)
        is_fault = {name: fault == i for i, name in enumerate(FAULTS)}

        # Non-duplicate bad rows get their own crime_refs, clear of the valid sequence.
        fresh = ~is_fault["duplicate_ref"]
        bad_seq = np.zeros(k, dtype=np.int64)
        bad_seq[fresh] = BAD_ROW_SEQUENCE_START + self.bad_seq + np.arange(fresh.sum())
        self.bad_seq += int(fresh.sum())

        flag_pick = rng.integers(len(FLAGS), size=k)
        bad_flag_value = np.array(["y", "U", ""])[np.arange(k) % 3]
        bad_age_value = np.array(["-4", "abc"])[np.arange(k) % 2]
        # Re-coded duplicates take a plausible code from the mix (never a homicide code).
        other_code = self.p.codes.gather(_draw(_cdf(self.p.share), rng.random(k)))
        late_offence = _to_date(mc.rec_days[src] + rng.integers(1, 15, size=k))

        bad = good[src].with_columns(
            _fault=pl.Series(fault),
            _flag=pl.Series(flag_pick),
            _flagv=pl.Series(bad_flag_value),
            _agev=pl.Series(bad_age_value),
            _code=other_code,
            _late=late_offence,
            _seq=pl.Series(bad_seq),
        )
        f = pl.col("_fault")
        bad = bad.with_columns(
            pl.when(f == FAULTS.index("duplicate_ref"))
            .then(pl.col("crime_ref"))
            .otherwise(pl.col("crime_ref").str.slice(0, len(self.prefix) + 3) + pl.col("_seq").cast(pl.String).str.zfill(7))
            .alias("crime_ref"),
            # A duplicate that disagrees with its original (re-extract of an edited crime).
            pl.when(f == FAULTS.index("bad_hocr"))
            .then(pl.lit("999X"))
            .when(f == FAULTS.index("duplicate_ref"))
            .then(pl.col("_code"))
            .otherwise(pl.col("hocr_code"))
            .alias("hocr_code"),
            *[
                pl.when((f == FAULTS.index("bad_flag")) & (pl.col("_flag") == i))
                .then(pl.when(pl.col("_flagv") != "").then(pl.col("_flagv")))
                .otherwise(pl.col(flag))
                .alias(flag)
                for i, flag in enumerate(FLAGS)
            ],
            pl.when(f == FAULTS.index("missing_npu")).then(None).otherwise(pl.col("npu")).alias("npu"),
            pl.when(f == FAULTS.index("bad_age")).then(pl.col("_agev")).otherwise(pl.col("victim_age")).alias("victim_age"),
            pl.when(f == FAULTS.index("offence_after_recorded")).then(pl.col("_late")).otherwise(pl.col("offence_date")).alias("offence_date"),
            pl.when(f == FAULTS.index("bad_lsoa")).then(pl.lit("X0112345")).otherwise(pl.col("lsoa_code")).alias("lsoa_code"),
        ).select(RECORDED_CRIME_COLUMNS)

        # Interleave: valid row i has key i, a bad row copied from row j has key j + 0.5.
        key = np.concatenate([np.arange(n, dtype=float), src + 0.5 + np.arange(k) * 1e-6])
        combined = pl.concat([good, bad]).with_columns(_key=pl.Series(key)).sort("_key")
        return combined.drop("_key"), k

    # ---- outcomes ------------------------------------------------------------------------

    def outcomes(self, month: np.datetime64, mc: _MonthCrimes) -> list[tuple[np.datetime64, pl.DataFrame]]:
        """Outcomes for this month's crimes, grouped by the month they are assigned in. Months
        after last_month are dropped (those outcomes have not happened yet)."""
        p = self.p
        rng = _rng(self.seed, month, 3)
        n = mc.rec_days.size
        # Only `recorded` crimes get outcomes; ~90% of them eventually do.
        gets = (mc.status_idx == STATUSES.index("recorded")) & (rng.random(n) < p.outcome_rate)
        rows = np.flatnonzero(gets)
        code_idx = mc.code_idx[rows]

        # Outcome type from the family's mix.
        u = rng.random(rows.size)
        otype = np.zeros(rows.size, dtype=np.int64)
        mix = p.outcome_mix[code_idx]
        for m in np.unique(mix):
            sel = mix == m
            otype[sel] = _draw(p.outcome_cdf[m], u[sel])

        # Lag in months: judicial disposals (charge, caution, ...) take longer.
        lag = _draw_rows(p.outcome_lag_cdf, p.outcome_slow[otype].astype(int), rng.random(rows.size))
        target = month + lag.astype("timedelta64[M]")
        t_first = target.astype("M8[D]").astype(np.int64)
        t_last = (target + 1).astype("M8[D]").astype(np.int64) - 1
        # Inside the outcome month and never before the crime was recorded.
        low = np.maximum(t_first, mc.rec_days[rows])
        odate = low + np.floor(rng.random(rows.size) * (t_last - low + 1)).astype(np.int64)

        refs = mc.frame.get_column("crime_ref").gather(rows)
        types = p.outcome_types.gather(otype)
        result = []
        for lg in range(p.outcome_lag_cdf.shape[1]):
            tm = month + np.timedelta64(lg, "M")
            if tm > self.last_month:
                break
            sel = np.flatnonzero(lag == lg)
            result.append(
                (
                    tm,
                    pl.DataFrame(
                        {
                            "crime_ref": refs.gather(sel),
                            "outcome_type": types.gather(sel),
                            "outcome_date": _to_date(odate[sel]),
                        }
                    ),
                )
            )
        return result


def _draw_rows(cdfs: np.ndarray, which: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw where row i uses the CDF cdfs[which[i]]."""
    return np.minimum((u[:, None] > cdfs[which]).sum(axis=1), cdfs.shape[1] - 1)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    # Nulls become empty fields (an empty *string* would be written as ""), LF line endings,
    # quotes only where needed (never, for these values).
    frame.write_csv(path, include_header=True, separator=",", line_terminator="\n", quote_style="necessary", null_value="", date_format="%Y-%m-%d")


def generate_demo(
    out_dir: Path,
    *,
    force_id: str = "demo-force",
    first_month: str = "2018-07",
    last_month: str | None = None,
    seed: int = 20180701,
    bad_rows_per_month: int = 0,
    crimes_per_month: int = 25000,
    on_month: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Write synthetic monthly extracts for `first_month`..`last_month` under `out_dir`.

    last_month=None means the last complete calendar month before today. `on_month(month)` is
    called after each month's files are written. Existing files for the generated months are
    overwritten; nothing else under out_dir is touched.
    """
    if last_month is None:
        last_month = _last_complete_month(_dt.date.today())
    first_m = _parse_month(first_month, "first_month")
    last_m = _parse_month(last_month, "last_month")
    if first_m < np.datetime64(EARLIEST_MONTH, "M"):
        raise ValueError(f"first_month must be {EARLIEST_MONTH} or later (the demo offence codes start in April 2017), got {first_month}")
    if last_m < first_m:
        raise ValueError(f"last_month {last_month} is before first_month {first_month}")
    if crimes_per_month <= 0:
        raise ValueError("crimes_per_month must be positive")
    if bad_rows_per_month < 0:
        raise ValueError("bad_rows_per_month must be >= 0")
    if not force_id or "," in force_id or '"' in force_id or "\n" in force_id:
        raise ValueError(f"invalid force_id {force_id!r}")

    out_dir = Path(out_dir)
    prof = _load_profile()
    gen = _Generator(prof, force_id=force_id, seed=seed, crimes_per_month=crimes_per_month, last_month=last_m)

    pending: dict[np.datetime64, list[pl.DataFrame]] = defaultdict(list)
    n_months = int((last_m - first_m).astype(np.int64)) + 1
    total_crimes = total_outcomes = total_bad = 0
    for i in range(n_months):
        month = first_m + np.timedelta64(i, "M")
        label = str(month)
        month_dir = out_dir / label
        month_dir.mkdir(parents=True, exist_ok=True)

        mc = gen.crimes(month)
        frame, n_bad = gen.with_bad_rows(month, mc, bad_rows_per_month, total_bad)
        _write_csv(frame, month_dir / "recorded_crime.csv")
        total_crimes += frame.height
        total_bad += n_bad

        for target, part in gen.outcomes(month, mc):
            pending[target].append(part)
        parts = pending.pop(month, [])
        outcomes = pl.concat(parts) if parts else pl.DataFrame(schema={"crime_ref": pl.String, "outcome_type": pl.String, "outcome_date": pl.Date})
        outcomes = outcomes.sort("outcome_date", "crime_ref")
        _write_csv(outcomes, month_dir / "crime_outcomes.csv")
        total_outcomes += outcomes.height

        if on_month is not None:
            on_month(label)

    _write_reference(out_dir, prof, force_id, first_m, last_m)
    return DemoSummary(
        source_dir=out_dir,
        force_id=force_id,
        first_month=str(first_m),
        last_month=str(last_m),
        months=n_months,
        recorded_crimes=total_crimes,
        outcomes=total_outcomes,
        injected_bad_rows=total_bad,
    )


def _write_reference(out_dir: Path, prof: _Profile, force_id: str, first_m: np.datetime64, last_m: np.datetime64) -> None:
    ref_dir = out_dir / "reference"
    ref_dir.mkdir(parents=True, exist_ok=True)
    # Mid-year estimates from the year before the first month (the latest estimate available
    # when the first month was recorded) to the year of the last month.
    y0, y1 = int(str(first_m)[:4]) - 1, int(str(last_m)[:4])
    years = np.arange(y0, y1 + 1)
    population = np.round(prof.population_first * (1 + prof.population_growth) ** (years - y0))
    _write_csv(
        pl.DataFrame(
            {
                "force_id": [force_id] * years.size,
                "year": years.astype(np.int64),
                "population": population.astype(np.int64),
            }
        ),
        ref_dir / "population.csv",
    )
    _write_csv(pl.DataFrame({"force_id": [force_id] * len(prof.npus), "npu": prof.npus}), ref_dir / "areas.csv")
    external = _external_statistics(force_id, y0 + 1, y1)
    if external.height:  # a range too short for a whole published year has none (a header-only file fails its contract)
        _write_csv(external, ref_dir / "external_statistics.csv")
    audit = cdi_audit_sample(force_id, str(first_m), str(last_m))
    if audit.height:  # a range without the audit month has no audit (a header-only file would fail its contract)
        _write_csv(audit, ref_dir / "cdi_audit.csv")


CDI_AUDIT_COLUMNS = ("force_id", "audit_month", "sample_type", "item_ref", "crime_group", "crimes_should_record", "crimes_recorded", "decision_correct")
_CDI_SCHEMA = {c: pl.Int64 if c.startswith("crimes_") else pl.Utf8 for c in CDI_AUDIT_COLUMNS}
_CDI_PREFIX = {"incident": "INC", "directly_recorded": "CRM", "dip_sample": "DIP", "no_crime": "NCR"}


def cdi_audit_sample(force_id: str, first_month: str, last_month: str, seed: int = 20140501, path: Path = PROFILE_PATH) -> pl.DataFrame:
    """The demo force's crime data integrity audits in first_month..last_month (contract cdi_audit):
    one audit a year in the profile's month, one row per audited item - incidents and directly recorded
    crimes with the crimes that should have been recorded and those recorded, no-crime records with
    the decision's verdict, dip samples. Synthetic (profile ``cdi_audit``), deterministic per year."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))["cdi_audit"]
    groups = list(spec["crime_groups"])
    weights = np.array([float(w) for w in spec["crime_groups"].values()])
    weights /= weights.sum()
    first_year = int(first_month[:4])
    months = [m for m in (f"{y}-{int(spec['month']):02d}" for y in range(first_year, int(last_month[:4]) + 1)) if first_month <= m <= last_month]
    frames = []
    for month in months:
        year = int(month[:4])
        rng = np.random.default_rng([seed, year])
        parts: list[tuple[str, Any, Any, Any, Any]] = []  # sample type, crime groups, should, recorded, correct
        for kind in ("incident", "directly_recorded"):
            s = spec[kind]
            sizes = np.array([int(k) for k in s["crimes_per_item"]])
            p = np.array([float(v) for v in s["crimes_per_item"].values()])
            should = rng.choice(sizes, size=int(s["items"]), p=p / p.sum())
            recorded = rng.binomial(should, float(s["recorded_rate"]))
            group = np.where(should > 0, rng.choice(groups, size=should.size, p=weights), np.array(None, dtype=object))
            parts.append((kind, group, should, recorded, None))
        n_dip = int(spec["dip_sample"]["items"])
        parts.append(("dip_sample", rng.choice(groups, size=n_dip, p=weights), None, None, None))
        nc = spec["no_crime"]
        for g, size in nc["items"].items():
            years_on = max(0, year - int(nc["improvement_from"]))
            rate = min(float(nc["max_rate"]), float(nc["correct_rate"][g]) + float(nc["yearly_improvement"]) * years_on)
            correct = np.where(rng.random(int(size)) < rate, "Y", "N")
            parts.append(("no_crime", np.array([g] * int(size), dtype=object), None, None, correct))
        numbered: dict[str, int] = defaultdict(int)  # item numbers run on across a sample's parts
        for kind, group, should, recorded, correct in parts:
            n = len(group)
            first = numbered[kind] + 1
            numbered[kind] += n
            frames.append(
                pl.DataFrame(
                    {
                        "crime_group": pl.Series(list(group), dtype=pl.Utf8),
                        "crimes_should_record": pl.Series(should, dtype=pl.Int64) if should is not None else pl.repeat(None, n, dtype=pl.Int64, eager=True),
                        "crimes_recorded": pl.Series(recorded, dtype=pl.Int64) if recorded is not None else pl.repeat(None, n, dtype=pl.Int64, eager=True),
                        "decision_correct": pl.Series(correct, dtype=pl.Utf8) if correct is not None else pl.repeat(None, n, dtype=pl.Utf8, eager=True),
                    }
                ).with_columns(
                    pl.lit(force_id).alias("force_id"),
                    pl.lit(month).alias("audit_month"),
                    pl.lit(kind).alias("sample_type"),
                    pl.format(
                        "{}-{}-{}", pl.lit(_CDI_PREFIX[kind]), pl.lit(month.replace("-", "")), (pl.int_range(n) + first).cast(pl.Utf8).str.zfill(4)
                    ).alias("item_ref"),
                )
            )
    if not frames:
        return pl.DataFrame(schema=_CDI_SCHEMA)
    return pl.concat([f.select([pl.col(c).cast(t) for c, t in _CDI_SCHEMA.items()]) for f in frames])


def _external_statistics(force_id: str, first_year: int, last_year: int) -> pl.DataFrame:
    """Synthetic stand-ins for the [EXTERNAL] published figures (CSEW, ONS, Action Fraud), clearly
    labelled as synthetic: the real ones are copied from their publications by the force."""
    rng = np.random.default_rng(first_year * 100 + last_year)
    rows = []
    src = "SYNTHETIC demo figure (stands in for the publication named in the catalogue)"
    for y in range(first_year, last_year):
        fy = (f"{y}-04", f"{y + 1}-03")
        rows += [
            ("pk_csew_confidence", "fy", *fy, round(float(rng.normal(67, 2)), 1)),
            ("pk_csew_high_asb_perception", "fy", *fy, round(float(rng.normal(9, 1)), 1)),
            ("pk_fraud_victims_af", "fy", *fy, float(rng.poisson(19000))),
            ("nm_fraud_af_disseminations", "cal", f"{y}-01", f"{y}-12", float(rng.poisson(2400))),
            ("nm_fraud_identity_share", "cal", f"{y}-01", f"{y}-12", round(float(rng.normal(31, 2)), 1)),
        ]
    for y in range(first_year, last_year - 1, 3):
        rows.append(("pk_drug_related_deaths", "agg3y", f"{y}-01", f"{y + 2}-12", float(rng.poisson(450))))
    return pl.DataFrame(
        [{"force_id": force_id, "measure_id": m, "period": p, "period_start": a, "period_end": b, "value": v, "source": src} for m, p, a, b, v in rows],
        schema={
            "force_id": pl.Utf8,
            "measure_id": pl.Utf8,
            "period": pl.Utf8,
            "period_start": pl.Utf8,
            "period_end": pl.Utf8,
            "value": pl.Float64,
            "source": pl.Utf8,
        },
    )


# ---------------------------------------------------------------------------------------------------
# the demo folder: what `etl demo --dir D` may delete

DEMO_MARKER = ".etl-demo"  # written in D when the demo takes D; proves D's contents are the demo's
DEMO_PARTS = ("source", "warehouse", "reports")


class DemoFolderError(ConfigError, ValueError):
    """The demo folder holds something the demo did not create; nothing was deleted."""


@dataclass(frozen=True)
class DemoPaths:
    root: Path
    source: Path
    warehouse: Path
    reports: Path


def prepare_demo_dir(folder: str | Path) -> DemoPaths:
    """Take FOLDER for the demo and return where its parts go; the previous demo warehouse is removed.

    The demo only deletes or overwrites what it can prove it created: FOLDER must be new, empty, or
    hold the `DEMO_MARKER` file written when the demo first took it. Anything else (a non-empty
    folder without the marker, a file, a part that is a file or a symbolic link) raises
    `DemoFolderError` before anything is changed.
    """
    root = Path(folder)
    paths = DemoPaths(root, root / "source", root / "warehouse", root / "reports")
    marker = root / DEMO_MARKER
    advice = "choose a new or empty folder with --dir (nothing was deleted)"
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise DemoFolderError(f"{root}: is not a folder; {advice}")
    if root.exists():
        ours = marker.is_file() and not marker.is_symlink()
        if not ours and any(root.iterdir()):
            raise DemoFolderError(f"{root}: is not empty and was not created by `etl demo` (no {DEMO_MARKER} file); {advice}")
        for part in (paths.source, paths.warehouse, paths.reports):
            if part.is_symlink() or (part.exists() and not part.is_dir()):
                raise DemoFolderError(f"{part}: is not a folder the demo created; {advice}")
    root.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text("This folder was created by `etl demo`; the demo may replace its source, warehouse and reports.\n", encoding="utf-8")
    if paths.warehouse.exists():
        import shutil

        shutil.rmtree(paths.warehouse)
    return paths
