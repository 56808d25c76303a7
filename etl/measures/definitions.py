"""Measure definitions: ``contracts/definitions/measures.yaml`` (and the data.police.uk proxy measures
of ``police_uk_mapping.yaml``) read into typed, validated pydantic models.

One reason to change: the definition format (what a measure entry may say and the rules it must obey).

Two layers:

* the file as written (``MeasuresFile``, ``MeasureSpec``, ``FilterSpec``, ``TargetSpec`` ...): the YAML
  shape with its shorthands - one key naming the kind (``count: {...}``, ``share: {denominator, numerator}``),
  a share computed per sample (``sample_period``, ``sums``: an audit's compliance rates),
  ``where`` values given as one value or a list, ``status`` defaulting to ``recorded`` on recorded_crime,
  a target given as free text, ``defaults`` for family and periods;
* what the engine reads (``Measure``, ``Filter``, ``Target``, ``Definitions``): one frozen model per
  measure whose validators hold the rules every measure obeys, wherever it was declared.

A file that breaks a rule raises `DefinitionError` naming the file and the measure id, e.g.
``.../measures.yaml: measure x: a share is in unit pct``.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    field_validator,
    model_validator,
)

from etl.core.paths import require_regular_file
from etl.core.periods import BENCHMARK_TOKENS, COMPARISON_TOKENS, PERIOD_TOKENS
from etl.core.reference import (
    OffenceGroups,
    contracts_dir,
    load_offence_groups,
    yaml_load,
)
from etl.errors import ConfigError

log = logging.getLogger(__name__)

RATE_UNITS = {1000: "per_1000", 100000: "per_100k", 1000000: "per_million"}
KINDS = ("count", "sum", "share", "mean", "median", "rate", "external", "no_data")
TARGET_RULES = ("reduce_by", "gt", "ge", "lt", "le", "sla", "count_target", "increase", "decrease", "monitor")
VALUE_RULES = ("reduce_by", "gt", "ge", "lt", "le", "sla", "count_target")  # rules that need a numeric value
POSITIVE_OUTCOMES = ("1", "2", "3", "4", "6", "7", "8")  # catalogue section 1.2 proposal (22 configurable)
MAPPING_FILE = "police_uk_mapping.yaml"


class DefinitionError(ConfigError, ValueError):
    """A definition file that breaks a rule; the message names the file and the measure."""


class _RuleInEntry(DefinitionError):
    """A broken rule inside a measure entry (a filter, a derived column, a target): the measure's id is
    added where the error is reported."""


def _broken(text: str) -> DefinitionError:
    """A broken rule, in words that name the measure (``measure x ...``) or the file's part. Raised in a
    validator, it reaches the caller inside pydantic's ValidationError (see `_error`)."""
    return DefinitionError(text)


def _broken_part(text: str) -> DefinitionError:
    return _RuleInEntry(text)


