"""Judgement: each window's row of the measures table - its value, comparison, change, status and notes.

One reason to change: how a figure is judged and explained - statuses (``met`` / ``not_met`` /
``monitor`` / ``not_comparable`` / ``incomplete``), the change, the target rules (catalogue section
0.6) and the notes a row carries.

* ``incomplete`` - a month of the current or comparison window was not loaded (missing, or its run
  failed), the extract it needs is not loaded for the force, or a rate has no population estimate.
  The incomplete side prints no value; no change is given.
* ``not_comparable`` - the windows were counted with different definition versions (an offence group
  changed between them, e.g. the April 2017 burglary split), or a window straddles a change.
* ``met`` / ``not_met`` - judged by the measure's target rule: ``reduce_by``, ``gt``/``ge``/``lt``/``le``,
  ``sla`` (a share at or above a level), ``count_target``, or a direction (``increase``/``decrease``)
  against a stated comparator.
* ``monitor`` - no target, or a comparison row that the target rule does not judge.
"""

from __future__ import annotations

import polars as pl

from etl.measures.windows import month_text

MEASURE_SCHEMA = {
    "force_id": pl.Utf8,
    "measure_id": pl.Utf8,
    "family": pl.Utf8,
    "period": pl.Utf8,
    "period_start": pl.Utf8,
    "period_end": pl.Utf8,
    "value": pl.Float64,
    "unit": pl.Utf8,
    "comparison": pl.Utf8,
    "comparison_start": pl.Utf8,
    "comparison_end": pl.Utf8,
    "comparison_value": pl.Float64,
    "change_abs": pl.Float64,
    "change_pct": pl.Float64,
    "target": pl.Utf8,
    "status": pl.Utf8,
    "definition_version": pl.Utf8,
    "run_id": pl.Utf8,
    "note": pl.Utf8,
    "comparison_source": pl.Utf8,  # force_records | published_statistics | external_statistics
}


def _window_value(side: str) -> tuple[pl.Expr, pl.Expr]:
    """A window's value from its component sums (by the source measure's kind), and why it has none."""
    a, b, med, kind = pl.col(f"a_{side}"), pl.col(f"b_{side}"), pl.col(f"med_{side}"), pl.col("source_kind")
    value = (
        pl.when(kind.is_in(["count", "sum"]))
        .then(a)
        .when(kind == "share")
        .then(pl.when(b != 0).then(a / b * 100.0))
        .when(kind == "mean")
        .then(pl.when(b != 0).then(a / b))
        .when(kind == "median")
        .then(med)
    )
    why = (
        pl.when((kind == "share") & (b == 0))
        .then(pl.lit("no rows in the denominator"))
        .when((kind == "mean") & (b == 0))
        .then(pl.lit("no rows to average"))
        .when((kind == "median") & a.is_not_null() & med.is_null())
        .then(pl.lit("no rows for a median"))
    )
    return value, why


def _judge() -> pl.Expr:
    """The status of a row with both values, by the measure's target rule (catalogue section 0.6):
    ``gt``/``ge``/``lt``/``le``/``sla``/``count_target`` compare the value with the target on every row;
    ``reduce_by`` (change_pct <= -target), ``increase`` (change_abs > 0) and ``decrease`` (change_abs < 0)
    judge only the rule's comparison row (every row when it names none); anything else is ``monitor``."""
    rule, t, value = pl.col("rule"), pl.col("target_value"), pl.col("value")

    def met(ok: pl.Expr) -> pl.Expr:
        return pl.when(ok).then(pl.lit("met")).otherwise(pl.lit("not_met"))

    threshold = (
        pl.when(rule == "gt")
        .then(value > t)
        .when(rule == "ge")
        .then(value >= t)
        .when(rule == "lt")
        .then(value < t)
        .when(rule == "le")
        .then(value <= t)
        .otherwise(value >= t)  # sla, count_target
    )
    return (
        pl.when(rule.is_null() | (rule == "monitor"))
        .then(pl.lit("monitor"))
        .when(rule.is_in(["gt", "ge", "lt", "le", "sla", "count_target"]))
        .then(met(threshold))
        .when(pl.col("target_comparison").is_not_null() & (pl.col("comparison") != pl.col("target_comparison")))
        .then(pl.lit("monitor"))
        .when(rule == "reduce_by")
        .then(met(pl.col("change_pct").is_not_null() & (pl.col("change_pct") <= -t)))
        .when(rule == "increase")
        .then(met(pl.col("change_abs").is_not_null() & (pl.col("change_abs") > 0)))
        .when(rule == "decrease")
        .then(met(pl.col("change_abs").is_not_null() & (pl.col("change_abs") < 0)))
        .otherwise(pl.lit("monitor"))
    )


