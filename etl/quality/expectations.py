"""Auditor-facing expectation suites (Great Expectations) over the committed warehouse tables.

The suites are declarative JSON files in ``expectations/`` (one per table, GX suite format; the
suite's ``meta.table`` names the table and ``meta.columns`` limits which columns GX is given). They
run after a load or backfill, record one ``audit_checks`` row per expectation, and build GX Data Docs
under ``WAREHOUSE/gx/``. GX's default result format writes failing values into the HTML; here every
validation uses ``SUMMARY`` with no partial values and ``exclude_unexpected_values``, so Data Docs
hold counts only and never a crime reference or a victim's age.

**Classified columns.** A column a contract classifies (identifier, personal, sensitive, restricted;
for the ``quarantine`` table its ``record``) may be named only by expectations whose results are
counts (the row-wise and uniqueness expectations below): an aggregate expectation such as
``expect_column_max_to_be_between`` or ``expect_column_most_common_value_to_be_in_set`` reports an
``observed_value`` that is the data itself, so `load_suites` refuses a suite that points one at a
classified column. As a second guard, the stored result of any expectation naming a classified
column keeps its counts only.

**Bounded memory.** GX validates pandas data frames, and a national warehouse's ``recorded_crime``
(millions of rows) as one pandas frame costs gigabytes. A table with more than ``CHUNK_ROWS`` rows
is therefore validated in partitions read straight from the Delta table, and the counts of each
expectation (``element_count``, ``unexpected_count``, ``missing_count``) are added up into one
result per expectation, identical to validating the whole table:

* row-wise expectations (not null, in set, between, regex, ...) give the same counts on any split;
* a uniqueness expectation (``expect_column_values_to_be_unique``,
  ``expect_compound_columns_to_be_unique``) is exact when every partition holds *all* the rows of
  any key value, so its partitions are drawn on one column **of its own key** (e.g. ``force_id`` for
  ``(force_id, crime_ref)``, ``source_file`` for ``(source_file, source_row)``), values packed into
  partitions of at most ``CHUNK_ROWS`` rows; a value with more rows than that, or a key with no
  low-cardinality column, is split by a hash of the whole key. Each uniqueness key is one pass over
  the table, reading only the columns that pass needs; the row-wise expectations ride along with the
  first pass;
* any other expectation (an aggregate such as a row count or a mean, or anything with ``mostly``) is
  validated on the whole table, as before.

The rows of the partitions are counted against the table's row count, so a partition plan that
missed or repeated rows fails loudly instead of giving wrong counts. Repetitive text columns (force,
month, code, status, file) reach GX as pandas categoricals when only row-wise and uniqueness
expectations name them: same results, a third of the memory, and GX's batch fingerprint (a hash of
every value) runs several times faster. Measured on a national year (6.5 million recorded crimes):
peak RSS 3.2 GiB -> 0.75 GiB, 15 s -> 9 s; on ten years (65 million rows) 0.85 GiB.

**Fixed cost.** One GX file context per warehouse is kept for the life of the process; suites are
written to the GX store only when their JSON changed; batches are validated directly (no validation
definitions or checkpoints are stored) and Data Docs are built once per run, for that run's results.
Only the latest ``KEEP_VALIDATION_RESULTS`` validation results of each suite are kept in
``gx/uncommitted/validations`` (and their pages in Data Docs): the index page reads every stored
result, so an unbounded store would make every run slower. The permanent record of every run is the
``audit_checks`` table.

Row-level contract checks are not here: they run on the hot path with pandera (etl/validation.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from etl.core import audit, progress
from etl.core.paths import require_regular_file
from etl.core.validation import CheckResult
from etl.core.warehouse import Warehouse
from etl.resources import expectations_dir

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "exclude_unexpected_values": True, "include_unexpected_rows": False}

# A table with more rows than this is validated in partitions of at most this many rows (a value of
# the partition column with more rows than this gets a partition of its own, split by key hash).
CHUNK_ROWS = int(os.environ.get("ETL_EXPECTATIONS_CHUNK_ROWS", "500000"))
# A column can partition a uniqueness check when it has at most this many distinct values.
MAX_PARTITION_VALUES = 1000
# Validation results kept per suite in gx/uncommitted/validations (and rendered in Data Docs).
KEEP_VALIDATION_RESULTS = 20

# Expectations whose result on a table is the sum of their results on any split of its rows
# (each row is judged on its own values; row_condition filters rows one by one).
ROW_WISE = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_multicolumn_sum_to_equal",
    }
)
# Uniqueness expectations: exact on a split that keeps all rows of a key value together.
UNIQUE_KEY = {
    "expect_column_values_to_be_unique": lambda kw: [kw["column"]],
    "expect_compound_columns_to_be_unique": lambda kw: list(kw["column_list"]),
}
_SUMMED = ("element_count", "unexpected_count", "missing_count")
# Expectations whose SUMMARY result (with RESULT_FORMAT) holds counts only, never a value of the column.
COUNT_ONLY = ROW_WISE | frozenset(UNIQUE_KEY)
# What a result naming a classified column keeps (counts and percentages of rows).
_COUNT_KEYS = frozenset({*_SUMMED, "missing_percent", "unexpected_percent", "unexpected_percent_total", "unexpected_percent_nonmissing"})
# Warehouse columns outside the contracts that hold classified values.
EXTRA_CLASSIFIED = {"quarantine": frozenset({"record"})}


@dataclass
class SuiteOutcome:
    suite: str
    table: str
    checks: list[CheckResult]
    partitions: int = 1


@dataclass
class ExpectationsReport:
    run_id: str
    suites: list[SuiteOutcome]
    data_docs: Path | None

    @property
    def failed(self) -> int:
        return sum(1 for s in self.suites for c in s.checks if not c.passed)

    @property
    def total(self) -> int:
        return sum(len(s.checks) for s in self.suites)


def classified_columns_of(table: str) -> frozenset[str]:
    """Columns of a warehouse table whose values must never reach a suite result or Data Docs: the
    classified columns of the contract loaded into that table (plus EXTRA_CLASSIFIED)."""
    from etl.core.contracts import load_contract
    from etl.core.reference import contracts_dir
    from etl.reporting.exports import usable_contracts

    names = set(EXTRA_CLASSIFIED.get(table, ()))
    # the table's own contract (id = extract for every contract) must parse: its ContractError propagates
    own = [load_contract(table)] if (contracts_dir() / f"{table}.yaml").exists() else []
    for contract in own + usable_contracts():
        if contract.extract == table:
            names.update(c.name for c in contract.columns if c.personal)
    return frozenset(names)


def _named_columns(exp: dict) -> set[str]:
    kw = exp.get("kwargs") or {}
    return {kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)} | set(kw.get("column_list") or [])


def _refuse_value_results(spec: dict, path: Path) -> None:
    """A suite may name a classified column only in expectations whose results are counts."""
    table = spec["meta"]["table"]
    hidden = classified_columns_of(table)
    for exp in spec.get("expectations") or []:
        bad = sorted(_named_columns(exp) & hidden)
        if bad and exp.get("type") not in COUNT_ONLY:
            raise ValueError(
                f"{path}: {exp.get('type')} on {', '.join(bad)} of {table}: the column is classified as personal or "
                f"identifying, and this expectation's result would show its values in Data Docs; only row-wise and "
                f"uniqueness expectations (counts only) may name it"
            )


def load_suites(folder: Path | None = None) -> list[dict]:
    folder = folder or expectations_dir()
    suites = []
    for path in sorted(folder.glob("*.json")):
        require_regular_file(path, ValueError)
        data = json.loads(path.read_text(encoding="utf-8"))
        if "table" not in (data.get("meta") or {}):
            raise ValueError(f"{path}: suite meta.table must name the warehouse table it checks")
        _refuse_value_results(data, path)
        data["_path"] = path
        suites.append(data)
    return suites


# ---------------------------------------------------------------------------------- GX context


@dataclass
class _Gx:
    """One GX file context for one warehouse, kept for the life of the process."""

    gx: Any  # the great_expectations module (GX 1.x context objects are not typed)
    ctx: Any
    yml: Path
    mtime: float
    suites: dict[str, str] = field(default_factory=dict)  # suite name -> fingerprint known stored
    batch_defs: dict[str, object] = field(default_factory=dict)
    stale_pages: set[str] = field(default_factory=set)  # suites whose Data Docs page needs rendering


_CONTEXTS: OrderedDict[str, _Gx] = OrderedDict()
_CONTEXTS_MAX = 4
_LOCK = threading.RLock()  # GX contexts are not thread-safe; one validation at a time per process


def _context(root: Path) -> _Gx:
    """The GX file context of the warehouse at root (created on first use, then reused)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    key = str(Path(root).resolve())
    yml = Path(key) / "gx" / "great_expectations.yml"
    cached = _CONTEXTS.get(key)
    if cached is not None and yml.exists() and yml.stat().st_mtime == cached.mtime:
        _CONTEXTS.move_to_end(key)
        return cached
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=key)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    try:
        ctx.data_sources.get("warehouse")
    except LookupError:  # KeyError when the project has no such data source yet
        ctx.data_sources.add_pandas("warehouse")
    state = _Gx(gx, ctx, yml, 0.0)
    _CONTEXTS[key] = state
    while len(_CONTEXTS) > _CONTEXTS_MAX:
        _CONTEXTS.popitem(last=False)
    state.mtime = yml.stat().st_mtime
    return state


