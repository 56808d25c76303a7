"""Per-sample measures: shares computed once per sample (an audit), not over monthly windows.

One reason to change: how a sample's rows become a measure row - the crime data integrity audit's
compliance rates (domain/measures.md DQ01_cdi_audit) and any other share declared with
``sample_period``.

* `sample_counts`   per force, measure and sample month: the numerator and denominator (row counts or
                    column sums, as the share declares) and the audited items counted - the sample
                    counts are kept, not only the percentage;
* `sample_rows`     the measure rows: value = numerator / denominator x 100 at the sample's month
                    (period ``month``), compared with the target (e.g. the 100 % aspiration) and, where
                    one is recorded, the national benchmark (comparison ``national``);
* `load_benchmarks` the national benchmarks, data not code: ``contracts/reference/national_benchmarks.yaml``
                    (per measure: value, source, as-of date, the national sample's period). A measure with
                    none recorded has no ``national`` row and says "no national benchmark recorded".
"""

from __future__ import annotations

import datetime as dt
import operator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from etl.core.paths import require_regular_file
from etl.core.periods import Month, PeriodError
from etl.core.reference import contracts_dir, yaml_load
from etl.measures.definitions import DefinitionError, Definitions, Measure
from etl.measures.judgement import MEASURE_SCHEMA

BENCHMARKS_FILE = Path("reference") / "national_benchmarks.yaml"
COUNTS_SCHEMA = {
    "force_id": pl.Utf8,
    "measure_id": pl.Utf8,
    "period": pl.Utf8,  # the sample's month, YYYY-MM
    "numerator": pl.Float64,
    "denominator": pl.Float64,
    "items": pl.Int64,  # rows of the sample the denominator counts
    "inconsistent": pl.Int64,  # rows left out: their numerator column exceeds their denominator column
    "files": pl.Utf8,  # the source files of those rows, with their sha256 (when the table records them)
}
_THRESHOLDS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le, "sla": operator.ge, "count_target": operator.ge}


# --------------------------------------------------------------------------------------------------
# National benchmarks


def _month_text(value: Any) -> Any:
    if value is None:
        return value
    try:
        return str(Month.parse(str(value)))
    except PeriodError as exc:
        raise ValueError(str(exc)) from None


