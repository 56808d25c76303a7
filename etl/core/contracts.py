"""Data contracts: ODCS v3 documents in ``contracts/`` read into a `Contract` the validator uses.

Each contract is parsed with the ``open-data-contract-standard`` pydantic model and checked against
the standard's JSON schema. The parts the standard has no words for (the extract's month column,
the rejected-row threshold, code lists valid on a date, reference lists) are read from
``customProperties``; cross-column rules are ``quality`` entries of type ``custom`` with
``engine: etl``. Nothing here validates data: `etl.core.validation` turns a `Contract` into a
pandera-polars schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import DataQuality, OpenDataContractStandard, SchemaObject, SchemaProperty

from etl.core.paths import require_regular_file
from etl.core.reference import contracts_dir, yaml_load
from etl.errors import ConfigError

LOGICAL_TYPES = {"string", "date", "timestamp", "integer", "number", "boolean"}


class ContractError(ConfigError, ValueError):
    """A contract file that cannot be used, with the file and the problem in plain words.

    ``problems`` lists each problem found as (where, message) - ``where`` names the part of the
    contract (``property victim_age``, ``rejectThreshold``, ``crossMonthChecks``, ``quality <rule>``)
    - so that `lint_contract` reports every one; the message names the file and all of them.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems: list[tuple[str, str]] = list(problems or [])


@dataclass(frozen=True)
class Column:
    name: str  # name in the warehouse
    source_name: str  # header in the file (physicalName, else name)
    logical_type: str
    required: bool
    unique: bool = False
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    date_format: str | None = None
    enum: tuple[str, ...] = ()
    true_value: str | None = None
    false_value: str | None = None
    code_list: dict | None = None  # {reference: path, validOnColumn: col}
    reference_list: dict | None = None  # {file, column, keyColumn, optional}
    classification: str | None = None
    description: str = ""

    @property
    def personal(self) -> bool:
        """Values of this column must never be shown in messages, reports or Data Docs."""
        return (self.classification or "").lower() in {"personal", "identifier", "restricted", "sensitive"}


@dataclass(frozen=True)
class Rule:
    """A row rule across columns (ODCS quality entry of type custom, engine etl)."""

    id: str
    kind: str
    args: dict
    description: str
    severity: str = "error"


@dataclass(frozen=True)
class UniqueKey:
    id: str
    columns: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Contract:
    id: str
    version: str
    name: str
    path: Path
    extract: str
    file_name: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = ()
    unique_keys: tuple[UniqueKey, ...] = ()
    month_column: str | None = None
    force_column: str | None = None
    reject_fraction: float = 0.05
    reject_min_rows: int = 25
    optional: bool = False
    reference: bool = False
    profile: str = "force"  # force extracts, or police_uk for data.police.uk files
    model: OpenDataContractStandard | None = field(default=None, compare=False, repr=False)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def reject_limit(self, rows: int) -> int:
        """Most rows that may be rejected before the whole file fails."""
        return max(self.reject_min_rows, int(self.reject_fraction * rows))


def _custom(props: list | None) -> dict[str, Any]:
    return {p.property: p.value for p in (props or []) if p.property}


@lru_cache(maxsize=1)
def _odcs_schema() -> dict:
    return json.loads(OpenDataContractStandard.json_schema())


