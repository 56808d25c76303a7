"""The scorecard layout model: changes when the shape of ``contracts/definitions/scorecard.yaml`` does.

The layout is data: one table per objective, rows grouped by sub-objective, one row per KPI, each
with the measure ids of its figures, the period shown as Current and the comparisons shown as
Historical / baseline (the file's header comment documents every key). It is parsed into frozen
pydantic models; a mistake raises `ReportError` naming the file and, where it is in a KPI, the KPI id
and its objective: ``<file>: KPI 'x' (<objective>): current period 'weekly' is not one of ...``.
Entries of the wrong shape (a number where a list of objectives belongs, ...) are one error naming
where in the file they are. Keys the model does not know are ignored (``changes``, comments).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from etl.core.paths import require_regular_file
from etl.core.periods import COMPARISON_TOKENS, PERIOD_TOKENS
from etl.reporting.errors import ReportError

logger = logging.getLogger(__name__)

NO_DATA_KINDS = ("in_development", "monitored_elsewhere", "not_computable")
AVAILABILITY = ("computed", *NO_DATA_KINDS)


class _Problem(ReportError):
    """A rule of the layout broken (as opposed to an entry of the wrong shape): its message is the reason.

    Raised inside the pydantic validators (a ValueError, so pydantic collects it), then re-raised as one
    ReportError naming the file and the KPI."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True, validate_by_name=True, validate_by_alias=True)

    @field_validator("*", mode="before")
    @classmethod
    def _null_list_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # `kpis:` with nothing under it is an empty list, as it always was
        if value is None and info.field_name in ("figures", "kpis", "sub_objectives", "extracts"):
            return ()
        return value