# --------------------------------------------------------------------------------------------------
# What the engine reads


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Filter(_Frozen):
    """Which rows count: all conditions must hold."""

    groups: tuple[str, ...] = ()  # offence groups (hocr_code, version in force in the row's month)
    flags: dict[str, bool] = Field(default_factory=dict)  # boolean columns
    where: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # column in values (as text)
    where_not: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # column not in values (nulls pass)
    ranges: dict[str, tuple[int | float | None, int | float | None]] = Field(default_factory=dict)  # inclusive
    status: str | None = None
    present: tuple[str, ...] = ()  # columns that must not be empty
    absent: tuple[str, ...] = ()  # columns that must be empty

    def columns(self) -> set[str]:
        cols = set(self.flags) | set(self.where) | set(self.where_not) | set(self.ranges) | set(self.present) | set(self.absent)
        if self.groups:
            cols.add("hocr_code")
        if self.status:
            cols.add("status")
        return cols

    def expr(self) -> pl.Expr:
        e = pl.lit(True)
        if self.status:
            e = e & (pl.col("status") == self.status)
        for c, want in self.flags.items():
            e = e & (pl.col(c) == want)
        for c, values in self.where.items():
            e = e & pl.col(c).cast(pl.Utf8).is_in(list(values))
        for c, values in self.where_not.items():
            e = e & (pl.col(c).is_null() | ~pl.col(c).cast(pl.Utf8).is_in(list(values)))
        for c in self.present:
            e = e & pl.col(c).is_not_null()
        for c in self.absent:
            e = e & pl.col(c).is_null()
        for c, (lo, hi) in self.ranges.items():
            if lo is not None:
                e = e & (pl.col(c) >= lo)
            if hi is not None:
                e = e & (pl.col(c) <= hi)
        return e.fill_null(False)

    def describe(self) -> str:
        parts = []
        if self.status:
            parts.append(f"status {self.status}")
        parts += [f"{c} {'Y' if v else 'N'}" for c, v in self.flags.items()]
        parts += [f"{c} in [{', '.join(v)}]" for c, v in self.where.items()]
        parts += [f"{c} not in [{', '.join(v)}]" for c, v in self.where_not.items()]
        parts += [f"{c} present" for c in self.present] + [f"{c} empty" for c in self.absent]
        parts += [
            f"{c} {'' if lo is None else f'>= {lo:g}'}{' and ' if lo is not None and hi is not None else ''}{'' if hi is None else f'<= {hi:g}'}"
            for c, (lo, hi) in self.ranges.items()
        ]
        return "; ".join(parts)


class Target(_Frozen):
    rule: str
    value: float | None = None
    comparison: str | None = None  # the comparison row a reduce_by / direction rule is judged on
    text: str = ""