@lru_cache(maxsize=1)
def _odcs_validator() -> Any:
    """The ODCS JSON schema's validator (jsonschema-rs: checking the contracts every command reads took
    ~0.2 s a process in pure Python, ~2 ms here), built once a process. Formats are not asserted, as
    the Python validator does not assert them."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(_odcs_schema(), validate_formats=False)


@lru_cache(maxsize=1)
def _odcs_python_validator() -> Any:
    """The Python validator of the same schema, for a document that is not JSON (a YAML date, a key that is
    not text): it checks such a value against its type as any other value, where jsonschema-rs refuses the
    whole document."""
    import jsonschema

    schema = _odcs_schema()
    return jsonschema.Draft201909Validator(schema) if "2019-09" in schema.get("$schema", "") else jsonschema.Draft7Validator(schema)


def _path_key(path: Any) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


def _schema_errors(data: dict) -> list[str]:
    try:
        found = [(list(e.instance_path), e.message) for e in _odcs_validator().iter_errors(data)]
    except ValueError:  # not JSON (jsonschema-rs: "Unsupported type"): the Python validator says where
        found = [(list(e.path), e.message) for e in _odcs_python_validator().iter_errors(data)]
    return [f"{'/'.join(str(p) for p in path) or '(top level)'}: {message}" for path, message in sorted(found, key=lambda f: _path_key(f[0]))]


# What the project reads from a contract. Anything else under these names would be silently ignored
# (a rule that never runs), so it is a problem; unknown customProperties names are lint warnings.
CONTRACT_PROPERTIES = {
    "extract",
    "fileName",
    "monthColumn",
    "monthRule",
    "forceColumn",
    "rejectThreshold",
    "crossMonthChecks",
    "optional",
    "reference",
    "profile",
}
COLUMN_PROPERTIES = {"booleanValues", "codeList", "referenceList"}
TYPE_OPTIONS = {"minimum", "maximum", "pattern", "format"}
PROFILES = {"force", "police_uk"}
ETL_RULES = {"not_after": ("column", "other"), "not_greater": ("column", "other"), "not_before_lookup": ("column", "key", "other", "lookup")}
# crossMonthChecks: check -> (required arguments, optional arguments)
CROSS_MONTH_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "continuity": ((), ()),
    "key_in_other_months": (("column",), ()),
    "key_loaded": (("column", "lookup"), ("lookupColumn",)),
    "volume_vs_history": ((), ("baselineMonths", "minimumMonths")),
    "reconcile_published": (("tolerancePercent",), ()),
}


def _kind(value: Any) -> str:
    """What a YAML value is, in words (for messages: the contract's own values are not personal data)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value not in (float("inf"), float("-inf"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


class _Problems:
    """Problems found while reading a contract, each with where it is."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.items.append((where, message))

    def raise_if_any(self, path: Path) -> None:
        if not self.items:
            return
        if len(self.items) == 1:
            where, message = self.items[0]
            text = f"{path}: {where}: {message}"
        else:
            text = f"{path}: {len(self.items)} problems:\n  " + "\n  ".join(f"{w}: {m}" for w, m in self.items)
        raise ContractError(text, self.items)


def _mapping(value: Any, where: str, name: str, problems: _Problems, allowed: set[str], required: tuple[str, ...] = ()) -> dict | None:
    """VALUE as a mapping with only ALLOWED keys and every REQUIRED key, else None (problems recorded)."""
    if not isinstance(value, dict):
        problems.add(where, f"{name} must be a mapping ({', '.join(sorted(allowed))}), not {_kind(value)}")
        return None
    ok = True
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        problems.add(where, f"{name} has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
        ok = False
    missing = [k for k in required if k not in value]
    if missing:
        problems.add(where, f"{name} needs {', '.join(missing)}")
        ok = False
    return value if ok else None


def _logical_type(prop: SchemaProperty, where: str, problems: _Problems) -> str:
    lt = (prop.logicalType or "string").lower()
    if lt not in LOGICAL_TYPES:
        problems.add(where, f"logicalType '{lt}' is not supported; expected one of {', '.join(sorted(LOGICAL_TYPES))}")
    return lt


def _type_options(prop: SchemaProperty, lt: str, where: str, problems: _Problems) -> dict[str, Any]:
    """logicalTypeOptions as a mapping, each option checked against the logical type."""
    opts: Any = prop.logicalTypeOptions or {}
    if not isinstance(opts, dict):
        problems.add(where, f"logicalTypeOptions must be a mapping, not {_kind(opts)}")
        opts = {}
    unknown = sorted(str(k) for k in opts if k not in TYPE_OPTIONS)
    if unknown:
        problems.add(
            where,
            f"logicalTypeOptions {', '.join(unknown)} not supported by this project (a rule that would never run); supported: {', '.join(sorted(TYPE_OPTIONS))}",
        )
    _check_bounds(opts.get("minimum"), opts.get("maximum"), lt, where, problems)
    pattern = opts.get("pattern")
    if pattern is not None and not _is_text(pattern):
        problems.add(where, f"pattern must be a text, not {_kind(pattern)}")
    _check_format(opts.get("format"), lt, where, problems)
    return opts


def _check_bounds(lo: Any, hi: Any, lt: str, where: str, problems: _Problems) -> None:
    """minimum and maximum: numbers, on a number property, not crossed."""
    for key, value in (("minimum", lo), ("maximum", hi)):
        if value is not None and not _is_number(value):
            problems.add(where, f"{key} must be a number, not {_kind(value)}")
        elif value is not None and lt not in ("integer", "number"):
            problems.add(where, f"{key} applies to integer and number properties only (this one is {lt})")
    if _is_number(lo) and _is_number(hi) and lo > hi:
        problems.add(where, f"minimum is above maximum ({lo} > {hi}): no value could pass")


_DATE_FORMATS = (None, "yyyy-MM-dd")
_TIMESTAMP_FORMATS = (None, "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss")


def _check_format(fmt: Any, lt: str, where: str, problems: _Problems) -> None:
    """format: the one date and the two timestamp spellings the reader parses, nothing on other types."""
    if lt == "date" and fmt not in _DATE_FORMATS:
        problems.add(where, f"only the date format yyyy-MM-dd is supported, not '{fmt}'")
    elif lt == "timestamp" and fmt not in _TIMESTAMP_FORMATS:
        problems.add(where, f"timestamps are yyyy-MM-dd HH:mm:ss (or with a T), not '{fmt}'")
    elif fmt is not None and lt not in ("date", "timestamp"):
        problems.add(where, f"format applies to date and timestamp properties only (this one is {lt})")


def _enum_values(prop: SchemaProperty, where: str, problems: _Problems) -> tuple[str, ...]:
    """The enum's values as texts (a mapping or a list is not a value)."""
    enum: Any = prop.enum or []
    if not isinstance(enum, list):
        problems.add(where, f"enum must be a list, not {_kind(enum)}")
        enum = []
    values = []
    for e in enum:
        v = getattr(e, "value", e)
        if v is None or isinstance(v, (dict, list)):
            problems.add(where, f"enum value {_kind(v)} is not a value")
        else:
            values.append(str(v))
    return tuple(values)


def _column_custom(prop: SchemaProperty, where: str, problems: _Problems) -> dict[str, Any]:
    """The property's customProperties by name (a name the project does not read is a problem)."""
    custom: dict[str, Any] = {}
    for cp in prop.customProperties or []:
        if not cp.property:
            continue
        if cp.property not in COLUMN_PROPERTIES:
            problems.add(where, f"customProperty '{cp.property}' is not one this project reads (known: {', '.join(sorted(COLUMN_PROPERTIES))})")
        custom[cp.property] = cp.value
    return custom


def _boolean_values(custom: dict[str, Any], lt: str, where: str, problems: _Problems) -> tuple[str | None, str | None]:
    """(true, false) spellings of a boolean property: Y/N unless booleanValues says otherwise."""
    default: tuple[str | None, str | None] = ("Y", "N") if lt == "boolean" else (None, None)
    if "booleanValues" not in custom:
        return default
    booleans = custom["booleanValues"]
    if lt != "boolean":
        problems.add(where, f"booleanValues applies to boolean properties only (this one is {lt})")
    elif isinstance(booleans, dict):
        return _boolean_pair(booleans, where, problems) or default
    else:
        problems.add(where, f"booleanValues must be a mapping of true and false to texts, not {_kind(booleans)}")
    return default


def _boolean_pair(booleans: dict, where: str, problems: _Problems) -> tuple[str, str] | None:
    """booleanValues {true: text, false: text}, two different non-empty texts; None if not."""
    # YAML reads an unquoted true/false key as a boolean: accept both spellings
    named = {(str(k).lower() if isinstance(k, (str, bool)) else k): v for k, v in booleans.items()}
    if _mapping(named, where, "booleanValues", problems, {"true", "false"}, ("true", "false")) is None:
        return None
    tv, fv = named["true"], named["false"]
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) != "" for v in (tv, fv)):
        problems.add(where, "booleanValues true and false must be non-empty texts")
        return None
    if str(tv) == str(fv):
        problems.add(where, f"booleanValues true and false are both '{tv}'")
        return None
    return str(tv), str(fv)


