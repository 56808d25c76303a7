"""Reference data of a load: the areas list, the population, external statistics and crime data
integrity audit extracts, and the published statistics workbooks found in ``reference/`` folders, and
how they replace what the warehouse holds.

One reason to change: which reference data a load reads, and how it replaces the committed rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from etl.core import progress
from etl.core.contracts import load_contract
from etl.core.extracts import sha256_of
from etl.core.paths import not_a_regular_file
from etl.core.published import PublishedError, read_pfa_table_p1
from etl.core.validation import (
    ExtractInput,
    ExtractResult,
    FileFailure,
    ValidationContext,
    validate_extracts,
)
from etl.core.warehouse import Warehouse, Write, sql_literal
from etl.loading.files import read_file, read_files
from etl.loading.sources import PUBLISHED_FOLDER, REFERENCE_FOLDER, present, shown

REFERENCE_EXTRACTS = ("population", "external_statistics", "cdi_audit")  # loaded whole for the forces they cover, on every run


# (areas.csv, sha256 of its bytes) -> force_id -> npu list: a backfill, or a process loading month after month,
# reads the same areas lists every month (one per force folder); a changed file is another key, a failing
# file is never kept.
_AREAS: dict[tuple[str, str], dict[str, list[str]]] = {}
_AREAS_MAX = 512


def read_areas(root: Path, shown_from: Path | None = None) -> dict[str, list[str]] | None:
    """force_id -> npu list from ROOT/reference/areas.csv (None without one); names shown relative to ``shown_from``."""
    path = root / REFERENCE_FOLDER / "areas.csv"
    if not path.exists():
        return None
    shown_from = shown_from or root
    try:
        data: bytes | None = path.read_bytes() if path.is_file() else None
    except OSError:
        data = None  # read_file says why
    key = (str(path), sha256_of(data)) if data is not None else None
    if key is not None and key in _AREAS:
        return dict(_AREAS[key])
    raw = read_file(path, shown_from, data)
    if isinstance(raw, FileFailure):
        raise raw
    missing = {"force_id", "npu"} - set(raw.header)
    if missing:
        raise FileFailure(shown(path, shown_from), "columns_present", f"needs columns force_id and npu (missing {', '.join(sorted(missing))})")
    grouped = raw.frame.drop_nulls(["force_id", "npu"]).group_by("force_id").agg(pl.col("npu").unique().sort())
    areas = {r["force_id"]: r["npu"] for r in grouped.iter_rows(named=True)}
    if key is not None:
        if len(_AREAS) >= _AREAS_MAX:
            _AREAS.clear()
        _AREAS[key] = areas
    return dict(areas)


def has_own_areas(root: Path) -> bool:
    return (root / REFERENCE_FOLDER / "areas.csv").exists()


def has_own_reference(root: Path) -> bool:
    return (root / REFERENCE_FOLDER).is_dir()


def new_published(source: Path, wh: Warehouse, shown_from: Path | None = None) -> list[tuple[pl.DataFrame, dict]]:
    """Published statistics workbooks in SOURCE/reference/published/ not loaded yet (by sha256);
    file names are shown relative to ``shown_from`` (default SOURCE)."""
    shown_from = shown_from or source
    folder = source / PUBLISHED_FOLDER
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xlsx")  # a folder or FIFO so named fails, plainly
    if not files:
        return []
    committed = wh.read("published_statistics")
    known = set(committed["source_sha256"].unique().to_list()) if committed is not None else set()
    out = []
    for path in files:
        reason = not_a_regular_file(path)
        if reason:
            raise PublishedError(shown(path, shown_from), reason)
        if sha256_of(path.read_bytes()) in known:
            continue
        frame = read_pfa_table_p1(path)
        entry = {
            "extract": "published_statistics",
            "file": shown(path, shown_from),
            "sha256": frame["source_sha256"][0],
            "encoding": "xlsx",
            "contract": "ons_pfa_table_p1",
            "contract_version": None,
            "rows_in": frame.height,
            "rows_loaded": frame.height,
            "rows_quarantined": 0,
        }
        out.append((frame, entry))
    return out


@dataclass
class References:
    """The reference data one folder offers a run, validated: its reference extracts and the
    published workbooks not loaded yet (each with its audit ``source_files`` entry)."""

    results: list[ExtractResult] = field(default_factory=list)
    published: list[tuple[pl.DataFrame, dict]] = field(default_factory=list)

    def __add__(self, other: References) -> References:
        return References(self.results + other.results, self.published + other.published)


def read_references(roots: list[Path], source: Path, wh: Warehouse) -> list[References | FileFailure | PublishedError]:
    """The reference data of each folder in ``roots`` (SOURCE first, then force folders with their own
    ``reference/``), or the first failure of that folder's files. Every folder's file of one reference
    extract is read and validated in one pass; a workbook an earlier folder offers is not offered again."""
    found = [References() for _ in roots]
    failed: dict[int, FileFailure | PublishedError] = {}
    for name in REFERENCE_EXTRACTS:
        _validate_reference_extract(name, roots, source, found, failed)
    seen_sha: set[str] = set()
    out: list[References | FileFailure | PublishedError] = []
    for k, root in enumerate(roots):
        if k not in failed:
            try:
                found[k].published = [(f, e) for f, e in new_published(root, wh, source) if e["sha256"] not in seen_sha]
            except PublishedError as exc:
                failed[k] = exc
        if k in failed:
            out.append(failed[k])
            continue
        seen_sha |= {e["sha256"] for _, e in found[k].published}
        out.append(found[k])
    return out


def _validate_reference_extract(name: str, roots: list[Path], source: Path, found: list[References], failed: dict[int, FileFailure | PublishedError]) -> None:
    """Every folder's file of one reference extract read and validated together: a result joins
    ``found[k]``, a folder's first failure goes to ``failed[k]``."""
    contract = load_contract(name)
    todo = [(k, root / contract.file_name) for k, root in enumerate(roots) if present(root / contract.file_name)]
    if not todo:
        return
    with progress.stage("read", extract=name, files=len(todo)):
        raws = read_files([p for _, p in todo], source)
    inputs, keys = [], []
    for (k, path), raw in zip(todo, raws):
        if isinstance(raw, FileFailure):
            failed.setdefault(k, raw)
        else:
            inputs.append(ExtractInput(raw, ValidationContext(), shown(path, source)))
            keys.append(k)
    with progress.stage("validate", extract=name, rows=sum(i.raw.rows_in for i in inputs), files=len(inputs)):
        outcomes = validate_extracts(contract, inputs) if inputs else []
    for k, outcome in zip(keys, outcomes):
        if isinstance(outcome, FileFailure):
            failed.setdefault(k, outcome)
        else:
            found[k].results.append(outcome)