def _batch_definition(state: _Gx, table: str):
    if table in state.batch_defs:
        return state.batch_defs[table]
    datasource = state.ctx.data_sources.get("warehouse")
    try:
        asset = datasource.get_asset(table)
    except LookupError:
        asset = datasource.add_dataframe_asset(table)
    try:
        batch_def = asset.get_batch_definition("whole_table")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole_table")
    state.batch_defs[table] = batch_def
    state.mtime = state.yml.stat().st_mtime
    return batch_def


def _suite(state: _Gx, spec: dict):
    """The spec as a GX suite, written to the GX store only when its JSON changed."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    body = {k: v for k, v in spec.items() if k != "_path"}
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    meta = {k: v for k, v in spec["meta"].items() if k != "columns"} | {"etl_fingerprint": fingerprint}
    suite = ExpectationSuite(name=spec["name"], expectations=spec["expectations"], meta=meta)
    name = spec["name"]
    if state.suites.get(name) != fingerprint:
        from great_expectations.exceptions import DataContextError

        try:
            current = (state.ctx.suites.get(name).meta or {}).get("etl_fingerprint") == fingerprint
        except DataContextError:  # not stored yet
            current = False
        if not current:
            state.ctx.suites.add_or_update(suite)
            state.stale_pages.add(name)
        state.suites[name] = fingerprint
    return suite


# ---------------------------------------------------------------------------------- partitions


@dataclass
class _Pass:
    indices: list[int]  # positions of its expectations in the suite
    columns: list[str]  # columns it reads
    filters: list[pl.Expr | None]  # one per partition; None = the whole table


def _columns_of(exp: dict, all_columns: list[str]) -> list[str]:
    kw = exp.get("kwargs") or {}
    if kw.get("row_condition"):
        return list(all_columns)  # the condition may name any column
    cols = [kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)]
    cols += list(kw.get("column_list") or [])
    return [c for c in all_columns if c in cols] or list(all_columns)


def _partition_filters(lf: pl.LazyFrame, key: list[str], rows: int) -> list[pl.Expr | None]:
    """Filters splitting the table into partitions that each hold every row of any value of key."""
    schema = lf.collect_schema()
    # pandas takes NaN and null in a float column for the same value: hash them alike
    key_hash = pl.struct([pl.col(c).fill_nan(None) if schema[c].is_float() else pl.col(c) for c in key]).hash(seed=20190401)
    sample = lf.select(key).head(CHUNK_ROWS).select(pl.all().n_unique()).collect().row(0, named=True)
    best: pl.DataFrame | None = None
    best_col = ""
    best_largest = 0
    for col in key:
        if sample[col] > MAX_PARTITION_VALUES or schema[col].is_float():
            continue
        counts = lf.group_by(col).agg(pl.len().alias("n")).collect(engine="streaming")
        if counts.height > MAX_PARTITION_VALUES or counts.height < 2:
            continue
        largest = int(counts["n"].max())  # type: ignore[arg-type]  # a count column: never null here
        if best is None or largest < best_largest:
            best, best_col, best_largest = counts, col, largest
    if best is None:  # no column of the key partitions the table: split by hash of the whole key
        parts = max(1, math.ceil(rows / CHUNK_ROWS))
        return [key_hash % parts == i for i in range(parts)]
    filters: list[pl.Expr | None] = []
    bins: list[tuple[int, list]] = []  # first-fit decreasing: (rows, values)
    for value, n in sorted(best.iter_rows(), key=lambda r: -r[1]):
        if n > CHUNK_ROWS:  # one value too big for a partition: split its rows by key hash
            same = pl.col(best_col).is_null() if value is None else pl.col(best_col) == value
            parts = math.ceil(n / CHUNK_ROWS)
            filters += [same & (key_hash % parts == i) for i in range(parts)]
            continue
        for i, (size, values) in enumerate(bins):
            if size + n <= CHUNK_ROWS:
                bins[i] = (size + n, values + [value])
                break
        else:
            bins.append((n, [value]))
    for _, values in bins:
        present = [v for v in values if v is not None]
        expr = pl.col(best_col).is_in(present)
        if len(present) < len(values):
            expr = expr | pl.col(best_col).is_null()
        filters.append(expr)
    return filters


def _plan(lf: pl.LazyFrame, expectations: list[dict], columns: list[str], rows: int) -> list[_Pass]:
    """How to validate the suite: passes over the table, each split into partitions."""
    if rows <= CHUNK_ROWS:
        return [_Pass(list(range(len(expectations))), columns, [None])]
    whole: list[int] = []
    row_wise: list[int] = []
    keyed: dict[tuple[str, ...], list[int]] = {}
    for i, exp in enumerate(expectations):
        kw = exp.get("kwargs") or {}
        if "mostly" in kw:
            whole.append(i)
        elif exp["type"] in UNIQUE_KEY:
            keyed.setdefault(tuple(UNIQUE_KEY[exp["type"]](kw)), []).append(i)
        elif exp["type"] in ROW_WISE:
            row_wise.append(i)
        else:
            whole.append(i)
    passes = []
    if whole:
        passes.append(_Pass(whole, columns, [None]))
    keys = list(keyed.items())
    if row_wise and not keys:
        keys = [(tuple(columns), [])]
    for n, (key, indices) in enumerate(keys):
        members = indices + (row_wise if n == 0 else [])
        needed = set(key).union(*(_columns_of(expectations[i], columns) for i in members))
        passes.append(_Pass(sorted(members), [c for c in columns if c in needed], _partition_filters(lf, list(key), rows)))
    return passes


# ---------------------------------------------------------------------------------- results


def _combine(parts: list):
    """One expectation's result over the whole table from its results over a split of the rows."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )

    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    result = dict(first.result or {})
    for k in _SUMMED:
        if k in result:
            result[k] = sum(int((p.result or {}).get(k) or 0) for p in parts)
    element = result.get("element_count") or 0
    unexpected = result.get("unexpected_count")
    if unexpected is not None and "unexpected_percent" in result:
        total = unexpected / element * 100 if element else None
        if "missing_count" in result:
            nonmissing = element - result["missing_count"]
            result["missing_percent"] = result["missing_count"] / element * 100 if element else None
            result["unexpected_percent_total"] = total
            result["unexpected_percent_nonmissing"] = (unexpected / nonmissing * 100 if nonmissing > 0 else None) if element else None
            result["unexpected_percent"] = result["unexpected_percent_nonmissing"]
        else:
            result["unexpected_percent"] = total
    failed = next((p for p in parts if (p.exception_info or {}).get("raised_exception")), None)
    return ExpectationValidationResult(
        success=all(p.success for p in parts),
        expectation_config=first.expectation_config,
        result=result,
        meta=first.meta,
        exception_info=(failed or first).exception_info,
    )