def _code_list(custom: dict[str, Any], where: str, problems: _Problems) -> dict | None:
    """codeList {reference, validOnColumn}, both texts when given."""
    if "codeList" not in custom:
        return None
    spec = _mapping(custom["codeList"], where, "codeList", problems, {"reference", "validOnColumn"})
    if spec is not None:
        for key in ("reference", "validOnColumn"):
            if key in spec and not _is_text(spec[key]):
                problems.add(where, f"codeList {key} must be a text, not {_kind(spec[key])}")
    return spec


def _reference_list(custom: dict[str, Any], where: str, problems: _Problems) -> dict | None:
    """referenceList {file, column, keyColumn: texts, optional: true or false}; file is needed."""
    if "referenceList" not in custom:
        return None
    spec = _mapping(custom["referenceList"], where, "referenceList", problems, {"file", "column", "keyColumn", "optional"}, ("file",))
    if spec is not None:
        for key in ("file", "column", "keyColumn"):
            if key in spec and not _is_text(spec[key]):
                problems.add(where, f"referenceList {key} must be a text, not {_kind(spec[key])}")
        if "optional" in spec and not isinstance(spec["optional"], bool):
            problems.add(where, f"referenceList optional must be true or false, not {_kind(spec['optional'])}")
    return spec


def _column(prop: SchemaProperty, problems: _Problems) -> Column | None:
    """One schema property as a `Column`, or None when it has problems (recorded in PROBLEMS)."""
    if not prop.name:
        problems.add("schema properties", "a property has no name")
        return None
    where = f"property {prop.name}"
    n_before = len(problems.items)
    lt = _logical_type(prop, where, problems)
    opts = _type_options(prop, lt, where, problems)
    values = _enum_values(prop, where, problems)
    custom = _column_custom(prop, where, problems)
    true_value, false_value = _boolean_values(custom, lt, where, problems)
    code_list = _code_list(custom, where, problems)
    reference_list = _reference_list(custom, where, problems)
    if len(problems.items) > n_before:
        return None
    return Column(
        name=prop.name,
        source_name=prop.physicalName or prop.name,
        logical_type=lt,
        required=bool(prop.required),
        unique=bool(prop.unique),
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        pattern=opts.get("pattern"),
        date_format="%Y-%m-%d" if lt == "date" else None,
        enum=values,
        true_value=true_value,
        false_value=false_value,
        code_list=code_list,
        reference_list=reference_list,
        classification=prop.classification,
        description=(prop.description or "").strip(),
    )


