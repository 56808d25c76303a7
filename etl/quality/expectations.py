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
peak RSS 3.2 GiB -> 0.75 GiB, 15 s -> 9 s; on ten years (65 million rows) 0.85 GiB. (``CHUNK_ROWS`` is
1,000,000 since the key columns reach GX as numbers.)

**Only what a run wrote.** A Delta table's data files never change (a load adds files and removes the
ones it replaces), so the row-wise and uniqueness expectations of a table of at least
``BY_FILE_MIN_ROWS`` rows are validated file by file and each file's counts kept (`_ByFile`, in
``WAREHOUSE/.etl-expectations/``): a run validates the files written since the last run - the months
the loads wrote - and adds up the kept counts, the same numbers as validating the table. A uniqueness
expectation is corrected for the keys found in more than one file (those rows validated together,
see the comment at `_ByFile`); keys are compared between files only where their ranges overlap, so
keys that grow over time (crime references, run ids, file names) never make a run read an old file.
The partitions above then apply within a file. A partitioned table, deletion vectors, a ``mostly``,
an aggregate or a float key column: validated on the whole table as above.

**Speed.** GX fingerprints each pandas batch under 1 GB by hashing every value (a batch marker,
``pandas_data_fingerprint``); here a batch is a partition or a file, so the fingerprint identifies
nothing and is skipped as GX skips it above 1 GB (`_no_data_fingerprint`) - it took most of the time.
Text columns named only by not-null, null and uniqueness expectations reach GX as numbers (a 53-bit
hash where no two values share one, else a rank; nulls stay null; `_code_safe`): the same rows are
null and the same rows repeat, so the results are the same, pandas compares numbers far faster, and
no crime reference reaches GX at all. National year (6.5 million rows, 12 files): 8.3 s -> about 4 s
for the first run, 0.6 s for a run after a month's load (measured on a 2-core machine under load).

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
from collections.abc import Iterator
from contextlib import contextmanager
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
CHUNK_ROWS = int(os.environ.get("ETL_EXPECTATIONS_CHUNK_ROWS", "1000000"))
# A column can partition a uniqueness check when it has at most this many distinct values.
MAX_PARTITION_VALUES = 1000
# Validation results kept per suite in gx/uncommitted/validations (and rendered in Data Docs).
KEEP_VALIDATION_RESULTS = 20
# Validate the row-wise and uniqueness expectations file by file, keeping each file's results (`_ByFile`).
BY_FILE = os.environ.get("ETL_EXPECTATIONS_BY_FILE", "1") != "0"

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
        counts = lf.group_by(col).agg(pl.len().alias("__rows")).collect(engine="streaming")  # (a key column may be called n)
        if counts.height > MAX_PARTITION_VALUES or counts.height < 2:
            continue
        largest = int(counts["__rows"].max())  # type: ignore[arg-type]  # a count column: never null here
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
    if rows <= CHUNK_ROWS:  # one pass, reading only the columns the expectations name
        needed = set().union(*(_columns_of(e, columns) for e in expectations))
        return [_Pass(list(range(len(expectations))), [c for c in columns if c in needed], [None])]
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


@dataclass
class _Part:
    """One expectation's result on a part of the table (a partition, a file or a set of rows)."""

    success: bool
    result: dict
    exception_info: dict

    @classmethod
    def of(cls, r) -> _Part:
        return cls(bool(r.success), dict(r.result or {}), dict(r.exception_info or {}))

    def to_json(self) -> dict:
        return {"success": self.success, "result": self.result, "exception_info": self.exception_info}

    @classmethod
    def from_json(cls, d: dict) -> _Part:
        return cls(bool(d["success"]), dict(d.get("result") or {}), dict(d.get("exception_info") or {}))


def _combine(parts: list[_Part], minus: list[_Part] | None = None) -> _Part:
    """One expectation's result over the whole table from its results over a split of the rows.

    ``minus``: results over rows counted twice in ``parts`` (a uniqueness check's rows whose key spans
    several files: counted per file in ``parts``, once together in a part of their own, and per file
    in ``minus``). Counts are summed; without ``minus`` the result succeeds when every part does, with it
    when no row is unexpected (the same thing for the expectations split: no ``mostly``)."""
    minus = minus or []
    if len(parts) == 1 and not minus:
        return parts[0]
    first = parts[0]
    result = dict(first.result)
    for k in _SUMMED:
        if k in result:
            result[k] = sum(int(p.result.get(k) or 0) for p in parts) - sum(int(p.result.get(k) or 0) for p in minus)
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
    every = parts + minus
    failed = next((p for p in every if p.exception_info.get("raised_exception")), None)
    if minus:
        success = failed is None and not (unexpected or 0)
    else:
        success = all(p.success for p in parts)
    return _Part(success, result, (failed or first).exception_info)


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