def _check(r, fallback_rows: int) -> CheckResult:
    cfg = r.expectation_config
    kw = cfg.kwargs
    column = kw.get("column") or ",".join(kw.get("column_list") or [])
    note = (cfg.meta or {}).get("notes")
    return CheckResult(
        check=f"{cfg.type}({column})" + _condition_text(kw.get("row_condition")),
        column=column or None,
        description=note or cfg.type.replace("_", " "),
        severity="warning",
        passed=bool(r.success),
        failing_rows=int(r.result.get("unexpected_count") or 0),
        rows_checked=int(r.result.get("element_count") or fallback_rows),
    )


def _categorical_safe(expectations: list[dict], columns: list[str]) -> set[str]:
    """Columns GX may be given as pandas categoricals: only ROW_WISE and uniqueness expectations use them.

    A type expectation or an aggregate would see the categorical dtype, so a column any other
    expectation names stays text (row conditions may name any column: pandas queries treat a
    categorical like its values).
    """
    safe = set(columns)
    for exp in expectations:
        if exp["type"] not in ROW_WISE and exp["type"] not in UNIQUE_KEY:
            kw = exp.get("kwargs") or {}
            named = {kw.get(k) for k in ("column", "column_A", "column_B")} | set(kw.get("column_list") or [])
            safe -= named if named - {None} else set(columns)
    return safe


