"""The commit keeps its cost flat as tables grow: Delta checkpoints every CHECKPOINT_EVERY versions and the
small-file tables compacted inside the run's commit - all or nothing, history kept."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

import etl.core.warehouse as W
from etl.core.warehouse import Warehouse, Write


def _run(wh: Warehouse, k: int) -> None:
    frame = pl.DataFrame({"force_id": ["f"], "month": [f"m{k:03d}"], "n": [k]})
    checks = pl.DataFrame([{k: None for k in W.AUDIT_CHECKS_SCHEMA} | {"run_id": f"r{k}", "check": "c", "passed": True}], schema=W.AUDIT_CHECKS_SCHEMA)
    with wh.run():
        wh.commit(f"r{k}", [Write("quarantine", frame, f"month = 'm{k:03d}'")], {"run_id": f"r{k}", "kind": "load"}, checks)


def _last_checkpoint(wh: Warehouse, table: str) -> int | None:
    path = Path(wh.path(table)) / "_delta_log" / "_last_checkpoint"
    return int(json.loads(path.read_text())["version"]) if path.exists() else None


def test_checkpoints_and_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(W, "COMPACT_EVERY", 6)
    wh = Warehouse(tmp_path / "wh")
    for k in range(14):
        _run(wh, k)
    for table in ("quarantine", "audit_checks", "audit_runs"):
        version = wh._log_version(table)
        last = _last_checkpoint(wh, table)
        assert last is not None and version - last < W.CHECKPOINT_EVERY, table  # opening replays fewer than 10 log entries
    q = wh.read("quarantine").sort("n")
    assert q["n"].to_list() == list(range(14))
    files = len(DeltaTable(str(wh.path("quarantine"))).file_uris())
    assert files < 14  # compacted: a run's small file each, merged every COMPACT_EVERY versions
    history = [h.get("operation") for h in wh.history("quarantine")]
    assert "OPTIMIZE" in history
    # every version named by a run reads as it was committed (the compacted ones are the committed ones)
    runs = wh.read("audit_runs").sort("commit_seq")
    for row in runs.iter_rows(named=True):
        version = json.loads(row["table_versions"])["quarantine"]
        seen = pl.read_delta(str(wh.path("quarantine")), version=version)["n"].sort().to_list()
        assert seen == list(range(int(row["run_id"][1:]) + 1)), row["run_id"]


def test_a_run_failing_after_compaction_leaves_the_table_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(W, "COMPACT_EVERY", 4)
    wh = Warehouse(tmp_path / "wh")
    for k in range(5):
        _run(wh, k)
    committed = wh.committed_versions()
    original = Warehouse._append_runs
    compactions: list[int] = []
    real_compact = Warehouse._compact

    def compact(self, table, run_id):
        out = real_compact(self, table, run_id)
        if out is not None:
            compactions.append(out)
        return out

    def fail(self, rows, versions):
        if rows[0].get("kind") == "recovery":  # the roll-back's own record goes through
            return original(self, rows, versions)
        raise OSError("disk full")

    monkeypatch.setattr(Warehouse, "_compact", compact)
    monkeypatch.setattr(Warehouse, "_append_runs", fail)
    for k in range(5, 12):
        with pytest.raises(OSError):
            _run(wh, k)
        if compactions:
            break
    assert compactions  # a compaction happened inside the failed commit
    monkeypatch.setattr(Warehouse, "_append_runs", original)
    assert wh.read("quarantine")["n"].sort().to_list() == list(range(5))  # the committed state
    _run(wh, 5)
    assert wh.read("quarantine")["n"].sort().to_list() == list(range(6))
    assert wh.committed_versions()["quarantine"] > committed["quarantine"]