def _reject_threshold(value: Any, problems: _Problems) -> tuple[float, int]:
    """rejectThreshold {fraction: 0..1, minimumRows: whole number >= 0}; both keys are needed."""
    where = "rejectThreshold"
    spec = _mapping(value, where, "the value", problems, {"fraction", "minimumRows"}, ("fraction", "minimumRows"))
    if spec is None:
        return 0.05, 25
    fraction, rows = spec["fraction"], spec["minimumRows"]
    ok = True
    if not _is_number(fraction) or not 0 <= fraction <= 1:
        problems.add(where, f"fraction must be a number from 0 to 1 (a share of the rows), not {_kind(fraction)}")
        ok = False
    if not _is_int(rows) or rows < 0:
        problems.add(where, f"minimumRows must be a whole number of rows, 0 or more, not {_kind(rows)}")
        ok = False
    return (float(fraction), int(rows)) if ok else (0.05, 25)


def _cross_month_checks(value: Any, names: list[str], problems: _Problems) -> None:
    """crossMonthChecks: a list of {check: <kind>, <arguments>} (read by etl.core.cross_month)."""
    where = "crossMonthChecks"
    if value is None:
        return
    if not isinstance(value, list):
        problems.add(where, f"must be a list of checks ({{check: ...}}), not {_kind(value)}")
        return
    for k, spec in enumerate(value, 1):
        if not isinstance(spec, dict):
            problems.add(where, f"entry {k} must be a mapping with a 'check', not {_kind(spec)}")
            continue
        kind = spec.get("check")
        if not isinstance(kind, str) or kind not in CROSS_MONTH_ARGS:
            problems.add(where, f"entry {k}: unknown check {_shown(kind)} (known: {', '.join(CROSS_MONTH_ARGS)})")
            continue
        needed, optional = CROSS_MONTH_ARGS[kind]
        for arg in needed:
            if arg not in spec:
                problems.add(where, f"entry {k}: {kind} needs '{arg}'")
        unknown = sorted(str(a) for a in spec if a not in {"check", "description", *needed, *optional})
        if unknown:
            problems.add(where, f"entry {k}: {kind} does not take {', '.join(unknown)} (it takes: {', '.join((*needed, *optional)) or 'nothing'})")
        for arg in ("column", "lookup", "lookupColumn"):
            if arg in spec and not _is_text(spec[arg]):
                problems.add(where, f"entry {k}: {kind}: {arg} must be a text, not {_kind(spec[arg])}")
        if _is_text(spec.get("column")) and spec["column"] not in names:
            problems.add(where, f"entry {k}: {kind}: column '{spec['column']}' is not a property")
        for arg in ("baselineMonths", "minimumMonths"):
            if arg in spec and (not _is_int(spec[arg]) or spec[arg] < 1):
                problems.add(where, f"entry {k}: {kind}: {arg} must be a whole number of months, 1 or more, not {_kind(spec[arg])}")
        if "tolerancePercent" in spec and (not _is_number(spec["tolerancePercent"]) or spec["tolerancePercent"] < 0):
            problems.add(where, f"entry {k}: {kind}: tolerancePercent must be a number, 0 or more, not {_kind(spec['tolerancePercent'])}")