def _to_pandas(frame: pl.DataFrame, categorical_ok: set[str]):
    """The frame as pandas, repetitive text columns as categoricals (a third of the memory, and GX's
    batch fingerprint hashes them far faster); results are the same for the expectations allowed."""
    text = [c for c in frame.columns if c in categorical_ok and frame.schema[c] == pl.String]
    if text and frame.height >= 1000:
        distinct = frame.select(pl.col(text).n_unique()).row(0, named=True)
        repetitive = [c for c in text if distinct[c] * 4 <= frame.height]
        if repetitive:
            frame = frame.with_columns(pl.col(repetitive).cast(pl.Categorical))
    return frame.to_pandas()


def _validate(batch_def, pdf, suite):
    """Validate the pandas frame against the suite, as ValidationDefinition.run does, without storing.

    (``Batch.validate`` would build the batch twice - and GX fingerprints every batch by hashing it.)
    """
    from great_expectations.validator.v1_validator import Validator

    return Validator(batch_definition=batch_def, batch_parameters={"dataframe": pdf}, result_format=RESULT_FORMAT).validate_expectation_suite(suite)


def _validate_table(state: _Gx, spec: dict, lf: pl.LazyFrame, columns: list[str], rows: int, run_name: str):
    """Validate the suite on the table (in partitions when big): (suite result, partitions)."""
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.validator.validation_statistics import (
        calc_validation_statistics,
    )

    suite = _suite(state, spec)
    batch_def = _batch_definition(state, spec["meta"]["table"])
    plan = _plan(lf, spec["expectations"], columns, rows)
    categorical_ok = _categorical_safe(spec["expectations"], columns)
    parts: dict[int, list] = {}
    meta: dict | None = None
    batch_id = None
    partitions = 0
    for p in plan:
        sub = suite if len(plan) == 1 else ExpectationSuite(name=suite.name, expectations=[spec["expectations"][i] for i in p.indices], meta=suite.meta)
        seen = 0
        for flt in p.filters:
            frame = (lf.select(p.columns) if flt is None else lf.select(p.columns).filter(flt)).collect(engine="streaming")
            if frame.height == 0 and flt is not None:
                continue
            seen += frame.height
            pdf = _to_pandas(frame, categorical_ok)
            del frame
            result = _validate(batch_def, pdf, sub)
            del pdf
            partitions += 1
            if meta is None:
                meta, batch_id = dict(result.meta), result.batch_id
            for i, r in zip(p.indices, result.results):
                parts.setdefault(i, []).append(r)
        if seen != rows:
            raise RuntimeError(f"expectations on {spec['meta']['table']}: partitions held {seen} rows, the table {rows}")
    results = [_combine(parts[i]) for i in range(len(spec["expectations"]))]
    hidden = classified_columns_of(spec["meta"]["table"])
    for exp, r in zip(spec["expectations"], results):
        if _named_columns(exp) & hidden:  # second guard: counts only, whatever the expectation
            r.result = {k: v for k, v in (r.result or {}).items() if k in _COUNT_KEYS}
    stats = calc_validation_statistics(results)
    suite_result = ExpectationSuiteValidationResult(
        success=stats.success,
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": stats.evaluated_expectations,
            "successful_expectations": stats.successful_expectations,
            "unsuccessful_expectations": stats.unsuccessful_expectations,
            "success_percent": stats.success_percent,
        },
        meta=dict(meta or {}) | {"partitions": partitions},
        batch_id=batch_id,
    )
    # as ValidationDefinition.run does; the run name is the audit run id
    run_time = dt.datetime.now(dt.UTC)
    suite_result.meta["run_id"] = RunIdentifier(run_name=run_name, run_time=run_time)
    suite_result.meta["validation_time"] = run_time  # type: ignore[arg-type]  # GX stores a datetime here, as ValidationDefinition.run does
    return suite_result, partitions


