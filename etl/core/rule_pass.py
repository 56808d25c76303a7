"""The row rules of a contract compiled into ONE polars pass over the frame being validated.

`etl.core.validation` builds each row rule as a polars boolean expression (True: the row passes) and
declares the same rules as a pandera-polars schema. Running that schema costs about twice a single
polars ``select`` of the expressions (per-check collection and failure-case assembly), so the rules
normally run here instead, with pandera's results reproduced exactly:

* a rule's failing rows are those where its expression is False; a NULL result passes when the check
  ignores nulls (pandera's ``Check(ignore_na=True)``, the default, which every rule uses) and fails
  otherwise (pandera fills it with False);
* ``required`` (pandera ``nullable=False``) fails a row whose value is null (the columns are text, so
  there is no NaN to count as missing);
* the result is the set of failing (index, rule) pairs, index = the 0-based position of the row in the
  frame passed, exactly as ``etl.core.validation._run_schema`` returns pandera's failure cases.

`RulePass.run` returns None instead of an answer whenever the pass cannot reproduce pandera: a contract
column absent or not text, an expression that does not give one boolean per row or raises (e.g. a
pattern the polars regex engine rejects), or a check using a pandera feature the pass does not model.
The caller then runs the pandera schema, which names each rule that cannot run and why.

Column checks and frame checks are read alike (pandera gives both the whole frame and takes the row
index from the check's output). One detail is not reproduced: a rule written as an aggregate (one value
for the frame) next to row rules is broadcast to every row by the shared ``select``, where pandera would
report row 0 only; every rule `validation._SchemaBuilder` makes is a row rule (a frame of aggregates
only is detected and left to pandera).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl


@dataclass(frozen=True)
class CompiledRule:
    id: str  # the rule id (pandera's check ``error``)
    expr: Callable[[], pl.Expr]  # True: the row passes
    ignore_na: bool = True  # a NULL result passes (pandera's default)


@dataclass
class RulePass:
    """The row rules of one schema, recorded as the schema is built, evaluated in a single polars pass."""

    rules: list[CompiledRule] = field(default_factory=list)  # in schema order; an id may repeat (its failures are united)
    columns: dict[str, bool] = field(default_factory=dict)  # contract column -> required (nulls fail `<column>.required`)
    unsupported: list[str] = field(default_factory=list)  # checks the pass cannot reproduce: pandera runs the rules

    def add(self, rule_id: str, expr: Callable[[], pl.Expr], check: pa.Check) -> None:
        """Record the rule of ``check`` (a pandera check whose function selects ``expr()``)."""
        if check.element_wise or check.raise_warning or check.n_failure_cases is not None or check.groupby is not None or check.groups is not None:
            self.unsupported.append(rule_id)
        self.rules.append(CompiledRule(rule_id, expr, bool(check.ignore_na)))

    def column(self, name: str, required: bool) -> None:
        """Record a contract column: it must be present as text; ``required``: a null value fails ``<name>.required``."""
        self.columns[name] = required

    def run(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        """The failing rows of ``frame`` as unique (index Int64, rule Utf8) pairs, or None when the pass
        cannot give pandera's answer (the caller then runs the pandera schema)."""
        if self.unsupported or any(frame.schema.get(name) != pl.String for name in self.columns):
            return None
        ids = [r.id for r in self.rules] + [f"{name}.required" for name, required in self.columns.items() if required]
        names = [f"r{k}" for k in range(len(ids))]
        if not ids:
            return _EMPTY.clear()
        try:
            exprs = [r.expr() for r in self.rules]
            lf = frame.lazy()
            # a boolean per row, else pandera's reading of the output could differ (e.g. a number, a null literal)
            if any(dtype != pl.Boolean for dtype in lf.select([e.alias(n) for e, n in zip(exprs, names)]).collect_schema().dtypes()):
                return None
            fails = [(~e.fill_null(r.ignore_na)) for e, r in zip(exprs, self.rules)]
            fails += [pl.col(name).is_null() for name, required in self.columns.items() if required]
            # the one pass over the rows: a "fails" flag per rule and row (common subexpressions computed once)
            flags = lf.select([f.alias(n) for f, n in zip(fails, names)]).collect()
        except Exception:  # any error: pandera runs the rules and names the one that cannot run, as it always did
            return None
        if flags.height != frame.height:
            return None  # not a verdict per row (every rule an aggregate): leave it to pandera
        # per rule, the positions of its failing rows (cheap on the flags, an empty list when none fails)
        positions = flags.select([pl.col(n).arg_true().implode() for n in names])
        pairs = positions.unpivot(variable_name="k", value_name="index").explode("index").drop_nulls("index")
        return pairs.select(
            pl.col("index").cast(pl.Int64),
            pl.col("k").replace_strict(names, ids, return_dtype=pl.Utf8).alias("rule"),
        ).unique()


_EMPTY = pl.DataFrame(schema={"index": pl.Int64, "rule": pl.Utf8})