def _shown(value: Any) -> str:
    """A contract value as quoted in a message ('text', or what it is when it is not a text)."""
    return f"'{value}'" if isinstance(value, str) else _kind(value)


def _temporal_column(columns: dict[str, Column], names: list[str], name: Any, where: str, what: str, problems: _Problems) -> None:
    """NAME must be a date or timestamp property (a rule comparing dates of anything else never fails).
    A property with problems of its own (not in COLUMNS) is not judged again here."""
    if not _is_text(name):
        problems.add(where, f"{what} must name a property, not {_kind(name)}")
    elif name not in names:
        problems.add(where, f"{what} '{name}' is not a property")
    elif name in columns and columns[name].logical_type not in ("date", "timestamp"):
        problems.add(where, f"{what} '{name}' must be a date or timestamp property (it is {columns[name].logical_type})")


def _number_column(columns: dict[str, Column], names: list[str], name: Any, where: str, what: str, problems: _Problems) -> None:
    """NAME must be an integer or number property (not_greater compares numbers)."""
    if not _is_text(name):
        problems.add(where, f"{what} must name a property, not {_kind(name)}")
    elif name not in names:
        problems.add(where, f"{what} '{name}' is not a property")
    elif name in columns and columns[name].logical_type not in ("integer", "number"):
        problems.add(where, f"{what} '{name}' must be an integer or number property (it is {columns[name].logical_type})")


def _read_document(path: Path) -> dict:
    """The contract file as a YAML mapping."""
    require_regular_file(path, ContractError)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ContractError(f"{path}: contract file not found") from exc
    except UnicodeDecodeError as exc:
        raise ContractError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)") from exc
    except OSError as exc:
        raise ContractError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{path}: a contract must be a YAML mapping")
    return data


def _odcs_model(data: dict, path: Path) -> tuple[OpenDataContractStandard, SchemaObject]:
    """DATA checked against the ODCS JSON schema and read into the standard's model; the model and its
    one schema object (one extract per contract)."""
    try:
        errors = _schema_errors(data)
    except Exception as exc:  # e.g. a YAML date or a key that is not text: not JSON, not ODCS
        raise ContractError(f"{path}: not a valid ODCS document ({type(exc).__name__}: {exc})") from exc
    if errors:
        raise ContractError(f"{path}: not a valid ODCS document:\n  " + "\n  ".join(errors[:10]))
    try:
        model = OpenDataContractStandard(**data)
    except Exception as exc:  # pydantic ValidationError: report it as a contract problem
        raise ContractError(f"{path}: does not fit the ODCS model: {exc}") from exc
    if not model.schema_ or len(model.schema_) != 1:
        raise ContractError(f"{path}: expected exactly one schema object (one extract per contract)")
    return model, model.schema_[0]


def _check_names(names: list[str], problems: _Problems) -> None:
    """Each property name once."""
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        problems.add("schema properties", f"property name(s) {', '.join(twice)} used twice")


def _check_valid_on(columns: tuple[Column, ...], by_name: dict[str, Column], names: list[str], problems: _Problems) -> None:
    """A code list's validOnColumn names a date or timestamp property."""
    for c in columns:
        valid_on = (c.code_list or {}).get("validOnColumn")
        if valid_on:
            _temporal_column(by_name, names, valid_on, f"property {c.name}", "codeList validOnColumn", problems)


