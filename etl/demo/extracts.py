"""Synthetic monthly extracts beyond recorded crime, for the demo police force.

`generate_extracts` writes, for every month asked for, the further files a force may send
(every one optional, each described by its contract in ``contracts/``):

    out_dir/YYYY-MM/calls.csv                     999 / 101 calls presented, with answer times
    out_dir/YYYY-MM/incidents.csv                 incident log: priority, first arrival, NSIR category
    out_dir/YYYY-MM/stop_search.csv               stop and search records
    out_dir/YYYY-MM/use_of_force.csv              use-of-force forms
    out_dir/YYYY-MM/hospital_admissions.csv       NHS assault admissions, aggregated
    out_dir/YYYY-MM/firearm_discharges.csv        firearm discharge register
    out_dir/YYYY-MM/drug_disruptions.csv          drug disruption register
    out_dir/YYYY-MM/custody_drug_tests.csv        drug tests in custody
    out_dir/YYYY-MM/drug_treatment_referrals.csv  referrals into drug treatment
    out_dir/YYYY-MM/nrm_referrals.csv             National Referral Mechanism referrals
    out_dir/YYYY-MM/victim_survey.csv             victim satisfaction survey responses
    out_dir/YYYY-MM/workforce.csv                 HR snapshot at the month end (the full snapshot)

at the scale of a large metropolitan force when ``scale=1.0`` (about 150k calls and 70k incidents
a month, ~16 MB a month: use a smaller scale for long runs, `RECOMMENDED_DEMO_SCALE` for
``etl demo``). Volumes, mixes, seasonality, trend, the pandemic and the workforce uplift are declared
in `demo_extracts_profile.yaml` next to this module; this file only turns them into rows.

Determinism: every (extract, month) draws from its own random stream seeded by (seed, extract,
month), so a month's file does not depend on which other months or extracts are generated. The
workforce is the one extract with memory (the same people month after month): it is simulated from
a fixed start month (the profile's ``simulation_start``) with one random stream per simulated month,
so a month's snapshot still depends only on (seed, scale, month). Everything is vectorised with
numpy / polars per month (loops run over months, channels, categories or fault kinds, never over
rows).

Bad rows: with ``bad_rows_per_month=k`` each file gets k deliberately invalid rows per month, each a
copy of a valid row with one realistic fault (an unknown code, a call answered before it was
presented, a negative count, a repeated id...), placed right after the row it was copied from and
always dated inside the month, so the file loads with exactly those k rows quarantined. Faults draw
from their own random stream: the valid rows are the same whatever k is.

Every file has at least one valid row: a header-only file is a file failure in `etl.core.extracts`, and a
force with nothing to report for a month would not send the (optional) file at all.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import yaml

PROFILE_PATH = Path(__file__).with_name("extracts_profile.yaml")
CRIME_PROFILE_PATH = Path(__file__).with_name("profile.yaml")

# Scale of the full-size demo (`etl demo --size full`, July 2018 to last month): ~38k calls, 18k
# incidents and 3k workforce rows a month, ~4 MB a month for all twelve extracts (~400 MB and ~10 s to
# generate for 100 months; scale 1.0 is ~16 MB a month, 1.6 GB and ~30 s for 100 months).
RECOMMENDED_DEMO_SCALE = 0.25


@dataclass(frozen=True)
class DemoSize:
    """A size of `etl demo`: recorded crimes a month and the other extracts' scale (the same proportion)."""

    crimes_per_month: int
    extracts_scale: float


# small (the default): every page of the report populated in under a minute on two cores (~6k crimes
# and ~0.5 MB of other extracts a month); full: a large metropolitan force (the benchmarks' force size).
DEMO_SIZES: dict[str, DemoSize] = {
    "small": DemoSize(crimes_per_month=6000, extracts_scale=0.06),
    "full": DemoSize(crimes_per_month=25000, extracts_scale=RECOMMENDED_DEMO_SCALE),
}

# File layouts: the contract property names, in file order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("call_id", "channel", "presented_at", "answered_at", "abandoned"),
    "incidents": ("incident_id", "created_at", "priority", "first_arrival_at", "nsir_category", "opening_code", "closing_code", "mental_health", "npu"),
    "stop_search": (
        "search_id",
        "search_date",
        "search_type",
        "power",
        "object_of_search",
        "outcome",
        "outcome_linked_to_object",
        "self_defined_ethnicity",
        "officer_defined_ethnicity",
        "age_band",
        "bwv_activated",
        "npu",
    ),
    "use_of_force": ("record_id", "incident_date", "subject_ethnicity", "tactic", "injury", "bwv_activated", "npu"),
    "hospital_admissions": ("admission_month", "age_band", "cause", "icd10_code", "episodes"),
    "firearm_discharges": ("incident_id", "discharge_date", "fatal", "injury", "firearm_type", "gang_linked", "drug_linked", "npu"),
    "drug_disruptions": ("disruption_id", "disruption_date", "category", "impact", "county_lines", "arrests", "charges", "npu"),
    "custody_drug_tests": ("test_id", "test_date", "result", "substance"),
    "drug_treatment_referrals": ("referral_id", "referral_date", "source"),
    "nrm_referrals": ("referral_id", "referral_date", "exploitation_type", "age_group", "crime_recorded"),
    "victim_survey": (
        "response_id",
        "survey_date",
        "channel",
        "incident_ref",
        "incident_date",
        "offence_group",
        "q_overall",
        "q_polite",
        "q_understanding",
        "q_time_taken",
        "q_helped",
        "happy_with_service",
        "would_prefer_face_to_face",
        "free_text_given",
        "demographics_given",
    ),
    "workforce": (
        "person_id",
        "as_at",
        "role",
        "fte",
        "ethnicity_group",
        "sex",
        "npu",
        "neighbourhood_role",
        "joined_date",
        "uplift_joiner",
        "leaver_date",
        "leaver_reason",
        "absence_days_month",
        "absence_mental_health_days",
        "special_duty_hours",
    ),
}
EXTRACTS: tuple[str, ...] = tuple(COLUMNS)

