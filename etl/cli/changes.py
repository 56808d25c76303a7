"""``etl changes --since DATE|RUN [--until DATE|RUN]``: every published figure a later run moved.

One reason to change: how the list of changed figures is offered on the command line (its options
and formats). What counts as a change is `etl.trail.changes`. Registered in `etl.cli.app` with
``app.command("changes")(changes_command)``.

Exit codes: 0 listed (also when nothing changed), 2 a bad option, an unknown run id, a time before
the first run, or a warehouse that cannot be read.
"""

from __future__ import annotations

import json
import math
import sys

import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

from etl.trail.changes import Changes

FORMATS = ("table", "json", "csv")
HASH_SHOWN = 16  # characters of a sha256 in the table (json and csv give it whole)


def changes_command(
    since: str = typer.Option(..., "--since", help="From: a run id from audit_runs, or a date or time (YYYY-MM-DD = end of that day, UTC)"),
    until: str | None = typer.Option(None, "--until", help="To: a run id, date or time (default: now)"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help="Warehouse folder (default: as for `etl measures`)"),
    force: str | None = typer.Option(None, "--force", help="Only this force"),
    measure: str | None = typer.Option(None, "--measure", help="Only this measure id"),
    fmt: str = typer.Option("table", "--format", help="table, json or csv"),
    new: bool = typer.Option(False, "--new", help="Also list figures that did not exist at --since (months loaded later)"),
) -> None:
    """Every figure a later run moved: old and new value, the run that changed it, the source files that differed (sha256 before and after)."""
    from etl.cli.app import _fail, _warehouse, out
    from etl.core.warehouse import Warehouse
    from etl.trail.asof import warehouse_as_of
    from etl.trail.changes import changes

    if fmt not in FORMATS:
        _fail(f"--format {fmt}: must be table, json or csv", 2)
    setting = _warehouse(warehouse_option, must_exist=True)
    wh = Warehouse(setting.path)
    start = warehouse_as_of(wh, since, option="--since")  # AsOfError: exit 2, one line
    end = warehouse_as_of(wh, until, option="--until")
    found = changes(start, end, force_id=force, measure_id=measure, include_new=new)
    if fmt == "json":
        sys.stdout.write(json.dumps(as_records(found), indent=1, default=str) + "\n")
        return
    if fmt == "csv":
        from etl.reporting.exports import csv_safe

        sys.stdout.write(csv_safe(flat(found.figures)).write_csv())
        return
    out.print(heading(found), highlight=False, soft_wrap=True)
    if found.figures.height:
        out.print(table(found.figures))


def heading(found: Changes) -> str:
    counts = found.figures.group_by("change").len()
    by_kind = dict(zip(counts["change"].to_list(), counts["len"].to_list()))
    parts = [f"{by_kind.get(k, 0)} {k}" for k in ("changed", "removed", "new") if k in by_kind or k != "new"]
    until = "now" if found.until.is_current else found.until.describe().removeprefix("as of ")
    line = f"figures moved between {found.since.describe().removeprefix('as of ')} and {until}: " + ", ".join(parts)
    if found.new_left_out:
        line += f"; {found.new_left_out} figure(s) new since then not listed (--new lists them)"
    return line


def table(figures: pl.DataFrame) -> Table:
    t = Table(title="Changed figures", title_justify="left")
    for heading_ in (
        "force",
        "measure",
        "period",
        "period end",
        "comparison",
        "change",
        "old",
        "new",
        "status",
        "changed by run",
        "at",
        "source files that differed",
    ):
        t.add_column(heading_, overflow="fold")
    for r in figures.iter_rows(named=True):
        status = r["old_status"] if r["old_status"] == r["new_status"] else f"{r['old_status'] or '-'} -> {r['new_status'] or '-'}"
        files = "\n".join(f"{s['month']} {s['file']}: {_short(s['sha256_before'])} -> {_short(s['sha256_after'])}" for s in r["sources"] or [])
        t.add_row(
            r["force_id"],
            r["measure_id"],
            r["period"],
            r["period_end"],
            r["comparison"] or "-",
            r["change"],
            _number(r["old_value"]),
            _number(r["new_value"]),
            status or "-",
            r["changed_by_run"] or "-",
            f"{r['changed_at']:%Y-%m-%d %H:%M} UTC" if r["changed_at"] else "-",
            escape(files) or "-",
        )
    return t


def as_records(found: Changes) -> dict:
    """The json output: the two points and one object per figure (sources as a list, hashes whole)."""
    figures = [{k: _json_value(v) for k, v in r.items()} for r in found.figures.iter_rows(named=True)]
    return {
        "since": _point(found.since),
        "until": _point(found.until),
        "new_not_listed": found.new_left_out,
        "figures": figures,
    }


def flat(figures: pl.DataFrame) -> pl.DataFrame:
    """One CSV row per figure: the source files as 'month file sha256_before -> sha256_after' joined by '; '."""
    text = pl.format(
        "{} {}: {} -> {}",
        pl.element().struct.field("month"),
        pl.element().struct.field("file"),
        pl.element().struct.field("sha256_before").fill_null("none"),
        pl.element().struct.field("sha256_after").fill_null("none"),
    )
    return figures.with_columns(pl.col("sources").list.eval(text).list.join("; ").alias("sources"))


def _point(point) -> dict:
    return {"run_id": point.run_id, "finished_at": point.finished_at.isoformat() if point.finished_at else None, "described": point.describe()}


def _json_value(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _number(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"


def _short(sha: str | None) -> str:
    return "none" if sha is None else sha[:HASH_SHOWN] + "..."
