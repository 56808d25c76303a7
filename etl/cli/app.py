"""The ``etl`` command line (also ``python -m etl``).

Exit codes: 0 success, 1 data failed its contract, 2 usage or environment error. Bad data gets a
plain message naming the file, row, column and rule, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer._click import Context  # typer vendors click
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from etl.cli.changes import changes_command
from etl.cli.engine import ENGINE_HELP, ENGINES, default_engine
from etl.cli.output import WarningTally, measure_tables, measure_texts
from etl.cli.serve import serve
from etl.cli.settings import CONFIG_FILE, ENV_WAREHOUSE, SettingsError, WarehouseSetting, resolve_warehouse, write_demo_config
from etl.cli.statement import check_statement
from etl.cli.trail import register as register_trail
from etl.core import progress
from etl.core.periods import Month, PeriodError, months_between
from etl.core.storage import Location

if TYPE_CHECKING:
    from prefect.states import State

    from etl.core.contracts import Column, Contract

# Prefect and GX settings for a command-line run; an explicit environment setting wins. Applied when
# the command line runs (`main`, the app callback), never at import.
CLI_ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # the library's own loggers (etl.*: run ids, counts, timings, lock waits, recovery) reach the flow run's logs
    "PREFECT_LOGGING_EXTRA_LOGGERS": "etl",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


CLI_APPLIED: set[str] = set()  # the CLI_ENVIRONMENT settings this process applied (the user had not set them)


def apply_cli_environment() -> None:
    for key, value in CLI_ENVIRONMENT.items():
        if key not in os.environ:
            os.environ[key] = value
            CLI_APPLIED.add(key)


# --------------------------------------------------------------------------------------------------
# Errors: every project error and every OS error becomes one plain line and its exit code, here only.
# 1 = the data failed its contract; 2 = usage or environment error (see the README).

# The exit code comes from the error's class in the one taxonomy, `etl.errors`: DataError 1,
# ConfigError and TransientError 2.

# Rules (ExtractError.reason, FileFailure.rule, LoadFailed.rule) that are about the path, not the data:
# exit 2. ``not_a_file``: a folder, FIFO, socket or device where a file should be (etl.core.extracts);
# ``unreadable_file``: the OS refused to read it (permission, I/O error); ``broken_link``: a symbolic
# link to nothing.
ENVIRONMENT_RULES = frozenset({"not_a_file", "unreadable_file", "broken_link"})


def exit_code_for(kind: type[BaseException]) -> int | None:
    """The exit code of a project error class (None for anything else: a bug keeps its traceback)."""
    from etl.errors import EtlError

    return kind.exit_code if issubclass(kind, EtlError) else None


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """(one plain line, exit code) for a project error or an OS error; None for anything else (a bug)."""
    if isinstance(exc, OSError):
        return _os_error_line(exc), 2
    yaml_line = _yaml_error_line(exc)
    if yaml_line:  # only contract and definition files are YAML: a bad one is exit 2
        return yaml_line, 2
    code = exit_code_for(type(exc))
    if code is None:
        return None
    rule = getattr(exc, "reason", None) or getattr(exc, "rule", None)
    if code == 1 and rule in ENVIRONMENT_RULES:
        code = 2
    message = getattr(exc, "message", None)
    path = getattr(exc, "path", None)
    if message and path and not str(message).startswith(str(path)):
        text = f"{path}: {message}"
    else:
        text = str(message or exc)
    if rule and hasattr(exc, "path") and f"rule {rule}" not in text:  # file rules name the rule
        text += f"  [rule {rule}]"
    return " ".join(text.split()), code


def _yaml_error_line(exc: BaseException) -> str | None:
    try:
        import yaml
    except ImportError:  # pragma: no cover - a dependency
        return None
    if not isinstance(exc, yaml.YAMLError):
        return None
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{mark.name}: line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "a contract or definition file"
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{where}: not valid YAML ({problem})"


def _os_error_line(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if where is not None and exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {reason.lower()}" if where is not None else str(exc) or reason.lower()


def _print_error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _usage_line(exc: UsageError) -> str:
    where = exc.ctx.command_path if exc.ctx is not None else "etl"
    return f"{where}: {exc.format_message().strip().rstrip('.')} (see {where} --help)"


class _Commands(TyperGroup):
    """The app's group: the one place where errors become a plain line and an exit code."""

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any) -> Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            _print_error(" ".join(_usage_line(exc).split()))
            raise typer.Exit(2) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, NoArgsIsHelpError):
            raise
        except UsageError as exc:
            _print_error(" ".join(_usage_line(exc).split()))
            raise typer.Exit(2) from None
        except Exception as exc:
            mapped = error_line(exc)
            if mapped is None:
                raise  # a bug: its traceback is useful
            _print_error(mapped[0])
            raise typer.Exit(mapped[1]) from None


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, help="Validated police performance figures, every month.")
# Piped output is not cut to 80 columns: tables and messages stay whole in logs and CI.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)

AS_OF_HELP = "The warehouse as it stood after a run: a run id from audit_runs, or a date or time (YYYY-MM-DD = end of that day; UTC unless an offset)"
WAREHOUSE_HELP = f"Warehouse folder or s3://bucket/prefix URL (default: {ENV_WAREHOUSE}, else `warehouse` in the nearest {CONFIG_FILE}, else ./warehouse)"
SHOW_WARNINGS = 10  # `etl run` and `backfill` print this many warnings, then say how many more and where they are