class Benchmark(BaseModel):
    """One national figure a per-sample measure is compared with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    measure_id: str
    value: float = Field(ge=0, le=100)  # percent
    source: str = Field(min_length=1)  # the publication: title, table or page, date
    as_of: dt.date  # when it was published (or copied)
    period_start: Annotated[str | None, BeforeValidator(_month_text)] = None  # the national sample's months, YYYY-MM
    period_end: Annotated[str | None, BeforeValidator(_month_text)] = None
    illustrative: bool = False  # a made-up value for a demonstration, never a published figure

    def covers(self, month: str) -> bool:
        return self.period_start is not None and self.period_end is not None and self.period_start <= month <= self.period_end

    def describe(self) -> str:
        what = "illustrative value, not a published figure; " if self.illustrative else ""
        when = f", national sample {self.period_start}..{self.period_end}" if self.period_start and self.period_end else ""
        return f"national benchmark {self.value:g}% ({what}{self.source}, as of {self.as_of.isoformat()}{when})"


class Benchmarks(BaseModel):
    """``national_benchmarks.yaml``: its version and the benchmarks (none is a valid file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    path: Path | None = None
    benchmarks: Annotated[tuple[Benchmark, ...], BeforeValidator(lambda v: v or ())] = ()

    @field_validator("version", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    def for_sample(self, measure_id: str, month: str) -> Benchmark | None:
        """The benchmark of a measure for a sample taken in MONTH: one whose national sample covers the
        month, else the latest one ending before it; the latest published wins a tie. None if none fits."""
        mine = [b for b in self.benchmarks if b.measure_id == measure_id]
        covering = [b for b in mine if b.covers(month)]
        before = [b for b in mine if b.period_end is not None and b.period_end < month]
        if covering:
            return max(covering, key=lambda b: b.as_of)
        if before:
            return max(before, key=lambda b: (b.period_end, b.as_of))
        return None


def load_benchmarks(path: str | Path | None = None) -> Benchmarks:
    """The national benchmarks (default ``contracts/reference/national_benchmarks.yaml`` of the contracts
    folder in use; a missing default file means none are recorded). A file that breaks a rule raises
    `DefinitionError` naming it. Cached per file: a change is a new file version, read by a new process."""
    return _load_benchmarks(Path(path) if path else contracts_dir() / BENCHMARKS_FILE, path is None)


@lru_cache(maxsize=8)
def _load_benchmarks(path: Path, default: bool) -> Benchmarks:
    if default and not path.exists():
        return Benchmarks(version="none")
    require_regular_file(path, DefinitionError)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml_load(fh)
    except Exception as exc:  # YAML syntax or encoding: named, never a stack trace
        raise DefinitionError(f"{path}: not readable YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DefinitionError(f"{path}: expected a mapping with version and benchmarks")
    try:
        return Benchmarks.model_validate({**data, "path": path})
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in e["loc"])
        raise DefinitionError(f"{path}: {where}: {e['msg']}") from None


# --------------------------------------------------------------------------------------------------
# Counts and rows


def sample_measures(defs: Definitions) -> list[Measure]:
    return [m for m in defs.measures if m.sample_period]


def sample_counts(tables: dict[str, pl.LazyFrame | None], defs: Definitions, measures: list[Measure] | None = None) -> pl.DataFrame:
    """force_id, measure_id, period, numerator, denominator, items, inconsistent, files (`COUNTS_SCHEMA`)
    of every per-sample measure (or of ``measures``) whose extract is in ``tables``, one row per force
    and sample month. Numerator and denominator are row counts, or the sums of the declared columns over
    those rows (a boolean column sums as its true rows). A row whose numerator column exceeds its
    denominator column (more crimes recorded than should have been) is left out and counted in
    ``inconsistent``."""
    parts = []
    for m in measures if measures is not None else sample_measures(defs):
        lf = tables.get(m.extract)
        if lf is None:
            continue
        ns, ds = m.numerator_sum, m.denominator_sum
        over = (pl.col(ns) > pl.col(ds)).fill_null(False) if ns and ds else pl.lit(False)
        in_numerator = m.numerator_filter.expr() if m.numerator_filter else pl.lit(True)
        kept = lf.filter(m.filter.expr()).with_columns(over.alias("_over"), in_numerator.alias("_num"))
        use = ~pl.col("_over")
        numerator = pl.when(use & pl.col("_num")).then(pl.col(ns).cast(pl.Float64) if ns else pl.lit(1.0)).sum()
        denominator = pl.when(use).then(pl.col(ds).cast(pl.Float64) if ds else pl.lit(1.0)).sum()
        names = lf.collect_schema().names()
        files = (
            pl.format("{} (sha256 {})", pl.col("source_file"), pl.col("source_sha256").str.slice(0, 12)).drop_nulls().unique().sort().str.join(", ")
            if {"source_file", "source_sha256"} <= set(names)
            else pl.lit(None, pl.Utf8)
        )
        period = m.sample_period or ""  # always set: the measures given are per-sample
        parts.append(
            kept.group_by("force_id", pl.col(period).cast(pl.Utf8).alias("period"))
            .agg(
                numerator.alias("numerator"),
                denominator.alias("denominator"),
                use.sum().cast(pl.Int64).alias("items"),
                pl.col("_over").sum().cast(pl.Int64).alias("inconsistent"),
                files.alias("files"),
            )
            .with_columns(pl.lit(m.id).alias("measure_id"))
            .select([pl.col(k).cast(t) for k, t in COUNTS_SCHEMA.items()])
        )
    if not parts:
        return pl.DataFrame(schema=COUNTS_SCHEMA)
    return pl.concat(pl.collect_all(parts)).sort("force_id", "measure_id", "period")


def _status(m: Measure, value: float | None) -> str:
    """A threshold target (``ge`` 100 for the aspiration) judges the value on every row; a rule that needs
    a comparison window (``increase``, ``reduce_by`` ...) has none here: monitor."""
    if value is None:
        return "incomplete"
    t = m.target
    if t is None or t.value is None or t.rule not in _THRESHOLDS:
        return "monitor"
    return "met" if _THRESHOLDS[t.rule](value, t.value) else "not_met"


def _count_note(r: dict) -> str:
    text = f"sample counts {r['numerator']:g} / {r['denominator']:g} from {r['items']} audited item(s)"
    if r["inconsistent"]:
        text += f"; {r['inconsistent']} item(s) left out: more counted in the numerator than in the denominator"
    if r["files"]:
        text += f"; sample from {r['files']}"
    return text


def _rows_of(m: Measure, defs: Definitions, r: dict, run_id: str, benchmarks: Benchmarks) -> list[dict]:
    """The rows of one force's sample of one measure: one per declared comparison (target, national)."""
    value = r["numerator"] / r["denominator"] * 100.0 if r["denominator"] else None
    comparisons: list[str | None] = [*m.periods.get("month", ())] or [None]
    bench = benchmarks.for_sample(m.id, r["period"]) if "national" in comparisons else None
    notes = [f"basis: {m.basis}" if m.basis else None, _count_note(r), None if value is not None else "no rows in the denominator"]
    if "national" in comparisons and bench is None:
        notes.append("no national benchmark recorded")
    common = {
        "force_id": r["force_id"],
        "measure_id": m.id,
        "family": m.family,
        "period": "month",
        "period_start": r["period"],
        "period_end": r["period"],
        "value": value,
        "unit": m.unit,
        "target": m.target.text if m.target else f"direction: {m.direction}",
        "status": _status(m, value),
        "run_id": run_id,
    }
    rows = []
    for comp in comparisons:
        if comp == "national" and bench is None:
            continue
        cvalue = (m.target.value if m.target else None) if comp == "target" else bench.value if comp == "national" and bench else None
        change = value - cvalue if value is not None and cvalue is not None else None
        extra = bench.describe() if comp == "national" and bench else None
        rows.append(
            common
            | {
                "comparison": comp,
                "comparison_start": None,
                "comparison_end": None,
                "comparison_value": cvalue,
                "change_abs": change,
                "change_pct": change / cvalue * 100.0 if comp == "national" and change is not None and cvalue else None,
                "definition_version": defs.label_for(m) + (f"; national_benchmarks {benchmarks.version}" if comp == "national" else ""),
                "note": "; ".join(n for n in [*notes, extra] if n),
                "comparison_source": {"target": "target", "national": "national_benchmark"}.get(comp or ""),
            }
        )
    return rows


def sample_rows(
    defs: Definitions,
    measures: pl.DataFrame,
    forces: pl.DataFrame,
    run_id: str,
    tables: dict[str, pl.LazyFrame | None],
    benchmarks: Benchmarks | None = None,
) -> list[pl.DataFrame]:
    """The rows of every per-sample measure for the forces with their own extracts (``forces`` as the
    engine's force table), with the engine's sort keys (force_rank, m_rank, row_rank)."""
    chosen = sample_measures(defs)
    if not chosen:
        return []
    counts = sample_counts(tables, defs, chosen)
    own = forces.filter(pl.col("force_profile")).select("force_id", "force_rank")
    counts = counts.join(own, on="force_id").join(measures.select("measure_id", "m_rank"), on="measure_id")
    if counts.height == 0:
        return []
    benchmarks = benchmarks if benchmarks is not None else load_benchmarks()
    rows = []
    for r in counts.sort("force_rank", "m_rank", "period").iter_rows(named=True):  # one per force, measure and sample: few
        for k, row in enumerate(_rows_of(defs.get(r["measure_id"]), defs, r, run_id, benchmarks)):
            rows.append(row | {"force_rank": r["force_rank"], "m_rank": r["m_rank"], "period_key": r["period"], "k": k})
    frame = pl.DataFrame(rows, schema=MEASURE_SCHEMA | {"force_rank": pl.UInt32, "m_rank": pl.Int64, "period_key": pl.Utf8, "k": pl.Int64})
    # row_rank: the sample's order within its force and measure, then the comparison's
    return [frame.with_columns((pl.col("period_key").rank("dense").over("force_rank", "m_rank").cast(pl.Int64) * 16 + pl.col("k")).alias("row_rank"))]