def _quality(entries: list[DataQuality], by_name: dict[str, Column], names: list[str], problems: _Problems) -> tuple[list[Rule], list[UniqueKey]]:
    """The quality entries as row rules (custom, engine etl) and unique keys (library duplicateValues)."""
    rules: list[Rule] = []
    keys: list[UniqueKey] = []
    seen: set[str] = set()
    for q in entries:
        rid = q.name or q.id
        if not rid:
            problems.add("quality", "a quality rule has no name")
            continue
        where = f"quality {rid}"
        if rid in seen:
            problems.add(where, "the rule name is used twice")
        seen.add(rid)
        if q.type == "custom" and (q.engine or "").lower() == "etl":
            rule = _etl_rule(q, rid, where, by_name, names, problems)
            if rule is not None:
                rules.append(rule)
        elif q.type == "library" and q.metric == "duplicateValues":
            key = _unique_key(q, rid, where, names, problems)
            if key is not None:
                keys.append(key)
        else:
            problems.add(where, f"quality rule of type {q.type} is not supported by this project (supported: custom with engine etl, library duplicateValues)")
    return rules, keys


def _etl_rule(q: DataQuality, rid: str, where: str, by_name: dict[str, Column], names: list[str], problems: _Problems) -> Rule | None:
    """A custom quality entry with engine etl as a `Rule`, or None when it has problems."""
    impl = q.implementation
    if not isinstance(impl, dict):
        problems.add(where, f"implementation must be a mapping with rule: {' or '.join(ETL_RULES)} and its columns, not {_kind(impl)}")
        return None
    kind = impl.get("rule")
    if not isinstance(kind, str) or kind not in ETL_RULES:
        problems.add(where, f"unknown etl rule {_shown(kind)} (known: {', '.join(ETL_RULES)})")
        return None
    args = ETL_RULES[kind]
    n_before = len(problems.items)
    if _mapping(impl, where, "implementation", problems, {"rule", *args}, args) is None:
        return None
    if kind == "not_greater":
        for arg in ("column", "other"):
            _number_column(by_name, names, impl[arg], where, arg, problems)
    else:
        _temporal_column(by_name, names, impl["column"], where, "column", problems)
    if kind == "not_after":
        _temporal_column(by_name, names, impl["other"], where, "other", problems)
    elif kind == "not_before_lookup":
        _check_lookup_args(impl, where, names, problems)
    if len(problems.items) > n_before:
        return None
    return Rule(rid, kind, {k: v for k, v in impl.items() if k != "rule"}, (q.description or "").strip(), q.severity or "error")


def _check_lookup_args(impl: dict[str, Any], where: str, names: list[str], problems: _Problems) -> None:
    """not_before_lookup: key is a property; other and lookup (the looked-up extract and its column) are texts."""
    if not _is_text(impl["key"]) or impl["key"] not in names:
        problems.add(where, f"key {_shown(impl['key'])} is not a property")
    for arg in ("other", "lookup"):
        if not _is_text(impl[arg]):
            problems.add(where, f"{arg} must be a text, not {_kind(impl[arg])}")


def _unique_key(q: DataQuality, rid: str, where: str, names: list[str], problems: _Problems) -> UniqueKey | None:
    """A library duplicateValues entry as a `UniqueKey` over contract properties, or None."""
    cols = (q.arguments or {}).get("properties") if isinstance(q.arguments, dict) else None
    if not isinstance(cols, list) or not cols or any(not isinstance(c, str) or c not in names for c in cols):
        problems.add(where, "arguments.properties must list contract properties")
        return None
    return UniqueKey(rid, tuple(cols), (q.description or f"one row per {', '.join(cols)}").strip())


def _check_texts(custom: dict[str, Any], keys: tuple[str, ...], problems: _Problems) -> None:
    for key in keys:
        if key in custom and not _is_text(custom[key]):
            problems.add(key, f"must be a text, not {_kind(custom[key])}")


def _check_flags(custom: dict[str, Any], keys: tuple[str, ...], problems: _Problems) -> None:
    for key in keys:
        if key in custom and not isinstance(custom[key], bool):
            problems.add(key, f"must be true or false, not {_kind(custom[key])}")


def _property_name(custom: dict[str, Any], key: str, names: list[str], problems: _Problems) -> str | None:
    """A customProperty that names a property (monthColumn, forceColumn): the name, or None."""
    value = custom.get(key)
    if value is not None and (not _is_text(value) or value not in names):
        problems.add(key, f"{_shown(value)} is not a property")
        return None
    return value


