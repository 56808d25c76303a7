"""Auditor-facing expectation suites (Great Expectations) over the committed warehouse tables.

The suites are declarative JSON files in ``expectations/`` (one per table, GX suite format; the
suite's ``meta.table`` names the table and ``meta.columns`` limits which columns GX is given). They
run after a load or backfill, record one ``audit_checks`` row per expectation, and build GX Data Docs
under ``WAREHOUSE/gx/``. GX's default result format writes failing values into the HTML; here every
validation uses ``SUMMARY`` with no partial values and ``exclude_unexpected_values``, so Data Docs
hold counts only and never a crime reference or a victim's age.

Row-level contract checks are not here: they run on the hot path with pandera (etl/validation.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from etl import audit, progress
from etl.reference import REPO_ROOT
from etl.validation import CheckResult
from etl.warehouse import Warehouse

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "exclude_unexpected_values": True, "include_unexpected_rows": False}


def expectations_dir() -> Path:
    return Path(os.environ.get("ETL_EXPECTATIONS_DIR", REPO_ROOT / "expectations"))


@dataclass
class SuiteOutcome:
    suite: str
    table: str
    checks: list[CheckResult]


@dataclass
class ExpectationsReport:
    run_id: str
    suites: list[SuiteOutcome]
    data_docs: Path | None

    @property
    def failed(self) -> int:
        return sum(1 for s in self.suites for c in s.checks if not c.passed)

    @property
    def total(self) -> int:
        return sum(len(s.checks) for s in self.suites)


def load_suites(folder: Path | None = None) -> list[dict]:
    folder = folder or expectations_dir()
    suites = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "table" not in (data.get("meta") or {}):
            raise ValueError(f"{path}: suite meta.table must name the warehouse table it checks")
        data["_path"] = path
        suites.append(data)
    return suites


def _context(root: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, ctx


def run_expectations(warehouse: str | Path, commit: bool = True) -> ExpectationsReport:
    """Run every suite on the committed tables; record results in audit_checks; build Data Docs."""
    wh = Warehouse(warehouse)
    run_id = audit.new_run_id("expectations")
    started = audit.utcnow()
    gx, ctx = _context(wh.root)
    from great_expectations.core.expectation_suite import ExpectationSuite

    datasource = ctx.data_sources.add_or_update_pandas("warehouse")
    outcomes: list[SuiteOutcome] = []
    for spec in load_suites():
        table = spec["meta"]["table"]
        frame = wh.read(table)
        if frame is None:
            continue
        cols = spec["meta"].get("columns")
        if cols:
            frame = frame.select([c for c in cols if c in frame.columns])
        pdf = frame.to_pandas()
        suite = ctx.suites.add_or_update(ExpectationSuite(name=spec["name"], expectations=spec["expectations"], meta={k: v for k, v in spec["meta"].items() if k != "columns"}))
        try:
            asset = datasource.get_asset(table)
        except LookupError:
            asset = datasource.add_dataframe_asset(table)
        try:
            batch_def = asset.get_batch_definition("whole_table")
        except (KeyError, LookupError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole_table")
        vd = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=f"{table}_vd", data=batch_def, suite=suite))
        checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{table}_checkpoint",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format=RESULT_FORMAT,
            )
        )
        with progress.stage("expectations", table=table, rows=len(pdf)):
            result = checkpoint.run(batch_parameters={"dataframe": pdf})
        checks = []
        for vr in result.run_results.values():
            for r in vr.results:
                cfg = r.expectation_config
                kw = cfg.kwargs
                column = kw.get("column") or ",".join(kw.get("column_list") or [])
                note = (cfg.meta or {}).get("notes")
                checks.append(
                    CheckResult(
                        check=f"{cfg.type}({column})" + _condition_text(kw.get("row_condition")),
                        column=column or None,
                        description=note or cfg.type.replace("_", " "),
                        severity="warning",
                        passed=bool(r.success),
                        failing_rows=int(r.result.get("unexpected_count") or 0),
                        rows_checked=int(r.result.get("element_count") or len(pdf)),
                    )
                )
        outcomes.append(SuiteOutcome(spec["name"], table, checks))
    docs = wh.root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    report = ExpectationsReport(run_id, outcomes, docs if docs.exists() else None)
    if commit and outcomes:
        frame = pl.concat(
            [
                audit.checks_frame(run_id, None, None, [], [(o.table, c) for c in o.checks]).with_columns(
                    pl.lit(f"expectations/{o.suite}.json").alias("contract")
                )
                for o in outcomes
            ]
        )
        row = audit.run_row(run_id, "expectations", None, None, started, [], None, f"{report.total} expectations, {report.failed} not met; Data Docs: {docs}")
        wh.commit(run_id, [], row, frame)
    return report


def _condition_text(condition) -> str:
    if not condition:
        return ""
    if isinstance(condition, dict):  # GX 1.x may hand back a parsed condition
        condition = condition.get("pass_through_filter") or json.dumps(condition, sort_keys=True)
    return f" where {condition}"