# Expectations whose result depends only on which values of a column are null and which are equal.
EQUALITY_ONLY = frozenset({"expect_column_values_to_not_be_null", "expect_column_values_to_be_null", *UNIQUE_KEY})


def _code_safe(expectations: list[dict], columns: list[str]) -> set[str]:
    """Text columns GX may be given as numbers (each distinct value its number, nulls kept null): those
    named only by EQUALITY_ONLY expectations and by no row condition. The same rows are null and the same
    rows repeat, so the results are the same; pandas compares numbers many times faster than text, and no
    value of such a column (a crime reference, a file name) reaches GX at all."""
    safe = set(columns)
    for exp in expectations:
        kw = exp.get("kwargs") or {}
        condition = kw.get("row_condition")
        if condition:
            safe -= {c for c in columns if c in json.dumps(condition, default=str)}
        if exp["type"] not in EQUALITY_ONLY:
            named = _named_columns(exp)
            safe -= named if named else set(columns)
    return safe


def _coded(frame: pl.DataFrame, code_ok: set[str]) -> list[str]:
    return [c for c in frame.columns if c in code_ok and frame.schema[c] == pl.String]


def _to_pandas(frame: pl.DataFrame, categorical_ok: set[str], coded: list[str], exact: bool = False):
    """The frame as pandas: its ``coded`` text columns (`_coded`) as numbers (`_code_safe`, `_codes`), other
    repetitive text columns as categoricals (a third of the memory); results are the same for the expectations
    allowed."""
    if coded:
        frame = frame.with_columns(_codes(coded, exact))
    text = [c for c in frame.columns if c in categorical_ok and c not in coded and frame.schema[c] == pl.String]
    if text and frame.height >= 1000:
        distinct = frame.select(pl.col(text).n_unique()).row(0, named=True)
        repetitive = [c for c in text if distinct[c] * 4 <= frame.height]
        if repetitive:
            frame = frame.with_columns(pl.col(repetitive).cast(pl.Categorical))
    return frame.to_pandas()


def _codes(columns: list[str], exact: bool) -> list[pl.Expr]:
    """A number per distinct value of each column, nulls kept: a 53-bit hash of the value (exact in the float64
    pandas makes of a column with nulls), or with ``exact`` the value's dense rank.

    Two values may share a hash. That can only make a uniqueness expectation find repeats that are not there,
    never hide one (and the null checks see the same nulls). So where one finds any repeat in a hashed column,
    the frame's distinct values and hashes are counted (`_hashes_exact`) and, only if two values share a hash,
    it is validated again with exact numbers (`_Runner.run`): results are always those of the values
    themselves, and the common case - no repeats - costs a hash instead of a count of distinct text."""
    if exact:
        return [pl.col(c).rank("dense").alias(c) for c in columns]
    return [_hashed(c) for c in columns]