def reference_rows(results: list[ExtractResult], name: str) -> pl.DataFrame | None:
    """The rows of a reference extract read in this run. With several files, each force's rows come
    from the last file (in ``results`` order: SOURCE/reference first, then the force folders) covering it."""
    frames = [r.clean for r in results if r.contract.extract == name]
    if not frames:
        return None
    if len(frames) == 1:
        return frames[0]
    tagged = pl.concat([f.with_columns(pl.lit(i).alias("__file")) for i, f in enumerate(frames)], how="diagonal_relaxed")
    return tagged.filter(pl.col("__file") == pl.col("__file").max().over("force_id")).drop("__file")


def reference_writes(rows: dict[str, pl.DataFrame | None], wh: Warehouse | None = None) -> list[Write]:
    """Reference data replaces the rows of the forces it covers (one write per reference table) - unless the
    committed table already holds exactly what the write would put there (`unchanged`): the same reference file
    read again every month is not written again."""
    writes = []
    for name, frame in rows.items():
        forces = frame["force_id"].unique().sort().to_list() if frame is not None else []
        if forces and not (wh is not None and unchanged(wh, name, frame, forces)):  # type: ignore[arg-type]
            writes.append(Write(name, frame, "force_id IN (" + ", ".join(sql_literal(f) for f in forces) + ")"))  # type: ignore[arg-type]
    return writes


_LINEAGE = ["force_id", "source_file", "source_sha256"]


def unchanged(wh: Warehouse, name: str, frame: pl.DataFrame, forces: list[str]) -> bool:
    """Whether the committed rows of ``forces`` in table ``name`` are those of ``frame``: the same columns and types,
    and per force the same source files (by sha256) with the same numbers of rows. The rows of a file are its typed
    text, so the same file under the same column types gives the same rows, and a changed rule or file changes a
    count, a type or a sha256."""
    if any(c not in frame.columns for c in _LINEAGE):
        return False
    summary = _committed_summary(wh, name)
    if summary is None or summary[0] != dict(frame.schema):
        return False
    committed = summary[1]
    seen = _COMPARED.get((wh.cache_key(name), name))
    if seen is not None and seen[0] is committed and seen[1] is frame:
        return seen[2]  # the months of a batch record the same reference rows: compared once
    new = frame.group_by(_LINEAGE).agg(pl.len().alias("rows"))
    same = committed.filter(pl.col("force_id").is_in(forces)).sort(_LINEAGE).equals(new.select(committed.columns).sort(_LINEAGE))
    _COMPARED[(wh.cache_key(name), name)] = (committed, frame, same)
    return same


# (table cache key, table) -> (the committed summary, the frame, whether they matched): the last comparison,
# by identity - a batch's months hand the same frame against the same committed version
_COMPARED: dict[tuple[str, str], tuple[pl.DataFrame, pl.DataFrame, bool]] = {}


# (table cache key, committed version) -> (identity of that version's log entry, schema, rows per force and file): a
# backfill's batch compares every month's reference files with the same committed version, so it is read once.
_SUMMARIES: dict[tuple[str, int], tuple[tuple | None, dict, pl.DataFrame]] = {}


def _committed_summary(wh: Warehouse, name: str) -> tuple[dict, pl.DataFrame] | None:
    """The committed table's schema and its row counts per (force, file, sha256), kept per committed version."""
    version = wh.committed_versions().get(name)
    if version is None:
        return None
    key = (wh.cache_key(name), version)
    identity = wh.location.identity(name, "_delta_log", f"{version:020d}.json")
    hit = _SUMMARIES.get(key)
    if hit is None or hit[0] != identity or identity is None:
        lf = wh.scan(name)
        if lf is None:
            return None
        for k in [k for k in _SUMMARIES if k[0] == key[0]]:
            del _SUMMARIES[k]  # one version per table
        hit = _SUMMARIES[key] = (identity, dict(lf.collect_schema()), lf.group_by(_LINEAGE).agg(pl.len().alias("rows")).collect())
    return hit[1], hit[2]


def reference_after(wh: Warehouse, name: str, new: pl.DataFrame | None) -> pl.DataFrame | None:
    """A reference table as it will be after this run (the file's forces replaced)."""
    committed = wh.read(name)
    if new is None:
        return committed
    if committed is None:
        return new
    return pl.concat([committed.filter(~pl.col("force_id").is_in(new["force_id"].implode())), new], how="diagonal_relaxed")
