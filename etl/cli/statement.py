"""``etl check-statement FILE [--warehouse W]``: check a published statement's figures, line by line.

One reason to change: how the statement checker is offered on the command line (its options and report).
The checks themselves are in `etl.scrutiny.statement`. Registered in `etl.cli.app` with
``app.command("check-statement")(check_statement)``.

Exit codes: 0 every line follows, 1 some line does not, 2 a bad statement file or warehouse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import typer

from etl.errors import ConfigError
from etl.scrutiny.statement import FAILS, Finding, StatementError, catalogue_ids, check_lines, read_statement, summary

log = logging.getLogger(__name__)

HEADINGS = ("line", "source", "check", "printed", "computed", "verdict", "how")


def check_statement(
    file: Path = typer.Argument(..., help="The statement's figures as printed: a .csv or .yaml table (see contracts/statements/README.md)"),
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        help="Also compare each figure with this warehouse's measures table, where it holds the figure, and check rates printed without a population against its population reference",
    ),
) -> None:
    """Check that a statement's percentages, rates and totals follow from its counts (and match the warehouse)."""
    try:
        lines = read_statement(file)
        table, population = _measures(warehouse) if warehouse is not None else (None, None)
    except StatementError as exc:
        _fail(exc.message)
    catalogue = _catalogue()
    findings = check_lines(lines, table, catalogue, population)
    typer.echo(report(str(file), len(lines), findings))
    if any(f.verdict == FAILS for f in findings):
        raise typer.Exit(1)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _measures(warehouse: Path) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The warehouse's measures table and its population reference (None when it has none)."""
    from etl.core.warehouse import Warehouse

    if not warehouse.is_dir():
        raise StatementError(f"--warehouse {warehouse}", "no such folder")
    wh = Warehouse(warehouse)
    table = wh.read("measures")
    if table is None:
        raise StatementError(
            f"--warehouse {warehouse}", "no measures table (run `etl backfill`, `etl run` or `etl demo` first, or point --warehouse elsewhere)"
        )
    return table, wh.read("population")


def _catalogue() -> dict[str, str]:
    """Measure ids and names to ids; empty (measures given by id only) when the definitions cannot be read."""
    from etl.measures.definitions import load_definitions

    try:
        return catalogue_ids((m.id, m.name) for m in load_definitions().measures)
    except ConfigError:
        log.info("measure definitions unreadable: statement measures are matched by id only")
        return {}


def report(name: str, n_lines: int, findings: Sequence[Finding]) -> str:
    """The plain report: a summary line, one row per check, then the lines that do not follow in words."""
    counts = summary(findings)
    head = (
        f"Statement {name}: {n_lines} lines, {len(findings)} checks: {counts['follows']} follow, "
        f"{counts['does not follow']} do not follow, {counts['not checked']} not checked"
    )
    rows = [HEADINGS] + [(f.line, f.source, f.check, f.printed, f.computed, f.verdict, f.reason) for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADINGS) - 1)]
    body = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    out = [head, "", *(b.rstrip() for b in body)]
    failing = [f for f in findings if f.verdict == FAILS]
    if failing:
        out += ["", "Does not follow:"]
        out += [f"  line {f.line} ({f.source}): {f.check} printed {f.printed}, computed {f.computed}: {f.reason}" for f in failing]
    else:
        out += ["", "Every checked figure follows."]
    return "\n".join(out)


__all__ = ["check_statement", "report"]
