"""Validation of one extract against its contract.

Two kinds of failure, kept apart on purpose:

* file failures (`FileFailure`): a missing or renamed column, a row dated outside the extract's month,
  an empty, truncated or undecodable file, more rejected rows than the contract allows, or a rule that
  could not be run at all (e.g. a contract pattern the polars regex engine rejects: a rule that judged
  no row is never reported as passed). The run stops with one plain message and writes nothing.
* row failures: a row that breaks a row rule (type, required, unique, range, pattern, code list,
  cross-column rule) is quarantined whole, with its row number and every rule it failed. Every other
  row is loaded. Rows in = rows loaded + rows quarantined, always. A value arrives exactly or its row
  is quarantined: a number too large for a 64-bit integer, an infinite or NaN number or an impossible
  date fails its type rule instead of becoming null (and a guard fails the file should one ever slip
  through).

Row rules are built from the contract as polars boolean expressions over the text columns as read, and
declared as a pandera-polars schema (the model of the contract's row rules: column presence, text dtype,
required, one named check per rule). They normally run as ONE polars pass over every rule
(`etl.core.rule_pass`: the failing row positions per rule, exactly the failure cases pandera would report);
when that pass cannot run (a contract column absent or not text, a rule that raises, e.g. a pattern the
polars regex engine rejects) the pandera schema runs instead and names each rule that could not be run.
The row index of every failure maps to the row number. Values of personal or identifying columns never
appear in messages; a failure is described by its value category.
"""

from __future__ import annotations

import difflib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from etl.core import staging
from etl.core.chunks import ChunkedExtract
from etl.core.contracts import Column, Contract
from etl.core.extracts import ROW_NUMBER, ExtractError, RawExtract
from etl.core.periods import Month
from etl.core.reference import CodeList, contracts_dir, load_code_list
from etl.core.rule_pass import RulePass
from etl.errors import DataError

# Helper columns added to the frame a batch of files is validated in (never stored).
_FILE = "__file"  # which file of the batch a row came from (0-based position in the batch)
_FORCE = "__force"  # the force that file belongs to