def computed_rows(w: pl.DataFrame, months: tuple[int, int], run_id: str) -> pl.DataFrame:
    """The measure rows from the windows with their sums, medians, signatures, populations and
    published baselines (one row per window; see the module docstring for values and statuses)."""
    is_target = pl.col("comparison") == "target"
    value_cur, why_cur = _window_value("cur")
    value_cmp, why_cmp = _window_value("cmp")
    # 1. the windows' own values (an incomplete window has none)
    w = w.with_columns(
        pl.when(pl.col("complete_cur")).then(value_cur).alias("value"),
        pl.when(pl.col("complete_cur")).then(why_cur).alias("why_cur"),
        pl.when(pl.col("complete_cmp") & ~is_target).then(value_cmp).alias("cvalue"),
        pl.when(pl.col("complete_cmp") & ~is_target).then(why_cmp).alias("why_cmp"),
    )
    # 2. the comparison of a target row is the target; a ye_jun19 baseline whose months are not loaded
    #    comes from the published statistics when the measure declares the same definition
    baseline = (
        ~is_target
        & ~pl.col("complete_cmp")
        & (pl.col("comparison") == "ye_jun19")
        & pl.col("baseline").is_not_null()
        & pl.col("source_kind").is_in(["count", "sum"])
    )
    w = w.with_columns(baseline.alias("from_published")).with_columns(
        pl.when(is_target).then(pl.col("target_value")).when(pl.col("from_published")).then(pl.col("baseline")).otherwise(pl.col("cvalue")).alias("cvalue"),
        (is_target | pl.col("from_published") | pl.col("complete_cmp")).alias("complete_cmp"),
        pl.when(is_target | pl.col("from_published")).then(pl.col("cur_sig")).otherwise(pl.col("cmp_sig")).alias("cmp_sig"),
        pl.when(is_target)
        .then(pl.lit("target"))
        .when(pl.col("from_published"))
        .then(pl.lit("published_statistics"))
        .otherwise(pl.lit("force_records"))
        .alias("comparison_source"),
    )
    # 3. rates: per the population of the window's June year
    rate_cur = pl.col("is_rate") & pl.col("value").is_not_null()
    rate_cmp = pl.col("is_rate") & ~is_target & pl.col("cvalue").is_not_null()
    w = w.with_columns(
        pl.when(rate_cur).then(pl.col("value") / pl.col("pop_cur") * pl.col("per")).otherwise(pl.col("value")).alias("value"),
        pl.when(rate_cmp).then(pl.col("cvalue") / pl.col("pop_cmp") * pl.col("per")).otherwise(pl.col("cvalue")).alias("cvalue"),
        pl.when(rate_cur).then(pl.col("pop_note_cur")).alias("rate_note_cur"),
        pl.when(rate_cmp).then(pl.col("pop_note_cmp")).alias("rate_note_cmp"),
    )
    # 4. change and status
    complete = pl.col("complete_cur") & pl.col("value").is_not_null() & pl.col("complete_cmp") & pl.col("cvalue").is_not_null()
    w = w.with_columns(
        (pl.col("complete_cur") & pl.col("value").is_not_null()).alias("has_value"),
        (pl.col("complete_cmp") & pl.col("cvalue").is_not_null()).alias("has_cvalue"),
        complete.alias("both"),
        (complete & (pl.col("cur_sig") != pl.col("cmp_sig"))).alias("differ"),
    ).with_columns((pl.col("both") & ~pl.col("differ")).alias("comparable"))
    w = w.with_columns(pl.when(pl.col("comparable")).then(pl.col("value") - pl.col("cvalue")).alias("change_abs"))
    pct = pl.col("comparable") & ~is_target & (pl.col("cvalue") != 0)
    w = w.with_columns(pl.when(pct).then(pl.col("change_abs") / pl.col("cvalue") * 100.0).alias("change_pct"))
    status = pl.when(~pl.col("both")).then(pl.lit("incomplete")).when(pl.col("differ")).then(pl.lit("not_comparable")).otherwise(_judge())
    # 5. notes, in this order
    notes = [
        pl.col("lead_note"),
        pl.col("basis_note"),
        pl.format("current window: {}", pl.col("why_cur")),
        pl.format("comparison window: {}", pl.col("why_cmp")),
        pl.when(pl.col("from_published")).then(
            pl.format(
                "baseline from published statistics ({} month(s) of the force's own records not loaded): {}", pl.col("missing_cmp"), pl.col("baseline_text")
            )
        ),
        pl.when(~pl.col("complete_cur")).then(
            pl.format("current window {}..{} has {} month(s) not loaded", month_text("start", months), month_text("end", months), pl.col("missing_cur"))
        ),
        pl.when(~pl.col("complete_cmp")).then(
            pl.format("comparison window {}..{} has {} month(s) not loaded", month_text("c_start", months), month_text("c_end", months), pl.col("missing_cmp"))
        ),
        pl.col("rate_note_cur"),
        pl.col("rate_note_cmp"),
        pl.when(pl.col("differ")).then(pl.format("definitions differ: current [{}] vs comparison [{}]", pl.col("cur_sig"), pl.col("cmp_sig"))),
        pl.when(pl.col("comparable") & ~is_target & (pl.col("cvalue") == 0)).then(pl.lit("comparison value is zero: no percent change")),
    ]
    note = pl.concat_str(notes, separator="; ", ignore_nulls=True)
    return w.select(
        *_row_identity(months),
        pl.when(pl.col("has_value")).then(pl.col("value")).alias("value"),
        "unit",
        "comparison",
        pl.when(~is_target).then(month_text("c_start", months)).alias("comparison_start"),
        pl.when(~is_target).then(month_text("c_end", months)).alias("comparison_end"),
        pl.when(pl.col("has_cvalue")).then(pl.col("cvalue")).alias("comparison_value"),
        "change_abs",
        "change_pct",
        "target",
        status.alias("status"),
        pl.format("{}; {}", pl.col("label"), pl.col("cur_sig")).alias("definition_version"),
        pl.lit(run_id).alias("run_id"),
        pl.when(note != "").then(note).alias("note"),
        pl.when(pl.col("has_cvalue")).then(pl.col("comparison_source")).alias("comparison_source"),
    )


