"""Audit records: one ``audit_runs`` row per run and one ``audit_checks`` row per check per run.

They let an auditor trace any figure to the source files (by sha256), the contract and definition
versions that produced it, and every check that ran with how many rows failed it.

Each ``source_files`` entry (JSON) names its file relative to the run's source folder (``file``) and
that folder as ``source_root`` (absolute, resolved when the run read it), so the file can be found
again: ``Path(source_root) / file``. Runs recorded before ``source_root`` existed lack the key.
A run loaded from a landing zone (`etl.loading.landing`) records the landing URL as ``source_root``
(the file is ``source_root + "/" + file``) and its copy in the warehouse's raw area as ``raw``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from etl.core.validation import CheckResult, ExtractResult
from etl.core.warehouse import AUDIT_CHECKS_SCHEMA

LANDING_MANIFEST = ".landing.json"  # in a staging folder made from a landing zone: its URL and the raw copies


def new_run_id(kind: str) -> str:
    now = dt.datetime.now(dt.UTC)
    return f"{kind}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class SourceFileEntry:
    """One file a load run read, as its audit_runs row records it (`source_file_entry`, in ``source_files``)."""

    extract: str
    file: str
    sha256: str | None = None
    encoding: str | None = None
    contract: str | None = None
    contract_version: str | None = None
    rows_in: int | None = None
    rows_loaded: int | None = None
    rows_quarantined: int | None = None
    source_root: str | None = None  # absolute; ``file`` is relative to it (None in runs recorded before it was kept)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> SourceFileEntry:
        def whole(v: Any) -> int | None:
            return None if v is None else int(v)

        return cls(
            extract=str(entry.get("extract") or ""),
            file=str(entry.get("file") or ""),
            sha256=entry.get("sha256"),
            encoding=entry.get("encoding"),
            contract=entry.get("contract"),
            contract_version=entry.get("contract_version"),
            rows_in=whole(entry.get("rows_in")),
            rows_loaded=whole(entry.get("rows_loaded")),
            rows_quarantined=whole(entry.get("rows_quarantined")),
            source_root=entry.get("source_root"),
        )


def source_file_entries(source_files: str | None) -> list[dict[str, Any]]:
    """The entries of an audit_runs row's ``source_files`` (JSON); none when it is empty or not JSON."""
    try:
        entries = json.loads(source_files or "[]") or []
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def source_file_entry(r: ExtractResult) -> dict:
    return {
        "extract": r.contract.extract,
        "file": r.source_file,
        "sha256": r.sha256,
        "encoding": r.encoding,
        "contract": r.contract.id,
        "contract_version": r.contract.version,
        "rows_in": r.rows_in,
        "rows_loaded": r.rows_loaded,
        "rows_quarantined": r.rows_quarantined,
    }


def run_row(
    run_id: str,
    kind: str,
    force_id: str | None,
    month: str | None,
    started: dt.datetime,
    results: list[ExtractResult],
    definition_versions: dict[str, str] | None = None,
    message: str | None = None,
    extra_files: list[dict] | None = None,
    source_root: str | Path | None = None,
) -> dict:
    """The audit_runs row. ``extra_files``: sources loaded whole without a row contract (published tables).
    ``source_root``: the folder the files' paths are relative to, recorded (resolved) in every entry."""
    extra_files = extra_files or []
    rows_in = sum(r.rows_in for r in results) + sum(f["rows_in"] for f in extra_files)
    loaded = sum(r.rows_loaded for r in results) + sum(f["rows_loaded"] for f in extra_files)
    quarantined = sum(r.rows_quarantined for r in results)
    if rows_in != loaded + quarantined:  # pragma: no cover - guarded in validation too
        raise AssertionError(f"rows in {rows_in} != loaded {loaded} + quarantined {quarantined}")
    return {
        "run_id": run_id,
        "kind": kind,
        "force_id": force_id,
        "month": month,
        "started_at": started,
        "finished_at": utcnow(),
        "outcome": "success",
        "source_files": json.dumps(_rooted([source_file_entry(r) for r in results] + extra_files, source_root)),
        "rows_in": rows_in,
        "rows_loaded": loaded,
        "rows_quarantined": quarantined,
        "contract_versions": json.dumps({r.contract.id: r.contract.version for r in results}),
        "definition_versions": json.dumps(definition_versions or {}),
        "message": message,
    }


def _rooted(entries: list[dict], source_root: str | Path | None) -> list[dict]:
    if source_root is None:
        return entries
    landed = landing_origin(source_root)
    if landed is not None:  # staged from a landing zone: the landing URL is the root, the raw copy is kept
        raw = landed.get("raw", {})
        return [{**e, "source_root": landed["source_root"], **({"raw": raw[e["file"]]} if e.get("file") in raw else {})} for e in entries]
    root = str(Path(source_root).resolve())
    return [{**e, "source_root": root} for e in entries]


def landing_origin(folder: str | Path) -> dict | None:
    """The manifest of a staging folder made from a landing zone (`etl.loading.landing`): ``source_root``
    (the landing URL) and ``raw`` (each file, relative, -> its copy in the warehouse's raw area); None otherwise."""
    try:
        found = json.loads((Path(folder) / LANDING_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("source_root"), str) else None


def checks_frame(
    run_id: str, force_id: str | None, month: str | None, results: list[ExtractResult], extra: list[tuple[str, CheckResult]] | None = None
) -> pl.DataFrame:
    rows = []
    for r in results:
        for c in r.checks:
            rows.append(_check_row(run_id, force_id, month, r.contract.extract, r.source_file, r.contract.id, r.contract.version, c))
    for extract, c in extra or []:
        rows.append(_check_row(run_id, force_id, month, extract, None, None, None, c))
    return pl.DataFrame(rows, schema=AUDIT_CHECKS_SCHEMA)


def _check_row(run_id, force_id, month, extract, source_file, contract, version, c: CheckResult) -> dict:
    return {
        "run_id": run_id,
        "force_id": force_id,
        "month": month,
        "extract": extract,
        "source_file": source_file,
        "contract": contract,
        "contract_version": version,
        "check": c.check,
        "column": c.column,
        "description": c.description,
        "severity": c.severity,
        "passed": c.passed,
        "failing_rows": c.failing_rows,
        "rows_checked": c.rows_checked,
        "detail": c.detail,
    }