def _store(state: _Gx, suite_result, batch_id: str, site: Path):
    """Store the suite result in the GX validation store; returns the identifiers Data Docs renders
    (the suite's own page only when the suite changed or its page is missing)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    name = suite_result.suite_name
    suite_key = ExpectationSuiteIdentifier(name=name)
    key = ValidationResultIdentifier(expectation_suite_identifier=suite_key, run_id=suite_result.meta["run_id"], batch_identifier=batch_id)
    state.ctx.validation_results_store.set(key, suite_result)
    if name in state.stale_pages or not (site / "expectations" / f"{name}.html").exists():
        state.stale_pages.discard(name)
        return [key, suite_key]
    return [key]


def _prune(state: _Gx) -> None:
    """Keep the latest KEEP_VALIDATION_RESULTS validation results of each suite."""
    store = state.ctx.validation_results_store
    by_suite: dict[str, list] = {}
    for key in store.list_keys():
        by_suite.setdefault(key.expectation_suite_identifier.name, []).append(key)
    for keys in by_suite.values():
        keys.sort(key=lambda k: str(k.run_id.run_time), reverse=True)
        for old in keys[KEEP_VALIDATION_RESULTS:]:
            store.remove_key(old)


def run_expectations(warehouse: str | Path, commit: bool = True) -> ExpectationsReport:
    """Run every suite on the committed tables; record results in audit_checks; build Data Docs.

    Tables larger than CHUNK_ROWS are validated partition by partition (see the module docstring);
    the results are the same as validating the whole table at once. With ``commit``, the run holds
    the warehouse (`Warehouse.run`), so the results it records are those of the state it read.
    """
    wh = Warehouse(warehouse)
    if not commit:
        return _run_expectations(wh, commit)
    with wh.run():
        return _run_expectations(wh, commit)


def _run_expectations(wh: Warehouse, commit: bool) -> ExpectationsReport:
    run_id = audit.new_run_id("expectations")
    started = audit.utcnow()
    outcomes: list[SuiteOutcome] = []
    docs = wh.root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    with _LOCK:
        state = _context(wh.root)
        resources: list = []
        for spec in load_suites():
            table = spec["meta"]["table"]
            lf = wh.scan(table)  # pinned to the committed version: every partition reads the same snapshot
            if lf is None:
                continue
            available = lf.collect_schema().names()
            cols = spec["meta"].get("columns")
            columns = [c for c in cols if c in available] if cols else available
            rows = int(lf.select(pl.len()).collect().item())
            with progress.stage("expectations", table=table, rows=rows):
                suite_result, partitions = _validate_table(state, spec, lf, columns, rows, run_id)
            resources += _store(state, suite_result, suite_result.batch_id, docs.parent)
            outcomes.append(SuiteOutcome(spec["name"], table, [_check(r, rows) for r in suite_result.results], partitions))
        if resources:
            _prune(state)
            state.ctx.build_data_docs(resource_identifiers=resources)
    report = ExpectationsReport(run_id, outcomes, docs if docs.exists() else None)
    log.info("expectations %s: %d suite(s), %d expectation(s), %d not met", run_id, len(outcomes), report.total, report.failed)
    if commit and outcomes:
        frame = pl.concat(
            [
                audit.checks_frame(run_id, None, None, [], [(o.table, c) for c in o.checks]).with_columns(
                    pl.lit(f"expectations/{o.suite}.json").alias("contract")
                )
                for o in outcomes
            ]
        )
        row = audit.run_row(run_id, "expectations", None, None, started, [], None, f"{report.total} expectations, {report.failed} not met; Data Docs: {docs}")
        wh.commit(run_id, [], row, frame)
    return report


def _condition_text(condition) -> str:
    if not condition:
        return ""
    if isinstance(condition, dict):  # GX 1.x may hand back a parsed condition
        condition = condition.get("pass_through_filter") or json.dumps(condition, sort_keys=True)
    return f" where {condition}"
