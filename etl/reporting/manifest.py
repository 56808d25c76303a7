"""What a report folder last showed: ``report.json``, written beside the pages.

One reason to change: what is remembered of a written report. It names the warehouse, force and month,
and the warehouse state the figures were read at (the last run then committed), so that the next report
written to the same folder can mark the figures restated since then (`etl.trail.changes.restated`).
Aggregate identifiers only: no figure and no personal data.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from etl.reporting.exports import write_text

MANIFEST = "report.json"


@dataclass(frozen=True)
class ReportManifest:
    warehouse: str  # the warehouse folder, resolved
    force_id: str
    month: str
    read_at_run: str | None  # the last warehouse run whose state the figures show (None: an empty audit trail)
    written_at: str  # ISO time, UTC


def read_manifest(out_dir: Path) -> ReportManifest | None:
    """The manifest of the report last written to ``out_dir``; None when there is none or it cannot be read
    (a report written by an older version, or a file edited by hand: then nothing is marked restated)."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return ReportManifest(**{k: data.get(k) for k in ReportManifest.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(out_dir: Path, warehouse: Path | str, force_id: str, month: str, read_at_run: str | None) -> ReportManifest:
    shown = warehouse if isinstance(warehouse, str) else str(warehouse.resolve())  # a folder resolved, a URL as it is
    manifest = ReportManifest(shown, force_id, month, read_at_run, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    write_text(out_dir / MANIFEST, json.dumps(asdict(manifest), indent=1) + "\n")
    return manifest


__all__ = ["MANIFEST", "ReportManifest", "read_manifest", "write_manifest"]