def _hashed(column: str) -> pl.Expr:
    return pl.when(pl.col(column).is_null()).then(None).otherwise(pl.col(column).hash(seed=20190401) // 2048).alias(column)


def _hashes_exact(frame: pl.DataFrame, coded: list[str]) -> bool:
    """Whether no two values of any ``coded`` column of ``frame`` share a hash (`_hashed`): as many distinct
    hashes as distinct values."""
    counts = frame.select(
        [pl.col(c).n_unique().alias(f"v{i}") for i, c in enumerate(coded)] + [_hashed(c).n_unique().alias(f"h{i}") for i, c in enumerate(coded)]
    ).row(0)
    return counts[: len(coded)] == counts[len(coded) :]


def _repeats_in(result, coded: list[str]) -> bool:
    """Whether a uniqueness expectation on any of the ``coded`` columns found a repeat (or failed) in ``result``."""
    for r in result.results:
        cfg = r.expectation_config
        if cfg.type in UNIQUE_KEY and set(UNIQUE_KEY[cfg.type](cfg.kwargs)) & set(coded):
            if not r.success or (r.result or {}).get("unexpected_count"):
                return True
    return False


@contextmanager
def _no_data_fingerprint() -> Iterator[None]:
    """GX marks every pandas batch under 1 GB with a fingerprint, an MD5 of a hash of all its values (shown
    in Data Docs as the batch marker ``pandas_data_fingerprint``); above that it skips it (its own
    ``HASH_THRESHOLD``). Here a batch is one partition or file of a table, so its fingerprint identifies
    no table state, and hashing it took most of the validation time: skip it for every batch, as GX does
    for large ones. Nothing the expectations compute depends on it."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    before = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = before


def _validate(batch_def, pdf, suite):
    """Validate the pandas frame against the suite, as ValidationDefinition.run does, without storing.

    (``Batch.validate`` would build the batch twice - and GX fingerprints every batch by hashing it.)
    """
    from great_expectations.validator.v1_validator import Validator

    return Validator(batch_definition=batch_def, batch_parameters={"dataframe": pdf}, result_format=RESULT_FORMAT).validate_expectation_suite(suite)


MARK = "etl_position"  # meta key of an expectation's position in its suite, while it is validated


@dataclass
class _Runner:
    """Validates subsets of a suite's expectations on frames of one table, counting partitions."""

    state: _Gx
    spec: dict
    suite: Any
    batch_def: Any
    columns: list[str]
    categorical_ok: set[str]
    code_ok: set[str]
    partitions: int = 0
    meta: dict | None = None
    batch_id: str | None = None
    template: dict[int, Any] = field(default_factory=dict)  # expectation -> a GX result of it (its configuration, for the suite result)

    def run(self, lf: pl.LazyFrame, indices: list[int], rows: int, what: str) -> dict[int, list[_Part]]:
        """Validate the expectations ``indices`` on ``lf`` (``rows`` rows), in partitions when big: parts per expectation."""
        from great_expectations.core.expectation_suite import ExpectationSuite

        expectations = [self.spec["expectations"][i] for i in indices]
        plan = _plan(lf, expectations, self.columns, rows)
        parts: dict[int, list[_Part]] = {}
        for p in plan:
            members = [indices[k] for k in p.indices]
            # GX hands results back in its own order (by column): each expectation carries its position in the suite
            marked = [{**self.spec["expectations"][i], "meta": {**(self.spec["expectations"][i].get("meta") or {}), MARK: i}} for i in members]
            sub = ExpectationSuite(name=self.suite.name, expectations=marked, meta=self.suite.meta)
            seen = 0
            for flt in p.filters:
                part = lf.select(p.columns) if flt is None else lf.select(p.columns).filter(flt)
                frame = part.collect(engine="streaming")
                if frame.height == 0 and flt is not None:
                    continue
                seen += frame.height
                coded = _coded(frame, self.code_ok)
                pdf = _to_pandas(frame, self.categorical_ok, coded)
                del frame
                result = _validate(self.batch_def, pdf, sub)
                del pdf
                if coded and _repeats_in(result, coded):  # a repeat, or two values sharing a hash (`_codes`)?
                    frame = part.collect(engine="streaming")
                    if not _hashes_exact(frame, coded):
                        result = _validate(self.batch_def, _to_pandas(frame, self.categorical_ok, coded, exact=True), sub)
                    del frame
                self.partitions += 1
                if self.meta is None:
                    self.meta, self.batch_id = dict(result.meta), result.batch_id
                for r in result.results:
                    i = int(r.expectation_config.meta.pop(MARK))
                    parts.setdefault(i, []).append(_Part.of(r))
                    self.template.setdefault(i, r)
            if seen != rows:
                raise RuntimeError(f"expectations on {self.spec['meta']['table']}{what}: partitions held {seen} rows, the table {rows}")
        return parts


def _validate_table(state: _Gx, spec: dict, lf: pl.LazyFrame, columns: list[str], rows: int, run_name: str, by_file: _ByFile | None = None) -> tuple[Any, int]:
    """Validate the suite on the table: (suite result, partitions). The expectations `_ByFile` can take are
    validated file by file with results kept for the files already seen (``by_file``); the others on the
    whole table, in partitions when big."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.validator.validation_statistics import (
        calc_validation_statistics,
    )

    suite = _suite(state, spec)
    expectations = spec["expectations"]
    runner = _Runner(
        state,
        spec,
        suite,
        _batch_definition(state, spec["meta"]["table"]),
        columns,
        _categorical_safe(expectations, columns),
        _code_safe(expectations, columns),
    )
    per_file = by_file.indices(expectations, lf.collect_schema()) if by_file is not None else []
    whole = [i for i in range(len(expectations)) if i not in per_file]
    combined: dict[int, _Part] = {}
    if whole:
        parts = runner.run(lf, whole, rows, "")
        combined.update({i: _combine(parts[i]) for i in whole})
    if per_file:
        assert by_file is not None
        combined.update(by_file.validate(runner, per_file, rows))
    results = []
    for i in range(len(expectations)):
        part = combined[i]
        template = runner.template.get(i)
        config = template.expectation_config if template is not None else _configuration(suite, i, spec["meta"]["table"])
        meta = template.meta if template is not None else {}
        results.append(
            ExpectationValidationResult(success=part.success, expectation_config=config, result=part.result, meta=meta, exception_info=part.exception_info)
        )
    hidden = classified_columns_of(spec["meta"]["table"])
    for exp, r in zip(expectations, results):
        if _named_columns(exp) & hidden:  # second guard: counts only, whatever the expectation
            r.result = {k: v for k, v in (r.result or {}).items() if k in _COUNT_KEYS}
    stats = calc_validation_statistics(results)
    meta = runner.meta if runner.meta is not None else (by_file.meta if by_file is not None else None)
    batch_id = runner.batch_id or (by_file.batch_id if by_file is not None else None) or f"warehouse-{spec['meta']['table']}"
    if by_file is not None:
        by_file.remember(meta, batch_id)
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
        meta=dict(meta or {}) | {"partitions": runner.partitions},
        batch_id=batch_id,
    )
    # as ValidationDefinition.run does; the run name is the audit run id
    run_time = dt.datetime.now(dt.UTC)
    suite_result.meta["run_id"] = RunIdentifier(run_name=run_name, run_time=run_time)
    suite_result.meta["validation_time"] = run_time  # type: ignore[arg-type]  # GX stores a datetime here, as ValidationDefinition.run does
    return suite_result, runner.partitions


def _configuration(suite, i: int, table: str):
    """The configuration of the suite's i-th expectation as a validation result names it (when no file was
    validated in this run, the results are all remembered ones)."""
    config = suite.expectations[i].configuration
    config.kwargs["batch_id"] = f"warehouse-{table}"
    return config


# ---------------------------------------------------------------------------------- file by file
#
# A Delta table's data files never change: a load adds the files of the months it writes and removes the
# files it replaces. The results of the row-wise expectations on a file are therefore the same in every
# run, and a table's result is the sum of its files' results: `_ByFile` validates each file once, keeps
# its counts (BY_FILE_FOLDER/<suite>.json) and adds them up, so a run validates the files the
# loads since the last run wrote, not the table's history.
#
# A uniqueness expectation is a sum over files too, once the keys found in more than one file (D) are
# set apart: for each file F, R(F) counts F's rows whose key repeats within F; the rows of D's keys are
# validated together (R(P)) and, per file holding some (R(F n P)), taken out of R(F):
#
#     R(table) = sum over files of R(F)  -  sum over files holding D's keys of R(F n P)  +  R(P)
#
# exactly the counts of validating the table at once (GX itself computes every term). D is kept with the
# counts and updated from the files added: each file's keys are summarised as zones (per value of the
# key's first column, the smallest and largest value of the next; `_zones`), a new file's keys are
# compared with the zones of the others and only the files whose zones hold one of them are read and
# joined. With keys that grow over time (crime references, run ids, file names) no zone overlaps and
# nothing is read.

BY_FILE_VERSION = "1"
# Where the per-file results are kept, in the warehouse folder (not a table; deleting it only costs one full
# validation). Outside gx/: besides counts it holds the zones of key values (crime references among them, as
# the tables do), and nothing of a key's value may reach the GX stores or Data Docs.
BY_FILE_FOLDER = ".etl-expectations"
MAX_LEADS = 1000  # a key's first column with more values than this in a file is not used to split its zones
MAX_SHARED_FILES = 64  # files D's keys may span before a uniqueness expectation is validated on the whole table instead
# A table of fewer rows is validated whole: one GX run costs less than one per file (audit_runs, quarantine).
BY_FILE_MIN_ROWS = int(os.environ.get("ETL_EXPECTATIONS_BY_FILE_MIN_ROWS", "200000"))


def _encodable(dtype: pl.DataType) -> bool:
    """Key columns whose values compare and order the same after `_encoded` (floats do not: pandas takes 0.0 and -0.0, NaN and null, as equal)."""
    if dtype.is_integer():
        return dtype != pl.UInt64
    return dtype == pl.String or dtype in (pl.Date, pl.Boolean) or isinstance(dtype, pl.Datetime)


def _encoded(column: str, dtype: pl.DataType, alias: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Int64) if dtype.is_integer() else pl.col(column).cast(pl.Utf8)).alias(alias)


class _ByFile:
    """The per-file results of one suite on one table (see the comment above)."""

    def __init__(self, wh: Warehouse, spec: dict, columns: list[str]):
        import great_expectations as gx

        self.wh = wh
        self.spec = spec
        self.table = spec["meta"]["table"]
        self.table_root = wh.cache_key(self.table)  # what the paths of `Warehouse.files` start with
        body = {k: v for k, v in spec.items() if k != "_path"}
        self.fingerprint = hashlib.sha256(
            json.dumps(
                {"v": BY_FILE_VERSION, "gx": gx.__version__, "suite": body, "columns": columns, "table": str(self.table_root)}, sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:24]
        self.path = wh.local_dir(BY_FILE_FOLDER) / f"{spec['name']}.json"
        state: dict = {}
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        if state.get("fingerprint") != self.fingerprint:
            state = {}
        self.known: dict[str, dict] = state.get("files") or {}
        self.shared: dict[str, list] = state.get("shared") or {}
        self.meta: dict | None = state.get("meta")
        self.batch_id: str | None = state.get("batch_id")
        self.files: list[tuple[str, str, int]] = []  # (name in the table, absolute path, rows) of the committed version
        self.usable = self._list_files()

    # -- which files, which expectations
    def _list_files(self) -> bool:
        files = self.wh.files(self.table)
        version = self.wh.committed_versions().get(self.table)
        if files is None or version is None or any(c.startswith("partition.") for c in files.columns):
            return False  # a partitioned table's files lack their partition columns: validated whole
        protocol = self.wh.delta(self.table, version).protocol()
        if "deletionVectors" in (protocol.reader_features or []):
            return False  # a file's rows may be deleted without the file changing: validated whole
        for path, n in files.select("path", "num_records").iter_rows():
            if n is None:
                return False
            if not path.startswith(self.table_root + "/"):
                return False  # pragma: no cover - every file the log names is under the table
            self.files.append((path[len(self.table_root) + 1 :], path, int(n)))
        return bool(self.files)  # a table without a data file: validated whole (GX on no rows)

    def indices(self, expectations: list[dict], schema: pl.Schema) -> list[int]:
        """The expectations validated file by file: row-wise and uniqueness ones (no ``mostly``) on a table
        whose files can be read one by one, a uniqueness key only of columns `_encodable` handles."""
        if not self.usable:
            return []
        out = []
        for i, exp in enumerate(expectations):
            kw = exp.get("kwargs") or {}
            if "mostly" in kw:
                continue
            if exp["type"] in ROW_WISE:
                out.append(i)
            elif exp["type"] in UNIQUE_KEY and all(c in schema and _encodable(schema[c]) for c in UNIQUE_KEY[exp["type"]](kw)):
                out.append(i)
        return out

    # -- reading a file as the table's scan gives it
    def _frame(self, path: str, schema: pl.Schema, columns: list[str]) -> pl.LazyFrame:
        lf = pl.scan_parquet(path, storage_options=self.wh.storage_options)
        have = lf.collect_schema()
        return lf.select([pl.col(c).cast(schema[c]) if c in have else pl.lit(None, schema[c]).alias(c) for c in columns])

    # -- validation
    def validate(self, runner: _Runner, indices: list[int], rows: int) -> dict[int, _Part]:
        expectations = self.spec["expectations"]
        schema = self.wh.scan(self.table).collect_schema()  # type: ignore[union-attr]  # the table exists: its files were listed
        if sum(n for _, _, n in self.files) != rows:
            raise RuntimeError(f"expectations on {self.table}: its files hold {sum(n for _, _, n in self.files)} rows, the table {rows}")
        keys = {self._key_id(i): UNIQUE_KEY[expectations[i]["type"]](expectations[i]["kwargs"]) for i in indices if expectations[i]["type"] in UNIQUE_KEY}
        new = []
        for name, path, n in self.files:
            entry = self.known.get(name)
            if entry is not None and entry.get("rows") == n and all(str(i) in entry["results"] for i in indices):
                continue
            parts = runner.run(self._frame(path, schema, runner.columns), indices, n, f" (file {name})")
            self.known[name] = {"rows": n, "results": {str(i): _combine(parts[i]).to_json() for i in indices}, "zones": {}}
            new.append(name)
        current = {name for name, _, _ in self.files}
        self.known = {k: v for k, v in self.known.items() if k in current}
        out: dict[int, _Part] = {}
        by_key: dict[str, list[int]] = {}
        for i in indices:
            if expectations[i]["type"] in UNIQUE_KEY:
                by_key.setdefault(self._key_id(i), []).append(i)
        for i in indices:
            if expectations[i]["type"] not in UNIQUE_KEY:
                out[i] = self._sum(i)
        for key_id, members in by_key.items():
            out.update(self._unique(runner, key_id, keys[key_id], members, schema, new))
        return out

    def _sum(self, i: int) -> _Part:
        parts = [_Part.from_json(self.known[name]["results"][str(i)]) for name, _, n in self.files if n]
        if not parts:  # no rows at all: any file's result (all files empty)
            parts = [_Part.from_json(self.known[name]["results"][str(i)]) for name, _, _ in self.files[:1]]
        return _combine(parts)

    def _key_id(self, i: int) -> str:
        exp = self.spec["expectations"][i]
        return json.dumps(UNIQUE_KEY[exp["type"]](exp["kwargs"]))

    def _unique(self, runner: _Runner, key_id: str, key: list[str], members: list[int], schema: pl.Schema, new: list[str]) -> dict[int, _Part]:
        """The uniqueness expectations of one key: per-file results, corrected for the keys in several files."""
        enc = [f"__k{j}" for j in range(len(key))]
        shared = self._shared(key_id, key, enc, schema, new)
        self.shared[key_id] = shared.rows()
        parts = {i: [_Part.from_json(self.known[name]["results"][str(i)]) for name, _, n in self.files if n] for i in members}
        if shared.height == 0:
            return {i: _combine(parts[i]) if parts[i] else self._sum(i) for i in members}
        involved = sorted(set(shared["__file"].to_list()))
        if len(involved) > MAX_SHARED_FILES:
            log.info("expectations on %s: keys %s repeat across %d files; validated on the whole table", self.table, key, len(involved))
            whole = runner.run(self.wh.scan(self.table), members, sum(n for _, _, n in self.files), "")  # type: ignore[arg-type]
            return {i: _combine(whole[i]) for i in members}
        paths = {name: path for name, path, _ in self.files}
        needed = runner.columns  # the rows of repeated keys are few: read as the whole table is
        frames = []
        minus: dict[int, list[_Part]] = {i: [] for i in members}
        for name in involved:
            keys = shared.filter(pl.col("__file") == name).select(enc).unique()
            rows = (
                self._frame(paths[name], schema, needed)
                .with_columns(_encoded(c, schema[c], e) for c, e in zip(key, enc))
                .join(keys.lazy(), on=enc, how="semi", nulls_equal=True)
                .drop(enc)
                .collect()
            )
            frames.append(rows)
            got = runner.run(rows.lazy(), members, rows.height, f" (file {name}, repeated keys)")
            for i in members:
                minus[i] += got[i]
        together = pl.concat(frames)
        joint = runner.run(together.lazy(), members, together.height, " (repeated keys)")
        return {i: _combine(parts[i] + joint[i], minus[i]) for i in members}

    def _shared(self, key_id: str, key: list[str], enc: list[str], schema: pl.Schema, new: list[str]) -> pl.DataFrame:
        """Encoded keys found in more than one of the current files, with those files (``__file``).

        Each file without zones for the key (new in this run) gets them from one aggregation of its key columns;
        where one overlaps a zone of a file before it, its keys of that zone's lead are compared with that zone's
        range, and a file the range may hold one of them in is read and joined."""
        current = {name for name, _, _ in self.files}
        types: list[pl.DataType | type[pl.DataType]] = [pl.Int64 if schema[c].is_integer() else pl.Utf8 for c in key]
        frame_schema = {**dict(zip(enc, types)), "__file": pl.Utf8}
        kept = pl.DataFrame(self.shared.get(key_id) or [], schema=frame_schema, orient="row").filter(pl.col("__file").is_in(sorted(current)))
        paths = {name: path for name, path, _ in self.files}
        todo = sorted({name for name in current if key_id not in self.known[name]["zones"]} | (set(new) & current))
        found = [kept]
        zones = _Zones(types)
        for name in sorted(current - set(todo)):
            zones.add(name, self.known[name]["zones"][key_id])
        for name in todo:
            mine = _zones(
                pl.scan_parquet(paths[name], storage_options=self.wh.storage_options).select(_encoded(c, schema[c], e) for c, e in zip(key, enc)), enc
            )
            overlaps = zones.overlapping(mine)
            if overlaps.height:
                probes = self._keys(paths[name], schema, key, enc)
                for other in _exact_hits(overlaps, probes, enc):
                    common = probes.join(self._keys(paths[other], schema, key, enc), on=enc, how="inner", nulls_equal=True)
                    if common.height:
                        found += [common.with_columns(pl.lit(name).alias("__file")), common.with_columns(pl.lit(other).alias("__file"))]
            self.known[name]["zones"][key_id] = mine
            zones.add(name, mine)
        every = pl.concat([f.select(list(frame_schema)) for f in found]).unique()
        if every.height == 0:
            return every
        many = every.group_by(enc).agg(pl.col("__file").n_unique().alias("__n")).filter(pl.col("__n") > 1).select(enc)
        return every.join(many, on=enc, how="semi", nulls_equal=True).sort([*enc, "__file"], nulls_last=True)

    def _keys(self, path: str, schema: pl.Schema, key: list[str], enc: list[str]) -> pl.DataFrame:
        return pl.scan_parquet(path, storage_options=self.wh.storage_options).select(_encoded(c, schema[c], e) for c, e in zip(key, enc)).unique().collect()

    # -- the state kept between runs
    def remember(self, meta: dict | None, batch_id: str | None) -> None:
        self.meta = _json_safe(meta) if meta is not None else self.meta
        self.batch_id = batch_id or self.batch_id

    def save(self) -> None:
        if not self.usable:
            return
        state = {"fingerprint": self.fingerprint, "files": self.known, "shared": self.shared, "meta": self.meta, "batch_id": self.batch_id}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _zones(keys: pl.LazyFrame, enc: list[str]) -> list[list]:
    """A file's encoded keys summarised as zones [lead, low, high, has nulls, by lead]: per value of the key's
    first column (when it has at most MAX_LEADS values) the smallest and largest value of the second and whether
    it has nulls; else (or for a one-column key) one zone over the first column."""
    if len(enc) > 1:
        z = keys.group_by(enc[0]).agg(pl.col(enc[1]).min().alias("lo"), pl.col(enc[1]).max().alias("hi"), pl.col(enc[1]).is_null().any().alias("nulls"))
        frame = z.collect()
        if frame.height <= MAX_LEADS:
            return [[lead, lo, hi, bool(nulls), True] for lead, lo, hi, nulls in frame.iter_rows()]
    c = keys.select(pl.col(enc[0]).min().alias("lo"), pl.col(enc[0]).max().alias("hi"), pl.col(enc[0]).is_null().any().alias("nulls"), pl.len().alias("n"))
    lo, hi, nulls, n = c.collect().row(0)
    return [[None, lo, hi, bool(nulls), False]] if n else []


class _Zones:
    """The zones of a key in the files seen so far."""

    def __init__(self, types: list[pl.DataType | type[pl.DataType]]):
        self.lead_type = types[0]
        self.value_type = types[1] if len(types) > 1 else types[0]
        self.rows: list[list] = []

    def add(self, name: str, zones: list[list]) -> None:
        self.rows += [[name, *z] for z in zones]

    def _frame(self, rows: list[list]) -> pl.DataFrame:
        """Zones as a frame: file, by_lead, lead, lo, hi, nulls (lo/hi of the second column for zones by lead, of the first else)."""
        by = pl.DataFrame(
            [[r[0], True, r[1], r[2], r[3], r[4]] for r in rows if r[5]],
            schema={"file": pl.Utf8, "by_lead": pl.Boolean, "lead": self.lead_type, "lo": self.value_type, "hi": self.value_type, "nulls": pl.Boolean},
            orient="row",
        )
        whole = pl.DataFrame(
            [[r[0], False, None, r[2], r[3], r[4]] for r in rows if not r[5]],
            schema={"file": pl.Utf8, "by_lead": pl.Boolean, "lead": self.lead_type, "lo": self.lead_type, "hi": self.lead_type, "nulls": pl.Boolean},
            orient="row",
        )
        if self.lead_type != self.value_type:  # the two kinds keep their own types: side by side, never compared
            return pl.concat([by, whole.rename({"lo": "wlo", "hi": "whi"})], how="diagonal")
        return pl.concat([by, whole])

    def overlapping(self, zones: list[list]) -> pl.DataFrame:
        """The zones of earlier files that may share a key with a file of these zones: same lead (or either over
        the first column alone) and overlapping ranges, or nulls on both sides. Columns: file, by_lead, lead, lo, hi, nulls."""
        if not self.rows or not zones:
            return pl.DataFrame()
        old, new = self._frame(self.rows), self._frame([["", *z] for z in zones])
        if (
            "wlo" in old.columns
            or "wlo" in new.columns
            or old["by_lead"].n_unique() > 1
            or new["by_lead"].n_unique() > 1
            or old["by_lead"][0] != new["by_lead"][0]
        ):
            return old  # zones of both kinds: every earlier zone is a candidate, the keys decide
        joined = old.join(new.drop("file"), on=["by_lead", "lead"], how="inner", nulls_equal=True, suffix="_new")
        ranges = pl.col("lo").is_not_null() & pl.col("lo_new").is_not_null() & (pl.col("lo") <= pl.col("hi_new")) & (pl.col("lo_new") <= pl.col("hi"))
        return joined.filter(ranges | (pl.col("nulls") & pl.col("nulls_new"))).select(old.columns)


def _exact_hits(zones: pl.DataFrame, probes: pl.DataFrame, enc: list[str]) -> list[str]:
    """Files of the (overlapping) zones whose range holds one of the probe keys, or whose nulls meet a probe's."""
    hits: set[str] = set()
    for by_lead in (False, True):
        mine = zones.filter(pl.col("by_lead") == by_lead)
        if mine.height == 0:
            continue
        lo, hi = ("wlo", "whi") if not by_lead and "wlo" in mine.columns else ("lo", "hi")
        if not by_lead:
            hits |= _in_ranges(mine.select("file", pl.col(lo).alias("lo"), pl.col(hi).alias("hi"), "nulls"), probes[enc[0]], probes[enc[0]].is_null().any())
            continue
        for (lead,), group in mine.partition_by("lead", as_dict=True).items():
            values = probes.filter(pl.col(enc[0]).is_null() if lead is None else (pl.col(enc[0]) == lead))[enc[1]]
            hits |= _in_ranges(group, values, values.is_null().any())
    return sorted(hits)


def _in_ranges(zones: pl.DataFrame, values: pl.Series, null_probe: bool) -> set[str]:
    """Files of the zones whose [lo, hi] holds one of ``values``, or that have nulls when a probe is null."""
    if zones.height == 0:
        return set()
    ordered = values.drop_nulls().unique().sort()
    n = ordered.search_sorted(zones["hi"], side="right").cast(pl.Int64) - ordered.search_sorted(zones["lo"], side="left").cast(pl.Int64)
    hit = (n > 0) & zones["lo"].is_not_null() & zones["hi"].is_not_null()
    if null_probe:
        hit = hit | zones["nulls"]
    return set(zones.filter(hit)["file"].to_list())


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
    docs = wh.local_dir("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html"
    with _LOCK, _no_data_fingerprint():
        state = _context(wh.local_dir("gx").parent)
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
                by_file = _ByFile(wh, spec, columns) if BY_FILE and rows >= BY_FILE_MIN_ROWS else None
                suite_result, partitions = _validate_table(state, spec, lf, columns, rows, run_id, by_file)
                if by_file is not None:
                    by_file.save()
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
