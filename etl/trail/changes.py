"""What changed: every published figure whose value a later run moved, with the run that moved it and
the source files that differed.

A figure is one measures row: force, measure, period, period end and comparison. Between two points
(`etl.trail.asof`: a run id or a time, ``until`` default now) a figure is listed when

* ``changed``: its value, status, comparison value or change (absolute or per cent) differs;
* ``removed``: it was in the measures table at ``since`` and is not at ``until``;
* ``new``: it was not there at ``since`` (a month loaded later). New figures were never published
  before, so they are left out unless asked for (``include_new``; `etl changes --new`).

``changed_by_run`` is the run whose measures write last moved the figure (the measures table is
read at each version written between the two points, only for the forces each write touched): for
a load that committed several forces at once, that force's own load run. ``changed_at`` is when
that run finished. ``sources`` lists the source files of the figure's windows (current and
comparison months) whose sha256 differs between the load runs in effect at each point, with the
hash before and after (a file absent on one side has no hash there). Reference files (population,
published workbooks) are not windowed by month and are not listed.

Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from etl.core.warehouse import Warehouse
from etl.trail.asof import AsOf, AsOfError, run_log, table_versions

FIGURE_KEY = ["force_id", "measure_id", "period", "period_end", "comparison"]
NUMBERS = ["value", "comparison_value", "change_abs", "change_pct"]
COMPARED = [*NUMBERS, "status"]
WINDOWS = ["period_start", "comparison_start", "comparison_end"]
NOT_MONTHLY = ("population", "external_statistics", "published_statistics")  # reference data: no month of the force's data
CHANGE_KINDS = ("changed", "removed", "new")
RELATIVE_TOLERANCE = 1e-9  # a recomputed value this close is the same figure (float sums may differ in the last bit)

# The columns of a changes listing, in order.
COLUMNS = [
    *FIGURE_KEY,
    "change",
    *[f"{side}_{c}" for c in ["value", "status", "comparison_value", "change_abs", "change_pct"] for side in ("old", "new")],
    *WINDOWS,
    "changed_by_run",
    "changed_at",
    "sources",
]

SOURCE_STRUCT = pl.Struct(
    {
        "extract": pl.Utf8,
        "month": pl.Utf8,
        "file": pl.Utf8,
        "source_root": pl.Utf8,
        "sha256_before": pl.Utf8,
        "sha256_after": pl.Utf8,
        "run_before": pl.Utf8,
        "run_after": pl.Utf8,
    }
)
_FILES = pl.List(pl.Struct({"extract": pl.Utf8, "file": pl.Utf8, "sha256": pl.Utf8, "source_root": pl.Utf8}))


@dataclass(frozen=True)
class Changes:
    """The figures that moved between two points, and how many new figures were left out."""

    since: AsOf
    until: AsOf
    figures: pl.DataFrame
    new_left_out: int


def changes(
    since: AsOf,
    until: AsOf,
    *,
    force_id: str | None = None,
    measure_id: str | None = None,
    period_end: str | None = None,
    include_new: bool = False,
) -> Changes:
    """Every figure that differs between ``since`` and ``until`` (see the module docstring), one row
    each, sorted by force, measure, period, period end and comparison."""
    wh = until.warehouse
    runs = run_log(wh)
    since_seq, until_seq = _commit_seq(since, runs), _commit_seq(until, runs)
    if since_seq > until_seq:
        raise AsOfError(f"--since ({since.describe()}) is after --until ({until.describe()}); give the earlier point as --since")
    where = _where(force_id, measure_id, period_end)
    old, new = _figures(since, where), _figures(until, where)
    joined = _compare(old, new)
    new_count = joined.filter(pl.col("change") == "new").height
    if not include_new:
        joined = joined.filter(pl.col("change") != "new")
    figures = _attribute(wh, runs, joined, since, until, since_seq, until_seq, where)
    figures = _with_sources(figures, runs, since_seq, until_seq).select(COLUMNS)
    return Changes(since, until, figures.sort(FIGURE_KEY), 0 if include_new else new_count)


def restated(reader_now: AsOf, since: AsOf, force_id: str, period_end: str) -> pl.DataFrame:
    """The figures of one force and period end whose value, status or comparison moved after
    ``since`` (a restatement): measure_id, period, comparison, old_value, new_value, changed_by_run,
    changed_at. Empty when nothing moved."""
    found = changes(since, reader_now, force_id=force_id, period_end=period_end).figures
    return found.filter(pl.col("change") == "changed").select("measure_id", "period", "comparison", "old_value", "new_value", "changed_by_run", "changed_at")


# ----------------------------------------------------------------------------------------------------
# the two states compared


def _where(force_id: str | None, measure_id: str | None, period_end: str | None) -> pl.Expr:
    expr = pl.lit(True)
    for column, value in (("force_id", force_id), ("measure_id", measure_id), ("period_end", period_end)):
        if value is not None:
            expr = expr & (pl.col(column) == value)
    return expr


def _figures(point: AsOf, where: pl.Expr) -> pl.DataFrame:
    lf = point.scan("measures")
    schema = {**dict.fromkeys(FIGURE_KEY, pl.Utf8), **dict.fromkeys(NUMBERS, pl.Float64), "status": pl.Utf8, **dict.fromkeys(WINDOWS, pl.Utf8)}
    if lf is None:
        return pl.DataFrame(schema=schema)
    return lf.filter(where).select(*FIGURE_KEY, *COMPARED, *WINDOWS).collect().cast(schema)  # type: ignore[arg-type]


def _differs(a: str, b: str) -> pl.Expr:
    """Whether two columns of a figure differ: a number by more than the tolerance, a text at all; null vs not-null differs."""
    left, right = pl.col(a), pl.col(b)
    if a.endswith("status"):
        return left.ne_missing(right)
    scale = pl.max_horizontal(pl.lit(1.0), left.abs(), right.abs())
    return (left.is_null() != right.is_null()) | ((left - right).abs() > scale * RELATIVE_TOLERANCE).fill_null(False)


def _compare(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    before = old.select(*FIGURE_KEY, *[pl.col(c).alias(f"old_{c}") for c in COMPARED + WINDOWS], pl.lit(True).alias("_before"))
    after = new.select(*FIGURE_KEY, *[pl.col(c).alias(f"new_{c}") for c in COMPARED + WINDOWS], pl.lit(True).alias("_after"))
    joined = before.join(after, on=FIGURE_KEY, how="full", coalesce=True, nulls_equal=True)
    moved = pl.any_horizontal([_differs(f"old_{c}", f"new_{c}") for c in COMPARED])
    change = (
        pl.when(pl.col("_before").is_null())
        .then(pl.lit("new"))
        .when(pl.col("_after").is_null())
        .then(pl.lit("removed"))
        .when(moved)
        .then(pl.lit("changed"))
        .otherwise(pl.lit(None, pl.Utf8))
    )
    windows = [pl.coalesce(f"new_{c}", f"old_{c}").alias(c) for c in WINDOWS]
    return (
        joined.with_columns(change.alias("change"), *windows)
        .filter(pl.col("change").is_not_null())
        .drop("_before", "_after", *[f"{s}_{c}" for s in ("old", "new") for c in WINDOWS])
    )


# ----------------------------------------------------------------------------------------------------
# the run that moved each figure


def _commit_seq(point: AsOf, runs: pl.DataFrame) -> int:
    """The last audit_runs commit_seq of the commit that made ``point``'s state (a batch commit writes
    several rows, one per force-month, sharing their table versions); the latest for the current state."""
    if runs.height == 0:
        return 0
    if point.is_current:
        return int(runs["commit_seq"].max())  # type: ignore[arg-type]
    row = runs.filter(pl.col("run_id") == point.run_id)
    if row.height == 0:
        raise AsOfError(f"run {point.run_id} is not in {point.warehouse.root}'s audit_runs")
    seq, versions = row.row(0, named=True)["commit_seq"], row.row(0, named=True)["table_versions"]
    same = runs.filter(pl.col("commit_seq") >= seq).select("commit_seq", pl.col("table_versions").eq_missing(versions).cast(pl.Int8).cum_min().alias("same"))
    return int(same.filter(pl.col("same") == 1)["commit_seq"].max())  # type: ignore[arg-type]


def _steps(runs: pl.DataFrame, since_seq: int, until_seq: int, since_version: int | None, until_version: int | None) -> pl.DataFrame:
    """step (1..), version, commit_seq, run_id, kind, force_id, finished_at: the commits that wrote the
    measures table after ``since`` up to ``until``, one row per run row of each such commit."""
    empty = pl.DataFrame(
        schema={
            "step": pl.Int64,
            "version": pl.Int64,
            "commit_seq": pl.Int64,
            "run_id": pl.Utf8,
            "kind": pl.Utf8,
            "force_id": pl.Utf8,
            "finished_at": pl.Datetime("us", "UTC"),
        }
    )
    if until_version is None:
        return empty
    window = runs.filter((pl.col("commit_seq") > since_seq) & (pl.col("commit_seq") <= until_seq))
    measures = table_versions(window).filter(pl.col("table") == "measures").select("commit_seq", "version")
    floor = -1 if since_version is None else since_version
    rows = window.join(measures, on="commit_seq").filter((pl.col("version") > floor) & (pl.col("version") <= until_version)).sort("commit_seq")
    # the commit that wrote a version: its first row and the rows of the same commit (same table_versions)
    first = rows.group_by("version").agg(pl.col("table_versions").first().alias("_writer"))
    writers = rows.join(first, on="version").filter(pl.col("table_versions") == pl.col("_writer"))
    if writers.height == 0:
        return empty
    return writers.with_columns(pl.col("version").rank("dense").cast(pl.Int64).alias("step")).select(empty.columns)


def _attribute(
    wh: Warehouse, runs: pl.DataFrame, figures: pl.DataFrame, since: AsOf, until: AsOf, since_seq: int, until_seq: int, where: pl.Expr
) -> pl.DataFrame:
    """Add changed_by_run and changed_at: the last measures write between the two points that moved each figure."""
    out_schema: dict[str, pl.DataType] = {"changed_by_run": pl.Utf8(), "changed_at": pl.Datetime("us", "UTC")}
    steps = _steps(runs, since_seq, until_seq, since.version("measures"), until.version("measures"))
    if figures.height == 0 or steps.height == 0:
        return figures.with_columns(*[pl.lit(None, t).alias(c) for c, t in out_schema.items()])
    keys = figures.select(FIGURE_KEY)
    forces = keys["force_id"].unique().to_list()
    # which forces each step rewrote: its runs' forces (a refresh lists several); a run naming none (recovery) touched all
    touched = (
        steps.select("step", pl.col("force_id").str.split(","))
        .explode("force_id")
        .with_columns(pl.when(pl.col("force_id").is_null()).then(pl.lit(forces)).otherwise(pl.concat_list(pl.col("force_id"))).alias("force_id"))
        .explode("force_id")
        .filter(pl.col("force_id").is_in(forces))
        .unique()
    )
    states = [_figures(since, where).join(keys, on=FIGURE_KEY, how="semi", nulls_equal=True).with_columns(pl.lit(0, pl.Int64).alias("step"))]
    written = steps.sort("commit_seq").unique("step", keep="first").sort("step").select("step", "version", "run_id", "finished_at")
    for step, version, run_id, finished_at in written.iter_rows():  # one read per measures version written
        mine = touched.filter(pl.col("step") == step)["force_id"].to_list()
        if not mine:
            continue
        at = AsOf(wh, run_id, finished_at, {"measures": version})
        frame = _figures(at, where & pl.col("force_id").is_in(mine)).join(keys, on=FIGURE_KEY, how="semi", nulls_equal=True)
        states.append(frame.with_columns(pl.lit(step, pl.Int64).alias("step")))
    state = pl.concat(states, how="vertical_relaxed").select(*FIGURE_KEY, "step", *COMPARED, pl.lit(True).alias("_present"))
    grid = pl.concat([keys.with_columns(pl.lit(0, pl.Int64).alias("step")), keys.join(touched, on="force_id")], how="vertical_relaxed")
    walked = grid.join(state, on=[*FIGURE_KEY, "step"], how="left", nulls_equal=True).sort([*FIGURE_KEY, "step"])
    previous = [pl.col(c).shift(1).over(FIGURE_KEY).alias(f"_prev_{c}") for c in [*COMPARED, "_present"]]
    walked = walked.with_columns(*previous).filter(pl.col("step") > 0)
    moved = pl.any_horizontal([_differs(f"_prev_{c}", c) for c in COMPARED]) | pl.col("_present").is_null().ne(pl.col("_prev__present").is_null())
    last = walked.filter(moved).group_by(FIGURE_KEY).agg(pl.col("step").max().alias("_step"))
    # the run of the step: the figure's force's own run row, else the commit's first
    by_force = (
        steps.select("step", "run_id", "finished_at", "commit_seq", pl.col("force_id").str.split(","))
        .explode("force_id")
        .sort("commit_seq")
        .unique(["step", "force_id"], keep="first")
    )
    first_run = steps.sort("commit_seq").unique("step", keep="first").select("step", pl.col("run_id").alias("_run"), pl.col("finished_at").alias("_at"))
    found = (
        figures.join(last, on=FIGURE_KEY, how="left", nulls_equal=True)
        .join(by_force.drop("commit_seq"), left_on=["_step", "force_id"], right_on=["step", "force_id"], how="left")
        .join(first_run, left_on="_step", right_on="step", how="left")
    )
    return found.with_columns(
        pl.coalesce("run_id", "_run").alias("changed_by_run"),
        pl.coalesce("finished_at", "_at").alias("changed_at"),
    ).drop("_step", "run_id", "finished_at", "_run", "_at")


# ----------------------------------------------------------------------------------------------------
# the source files that differed


def files_in_effect(runs: pl.DataFrame, seq: int) -> pl.DataFrame:
    """force_id, month, extract, file, source_root, sha256, run_id: each force-month's files as
    recorded by the latest load run of that force-month committed at or before ``seq``."""
    loads = runs.filter((pl.col("kind") == "load") & pl.col("month").is_not_null() & (pl.col("commit_seq") <= seq))
    latest = loads.sort("commit_seq").group_by("force_id", "month").agg(pl.col("run_id").last(), pl.col("source_files").last())
    return (
        latest.with_columns(pl.col("source_files").str.json_decode(_FILES).alias("f"))
        .explode("f")
        .drop_nulls("f")
        .select("force_id", "month", "run_id", pl.col("f").struct.unnest())
        .filter(~pl.col("extract").is_in(NOT_MONTHLY))
    )


def _with_sources(figures: pl.DataFrame, runs: pl.DataFrame, since_seq: int, until_seq: int) -> pl.DataFrame:
    """Add ``sources``: the files of each figure's windows whose sha256 differs between the two points."""
    key = ["force_id", "month", "extract"]
    before, after = files_in_effect(runs, since_seq), files_in_effect(runs, until_seq)
    diff = (
        before.join(after, on=key, how="full", coalesce=True, suffix="_after")
        .filter(pl.col("sha256").ne_missing(pl.col("sha256_after")))
        .select(
            *key,
            pl.coalesce("file_after", "file").alias("file"),
            pl.coalesce("source_root_after", "source_root").alias("source_root"),
            pl.col("sha256").alias("sha256_before"),
            "sha256_after",
            pl.col("run_id").alias("run_before"),
            pl.col("run_id_after").alias("run_after"),
        )
    )
    empty = pl.lit([], pl.List(SOURCE_STRUCT))
    if figures.height == 0 or diff.height == 0:
        return figures.with_columns(empty.alias("sources"))
    month = pl.col("month")
    in_window = month.is_between(pl.col("period_start"), pl.col("period_end")).fill_null(False) | month.is_between(
        pl.col("comparison_start"), pl.col("comparison_end")
    ).fill_null(False)
    per_figure = (
        figures.select(*FIGURE_KEY, *WINDOWS)
        .join(diff, on="force_id")
        .filter(in_window)
        .sort("month", "extract")
        .group_by(FIGURE_KEY)
        .agg(pl.struct(*[f.name for f in SOURCE_STRUCT.fields]).alias("sources"))
    )
    joined = figures.join(per_figure, on=FIGURE_KEY, how="left", nulls_equal=True)
    return joined.with_columns(pl.col("sources").fill_null(empty).cast(pl.List(SOURCE_STRUCT)))


__all__ = ["CHANGE_KINDS", "FIGURE_KEY", "Changes", "changes", "files_in_effect", "restated"]
