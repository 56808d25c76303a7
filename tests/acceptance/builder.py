"""Independent extract builder for the acceptance test.

Plain Python (csv + random with fixed seeds); it deliberately imports nothing from ``etl`` so that
the acceptance test checks the project against a second, independent implementation.

Layout written (PRODUCT.md "Extracts"):

    SOURCE/YYYY-MM/recorded_crime.csv
    SOURCE/YYYY-MM/crime_outcomes.csv      (only in some months: the file is optional)
    SOURCE/reference/population.csv

``build_source`` returns a :class:`BuiltSource` holding the ground truth: the good rows (the rows the
project must load), the exact (month, line number) of every injected bad row, the number of data rows
in each month's file and the population table.

Deliberate variants (all valid input that must load):

* one month written in Windows-1252 with an en dash (``Erdington–Kingstanding``) and ``Café`` in npu;
* one month written as UTF-8 with a byte order mark;
* one month written with CRLF line endings (all other files use LF);
* crime_outcomes.csv present in two months out of three.

Month generation is seeded per month, so two sources built with the same seed share the same base
rows whatever is omitted or injected elsewhere.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

FORCE_ID = "test-force"
FIRST_MONTH = "2018-07"
LAST_MONTH = "2020-12"

RECORDED_CRIME_COLUMNS = [
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
]
FLAG_COLUMNS = ["domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim"]
OUTCOME_COLUMNS = ["crime_ref", "outcome_type", "outcome_date"]

# Mid-year population estimates; every year differs so that picking the wrong year shows.
POPULATION = {
    2017: 2_880_417,
    2018: 2_897_303,
    2019: 2_916_458,
    2020: 2_928_592,
    2021: 2_939_927,
}

# Default file-format variants (month -> variant).
DEFAULT_VARIANTS = {
    "2018-11": "cp1252",
    "2019-08": "utf-8-sig",
    "2020-03": "crlf",
}

NPUS_ASCII = [
    "Birmingham East",
    "Birmingham West",
    "Coventry",
    "Dudley",
    "Sandwell",
    "Solihull",
    "Walsall",
    "Wolverhampton",
]
# Non-ASCII areas; both are encodable in Windows-1252 (en dash = 0x96, e-acute = 0xE9).
NPU_EN_DASH = "Erdington\u2013Kingstanding"
NPU_CAFE = "Caf\u00e9 Quarter"
NPUS_NON_ASCII = [NPU_EN_DASH, NPU_CAFE]

# Codes by role. Weighted towards the measured groups; the rest are decoys that must not count.
HOMICIDE_CODES = ["1", "4.1", "4.2", "4.10"]
WEIGHTED_CODES = [
    # residential burglary (counted in nm_nc_residential_burglary / nm_nc_total)
    ("28E", 6), ("28F", 5), ("28G", 2), ("28H", 2), ("29A", 1), ("28I", 1), ("29B", 1),
    # business burglary (not residential)
    ("30C", 4),
    # robbery: 34B personal (counted), 34A business (NOT neighbourhood crime; knife-selected)
    ("34B", 6), ("34A", 4),
    # theft from the person
    ("39", 5),
    # vehicle offences
    ("45", 6), ("48", 5), ("37.2", 2), ("126", 2),
    # violence with injury (and knife-selected where listed)
    ("2", 2), ("5D", 4), ("5E", 2), ("8N", 6), ("8P", 2), ("8S", 2), ("37.1", 1), ("4.3", 1), ("4.4", 1),
    # knife-selected but not VWI
    ("3B", 3), ("19C", 2), ("17A", 2), ("20A", 1),
    # decoys: counted by nothing except cyber (online flag)
    ("8L", 5), ("46", 8), ("58A", 4), ("105A", 3), ("104", 2),
]

# Bad-row kinds that can be injected (each defect makes exactly one rule fail).
BAD_KINDS = {
    "bad_code": "hocr_code",          # hocr_code ZZ9, not in the code list
    "flag_lower": "domestic_abuse",   # flag 'y' instead of 'Y'
    "flag_empty": "firearm",          # required flag left empty
    "npu_empty": "npu",               # required npu empty
    "age_text": "victim_age",         # victim_age 'abc'
    "age_range": "victim_age",        # victim_age 130
    "dup_ref": "crime_ref",           # second occurrence of a crime_ref already in the file
    "offence_after": "offence_date",  # offence_date after recorded_date
    "lsoa_bad": "lsoa_code",          # lsoa_code X01123456
}


# --------------------------------------------------------------------------------------- months
def month_index(month: str) -> int:
    year, mon = month.split("-")
    return int(year) * 12 + int(mon) - 1


def month_from_index(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def shift_month(month: str, delta: int) -> str:
    return month_from_index(month_index(month) + delta)


def month_range(first: str, last: str) -> list[str]:
    return [month_from_index(i) for i in range(month_index(first), month_index(last) + 1)]


def all_months() -> list[str]:
    return month_range(FIRST_MONTH, LAST_MONTH)


# ------------------------------------------------------------------------------------ structures
@dataclass
class BuiltSource:
    root: Path
    months: list[str]                       # months in the backfill range
    present_months: list[str]               # months whose folder was written
    good_rows: list[dict]                   # rows that must be loaded (dicts with a 'month' key)
    bad_rows: list[tuple[str, int, str]]    # (month, line number, kind) of injected bad rows
    data_rows: dict[str, int]               # month -> data rows in recorded_crime.csv
    variants: dict[str, str]                # month -> encoding / line-ending variant
    outcome_months: list[str]               # months that have crime_outcomes.csv
    population: dict[int, int] = field(default_factory=lambda: dict(POPULATION))

    @property
    def bad_positions(self) -> set[tuple[str, int]]:
        return {(m, line) for m, line, _ in self.bad_rows}

    def good_rows_for(self, month: str) -> list[dict]:
        return [r for r in self.good_rows if r["month"] == month]


# ------------------------------------------------------------------------------------ generation
def _days_in_month(month: str) -> int:
    year, mon = (int(p) for p in month.split("-"))
    return calendar.monthrange(year, mon)[1]


def _date_in_month(month: str, day: int) -> dt.date:
    year, mon = (int(p) for p in month.split("-"))
    return dt.date(year, mon, day)


def _pick_code(rng: random.Random) -> str:
    codes, weights = zip(*WEIGHTED_CODES)
    return rng.choices(codes, weights=weights, k=1)[0]


KNIFE_PLAUSIBLE = {"2", "3B", "5D", "8N", "8P", "8S", "34A", "34B", "19C", "17A", "20A"}


def _make_row(rng: random.Random, month: str, ref: str, code: str, status: str, npu: str) -> dict:
    days = _days_in_month(month)
    recorded = _date_in_month(month, rng.randint(1, days))
    roll = rng.random()
    if roll < 0.10:
        offence = ""
    elif roll < 0.25:
        offence = recorded.isoformat()  # same day: allowed (not after)
    else:
        offence = (recorded - dt.timedelta(days=rng.randint(1, 90))).isoformat()
    lroll = rng.random()
    if lroll < 0.10:
        lsoa = ""
    elif lroll < 0.20:
        lsoa = f"W01{rng.randint(0, 999999):06d}"
    else:
        lsoa = f"E01{rng.randint(0, 999999):06d}"
    # knife flags: often on plausible codes, sometimes on codes outside the selected list (decoys)
    knife_p = 0.25 if code in KNIFE_PLAUSIBLE or code in HOMICIDE_CODES else 0.06
    aroll = rng.random()
    if aroll < 0.2:
        age = ""
    elif aroll < 0.23:
        age = rng.choice(["0", "120"])  # range edges are valid
    else:
        age = str(rng.randint(1, 95))
    return {
        "crime_ref": ref,
        "force_id": FORCE_ID,
        "recorded_date": recorded.isoformat(),
        "offence_date": offence,
        "hocr_code": code,
        "status": status,
        "npu": npu,
        "lsoa_code": lsoa,
        "domestic_abuse": "Y" if rng.random() < 0.15 else "N",
        "hate_crime": "Y" if rng.random() < 0.04 else "N",
        "knife_sharp": "Y" if rng.random() < knife_p else "N",
        "firearm": "Y" if rng.random() < 0.02 else "N",
        "online": "Y" if rng.random() < 0.12 else "N",
        "business_victim": "Y" if (code in {"30C", "34A", "46", "58A"} and rng.random() < 0.7) else "N",
        "victim_age": age,
    }


def _status(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return "cancelled"
    if roll < 0.12:
        return "transferred"
    return "recorded"


def generate_month(month: str, seed: int, non_ascii: bool = True) -> list[dict]:
    """The base (all good) rows of one month, deterministic for (month, seed)."""
    rng = random.Random(f"{seed}:{month}")
    n = rng.randint(185, 235)  # steady volume: a volume-vs-history rule must not trip
    ym = month.replace("-", "")
    npus = NPUS_ASCII + (NPUS_NON_ASCII if non_ascii else [])
    rows: list[dict] = []

    def ref(i: int) -> str:
        return f"TF{ym}-{i:05d}"

    # 1-3 recorded homicides each month (so no 12-month window has zero homicides), plus sometimes
    # a cancelled one that must not count.
    specials: list[tuple[str, str]] = []
    for _ in range(rng.randint(1, 3)):
        specials.append((rng.choice(HOMICIDE_CODES), "recorded"))
    if rng.random() < 0.3:
        specials.append((rng.choice(HOMICIDE_CODES), rng.choice(["cancelled", "transferred"])))
    # guarantee the decoy/edge cases every month: 34A (business robbery), knife flag on a non-selected
    # code, cancelled measured crimes.
    specials.append(("34A", "recorded"))
    specials.append(("28E", "cancelled"))
    specials.append(("34B", "transferred"))

    for i in range(n):
        if i < len(specials):
            code, status = specials[i]
        else:
            code, status = _pick_code(rng), _status(rng)
        rows.append(_make_row(rng, month, ref(i + 1), code, status, rng.choice(npus)))
    # a knife flag on a code outside the selected list, and on 34A (selected, business robbery)
    rows[len(specials) + 1]["hocr_code"] = "46"
    rows[len(specials) + 1]["knife_sharp"] = "Y"
    rows[len(specials) + 1]["status"] = "recorded"
    rows[len(specials) - 3]["knife_sharp"] = "Y"   # the 34A special
    # an online-flagged decoy code
    rows[len(specials) + 2]["hocr_code"] = "58A"
    rows[len(specials) + 2]["online"] = "Y"
    rows[len(specials) + 2]["status"] = "recorded"
    rng.shuffle(rows)
    for r in rows:
        r["month"] = month
    return rows


def _make_bad_row(rng: random.Random, month: str, kind: str, ref: str, npu: str,
                  existing: list[dict]) -> dict:
    """A row that would count in several measures if it were (wrongly) loaded, with one defect."""
    code = rng.choice(["34B", "28E", "45", "39", "1"])
    row = _make_row(rng, month, ref, code, "recorded", npu)
    row["knife_sharp"] = "Y"
    row["online"] = "Y"
    if kind == "bad_code":
        row["hocr_code"] = "ZZ9"
    elif kind == "flag_lower":
        row["domestic_abuse"] = "y"
    elif kind == "flag_empty":
        row["firearm"] = ""
    elif kind == "npu_empty":
        row["npu"] = ""
    elif kind == "age_text":
        row["victim_age"] = "abc"
    elif kind == "age_range":
        row["victim_age"] = "130"
    elif kind == "dup_ref":
        row["crime_ref"] = existing[rng.randrange(len(existing))]["crime_ref"]
        # make the duplicate differ from the first occurrence, so keeping the wrong one shows
        row["hocr_code"] = "39" if existing and existing[0]["hocr_code"] != "39" else "45"
    elif kind == "offence_after":
        recorded = dt.date.fromisoformat(row["recorded_date"])
        row["offence_date"] = (recorded + dt.timedelta(days=rng.randint(1, 5))).isoformat()
    elif kind == "lsoa_bad":
        row["lsoa_code"] = "X01123456"
    else:
        raise ValueError(f"unknown bad-row kind {kind!r}")
    return row


def _write_csv(path: Path, columns: list[str], rows: list[dict], variant: str | None) -> None:
    encoding = {"cp1252": "cp1252", "utf-8-sig": "utf-8-sig"}.get(variant or "", "utf-8")
    lineterminator = "\r\n" if variant == "crlf" else "\n"
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator=lineterminator)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])


def build_source(
    root: Path | str,
    *,
    seed: int = 20240601,
    months: list[str] | None = None,
    omit_months: tuple[str, ...] | list[str] = (),
    bad_rows: dict[str, list[str]] | None = None,
    variants: dict[str, str] | None = None,
) -> BuiltSource:
    """Write a source tree under ``root`` and return its ground truth.

    omit_months: months whose folder is not written at all.
    bad_rows: month -> list of bad-row kinds (keys of BAD_KINDS) to inject into that month's file.
    variants: month -> 'cp1252' | 'utf-8-sig' | 'crlf' (default DEFAULT_VARIANTS).
    """
    root = Path(root)
    months = list(months or all_months())
    bad_rows = bad_rows or {}
    if variants is None:  # defaults apply to the months that are in range
        variants = {m: v for m, v in DEFAULT_VARIANTS.items() if m in months}
    variants = dict(variants)
    for m in list(omit_months) + list(bad_rows) + list(variants):
        if m not in months:
            raise ValueError(f"month {m} is outside {months[0]}..{months[-1]}")
    for m, kinds in bad_rows.items():
        for k in kinds:
            if k not in BAD_KINDS:
                raise ValueError(f"unknown bad-row kind {k!r}")
        if m in omit_months:
            raise ValueError(f"cannot inject bad rows into omitted month {m}")

    root.mkdir(parents=True, exist_ok=True)
    ref_dir = root / "reference"
    ref_dir.mkdir(exist_ok=True)
    with (ref_dir / "population.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["force_id", "year", "population"])
        for year, pop in sorted(POPULATION.items()):
            w.writerow([FORCE_ID, year, pop])

    good: list[dict] = []
    bad: list[tuple[str, int, str]] = []
    data_rows: dict[str, int] = {}
    present: list[str] = []
    outcome_months: list[str] = []

    for idx, month in enumerate(months):
        base = generate_month(month, seed)
        if month in omit_months:
            continue
        present.append(month)
        rng = random.Random(f"{seed}:{month}:bad")
        file_rows: list[dict] = list(base)
        bad_kind: list[str | None] = [None] * len(file_rows)
        kinds = bad_rows.get(month, [])
        ym = month.replace("-", "")
        for j, kind in enumerate(kinds):
            if kind == "dup_ref":
                # original: a good row in the first half; duplicate inserted later in the file
                good_positions = [i for i, k in enumerate(bad_kind) if k is None]
                orig_pos = rng.choice(good_positions[: len(good_positions) // 2])
                original = file_rows[orig_pos]
                row = _make_bad_row(rng, month, kind, "", rng.choice(NPUS_ASCII), [original])
                pos = rng.randint(orig_pos + 1, len(file_rows))
            else:
                row = _make_bad_row(rng, month, kind, f"TF{ym}-B{j + 1:04d}",
                                    rng.choice(NPUS_ASCII), [])
                pos = rng.randint(0, len(file_rows))
            row["month"] = month
            file_rows.insert(pos, row)
            bad_kind.insert(pos, kind)
        for i, (row, kind) in enumerate(zip(file_rows, bad_kind)):
            line = i + 2  # header is line 1
            if kind is not None:
                assert _matches_kind(row, kind, file_rows, i), (month, line, kind)
                bad.append((month, line, kind))
            else:
                good.append(dict(row, line=line))
        data_rows[month] = len(file_rows)

        mdir = root / month
        mdir.mkdir(exist_ok=True)
        _write_csv(mdir / "recorded_crime.csv", RECORDED_CRIME_COLUMNS, file_rows, variants.get(month))

        if idx % 3 != 2:  # the outcomes file is optional: leave it out every third month
            outcome_months.append(month)
            orng = random.Random(f"{seed}:{month}:outcomes")
            dup_refs = {r["crime_ref"] for r, k in zip(file_rows, bad_kind) if k}
            candidates = [r for r, k in zip(file_rows, bad_kind)
                          if k is None and r["status"] == "recorded" and r["crime_ref"] not in dup_refs]
            chosen = orng.sample(candidates, k=min(len(candidates), orng.randint(20, 50)))
            outcomes = []
            last_day = _date_in_month(month, _days_in_month(month))
            for r in chosen:
                rec = dt.date.fromisoformat(r["recorded_date"])
                odate = rec + dt.timedelta(days=orng.randint(0, (last_day - rec).days))
                outcomes.append({"crime_ref": r["crime_ref"], "outcome_type": orng.randint(1, 22),
                                 "outcome_date": odate.isoformat()})
            outcomes.sort(key=lambda o: (o["outcome_date"], o["crime_ref"]))
            _write_csv(mdir / "crime_outcomes.csv", OUTCOME_COLUMNS, outcomes, None)

    # bad rows must stay well below the row-level threshold max(25, 5 % of the file)
    for month, kinds in bad_rows.items():
        limit = max(25, 0.05 * data_rows[month])
        if len(kinds) >= limit / 2:
            raise ValueError(f"{len(kinds)} bad rows in {month} is too close to the threshold {limit}")

    return BuiltSource(
        root=root,
        months=months,
        present_months=present,
        good_rows=good,
        bad_rows=bad,
        data_rows=data_rows,
        variants={m: v for m, v in variants.items() if m in present},
        outcome_months=outcome_months,
    )


def _matches_kind(row: dict, kind: str, file_rows: list[dict], i: int) -> bool:
    if kind == "bad_code":
        return row["hocr_code"] == "ZZ9"
    if kind == "flag_lower":
        return row["domestic_abuse"] == "y"
    if kind == "flag_empty":
        return row["firearm"] == ""
    if kind == "npu_empty":
        return row["npu"] == ""
    if kind == "age_text":
        return row["victim_age"] == "abc"
    if kind == "age_range":
        return row["victim_age"] == "130"
    if kind == "dup_ref":
        return any(r["crime_ref"] == row["crime_ref"] for r in file_rows[:i])
    if kind == "offence_after":
        return bool(row["offence_date"]) and row["offence_date"] > row["recorded_date"]
    if kind == "lsoa_bad":
        return row["lsoa_code"] == "X01123456"
    return False


# ------------------------------------------------------------------------------ hand computation
HOMICIDE = {"1", "4.1", "4.2", "4.10"}
RESIDENTIAL_BURGLARY = {"28E", "28F", "28G", "28H", "29A", "28I", "28J", "28K", "28L", "28M", "28N",
                        "28O", "28P", "29B", "29C"}
ROBBERY_PERSONAL = {"34B"}
THEFT_FROM_PERSON = {"39"}
VEHICLE_OFFENCES = {"45", "48", "37.2", "126"}
NEIGHBOURHOOD = RESIDENTIAL_BURGLARY | ROBBERY_PERSONAL | THEFT_FROM_PERSON | VEHICLE_OFFENCES
VWI = HOMICIDE | {"2", "4.3", "4.4", "4.6", "4.7", "4.8", "4.9", "37.1", "5D", "5E", "8N", "8P", "8S"}
KNIFE_SELECTED = HOMICIDE | {"2", "3B", "8N", "8P", "8S", "5D", "34A", "34B", "19C", "19D", "19E",
                             "19F", "19G", "19H", "17A", "17B", "20A", "20B"}

COUNT_MEASURES = {
    "nm_homicide_count": lambda r: r["hocr_code"] in HOMICIDE,
    "nm_nc_residential_burglary": lambda r: r["hocr_code"] in RESIDENTIAL_BURGLARY,
    "nm_nc_robbery": lambda r: r["hocr_code"] in ROBBERY_PERSONAL,
    "nm_nc_theft_from_person": lambda r: r["hocr_code"] in THEFT_FROM_PERSON,
    "nm_nc_vehicle_offences": lambda r: r["hocr_code"] in VEHICLE_OFFENCES,
    "nm_nc_total": lambda r: r["hocr_code"] in NEIGHBOURHOOD,
    "nm_sv_vwi_count": lambda r: r["hocr_code"] in VWI,
    "nm_sv_knife_crime_count": lambda r: r["knife_sharp"] == "Y" and r["hocr_code"] in KNIFE_SELECTED,
    "nm_cyber_enabled_offences": lambda r: r["online"] == "Y",
}
# rate measure -> (count measure it divides, multiplier, unit)
RATE_MEASURES = {
    "nm_homicide_rate_per_million": ("nm_homicide_count", 1_000_000, "per_million"),
    "nm_nc_rate_per_1000": ("nm_nc_total", 1_000, "per_1000"),
}
ALL_MEASURES = list(COUNT_MEASURES) + list(RATE_MEASURES)
UNITS = {**{m: "count" for m in COUNT_MEASURES}, **{m: u for m, (_, _, u) in RATE_MEASURES.items()}}

YE_JUN19 = ("2018-07", "2019-06")


def windows_for(period_end: str) -> list[tuple[str, str, str, str, str, str]]:
    """(period, start, end, comparison, comparison_start, comparison_end) rows for a period end."""
    out = [
        ("r12", shift_month(period_end, -11), period_end, "ye_jun19", *YE_JUN19),
        ("r12", shift_month(period_end, -11), period_end, "prev_r12",
         shift_month(period_end, -23), shift_month(period_end, -12)),
    ]
    if period_end.endswith("-12"):
        year = int(period_end[:4])
        start = f"{year:04d}-01"
        out.append(("cal", start, period_end, "ye_jun19", *YE_JUN19))
        out.append(("cal", start, period_end, "sply", f"{year - 1:04d}-01", f"{year - 1:04d}-12"))
    return out


def population_year(start: str, end: str) -> int:
    """Calendar year of the (single) 30 June inside a 12-month window."""
    junes = [m for m in month_range(start, end) if m.endswith("-06")]
    assert len(junes) == 1, (start, end, junes)
    return int(junes[0][:4])


def window_count(good_rows: list[dict], start: str, end: str, predicate) -> int:
    lo, hi = month_index(start), month_index(end)
    n = 0
    for r in good_rows:
        if r["status"] != "recorded":
            continue
        if not (lo <= month_index(r["month"]) <= hi):
            continue
        if predicate(r):
            n += 1
    return n


def window_value(built: BuiltSource, loaded_months: set[str], measure: str, start: str, end: str):
    """Hand-computed value of a measure over a window, or None when the window is incomplete."""
    if any(m not in loaded_months for m in month_range(start, end)):
        return None
    if measure in COUNT_MEASURES:
        return window_count(built.good_rows, start, end, COUNT_MEASURES[measure])
    base, multiplier, _ = RATE_MEASURES[measure]
    count = window_count(built.good_rows, start, end, COUNT_MEASURES[base])
    return count / built.population[population_year(start, end)] * multiplier


def expected_measures(built: BuiltSource, period_end: str, loaded_months: set[str] | None = None) -> dict:
    """{(measure_id, period, comparison): expected fields} for one period end."""
    loaded = set(built.present_months if loaded_months is None else loaded_months)
    out = {}
    for measure in ALL_MEASURES:
        for period, start, end, comp, cstart, cend in windows_for(period_end):
            value = window_value(built, loaded, measure, start, end)
            cvalue = window_value(built, loaded, measure, cstart, cend)
            complete = value is not None and cvalue is not None
            if complete:
                change_abs = value - cvalue
                change_pct = change_abs / cvalue * 100 if cvalue != 0 else None
            else:
                change_abs = change_pct = None
            out[(measure, period, comp)] = {
                "force_id": FORCE_ID,
                "measure_id": measure,
                "period": period,
                "period_start": start,
                "period_end": end,
                "comparison": comp,
                "comparison_start": cstart,
                "comparison_end": cend,
                "value": value,
                "comparison_value": cvalue,
                "change_abs": change_abs,
                "change_pct": change_pct,
                "status": "monitor" if complete else "incomplete",
                "unit": UNITS[measure],
            }
    return out


# ----------------------------------------------------------------------------------- self check
def self_check(tmp: Path | str) -> None:
    """Re-read what the builder wrote with the csv module and check it against the ground truth."""
    tmp = Path(tmp)
    built = build_source(tmp / "clean")
    assert built.present_months == all_months() and len(built.months) == 30
    assert not built.bad_rows
    _check_written(built)

    bad_spec = {"2019-05": list(BAD_KINDS), "2020-02": ["bad_code", "dup_ref", "age_range", "npu_empty"]}
    broken = build_source(tmp / "broken", omit_months=["2019-03"], bad_rows=bad_spec)
    assert "2019-03" not in broken.present_months and not (broken.root / "2019-03").exists()
    assert len(broken.bad_rows) == sum(len(v) for v in bad_spec.values())
    assert sorted(k for m, _, k in broken.bad_rows if m == "2019-05") == sorted(bad_spec["2019-05"])
    _check_written(broken)
    # same seed -> the same base rows in the months both sources share untouched
    a = [r for r in built.good_rows if r["month"] == "2019-10"]
    b = [r for r in broken.good_rows if r["month"] == "2019-10"]
    assert a == b

    # sanity of the hand computation
    for period_end in ("2019-12", "2020-06", "2020-12"):
        exp = expected_measures(built, period_end)
        for key, e in exp.items():
            if e["value"] is not None and e["unit"] == "count":
                assert e["value"] > 0, (period_end, key, e)
            if e["comparison_value"] is not None:
                assert e["comparison_value"] > 0, (period_end, key, e)
        nc = exp[("nm_nc_total", "r12", "ye_jun19")]["value"]
        parts = sum(exp[(m, "r12", "ye_jun19")]["value"] for m in (
            "nm_nc_residential_burglary", "nm_nc_robbery", "nm_nc_theft_from_person",
            "nm_nc_vehicle_offences"))
        assert nc == parts, (nc, parts)
        # whole-year volume is plausible
        recorded = window_count(built.good_rows, shift_month(period_end, -11), period_end, lambda r: True)
        assert 1200 < recorded < 3200, recorded
    # incompleteness with the omitted month
    exp = expected_measures(broken, "2020-12")
    e = exp[("nm_nc_total", "r12", "prev_r12")]
    assert e["value"] is not None and e["comparison_value"] is None and e["status"] == "incomplete"
    exp = expected_measures(broken, "2019-06")
    assert exp[("nm_homicide_count", "r12", "ye_jun19")]["value"] is None
    # the clean 2019-12 r12 vs prev_r12: 2018-01..2018-06 was never loaded
    exp = expected_measures(built, "2019-12")
    assert exp[("nm_nc_total", "r12", "prev_r12")]["status"] == "incomplete"
    assert exp[("nm_nc_total", "r12", "ye_jun19")]["status"] == "monitor"
    # decoys exist: 34A recorded, knife on non-selected codes, cancelled measured crimes
    assert any(r["hocr_code"] == "34A" and r["status"] == "recorded" for r in built.good_rows)
    assert any(r["knife_sharp"] == "Y" and r["hocr_code"] not in KNIFE_SELECTED for r in built.good_rows)
    assert any(r["status"] != "recorded" and r["hocr_code"] in NEIGHBOURHOOD for r in built.good_rows)
    assert any(r["hocr_code"] == "4.10" for r in built.good_rows)


def _check_written(built: BuiltSource) -> None:
    for month in built.present_months:
        path = built.root / month / "recorded_crime.csv"
        raw = path.read_bytes()
        variant = built.variants.get(month)
        if variant == "utf-8-sig":
            assert raw.startswith(b"\xef\xbb\xbf"), month
        else:
            assert not raw.startswith(b"\xef\xbb\xbf"), month
        if variant == "crlf":
            assert raw.count(b"\r\n") == raw.count(b"\n") == built.data_rows[month] + 1, month
        else:
            assert b"\r" not in raw, month
        if variant == "cp1252":
            assert b"\x96" in raw, "cp1252 file must contain an en dash byte"
            raw.decode("cp1252")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:  # pragma: no cover
                raise AssertionError("cp1252 variant decodes as UTF-8; it must not")
            text = raw.decode("cp1252")
        else:
            text = raw.decode("utf-8-sig")
        lines = text.splitlines()
        assert len(lines) == built.data_rows[month] + 1, month
        rows = list(csv.DictReader(lines))
        assert list(rows[0].keys()) == RECORDED_CRIME_COLUMNS
        good_by_line = {r["line"]: r for r in built.good_rows if r["month"] == month}
        bad_lines = {line for m, line, _ in built.bad_rows if m == month}
        assert set(good_by_line) | bad_lines == set(range(2, built.data_rows[month] + 2))
        assert not set(good_by_line) & bad_lines
        for i, row in enumerate(rows):
            line = i + 2
            if line in good_by_line:
                g = good_by_line[line]
                assert all(row[c] == g[c] for c in RECORDED_CRIME_COLUMNS), (month, line)
                assert g["recorded_date"][:7] == month
                assert g["npu"] and g["hocr_code"] != "ZZ9"
                assert not g["offence_date"] or g["offence_date"] <= g["recorded_date"]
        good_refs = [g["crime_ref"] for g in good_by_line.values()]
        assert len(good_refs) == len(set(good_refs)), month
        # every recorded_date of every row (good or bad) is inside the month
        assert all(r["recorded_date"][:7] == month for r in rows), month


if __name__ == "__main__":  # python tests/acceptance/builder.py [DIR]
    import sys
    import tempfile

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="acc-src-"))
    self_check(target)
    print(f"builder self-check passed; sources under {target}")
