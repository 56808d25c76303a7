"""Synthetic extracts for the benchmark sizes, generated once into a cache under /tmp.

Each force is a source folder written by the project's demo generator (`etl.demo.generator.generate_demo`)
with its own seed and size: CACHE/data/<key>/<force_id>/YYYY-MM/recorded_crime.csv plus
reference/population.csv and reference/areas.csv. Only recorded crime is benchmarked: the generator's
crime_outcomes.csv files are deleted after generation, on every side alike (the outcomes extract is
optional for the project). A `.bench.json` marker per force records the parameters and the rows of
every month; a force is regenerated when the marker does not match or does not cover the months asked
for, so the cache can always be rebuilt from the seed.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import BAD_ROWS_PER_MONTH, CACHE_DIR, FORCE_WEIGHTS, SEED, Size, month_range

MARKER = ".bench.json"


def force_seed(force_id: str) -> int:
    names = sorted(FORCE_WEIGHTS)
    return SEED + (names.index(force_id) if force_id in names else 997)


def force_dir(size: Size, force_id: str) -> Path:
    return CACHE_DIR / "data" / size.data_key / force_id


def generator_fingerprint() -> str:
    """sha256 prefix of the demo generator and its profile: a changed generator regenerates the cache."""
    import hashlib

    from benchmarks.config import REPO_ROOT

    h = hashlib.sha256()
    for p in (REPO_ROOT / "etl" / "demo" / "generator.py", REPO_ROOT / "etl" / "demo" / "profile.yaml"):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _wanted(size: Size, force_id: str, cpm: int) -> dict:
    return {
        "force_id": force_id,
        "crimes_per_month": cpm,
        "seed": force_seed(force_id),
        "first_month": size.first_month,
        "bad_rows_per_month": BAD_ROWS_PER_MONTH,
        "generator": "etl.demo.generator.generate_demo",
        "generator_sha256": generator_fingerprint(),
        "outcomes": "deleted",
    }


def _covered(folder: Path, wanted: dict, months: list[str]) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if any(marker.get(k) != v for k, v in wanted.items()):
        return None
    if not all(m in marker.get("rows", {}) and (folder / m / "recorded_crime.csv").exists() for m in months):
        return None
    return marker


def _generate_force(args: tuple[str, dict, list[str]]) -> dict:
    folder, wanted, months = args
    from etl.demo.generator import generate_demo

    folder = Path(folder)
    rows: dict[str, int] = {}

    def on_month(label: str) -> None:
        d = folder / label
        with open(d / "recorded_crime.csv", "rb") as fh:
            rows[label] = fh.read().count(b"\n") - 1  # the generator writes LF lines, one header
        (d / "crime_outcomes.csv").unlink(missing_ok=True)

    started = time.perf_counter()
    generate_demo(
        folder,
        force_id=wanted["force_id"],
        first_month=wanted["first_month"],
        last_month=months[-1],
        seed=wanted["seed"],
        bad_rows_per_month=wanted["bad_rows_per_month"],
        crimes_per_month=wanted["crimes_per_month"],
        on_month=on_month,
    )
    # The generator writes reference/external_statistics.csv with a header and no rows when the months
    # span less than a financial year, and the monthly load then fails on it ("has a header but no data
    # rows"; reported in BENCHMARKS.md). The file is optional for the load, so an empty one is removed.
    removed = []
    ext = folder / "reference" / "external_statistics.csv"
    if ext.exists() and len([ln for ln in ext.read_text(encoding="utf-8").splitlines() if ln.strip()]) <= 1:
        ext.unlink()
        removed.append("reference/external_statistics.csv (header only)")
    marker = dict(wanted, last_month=months[-1], rows=rows, generated_seconds=round(time.perf_counter() - started, 2), removed_files=removed)
    (folder / MARKER).write_text(json.dumps(marker, indent=1))
    return marker


@dataclass
class Dataset:
    size: Size
    files: list[dict]  # force_id, month, source, path, rows (months outer, forces inner: the monthly order)
    generated_seconds: float  # 0 when everything came from the cache
    generated_forces: int

    @property
    def rows(self) -> int:
        return sum(f["rows"] for f in self.files)

    def manifest(self) -> list[dict]:
        return self.files


def ensure(size: Size, workers: int = 2, log=print) -> Dataset:
    """The size's extracts, generating the forces whose cached folders do not cover it."""
    months = month_range(size.first_month, size.months)
    todo, markers = [], {}
    for force_id, cpm in size.forces:
        folder = force_dir(size, force_id)
        wanted = _wanted(size, force_id, cpm)
        marker = _covered(folder, wanted, months)
        if marker is None:
            todo.append((str(folder), wanted, months))
        else:
            markers[force_id] = marker
    started = time.perf_counter()
    if todo:
        log(f"  generating {len(todo)} force source(s) x {len(months)} months into {CACHE_DIR / 'data' / size.data_key} ...")
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for marker in pool.map(_generate_force, todo):
                    markers[marker["force_id"]] = marker
        else:
            for t in todo:
                marker = _generate_force(t)
                markers[marker["force_id"]] = marker
    generated = time.perf_counter() - started if todo else 0.0
    files = []
    for m in months:
        for force_id, _ in size.forces:
            folder = force_dir(size, force_id)
            files.append(
                {
                    "force_id": force_id,
                    "month": m,
                    "source": str(folder),
                    "path": str(folder / m / "recorded_crime.csv"),
                    "rows": int(markers[force_id]["rows"][m]),
                }
            )
    return Dataset(size, files, round(generated, 2), len(todo))
