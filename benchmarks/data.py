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
    if size.extra.get("large_file_bytes"):
        return ensure_large(size, log)
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


# --- one large file ---------------------------------------------------------------------------------
#
# The large-file sizes hold one force-month in a single file of at least `large_file_bytes` (200 MB, 2 GB):
# a large force's full-detail month, or a year sent as one file. The demo generator holds a month in
# memory (~0.75 kB a row), so the file is generated in slices of at most LARGE_SLICE_ROWS crimes, each a
# `generate_demo` month of the same force with its own seed, appended to one file with the crime
# references renumbered to run on across the slices (the first slice's rows keep theirs). The last slice
# carries the month's deliberately invalid rows (BAD_ROWS_PER_MONTH), so bad rows sit near the end of the
# file; their references (9,000,001 on in a month) move past every valid one.

LARGE_SLICE_ROWS = 2_000_000
LARGE_BYTES_PER_ROW = 87  # a generated recorded_crime row, for the number of slices (the marker records the real size)
_BAD_SEQUENCE_START = 9_000_001  # etl.demo.generator.BAD_ROW_SEQUENCE_START
_BAD_SEQUENCE_MOVED = 99_000_001


def _renumbered(frame, offset: int):
    """A slice's rows with their crime reference sequence moved on by ``offset`` (the invalid rows' past every
    valid one), and the slice's highest valid sequence number."""
    import polars as pl

    parts = pl.col("crime_ref").str.split_exact("/", 1)
    seq = parts.struct.field("field_1").cast(pl.Int64)
    new = pl.when(seq >= _BAD_SEQUENCE_START).then(seq - _BAD_SEQUENCE_START + _BAD_SEQUENCE_MOVED).otherwise(seq + offset)
    top = frame.select(seq.filter(seq < _BAD_SEQUENCE_START).max()).item() or 0
    return frame.with_columns((parts.struct.field("field_0") + "/" + new.cast(pl.String).str.zfill(7)).alias("crime_ref")), int(top)


def _generate_large(folder: Path, wanted: dict) -> dict:
    import shutil
    import tempfile

    import polars as pl

    from etl.demo.generator import generate_demo

    started = time.perf_counter()
    month = wanted["month"]
    slices = max(1, -(-wanted["bytes"] // (LARGE_SLICE_ROWS * LARGE_BYTES_PER_ROW)))
    per_slice = -(-wanted["bytes"] // (LARGE_BYTES_PER_ROW * slices))
    target = folder / month / "recorded_crime.csv"
    shutil.rmtree(folder, ignore_errors=True)
    target.parent.mkdir(parents=True)
    offset = rows = k = 0
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="large-slice-", dir=CACHE_DIR) as tmp, open(target, "wb") as out:
        while k < slices or out.tell() < wanted["bytes"]:  # a short file gets one more slice
            piece = Path(tmp) / f"slice{k}"
            generate_demo(
                piece,
                force_id=wanted["force_id"],
                first_month=month,
                last_month=month,
                seed=wanted["seed"] + 7919 * k,
                bad_rows_per_month=wanted["bad_rows_per_month"] if k == slices - 1 else 0,
                crimes_per_month=per_slice,
            )
            frame, top = _renumbered(pl.read_csv(piece / month / "recorded_crime.csv", infer_schema=False), offset)
            frame.write_csv(out, include_header=k == 0, line_terminator="\n", quote_style="necessary", null_value="")
            offset += top
            rows += frame.height
            if k == 0:
                shutil.copytree(piece / "reference", folder / "reference")
            shutil.rmtree(piece)
            k += 1
    ext = folder / "reference" / "external_statistics.csv"
    if ext.exists() and len([ln for ln in ext.read_text(encoding="utf-8").splitlines() if ln.strip()]) <= 1:
        ext.unlink()  # header only: see _generate_force
    marker = dict(wanted, rows={month: rows}, file_bytes=target.stat().st_size, slices=k, generated_seconds=round(time.perf_counter() - started, 2))
    (folder / MARKER).write_text(json.dumps(marker, indent=1))
    return marker


def ensure_large(size: Size, log=print) -> Dataset:
    """The size's one large file (``size.extra["large_file_bytes"]``), generated unless the cache holds it."""
    (force_id, _), month = size.forces[0], size.first_month
    folder = force_dir(size, force_id)
    wanted = {
        "force_id": force_id,
        "month": month,
        "bytes": int(size.extra["large_file_bytes"]),
        "seed": force_seed(force_id),
        "bad_rows_per_month": BAD_ROWS_PER_MONTH,
        "generator": "etl.demo.generator.generate_demo, in slices (benchmarks/data.py)",
        "generator_sha256": generator_fingerprint(),
        "outcomes": "deleted",
    }
    marker = None
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        pass
    target = folder / month / "recorded_crime.csv"
    fresh = marker is None or any(marker.get(k) != v for k, v in wanted.items()) or not target.exists() or target.stat().st_size != marker.get("file_bytes")
    started = time.perf_counter()
    if fresh:
        log(f"  generating one {wanted['bytes'] / 1e6:,.0f} MB file into {folder} ...")
        marker = _generate_large(folder, wanted)
    assert marker is not None
    files = [
        {"force_id": force_id, "month": month, "source": str(folder), "path": str(target), "rows": int(marker["rows"][month]), "bytes": marker["file_bytes"]}
    ]
    return Dataset(size, files, round(time.perf_counter() - started, 2) if fresh else 0.0, 1 if fresh else 0)