class FileFailure(DataError):
    """The whole file fails its contract: nothing from this run is written."""

    def __init__(self, path: str, rule: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class RuleInfo:
    id: str
    column: str | None
    description: str  # the rule in plain words
    category: str  # what a failing value is, without showing the value
    severity: str = "error"


@dataclass
class CheckResult:
    check: str
    column: str | None
    description: str
    severity: str
    passed: bool | None  # None: the check could not be run (said in ``detail``), never counted as passed
    failing_rows: int
    rows_checked: int
    detail: str | None = None  # what exactly failed, in plain words (no personal values)


@dataclass
class ValidationContext:
    month: Month | None = None  # the extract's month (None: not checked, e.g. reference files)
    force_id: str | None = None  # the force the extract belongs to (None: inferred from the rows)
    areas: dict[str, list[str]] | None = None  # force_id -> npu list, from reference/areas.csv
    lookups: dict[str, pl.DataFrame] = field(default_factory=dict)  # e.g. recorded_crime -> crime_ref, recorded_date


@dataclass
class ExtractResult:
    contract: Contract
    source_file: str  # as shown to users and stored in tables (relative to the source folder)
    sha256: str
    encoding: str
    month: str | None
    force_id: str | None
    rows_in: int
    clean: pl.DataFrame  # typed contract columns + lineage
    quarantine: pl.DataFrame
    checks: list[CheckResult]

    @property
    def rows_loaded(self) -> int:
        return self.clean.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.height


QUARANTINE_SCHEMA = {
    "extract": pl.Utf8,
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "source_file": pl.Utf8,
    "source_sha256": pl.Utf8,
    "row_number": pl.Int64,
    "failed_checks": pl.Utf8,
    "failure_detail": pl.Utf8,
    "record": pl.Utf8,
    "contract_version": pl.Utf8,
}


# --------------------------------------------------------------------------------------------------
# Building the pandera schema from a contract


def _null_or(expr: pl.Expr, col: str) -> pl.Expr:
    return pl.col(col).is_null() | expr.fill_null(False)


def _is_date(col: str) -> pl.Expr:
    return pl.col(col).str.to_date("%Y-%m-%d", strict=False).is_not_null() & pl.col(col).str.contains(r"^\d{4}-\d{2}-\d{2}$")


def _as_date(col: str) -> pl.Expr:
    return pl.col(col).str.to_date("%Y-%m-%d", strict=False)


def _as_timestamp(col: str) -> pl.Expr:
    """Timestamps written YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM:SS (local clock time, no zone)."""
    text = pl.col(col).str.replace("T", " ", literal=True)
    return text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")


def _as_month_start(col: str) -> pl.Expr:
    """A month written YYYY-MM, as the date of its first day."""
    return pl.when(pl.col(col).str.contains(r"^\d{4}-(0[1-9]|1[0-2])$")).then((pl.col(col) + "-01").str.to_date("%Y-%m-%d", strict=False))


def _temporal(c: Column) -> pl.Expr:
    """The column as a date or datetime, by its logical type (a YYYY-MM string is its first day)."""
    if c.logical_type == "timestamp":
        return _as_timestamp(c.name)
    if c.logical_type == "date":
        return _as_date(c.name)
    return _as_month_start(c.name)


def _as_number(col: str, integer: bool) -> pl.Expr:
    return pl.col(col).cast(pl.Int64 if integer else pl.Float64, strict=False)


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


class _SchemaBuilder:
    """The pandera schema of a contract for a batch of files validated together.

    Rules that depend on the file (its force, the force's areas, lookups of earlier extracts) read
    per-row helper columns added by `prepare`, so one schema checks every file of a batch
    at once. ``applies`` records the files a file-dependent rule applies to (others report no row for it).
    """

    def __init__(self, contract: Contract, ctxs: list[ValidationContext], forces: list[str | None], chunked: bool = False):
        self.contract = contract
        self.ctxs = ctxs
        self.forces = forces
        # A file validated chunk by chunk: the unique rules also read a helper column saying that the row's key
        # is in an earlier chunk (helper column -> the key, see `_SeenKeys` and `_first_in_file`).
        self.chunked = chunked
        self.seen_keys: dict[str, pl.Expr] = {}
        self.rules: dict[str, RuleInfo] = {}
        self.applies: dict[str, set[int]] = {}
        self.helpers: dict[str, pl.DataFrame] = {}  # helper column -> (__file, key column, value) to join
        self.descriptions: dict[str, Callable[[int], str]] = {}  # rule id -> its description for file i
        self.compiled = RulePass()  # the same rules, recorded for the single polars pass that normally runs them

    def _check(self, rule: RuleInfo, expr: Callable[[], pl.Expr], element_col: str | None) -> pa.Check:
        self.rules[rule.id] = rule

        def fn(data, _expr=expr):
            return data.lazyframe.select(_expr().alias("ok"))

        check = pa.Check(fn, name=rule.id, error=rule.id)
        self.compiled.add(rule.id, expr, check)
        return check

    def column_checks(self, c: Column) -> list[pa.Check]:
        """The checks of one column, in report order: type, range, pattern, allowed values, unique,
        code list, reference list, the extract's force."""
        builders = (self._type_check, self._range_check, self._pattern_check, self._enum_check, self._unique_check, self._code_list_check)
        checks = [check for build in builders if (check := build(c)) is not None]
        return checks + self._reference_list_checks(c) + self._force_checks(c)

    def _type_check(self, c: Column) -> pa.Check | None:
        """The value is of the column's logical type (None for a string column: any text is)."""
        n = c.name
        if c.logical_type == "date":
            return self._check(RuleInfo(f"{n}.type", n, f"{n} must be a date written YYYY-MM-DD", "not a date YYYY-MM-DD"), lambda: _null_or(_is_date(n), n), n)
        if c.logical_type == "timestamp":
            return self._check(
                RuleInfo(f"{n}.type", n, f"{n} must be a date and time written YYYY-MM-DD HH:MM:SS", "not a date-time"),
                lambda: _null_or(_as_timestamp(n).is_not_null(), n),
                n,
            )
        if c.logical_type == "integer":
            # Written as digits AND exactly representable as a 64-bit integer: a value too large to store
            # (which the conversion would silently turn into null) fails here instead of being lost.
            return self._check(
                RuleInfo(f"{n}.type", n, f"{n} must be a whole number", "not a whole number within range"),
                lambda: _null_or(pl.col(n).str.contains(r"^[+-]?\d+$") & _as_number(n, True).is_not_null(), n),
                n,
            )
        if c.logical_type == "number":
            # A finite number: text that converts to infinity or NaN ("1e999", "nan", "inf") is not a value.
            return self._check(RuleInfo(f"{n}.type", n, f"{n} must be a number", "not a number"), lambda: _null_or(_as_number(n, False).is_finite(), n), n)
        if c.logical_type == "boolean":
            allowed = [c.true_value, c.false_value]
            return self._check(
                RuleInfo(f"{n}.flag", n, f"{n} must be {c.true_value} or {c.false_value}", f"not {c.true_value}/{c.false_value}"),
                lambda: _null_or(pl.col(n).is_in(allowed), n),
                n,
            )
        return None

    def _range_check(self, c: Column) -> pa.Check | None:
        if c.minimum is None and c.maximum is None:
            return None
        n, lo, hi = c.name, c.minimum, c.maximum
        integer = c.logical_type == "integer"

        def rng(lo: float | None = lo, hi: float | None = hi, integer: bool = integer) -> pl.Expr:
            v = _as_number(n, integer)
            ok = pl.lit(True)
            if lo is not None:
                ok = ok & (v >= lo)
            if hi is not None:
                ok = ok & (v <= hi)
            return v.is_null() | ok

        span = f"{_fmt(lo)} to {_fmt(hi)}" if lo is not None and hi is not None else (f"at least {_fmt(lo)}" if lo is not None else f"at most {_fmt(hi)}")
        return self._check(RuleInfo(f"{n}.range", n, f"{n} must be {span}", f"outside {span}"), rng, n)

    def _pattern_check(self, c: Column) -> pa.Check | None:
        if not c.pattern:
            return None
        n, pat = c.name, c.pattern
        return self._check(
            RuleInfo(f"{n}.pattern", n, f"{n} must match the pattern {pat}", "wrong format"), lambda: _null_or(pl.col(n).str.contains(pat), n), n
        )

    def _enum_check(self, c: Column) -> pa.Check | None:
        if not c.enum:
            return None
        n, values = c.name, list(c.enum)
        return self._check(
            RuleInfo(f"{n}.allowed_values", n, f"{n} must be one of {', '.join(values)}", "not an allowed value"),
            lambda: _null_or(pl.col(n).is_in(values), n),
            n,
        )

    def _first_in_file(self, rid: str, first_here: pl.Expr, key: pl.Expr) -> pl.Expr:
        """The row is the first with its key in the file: ``first_here`` (the first in the frame validated), and,
        for a file validated in chunks, its key (an exact text) is in no earlier chunk."""
        if not self.chunked:
            return first_here
        helper = f"__seen_{rid}"
        self.seen_keys[helper] = key
        return first_here & ~pl.col(helper)

    def _unique_check(self, c: Column) -> pa.Check | None:
        if not c.unique:
            return None
        n = c.name
        rid = f"{n}.unique"
        first = self._first_in_file(rid, pl.col(n).is_first_distinct().over(_FILE), pl.col(n))
        return self._check(
            RuleInfo(rid, n, f"{n} must be unique in the file (the first occurrence is kept, repeats are rejected)", "repeats an earlier row"),
            lambda: pl.col(n).is_null() | first,
            n,
        )

    def _code_list_check(self, c: Column) -> pa.Check | None:
        if not c.code_list:
            return None
        n, codes = c.name, self.code_list(c)
        return self._check(
            RuleInfo(f"{n}.code_list", n, f"{n} must be in the {codes.name} code list (version {codes.version})", "unknown code"),
            lambda: _null_or(pl.col(n).is_in(codes.codes), n),
            n,
        )

    def _reference_list_checks(self, c: Column) -> list[pa.Check]:
        """The value is one of the force's areas, for the files whose force has an areas list."""
        if not c.reference_list:
            return []
        n = c.name
        pairs = [(i, v) for i, (ctx, f) in enumerate(zip(self.ctxs, self.forces)) if ctx.areas is not None and f in ctx.areas for v in ctx.areas[f]]
        files = {i for i, (ctx, f) in enumerate(zip(self.ctxs, self.forces)) if ctx.areas is not None and f in ctx.areas}
        if not files:
            return []
        ref = c.reference_list
        helper = f"__listed_{n}"
        listed = pl.DataFrame({_FILE: [i for i, _ in pairs], n: [v for _, v in pairs]}, schema={_FILE: pl.Int32, n: pl.Utf8})
        self.helpers[helper] = listed.unique().with_columns(pl.lit(True).alias(helper))  # an area listed twice must not repeat rows
        rid = f"{n}.reference_list"
        self.applies[rid] = files
        in_scope = pl.col(_FILE).is_in(sorted(files))
        return [
            self._check(
                RuleInfo(rid, n, f"{n} must be one of the force's areas in {ref.get('file')}", "not a listed area"),
                lambda: pl.col(n).is_null() | ~in_scope | pl.col(helper).fill_null(False),
                n,
            )
        ]

    def _force_checks(self, c: Column) -> list[pa.Check]:
        """The force column holds the extract's force (for the files whose force is known)."""
        n = c.name
        if self.contract.force_column != n or not any(self.forces):
            return []
        shown = sorted({f for f in self.forces if f})
        self.applies[f"{n}.matches_extract"] = {i for i, f in enumerate(self.forces) if f}
        rule = RuleInfo(f"{n}.matches_extract", n, f"{n} must be the extract's force ({', '.join(shown)})", "another force")

        def described(i: int, n: str = n) -> str:
            return f"{n} must be the extract's force ({self.forces[i]})"

        self.descriptions[rule.id] = described
        return [self._check(rule, lambda: pl.col(n).is_null() | pl.col(_FORCE).is_null() | (pl.col(n) == pl.col(_FORCE)).fill_null(False), n)]

    def code_list(self, c: Column) -> CodeList:
        ref = (c.code_list or {}).get("reference")
        return load_code_list(contracts_dir() / ref) if ref else load_code_list()

    def frame_checks(self) -> list[pa.Check]:
        checks: list[pa.Check] = []
        for c in self.contract.columns:
            valid_on = (c.code_list or {}).get("validOnColumn")
            if valid_on:
                codes = self.code_list(c)
                n = c.name
                rule = RuleInfo(
                    f"{n}.valid_on_{valid_on}",
                    n,
                    f"{n} must be a code in force on {valid_on} (codes have start and end dates)",
                    "code not in force on that date",
                )

                def in_force(n=n, v=valid_on, codes=codes) -> pl.Expr:
                    # Unknown codes and unreadable dates are reported by their own rules, not here.
                    return pl.col(n).is_null() | _as_date(v).is_null() | ~pl.col(n).is_in(codes.codes) | codes.valid_on(n, _as_date(v)).fill_null(False)

                checks.append(self._check(rule, in_force, None))
        for r in self.contract.rules:
            if r.kind == "not_after":
                a, b = r.args["column"], r.args["other"]
                ca, cb = self.contract.column(a), self.contract.column(b)

                def not_after(ca: Column = ca, cb: Column = cb) -> pl.Expr:
                    return (_temporal(ca) <= _temporal(cb)).fill_null(True)

                checks.append(self._check(RuleInfo(r.id, a, r.description or f"{a} must not be after {b}", f"after {b}", r.severity), not_after, None))
            elif r.kind == "not_greater":
                a, b = r.args["column"], r.args["other"]
                ca, cb = self.contract.column(a), self.contract.column(b)

                def not_greater(ca: Column = ca, cb: Column = cb) -> pl.Expr:
                    # values that are not numbers are reported by their own type rules, not here
                    return (_as_number(ca.name, ca.logical_type == "integer") <= _as_number(cb.name, cb.logical_type == "integer")).fill_null(True)

                checks.append(
                    self._check(RuleInfo(r.id, a, r.description or f"{a} must not be greater than {b}", f"greater than {b}", r.severity), not_greater, None)
                )
            elif r.kind == "not_before_lookup":
                a, key, other, lookup = r.args["column"], r.args["key"], r.args["other"], r.args["lookup"]
                parts = [
                    ref.select(pl.lit(i, pl.Int32).alias(_FILE), pl.col(key).cast(pl.Utf8), pl.col(other).cast(pl.Date).alias(f"__lookup_{r.id}"))
                    for i, ctx in enumerate(self.ctxs)
                    if (ref := ctx.lookups.get(lookup)) is not None and ref.height
                ]
                if not parts:
                    continue
                helper = f"__lookup_{r.id}"
                self.helpers[helper] = pl.concat(parts).unique([_FILE, key], keep="first")
                self.applies[r.id] = set(self.helpers[helper][_FILE].unique().to_list())

                def expr(a=a, helper=helper) -> pl.Expr:
                    return (_as_date(a) >= pl.col(helper)).fill_null(True)

                checks.append(self._check(RuleInfo(r.id, a, r.description, f"before the crime's {other}", r.severity), expr, None))
        for k in self.contract.unique_keys:
            cols = list(k.columns)
            # across chunks the key is compared as one exact text, a null value included (as is_first_distinct does)
            first = self._first_in_file(k.id, pl.struct(cols).is_first_distinct().over(_FILE), pl.struct(cols).struct.json_encode())

            def first_of_key(first: pl.Expr = first) -> pl.Expr:
                return first

            checks.append(
                self._check(RuleInfo(k.id, None, f"only one row per {', '.join(cols)} (the first is kept)", "repeats an earlier row"), first_of_key, None)
            )
        return checks

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The batch frame with the helper columns the file-dependent rules read (row order kept). Only the
        key columns are joined, and each helper column is cut into the frame's chunks (a file each): a join of
        the whole frame, or a column of one chunk beside many (`_aligned`), makes polars copy every column
        into one chunk."""
        columns = []
        layout = _layout(frame)
        for helper, table in self.helpers.items():
            on = [_FILE, *(c for c in table.columns if c not in (_FILE, helper))]
            columns.append(_cut(frame.select(on).join(table, on=on, how="left", maintain_order="left").get_column(helper), layout))
        return frame.with_columns(columns) if columns else frame

    def build(self) -> pa.DataFrameSchema:
        columns = {}
        for c in self.contract.columns:
            if c.required:  # an optional column has no such rule: it must not be reported as a check that passed
                self.rules[f"{c.name}.required"] = RuleInfo(f"{c.name}.required", c.name, f"{c.name} must not be empty", "empty")
            columns[c.name] = pa.Column(pl.Utf8, checks=self.column_checks(c), nullable=not c.required, required=True)
            self.compiled.column(c.name, required=c.required)
        return pa.DataFrameSchema(columns, checks=self.frame_checks(), strict=False, name=self.contract.id)


def _layout(frame: pl.DataFrame) -> list[int]:
    """The chunk lengths of FRAME's first column (a batch frame: a chunk per file)."""
    return frame.to_series(0).chunk_lengths() if frame.width else []


def _cut(column: pl.Series, lengths: list[int]) -> pl.Series:
    """COLUMN (``sum(lengths)`` long) in chunks of ``lengths``: slices of it, nothing copied (but a column of another
    layout of several chunks, put in one first)."""
    if len(lengths) <= 1 or column.chunk_lengths() == lengths:
        return column
    whole = column.rechunk() if column.n_chunks() > 1 else column
    offsets = [0, *itertools.accumulate(lengths)]
    return pl.concat([whole.slice(a, b - a) for a, b in zip(offsets, offsets[1:])], rechunk=False)


def _aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """FRAME with every column in the chunks of its first column. polars copies every column of a frame whose
    columns are chunked differently into one chunk before any query on it - most of the time of the rules of a
    batch of many files, whose constant columns (a file's force) come out of ``pl.concat`` in one chunk."""
    lengths = _layout(frame)
    odd = [c for c in frame.iter_columns() if c.chunk_lengths() != lengths]
    return frame.with_columns(_cut(c, lengths) for c in odd) if odd and len(lengths) > 1 else frame


# --------------------------------------------------------------------------------------------------
# Validation


def _missing_columns_message(contract: Contract, header: list[str], path: str) -> str | None:
    wanted = {c.source_name: c for c in contract.columns}
    missing = [name for name in wanted if name not in header]
    if not missing:
        return None
    extra = [h for h in header if h not in wanted]
    parts = []
    for name in missing:
        guess = difflib.get_close_matches(name, extra, n=1, cutoff=0.6)
        hint = (
            f" (the file has '{guess[0]}': renamed? if the force's export calls it that, set physicalName: {guess[0]} on '{wanted[name].name}' in {contract.path.name})"
            if guess
            else ""
        )
        parts.append(f"'{name}'{hint}")
    return (
        f"column {', '.join(parts)} {'is' if len(missing) == 1 else 'are'} missing from the header "
        f"(contract {contract.id} v{contract.version} needs: {', '.join(wanted)})"
    )


def infer_force(contract: Contract, frame: pl.DataFrame | pl.LazyFrame) -> str | None:
    """The force an extract belongs to: the most frequent value of its force column."""
    col = contract.force_column
    if not col or col not in frame.collect_schema().names():
        return None
    counts = frame.lazy().select(pl.col(col).drop_nulls().value_counts(sort=True)).unnest(col).collect()
    if counts.height == 0:
        return None
    top = counts.filter(pl.col("count") == pl.col("count").max()).sort(col)
    return top[col][0]


def check_month(contract: Contract, frame: pl.DataFrame | pl.LazyFrame, month: Month, path: str, rows: int | None = None) -> CheckResult | None:
    """File rule: every row of a monthly extract is dated inside its month (``rows``: how many rows a lazy ``frame`` holds)."""
    col = contract.month_column
    if not col:
        return None
    if rows is None:
        rows = frame.height if isinstance(frame, pl.DataFrame) else int(frame.select(pl.len()).collect().item())
    parsed = frame.lazy().select(pl.col(ROW_NUMBER), _temporal(contract.column(col)).cast(pl.Date).alias("d")).drop_nulls("d")
    start = pl.date(month.year, month.month, 1)
    nxt = month + 1
    end = pl.date(nxt.year, nxt.month, 1)
    outside = parsed.filter((pl.col("d") < start) | (pl.col("d") >= end)).collect()
    result = CheckResult(f"{col}.in_extract_month", col, f"every {col} must be inside {month}", "error", outside.height == 0, outside.height, rows)
    if outside.height:
        months = outside.select(pl.col("d").dt.strftime("%Y-%m").unique().sort()).to_series().to_list()
        first = outside.sort(ROW_NUMBER).row(0, named=True)
        raise FileFailure(
            path,
            result.check,
            f"{outside.height} row(s) have {col} outside the extract's month {month} "
            f"(dated {', '.join(months[:6])}{'...' if len(months) > 6 else ''}; first at row {first[ROW_NUMBER]}, "
            f"column {col}). Is this the right file for {month}? Nothing was loaded.",
        )
    return result


def _infer_forces(contract: Contract, frames: dict[int, pl.DataFrame]) -> dict[int, str | None]:
    """`infer_force` of several files in one query (file -> its most frequent force, the first in order on a tie)."""
    col = contract.force_column
    if not col or not frames or any(col not in f.columns for f in frames.values()):
        return {i: infer_force(contract, f) for i, f in frames.items()}
    counts = (
        pl.concat([f.lazy().select(pl.lit(i, pl.Int32).alias(_FILE), pl.col(col)) for i, f in frames.items()])
        .drop_nulls(col)
        .group_by(_FILE, col)
        .len()
        .sort([_FILE, "len", col], descending=[False, True, False])
        .unique(_FILE, keep="first")
        .collect()
    )
    top = dict(counts.select(_FILE, col).iter_rows())
    return {i: top.get(i) for i in frames}


def _outside_month(contract: Contract, frames: dict[int, pl.DataFrame], inputs: list[ExtractInput]) -> dict[int, int]:
    """Per file, its rows dated outside its month (`check_month`'s rule), in one query for all the files."""
    col = contract.month_column
    if not col or not frames:
        return {}
    parts = []
    for i, f in frames.items():
        month = inputs[i].ctx.month
        assert month is not None
        nxt = month + 1
        d = _temporal(contract.column(col)).cast(pl.Date)
        parts.append(
            f.lazy()
            .select(pl.lit(i, pl.Int32).alias(_FILE), d.alias("d"))
            .filter((pl.col("d") < pl.date(month.year, month.month, 1)) | (pl.col("d") >= pl.date(nxt.year, nxt.month, 1)))
        )
    counted = pl.concat(parts).group_by(_FILE).len().collect()
    return dict(counted.iter_rows())


@dataclass
class ExtractInput:
    """One file of a batch: the extract as read, its context and its name as shown to users."""

    raw: RawExtract
    ctx: ValidationContext
    source_file: str | None = None

    @property
    def path(self) -> str:
        return self.source_file or str(self.raw.path)


def validate_extract(contract: Contract, raw: RawExtract, ctx: ValidationContext, source_file: str | None = None, *, spill: bool = False) -> ExtractResult:
    """Validate one extract read by `etl.core.extracts.read_extract`. Raises `FileFailure` for file failures.
    ``spill``: see `validate_extracts`."""
    (outcome,) = validate_extracts(contract, [ExtractInput(raw, ctx, source_file)], spill=spill)
    if isinstance(outcome, FileFailure):
        raise outcome
    return outcome


def validate_extracts(contract: Contract, inputs: list[ExtractInput], *, spill: bool = False) -> list[ExtractResult | FileFailure]:
    """Validate several files of one contract together (e.g. every force's file of a month).

    Each file is judged on its own - uniqueness within the file, its own force and month, its own
    reject limit - exactly as if validated alone; the row rules just run once over all of them.
    Returns, per input in order, its `ExtractResult` or the `FileFailure` that stops that file.

    A file read in chunks (`etl.core.chunks.ChunkedExtract`) is validated chunk by chunk with the same
    result (`_validate_chunked`). With ``spill`` its curated and quarantined rows stay on disk: the
    result's ``clean`` and ``quarantine`` are `etl.core.staging.StagedFrame`s (for a loader that writes
    them with `etl.core.staging`); without, they are read into DataFrames.
    """
    outcomes: list[ExtractResult | FileFailure | None] = [None] * len(inputs)
    frames: dict[int, pl.DataFrame] = {}
    forces: list[str | None] = [None] * len(inputs)
    month_checks: dict[int, CheckResult] = {}
    rename = {c.source_name: c.name for c in contract.columns}
    for i, item in enumerate(inputs):
        if isinstance(item.raw, ChunkedExtract):
            outcomes[i] = _validate_chunked(contract, item, spill)
            continue
        message = _missing_columns_message(contract, item.raw.header, item.path)
        if message:
            outcomes[i] = FileFailure(item.path, "columns_present", message)
            continue
        frames[i] = item.raw.frame.select([pl.col(src).alias(dst) for src, dst in rename.items()] + [pl.col(ROW_NUMBER)])
    inferred = _infer_forces(contract, {i: f for i, f in frames.items() if not inputs[i].ctx.force_id})
    outside = _outside_month(contract, {i: f for i, f in frames.items() if inputs[i].ctx.month is not None}, inputs)
    for i, frame in list(frames.items()):
        item = inputs[i]
        forces[i] = item.ctx.force_id or inferred.get(i)
        if item.ctx.month is not None and contract.month_column:
            if outside.get(i):
                try:
                    check_month(contract, frame, item.ctx.month, item.path)  # says where and when
                except FileFailure as exc:
                    outcomes[i] = exc.with_traceback(None)  # its frames would keep the file's rows alive
                    del frames[i]
                    continue
            col = contract.month_column
            month_checks[i] = CheckResult(f"{col}.in_extract_month", col, f"every {col} must be inside {item.ctx.month}", "error", True, 0, frame.height)
        frames[i] = frame.with_columns(pl.lit(i, pl.Int32).alias(_FILE), pl.lit(forces[i], pl.Utf8).alias(_FORCE))
    if not frames:
        return outcomes  # type: ignore[return-value]

    builder = _SchemaBuilder(contract, [item.ctx if i in frames else ValidationContext() for i, item in enumerate(inputs)], forces)
    schema = builder.build()
    batch = _aligned(pl.concat(list(frames.values()), how="vertical")) if len(frames) > 1 else next(iter(frames.values()))
    judged = _judge(contract, builder, schema, batch, list(frames))
    for i, frame in frames.items():
        item = inputs[i]
        raw, path = item.raw, item.path
        tally = _Tally()
        tally.add(judged, i, frame.height)
        verdict = _verdict(contract, builder, i, path, raw, month_checks.get(i), tally)
        if isinstance(verdict, FileFailure):
            outcomes[i] = verdict
            continue
        lineage = _lineage(contract, item, forces[i])
        quarantine = _quarantine_frame(raw, judged.per_row.get(i, judged.empty_per_row), lineage, contract)
        clean = _clean(judged, i, lineage)
        outcomes[i] = _result(contract, item, forces[i], lineage, raw.rows_in, clean, quarantine, verdict)
    return outcomes  # type: ignore[return-value]


@dataclass
class _Judged:
    """What the row rules found in a frame of one or more files (keyed by the file's position in the batch):
    failing rows per (file, rule), the rules that could not run, each file's failing rows (row_number,
    failed_checks, failure_detail), its typed passing rows and the values its typing lost (column -> rows, first row)."""

    counts: dict[tuple[int, str], int]
    rule_errors: dict[str, str]
    per_row: dict[int, pl.DataFrame]
    typed: dict[int, pl.DataFrame]
    lost: dict[int, dict[str, tuple[int, int]]]
    empty_typed: pl.DataFrame
    empty_per_row: pl.DataFrame


def _judge(contract: Contract, builder: _SchemaBuilder, schema: pa.DataFrameSchema, batch: pl.DataFrame, files: list[int]) -> _Judged:
    """Run the row rules over ``batch`` (the renamed text columns, row_number and the helper columns of the files in it)."""
    failures, rule_errors = _run_rules(builder, schema, builder.prepare(batch).drop(ROW_NUMBER))
    # failures: index (position in the batch), rule id -> the file and row number they belong to
    at = failures.get_column("index")
    failed = failures.with_columns(batch.get_column(_FILE).gather(at), batch.get_column(ROW_NUMBER).gather(at))
    fail_counts = failed.group_by(_FILE, "rule").agg(pl.col("index").n_unique().alias("n"))
    counts = {(r[_FILE], r["rule"]): r["n"] for r in fail_counts.iter_rows(named=True)}
    detail_map = {rid: f"{info.column or 'row'}: {info.category}" for rid, info in builder.rules.items()}
    per_row = (
        failed.group_by(_FILE, ROW_NUMBER)
        .agg(pl.col("rule").unique().sort().alias("rules"))
        .with_columns(
            pl.col("rules").list.join("; ").alias("failed_checks"),
            pl.col("rules")
            .list.eval(pl.element().replace_strict(list(detail_map), list(detail_map.values()), default=pl.element()))
            .list.join("; ")
            .alias("failure_detail"),
        )
        .drop("rules")
    )
    per_row_by_file = per_row.partition_by(_FILE, as_dict=True, include_key=False) if per_row.height else {}
    passed = batch.filter(~pl.int_range(pl.len(), dtype=pl.Int64).is_in(at.unique().implode())) if failures.height else batch
    typed = _typed(contract, passed)
    lost = _lost_values(contract, passed, typed)  # must never find anything
    typed_by_file = typed.partition_by(_FILE, as_dict=True, include_key=False) if len(files) > 1 else {(i,): typed.drop(_FILE) for i in files}
    return _Judged(
        counts,
        rule_errors,
        {int(k[0]): v for k, v in per_row_by_file.items()},
        {int(k[0]): v for k, v in typed_by_file.items()},
        lost,
        typed.clear().drop(_FILE),
        per_row.clear().drop(_FILE),
    )


@dataclass
class _Tally:
    """One file's findings from the row rules over all its rows (summed over the chunks of a file read in chunks)."""

    rows_checked: int = 0  # rows the rules judged (malformed rows apart)
    failing_rows: int = 0  # rows failing at least one rule
    counts: dict[str, int] = field(default_factory=dict)  # rule -> failing rows
    rule_errors: dict[str, str] = field(default_factory=dict)  # rule -> why it could not be run
    lost: dict[str, tuple[int, int]] = field(default_factory=dict)  # column -> rows whose value typing lost, first row

    def add(self, judged: _Judged, i: int, rows: int) -> None:
        self.rows_checked += rows
        self.failing_rows += judged.per_row[i].height if i in judged.per_row else 0
        for (f, rid), n in judged.counts.items():
            if f == i:
                self.counts[rid] = self.counts.get(rid, 0) + n
        for rid, reason in judged.rule_errors.items():
            self.rule_errors.setdefault(rid, reason)
        for col, (n, first) in judged.lost.get(i, {}).items():
            had = self.lost.get(col)
            self.lost[col] = (n, first) if had is None else (had[0] + n, min(had[1], first))


def _verdict(
    contract: Contract, builder: _SchemaBuilder, i: int, path: str, raw: RawExtract, month_check: CheckResult | None, tally: _Tally
) -> list[CheckResult] | FileFailure:
    """File ``i``'s checks, or the `FileFailure` that stops it: a rule that could not be run, a value typing
    would lose, more rejected rows than the contract allows."""
    rows_in = raw.rows_in
    malformed = raw.malformed_count if isinstance(raw, ChunkedExtract) else len(raw.malformed)
    broken = sorted(rid for rid in tally.rule_errors if rid not in builder.applies or i in builder.applies[rid])
    if broken:
        # A rule that raised judged no row: it must not count as passed (nothing is loaded).
        rid = broken[0]
        also = f"; rule(s) {', '.join(broken[1:])} could not be run either" if len(broken) > 1 else ""
        return FileFailure(
            path,
            rid,
            f"rule {rid} could not be run ({tally.rule_errors[rid]}){also}; the contract {contract.id} v{contract.version} needs fixing; nothing was loaded",
        )
    col = next((c.name for c in contract.columns if c.name in tally.lost), None)
    if col is not None:
        n_lost, first = tally.lost[col]
        kind = contract.column(col).logical_type
        return FileFailure(
            path,
            f"{col}.type",
            f"{n_lost} row(s) (first at row {first}) have a {col} value that passed every rule of the contract "
            f"{contract.id} v{contract.version} but cannot be stored as {kind}; rather than lose the value nothing was loaded "
            f"(the {col}.type rule must reject such values: please report this)",
        )
    checks = [month_check] if month_check is not None else []
    for rid, info in builder.rules.items():
        if rid in builder.applies and i not in builder.applies[rid]:
            continue
        n_fail = tally.counts.get(rid, 0)
        description = builder.descriptions[rid](i) if rid in builder.descriptions else info.description
        checks.append(CheckResult(rid, info.column, description, info.severity, n_fail == 0, n_fail, tally.rows_checked))
    checks.append(CheckResult("row.field_count", None, f"every row has the header's {len(raw.header)} fields", "error", not malformed, malformed, rows_in))
    if not raw.ends_with_newline:
        checks.append(
            CheckResult("file.ends_with_newline", None, "the file ends with a newline (a missing one can mean a cut-off export)", "warning", False, 0, rows_in)
        )
    fallback = raw.encoding == "windows-1252"  # not UTF-8: the reader fell back to Windows-1252
    checks.append(
        CheckResult(
            "file.encoding",
            None,
            "the file is UTF-8 (a file read as Windows-1252 may show accented characters wrongly)",
            "warning",
            not fallback,
            0,
            rows_in,
            "read as Windows-1252 (not UTF-8); check accented characters" if fallback else None,
        )
    )
    bad_rows = tally.failing_rows + malformed
    limit = contract.reject_limit(rows_in)
    if bad_rows > limit:
        worst = sorted(((n, rid) for rid, n in tally.counts.items()), key=lambda t: (-t[0], t[1]))[:3]
        top = ", ".join(f"{rid} ({n} rows)" for n, rid in worst)
        if malformed:
            top = (top + ", " if top else "") + f"row.field_count ({malformed} rows)"
        return FileFailure(
            path,
            "reject_threshold",
            f"{bad_rows} of {rows_in} rows break the contract, more than the {limit} the contract "
            f"{contract.id} v{contract.version} allows (max({contract.reject_min_rows}, {contract.reject_fraction:.0%} of rows)); "
            f"most common: {top}. The export looks broken; nothing was loaded.",
        )
    return checks


def _lineage(contract: Contract, item: ExtractInput, force: str | None) -> dict:
    return {
        "extract": contract.extract,
        "force_id": force,
        "month": str(item.ctx.month) if item.ctx.month is not None else None,
        "source_file": item.path,
        "source_sha256": item.raw.sha256,
        "contract_version": contract.version,
    }


def _clean(judged: _Judged, i: int, lineage: dict) -> pl.DataFrame:
    """File ``i``'s curated rows: its typed passing rows with their lineage."""
    return (
        judged.typed.get(i, judged.empty_typed)
        .with_columns([pl.lit(lineage[k], dtype=pl.Utf8).alias(k) for k in ("month", "source_file", "source_sha256")])
        .select(judged.empty_typed.columns)
    )


def _result(
    contract: Contract, item: ExtractInput, force: str | None, lineage: dict, rows_in: int, clean: pl.DataFrame, quarantine: pl.DataFrame, checks: list
) -> ExtractResult:
    result = ExtractResult(contract, item.path, item.raw.sha256, item.raw.encoding, lineage["month"], force, rows_in, clean, quarantine, checks)
    assert result.rows_loaded + result.rows_quarantined == rows_in, "rows in must equal rows loaded + rows quarantined"
    return result


# --------------------------------------------------------------------------------------------------
# A file read in chunks


class _SeenKeys:
    """The keys of a file's unique rules in its chunks so far: a row whose key an earlier chunk holds repeats
    an earlier row (repeats inside a chunk the rule itself finds). The keys' 64-bit hashes stay in memory and
    the keys themselves on disk; a hash seen before is confirmed against the keys, so the answer is exact."""

    def __init__(self, keys: dict[str, pl.Expr], stage: staging.Stage):
        self.keys = keys  # helper column -> the key (null: no key, never a repeat)
        self.stage = stage
        self.hashes: dict[str, pl.Series] = {}
        self.files: dict[str, list[Path]] = {h: [] for h in keys}

    def mark(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (a chunk) with a helper column per key: the row's key is in an earlier chunk."""
        columns = []
        for helper, key in self.keys.items():
            k = frame.select(key.alias("key")).to_series()
            h = k.hash(seed=_KEY_SEED)
            known = k.is_not_null()
            seen = pl.repeat(False, len(k), eager=True)
            earlier = self.hashes.get(helper)
            if earlier is not None:
                hits = earlier.filter(earlier.is_in(h.filter(known).implode()))
                if len(hits):
                    same_hash = known & h.is_in(hits.unique().implode())
                    keys = pl.scan_parquet(self.files[helper]).filter(pl.col("hash").is_in(hits.unique().implode())).select("key").collect().to_series()
                    seen = same_hash & k.is_in(keys.implode())
            columns.append(seen.alias(helper))
            new = pl.DataFrame({"hash": h, "key": k}).filter(known)
            self.hashes[helper] = new["hash"] if earlier is None else earlier.append(new["hash"])
            self.files[helper].append(self.stage.write(new, "keys"))
        return frame.with_columns(columns)


_KEY_SEED = 20260101


def _renamed(lf: pl.LazyFrame, contract: Contract) -> pl.LazyFrame:
    return lf.select([pl.col(c.source_name).alias(c.name) for c in contract.columns] + [pl.col(ROW_NUMBER)])


def _validate_chunked(contract: Contract, item: ExtractInput, spill: bool) -> ExtractResult | FileFailure:
    """Validate a file read in chunks, one chunk at a time, with the result of validating it whole: its force
    and month from every row (lazily, a column at a time), the row rules per chunk (a repeated key looked up in
    the earlier chunks too), the counts summed, the curated and quarantined rows per chunk in file order."""
    raw = item.raw
    assert isinstance(raw, ChunkedExtract)
    path = item.path
    message = _missing_columns_message(contract, raw.header, path)
    if message:
        return FileFailure(path, "columns_present", message)
    force = item.ctx.force_id or infer_force(contract, _renamed(raw.scan(), contract))
    month_check = None
    if item.ctx.month is not None:
        try:
            month_check = check_month(contract, _renamed(raw.scan(), contract), item.ctx.month, path, rows=raw.rows)
        except FileFailure as exc:
            return exc.with_traceback(None)  # its frames would keep the file's rows alive
    builder = _SchemaBuilder(contract, [item.ctx], [force], chunked=True)
    schema = builder.build()
    seen = _SeenKeys(builder.seen_keys, raw.stage)
    lineage = _lineage(contract, item, force)
    limit = contract.reject_limit(raw.rows_in)
    out = staging.Stage("validated") if spill else None
    clean: list = []  # DataFrames, or files of `out`
    quarantine: list = []
    tally = _Tally()
    empty_typed = None
    try:
        for part in raw.parts:
            text = part.read()
            frame = _renamed(text.lazy(), contract).collect().with_columns(pl.lit(0, pl.Int32).alias(_FILE), pl.lit(force, pl.Utf8).alias(_FORCE))
            judged = _judge(contract, builder, schema, seen.mark(frame), [0])
            tally.add(judged, 0, frame.height)
            empty_typed = judged.empty_typed
            if tally.rule_errors or tally.lost or tally.failing_rows + raw.malformed_count > limit:
                continue  # the file fails: only the counts for its message are still needed
            chunk = RawExtract(raw.path, raw.sha256, raw.encoding, raw.header, text, part.malformed_rows(), raw.ends_with_newline)
            q = _quarantine_frame(chunk, judged.per_row.get(0, judged.empty_per_row), lineage, contract)
            c = _clean(judged, 0, lineage)
            del text, frame, judged, chunk
            if out is not None:
                quarantine.append((out.write(q, "quarantine"), q.height))
                clean.append((out.write(c, "clean"), c.height))
            else:
                quarantine.append(q)
                clean.append(c)
        verdict = _verdict(contract, builder, 0, path, raw, month_check, tally)
    except BaseException:
        if out is not None:
            out.close()
        raise
    if isinstance(verdict, FileFailure):
        if out is not None:
            out.close()
        return verdict
    if empty_typed is None:  # no row parsed (every row malformed)
        empty_typed = _typed(contract, _renamed(raw.scan(), contract).collect().with_columns(pl.lit(0, pl.Int32).alias(_FILE))).clear().drop(_FILE)
    clean_schema = empty_typed.schema
    if out is not None:
        clean_frame = cast(pl.DataFrame, staging.StagedFrame.of_files([f for f, _ in clean], clean_schema, sum(n for _, n in clean), out))
        q_frame = cast(pl.DataFrame, staging.StagedFrame.of_files([f for f, _ in quarantine], QUARANTINE_SCHEMA, sum(n for _, n in quarantine), out))
    else:
        clean_frame = pl.concat(clean) if clean else pl.DataFrame(schema=clean_schema)
        q_frame = pl.concat(quarantine) if quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return _result(contract, item, force, lineage, raw.rows_in, clean_frame, q_frame, verdict)


def _run_rules(builder: _SchemaBuilder, schema: pa.DataFrameSchema, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """The row failures and the rules that could not run, as `_run_schema` gives them: from the single polars
    pass over the rules (`etl.core.rule_pass`) when it can run, else from the pandera schema itself (a contract
    column absent or not text, a rule that raises: pandera names each rule that cannot run and why)."""
    failures = builder.compiled.run(frame)
    if failures is not None:
        return failures, {}
    return _run_schema(schema, frame)


def _run_schema(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """The row failures as (index, rule) - index is the 0-based position of the failing row - and the
    rules that could not be run at all, as rule id -> the reason in plain words.

    pandera reports a check that raised (e.g. a pattern the polars regex engine rejects) or a schema
    error (a column of the wrong dtype) as a failure case WITHOUT a row index. Such a rule has judged
    no row, so it must not be counted as passed: the caller fails every file it applies to.
    """
    empty = pl.DataFrame(schema={"index": pl.Int64, "rule": pl.Utf8})
    try:
        schema.validate(frame, lazy=True)
        return empty, {}
    except SchemaErrors as exc:
        fc = exc.failure_cases
    except SchemaError as exc:  # pragma: no cover - lazy=True collects errors; kept for safety
        fc = exc.failure_cases if isinstance(exc.failure_cases, pl.DataFrame) else None
        if fc is None:
            raise
    rule = pl.when(pl.col("check") == "not_nullable").then(pl.col("column") + ".required").otherwise(pl.col("check"))
    errors: dict[str, str] = {}
    for row in fc.filter(pl.col("index").is_null()).select("column", "check", "failure_case").unique(maintain_order=True).iter_rows(named=True):
        rid, reason = _rule_error(row["column"], row["check"], row["failure_case"])
        errors.setdefault(rid, reason)
    rows = fc.filter(pl.col("index").is_not_null())
    return rows.select(pl.col("index").cast(pl.Int64), rule.alias("rule")).unique(), errors


def _rule_error(column: str | None, check: str | None, failure_case: str | None) -> tuple[str, str]:
    """The rule id and, in plain words, why it could not be run, from a failure case without a row index.

    Error texts from polars can quote cell values (e.g. a failed conversion lists them), so only the
    kind of error is used - except the regex engine's own words on why a pattern does not compile,
    which describe the contract's pattern, never the data.
    """
    text = str(failure_case or "")
    check = str(check or "")
    if check.startswith("dtype("):
        return f"{column}.dtype", f"column {column} holds {text or 'non-text'} values, not text as read from the file"
    if check == "column_in_dataframe":
        return f"{column}.present", f"column {column} is not in the data"
    if check == "not_nullable":
        rid = f"{column}.required"
    else:
        rid = check or (f"{column}.schema" if column else "schema")
    reason = _engine_reason(text)
    return rid, reason


def _engine_reason(error_text: str) -> str:
    """Plain words for an error raised inside a check (no values from the data)."""
    if error_text.startswith('ComputeError("regex error'):
        detail = next((line.strip()[len("error:") :].strip() for line in error_text.splitlines() if line.strip().startswith("error:")), "")
        return "its pattern is not supported by the polars regex engine validation uses" + (f": {detail}" if detail else "")
    kind = error_text.split("(", 1)[0].strip() if error_text else ""
    if kind == "ColumnNotFoundError":
        return "a column it reads is not in the data"
    if kind in ("InvalidOperationError", "SchemaError", "ComputeError"):
        return f"the validation engine cannot evaluate it on this data ({kind})"
    return f"the check raised an error ({kind})" if kind and kind.isidentifier() else "the check raised an error"


# What a quarantine record holds instead of the value of a column its contract does not name.
_NOT_IN_CONTRACT = "[redacted: not in contract]"


def _quarantine_contract(lineage: dict) -> Contract | None:
    """The contract of a quarantined extract when the caller did not pass it: by extract name (the
    contract id for every contract in contracts/), else the contract whose `extract` is that name."""
    from etl.core.contracts import ContractError, list_contracts, load_contract

    name = lineage.get("extract")
    if not name:
        return None
    try:
        return load_contract(name)
    except ContractError:
        return next((c for c in list_contracts() if c.extract == name), None)


def _redaction_markers(header: list[str], contract: Contract | None) -> dict[str, str | None]:
    """Per header column: the marker replacing its values in the quarantine record, or None to keep them.

    A header name is matched to the contract by the file's own column name (`Column.source_name`, the
    physicalName). A column classified identifier/personal/sensitive/restricted says its class; a
    column the contract does not know (an extra column a force adds) may hold anything: redacted too.
    """
    by_source = {c.source_name: c for c in contract.columns} if contract is not None else {}
    markers: dict[str, str | None] = {}
    for h in header:
        c = by_source.get(h)
        if c is None:
            markers[h] = _NOT_IN_CONTRACT
        elif c.personal:
            markers[h] = f"[redacted: {(c.classification or '').strip().lower()}]"
        else:
            markers[h] = None
    return markers


def _quarantine_frame(raw: RawExtract, per_row: pl.DataFrame, lineage: dict, contract: Contract | None = None) -> pl.DataFrame:
    """The quarantine rows of one file: row number, failed rules and the row as a JSON ``record``.

    The record keeps every column (so the force can see which row and fix it in its own file), but the
    value of a classified column (identifier, personal, sensitive, restricted) or of a column not in the
    contract is replaced by a marker saying why (``"[redacted: identifier]"``); an empty value stays
    null. A malformed row (wrong field count) cannot be split into columns reliably, so its text is not
    kept at all: ``{"_raw_line": "[redacted: malformed row, N fields]"}``. ``contract`` defaults to the
    contract of ``lineage["extract"]``.
    """
    if contract is None:
        contract = _quarantine_contract(lineage)
    if per_row.height == 0 and not raw.malformed:
        return _NO_QUARANTINE
    rows = raw.frame.join(per_row, on=ROW_NUMBER, how="inner").select(
        pl.col(ROW_NUMBER), pl.col("failed_checks"), pl.col("failure_detail"), _record(tuple(raw.header), contract).alias("record")
    )
    if raw.malformed:
        bad = pl.DataFrame(
            {
                ROW_NUMBER: [m.row_number for m in raw.malformed],
                "failed_checks": ["row.field_count"] * len(raw.malformed),
                "failure_detail": [f"row: {m.actual_fields} fields, the header has {m.expected_fields}" for m in raw.malformed],
                "record": [json.dumps({"_raw_line": f"[redacted: malformed row, {m.actual_fields} fields]"}) for m in raw.malformed],
            },
            schema={ROW_NUMBER: pl.Int64, "failed_checks": pl.Utf8, "failure_detail": pl.Utf8, "record": pl.Utf8},
        )
        rows = pl.concat([rows, bad])
    lineage_columns = [pl.lit(v, dtype=QUARANTINE_SCHEMA[k]).alias(k) for k, v in lineage.items()]
    return (
        rows.select([pl.col(k).cast(t) for k, t in QUARANTINE_SCHEMA.items() if k not in lineage] + lineage_columns)
        .select(list(QUARANTINE_SCHEMA))
        .sort(ROW_NUMBER)
    )


_NO_QUARANTINE = pl.DataFrame(schema=QUARANTINE_SCHEMA)
# (header, contract) -> the quarantine record expression (every file of a force has the same header)
_RECORDS: dict[tuple[tuple[str, ...], int], tuple[Contract | None, pl.Expr]] = {}


def _record(header: tuple[str, ...], contract: Contract | None) -> pl.Expr:
    """The row as a JSON object of its header's columns, a redacted column's value replaced by its marker."""
    hit = _RECORDS.get((header, id(contract)))
    if hit is not None and hit[0] is contract:
        return hit[1]
    markers = _redaction_markers(list(header), contract)
    fields = [
        pl.col(h) if markers[h] is None else pl.when(pl.col(h).is_null()).then(pl.lit(None, pl.Utf8)).otherwise(pl.lit(markers[h], pl.Utf8)).alias(h)
        for h in header
    ]
    expr = pl.struct(fields).struct.json_encode()
    if len(_RECORDS) >= 256:
        _RECORDS.clear()
    _RECORDS[(header, id(contract))] = (contract, expr)
    return expr


_POLARS_TYPES: dict[str, pl.DataType | type[pl.DataType]] = {
    "string": pl.Utf8,
    "date": pl.Date,
    "timestamp": pl.Datetime("us"),
    "integer": pl.Int64,
    "number": pl.Float64,
    "boolean": pl.Boolean,
}


def curated_schema(contract: Contract) -> dict[str, pl.DataType]:
    """Columns of an extract's curated table: force_id, the typed contract columns, then lineage."""
    schema: dict = {"force_id": pl.Utf8}
    schema.update({c.name: _POLARS_TYPES[c.logical_type] for c in contract.columns})
    schema.update({"month": pl.Utf8, "source_file": pl.Utf8, "source_sha256": pl.Utf8, "source_row": pl.Int64})
    return schema


def _typed(contract: Contract, frame: pl.DataFrame) -> pl.DataFrame:
    """Contract columns converted to their types, lineage placeholders (set per file), source_row."""
    exprs = []
    for c in contract.columns:
        if c.logical_type == "date":
            e = _as_date(c.name)
        elif c.logical_type == "timestamp":
            e = _as_timestamp(c.name)
        elif c.logical_type in ("integer", "number"):
            e = _as_number(c.name, c.logical_type == "integer")
        elif c.logical_type == "boolean":
            e = pl.when(pl.col(c.name).is_null()).then(None).otherwise(pl.col(c.name) == c.true_value)
        else:
            e = pl.col(c.name)
        exprs.append(e.cast(_POLARS_TYPES[c.logical_type]).alias(c.name))
    lin = [pl.lit(None, dtype=pl.Utf8).alias(k) for k in ("month", "source_file", "source_sha256")]
    # rows stay in file order and, within a file, in line order (as read)
    return frame.select(exprs + lin + [pl.col(ROW_NUMBER).alias("source_row"), pl.col(_FILE)])


def _lost_values(contract: Contract, passed: pl.DataFrame, typed: pl.DataFrame) -> dict[int, dict[str, tuple[int, int]]]:
    """Guard: per file, the typed columns where a non-empty text value became null in the typed frame.

    The type rules reject every value that cannot be converted, so this finds nothing; it exists so
    that no future rule gap can silently turn a value into null. Returns file -> column -> (rows, first row),
    columns in contract order. ``passed`` and ``typed`` hold the same rows in the same order.
    """
    cols = [c.name for c in contract.columns if c.logical_type != "string"]
    if not cols or not passed.height:
        return {}
    flags = pl.concat(
        [
            passed.select([pl.col(n).is_not_null().alias(f"__text_{k}") for k, n in enumerate(cols)]),
            typed.select(pl.col(_FILE), pl.col("source_row"), *[pl.col(n).is_null().alias(f"__null_{k}") for k, n in enumerate(cols)]),
        ],
        how="horizontal",
    ).select(pl.col(_FILE), pl.col("source_row"), *[(pl.col(f"__text_{k}") & pl.col(f"__null_{k}")).alias(n) for k, n in enumerate(cols)])
    if not flags.select(pl.any_horizontal(pl.col(cols).any())).item():
        return {}
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for n in cols:
        hits = flags.filter(pl.col(n)).group_by(_FILE).agg(pl.len().alias("rows"), pl.col("source_row").min().alias("first"))
        for r in hits.iter_rows(named=True):
            out.setdefault(r[_FILE], {})[n] = (r["rows"], r["first"])
    return out


def describe_failure_rows(result: ExtractResult, limit: int = 20) -> list[str]:
    """Plain-words lines for the first quarantined rows (file, row, column, rule, value category)."""
    lines = []
    for r in result.quarantine.head(limit).iter_rows(named=True):
        lines.append(f"{result.source_file} row {r['row_number']}: {r['failure_detail']}  [{r['failed_checks']}]")
    return lines


__all__ = [
    "CheckResult",
    "ExtractError",
    "ExtractInput",
    "ExtractResult",
    "FileFailure",
    "QUARANTINE_SCHEMA",
    "ValidationContext",
    "describe_failure_rows",
    "infer_force",
    "validate_extract",
    "validate_extracts",
]