def _check_profile(profile: Any, problems: _Problems) -> None:
    if not isinstance(profile, str) or profile not in PROFILES:
        problems.add("profile", f"{_shown(profile)} is not a source profile (known: {', '.join(sorted(PROFILES))})")


def parse_contract(path: str | Path) -> Contract:
    """Read and check one ODCS contract file.

    Raises `ContractError` naming the file and the part of the contract for anything the project
    cannot use as written - never a KeyError or TypeError from a malformed value.
    """
    path = Path(path)
    model, obj = _odcs_model(_read_document(path), path)
    problems = _Problems()
    custom = _custom(model.customProperties)
    properties = obj.properties or []
    columns = tuple(c for c in [_column(p, problems) for p in properties] if c is not None)
    names = [p.name for p in properties if p.name]
    _check_names(names, problems)
    by_name = {c.name: c for c in columns}
    _check_valid_on(columns, by_name, names, problems)
    rules, keys = _quality(obj.quality or [], by_name, names, problems)

    _check_texts(custom, ("extract", "fileName"), problems)
    month_column = _property_name(custom, "monthColumn", names, problems)
    force_column = _property_name(custom, "forceColumn", names, problems)
    fraction, min_rows = _reject_threshold(custom["rejectThreshold"], problems) if "rejectThreshold" in custom else (0.05, 25)
    _check_flags(custom, ("optional", "reference"), problems)
    profile = custom.get("profile", "force")
    _check_profile(profile, problems)
    _cross_month_checks(custom.get("crossMonthChecks"), names, problems)
    problems.raise_if_any(path)
    return Contract(
        id=model.id or path.stem,
        version=str(model.version),
        name=model.name or path.stem,
        path=path,
        extract=str(custom.get("extract") or model.id),
        file_name=str(custom.get("fileName") or f"{model.id}.csv"),
        columns=columns,
        rules=tuple(rules),
        unique_keys=tuple(keys),
        month_column=month_column,
        force_column=force_column,
        reject_fraction=fraction,
        reject_min_rows=min_rows,
        optional=custom.get("optional", False) is True,
        reference=custom.get("reference", False) is True,
        profile=str(profile),
        model=model,
    )


def list_contracts() -> list[Contract]:
    """Every contract in the contracts directory (one YAML file per extract at its top level)."""
    return [load_contract(p.stem) for p in sorted(contracts_dir().glob("*.yaml"))]


def monthly_contracts(profile: str = "force") -> list[Contract]:
    """The monthly extracts of a source profile, recorded_crime first (others look crimes up)."""
    found = [c for c in list_contracts() if (c.month_column or "{month}" in c.file_name) and not c.reference and c.profile == profile]
    return sorted(found, key=lambda c: (c.extract != "recorded_crime", c.extract))


@lru_cache(maxsize=32)
def load_contract(name: str) -> Contract:
    """The contract called NAME from the contracts directory (``contracts/NAME.yaml``)."""
    path = contracts_dir() / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in contracts_dir().glob("*.yaml")))
        raise ContractError(f"no contract named '{name}' (known: {known})")
    return parse_contract(path)


# --------------------------------------------------------------------------------------------------
# Lint: the ODCS model and JSON schema (checked by parse_contract) plus the project's own rules.

CROSS_MONTH_KINDS = {kind: needed for kind, (needed, _) in CROSS_MONTH_ARGS.items()}
IDENTIFIER_HINTS = ("_ref", "_id", "person", "response_id")


@dataclass(frozen=True)
class Finding:
    contract: str
    severity: str  # error | warning
    where: str
    message: str


