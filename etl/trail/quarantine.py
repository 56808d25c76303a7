"""The rows a load rejected, for the people who fix them: ``etl quarantine``.

One reason to change: how rejected rows are listed and exported for a force to correct.

`rejected_rows` reads the ``quarantine`` table (one row per rejected row: extract, file, row number, the
rules it failed and, per rule, ``column: what is wrong`` in words) for a month, optionally one force and
one rule, and returns a `Rejected`:

* `Rejected.counts` - rows rejected by extract, rule and column, with the rule's description (from
  the run's ``audit_checks``);
* `Rejected.by_row` - one line per rejected row: file, row number, rules and the plain reasons;
* `Rejected.export_frame` - one row per rejected row and rule: force, month, extract, file, row number,
  rule, column, reason and the row's cells that are safe to show.

The quarantine table is redacted when it is written (`etl.core.validation`): a column its contract
classifies as identifier, personal, sensitive or restricted, or does not know, holds a marker, never its
value. Here the cells are read again with only the columns the contract declares and does not classify
(and no column any contract classifies, `etl.reporting.exports.classified_columns`), so a classified
value is never shown even if a record held one. Nothing is written to the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from etl.core.periods import Month, PeriodError
from etl.errors import ConfigError
from etl.trail.trace import Reader, _spans

# One row per rejected row and rule.
RULE_ROWS_SCHEMA = {
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "extract": pl.Utf8,
    "file": pl.Utf8,
    "row_number": pl.Int64,
    "rule": pl.Utf8,
    "column": pl.Utf8,
    "reason": pl.Utf8,
    "description": pl.Utf8,
    "run_id": pl.Utf8,
}
FIXED_EXPORT = ("force", "month", "extract", "file", "row_number", "rule", "column", "reason")


class QuarantineError(ConfigError, LookupError):
    """A month or force the warehouse has not loaded; the message names what it has (exit 2)."""


@dataclass
class Rejected:
    month: str
    force_id: str | None
    rule: str | None
    forces: list[str]  # forces loaded in the month (all, whatever --force says)
    rules: pl.DataFrame  # RULE_ROWS_SCHEMA, sorted by force, extract, file, row number, rule
    records: pl.DataFrame  # one row per rejected row: force_id, extract, file, row_number, record (redacted JSON)
    rules_in_month: list[str]  # every rule that rejected rows in the month (for the force), before --rule

    @property
    def empty(self) -> bool:
        return self.rules.height == 0

    @property
    def row_count(self) -> int:
        return self.rules.select("force_id", "file", "row_number").unique().height

    def counts(self) -> pl.DataFrame:
        """extract, rule, column, rows, files, description: rows rejected by each rule."""
        return (
            self.rules.group_by("extract", "rule", "column")
            .agg(
                pl.struct("force_id", "file", "row_number").n_unique().alias("rows"),
                pl.col("file").n_unique().alias("files"),
                pl.col("description").drop_nulls().first().alias("description"),
            )
            .sort("extract", "rule", "column", nulls_last=True)
        )

    def by_row(self) -> pl.DataFrame:
        """force_id, extract, file, row_number, rules, reasons: one row per rejected row, in file order."""
        reason = pl.when(pl.col("column").is_not_null()).then(pl.format("{}: {}", pl.col("column"), pl.col("reason"))).otherwise(pl.col("reason"))
        return (
            self.rules.with_columns(reason.alias("_reason"))
            .group_by("force_id", "extract", "file", "row_number", maintain_order=True)
            .agg(pl.col("rule").str.join("; ").alias("rules"), pl.col("_reason").str.join("; ").alias("reasons"))
            .sort("force_id", "extract", "file", "row_number")
        )

    def export_frame(self) -> pl.DataFrame:
        """One row per rejected row and rule with the row's cells that are safe to show (see the module)."""
        fixed = self.rules.select(
            pl.col("force_id").alias("force"), "month", "extract", "file", "row_number", "rule", "column", pl.col("reason").alias("reason")
        )
        parts = []
        for extract in fixed["extract"].unique(maintain_order=True).to_list():
            mine = fixed.filter(pl.col("extract") == extract)
            cells = shown_cells(extract)
            recs = self.records.filter(pl.col("extract") == extract)
            if cells and recs.height:
                decoded = recs.select(
                    pl.col("force_id").alias("force"),
                    "file",
                    "row_number",
                    pl.col("record").str.json_decode(pl.Struct({c: pl.Utf8 for c in cells})).alias("_cells"),
                ).unnest("_cells")
                decoded = decoded.rename({c: f"cell_{c}" for c in cells if c in FIXED_EXPORT})
                mine = mine.join(decoded, on=["force", "file", "row_number"], how="left")
            parts.append(mine)
        frame = pl.concat(parts, how="diagonal") if parts else fixed
        return frame.sort("force", "extract", "file", "row_number", "rule")


def shown_cells(extract: str) -> list[str]:
    """The columns of an extract's file (as headed in the file) whose values may be shown: declared by
    its contract and classified by none (empty when the contract cannot be read: nothing is shown)."""
    from etl.core.contracts import Contract, ContractError, list_contracts, load_contract
    from etl.reporting.exports import classified_columns

    contract: Contract | None
    try:
        contract = load_contract(extract)
    except ContractError:
        try:
            contract = next((c for c in list_contracts() if c.extract == extract), None)
        except ContractError:
            contract = None
    if contract is None:
        return []
    hidden = classified_columns()
    return [c.source_name for c in contract.columns if not c.personal and c.source_name not in hidden and c.name not in hidden]