def _row_identity(months: tuple[int, int]) -> list[pl.Expr | str]:
    """The leading columns of every measure row: its ordering keys, force, measure and window."""
    return [
        "force_rank",
        "m_rank",
        pl.col("spec_rank").alias("row_rank"),
        "force_id",
        "measure_id",
        "family",
        "period",
        month_text("start", months).alias("period_start"),
        month_text("end", months).alias("period_end"),
    ]


def declared_rows(plan: pl.DataFrame, specs: pl.DataFrame, months: tuple[int, int], run_id: str) -> pl.DataFrame:
    """Rows for measures that cannot be computed for a force: every window of its span, incomplete,
    with the reason."""
    w = plan.filter(pl.col("declared").is_not_null()).join(specs, on="measure_id").filter(pl.col("end").is_between(pl.col("span_first"), pl.col("span_last")))
    not_target = pl.col("comparison") != "target"
    return w.select(
        *_row_identity(months),
        pl.lit(None, pl.Float64).alias("value"),
        "unit",
        "comparison",
        pl.when(not_target).then(month_text("c_start", months)).alias("comparison_start"),
        pl.when(not_target).then(month_text("c_end", months)).alias("comparison_end"),
        pl.lit(None, pl.Float64).alias("comparison_value"),
        pl.lit(None, pl.Float64).alias("change_abs"),
        pl.lit(None, pl.Float64).alias("change_pct"),
        "target",
        pl.lit("incomplete").alias("status"),
        pl.col("label").alias("definition_version"),
        pl.lit(run_id).alias("run_id"),
        pl.col("declared").alias("note"),
        pl.lit(None, pl.Utf8).alias("comparison_source"),
    )