class Measure(_Frozen):
    """One measure as the engine computes it. The validator holds the rules every measure obeys."""

    id: str
    name: str
    family: str
    unit: str
    periods: dict[str, tuple[str, ...]]
    kind: str = "count"
    extract: str = "recorded_crime"
    filter: Filter = Field(default_factory=Filter)
    numerator_filter: Filter | None = None  # share: rows of the denominator that also match this
    column: str | None = None  # sum / mean / median
    derive: dict[str, tuple[str, str, str]] = Field(default_factory=dict)  # name -> (from, to, seconds_between|days_between)
    numerator: str | None = None  # rate
    per: int | None = None
    direction: str = "monitor"
    target: Target | None = None
    proxy_for: str | None = None
    note: str | None = None
    published_group: str | None = None  # ONS PFA Table P1 offence group with the same definition
    reason: str | None = None  # no_data: why it cannot be computed yet
    basis: str | None = None  # stated basis (e.g. outcome-rate cohort basis)
    snapshot: bool = False
    # a share computed per sample (an audit): once per value of this YYYY-MM column, not over monthly windows
    sample_period: str | None = None
    numerator_sum: str | None = None  # per-sample share: column summed over the numerator rows (else the rows)
    denominator_sum: str | None = None  # per-sample share: column summed over the denominator rows (else the rows)

    @model_validator(mode="after")
    def _consistent(self) -> Measure:
        problem = self._problem()
        if problem:
            raise _broken(f"measure {self.id}: {problem}")
        return self

    def _problem(self) -> str | None:
        if self.kind not in KINDS:
            return f"kind {self.kind} is not one of {', '.join(KINDS)}"
        if self.is_rate and RATE_UNITS.get(self.per) != self.unit:  # type: ignore[arg-type]
            return f"per {self.per} needs unit {RATE_UNITS.get(self.per)}"  # type: ignore[arg-type]
        if self.kind in ("sum", "mean", "median") and not self.column:
            return f"a {self.kind} needs a column"
        if self.kind == "share" and self.unit != "pct":
            return "a share is in unit pct"
        if self.kind == "no_data" and not self.reason:
            return "no_data needs a reason"
        if self.snapshot and set(self.periods) - {"month"}:
            return "a snapshot cannot be summed over months; use period month only"
        if (self.numerator_sum or self.denominator_sum) and not self.sample_period:
            return "sums (a share of column sums) are computed per sample only; give sample_period"
        if self.sample_period:
            return self._sample_problem()
        unknown = [p for p in self.periods if p not in PERIOD_TOKENS]
        if unknown:
            return f"unknown period(s) {unknown} (known: {', '.join(PERIOD_TOKENS)})"
        for comps in self.periods.values():
            for c in comps:
                if c == "target" and not (self.target and self.target.value is not None):
                    return "comparison target needs a numeric target"
                if c != "target" and c not in COMPARISON_TOKENS:
                    return f"unknown comparison '{c}' (known: {', '.join(COMPARISON_TOKENS)}, target)"
        return None

    def _sample_problem(self) -> str | None:
        """The rules of a per-sample measure: a share, reported at its sample's month, compared with
        its target or a benchmark (there are no monthly windows to compare), no offence groups."""
        if self.kind != "share":
            return f"sample_period: only a share is computed per sample, not a {self.kind}"
        if set(self.periods) != {"month"}:
            return "a per-sample measure is reported at its sample's month: use period month only"
        if any(f.groups for f in self.filters):
            return "a per-sample measure cannot filter on offence groups"
        for c in self.periods["month"]:
            if c == "target" and not (self.target and self.target.value is not None):
                return "comparison target needs a numeric target"
            if c != "target" and c not in BENCHMARK_TOKENS:
                return f"a per-sample measure compares with target or {', '.join(BENCHMARK_TOKENS)} only, not '{c}'"
        return None

    @property
    def is_rate(self) -> bool:
        return self.kind == "rate"

    @property
    def filters(self) -> list[Filter]:
        """The measure's filters: the rows it counts, and for a share the numerator's."""
        return [self.filter] + ([self.numerator_filter] if self.numerator_filter else [])

    # Backwards-compatible views used by reconciliation and tests
    @property
    def groups(self) -> tuple[str, ...]:
        return self.filter.groups

    @property
    def flags(self) -> dict[str, bool]:
        return self.filter.flags

    @property
    def where(self) -> dict[str, tuple[str, ...]]:
        return self.filter.where

    @property
    def status(self) -> str | None:
        return self.filter.status

    @property
    def needs_crime(self) -> bool:
        """An outcomes measure that reads its crime's columns (offence code, recorded date, flags)."""
        return self.extract == "crime_outcomes"

    @property
    def needs_outcome(self) -> bool:
        return self.extract == "recorded_crime" and any("outcome_type" in f.columns() for f in self.filters)