def pattern_error(pattern: str) -> str | None:
    """Why the validation engine (the polars regex engine) cannot compile PATTERN, or None if it can.

    Python's ``re`` is not the engine: it accepts look-arounds and backreferences that polars rejects
    (a check using such a pattern would raise on every file), and rejects some that polars accepts.
    """
    import polars as pl

    try:
        pl.select(pl.lit("", pl.Utf8).str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        reason = next((line[len("error:") :].strip() for line in lines if line.startswith("error:")), "") or (lines[0] if lines else type(exc).__name__)
        return reason
    return None


def lint_contract(path: Path) -> list[Finding]:
    """Problems with one contract file. A contract `parse_contract` rejects gives one error finding
    per problem (or one for the file when it is not a readable ODCS document); never an exception."""
    path = Path(path)
    name = path.stem
    try:
        c = parse_contract(path)
    except ContractError as exc:
        if exc.problems:
            return [Finding(name, "error", where, message) for where, message in exc.problems]
        return [Finding(name, "error", "file", str(exc))]
    except Exception as exc:  # a bug here must not stop the lint of the other contracts
        return [Finding(name, "error", "file", f"{path}: could not be checked ({type(exc).__name__}: {exc}); please report this")]
    try:
        return _lint(c, path)
    except Exception as exc:
        return [Finding(name, "error", "file", f"{path}: could not be checked ({type(exc).__name__}: {exc}); please report this")]


_LintFinding = tuple[str, str, str]  # (severity, where, message)
_STATUSES = ("active", "draft", "deprecated", "retired", "proposed")
_LINEAGE_COLUMNS = ("force_id", "month", "source_file", "source_sha256", "source_row")


def _lint(c: Contract, path: Path) -> list[Finding]:
    found = [*_lint_document(c, path), *_lint_month_column(c)]
    for col in c.columns:
        found.extend(_lint_column(c, col))
    return [Finding(path.stem, sev, where, msg) for sev, where, msg in found]


def _lint_document(c: Contract, path: Path) -> Iterator[_LintFinding]:
    """The contract as a whole: id, version, status, description, customProperties."""
    if c.id != path.stem:
        yield "error", "id", f"id '{c.id}' differs from the file name '{path.stem}'"
    if not re.match(r"^\d+\.\d+\.\d+$", c.version):
        yield "error", "version", f"version '{c.version}' is not MAJOR.MINOR.PATCH"
    if c.model and c.model.status not in _STATUSES:
        yield "warning", "status", f"status '{c.model.status}' is unusual"
    if not (c.model and c.model.description and c.model.description.purpose):
        yield "warning", "description", "no description.purpose"
    for prop in (c.model.customProperties or []) if c.model else []:
        if prop.property and prop.property not in CONTRACT_PROPERTIES:
            yield "warning", "customProperties", f"'{prop.property}' is not read by this project (known: {', '.join(sorted(CONTRACT_PROPERTIES))})"


def _lint_month_column(c: Contract) -> Iterator[_LintFinding]:
    """The month column holds a date, a timestamp or a YYYY-MM text with a pattern."""
    if not c.month_column:
        return
    col = c.column(c.month_column)
    if col.logical_type not in ("date", "timestamp") and not (
        col.logical_type == "string" and col.pattern and "\\d{4}" in col.pattern.replace("[0-9]{4}", "\\d{4}")
    ):
        yield "error", "monthColumn", f"monthColumn '{c.month_column}' must be a date, a timestamp or a YYYY-MM string with a pattern"


def _lint_column(c: Contract, col: Column) -> Iterator[_LintFinding]:
    """One property: description, enum, pattern, code list, classification, lineage names."""
    where = f"property {col.name}"
    if not col.description:
        yield "warning", where, "no description"
    if col.enum and len(set(col.enum)) != len(col.enum):
        yield "error", where, "enum lists a value twice"
    if col.pattern:
        reason = pattern_error(col.pattern)
        if reason:
            yield "error", where, f"pattern of {col.name} does not compile with the validation engine (polars regex): {reason}"
    if col.code_list:
        yield from _lint_code_list(col.code_list, where)
    if col.name != "force_id" and any(h in col.name for h in IDENTIFIER_HINTS) and not col.classification:
        yield "warning", where, "looks like an identifier but has no classification (reports must not show it)"
    if col.name in _LINEAGE_COLUMNS and not (col.name == "force_id" and (c.force_column == "force_id" or c.reference)):
        yield "error", where, f"'{col.name}' is a lineage column the warehouse adds; rename the property"


def _lint_code_list(code_list: dict, where: str) -> Iterator[_LintFinding]:
    """The code list a property names can be read."""
    from etl.core.reference import ReferenceError_, load_code_list

    ref = code_list.get("reference")
    try:
        load_code_list(contracts_dir() / ref if ref else None)
    except ReferenceError_ as exc:
        yield "error", where, f"codeList: {exc}"


def lint_all() -> list[Finding]:
    findings = []
    for path in sorted(contracts_dir().glob("*.yaml")):
        findings.extend(lint_contract(path))
    return findings