# The id column of each extract and the letter after the force prefix in its ids
# (e.g. DFC18070000001 = demo-force call 1 of July 2018).
_ID = {
    "calls": ("call_id", "C"),
    "incidents": ("incident_id", "I"),
    "stop_search": ("search_id", "S"),
    "use_of_force": ("record_id", "U"),
    "firearm_discharges": ("incident_id", "F"),
    "drug_disruptions": ("disruption_id", "D"),
    "custody_drug_tests": ("test_id", "T"),
    "drug_treatment_referrals": ("referral_id", "R"),
    "nrm_referrals": ("referral_id", "N"),
    "victim_survey": ("response_id", "V"),
    "workforce": ("person_id", "P"),
}
# Injected bad rows that are not repeats get sequence numbers from here on, clear of the valid ones.
BAD_ROW_SEQUENCE_START = 9_000_001
_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_NEVER = np.iinfo(np.int64).max // 4  # leave day of people still in post


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Month:
    label: str  # YYYY-MM
    index: int  # year * 12 + month - 1
    year: int
    mon: int
    first: int  # first day, days since 1970-01-01
    last: int  # last day

    @classmethod
    def parse(cls, text: str) -> _Month:
        if not isinstance(text, str) or not _MONTH_RE.match(text):
            raise ValueError(f"months must be 'YYYY-MM', got {text!r}")
        return cls.of_index(int(text[:4]) * 12 + int(text[5:]) - 1)

    @classmethod
    def of_index(cls, index: int) -> _Month:
        year, m0 = divmod(index, 12)
        first = int(np.datetime64(f"{year:04d}-{m0 + 1:02d}", "M").astype("M8[D]").astype(np.int64))
        nxt = int((np.datetime64(f"{year:04d}-{m0 + 1:02d}", "M") + 1).astype("M8[D]").astype(np.int64))
        return cls(f"{year:04d}-{m0 + 1:02d}", index, year, m0 + 1, first, nxt - 1)

    @property
    def days(self) -> int:
        return self.last - self.first + 1

    @property
    def yymm(self) -> str:
        return f"{self.year % 100:02d}{self.mon:02d}"


def _month_index(text: str) -> int:
    return _Month.parse(str(text)).index


def _cdf(weights) -> np.ndarray:
    w = np.asarray(list(weights), dtype=float)
    if w.ndim != 1 or w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"invalid weights in demo extracts profile: {weights!r}")
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: category index for each uniform in u."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), cdf.size - 1)


def _draw_rows(cdfs: np.ndarray, which: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw where row i uses the CDF cdfs[which[i]]."""
    return np.minimum((u[:, None] > cdfs[which]).sum(axis=1), cdfs.shape[1] - 1)


def _pick(rng: np.random.Generator, weights: dict, n: int) -> pl.Series:
    """n labels drawn from a {label: weight} mapping."""
    labels = pl.Series([str(k) for k in weights], dtype=pl.String)
    return labels.gather(_draw(_cdf(weights.values()), rng.random(n)))


def _labels(labels: Iterable[str], idx: np.ndarray) -> pl.Series:
    return pl.Series(list(labels), dtype=pl.String).gather(idx)


def _yn(flags: np.ndarray) -> pl.Series:
    return pl.Series(np.where(flags, "Y", "N"), dtype=pl.String)


def _null_where(series: pl.Series, empty: np.ndarray) -> pl.Series:
    return series.set(pl.Series(np.asarray(empty, dtype=bool)), None) if np.any(empty) else series


def _fmt_date(days: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(days).astype(np.int32)).cast(pl.Date).dt.strftime("%Y-%m-%d")


def _fmt_ts(seconds: np.ndarray) -> pl.Series:
    micros = pl.Series(np.asarray(seconds, dtype=np.int64) * 1_000_000)
    return micros.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d %H:%M:%S")


def _fmt_number(values: np.ndarray) -> pl.Series:
    """Numbers as text: whole numbers without a decimal point, halves as 1.5."""
    v = pl.Series(np.asarray(values, dtype=float))
    return pl.select(pl.when(v == v.round(0)).then(v.cast(pl.Int64).cast(pl.String)).otherwise(v.round(2).cast(pl.String))).to_series()


def _fmt_int(values: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=np.int64)).cast(pl.String)


def _force_prefix(force_id: str) -> str:
    """'demo-force' -> 'DF': initials of the force id's words."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", force_id) if w]
    return ("".join(w[0] for w in words)[:3] or "XX").upper()


def _ids(prefix: str, start: int, n: int) -> pl.Series:
    seq = pl.Series(np.arange(start, start + n, dtype=np.int64)).cast(pl.String).str.zfill(7)
    return (prefix + seq).alias("id") if n else pl.Series("id", [], dtype=pl.String)


def _rng(seed: int, extract: str, month_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(extract.encode()), month_index, stream])


def _ensure_one(counts) -> np.ndarray:
    """Row counts with at least one row in the file (a header-only file is a file failure)."""
    counts = np.atleast_1d(np.asarray(counts, dtype=np.int64)).copy()
    if counts.sum() == 0:
        counts[0] = 1
    return counts


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _load_profile(path: Path = PROFILE_PATH, crime_path: Path = CRIME_PROFILE_PATH) -> dict:
    prof = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    npus = yaml.safe_load(Path(crime_path).read_text(encoding="utf-8"))["npus"]
    prof["_npus"] = {str(k): float(v) for k, v in npus.items()}
    prof["_pandemic"] = {str(k): float(v) for k, v in prof["pandemic_shape"].items()}
    return prof