class Definitions(_Frozen):
    """The measures of a definitions file (and the public-data proxies beside it), with the offence groups."""

    version: str
    path: Path
    measures: tuple[Measure, ...]
    groups: InstanceOf[OffenceGroups]
    mapping_version: str | None = None

    @model_validator(mode="after")
    def _references(self) -> Definitions:
        for m in self.measures:
            unknown = [g for f in m.filters for g in f.groups if g not in self.groups.descriptions]
            if unknown:
                raise _broken(f"measure {m.id} uses unknown offence group(s) {unknown}")
        ids = {m.id for m in self.measures}
        for m in self.measures:
            if m.is_rate and m.numerator not in ids:
                raise _broken(f"rate {m.id} divides unknown measure {m.numerator}")
        return self

    def get(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise KeyError(measure_id)

    def source(self, m: Measure) -> Measure:
        """The measure whose rows are counted: a rate's numerator, else the measure itself."""
        return self.get(m.numerator) if m.is_rate and m.numerator else m

    @property
    def label(self) -> str:
        return f"measures {self.version}; offence_groups {self.groups.version}"

    def label_for(self, m: Measure) -> str:
        if self.source(m).extract.startswith("police_uk"):
            return f"police_uk_mapping {self.mapping_version}"
        return self.label


# --------------------------------------------------------------------------------------------------
# The file as written


class _Spec(BaseModel):
    """A part of a definition file: keys it does not know are ignored (documentation keys such as
    ``refs`` or ``counting_unit``); numbers given where text is expected are read as text."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


# a section given with no value (``numerator:``, ``measures:``) reads as empty
EmptyMapping = BeforeValidator(lambda v: v or {})
EmptyList = BeforeValidator(lambda v: v or [])


class RangeSpec(_Spec):
    min: int | float | None = None
    max: int | float | None = None


class FilterSpec(_Spec):
    """A FILTER: groups, flags, where, where_not, range, present, absent, status."""

    groups: list[str] | None = None
    flags: dict[str, bool] | None = None
    where: dict[str, tuple[str, ...]] | None = None
    where_not: dict[str, tuple[str, ...]] | None = None
    range: dict[str, RangeSpec] | None = None
    status: str | None = None  # when not given: the extract's default (recorded on recorded_crime)
    present: list[str] | None = None
    absent: list[str] | None = None

    @field_validator("where", "where_not", mode="before")
    @classmethod
    def _texts(cls, values: Any) -> Any:
        """``{column: value | [values]}`` as ``{column: (text, ...)}`` (values are compared as text)."""
        if not isinstance(values, dict):
            return values
        return {k: tuple(str(x) for x in (v if isinstance(v, list) else [v])) for k, v in values.items()}

    @field_validator("range", mode="before")
    @classmethod
    def _bounds(cls, ranges: Any) -> Any:
        for c, r in ranges.items() if isinstance(ranges, dict) else ():
            if not isinstance(r, dict) or not ({"min", "max"} & set(r)):
                raise _broken_part(f"range of {c} needs min and/or max")
        return ranges

    def to_filter(self, default_status: str | None) -> Filter:
        return Filter(
            groups=tuple(self.groups or ()),
            flags=dict(self.flags or {}),
            where=dict(self.where or {}),
            where_not=dict(self.where_not or {}),
            ranges={c: (r.min, r.max) for c, r in (self.range or {}).items()},
            status=self.status if "status" in self.model_fields_set else default_status,
            present=tuple(self.present or ()),
            absent=tuple(self.absent or ()),
        )


class _KindSpec(_Spec):
    """What every kind may say: the extract its rows come from."""

    extract: str = "recorded_crime"

    @property
    def default_status(self) -> str | None:
        return "recorded" if self.extract == "recorded_crime" else None


class _SourceSpec(_KindSpec):
    """A kind computed from an extract's rows: a column, and columns derived from two others."""

    column: str | None = None
    derive: dict[str, tuple[str, str, str]] | None = None

    @field_validator("derive", mode="before")
    @classmethod
    def _derived(cls, derive: Any) -> Any:
        if derive is not None and not isinstance(derive, dict):
            return derive  # not a mapping: reported as such
        out = {}
        for name, d in (derive or {}).items():
            d = d if isinstance(d, dict) else {}
            unit = "seconds_between" if d.get("seconds_between") else "days_between"
            pair = d.get(unit)
            if not pair or len(pair) != 2:
                raise _broken_part(f"derive {name} needs seconds_between or days_between: [from, to]")
            out[name] = (pair[0], pair[1], unit)
        return out


class RowsSpec(_SourceSpec, FilterSpec):
    """count / sum / mean / median: the extract's rows matching the filter."""


class SumsSpec(_Spec):
    """sums of a per-sample share: the column summed over the numerator rows and over the denominator
    rows (either omitted: those rows are counted). A boolean column sums as its true rows."""

    numerator: str | None = None
    denominator: str | None = None


class ShareSpec(_SourceSpec):
    """share: numerator rows (within the denominator) / denominator rows x 100. With ``sample_period``
    (a YYYY-MM column of the extract) the share is computed per sample - once per force and value of that
    column, e.g. an audit's month - and ``sums`` may divide column sums instead of rows."""

    numerator: Annotated[FilterSpec, EmptyMapping] = Field(default_factory=FilterSpec)
    denominator: Annotated[FilterSpec, EmptyMapping] = Field(default_factory=FilterSpec)
    sample_period: str | None = None
    sums: SumsSpec | None = None


class RateSpec(_KindSpec):
    """rate: another measure / population x per."""

    numerator: str | None = None
    per: int | None = None


class NoDataSpec(_KindSpec):
    """no_data: declared, not computable yet, with the reason."""

    reason: str | None = None


class TargetSpec(_Spec):
    """target: {rule, value, comparison, text} (catalogue section 0.6)."""

    rule: str | None = None
    value: int | float | None = None
    comparison: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _rule(self) -> TargetSpec:
        if self.rule not in TARGET_RULES:
            raise _broken_part(f"target rule '{self.rule}' is not one of {', '.join(TARGET_RULES)}")
        if self.rule in VALUE_RULES and self.value is None:
            raise _broken_part(f"target rule {self.rule} needs a value")
        return self

    def to_target(self) -> Target:
        value, vs = self.value, self.comparison
        text = (
            self.text
            or {
                "reduce_by": f"reduce by {value}% vs {vs}",
                "gt": f"> {value}",
                "ge": f">= {value}",
                "lt": f"< {value}",
                "le": f"<= {value}",
                "sla": f">= {value}%",
                "count_target": f">= {value}",
                "increase": f"increase vs {vs}",
                "decrease": f"decrease vs {vs}",
                "monitor": "monitor",
            }[self.rule]  # type: ignore[index]  # a target always has a rule (checked by the model)
        )
        return Target(rule=self.rule, value=None if value is None else float(value), comparison=vs, text=text)  # type: ignore[arg-type]


class DefaultsSpec(_Spec):
    family: str | None = None
    periods: dict[str, tuple[str, ...]] | None = None


class MeasureSpec(_Spec):
    """One entry of ``measures:``. Exactly one key names its kind (count, sum, share, mean, median, rate,
    external, no_data); its value holds what the kind needs."""

    id: str
    name: str | None = None
    family: str | None = None
    unit: str = "count"
    periods: dict[str, tuple[str, ...]] | None = None
    count: RowsSpec | None = None
    sum: RowsSpec | None = None
    share: ShareSpec | None = None
    mean: RowsSpec | None = None
    median: RowsSpec | None = None
    rate: RateSpec | None = None
    external: _KindSpec | None = None
    no_data: NoDataSpec | None = None
    direction: str = "monitor"
    target: TargetSpec | None = None
    target_text: str | None = None  # `target: some text` - a direction to monitor, no rule
    proxy_for: str | None = None
    note: Any = None
    published_offence_group: str | None = None
    basis: str | None = None
    snapshot: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        mid = entry.get("id")
        if not mid:
            raise _broken(f"measure id missing or repeated ({mid})")
        kinds = [k for k in KINDS if k in entry]
        if len(kinds) != 1:
            raise _broken(f"measure {mid} needs exactly one of {', '.join(KINDS)} (found {kinds or 'none'})")
        if not isinstance(entry[kinds[0]], dict):  # `external:` or `no_data: true` - nothing more said
            entry = {**entry, kinds[0]: {}}
        if isinstance(entry.get("target"), str):
            entry = {**entry, "target": None, "target_text": entry["target"]}
        return entry

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def to_measure(self, defaults: DefaultsSpec) -> Measure:
        kind = self.kind
        spec = getattr(self, kind)
        if isinstance(spec, ShareSpec):
            base, numerator = spec.denominator, spec.numerator.to_filter(None)
        else:
            base, numerator = (spec if isinstance(spec, FilterSpec) else FilterSpec()), None
        source = spec if isinstance(spec, _SourceSpec) else None
        return Measure(
            id=self.id,
            name=self.name or self.id,
            family=self.family or defaults.family or "national_measure",
            unit=self.unit,
            periods=self.periods or defaults.periods or {},
            kind=kind,
            extract=spec.extract,
            filter=base.to_filter(spec.default_status),
            numerator_filter=numerator,
            column=source.column if source else None,
            derive=(source.derive or {}) if source else {},
            numerator=spec.numerator if isinstance(spec, RateSpec) else None,
            per=spec.per if isinstance(spec, RateSpec) else None,
            direction=self.direction,
            target=Target(rule="monitor", text=self.target_text) if self.target_text is not None else self.target.to_target() if self.target else None,
            proxy_for=self.proxy_for,
            note=" ".join(str(self.note).split()) if self.note else None,
            published_group=self.published_offence_group,
            reason=spec.reason if isinstance(spec, NoDataSpec) else None,
            basis=self.basis,
            snapshot=self.snapshot,
            sample_period=spec.sample_period if isinstance(spec, ShareSpec) else None,
            numerator_sum=spec.sums.numerator if isinstance(spec, ShareSpec) and spec.sums else None,
            denominator_sum=spec.sums.denominator if isinstance(spec, ShareSpec) and spec.sums else None,
        )


class MeasuresFile(_Spec):
    """``contracts/definitions/measures.yaml``: version, defaults (family, periods) and the measures."""

    version: str
    defaults: Annotated[DefaultsSpec, EmptyMapping] = Field(default_factory=DefaultsSpec)
    measures: Annotated[list[MeasureSpec], EmptyList] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> MeasuresFile:
        seen: set[str] = set()
        for m in self.measures:
            if m.id in seen:
                raise _broken(f"measure id missing or repeated ({m.id})")
            seen.add(m.id)
        return self


class ProxyFilterSpec(_Spec):
    column: str | None = None
    equals: Any = None
    positive_from: str | None = None


class ProxyRateSpec(_Spec):
    numerator: str | None = None
    per: Any = None  # a rate when a whole number (1000, 100000, 1000000); else a description


class ProxySpec(_Spec):
    """A proxy measure of the data.police.uk mapping: counts of crime types (or of a column's value),
    their rates, or the share of stop-and-search outcomes the mapping calls positive."""

    id: str
    name: str | None = None
    family: str | None = None
    source: str = "police_uk_street"
    proxy_for: str | None = None
    differs: Any = ""
    direction: str = "monitor"
    published_offence_group: str | None = None
    crime_types: list[str] | None = None
    filter: Annotated[ProxyFilterSpec, EmptyMapping] = Field(default_factory=ProxyFilterSpec)
    rate: Annotated[ProxyRateSpec, EmptyMapping] = Field(default_factory=ProxyRateSpec)

    def to_spec(self, positive_outcomes: tuple[str, ...]) -> MeasureSpec | None:
        """The proxy as a measure entry (None: a kind of proxy the engine does not compute)."""
        common = {
            "id": self.id,
            "name": self.name or self.id,
            "family": self.family,
            "proxy_for": self.proxy_for,
            "note": " ".join(str(self.differs).split()) or None,
            "direction": self.direction,
            "published_offence_group": self.published_offence_group,
        }
        extract, f = self.source, self.filter
        if self.crime_types:
            kind = {"unit": "count", "count": {"extract": extract, "where": {"crime_type": self.crime_types}}}
        elif f.equals and f.column:
            kind = {"unit": "count", "count": {"extract": extract, "where": {f.column: [f.equals]}}}
        elif isinstance(self.rate.per, int) and self.rate.numerator:
            kind = {"unit": RATE_UNITS[self.rate.per], "rate": {"extract": extract, "numerator": self.rate.numerator, "per": self.rate.per}}
        elif f.positive_from == "stop_search_outcomes" and f.column:
            kind = {
                "unit": "pct",
                "share": {"extract": extract, "denominator": {}, "numerator": {"where": {f.column: list(positive_outcomes)}}},
                "basis": "searches with a positive outcome / all searches in the window",
            }
        else:
            return None
        return MeasureSpec.model_validate(common | kind)


class StopSearchOutcomeSpec(_Spec):
    outcome: str
    positive: bool = False


class MappingFile(_Spec):
    """``police_uk_mapping.yaml``, the parts the engine reads: its version, the proxy measures and which
    stop-and-search outcomes are positive."""

    version: Any = None
    proxy_measures: Annotated[list[ProxySpec], EmptyList] = Field(default_factory=list)
    stop_search_outcomes: Annotated[list[StopSearchOutcomeSpec], EmptyList] = Field(default_factory=list)

    @property
    def positive_outcomes(self) -> tuple[str, ...]:
        return tuple(o.outcome for o in self.stop_search_outcomes if o.positive)


# --------------------------------------------------------------------------------------------------
# Reading


_UNION_TAGS = {"int", "float", "str", "bool", "none"}  # where pydantic names the member of a union that failed


def _error(path: Path, exc: ValidationError, data: Any = None, measure_id: str | None = None) -> DefinitionError:
    """The first problem of a validation as one line naming the file and the measure."""
    e = exc.errors(include_url=False)[0]
    loc = list(e["loc"])
    if measure_id is None and len(loc) >= 2 and loc[0] in ("measures", "proxy_measures") and isinstance(loc[1], int):
        entries = data.get(loc[0]) if isinstance(data, dict) else None
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        measure_id = str(entry.get("id")) if isinstance(entry, dict) else f"number {loc[1] + 1}"
        loc = loc[2:]
    broken = (e.get("ctx") or {}).get("error")
    if isinstance(broken, _RuleInEntry):
        text = f"measure {measure_id}: {broken}"
    elif isinstance(broken, DefinitionError):
        text = str(broken)
    else:  # a value of the wrong type or shape: where it is, and what was expected (never the value)
        where = ".".join(str(x) for x in loc if str(x) not in _UNION_TAGS and not str(x).startswith("function-"))
        msg = re.sub(r" or instance of \w+", "", e["msg"])
        text = (f"measure {measure_id}: " if measure_id else "") + (f"{where}: {msg}" if where else msg if measure_id else f"the file: {msg}")
    return DefinitionError(f"{path}: {text}")


def _read(path: Path) -> Any:
    require_regular_file(path, DefinitionError)
    with open(path, encoding="utf-8") as fh:
        return yaml_load(fh)


def _validated(model: type[BaseModel], path: Path, data: Any) -> Any:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise _error(path, exc, data) from None


def read_mapping(path: Path) -> MappingFile:
    """The data.police.uk mapping's proxy measures and positive stop-and-search outcomes."""
    return _validated(MappingFile, path, _read(path))


def _proxies(path: Path, defaults: DefaultsSpec, ids: set[str]) -> tuple[list[Measure], str]:
    """Proxy measures declared in the data.police.uk mapping (counts of crime types, their rates, and
    the stop-search positive outcome share), with the mapping's version."""
    mapping = read_mapping(path)
    out = []
    for p in mapping.proxy_measures:
        if p.id in ids:
            raise DefinitionError(f"{path}: proxy id {p.id} repeats a measure id")
        try:
            spec = p.to_spec(mapping.positive_outcomes)
            if spec is not None:
                out.append(spec.to_measure(defaults))
        except ValidationError as exc:
            raise _error(path, exc, measure_id=p.id) from None
    return out, str(mapping.version)


@lru_cache(maxsize=8)
def load_definitions(path: str | Path | None = None, groups_path: str | Path | None = None) -> Definitions:
    """The measure definitions (default ``contracts/definitions/measures.yaml``) with the offence groups
    and, beside the file, the data.police.uk proxies. Cached per (path, groups_path): a definition change
    is a new file, read by a new process."""
    path = Path(path) if path else contracts_dir() / "definitions" / "measures.yaml"
    data = _read(path)
    groups = load_offence_groups(groups_path)
    spec: MeasuresFile = _validated(MeasuresFile, path, data)
    measures = []
    for entry in spec.measures:
        try:
            measures.append(entry.to_measure(spec.defaults))
        except ValidationError as exc:
            raise _error(path, exc, measure_id=entry.id) from None
    mapping_version = None
    mapping_path = path.parent / MAPPING_FILE
    if mapping_path.exists():
        proxies, mapping_version = _proxies(mapping_path, spec.defaults, {m.id for m in measures})
        measures.extend(proxies)
    try:
        defs = Definitions(version=spec.version, path=path, measures=tuple(measures), groups=groups, mapping_version=mapping_version)
    except ValidationError as exc:
        raise _error(path, exc) from None
    log.info("definitions %s: %d measures (measures %s, offence groups %s)", path, len(defs.measures), defs.version, groups.version)
    return defs


def skipped_proxies(path: Path | None = None) -> list[str]:
    """Proxy ids declared in the mapping that the engine does not compute."""
    defs = load_definitions()
    mapping = path or defs.path.parent / MAPPING_FILE
    if not mapping.exists():
        return []
    known = {m.id for m in defs.measures}
    return [p.id for p in read_mapping(mapping).proxy_measures if p.id not in known]


# --------------------------------------------------------------------------------------------------
# Definition versions in force


def _plain_signature(measure: Measure) -> str:
    """The signature of a measure without offence groups: its filters in words."""
    text = measure.filter.describe()
    if measure.numerator_filter:
        text = f"{measure.numerator_filter.describe()} / {text or 'all rows'}"
    return text or "all codes"


def _groups_of(measure: Measure) -> tuple[str, ...]:
    return tuple(sorted({g for f in measure.filters for g in f.groups}))


def definition_signature(m: Measure, defs: Definitions, idx: int) -> str:
    """Which definition versions count a measure in a month, e.g. 'grp_burglary_residential@2017-04'."""
    measure = defs.source(m)
    groups = _groups_of(measure)
    if not groups:
        return _plain_signature(measure)
    mem = defs.groups.membership
    sig = (
        mem.filter(pl.col("group").is_in(list(groups)) & (pl.col("from_index") <= idx) & (pl.col("to_index") >= idx))
        .select((pl.col("group") + "@" + pl.col("group_version")).unique().sort())
        .to_series()
        .to_list()
    )
    return ", ".join(sig) if sig else "no definition in force"


def signature_table(defs: Definitions, source_ids: list[str], first: int, last: int) -> pl.DataFrame:
    """source_id, idx, sig: ``definition_signature`` of every source measure in months first..last."""
    months = pl.DataFrame({"idx": pl.int_range(first, last + 1, eager=True, dtype=pl.Int32)})
    versions = defs.groups.membership.select("group", "group_version", "from_index", "to_index").unique()
    by_groups: dict[tuple[str, ...], pl.DataFrame] = {}
    out = []
    for sid in source_ids:
        measure = defs.get(sid)
        groups = _groups_of(measure)
        if not groups:
            sig = months.with_columns(pl.lit(_plain_signature(measure)).alias("sig"))
        else:
            if groups not in by_groups:
                in_force = (
                    months.join(versions.filter(pl.col("group").is_in(list(groups))), how="cross")
                    .filter((pl.col("from_index") <= pl.col("idx")) & (pl.col("to_index") >= pl.col("idx")))
                    .group_by("idx")
                    .agg((pl.col("group") + "@" + pl.col("group_version")).unique().sort().alias("sig"))
                    .with_columns(pl.col("sig").list.join(", "))
                )
                by_groups[groups] = months.join(in_force, on="idx", how="left").with_columns(pl.col("sig").fill_null("no definition in force"))
            sig = by_groups[groups]
        out.append(sig.with_columns(pl.lit(sid).alias("source_id")))
    return pl.concat(out).select("source_id", "idx", "sig")
