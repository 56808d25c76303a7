"""Data contracts: ODCS v3 documents in ``contracts/`` read into a `Contract` the validator uses.

Each contract is parsed with the ``open-data-contract-standard`` pydantic model and checked against
the standard's JSON schema. The parts the standard has no words for (the extract's month column,
the rejected-row threshold, code lists valid on a date, reference lists) are read from
``customProperties``; cross-column rules are ``quality`` entries of type ``custom`` with
``engine: etl``. Nothing here validates data: `etl.validation` turns a `Contract` into a
pandera-polars schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard, SchemaProperty

from etl.reference import contracts_dir, yaml_load

LOGICAL_TYPES = {"string", "date", "timestamp", "integer", "number", "boolean"}


class ContractError(ValueError):
    """A contract file that cannot be used, with the file and the problem in plain words."""


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


def _schema_errors(data: dict) -> list[str]:
    import jsonschema

    schema = json.loads(OpenDataContractStandard.json_schema())
    validator = jsonschema.Draft201909Validator(schema) if "2019-09" in schema.get("$schema", "") else jsonschema.Draft7Validator(schema)
    errors = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(top level)"
        errors.append(f"{where}: {err.message}")
    return errors


def _column(prop: SchemaProperty, path: Path) -> Column:
    if not prop.name:
        raise ContractError(f"{path}: a property has no name")
    lt = (prop.logicalType or "string").lower()
    if lt not in LOGICAL_TYPES:
        raise ContractError(f"{path}: property '{prop.name}' has logicalType '{lt}', expected one of {sorted(LOGICAL_TYPES)}")
    opts = prop.logicalTypeOptions or {}
    custom = _custom(prop.customProperties)
    booleans = custom.get("booleanValues") or {}
    fmt = opts.get("format")
    if lt == "date" and fmt not in (None, "yyyy-MM-dd"):
        raise ContractError(f"{path}: property '{prop.name}': only the date format yyyy-MM-dd is supported, not '{fmt}'")
    if lt == "timestamp" and fmt not in (None, "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss"):
        raise ContractError(f"{path}: property '{prop.name}': timestamps are yyyy-MM-dd HH:mm:ss (or with a T), not '{fmt}'")
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
        enum=tuple(str(e.value) for e in (prop.enum or [])),
        true_value=str(booleans["true"]) if "true" in booleans else ("Y" if lt == "boolean" else None),
        false_value=str(booleans["false"]) if "false" in booleans else ("N" if lt == "boolean" else None),
        code_list=custom.get("codeList"),
        reference_list=custom.get("referenceList"),
        classification=prop.classification,
        description=(prop.description or "").strip(),
    )


def parse_contract(path: str | Path) -> Contract:
    """Read and check one ODCS contract file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ContractError(f"{path}: contract file not found") from exc
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{path}: a contract must be a YAML mapping")
    errors = _schema_errors(data)
    if errors:
        raise ContractError(f"{path}: not a valid ODCS document:\n  " + "\n  ".join(errors[:10]))
    try:
        model = OpenDataContractStandard(**data)
    except Exception as exc:  # pydantic ValidationError: report it as a contract problem
        raise ContractError(f"{path}: does not fit the ODCS model: {exc}") from exc
    if not model.schema_ or len(model.schema_) != 1:
        raise ContractError(f"{path}: expected exactly one schema object (one extract per contract)")
    obj = model.schema_[0]
    custom = _custom(model.customProperties)
    columns = tuple(_column(p, path) for p in (obj.properties or []))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: a property name is used twice")

    rules: list[Rule] = []
    keys: list[UniqueKey] = []
    for q in obj.quality or []:
        rid = q.name or q.id
        if not rid:
            raise ContractError(f"{path}: a quality rule has no name")
        if q.type == "custom" and (q.engine or "").lower() == "etl":
            impl = q.implementation if isinstance(q.implementation, dict) else {}
            kind = impl.get("rule")
            if kind not in {"not_after", "not_before_lookup"}:
                raise ContractError(f"{path}: quality rule '{rid}' has unknown etl rule '{kind}'")
            for col in (impl.get("column"), impl.get("other") if kind == "not_after" else None):
                if col and col not in names:
                    raise ContractError(f"{path}: quality rule '{rid}' names column '{col}', which the contract does not have")
            rules.append(Rule(rid, kind, {k: v for k, v in impl.items() if k != "rule"}, (q.description or "").strip(), q.severity or "error"))
        elif q.type == "library" and q.metric == "duplicateValues":
            cols = tuple((q.arguments or {}).get("properties") or [])
            if not cols or any(c not in names for c in cols):
                raise ContractError(f"{path}: quality rule '{rid}' must list contract properties")
            keys.append(UniqueKey(rid, cols, (q.description or f"one row per {', '.join(cols)}").strip()))
        else:
            raise ContractError(f"{path}: quality rule '{rid}' (type {q.type}) is not supported by this project")

    threshold = custom.get("rejectThreshold") or {}
    month_column = custom.get("monthColumn")
    if month_column and month_column not in names:
        raise ContractError(f"{path}: monthColumn '{month_column}' is not a property")
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
        force_column=custom.get("forceColumn"),
        reject_fraction=float(threshold.get("fraction", 0.05)),
        reject_min_rows=int(threshold.get("minimumRows", 25)),
        optional=bool(custom.get("optional", False)),
        reference=bool(custom.get("reference", False)),
        profile=str(custom.get("profile", "force")),
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