class _Ctx:
    """What one extract-month generator needs: its random stream, the month and the profile."""

    def __init__(self, prof: dict, extract: str, mo: _Month, rng: np.random.Generator, scale: float, prefix: str):
        self.prof = prof
        self.spec = prof[extract]
        self.extract = extract
        self.mo = mo
        self.rng = rng
        self.scale = scale
        self.prefix = prefix

    # ---- volume -------------------------------------------------------------------------

    @property
    def shape(self) -> float:
        return self.prof["_pandemic"].get(self.mo.label, 0.0)

    def season(self, amplitude: float | None = None, peak: int | None = None) -> float:
        s = self.spec.get("seasonality", {"amplitude": 0.0, "peak_month": 1})
        amp = s["amplitude"] if amplitude is None else amplitude
        pk = s["peak_month"] if peak is None else peak
        return math.cos(2 * math.pi * (self.mo.mon - pk) / 12.0) * amp

    def years(self) -> float:
        anchor = self.spec.get("trend", {}).get("anchor_month", "2018-07")
        return (self.mo.index - _month_index(anchor)) / 12.0

    def factor(self, pandemic_change: float | None = None, length: bool = True) -> float:
        """Volume multiplier for the month: season x trend x pandemic x month length x scale."""
        drift = self.spec.get("trend", {}).get("annual_drift", 0.0)
        change = self.spec.get("pandemic_change", 0.0) if pandemic_change is None else pandemic_change
        f = (1.0 + self.season()) * (1.0 + drift) ** self.years() * max(0.0, 1.0 + change * self.shape)
        if length:
            f *= self.mo.days / (365.25 / 12)
        return f * self.scale

    def count(self, expected: float) -> int:
        return int(self.rng.poisson(max(expected, 0.0)))

    def rate(self, spec: dict) -> float:
        """A rate that moves by annual_change a year from the trend anchor, capped at max."""
        return float(min(spec.get("max", 1.0), max(0.0, spec["start"] + spec["annual_change"] * self.years())))

    # ---- dates and times ----------------------------------------------------------------

    def days(self, n: int, weekend_weight: float | None = None) -> np.ndarray:
        w = self.spec.get("weekend_weight", 1.0) if weekend_weight is None else weekend_weight
        days = np.arange(self.mo.first, self.mo.last + 1)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        return days[_draw(_cdf(np.where(weekday >= 5, w, 1.0)), self.rng.random(n))]

    def times(self, n: int) -> np.ndarray:
        """Seconds since the epoch: a day of the month, an hour by the hour weights, a second."""
        day = self.days(n)
        hour = _draw(_cdf(self.prof["hour_weights"]), self.rng.random(n))
        return day.astype(np.int64) * 86400 + hour * 3600 + self.rng.integers(0, 3600, n)

    # ---- areas and ids ------------------------------------------------------------------

    def npus(self, n: int, multiplier: dict | None = None) -> pl.Series:
        weights = dict(self.prof["_npus"])
        for k, m in (multiplier or {}).items():
            if k in weights:
                weights[k] *= m
        return _pick(self.rng, weights, n)

    def ids(self, n: int, start: int = 1) -> pl.Series:
        letter = _ID[self.extract][1]
        return _ids(f"{self.prefix}{letter}{self.mo.yymm}", start, n)


# --------------------------------------------------------------------------------------------
# One generator per extract: (ctx) -> frame of text columns in the contract's order
# --------------------------------------------------------------------------------------------


