"""The measures engine: one generic computation driven by ``contracts/definitions/measures.yaml``.

One reason to change: how the parts below are put together into the measures table.

Each measure is a declarative entry (id, family, what it counts, unit, periods and comparisons, target
rule, direction of good; `etl.measures.definitions`). The engine knows a few kinds:

* ``count``  rows of an extract matching a filter (offence groups, flags, column values, ranges)
* ``sum``    a column summed over matching rows (e.g. hospital admission episodes)
* ``share``  numerator rows / denominator rows x 100 (positive outcome rates, SLA shares, BWV use)
* ``mean`` / ``median``  of a column or a duration (``seconds_between`` two timestamps)
* ``rate``   another measure / population x 1,000 | 100,000 | 1,000,000
* ``external`` figures published elsewhere, read from the ``external_statistics`` reference extract
* a ``share`` with ``sample_period``: computed once per sample (an audit's month), not over monthly
  windows, compared with its target and a national benchmark (`samples`)
* ``no_data``  declared (with its definition and the reason) but not computable: always ``incomplete``

For every force and every period end month between its first and last loaded month, each measure
gets one row per period and comparison (e.g. ``r12`` against ``ye_jun19`` and ``prev_r12``; ``fytd``
against ``sply`` and ``sp_2019_20``; a ``target`` row for numeric targets), with the unrounded value,
the comparison value, the absolute and percent change and a status (`etl.measures.judgement`).

The rows of all forces and measures are computed together, as frames, in these steps:

  `components.monthly_components`  each extract aggregated once to every measure's monthly sums
  `_measure_table`    one row per measure: the constants its rows carry (unit, target rule, labels...)
  `_force_table`      one row per force: which source profiles it has loaded and its span of months
  `_plan`             one row per force and measure: computed over the months of the extract that
                      decides completeness, or declared incomplete with the reason
  `windows.spec_frame`  the windows (period, comparison) at every period end
  `_windows`          each window's sums, completeness, medians, definition versions (`windows`),
                      population and published baseline (`external`)
  `judgement.computed_rows`  values -> published baseline / target -> rates -> change -> status -> notes

Other modules import the public names from here or from `etl.measures`.
"""

from __future__ import annotations

import logging
import time

import polars as pl

from etl.core.periods import month_index_expr
from etl.measures.components import (
    CRIME_COLUMNS,
    MonthlyComponents,
    monthly_components,
    monthly_counts,
)
from etl.measures.definitions import (
    KINDS,
    POSITIVE_OUTCOMES,
    RATE_UNITS,
    TARGET_RULES,
    DefinitionError,
    Definitions,
    Filter,
    Measure,
    Target,
    definition_signature,
    load_definitions,
    skipped_proxies,
)
from etl.measures.external import external_rows, published_baselines, with_population
from etl.measures.judgement import MEASURE_SCHEMA, computed_rows, declared_rows
from etl.measures.samples import Benchmarks, sample_rows
from etl.measures.windows import (
    component_slots,
    cumulative,
    month_range,
    running_start,
    spec_frame,
    window_sums,
    with_medians,
    with_signatures,
)

__all__ = [
    "CRIME_COLUMNS",
    "KINDS",
    "MEASURE_SCHEMA",
    "POSITIVE_OUTCOMES",
    "RATE_UNITS",
    "TARGET_RULES",
    "DefinitionError",
    "Definitions",
    "Filter",
    "Measure",
    "MonthlyComponents",
    "Target",
    "compute_measures",
    "definition_signature",
    "load_definitions",
    "monthly_components",
    "monthly_counts",
    "skipped_proxies",
]

log = logging.getLogger(__name__)