class FigureSpec(_Spec):
    """One figure of a KPI row: a measure id, its short label and the extract(s) it needs."""

    measure: str
    label: str
    extracts: tuple[str, ...] = Field(default=(), validation_alias="extract")

    @model_validator(mode="before")
    @classmethod
    def _raw(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("measure"):
            raise _Problem("a figure has no measure id")
        ex = data.get("extract") or ()
        return {**data, "label": data.get("label") or data["measure"], "extract": [ex] if isinstance(ex, str) else ex}


class LayoutDefaults(_Spec):
    """The file's ``defaults``: the Current period and comparisons of a KPI that names none."""

    current: str = "fytd"
    comparisons: tuple[str, ...] = ()


class KpiSpec(_Spec):
    """One scorecard row: the KPI wording, its figures and what is shown of them."""

    id: str
    kpi: str
    ref: str | None = None
    figures: tuple[FigureSpec, ...] = ()
    current: str
    comparisons: tuple[str, ...]
    target: str | None = None
    availability: str | None
    reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("id"):
            raise _Problem("id missing or repeated")
        if not data.get("kpi"):
            raise _Problem("no KPI wording")
        defaults = (info.context or {}).get("defaults") or LayoutDefaults()
        return {
            **data,
            "availability": data.get("availability") or ("computed" if data.get("figures") else None),
            "current": data.get("current") or defaults.current,
            "comparisons": defaults.comparisons if data.get("comparisons") is None else data["comparisons"],
        }

    @model_validator(mode="after")
    def _rules(self) -> KpiSpec:
        if self.availability not in AVAILABILITY:
            raise _Problem(f"availability must be computed, {', '.join(NO_DATA_KINDS)} (got {self.availability!r})")
        if self.availability == "computed" and not self.figures:
            raise _Problem("a computed KPI needs figures")
        if self.availability != "computed" and not self.reason:
            raise _Problem("a KPI without figures needs a reason")
        if self.current not in PERIOD_TOKENS:
            raise _Problem(f"current period {self.current!r} is not one of {', '.join(PERIOD_TOKENS)}")
        bad = [c for c in self.comparisons if c not in COMPARISON_TOKENS]
        if bad:
            raise _Problem(f"unknown comparison(s) {bad} (known: {', '.join(COMPARISON_TOKENS)})")
        return self


class SubObjectiveSpec(_Spec):
    """A group of rows; no title where the paper leaves the sub-objective blank."""

    title: str | None = None
    kpis: tuple[KpiSpec, ...] = ()


class ObjectiveSpec(_Spec):
    """One objective: a table on the page."""

    title: str
    ref: str | None = None
    sub_objectives: tuple[SubObjectiveSpec, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _titled(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("title"):
            raise _Problem("an objective has no title")
        return data

    @property
    def kpis(self) -> list[KpiSpec]:
        return [k for s in self.sub_objectives for k in s.kpis]


class ScorecardLayout(_Spec):
    """The whole layout file."""

    version: str
    source: str = ""
    path: Path
    objectives: tuple[ObjectiveSpec, ...]

    @field_validator("source", mode="before")
    @classmethod
    def _no_source(cls, value: Any) -> Any:
        return value or ""

    @property
    def kpis(self) -> list[KpiSpec]:
        return [k for o in self.objectives for k in o.kpis]

    @property
    def max_comparisons(self) -> int:
        return max([len(k.comparisons) for k in self.kpis] + [1])


def default_layout_path() -> Path:
    from etl.core.reference import contracts_dir

    return contracts_dir() / "definitions" / "scorecard.yaml"


def load_scorecard_layout(path: str | Path | None = None) -> ScorecardLayout:
    """Read and check the scorecard layout; a mistake raises ReportError naming the file and the row."""
    path = Path(path) if path else default_layout_path()
    require_regular_file(path, ReportError)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot read the scorecard layout ({exc})") from exc
    if not isinstance(data, dict) or not data.get("version") or not data.get("objectives"):
        raise ReportError(f"{path}: the scorecard layout needs a version and objectives")
    try:
        defaults = LayoutDefaults.model_validate(data.get("defaults") or {})
    except ValidationError as exc:
        raise _layout_error(path, {"defaults": data.get("defaults")}, exc, ("defaults",)) from None
    try:
        layout = ScorecardLayout.model_validate({**data, "path": path}, context={"defaults": defaults})
    except ValidationError as exc:
        raise _layout_error(path, data, exc) from None
    seen: set[str] = set()
    for o in layout.objectives:
        for k in o.kpis:
            if k.id in seen:
                raise ReportError(f"{path}: KPI {k.id!r} ({o.title}): id missing or repeated")
            seen.add(k.id)
    logger.debug("scorecard layout %s version %s: %d objectives, %d KPIs", path, layout.version, len(layout.objectives), len(layout.kpis))
    return layout


_SHAPE_WORDS = {
    "list_type": "not a list",
    "tuple_type": "not a list",
    "model_type": "not a mapping",
    "model_attributes_type": "not a mapping",
    "dict_type": "not a mapping",
    "string_type": "not text",
    "missing": "missing",
}


def _layout_error(path: Path, data: dict, exc: ValidationError, prefix: tuple = ()) -> ReportError:
    """The first problem pydantic found, as the one line the old hand-written checks gave."""
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = (*prefix, *err["loc"])
    problem = err.get("ctx", {}).get("error")
    if isinstance(problem, _Problem):
        where = str(path)
        if len(loc) >= 6 and loc[0] == "objectives" and loc[2] == "sub_objectives" and loc[4] == "kpis":
            objective, kpi = _at(data, loc[:2]), _at(data, loc[:6])
            where = f"{path}: KPI {_get(kpi, 'id')!r} ({_get(objective, 'title')})"
        return ReportError(f"{where}: {problem}")
    at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "top level"
    return ReportError(
        f"{path}: the scorecard layout is not shaped as expected: objectives > sub_objectives > kpis > figures, "
        f"each a list of mappings ({at}: {_SHAPE_WORDS.get(err['type'], err['msg'])})"
    )


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, (list, tuple)) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def _at(data: Any, loc: tuple) -> Any:
    for key in loc:
        data = _get(data, key)
    return data


__all__ = [
    "AVAILABILITY",
    "NO_DATA_KINDS",
    "FigureSpec",
    "KpiSpec",
    "LayoutDefaults",
    "ObjectiveSpec",
    "ScorecardLayout",
    "SubObjectiveSpec",
    "default_layout_path",
    "load_scorecard_layout",
]
