"""What is measured: the 43 forces and their sizes, the benchmark sizes, where data and results go."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# Generated extracts and warehouses live outside the repository (they are large and reproducible).
CACHE_DIR = Path(os.environ.get("ETL_BENCH_CACHE", "/tmp/police-etl-bench"))

SEED = 20260101
BAD_ROWS_PER_MONTH = 3  # the demo's deliberately invalid rows (quarantined by the project, flagged by GX)
NATIONAL_CRIMES_PER_YEAR = 6_500_000
LARGEST_FORCE_PER_MONTH = 28_000

# Relative size of each territorial force of England and Wales (roughly its recorded crimes a year,
# in thousands; made up but of the right order). Real forces differ far more (the Metropolitan Police
# records ~3x the next force); the brief asks for the largest force-month to be ~25-30k rows, so the
# sizes are compressed with a power law (see `force_sizes`) before they are scaled to the national total.
FORCE_WEIGHTS: dict[str, float] = {
    "avon-and-somerset": 140,
    "bedfordshire": 55,
    "cambridgeshire": 75,
    "cheshire": 85,
    "city-of-london": 8,
    "cleveland": 75,
    "cumbria": 30,
    "derbyshire": 80,
    "devon-and-cornwall": 115,
    "dorset": 45,
    "durham": 55,
    "dyfed-powys": 25,
    "essex": 165,
    "gloucestershire": 45,
    "greater-manchester": 330,
    "gwent": 55,
    "hampshire": 160,
    "hertfordshire": 90,
    "humberside": 95,
    "kent": 175,
    "lancashire": 140,
    "leicestershire": 85,
    "lincolnshire": 55,
    "merseyside": 140,
    "metropolitan": 900,
    "norfolk": 65,
    "north-wales": 55,
    "north-yorkshire": 50,
    "northamptonshire": 65,
    "northumbria": 160,
    "nottinghamshire": 100,
    "south-wales": 125,
    "south-yorkshire": 165,
    "staffordshire": 95,
    "suffolk": 55,
    "surrey": 75,
    "sussex": 135,
    "thames-valley": 175,
    "warwickshire": 40,
    "west-mercia": 105,
    "west-midlands": 330,
    "west-yorkshire": 320,
    "wiltshire": 40,
}


def force_sizes(total_per_month: float = NATIONAL_CRIMES_PER_YEAR / 12, largest: float = LARGEST_FORCE_PER_MONTH) -> dict[str, int]:
    """crimes_per_month for each of the 43 forces: weights ** a, scaled to the national total, with the
    exponent a chosen (bisection) so that the largest force gets `largest` crimes a month."""
    names = sorted(FORCE_WEIGHTS)

    def scaled(a: float) -> list[float]:
        w = [FORCE_WEIGHTS[n] ** a for n in names]
        s = sum(w)
        return [total_per_month * x / s for x in w]

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if max(scaled(mid)) > largest:
            hi = mid
        else:
            lo = mid
    return {n: int(round(v)) for n, v in zip(names, scaled(lo))}


@dataclass(frozen=True)
class Size:
    name: str
    forces: tuple[tuple[str, int], ...]  # (force_id, crimes_per_month)
    first_month: str
    months: int
    data_key: str  # cache folder shared by sizes generated with the same parameters
    description: str
    prefect: bool = False  # also measure Prefect orchestration overhead on the first force-month
    sides: tuple[str, ...] = ("floor", "project", "alternative")
    extra: dict = field(default_factory=dict)


def _month_add(month: str, k: int) -> str:
    y, m = int(month[:4]), int(month[5:7])
    i = y * 12 + m - 1 + k
    return f"{i // 12:04d}-{i % 12 + 1:02d}"


def month_range(first: str, n: int) -> list[str]:
    return [_month_add(first, k) for k in range(n)]


NATIONAL_FIRST = "2018-04"  # financial year 2018/19 (the demo profile's trend is anchored at 2018-07)
BACKFILL_FIRST = "2017-04"  # the demo's offence codes start in April 2017


def national_forces() -> tuple[tuple[str, int], ...]:
    return tuple(sorted(force_sizes().items()))


def sizes() -> dict[str, Size]:
    nat = national_forces()
    largest = max(nat, key=lambda f: f[1])
    return {
        "small": Size(
            "small",
            (("metropolitan", 2000), ("west-midlands", 2000), ("city-of-london", 2000)),
            NATIONAL_FIRST,
            2,
            "small",
            "3 forces x 2 months x ~2k rows: checks the harness works (under a minute)",
            prefect=True,
            extra={"measures_table": {"forces": 3, "months": 24}},
        ),
        "force-month": Size("force-month", (("metropolitan", 28_700),), "2018-10", 1, "force-month", "one large force-month (~30k rows)", prefect=True),
        "national-year": Size("national-year", nat, NATIONAL_FIRST, 12, "national", "43 forces x 12 months (2018-04..2019-03), ~6.5M rows"),
        "backfill-10y": Size(
            "backfill-10y",
            (largest,),
            BACKFILL_FIRST,
            120,
            "backfill",
            f"one force ({largest[0]}, ~{largest[1] // 1000}k a month) x 120 months (2017-04..2027-03)",
        ),
        **{name: large_file_size(name, n) for name, n in LARGE_FILES.items()},
    }


# One force-month in one file of at least this many bytes (benchmarks/data.py generates it in slices): peak
# memory per input byte of the load, which reads a file above ETL_CHUNK_BYTES in chunks (etl/core/chunks.py).
LARGE_FILES = {"large-file-200mb": 200_000_000, "large-file-2gb": 2_000_000_000}
LARGE_FILE_MONTH = "2018-10"


def large_file_size(name: str, n_bytes: int) -> Size:
    return Size(
        name,
        (("metropolitan", 0),),  # rows follow from the bytes
        LARGE_FILE_MONTH,
        1,
        name,
        f"one force-month in one file of {n_bytes / 1e6:,.0f} MB (~{n_bytes // 87 / 1e6:.1f}M rows): peak memory per input byte",
        sides=("floor", "project"),
        extra={"large_file_bytes": n_bytes},
    )


GROWTH_MULTIPLES = (1, 2, 4, 8)


def growth_base(name: str = "national") -> Size:
    """The 1x of the growth series: the national year, or (to try the harness) the small size's forces x 12 months."""
    if name == "national":
        return sizes()["national-year"]
    small = sizes()["small"]
    return Size("growth-small-1x", small.forces, NATIONAL_FIRST, 12, "small-growth", "small forces x 12 months (harness check)")


def growth_size(k: int, base: str = "national") -> Size:
    """k x the growth base, scaled by years: the same forces x 12k months from 2018-04 (same partition size)."""
    b = growth_base(base)
    label = "national year" if base == "national" else b.name
    return Size(
        f"growth-{k}x" + ("" if base == "national" else f"-{base}"),
        b.forces,
        b.first_month,
        12 * k,
        b.data_key,
        f"{k}x {label}: {len(b.forces)} forces x {12 * k} months",
    )


MEASURES_10Y = {"forces": 43, "months": 120, "first_month": BACKFILL_FIRST}
