"""What a flow run publishes in the Prefect UI: a markdown summary of the month's loads and a table of
the month's headline measures.

One reason to change: the content of the run's artifacts. Aggregate figures and counts only (the
measures table holds no personal data); the table's text is rounded as on the report pages
(`etl.cli.output.measure_cells`).
"""

from __future__ import annotations

import polars as pl

HEADLINE_FAMILIES = ("national_measure",)
HEADLINE_PERIOD = "r12"
HEADLINE_COMPARISONS = ("ye_jun19", "prev_r12")  # the first found per measure is shown
TABLE_COLUMNS = ("force", "measure", "period", "value", "compared with", "comparison", "change %", "status", "note")


def load_summary(reports: list[dict], title: str) -> str:
    """Markdown: one line per force-month (outcome, rows in / loaded / quarantined, note)."""
    lines = [f"### {title}", "", "| month | force | outcome | rows in | loaded | quarantined | note |", "|---|---|---|---:|---:|---:|---|"]
    for r in reports:
        note = (r.get("message") or "").replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {r['month']} | {r.get('force_id') or ''} | {r['outcome']} | {r.get('rows_in', 0):,} | {r.get('rows_loaded', 0):,} | "
            f"{r.get('rows_quarantined', 0):,} | {note} |"
        )
    failed = sum(r["outcome"] != "loaded" for r in reports)
    lines += ["", f"{len(reports) - failed} loaded, {failed} failed or missing."]
    return "\n".join(lines)


def headline_rows(measures: pl.DataFrame | None, month: str, forces: list[str]) -> list[dict[str, str]]:
    """The month's headline measures (national measures over the rolling 12 months, against the year
    ending June 2019 where the table has it) as display text, one dict per row."""
    from etl.cli.output import measure_cells, measure_texts
    from etl.measures.definitions import load_definitions

    if measures is None or not forces:
        return []
    rows = measures.filter(
        (pl.col("period_end") == month)
        & pl.col("force_id").is_in(forces)
        & (pl.col("family").is_in(HEADLINE_FAMILIES) | pl.col("measure_id").str.starts_with("pu_"))
        & (pl.col("period") == HEADLINE_PERIOD)
        & pl.col("comparison").is_in(HEADLINE_COMPARISONS)
    )
    if rows.height == 0:
        return []
    order = pl.col("comparison").replace_strict(list(HEADLINE_COMPARISONS), list(range(len(HEADLINE_COMPARISONS))), return_dtype=pl.Int32)
    rows = (
        rows.with_columns(order.alias("_order")).sort("force_id", "measure_id", "_order").unique(["force_id", "measure_id"], keep="first", maintain_order=True)
    )
    texts = measure_texts(load_definitions())
    out = []
    for row in rows.iter_rows(named=True):
        cells = measure_cells(row, texts)
        out.append({"force": str(row["force_id"])} | {k: cells.get(k, "") for k in TABLE_COLUMNS if k != "force"})
    return out


def publish(reports: list[dict], month: str, warehouse: str, *, key: str, title: str) -> None:
    """Create the run's artifacts (inside a flow run): the summary and, when any force loaded, the headline table."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from etl.core.warehouse import Warehouse

    create_markdown_artifact(key=key, markdown=load_summary(reports, title), description=title)
    forces = sorted({r["force_id"] for r in reports if r["outcome"] == "loaded" and r.get("force_id")})
    table = headline_rows(Warehouse(warehouse).read("measures"), month, forces) if forces else []
    if table:
        create_table_artifact(table=table, key=f"{key}-headline-measures", description=f"Headline measures for the 12 months to {month}")


__all__ = ["headline_rows", "load_summary", "publish"]