def _calls(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    counts = _ensure_one([c.count(s["per_month"][ch] * c.factor(s["pandemic_change"][ch])) for ch in ("999", "101")])
    n999, n101 = int(counts[0]), int(counts[1])
    n = n999 + n101
    presented = c.times(n)
    is999 = np.arange(n) < n999

    # 999: fast lognormal answers plus a slow tail whose share moves with the season and pandemic.
    e = s["999"]
    tail_share = float(np.clip(e["tail_share"] + c.season(e["tail_share_season_amplitude"]) + e["tail_share_pandemic_change"] * c.shape, 0.0, 1.0))
    fast = np.exp(np.log(e["fast"]["median_s"]) + e["fast"]["sigma"] * rng.standard_normal(n))
    tail = 10.0 + rng.exponential(e["tail_mean_s"], n)
    wait999 = np.where(rng.random(n) < tail_share, tail, fast)
    # 101: minutes with a long tail, capped (the line closes the queue).
    o = s["101"]
    wait101 = np.minimum(np.exp(np.log(o["answer"]["median_s"]) + o["answer"]["sigma"] * rng.standard_normal(n)), o["max_wait_s"])
    wait = np.maximum(1, np.rint(np.where(is999, wait999, wait101))).astype(np.int64)
    ab101 = float(np.clip(o["abandoned_rate"] + c.season(o["abandoned_rate_season_amplitude"]), 0.0, 1.0))
    abandoned = rng.random(n) < np.where(is999, e["abandoned_rate"], ab101)

    order = np.lexsort((rng.random(n), presented))
    presented, wait, abandoned, is999 = presented[order], wait[order], abandoned[order], is999[order]
    return pl.DataFrame(
        {
            "call_id": c.ids(n),
            "channel": pl.Series(np.where(is999, "999", "101"), dtype=pl.String),
            "presented_at": _fmt_ts(presented),
            "answered_at": _null_where(_fmt_ts(presented + wait), abandoned),
            "abandoned": _yn(abandoned),
        }
    )


def _incidents(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    cats = list(s["categories"])
    base = s["per_month"]
    counts = _ensure_one([c.count(base * s["categories"][k]["share"] * c.factor(s["categories"][k]["pandemic_change"])) for k in cats])
    cat = np.repeat(np.arange(len(cats)), counts)
    n = cat.size
    created = c.times(n)

    prios = ("P1", "P2", "P3", "P4")
    prio = _draw_rows(np.stack([_cdf(s["priority_mix"][k]) for k in cats]), cat, rng.random(n))
    att = s["attendance"]
    attended = rng.random(n) < np.array([att[p]["attended"] for p in prios])[prio]
    median = np.array([att[p]["median_s"] for p in prios], dtype=float)[prio]
    sigma = np.array([att[p]["sigma"] for p in prios], dtype=float)[prio]
    speed = max(0.1, 1.0 + s["attendance_pandemic_change"] * c.shape)
    delay = np.maximum(60, np.rint(median * speed * np.exp(sigma * rng.standard_normal(n)))).astype(np.int64)

    mh = rng.random(n) < np.array([s["mental_health_rate"][k] for k in cats])[cat]

    opening = np.empty(n, dtype=object)
    closing = np.empty(n, dtype=object)
    for i, k in enumerate(cats):  # loop over the six categories, not rows
        rows = np.flatnonzero(cat == i)
        ow = dict(s["opening_codes"][k])
        if "COVID_BREACH" in ow:
            ow["COVID_BREACH"] = ow["COVID_BREACH"] + s["covid_breach_weight"] * c.shape
        opening[rows] = np.array(list(ow), dtype=object)[_draw(_cdf(ow.values()), rng.random(rows.size))]
        cw = s["closing_codes"][k]
        closing[rows] = np.array(list(cw), dtype=object)[_draw(_cdf(cw.values()), rng.random(rows.size))]
    late = (created // 86400) > c.mo.last - s["open_last_days"]
    still_open = rng.random(n) < np.where(late, s["open_rate_last_days"], s["open_rate_other"])
    npu = c.npus(n)

    order = np.lexsort((rng.random(n), created))
    frame = pl.DataFrame(
        {
            "created": created,
            "prio": prio,
            "attended": attended,
            "delay": delay,
            "mh": mh,
            "cat": cat,
            "opening": pl.Series(opening.tolist(), dtype=pl.String),
            "closing": pl.Series(closing.tolist(), dtype=pl.String),
            "open": still_open,
            "npu": npu,
        }
    ).select(pl.all().gather(pl.Series(order)))
    created = frame["created"].to_numpy()
    return pl.DataFrame(
        {
            "incident_id": c.ids(n),
            "created_at": _fmt_ts(created),
            "priority": _labels(prios, frame["prio"].to_numpy()),
            "first_arrival_at": _null_where(_fmt_ts(created + frame["delay"].to_numpy()), ~frame["attended"].to_numpy()),
            "nsir_category": _labels(cats, frame["cat"].to_numpy()),
            "opening_code": frame["opening"],
            "closing_code": _null_where(frame["closing"], frame["open"].to_numpy()),
            "mental_health": _yn(frame["mh"].to_numpy()),
            "npu": frame["npu"],
        }
    )


def _stop_search(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    n = int(_ensure_one(c.count(s["per_month"] * c.factor()))[0])
    day = np.sort(c.days(n))
    stype = _pick(rng, s["search_type"], n)
    vehicle_only = (stype == "vehicle").to_numpy()
    powers = list(s["power"])
    power = _draw(_cdf(s["power"].values()), rng.random(n))
    objects = sorted({o for p in powers for o in s["object_of_search"][p]})
    obj_cdf = np.stack([_cdf([s["object_of_search"][p].get(o, 0.0) for o in objects]) for p in powers])
    obj = _draw_rows(obj_cdf, power, rng.random(n))

    outcomes = list(s["outcome"])
    general = np.array([s["outcome"][o] for o in outcomes], dtype=float)
    s60 = general.copy()
    s60[0] = 0.0
    s60 = s60 / s60.sum() * (1.0 - s["outcome_s60_nfa"])
    s60[0] = s["outcome_s60_nfa"]
    outcome = _draw_rows(np.stack([_cdf(general), _cdf(s60)]), (power == powers.index("cjpoa_s60")).astype(int), rng.random(n))
    nfa = outcome == 0
    linked = _null_where(_yn(rng.random(n) < s["linked_rate"]), nfa)

    odes = list(s["officer_defined_ethnicity"])
    ode = _draw(_cdf(s["officer_defined_ethnicity"].values()), rng.random(n))
    ode = np.where(vehicle_only, odes.index("not_stated"), ode)
    sde_codes = sorted({k for g in odes for k in s["self_defined_ethnicity"][g]})
    sde_cdf = np.stack([_cdf([s["self_defined_ethnicity"][g].get(k, 0.0) for k in sde_codes]) for g in odes])
    sde = _labels(sde_codes, _draw_rows(sde_cdf, ode, rng.random(n)))
    sde = _null_where(sde, vehicle_only | (rng.random(n) < s["sde_missing"]))
    age = _null_where(_pick(rng, s["age_band"], n), vehicle_only | (rng.random(n) < s["age_missing"]))
    bwv = rng.random(n) < c.rate(s["bwv_rate"])
    return pl.DataFrame(
        {
            "search_id": c.ids(n),
            "search_date": _fmt_date(day),
            "search_type": stype,
            "power": _labels(powers, power),
            "object_of_search": _labels(objects, obj),
            "outcome": _labels(outcomes, outcome),
            "outcome_linked_to_object": linked,
            "self_defined_ethnicity": sde,
            "officer_defined_ethnicity": _labels(odes, ode),
            "age_band": age,
            "bwv_activated": _yn(bwv),
            "npu": c.npus(n),
        }
    )


def _use_of_force(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    n = int(_ensure_one(c.count(s["per_month"] * c.factor()))[0])
    return pl.DataFrame(
        {
            "record_id": c.ids(n),
            "incident_date": _fmt_date(np.sort(c.days(n))),
            "subject_ethnicity": _pick(rng, s["subject_ethnicity"], n),
            "tactic": _pick(rng, s["tactic"], n),
            "injury": _pick(rng, s["injury"], n),
            "bwv_activated": _yn(rng.random(n) < c.rate(s["bwv_rate"])),
            "npu": c.npus(n),
        }
    )


def _hospital_admissions(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    bands = list(s["sharp_object"])
    codes = list(s["other_assault_codes"])
    share = np.array(list(s["other_assault_codes"].values()), dtype=float)
    share /= share.sum()
    f = c.factor()
    sharp = rng.poisson(np.array([s["sharp_object"][b] for b in bands]) * f)
    other = rng.poisson(np.array([s["other_assault"][b] for b in bands])[:, None] * share[None, :] * f)
    # One X99 row per band (even when 0), then the other codes with at least one episode.
    band_i = np.concatenate([np.arange(len(bands)), np.repeat(np.arange(len(bands)), len(codes))])
    code = np.concatenate([np.full(len(bands), "X99", dtype=object), np.tile(np.array(codes, dtype=object), len(bands))])
    cause = np.concatenate([np.zeros(len(bands), dtype=int), np.ones(len(bands) * len(codes), dtype=int)])
    episodes = np.concatenate([sharp, other.ravel()])
    keep = (cause == 0) | (episodes > 0)
    frame = pl.DataFrame(
        {
            "admission_month": pl.Series([c.mo.label] * int(keep.sum()), dtype=pl.String),
            "age_band": _labels(bands, band_i[keep]),
            "cause": _labels(("assault_sharp_object", "other_assault"), cause[keep]),
            "icd10_code": pl.Series(code[keep].tolist(), dtype=pl.String),
            "episodes": _fmt_int(episodes[keep]),
        }
    )
    return frame.sort("age_band", "cause", "icd10_code")


def _firearm_discharges(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    n = int(_ensure_one(c.count(s["per_month"] * c.factor()))[0])
    injury = rng.random(n) < s["injury_rate"]
    fatal = injury & (rng.random(n) < s["fatal_share_of_injured"])
    return pl.DataFrame(
        {
            "incident_id": c.ids(n),
            "discharge_date": _fmt_date(np.sort(c.days(n))),
            "fatal": _yn(fatal),
            "injury": _yn(injury),
            "firearm_type": _pick(rng, s["firearm_type"], n),
            "gang_linked": _yn(rng.random(n) < s["gang_linked_rate"]),
            "drug_linked": _yn(rng.random(n) < s["drug_linked_rate"]),
            "npu": c.npus(n, s.get("npu_multiplier")),
        }
    )


def _drug_disruptions(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    n = int(_ensure_one(c.count(s["per_month"] * c.factor()))[0])
    cats = list(s["category"])
    cat = _draw(_cdf(s["category"].values()), rng.random(n))
    county = rng.random(n) < c.rate(s["county_lines_rate"])
    arrests = rng.poisson(np.array([s["mean_arrests"][k] for k in cats])[cat])
    charges = rng.binomial(arrests, s["charge_rate"])
    return pl.DataFrame(
        {
            "disruption_id": c.ids(n),
            "disruption_date": _fmt_date(np.sort(c.days(n))),
            "category": _labels(cats, cat),
            "impact": _pick(rng, s["impact"], n),
            "county_lines": _yn(county),
            "arrests": _fmt_int(arrests),
            "charges": _fmt_int(charges),
            "npu": _null_where(c.npus(n), rng.random(n) < s["npu_missing"]),
        }
    )


def _paused(prof: dict, mo: _Month) -> bool:
    p = prof["custody_drug_tests"]["pause"]
    return _month_index(p["from"]) <= mo.index <= _month_index(p["to"])


def _custody_drug_tests(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    pause = s["pause"]["factor"] if _paused(c.prof, c.mo) else 1.0
    n = int(_ensure_one(c.count(s["per_month"] * c.factor() * pause))[0])
    result = _pick(rng, s["result"], n)
    substance = _null_where(_pick(rng, s["substance"], n), (result != "positive").to_numpy())
    return pl.DataFrame(
        {
            "test_id": c.ids(n),
            "test_date": _fmt_date(np.sort(c.days(n))),
            "result": result,
            "substance": substance,
        }
    )


def _drug_treatment_referrals(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    weights = dict(s["source"])
    if _paused(c.prof, c.mo):
        weights["custody"] *= s["pause_factor"]
    volume = s["per_month"] * sum(weights.values()) / sum(s["source"].values())
    n = int(_ensure_one(c.count(volume * c.factor()))[0])
    return pl.DataFrame(
        {
            "referral_id": c.ids(n),
            "referral_date": _fmt_date(np.sort(c.days(n))),
            "source": _pick(rng, weights, n),
        }
    )


def _nrm_referrals(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    n = int(_ensure_one(c.count(s["per_month"] * c.factor()))[0])
    types = list(s["exploitation_type"])
    t = _draw(_cdf(s["exploitation_type"].values()), rng.random(n))
    child = rng.random(n) < np.array([s["child_rate"][k] for k in types])[t]
    return pl.DataFrame(
        {
            "referral_id": c.ids(n),
            "referral_date": _fmt_date(np.sort(c.days(n))),
            "exploitation_type": _labels(types, t),
            "age_group": pl.Series(np.where(child, "child", "adult"), dtype=pl.String),
            "crime_recorded": _yn(rng.random(n) < s["crime_recorded_rate"]),
        }
    )


def _victim_survey(c: _Ctx) -> pl.DataFrame:
    s, rng = c.spec, c.rng
    era = [e for e in s["eras"] if _month_index(e["from"]) <= c.mo.index][-1]
    n = int(_ensure_one(c.count(era["per_month"] * c.factor()))[0])
    day = np.sort(c.days(n))
    channels = ("telephone", "sms", "email")
    ch = _draw(_cdf([era["channel"].get(k, 0.0) for k in channels]), rng.random(n))
    lo = np.array([s["lag_days"][k][0] for k in channels])[ch]
    hi = np.array([s["lag_days"][k][1] for k in channels])[ch]
    incident_day = day - (lo + np.floor(rng.random(n) * (hi - lo + 1))).astype(np.int64)

    groups = list(s["offence_group"])
    g = _draw(_cdf(s["offence_group"].values()), rng.random(n))
    thresholds = np.array(s["thresholds"], dtype=float)
    mean = np.array([s["latent_mean"][k] for k in groups])[g] + s["latent_drift_per_year"] * c.years()
    latent = mean + rng.standard_normal(n)

    def scale7(x: np.ndarray) -> np.ndarray:
        return np.searchsorted(thresholds, x, side="right") + 1

    def missing(key: str) -> np.ndarray:
        rates = np.array([s["missing"][k].get(key, 1.0 if key in ("happy_with_service", "would_prefer_face_to_face") else 0.0) for k in channels])[ch]
        return rng.random(n) < rates

    answers = {"q_overall": _null_where(_fmt_int(scale7(latent)), missing("q_overall"))}
    for q, qs in s["questions"].items():
        score = scale7(latent + qs["shift"] + qs["noise"] * rng.standard_normal(n))
        answers[q] = _null_where(_fmt_int(score), missing("questions"))
    happy = scale7(latent) >= 5
    f2f = rng.random(n) < np.where(happy, s["prefer_face_to_face"]["happy"], s["prefer_face_to_face"]["unhappy"])
    free_rate = np.array([s["free_text_rate"].get(k, -1.0) for k in channels])[ch]
    demo_rate = np.array([s["demographics_rate"].get(k, -1.0) for k in channels])[ch]
    u_free, u_demo = rng.random(n), rng.random(n)

    # Crime references for crime groups (like recorded_crime's DF18/0001234), incident numbers for ASB.
    year = (incident_day.astype("M8[D]").astype("M8[Y]").astype(np.int64) + 1970) % 100
    seq = rng.integers(1, 400_000, n)
    mon = (incident_day.astype("M8[D]").astype("M8[M]").astype(np.int64) % 12) + 1
    is_asb = g == groups.index("asb")
    ref = (
        pl.DataFrame({"y": year, "m": mon, "seq": seq, "asb": is_asb})
        .select(
            pl.when(pl.col("asb"))
            .then(
                pl.lit(f"{c.prefix}I")
                + pl.col("y").cast(pl.String).str.zfill(2)
                + pl.col("m").cast(pl.String).str.zfill(2)
                + pl.col("seq").cast(pl.String).str.zfill(7)
            )
            .otherwise(pl.lit(c.prefix) + pl.col("y").cast(pl.String).str.zfill(2) + "/" + pl.col("seq").cast(pl.String).str.zfill(7))
        )
        .to_series()
    )
    return pl.DataFrame(
        {
            "response_id": c.ids(n),
            "survey_date": _fmt_date(day),
            "channel": _labels(channels, ch),
            "incident_ref": _null_where(ref, rng.random(n) < s["incident_ref_missing"]),
            "incident_date": _fmt_date(incident_day),
            "offence_group": _labels(groups, g),
            **answers,
            "happy_with_service": _null_where(_yn(happy), missing("happy_with_service")),
            "would_prefer_face_to_face": _null_where(_yn(f2f), missing("would_prefer_face_to_face")),
            "free_text_given": _null_where(_yn(u_free < free_rate), free_rate < 0),
            "demographics_given": _null_where(_yn(u_demo < demo_rate), demo_rate < 0),
        }
    )


# ---- workforce: a simulated population, snapshotted each month ------------------------------

_ROLES = ("officer", "pcso", "special", "staff")


@dataclass
class _People:
    role: np.ndarray  # index into _ROLES
    join: np.ndarray  # day joined (days since epoch)
    leave: np.ndarray  # last day of service, _NEVER while in post
    reason: np.ndarray  # leaver reason index (-1 while in post)
    join_known: np.ndarray
    female: np.ndarray
    eth: np.ndarray
    npu: np.ndarray  # index into the NPU list, -1 = force-wide
    nbh: np.ndarray
    fte: np.ndarray  # nan for specials
    uplift: np.ndarray


class _Workforce:
    """The demo force's people from the profile's simulation_start to a given month.

    Each simulated month: people leave at their role's monthly hazard (plus a retirement hazard
    after long service), then joiners bring each role
    to its target headcount (officers join in one intake on the first Monday of the month). Officer
    joiners in the uplift window that grow the headcount are uplift_joiner = Y. Month t draws from
    the stream (seed, workforce, t), so the people in post in a month depend only on (seed, scale).
    """

    def __init__(self, prof: dict, seed: int, scale: float):
        self.p = prof["workforce"]
        self.npus = list(prof["_npus"])
        self.npu_cdf = _cdf(prof["_npus"].values())
        self.seed = seed
        self.scale = scale
        self.start = _month_index(self.p["simulation_start"])
        self.done = self.start - 1
        self.reasons = sorted({*self.p["leaver_reason_young"], *self.p["leaver_reason_old"]})
        self.eths = list(self.p["ethnicity_before"])
        self.people = _People(*(np.empty(0, dtype=t) for t in (np.int64, np.int64, np.int64, np.int64, bool, bool, np.int64, np.int64, bool, float, bool)))

    def target(self, role: str, index: int) -> int:
        knots = self.p["targets"][role]
        x = np.array([_month_index(k) for k in knots], dtype=float)
        y = np.array(list(knots.values()), dtype=float)
        return int(round(float(np.interp(index, x, y)) * self.scale))

    def _new(self, rng: np.random.Generator, role: np.ndarray, join: np.ndarray, after: bool, uplift: np.ndarray, join_known: np.ndarray) -> _People:
        p, n = self.p, role.size
        tag = "after" if after else "before"
        female = rng.random(n) < np.array([p[f"female_rate_{tag}"][r] for r in _ROLES])[role]
        eth = _draw(_cdf(p[f"ethnicity_{tag}"][e] for e in self.eths), rng.random(n))
        has_npu = rng.random(n) < np.array([p["npu_rate"][r] for r in _ROLES])[role]
        npu = np.where(has_npu, _draw(self.npu_cdf, rng.random(n)), -1)
        nbh = has_npu & (rng.random(n) < np.array([p[f"neighbourhood_rate_{tag}"][r] for r in _ROLES])[role])
        full = rng.random(n) < np.array([p["full_time_rate"].get(r, 1.0) for r in _ROLES])[role]
        part = np.array(p["part_time_fte"], dtype=float)[rng.integers(0, len(p["part_time_fte"]), n)]
        fte = np.where(role == _ROLES.index("special"), np.nan, np.where(full, 1.0, part))
        return _People(role, join, np.full(n, _NEVER, dtype=np.int64), np.full(n, -1, dtype=np.int64), join_known, female, eth, npu, nbh, fte, uplift)

    def _append(self, new: _People) -> None:
        old = self.people
        self.people = _People(*(np.concatenate([getattr(old, f), getattr(new, f)]) for f in _People.__dataclass_fields__))

    def run_to(self, index: int) -> None:
        p = self.p
        while self.done < index:
            t = self.done + 1
            mo = _Month.of_index(t)
            rng = np.random.default_rng([self.seed, zlib.crc32(b"workforce"), t, 7])
            after = t >= _month_index(p["representation_from"])
            if t == self.start:
                counts = [self.target(r, t) for r in _ROLES]
                role = np.repeat(np.arange(len(_ROLES)), counts)
                tenure = rng.exponential(np.array([p["mean_tenure_years_at_start"][r] for r in _ROLES])[role] * 365.25)
                join = mo.first - 1 - np.minimum(tenure, 30 * 365.25).astype(np.int64)
                known = rng.random(role.size) >= p["joined_date_missing_at_start"]
                self._append(self._new(rng, role, join, False, np.zeros(role.size, bool), known))
            else:
                pe = self.people
                active = pe.leave == _NEVER
                hazard = np.array([p["monthly_leaver_hazard"][r] for r in _ROLES])[pe.role] + np.where(
                    mo.first - pe.join >= p["retirement_tenure_years"] * 365.25, p["retirement_hazard"], 0.0
                )
                leaving = active & (rng.random(pe.role.size) < hazard)
                k = int(leaving.sum())
                pe.leave[leaving] = mo.first + rng.integers(0, mo.days, k)
                old = (pe.leave[leaving] - pe.join[leaving]) >= p["retirement_tenure_years"] * 365.25
                young_r = _draw(_cdf(p["leaver_reason_young"].get(r, 0.0) for r in self.reasons), rng.random(k))
                old_r = _draw(_cdf(p["leaver_reason_old"].get(r, 0.0) for r in self.reasons), rng.random(k))
                pe.reason[leaving] = np.where(old, old_r, young_r)
                remaining = np.bincount(pe.role[active & ~leaving], minlength=len(_ROLES))
                joiners = np.array([max(0, self.target(r, t) - remaining[i]) for i, r in enumerate(_ROLES)])
                role = np.repeat(np.arange(len(_ROLES)), joiners)
                # Officers join in one intake on the first Monday of the month; others any day.
                days = np.arange(mo.first, mo.last + 1)
                intake = days[np.flatnonzero((days + 3) % 7 == 0)[0]]
                join = np.where(role == 0, intake, mo.first + rng.integers(0, mo.days, role.size))
                uplift = np.zeros(role.size, dtype=bool)
                u = p["uplift"]
                if _month_index(u["from"]) <= t <= _month_index(u["to"]):
                    growth = max(0, self.target("officer", t) - self.target("officer", t - 1))
                    uplift[: min(growth, int(joiners[0]))] = True
                self._append(self._new(rng, role, join, after, uplift, np.ones(role.size, dtype=bool)))
            self.done = t

    def snapshot(self, c: _Ctx) -> pl.DataFrame:
        self.run_to(c.mo.index)
        p, pe, mo, rng = self.p, self.people, c.mo, c.rng
        rows = np.flatnonzero((pe.join <= mo.last) & (pe.leave >= mo.first))
        role = pe.role[rows]
        n = rows.size
        left = pe.leave[rows] <= mo.last
        # Absence: working days in post this month cap the days lost.
        in_post = np.minimum(pe.leave[rows], mo.last) - np.maximum(pe.join[rows], mo.first) + 1
        available = np.floor(in_post * 5 / 7)
        rate = np.array([p["absence_rate"][r] for r in _ROLES])[role] * max(0.0, 1 + p["absence_pandemic_change"] * c.shape)
        absent = rng.random(n) < rate
        long_term = rng.random(n) < p["long_term_share"]
        days = np.where(long_term, rng.integers(5, 23, n), rng.integers(1, 9, n) / 2.0)
        days = np.where(absent, np.minimum(days, available), 0.0)
        mh_share = np.where(long_term, p["mental_health_share"]["long"], p["mental_health_share"]["short"])
        mh = np.where(rng.random(n) < mh_share, days, 0.0)
        sh = p["special_hours"]
        hours = np.where(rng.random(n) < sh["zero_rate"], 0.0, np.round(rng.gamma(sh["shape"], sh["scale"], n) * 2) / 2)
        is_special = role == _ROLES.index("special")
        fte = pe.fte[rows]
        return pl.DataFrame(
            {
                "person_id": "P" + pl.Series(rows + 1, dtype=pl.Int64).cast(pl.String).str.zfill(7),
                "as_at": _fmt_date(np.full(n, mo.last)),
                "role": _labels(_ROLES, role),
                "fte": _null_where(_fmt_number(np.nan_to_num(fte)), np.isnan(fte)),
                "ethnicity_group": _labels(self.eths, pe.eth[rows]),
                "sex": pl.Series(np.where(pe.female[rows], "female", "male"), dtype=pl.String),
                "npu": _null_where(_labels(self.npus, np.maximum(pe.npu[rows], 0)), pe.npu[rows] < 0),
                "neighbourhood_role": _yn(pe.nbh[rows]),
                "joined_date": _null_where(_fmt_date(pe.join[rows]), ~pe.join_known[rows]),
                "uplift_joiner": _yn(pe.uplift[rows]),
                "leaver_date": _null_where(_fmt_date(np.where(left, pe.leave[rows], mo.last)), ~left),
                "leaver_reason": _null_where(_labels(self.reasons, np.maximum(pe.reason[rows], 0)), ~left),
                "absence_days_month": _fmt_number(days),
                "absence_mental_health_days": _fmt_number(mh),
                "special_duty_hours": _null_where(_fmt_number(hours), ~is_special),
            }
        )


# --------------------------------------------------------------------------------------------
# Injected faults: realistic ways a row goes wrong, each breaking at least one contract rule
# --------------------------------------------------------------------------------------------


def _set(column: str, value: str | None) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(pl.lit(value, dtype=pl.String).alias(column))


def _shift_ts(column: str, source: str, seconds: int) -> pl.Expr:
    ts = pl.col(source).str.to_datetime("%Y-%m-%d %H:%M:%S")
    return (ts + pl.duration(seconds=seconds)).dt.strftime("%Y-%m-%d %H:%M:%S").alias(column)


def _shift_date(column: str, source: str, days: int) -> pl.Expr:
    d = pl.col(source).str.to_date("%Y-%m-%d")
    return (d + pl.duration(days=days)).dt.strftime("%Y-%m-%d").alias(column)


def _same(df: pl.DataFrame) -> pl.DataFrame:
    return df


DUPLICATE = "duplicate_id"
# extract -> (fault name, row change). A duplicate keeps its original's id (or key), every other
# fault gets a fresh id, so it breaks only the rule it is about.
FAULTS: dict[str, tuple[tuple[str, Callable[[pl.DataFrame], pl.DataFrame]], ...]] = {
    "calls": (
        ("answered_before_presented", lambda df: df.with_columns(_shift_ts("answered_at", "presented_at", -7), pl.lit("N").alias("abandoned"))),
        ("bad_channel", _set("channel", "112")),
        (DUPLICATE, _same),
        ("bad_flag", _set("abandoned", "Yes")),
        (
            "bad_timestamp",
            lambda df: df.with_columns(
                pl.col("presented_at").str.to_datetime("%Y-%m-%d %H:%M:%S").dt.strftime("%d/%m/%Y %H:%M").alias("answered_at"), pl.lit("N").alias("abandoned")
            ),
        ),
    ),
    "incidents": (
        ("arrival_before_created", lambda df: df.with_columns(_shift_ts("first_arrival_at", "created_at", -600))),
        ("bad_priority", _set("priority", "P5")),
        (DUPLICATE, _same),
        ("bad_nsir_category", _set("nsir_category", "asb")),
        ("missing_npu", _set("npu", None)),
    ),
    "stop_search": (
        ("bad_power", _set("power", "s60")),
        (DUPLICATE, _same),
        ("bad_outcome", _set("outcome", "no_further_action")),
        ("bad_flag", _set("bwv_activated", "y")),
        ("bad_sde_code", _set("self_defined_ethnicity", "W5")),
    ),
    "use_of_force": (
        ("bad_injury", _set("injury", "moderate")),
        (DUPLICATE, _same),
        ("bad_flag", _set("bwv_activated", "U")),
        ("missing_ethnicity", _set("subject_ethnicity", None)),
    ),
    "hospital_admissions": (
        # A negative correction row for a code with a place-of-occurrence digit (a new key).
        ("negative_episodes", lambda df: df.with_columns(pl.lit("-2").alias("episodes"), (pl.col("icd10_code") + ".9").alias("icd10_code"))),
        (DUPLICATE, lambda df: df.with_columns((pl.col("episodes").cast(pl.Int64) + 1).cast(pl.String).alias("episodes"))),
        ("bad_age_band", _set("age_band", "0-24")),
        ("bad_icd10_code", lambda df: df.with_columns(pl.col("icd10_code").str.to_lowercase())),
    ),
    "firearm_discharges": (
        ("bad_firearm_type", _set("firearm_type", "pistol")),
        (DUPLICATE, _same),
        ("bad_flag", _set("fatal", "Unknown")),
        ("missing_date", _set("discharge_date", None)),
    ),
    "drug_disruptions": (
        ("negative_arrests", _set("arrests", "-1")),
        (DUPLICATE, _same),
        ("bad_category", _set("category", "Warrant")),
        ("fractional_charges", _set("charges", "1.5")),
    ),
    "custody_drug_tests": (
        ("bad_result", _set("result", "pos")),
        (DUPLICATE, _same),
        ("bad_substance", _set("substance", "cannabis")),
    ),
    "drug_treatment_referrals": (
        ("bad_source", _set("source", "probation")),
        (DUPLICATE, _same),
        ("missing_date", _set("referral_date", None)),
    ),
    "nrm_referrals": (
        ("bad_exploitation_type", _set("exploitation_type", "modern_slavery")),
        (DUPLICATE, _same),
        ("bad_flag", _set("crime_recorded", "yes")),
    ),
    "victim_survey": (
        ("answer_out_of_scale", _set("q_overall", "8")),
        ("incident_after_survey", lambda df: df.with_columns(_shift_date("incident_date", "survey_date", 3))),
        (DUPLICATE, _same),
        ("bad_channel", _set("channel", "web")),
    ),
    "workforce": (
        ("fte_over_one", _set("fte", "1.2")),
        (DUPLICATE, _same),
        ("joined_after_as_at", lambda df: df.with_columns(_shift_date("joined_date", "as_at", 14))),
        ("negative_absence", _set("absence_days_month", "-1")),
        ("bad_role", _set("role", "sergeant")),
    ),
}


def _with_bad_rows(extract: str, good: pl.DataFrame, k: int, seed: int, mo: _Month, prefix: str) -> pl.DataFrame:
    """The valid rows plus k faulty copies, each right after the row it was copied from."""
    n = good.height
    if k <= 0 or n == 0:
        return good
    rng = _rng(seed, extract, mo.index, 2)
    src = np.sort(rng.choice(n, size=k, replace=k > n))
    faults = FAULTS[extract]
    which = (mo.index * k + np.arange(k)) % len(faults)
    bad = good.select(pl.all().gather(pl.Series(src)))
    id_col = _ID.get(extract, (None,))[0]
    if id_col is not None:
        fresh = np.array([faults[w][0] != DUPLICATE for w in which])
        if extract == "workforce":
            new_ids = "P" + pl.Series(np.arange(BAD_ROW_SEQUENCE_START, BAD_ROW_SEQUENCE_START + k)).cast(pl.String)
        else:
            new_ids = _ids(f"{prefix}{_ID[extract][1]}{mo.yymm}", BAD_ROW_SEQUENCE_START, k)
        bad = bad.with_columns(pl.when(pl.Series(fresh)).then(new_ids).otherwise(pl.col(id_col)).alias(id_col))
    parts = []
    for i, (_, change) in enumerate(faults):  # loop over fault kinds, not rows
        sel = which == i
        if sel.any():
            part = change(bad.filter(pl.Series(sel))).select(good.columns)
            parts.append(part.with_columns(_key=pl.Series(src[sel] + 0.5 + np.flatnonzero(sel) * 1e-6)))
    combined = pl.concat([good.with_columns(_key=pl.Series(np.arange(n, dtype=float))), *parts])
    return combined.sort("_key", maintain_order=True).drop("_key")


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------

_GENERATORS: dict[str, Callable[[_Ctx], pl.DataFrame]] = {
    "calls": _calls,
    "incidents": _incidents,
    "stop_search": _stop_search,
    "use_of_force": _use_of_force,
    "hospital_admissions": _hospital_admissions,
    "firearm_discharges": _firearm_discharges,
    "drug_disruptions": _drug_disruptions,
    "custody_drug_tests": _custody_drug_tests,
    "drug_treatment_referrals": _drug_treatment_referrals,
    "nrm_referrals": _nrm_referrals,
    "victim_survey": _victim_survey,
}


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    # Nulls become empty fields, LF line endings, quotes only where needed (never, for these values).
    frame.write_csv(path, include_header=True, separator=",", line_terminator="\n", quote_style="necessary", null_value="")


def generate_extracts(
    out_dir: Path,
    months: list[str],
    *,
    force_id: str = "demo-force",
    seed: int = 20180701,
    scale: float = 1.0,
    bad_rows_per_month: int = 0,
    extracts: Iterable[str] | None = None,
) -> dict[str, int]:
    """Write ``out_dir/YYYY-MM/<extract>.csv`` for each month and extract; rows written per extract.

    `months` are 'YYYY-MM' strings (any order, each written once). `extracts` is a subset of
    `EXTRACTS` (default: all). `scale` multiplies every volume (1.0 = a large metropolitan force;
    see `RECOMMENDED_DEMO_SCALE`). With `bad_rows_per_month` = k every file of every month gets k
    deliberately invalid rows (counted in the result). Existing files for the generated months and
    extracts are overwritten; nothing else under out_dir is touched.
    """
    wanted = list(EXTRACTS) if extracts is None else list(dict.fromkeys(extracts))
    unknown = [e for e in wanted if e not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown extract(s) {', '.join(map(repr, unknown))}; known: {', '.join(EXTRACTS)}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if bad_rows_per_month < 0:
        raise ValueError("bad_rows_per_month must be >= 0")
    if not force_id or "," in force_id or '"' in force_id or "\n" in force_id:
        raise ValueError(f"invalid force_id {force_id!r}")
    parsed = sorted({m.index: m for m in (_Month.parse(x) for x in months)}.values(), key=lambda m: m.index)
    prof = _load_profile()
    start = _month_index(prof["workforce"]["simulation_start"])
    if "workforce" in wanted and parsed and parsed[0].index < start:
        raise ValueError(f"the workforce simulation starts in {prof['workforce']['simulation_start']}; cannot generate {parsed[0].label}")

    out_dir = Path(out_dir)
    prefix = _force_prefix(force_id)
    workforce = _Workforce(prof, seed, scale) if "workforce" in wanted else None
    written = {e: 0 for e in wanted}
    for mo in parsed:
        folder = out_dir / mo.label
        folder.mkdir(parents=True, exist_ok=True)
        for extract in wanted:
            ctx = _Ctx(prof, extract, mo, _rng(seed, extract, mo.index, 1), scale, prefix)
            good = workforce.snapshot(ctx) if extract == "workforce" and workforce is not None else _GENERATORS[extract](ctx)
            good = good.select([pl.col(col).cast(pl.String) for col in COLUMNS[extract]])
            frame = _with_bad_rows(extract, good, bad_rows_per_month, seed, mo, prefix)
            _write_csv(frame, folder / f"{extract}.csv")
            written[extract] += frame.height
    return written


__all__ = ["COLUMNS", "DEMO_SIZES", "EXTRACTS", "FAULTS", "RECOMMENDED_DEMO_SCALE", "DemoSize", "generate_extracts"]
