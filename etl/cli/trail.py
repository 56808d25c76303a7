"""``etl trace`` and ``etl quarantine``: the auditor's trail of a figure, and the rows a load rejected.

One reason to change: how the trail is offered on the command line (options and output). What is
traced and listed is in `etl.trail.trace` and `etl.trail.quarantine`. Registered in `etl.cli.app` with
``register(app)``.

Exit codes: 0 shown; 2 a figure, month or force that is not in the warehouse (the line says what is),
or a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from etl.cli.settings import CONFIG_FILE, ENV_WAREHOUSE

FORMATS = ("text", "json")
WAREHOUSE_HELP = f"Warehouse folder (default: {ENV_WAREHOUSE}, else `warehouse` in the nearest {CONFIG_FILE}, else ./warehouse)"  # as the other commands


def trace(
    measure: str = typer.Option(..., "--measure", help="Measure id, e.g. nm_nc_total (etl measures --ids lists them)"),
    month: str = typer.Option(..., "--month", help="Period end month of the figure, YYYY-MM"),
    force: str | None = typer.Option(None, "--force", help="The force (default: the only one)"),
    period: str | None = typer.Option(None, "--period", help="Only this period (r12, fytd, cal, month, qtr); default every period"),
    comparison: str | None = typer.Option(None, "--comparison", help="Only this comparison (ye_jun19, sply, prev_r12, sp_2019_20, target)"),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="The warehouse as it stood after a run: a run id from audit_runs, or a date or time (YYYY-MM-DD = end of that day; UTC unless an offset)",
    ),
    fmt: str = typer.Option("text", "--format", help="text or json"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
) -> None:
    """Trace a figure to its sources: definition, counts by month and offence group, source files and hashes, checks, runs."""
    from etl.cli.app import _fail, _month, _warehouse, out
    from etl.core.warehouse import Warehouse
    from etl.trail.asof import warehouse_as_of
    from etl.trail.trace import TraceError, trace_figure

    month = _month(month, "--month")
    if fmt not in FORMATS:
        _fail(f"--format {fmt}: must be text or json", 2)
    setting = _warehouse(warehouse_option, must_exist=True)
    reader = warehouse_as_of(Warehouse(setting.path), as_of)  # AsOfError (an unknown run, a time before the first run): exit 2
    try:
        t = trace_figure(reader, measure, month, force, period=period, comparison=comparison)
    except TraceError as exc:
        _fail(f"{exc} (in the {setting.name})", 2)
    if fmt == "json":
        sys.stdout.write(t.to_json() + "\n")
        return
    out.print(t.to_text(), highlight=False, markup=False, soft_wrap=True, end="")


def quarantine(
    month: str = typer.Option(..., "--month", help="The month loaded, YYYY-MM"),
    force: str | None = typer.Option(None, "--force", help="Only this force"),
    rule: str | None = typer.Option(None, "--rule", help="Only this rule, e.g. victim_age.type"),
    rows: bool = typer.Option(False, "--rows", help="List every rejected row (file, row number, rules, reasons) instead of counts"),
    export: Path | None = typer.Option(None, "--export", help="Also write the rejected rows to this CSV file for the force to correct"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
) -> None:
    """The rows a load rejected in a month: counts by extract, rule and column (or every row), classified columns never shown."""
    from etl.cli.app import _fail, _folder_path, _month, _warehouse, out
    from etl.core.warehouse import Warehouse
    from etl.trail.quarantine import QuarantineError, rejected_rows, write_export

    month = _month(month, "--month")
    if export is not None:
        if export.is_dir():
            _fail(f"--export {export}: is a folder; give a file name, e.g. {export / f'rejected-{month}.csv'}", 2)
        _folder_path(export.parent if str(export.parent) else Path("."), "--export", must_exist=True, named=f"--export {export}: the folder {export.parent}")
    setting = _warehouse(warehouse_option, must_exist=True)
    try:
        r = rejected_rows(Warehouse(setting.path), month, force, rule)
    except QuarantineError as exc:
        _fail(f"{exc} (in the {setting.name})", 2)
    who = f" for {force}" if force else ""
    if r.empty:
        if rule is not None and r.rules_in_month:
            out.print(
                f"no rows were rejected by rule {rule} in {month}{who} (rules that rejected rows: {', '.join(r.rules_in_month)})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        else:
            out.print(f"no rows were rejected in {month}{who}" + (f" by rule {rule}" if rule else ""), highlight=False, markup=False)
        return
    by = f" by rule {rule}" if rule else ""
    files = r.rules.select("file").n_unique()
    out.print(f"{r.row_count} row(s) rejected{by} in {month}{who}, in {files} file(s); classified columns are never shown", highlight=False, markup=False)
    if rows:
        for x in r.by_row().iter_rows(named=True):
            force_part = f"{x['force_id']} " if not force and len(r.forces) > 1 else ""
            out.print(f"  {force_part}{x['file']} row {x['row_number']}: {x['rules']} ({x['reasons']})", highlight=False, markup=False, soft_wrap=True)
    else:
        _print_counts(r.counts(), out)
    if export is not None:
        n = write_export(export, r)
        out.print(f"exported {n} line(s) (one per row and rule) to {export.resolve()}", highlight=False, markup=False)


def _print_counts(counts, out) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Rejected rows by extract, rule and column", title_justify="left")
    for heading in ("extract", "rule", "column", "rows", "files", "rule in words"):
        t.add_column(heading, justify="right" if heading in ("rows", "files") else "left", overflow="fold")
    for c in counts.iter_rows(named=True):
        t.add_row(escape(c["extract"]), escape(c["rule"]), escape(c["column"] or "-"), str(c["rows"]), str(c["files"]), escape(c["description"] or ""))
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``etl trace`` and ``etl quarantine`` to the app."""
    app.command("trace")(trace)
    app.command("quarantine")(quarantine)


__all__ = ["quarantine", "register", "trace"]