def compute_measures(
    tables: dict[str, pl.LazyFrame | None] | pl.LazyFrame | None,
    loaded: pl.DataFrame,
    population: pl.DataFrame | None,
    defs: Definitions | None = None,
    run_id: str = "",
    published: pl.DataFrame | None = None,
    external: pl.DataFrame | None = None,
    *,
    components: MonthlyComponents | None = None,
    benchmarks: Benchmarks | None = None,
) -> pl.DataFrame:
    """The measures table for every force with loaded months.

    ``tables``: curated tables by extract name (a bare LazyFrame means recorded_crime).
    ``loaded``: force_id, month (and extract; without it, recorded_crime) of every loaded month.
    ``components``: the monthly components of ``tables`` (`monthly_components`) when the caller
    already has them, e.g. to compute the control charts of the same tables too; computed here otherwise.
    ``benchmarks``: the national benchmarks of per-sample measures (default: `samples.load_benchmarks`).

    Rows come force by force (in the order of ``loaded``), measure by measure (in definition order),
    then by period end, period and comparison.
    """
    started = time.perf_counter()
    defs = defs or load_definitions()
    if tables is None or loaded.height == 0:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    if isinstance(tables, pl.LazyFrame):
        tables = {"recorded_crime": tables}
    if "extract" not in loaded.columns:
        loaded = loaded.with_columns(pl.lit("recorded_crime").alias("extract"))
    components = components or monthly_components(tables, defs)
    loaded = loaded.select("force_id", "extract", month_index_expr("month").alias("idx")).unique(maintain_order=True)
    pop = (
        population.select("force_id", pl.col("year").cast(pl.Int32), pl.col("population").cast(pl.Float64))
        if population is not None and population.height
        else pl.DataFrame(schema={"force_id": pl.Utf8, "year": pl.Int32, "population": pl.Float64})
    )
    measures = _measure_table(defs)
    forces = _force_table(loaded)
    plan = _plan(measures, forces, loaded)
    windowed = [m for m in defs.measures if not m.sample_period]  # a per-sample measure has no monthly windows
    specs = spec_frame(windowed, int(loaded["idx"].min()), int(loaded["idx"].max())) if windowed else pl.DataFrame()  # type: ignore[arg-type]
    out = external_rows(defs, measures, forces, run_id, external) + sample_rows(defs, measures, forces, run_id, tables, benchmarks)
    if specs.height:
        months = month_range(specs)
        out.append(declared_rows(plan, specs, months, run_id))
        w = _windows(plan.filter(pl.col("declared").is_null()), specs, loaded, components, component_slots(measures), defs, pop, published)
        if w.height:
            out.append(computed_rows(w, months, run_id))
    if not out:
        return pl.DataFrame(schema=MEASURE_SCHEMA)
    # one integer sort key: force, then measure, then window (a measure has fewer than 2**24 windows)
    order = (pl.col("force_rank").cast(pl.Int64) * 2**16 + pl.col("m_rank")) * 2**24 + pl.col("row_rank")
    table = pl.concat([o.select(order.alias("_order"), *[pl.col(k).cast(t) for k, t in MEASURE_SCHEMA.items()]) for o in out])
    table = table.sort("_order").drop("_order")
    log.info("measures run %s: %d rows for %d force(s) in %.2f s", run_id or "-", table.height, forces.height, time.perf_counter() - started)
    return table


def _windows(
    computed: pl.DataFrame,
    specs: pl.DataFrame,
    loaded: pl.DataFrame,
    components: MonthlyComponents,
    slots: pl.DataFrame,
    defs: Definitions,
    pop: pl.DataFrame,
    published: pl.DataFrame | None,
) -> pl.DataFrame:
    """Every window of the computed forces and measures (period ends first..last of each), with what
    its row needs: component sums and completeness of both windows, medians, definition signatures,
    populations and the published baseline."""
    computed = computed.with_columns(running_start(pl.col("first")).alias("lo"))
    # a series: one force's source measure (a rate shares its numerator's), numbered for cheap joins
    series = computed.select("force_id", "source_id").unique(maintain_order=True).with_row_index("series")
    computed = computed.join(series, on=["force_id", "source_id"])
    w = computed.join(specs, on="measure_id").filter(pl.col("end").is_between(pl.col("first"), pl.col("last")))
    if w.height == 0:
        return w
    cum = cumulative(computed, loaded, components.components, slots)
    w = window_sums(w, cum, "start", "end", "cur")
    w = window_sums(w, cum, "c_start", "c_end", "cmp")
    w = with_medians(w, components.histograms)
    w = with_signatures(w, defs)
    w = with_population(w, pop)
    return w.join(published_baselines(computed, defs, published), on=["force_id", "source_id"], how="left")


def _completeness_extract(source: Measure) -> str:
    """The extract whose loaded months decide whether a window is complete (outcomes: their crimes')."""
    return "recorded_crime" if source.extract == "crime_outcomes" else source.extract