def rejected_rows(reader: Reader, month: str, force_id: str | None = None, rule: str | None = None) -> Rejected:
    """The rows rejected in a month (one force, one rule when given). `QuarantineError` when the month,
    or the force in that month, was never loaded."""
    try:
        month = str(Month.parse(month))
    except PeriodError as exc:
        raise QuarantineError(f"--month: {exc}") from None
    runs = reader.read("audit_runs")
    loads = runs.filter(pl.col("kind") == "load") if runs is not None else None
    if loads is None or loads.height == 0:
        raise QuarantineError("nothing has been loaded into the warehouse yet (etl run, etl backfill or etl demo load months)")
    months = sorted(loads["month"].drop_nulls().unique().to_list())
    if month not in months:
        raise QuarantineError(f"{month} has not been loaded: the months loaded are {_spans(months)}")
    forces = sorted(loads.filter(pl.col("month") == month)["force_id"].drop_nulls().unique().to_list())
    if force_id is not None and force_id not in forces:
        raise QuarantineError(f"--force {force_id}: {month} was not loaded for this force (forces loaded in {month}: {', '.join(forces)})")
    empty = Rejected(month, force_id, rule, forces, pl.DataFrame(schema=RULE_ROWS_SCHEMA), _empty_records(), [])
    lf = reader.scan("quarantine")
    if lf is None:
        return empty
    lf = lf.filter(pl.col("month") == month)
    if force_id is not None:
        lf = lf.filter(pl.col("force_id") == force_id)
    q = lf.select(
        "force_id", "month", "extract", pl.col("source_file").alias("file"), "row_number", "failed_checks", "failure_detail", "record", "run_id"
    ).collect()
    if q.height == 0:
        return empty
    rules = _rule_rows(q, reader)
    in_month = sorted(rules["rule"].unique().to_list())
    records = q.select("force_id", "extract", "file", "row_number", "record")
    if rule is not None:
        rules = rules.filter(pl.col("rule") == rule)
        records = records.join(rules.select("force_id", "file", "row_number").unique(), on=["force_id", "file", "row_number"], how="semi")
    return Rejected(month, force_id, rule, forces, rules, records, in_month)


def _empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema={"force_id": pl.Utf8, "extract": pl.Utf8, "file": pl.Utf8, "row_number": pl.Int64, "record": pl.Utf8})


def _rule_rows(q: pl.DataFrame, reader: Reader) -> pl.DataFrame:
    """One row per rejected row and rule it failed: the rule's column and description from the run's
    audit_checks, the reason from the row's ``failure_detail`` (``column: what is wrong``, in rule order)."""
    rules = pl.col("failed_checks").str.split("; ")
    details = pl.col("failure_detail").fill_null("").str.split("; ")
    aligned = rules.list.len() == details.list.len()
    exploded = (
        q.select(
            "force_id",
            "month",
            "extract",
            "file",
            "row_number",
            "run_id",
            rules.alias("rule"),
            pl.when(aligned).then(details).otherwise(rules.list.eval(pl.lit("", pl.Utf8))).alias("detail"),
        )
        .explode("rule", "detail")
        .with_columns(
            pl.col("detail").str.splitn(": ", 2).struct.field("field_0").alias("_where"),
            pl.col("detail").str.splitn(": ", 2).struct.field("field_1").alias("_what"),
        )
    )
    checks = reader.scan("audit_checks")
    if checks is not None:
        described = (
            checks.filter(pl.col("run_id").is_in(q["run_id"].unique().implode()))
            .select("run_id", pl.col("source_file").alias("file"), pl.col("check").alias("rule"), pl.col("column").alias("_column"), "description")
            .unique(["run_id", "file", "rule"], keep="first")
            .collect()
        )
        exploded = exploded.join(described, on=["run_id", "file", "rule"], how="left")
    else:
        exploded = exploded.with_columns(pl.lit(None, pl.Utf8).alias("_column"), pl.lit(None, pl.Utf8).alias("description"))
    column = pl.coalesce(pl.col("_column"), pl.when(pl.col("_where") != "row").then(pl.col("_where")))
    reason = pl.when(pl.col("_what").is_not_null()).then(pl.col("_what")).otherwise(pl.coalesce(pl.col("description"), pl.lit("failed this rule")))
    return exploded.select(
        "force_id",
        "month",
        "extract",
        "file",
        pl.col("row_number").cast(pl.Int64),
        "rule",
        column.cast(pl.Utf8).alias("column"),
        reason.cast(pl.Utf8).alias("reason"),
        pl.col("description").cast(pl.Utf8),
        "run_id",
    ).sort("force_id", "extract", "file", "row_number", "rule")


def write_export(path: Path, rejected: Rejected) -> int:
    """Write the rows for the force to correct as CSV (formula injection neutralised, never a classified
    column: `etl.reporting.exports.write_csv`). Returns the number of lines written (rows x rules)."""
    from etl.reporting.exports import write_csv

    frame = rejected.export_frame()
    write_csv(path, frame)
    return frame.height


__all__ = ["QuarantineError", "Rejected", "rejected_rows", "shown_cells", "write_export"]