@app.callback()
def _cli(
    contracts: Path | None = typer.Option(
        None, "--contracts", help="A folder of contracts and definitions to use instead of the packaged ones (also ETL_CONTRACTS_DIR)"
    ),
    expectations: Path | None = typer.Option(
        None, "--expectations", help="A folder of expectation suites to use instead of the packaged ones (also ETL_EXPECTATIONS_DIR)"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage (run ids, counts, timings) to standard error"),
) -> None:
    """Validated police performance figures, every month."""
    apply_cli_environment()
    for option, folder, variable in (("--contracts", contracts, "ETL_CONTRACTS_DIR"), ("--expectations", expectations, "ETL_EXPECTATIONS_DIR")):
        if folder is not None:
            if not folder.is_dir():
                _fail(f"{option} {folder}: is {_kind(folder)}, not a folder", 2)
            os.environ[variable] = str(folder.resolve())
    if verbose:
        handler = logging.StreamHandler()  # the library's own loggers only (not the libraries' chatter)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        library = logging.getLogger("etl")
        library.setLevel(logging.INFO)
        library.addHandler(handler)


def _fail(message: str, code: int) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def _kind(path: Path) -> str:
    """What is at PATH, in words (for 'X: is a folder, not a file')."""
    from etl.core.extracts import kind_of

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if path.is_symlink() else "missing"
    except NotADirectoryError:  # a parent is a file: reported by the caller's parent check
        return "missing"
    except OSError as exc:
        return f"unreadable ({(exc.strerror or type(exc).__name__).lower()})"
    return kind_of(mode)


def _folder_path(path: Path, option: str, *, must_exist: bool, hint: str = "", named: str | None = None) -> Path:
    """A folder option checked before anything is read: it (or, when it may be created, its nearest
    existing parent) must be a folder. ``named``: how errors name it (default 'OPTION PATH')."""
    name = named or f"{option} {path}"
    kind = _kind(path)
    if kind == "missing":
        if must_exist:
            _fail(f"{name}: no such folder{'' if named else hint}", 2)
        for parent in path.parents:
            parent_kind = _kind(parent)
            if parent_kind == "missing":
                continue
            if parent_kind != "a folder":
                _fail(f"{name}: cannot be created, {parent} is {parent_kind}", 2)
            break
    elif kind.startswith("unreadable"):
        _fail(f"{name}: cannot be read: {kind.removeprefix('unreadable ').strip('()')}", 2)
    elif kind != "a folder":
        _fail(f"{name}: is {kind}, not a folder{'' if named else hint}", 2)
    return path


def _warehouse(option: str | None, *, must_exist: bool = False) -> WarehouseSetting:
    """The warehouse setting (`etl.cli.settings`: --warehouse, ETL_WAREHOUSE, etl.toml, ./warehouse), its folder checked
    (a warehouse on an object store is checked when it is opened)."""
    setting = resolve_warehouse(option)
    if isinstance(setting.path, str):
        return setting
    if must_exist and _kind(setting.path) == "missing":
        _fail(setting.missing("no such folder"), 2)
    _folder_path(setting.path, "warehouse", must_exist=must_exist, named=setting.name)
    return setting


def _month(text: str, option: str) -> str:
    try:
        return str(Month.parse(text))
    except PeriodError as exc:
        _fail(f"{option}: {exc}", 2)


def _source(source: str | Path) -> str:
    """A source folder checked before anything is read, or a landing URL (file://, s3://) as given: the
    landing zone is checked when it is opened (`etl.loading.landing`)."""
    from etl.loading.landing import is_landing_url

    if is_landing_url(str(source)):
        return str(source)
    _folder_path(Path(source), "--source", must_exist=True, hint=" (expected SOURCE/YYYY-MM/recorded_crime.csv)")
    return str(source)


SOURCE_HELP = (
    "Source folder (SOURCE/YYYY-MM/<extract>.csv, SOURCE/<force>/YYYY-MM/<extract>.csv or data.police.uk files), "
    "or a landing zone URL (file:///..., s3://bucket/prefix): its files are copied to the warehouse's raw area first (README: Landing zone)"
)


def _engine(engine: str | None, *, demo: bool = False) -> str:
    """The engine given, else the default (`etl.cli.engine`), checked."""
    engine = engine or default_engine(demo=demo)
    if engine not in ENGINES:
        _fail(f"--engine must be one of {', '.join(ENGINES)}", 2)
    return engine


def _month_progress(total: int, label: str, tally: WarningTally):
    """A progress bar over months; each month's warnings are counted in ``tally`` and the first few printed."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False)
    task = bar.add_task(label, total=total)

    def on_event(event: str, data: dict) -> None:
        if event == "month":
            r = data["report"]
            if r.outcome != "loaded":
                bar.console.print(f"[yellow]{r.month} {r.outcome}:[/] {escape(r.message or '')}", highlight=False, soft_wrap=True)
            for w in r.warnings or []:
                if tally.add(w):
                    bar.console.print(f"[yellow]{r.month} warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
            bar.update(task, advance=1, description=f"{label} {r.month}")
        elif event == "generated":
            bar.update(task, advance=1, description=f"{label} {data['month']}")

    return bar, on_event


def _guard_prefect() -> None:
    """Before a Prefect flow: Prefect's temporary API server (started when PREFECT_API_URL is unset)
    ends with this process, and a project error in a flow is printed once, as the plain line, not
    also as Prefect's logged traceback."""
    from etl.flows.monthly import guard_ephemeral_server

    guard_ephemeral_server()
    loggers = [logging.getLogger()] + [v for k, v in logging.Logger.manager.loggerDict.items() if k.startswith("prefect") and isinstance(v, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not any(isinstance(f, _MappedErrorFilter) for f in handler.filters):
                handler.addFilter(_MappedErrorFilter())


class _MappedErrorFilter:
    """Drops Prefect's console records about an exception the command line reports as one line (a
    project or OS error); records about anything else (a bug) are kept with their traceback."""

    seen: set[str] = set()  # class names of mapped errors seen in this process

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            if error_line(exc) is None:
                return True
            self.seen.add(type(exc).__name__)
            return False
        if record.levelno >= 40:  # "Finished in state Failed('... exception WarehouseBusy: ...')"
            text = record.getMessage()
            names = self.seen | _project_error_names()
            return not any(f"exception {name}" in text or f"{name}(" in text for name in names)
        return True


def _project_error_names() -> set[str]:
    """Class names of every project error (the taxonomy's subclasses, loaded so far)."""
    from etl.errors import EtlError

    names: set[str] = set()
    todo: list[type] = [EtlError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return names


def _month_report(data: dict):
    """A flow's month report (a dict, with the failed rule when there is one) as a `MonthReport`."""
    from dataclasses import fields

    from etl.loading.pipeline import MonthReport

    return MonthReport(**{f.name: data[f.name] for f in fields(MonthReport) if f.name in data})


WORKERS_HELP = "Read and validate each force's files on a local Dask cluster of N worker processes (default: ETL_DASK_WORKERS, else 0: one process)"
DASK_ADDRESS_HELP = "Use the Dask scheduler at this address (tcp://host:8786) instead of a local cluster (default: ETL_DASK_ADDRESS)"


def _run_backfill(
    source: str | Path,
    first: str,
    last: str,
    warehouse: Path | str,
    force_id: str | None,
    engine: str,
    tally: WarningTally,
    workers: int | None = None,
    dask_address: str | None = None,
) -> dict:
    from etl.loading import parallel, pipeline
    from etl.loading.landing import is_landing_url

    n = len(months_between(first, last))
    bar, on_event = _month_progress(n, "loading", tally)
    with bar, progress.listening(on_event):
        if engine == "prefect":
            from etl.flows.monthly import backfill as backfill_flow

            _guard_prefect()
            result = backfill_flow(str(source), first, last, str(warehouse), force_id, workers=workers, dask_address=dask_address)
            months = [_month_report(m) for m in result["months"]]
            return {"months": months, "measure_rows": result["measure_rows"], "expectations": result["expectations"]}

        def emit(rep):
            progress.emit("month", report=rep)

        if parallel.wanted(workers, dask_address) and not is_landing_url(source):  # each batch's force files on Dask
            with parallel.dask_client(workers, dask_address) as on_dask:
                rep = parallel.backfill(source, first, last, warehouse, on_dask, force_id=force_id, on_month=emit)
        else:
            rep = pipeline.backfill(source, first, last, warehouse, force_id=force_id, on_month=emit)
    return {"months": rep.months, "measure_rows": rep.measure_rows, "expectations": _expectations(warehouse)}


def _table_location(warehouse: Path | str, table: str) -> str:
    """Where a warehouse table is (its folder, or its URL on an object store)."""
    return Location.of(warehouse).child(table)


def _expectations(warehouse: Path | str) -> dict:
    from etl.quality.expectations import run_expectations

    report = run_expectations(warehouse)
    return {"run_id": report.run_id, "total": report.total, "failed": report.failed, "data_docs": str(report.data_docs) if report.data_docs else None}


def _print_expectations(summary: dict | None) -> None:
    if not summary:
        return
    colour = "green" if summary["failed"] == 0 else "yellow"
    out.print(
        f"[{colour}]expectations:[/] {summary['total'] - summary['failed']}/{summary['total']} met"
        + (f"; Data Docs: {summary['data_docs']}" if summary.get("data_docs") else ""),
        highlight=False,
    )


def _where_warnings_are(warehouse: Path | str, index: Path | None = None) -> str:
    """Where a run's warnings can be read: the audit_checks table and the report's data-quality section."""
    page = f"the Data quality section of {index}" if index is not None else "the Data quality section of the `etl report` index page"
    return f"{page} or the audit_checks table ({_table_location(warehouse, 'audit_checks')})"


def _print_warning_summary(tally: WarningTally, warehouse: Path | str, index: Path | None = None) -> None:
    line = tally.summary(_where_warnings_are(warehouse, index))
    if line:
        out.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)


def _print_month_table(months) -> None:
    t = Table(title="Months loaded", show_lines=False)
    for col in ("month", "force", "outcome", "rows in", "loaded", "quarantined", "warnings"):
        t.add_column(col, justify="right" if col not in ("month", "force", "outcome") else "left")
    for r in months:
        style = "" if r.outcome == "loaded" else "yellow"
        t.add_row(r.month, r.force_id or "-", r.outcome, str(r.rows_in), str(r.rows_loaded), str(r.rows_quarantined), str(len(r.warnings or [])), style=style)
    out.print(t)


@app.command()
def run(
    source: str = typer.Option(..., "--source", help=SOURCE_HELP),
    month: str = typer.Option(..., "--month", help="Month to load, YYYY-MM"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
    force: str | None = typer.Option(None, "--force", help="Force id (default: taken from the extract's force_id column)"),
    engine: str | None = typer.Option(None, "--engine", help=ENGINE_HELP, show_default=False),
    workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP, show_default=False),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_ADDRESS_HELP, show_default=False),
) -> None:
    """The monthly load of one month, then the force's measures."""

    month = _month(month, "--month")
    engine = _engine(engine)
    source = _source(source)
    warehouse = _warehouse(warehouse_option).path
    if engine == "prefect":
        from etl.flows.monthly import monthly_load

        _guard_prefect()
        # Prefect types a flow called with return_state=True as possibly awaitable; this flow is
        # synchronous, so the call returns the State itself.
        state = cast("State", monthly_load(str(source), month, str(warehouse), force, workers=workers, dask_address=dask_address, return_state=True))
        if state.is_failed():
            from etl.flows.monthly import MonthFailed

            cause = state.result(raise_on_failure=False)
            if isinstance(cause, BaseException) and not isinstance(cause, MonthFailed):
                raise cause  # a project error becomes its plain line and exit code (`_Commands`)
            not_loaded = [x for x in cause.reports if x.get("outcome") != "loaded"] if isinstance(cause, MonthFailed) else []
            path_only = not_loaded and all(x.get("rule") in ENVIRONMENT_RULES for x in not_loaded)
            _fail(state.message or f"the monthly load of {month} failed", 2 if path_only else 1)
        reports = [_month_report(r) for r in state.result()]
    else:
        from etl.loading import parallel
        from etl.loading.landing import is_landing_url, load_month_from

        if parallel.wanted(workers, dask_address):  # each force's files on Dask (a landed month's too)
            with parallel.dask_client(workers, dask_address) as on_dask:
                if is_landing_url(source):
                    reports = load_month_from(source, month, warehouse, force_id=force, load=parallel.folder_loader(on_dask))
                else:
                    reports = parallel.load_source_month(source, month, warehouse, on_dask, force_id=force)
        else:
            reports = load_month_from(source, month, warehouse, force_id=force)  # LoadFailed: exit 1 (or 2), one line
        summary = _expectations(warehouse)
        for r in reports:
            r.expectations = summary
    failed = [r for r in reports if r.outcome != "loaded"]
    reports = [r for r in reports if r.outcome == "loaded"]
    tally = WarningTally(SHOW_WARNINGS)
    for rep in reports:
        out.print(
            f"[green]loaded[/] {rep.month} for {rep.force_id}: {rep.rows_in} rows in = {rep.rows_loaded} loaded + "
            f"{rep.rows_quarantined} quarantined (run {rep.run_id})",
            highlight=False,
        )
        if rep.message:
            out.print(f"[yellow]note:[/] {escape(rep.message)}", highlight=False)
        for w in rep.warnings or []:
            if tally.add(w):
                out.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
        if rep.rows_quarantined:
            out.print(f"quarantined rows are in {_table_location(warehouse, 'quarantine')} with their row numbers and failed rules", highlight=False)
    _print_warning_summary(tally, warehouse)
    _print_expectations(reports[0].expectations if reports else None)
    if failed:  # with several forces in the source, the others were loaded
        for r in failed:
            err.print(f"[red]{r.month} {r.force_id or ''} {r.outcome}:[/] {escape(r.message or '')}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def backfill(
    source: str = typer.Option(..., "--source", help=SOURCE_HELP),
    first: str = typer.Option(..., "--from", help="First month, YYYY-MM"),
    last: str = typer.Option(..., "--to", help="Last month, YYYY-MM"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
    force: str | None = typer.Option(None, "--force", help="Force id (default: from the extracts)"),
    engine: str | None = typer.Option(None, "--engine", help=ENGINE_HELP, show_default=False),
    workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP, show_default=False),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_ADDRESS_HELP, show_default=False),
) -> None:
    """Load every month in order (a failed month does not stop the others), then compute measures."""
    first, last = _month(first, "--from"), _month(last, "--to")
    engine = _engine(engine)
    months_between(first, last)  # PeriodError (--from after --to): exit 2
    source = _source(source)
    setting = _warehouse(warehouse_option)
    warehouse = setting.path
    tally = WarningTally(SHOW_WARNINGS)
    result = _run_backfill(source, first, last, warehouse, force, engine, tally, workers, dask_address)
    _print_month_table(result["months"])
    bad = [m for m in result["months"] if m.outcome != "loaded"]
    out.print(f"{result['measure_rows']} measure rows computed; {setting.name}", highlight=False)
    _print_warning_summary(tally, warehouse)
    _print_expectations(result.get("expectations"))
    if bad:
        for m in bad:
            err.print(f"[red]{m.month} {m.outcome}:[/] {escape(m.message or '')}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def validate(
    file: Path = typer.Argument(..., help="The CSV file to check"),
    contract: str = typer.Option(..., "--contract", help="Contract name, e.g. recorded_crime"),
    month: str | None = typer.Option(None, "--month", help="The extract's month (default: the file's folder name if it is YYYY-MM)"),
    force: str | None = typer.Option(None, "--force", help="Force id (default: from the file)"),
    show: int = typer.Option(20, "--show", help="How many failing rows to list"),
) -> None:
    """Check one file against a contract and print a readable report. Writes nothing."""
    from etl.core.contracts import load_contract
    from etl.core.extracts import read_extract
    from etl.core.validation import ValidationContext, describe_failure_rows, validate_extract

    c = load_contract(contract)  # ContractError: exit 2
    kind = _kind(file)
    if kind == "missing":
        _fail(f"{file}: file not found", 2)
    if kind.startswith("unreadable"):
        _fail(f"{file}: cannot be read: {kind.removeprefix('unreadable ').strip('()')}", 2)
    if kind != "a file":
        _fail(f"{file}: is {kind}, not a file", 2)
    m = None
    if month:
        m = Month.parse(_month(month, "--month"))
    elif c.month_column:
        for guess in (file.parent.name, file.name[:7]):  # SOURCE/YYYY-MM/x.csv or YYYY-MM-force-street.csv
            try:
                m = Month.parse(guess)
                break
            except PeriodError:
                m = None
    # ExtractError / FileFailure (the file fails a file rule): exit 1, one line naming the file and rule
    result = validate_extract(c, read_extract(file), ValidationContext(month=m, force_id=force), source_file=str(file))
    out.print(f"[bold]{file}[/] against contract {c.id} v{c.version} ({result.encoding}, sha256 {result.sha256[:12]}...)", highlight=False)
    if m is None and c.month_column:
        out.print(f"[yellow]month not checked:[/] pass --month YYYY-MM to check {c.month_column} is inside the extract's month", highlight=False)
    t = Table(title="Checks")
    for col in ("check", "severity", "result", "failing rows"):
        t.add_column(col)
    for ch in result.checks:
        t.add_row(
            ch.check,
            ch.severity,
            "pass" if ch.passed else "FAIL",
            str(ch.failing_rows),
            style="" if ch.passed else ("yellow" if ch.severity == "warning" else "red"),
        )
    out.print(t)
    out.print(f"{result.rows_in} rows: {result.rows_loaded} would load, {result.rows_quarantined} would be quarantined", highlight=False)
    for line in describe_failure_rows(result, show):
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    if result.rows_quarantined:
        raise typer.Exit(1)


def _csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV formula injection neutralised (`etl.reporting.exports.csv_safe`) for a CSV meant for spreadsheets."""
    from etl.reporting.exports import csv_safe

    return csv_safe(frame)


def _json_value(v):
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return None
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
    return v


@app.command()
def measures(
    month: str = typer.Option(..., "--month", help="Period end month, YYYY-MM"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
    fmt: str = typer.Option("table", "--format", help="table, json or csv"),
    force: str | None = typer.Option(None, "--force", help="Only this force"),
    measure: str | None = typer.Option(None, "--measure", help="Only this measure id"),
    ids: bool = typer.Option(False, "--ids", help="Table: each measure's id under its name"),
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
) -> None:
    """Print the measures table for a period end month (table: rounded as on the report pages; json, csv: as stored)."""
    from etl.core.warehouse import Warehouse
    from etl.trail.asof import warehouse_as_of

    month = _month(month, "--month")
    if fmt not in ("table", "json", "csv"):
        _fail(f"--format {fmt}: must be table, json or csv", 2)
    setting = _warehouse(warehouse_option, must_exist=True)
    reader = warehouse_as_of(Warehouse(setting.path), as_of)  # AsOfError (unknown run, before the first run): exit 2
    table = reader.read("measures")
    if table is None:
        _fail(setting.missing("no measures table" + ("" if reader.is_current else f" {reader.describe()}")), 2)
    rows = table.filter(pl.col("period_end") == month)
    if force:
        rows = rows.filter(pl.col("force_id") == force)
    if measure:
        rows = rows.filter(pl.col("measure_id") == measure)
    rows = rows.sort(["force_id", "family", "measure_id", "period", "comparison"])
    if fmt == "json":
        sys.stdout.write(json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows.iter_rows(named=True)], indent=1) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(_csv_safe(rows).write_csv())
        return
    if rows.height == 0:
        months = table.select(pl.col("period_end").min().alias("a"), pl.col("period_end").max().alias("b")).row(0)
        out.print(f"no measures for {month} in the {setting.name}: its period ends are {months[0]} to {months[1]}", highlight=False)
        return
    print_measures(rows, title=f"Measures for the period ending {month}" + ("" if reader.is_current else f", {reader.describe()}"), ids=ids)


@app.command()
def report(
    month: str = typer.Option(..., "--month", help="Period end month, YYYY-MM"),
    warehouse_option: str | None = typer.Option(None, "--warehouse", help=WAREHOUSE_HELP),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Where to write the HTML and CSV"),
    force: str | None = typer.Option(None, "--force", help="The force (default: the only one, or the first)"),
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Mark scorecard figures restated since this run id or time (default: since the report last written to --out for this warehouse and force)",
    ),
) -> None:
    """Scorecard (like the Plan KPI scorecard), national measures page with trend charts, data quality, CSV."""
    month = _month(month, "--month")
    setting = _warehouse(warehouse_option, must_exist=True)
    _folder_path(out_dir, "--out", must_exist=False)
    paths = _write_report(setting, month, out_dir, force, as_of, since)
    out.print(f"report for {month}{'' if as_of is None else f' (figures as of {as_of})'}: {paths.index.resolve()}", highlight=False)
    for p in [paths.scorecard, paths.national, paths.quality, *paths.csv, *paths.quality_csv, paths.workbook]:
        out.print(f"  {p.resolve()}", highlight=False)


def _write_report(setting: WarehouseSetting, month: str, out_dir: Path, force: str | None, as_of: str | None = None, since: str | None = None):
    """The report from the warehouse as it stands, or as it stood at ``as_of`` (a run id or time: `etl.trail.asof`);
    figures restated since ``since`` (default: the state the last report in ``out_dir`` showed, `etl.reporting.manifest`) are marked."""
    from etl.core.warehouse import Warehouse
    from etl.errors import EtlError
    from etl.reporting.manifest import read_manifest, write_manifest
    from etl.reporting.reports import write_report
    from etl.trail.asof import warehouse_as_of
    from etl.trail.changes import restated

    wh = warehouse_as_of(Warehouse(setting.path), as_of)  # reads every table as it stood (AsOfError: exit 2)
    table = wh.read("measures")
    if table is None:
        _fail(setting.missing("no measures table" + ("" if wh.is_current else f" {wh.describe()}")), 2)
    forces = sorted(table["force_id"].unique().to_list())
    if force is None:
        force = forces[0]
    elif force not in forces:
        _fail(f"--force {force}: not in the {setting.name} (forces: {', '.join(forces)})", 2)
    if table.filter((pl.col("period_end") == month) & (pl.col("force_id") == force)).height == 0:
        _fail(f"no measures for {force} ending {month} in the {setting.name}" + ("" if wh.is_current else f" {wh.describe()}"), 2)
    read_at = wh.run_id if not wh.is_current else (wh.warehouse.latest_run() or {}).get("run_id")
    since_point = None
    if since is not None:
        since_point = warehouse_as_of(Warehouse(setting.path), since, option="--since")
    else:
        last = read_manifest(out_dir)
        shown = setting.path if isinstance(setting.path, str) else str(setting.path.resolve())
        same = last is not None and last.warehouse == shown and last.force_id == force and last.read_at_run
        if same and last is not None and last.read_at_run != read_at:
            try:
                since_point = warehouse_as_of(Warehouse(setting.path), last.read_at_run)
            except EtlError:  # the run the last report showed is gone from the record: nothing to compare with
                since_point = None
    as_of_text = None if wh.is_current else wh.describe().removeprefix("as of ")  # the pages say "as of run ... (finished ...)"
    paths = write_report(
        table.filter(pl.col("force_id") == force),
        month,
        out_dir,
        spc=wh.read("spc"),
        force_id=force,
        data_quality=wh.read("audit_checks"),
        audit_runs=wh.read("audit_runs"),
        quarantine=wh.read("quarantine"),
        data_docs=Warehouse(setting.path).local_dir("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html",
        restated=restated(wh, since_point, force, month) if since_point is not None else None,
        restated_since=since_point.describe().removeprefix("as of ") if since_point is not None else None,
        as_of=as_of_text,
    )
    write_manifest(out_dir, setting.path, force, month, read_at)
    return paths


def print_measures(rows: pl.DataFrame, title: str, *, ids: bool = False) -> None:
    """Readable tables of measures rows (`etl.cli.output`: names, units, values rounded as on the pages, notes)."""
    texts = {}
    try:
        from etl.measures.engine import load_definitions

        texts = measure_texts(load_definitions())
    except Exception as exc:  # display only: a broken definitions file still lets the figures be read
        mapped = error_line(exc)
        if mapped is None:
            raise
        err.print(f"[yellow]measure names not shown:[/] {escape(mapped[0])}", highlight=False, soft_wrap=True)
    for table in measure_tables(rows, texts, ids=ids or not texts, title=title):
        out.print(table)


@app.command()
def demo(
    dir: Path = typer.Option(Path("demo"), "--dir", help="Where to write the demo source and warehouse"),
    first: str = typer.Option("2018-07", "--from", help="First month of synthetic extracts"),
    last: str | None = typer.Option(None, "--to", help="Last month (default: last complete month)"),
    size: str = typer.Option("small", "--size", help="small (~6k crimes a month: under a minute) or full (a large metropolitan force, ~25k a month)"),
    crimes_per_month: int | None = typer.Option(None, "--crimes-per-month", help="Average recorded crimes a month (default: the size's)", show_default=False),
    bad_rows: int = typer.Option(3, "--bad-rows", help="Deliberately invalid rows per month, to show quarantine"),
    extracts_scale: float | None = typer.Option(
        None, "--extracts-scale", help="Volume of the other extracts (calls, incidents, ...) vs a large force (default: the size's)", show_default=False
    ),
    engine: str | None = typer.Option(None, "--engine", help="prefect (default; ETL_ENGINE overrides) or local", show_default=False),
) -> None:
    """Make synthetic extracts for a demo force, run the pipeline over them and show the latest measures."""
    from etl.core.warehouse import Warehouse
    from etl.demo.extracts import DEMO_SIZES
    from etl.demo.generator import EARLIEST_MONTH, generate_demo, prepare_demo_dir

    engine = _engine(engine, demo=True)
    if size not in DEMO_SIZES:
        _fail(f"--size {size}: choose one of {', '.join(DEMO_SIZES)}", 2)
    crimes_per_month = DEMO_SIZES[size].crimes_per_month if crimes_per_month is None else crimes_per_month
    extracts_scale = DEMO_SIZES[size].extracts_scale if extracts_scale is None else extracts_scale
    first = _month(first, "--from")
    if last:
        last = _month(last, "--to")
    else:
        import datetime

        today = datetime.date.today()
        last = str(Month.of(today.year, today.month) - 1)
    total = len(months_between(first, last))  # PeriodError (--from after --to): exit 2
    if first < EARLIEST_MONTH:
        _fail(f"--from {first}: the demo starts in {EARLIEST_MONTH} or later (its offence codes start in April 2017)", 2)
    if crimes_per_month <= 0:
        _fail("--crimes-per-month must be a positive whole number", 2)
    if bad_rows < 0:
        _fail("--bad-rows must be 0 or more", 2)
    if not extracts_scale >= 0:
        _fail("--extracts-scale must be 0 or more", 2)
    # Only a folder the demo created (or a new or empty one) is used; anything else: exit 2, nothing deleted.
    paths = prepare_demo_dir(dir)
    source, warehouse = paths.source, paths.warehouse
    gen_bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
    with gen_bar:
        task = gen_bar.add_task("generating", total=total)
        summary = generate_demo(
            source,
            first_month=first,
            last_month=last,
            crimes_per_month=crimes_per_month,
            bad_rows_per_month=bad_rows,
            on_month=lambda m: gen_bar.update(task, advance=1, description=f"generating {m}"),
        )
        from etl.demo.extracts import generate_extracts

        task2 = gen_bar.add_task("other extracts", total=None)
        others = generate_extracts(
            source,
            [str(m) for m in months_between(first, last)],
            force_id=summary.force_id,
            scale=extracts_scale,
            bad_rows_per_month=min(bad_rows, 1),
        )
        gen_bar.update(task2, total=1, completed=1)
    out.print(
        f"synthetic extracts for [bold]{summary.force_id}[/]: {summary.months} months {summary.first_month}..{summary.last_month}, "
        f"{summary.recorded_crimes:,} crimes, {summary.outcomes:,} outcomes, {summary.injected_bad_rows} deliberately bad rows; "
        f"{len(others)} other extracts ({sum(others.values()):,} rows) -> {source}",
        highlight=False,
    )
    tally = WarningTally(show=0)  # the demo's warnings are about its own synthetic data: counted, not printed
    result = _run_backfill(source, summary.first_month, summary.last_month, warehouse, None, engine, tally)
    months = result["months"]
    loaded = [m for m in months if m.outcome == "loaded"]
    out.print(
        f"{len(loaded)}/{len(months)} months loaded: {sum(m.rows_in for m in months):,} rows in = {sum(m.rows_loaded for m in months):,} loaded + "
        f"{sum(m.rows_quarantined for m in months):,} quarantined",
        highlight=False,
    )
    table = Warehouse(warehouse).read("measures")
    if not loaded or table is None:
        _fail(f"no month of the demo loaded (see the messages above); the source is in {source}", 1)
    latest = table.filter(
        (pl.col("period_end") == summary.last_month) & (pl.col("family") == "national_measure") & pl.col("period").is_in(["r12", "cal"])
    ).sort(["measure_id", "period", "comparison"])
    print_measures(latest, title=f"National measures, {summary.force_id}, period ending {summary.last_month}")
    _print_expectations(result.get("expectations"))
    demo_path = Path(os.path.abspath(warehouse))
    demo_setting = WarehouseSetting(demo_path, "demo")
    paths = _write_report(demo_setting, summary.last_month, dir / "reports", summary.force_id)
    _print_warning_summary(tally, demo_path, paths.index.resolve())
    out.print(f"\nreports: {paths.index.resolve()} (scorecard, national measures, data quality, CSV)", highlight=False)
    out.print(f"warehouse (Delta tables): {demo_path}", highlight=False)
    main_tables = ("recorded_crime", "crime_outcomes", "quarantine", "audit_runs", "audit_checks", "measures", "spc")
    for name in main_tables:
        out.print(f"  {name:16s} {demo_path / name}", highlight=False)
    more_tables = sorted(t.name for t in demo_path.iterdir() if t.name not in main_tables and (t / "_delta_log").is_dir())
    if more_tables:
        out.print(f"  and {len(more_tables)} more: {', '.join(more_tables)}", highlight=False, soft_wrap=True)
    out.print(f"source extracts: {source.resolve()}", highlight=False)
    _print_demo_next_steps(demo_path, summary.last_month)
    if len(loaded) != len(months):
        raise typer.Exit(1)


def _print_demo_next_steps(warehouse: Path, month: str) -> None:
    """Make the demo's warehouse the one the next commands use (an etl.toml in the current folder,
    never over a user's own), then print the exact next commands."""
    import shlex

    here = Path.cwd()
    written = write_demo_config(here, warehouse)
    try:
        current: WarehouseSetting | None = resolve_warehouse(None)
    except SettingsError as exc:  # a user's etl.toml that cannot be read: the commands name the warehouse
        err.print(f"[yellow]note:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        current = None
    if current is not None and current.path == warehouse:
        option = ""
        if written is not None:
            out.print(f"\n{written} now points the etl commands run in this folder at this warehouse.", highlight=False)
    else:
        try:
            shown = warehouse.relative_to(here).as_posix()
        except ValueError:
            shown = str(warehouse)
        option = f" --warehouse {shlex.quote(shown)}"
        mine = here / CONFIG_FILE
        kept = f" ({mine} was not written by the demo, so it was left as it is)" if written is None and mine.exists() else ""
        now = f"would use the {current.name}" if current is not None else f"cannot read {mine}"
        out.print(f"\nthe next commands here {now}{kept}; to use the demo's warehouse:", highlight=False)
    out.print("next:", highlight=False)
    for command in (f"etl measures --month {month}{option}", f"etl report --month {month}{option}"):
        out.print(f"  {command}", highlight=False, markup=False)


contracts_app = typer.Typer(no_args_is_help=True, help="Read and check the data contracts in contracts/.")
app.add_typer(contracts_app, name="contracts")
app.command("check-statement")(check_statement)
app.command("serve")(serve)
register_trail(app)  # etl trace, etl quarantine
app.command("changes")(changes_command)


@contracts_app.command("list")
def contracts_list() -> None:
    """Every contract: id, version, extract file, month column."""
    from etl.core.contracts import list_contracts

    t = Table(title="Contracts")
    for col in ("contract", "version", "profile", "file", "month column", "columns"):
        t.add_column(col)
    for c in list_contracts():
        t.add_row(c.id, c.version, c.profile, _file_pattern(c.file_name), c.month_column or "-", str(len(c.columns)))
    out.print(t)


@contracts_app.command("show")
def contracts_show(name: str = typer.Argument(..., help="Contract name, e.g. recorded_crime")) -> None:
    """A readable rendering of one contract: columns, rules, file rules and checks across months."""
    from etl.core.contracts import load_contract

    c = load_contract(name)  # ContractError: exit 2
    _print_contract_heading(c)
    t = Table(title="Columns", title_justify="left")
    for heading in ("column", "in the file", "type", "required", "rules", "description"):
        t.add_column(heading, overflow="fold")
    for col in c.columns:
        t.add_row(col.name, col.source_name, col.logical_type, "yes" if col.required else "no", escape("; ".join(_column_rules(col))), escape(col.description))
    out.print(t)
    out.print("[bold]Row rules across columns[/]")
    for r in c.rules:
        out.print(f"  {r.id}: {escape(r.description)}", highlight=False)
    for k in c.unique_keys:
        out.print(f"  {k.id}: {escape(k.description)}", highlight=False)
    _print_file_rules(c)
    _print_cross_month_checks(c)


def _print_contract_heading(c: Contract) -> None:
    """Name, id, version, status, the description's parts and the file the contract reads."""
    m = c.model
    out.print(f"[bold]{escape(c.name)}[/]  ({c.id} v{c.version}, {m.status if m else ''}, ODCS {m.apiVersion if m else ''})", highlight=False)
    if m and m.description:
        for label, text in (("purpose", m.description.purpose), ("usage", m.description.usage), ("limitations", m.description.limitations)):
            if text:
                out.print(f"[dim]{label}:[/] {escape(text.strip())}", highlight=False)
    if "{" in c.file_name:  # a data.police.uk name: found anywhere under SOURCE, as downloaded
        out.print(f"file: {_file_pattern(c.file_name)}  (anywhere under SOURCE, named as downloaded)", highlight=False)
    else:
        out.print(f"file: {c.file_name}" + (f"  (SOURCE/YYYY-MM/{c.file_name})" if c.month_column and not c.reference else ""), highlight=False)


def _file_pattern(file_name: str) -> str:
    """A contract's file name as users write it: '{month}-{force}-street.csv' -> 'YYYY-MM-<force>-street.csv'."""
    return file_name.replace("{month}", "YYYY-MM").replace("{force}", "<force>")


def _column_rules(col: Column) -> list[str]:
    """A column's rules in words, as listed in the Columns table."""
    rules = []
    if col.unique:
        rules.append("unique (first kept)")
    if col.minimum is not None or col.maximum is not None:
        rules.append(f"range {col.minimum if col.minimum is not None else ''}..{col.maximum if col.maximum is not None else ''}")
    if col.pattern:
        rules.append(f"pattern {col.pattern}")
    if col.enum:
        rules.append("one of " + ", ".join(col.enum))
    if col.logical_type == "boolean":
        rules.append(f"{col.true_value}/{col.false_value}")
    if col.code_list:
        rules.append(
            f"code list {col.code_list.get('reference')}" + (f", valid on {col.code_list['validOnColumn']}" if col.code_list.get("validOnColumn") else "")
        )
    if col.reference_list:
        rules.append(f"in {col.reference_list.get('file')} when present")
    if col.classification:
        rules.append(f"[{col.classification}]")
    return rules


def _print_file_rules(c: Contract) -> None:
    out.print("[bold]File rules[/] (the run fails and writes nothing)")
    out.print("  every contract column present in the header; file not empty or truncated; UTF-8 or Windows-1252", highlight=False)
    if c.month_column:
        out.print(f"  every {c.month_column} inside the extract's month", highlight=False)
    out.print(f"  no more than max({c.reject_min_rows}, {c.reject_fraction:.0%} of rows) rejected rows", highlight=False)


def _print_cross_month_checks(c: Contract) -> None:
    from etl.core.cross_month import declared

    checks = declared(c)
    if checks:
        out.print("[bold]Checks across months[/] (warnings in audit_checks)")
        for spec in checks:
            out.print("  " + ", ".join(f"{k}={v}" for k, v in spec.items()), highlight=False)


@contracts_app.command("lint")
def contracts_lint() -> None:
    """Check every contract against the ODCS model and schema and the project's own rules."""
    from etl.core.contracts import lint_all

    findings = lint_all()
    errors = [f for f in findings if f.severity == "error"]
    if findings:
        t = Table(title="Contract findings")
        for col in ("contract", "severity", "where", "finding"):
            t.add_column(col, overflow="fold")
        for f in findings:
            t.add_row(f.contract, f.severity, f.where, escape(f.message), style="red" if f.severity == "error" else "yellow")
        out.print(t)
    out.print(f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)", highlight=False)
    if errors:
        raise typer.Exit(1)


def _terminated(signum, frame) -> None:
    """SIGTERM ends the command like Ctrl-C: a run in progress rolls back, Prefect's server is stopped."""
    raise SystemExit(128 + signum)


def main() -> None:
    """The ``etl`` entry point (errors become one line and an exit code in `_Commands`)."""
    apply_cli_environment()
    try:
        signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread
        pass
    app()


if __name__ == "__main__":
    main()