def _measure_table(defs: Definitions) -> pl.DataFrame:
    """One row per measure with the constants its rows carry and the rules that judge them."""
    rows = []
    for rank, m in enumerate(defs.measures):
        source = defs.source(m)
        t = m.target
        rows.append(
            {
                "measure_id": m.id,
                "m_rank": rank,
                "kind": m.kind,
                "per_sample": m.sample_period is not None,
                "source_id": source.id,
                "source_kind": source.kind,
                "public_source": source.extract.startswith("police_uk"),
                "source_extract": source.extract,
                "needs_extract": _completeness_extract(source),
                "family": m.family,
                "unit": m.unit,
                "target": t.text if t else f"direction: {m.direction}",
                "label": defs.label_for(m),
                "lead_note": f"proxy for {m.proxy_for}: {m.note}" if m.proxy_for else None,
                "basis_note": f"basis: {m.basis}" if m.basis else None,
                "rule": t.rule if t else None,
                "target_value": t.value if t else None,
                "target_comparison": (t.comparison or None) if t else None,
                "is_rate": m.is_rate,
                "per": m.per,
                "reason": m.reason,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "measure_id": pl.Utf8,
            "m_rank": pl.Int64,
            "kind": pl.Utf8,
            "per_sample": pl.Boolean,
            "source_id": pl.Utf8,
            "source_kind": pl.Utf8,
            "public_source": pl.Boolean,
            "source_extract": pl.Utf8,
            "needs_extract": pl.Utf8,
            "family": pl.Utf8,
            "unit": pl.Utf8,
            "target": pl.Utf8,
            "label": pl.Utf8,
            "lead_note": pl.Utf8,
            "basis_note": pl.Utf8,
            "rule": pl.Utf8,
            "target_value": pl.Float64,
            "target_comparison": pl.Utf8,
            "is_rate": pl.Boolean,
            "per": pl.Int64,
            "reason": pl.Utf8,
        },
    )


def _force_table(loaded: pl.DataFrame) -> pl.DataFrame:
    """One row per force (in order of first appearance): force_rank; public / force_profile (whether
    data.police.uk extracts / the force's own extracts are loaded: a measure of the other profile is
    not the force's); span_first..span_last, the months of the profile's extracts (the force's own
    when it has both)."""
    public = pl.col("extract").str.starts_with("police_uk")
    return (
        loaded.group_by("force_id", maintain_order=True)
        .agg(
            public.any().alias("public"),
            (~public).any().alias("force_profile"),
            pl.col("idx").filter(~public).min().alias("own_first"),
            pl.col("idx").filter(~public).max().alias("own_last"),
            pl.col("idx").min().alias("any_first"),
            pl.col("idx").max().alias("any_last"),
        )
        .with_row_index("force_rank")
        .select(
            "force_id",
            "force_rank",
            "public",
            "force_profile",
            pl.when(pl.col("force_profile")).then(pl.col("own_first")).otherwise(pl.col("any_first")).alias("span_first"),
            pl.when(pl.col("force_profile")).then(pl.col("own_last")).otherwise(pl.col("any_last")).alias("span_last"),
        )
    )


def _plan(measures: pl.DataFrame, forces: pl.DataFrame, loaded: pl.DataFrame) -> pl.DataFrame:
    """One row per force and each measure of its profile (external and per-sample measures excepted): first..last,
    the loaded months of the extract deciding completeness (null when it is not loaded), and for a
    measure that cannot be computed the reason its rows are declared incomplete."""
    extents = loaded.group_by("force_id", "extract").agg(pl.col("idx").min().alias("first"), pl.col("idx").max().alias("last"))
    plan = (
        measures.filter((pl.col("kind") != "external") & ~pl.col("per_sample"))
        .join(forces, how="cross")
        .filter(pl.when(pl.col("public_source")).then(pl.col("public")).otherwise(pl.col("force_profile")))
        .join(extents, left_on=["force_id", "needs_extract"], right_on=["force_id", "extract"], how="left")
    )
    declared = (
        pl.when(pl.col("kind") == "no_data")
        .then(pl.format("not computable yet: {}", pl.col("reason")))
        .when(pl.col("first").is_null())
        .then(pl.format("needs the {} extract, not loaded for {}", pl.col("source_extract"), pl.col("force_id")))
    )
    return plan.with_columns(declared.alias("declared"))