CROSS_MONTH_KINDS = {"continuity": (), "key_in_other_months": ("column",), "key_loaded": ("column", "lookup"), "volume_vs_history": (), "reconcile_published": ("tolerancePercent",)}
IDENTIFIER_HINTS = ("_ref", "_id", "person", "response_id")


@dataclass(frozen=True)
class Finding:
    contract: str
    severity: str  # error | warning
    where: str
    message: str


def lint_contract(path: Path) -> list[Finding]:
    """Problems with one contract file; an unparseable file is one error finding."""
    name = path.stem
    try:
        c = parse_contract(path)
    except ContractError as exc:
        return [Finding(name, "error", "file", str(exc))]
    found: list[Finding] = []

    def add(sev: str, where: str, msg: str) -> None:
        found.append(Finding(name, sev, where, msg))

    if c.id != path.stem:
        add("error", "id", f"id '{c.id}' differs from the file name '{path.stem}'")
    import re

    if not re.match(r"^\d+\.\d+\.\d+$", c.version):
        add("error", "version", f"version '{c.version}' is not MAJOR.MINOR.PATCH")
    if c.model and c.model.status not in ("active", "draft", "deprecated", "retired", "proposed"):
        add("warning", "status", f"status '{c.model.status}' is unusual")
    if not (c.model and c.model.description and c.model.description.purpose):
        add("warning", "description", "no description.purpose")
    if not 0 <= c.reject_fraction <= 1:
        add("error", "rejectThreshold", "fraction must be between 0 and 1")
    if c.month_column:
        col = c.column(c.month_column)
        if col.logical_type not in ("date", "timestamp") and not (col.logical_type == "string" and col.pattern and "\\d{4}" in col.pattern.replace("[0-9]{4}", "\\d{4}")):
            add("error", "monthColumn", f"monthColumn '{c.month_column}' must be a date, a timestamp or a YYYY-MM string with a pattern")
    names = set(c.column_names)
    for col in c.columns:
        where = f"property {col.name}"
        if not col.description:
            add("warning", where, "no description")
        if col.enum and len(set(col.enum)) != len(col.enum):
            add("error", where, "enum lists a value twice")
        if col.minimum is not None and col.maximum is not None and col.minimum > col.maximum:
            add("error", where, "minimum is above maximum")
        if col.pattern:
            try:
                re.compile(col.pattern)
            except re.error as exc:
                add("error", where, f"pattern does not compile: {exc}")
        if col.code_list:
            ref = col.code_list.get("reference")
            from etl.reference import ReferenceError_, load_code_list

            try:
                load_code_list(contracts_dir() / ref if ref else None)
            except ReferenceError_ as exc:
                add("error", where, f"codeList: {exc}")
            valid_on = col.code_list.get("validOnColumn")
            if valid_on and valid_on not in names:
                add("error", where, f"codeList validOnColumn '{valid_on}' is not a property")
        if col.name != "force_id" and any(h in col.name for h in IDENTIFIER_HINTS) and not col.classification:
            add("warning", where, "looks like an identifier but has no classification (reports must not show it)")
        if col.name in ("force_id", "month", "source_file", "source_sha256", "source_row") and not (col.name == "force_id" and (c.force_column == "force_id" or c.reference)):
            add("error", where, f"'{col.name}' is a lineage column the warehouse adds; rename the property")
    for spec in _custom(c.model.customProperties if c.model else None).get("crossMonthChecks") or []:
        kind = spec.get("check")
        if kind not in CROSS_MONTH_KINDS:
            add("error", "crossMonthChecks", f"unknown check '{kind}' (known: {', '.join(CROSS_MONTH_KINDS)})")
            continue
        for arg in CROSS_MONTH_KINDS[kind]:
            if arg not in spec:
                add("error", "crossMonthChecks", f"{kind} needs '{arg}'")
        if spec.get("column") and spec["column"] not in names:
            add("error", "crossMonthChecks", f"{kind}: column '{spec['column']}' is not a property")
    return found


def lint_all() -> list[Finding]:
    findings = []
    for path in sorted(contracts_dir().glob("*.yaml")):
        findings.extend(lint_contract(path))
    return findings
