"""police-etl: validated police performance figures every month.

The public API (heavy modules load on first use, so ``import etl`` is cheap)::

    import etl
    etl.load_source_month("source", "2019-03", "warehouse")      # the monthly load (etl.loading)
    etl.Warehouse("warehouse").read("measures")                 # the figures (etl.core.warehouse)
    etl.validate_extract(etl.load_contract("recorded_crime"), etl.read_extract("x.csv"), etl.ValidationContext())

Packages by stage: `etl.core` (extracts, contracts, validation, warehouse, audit ...), `etl.loading`,
`etl.measures`, `etl.quality`, `etl.reporting`, `etl.demo`, `etl.cli`, `etl.flows`; errors in `etl.errors`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from etl.errors import ConfigError, DataError, EtlError, TransientError
from etl.version import __version__

_LAZY = {
    "load_source_month": "etl.loading",
    "load_month": "etl.loading",
    "backfill": "etl.loading",
    "refresh_measures": "etl.loading",
    "LoadFailed": "etl.loading",
    "MonthReport": "etl.loading",
    "Warehouse": "etl.core.warehouse",
    "load_contract": "etl.core.contracts",
    "lint_all": "etl.core.contracts",
    "read_extract": "etl.core.extracts",
    "validate_extract": "etl.core.validation",
    "ValidationContext": "etl.core.validation",
    "compute_measures": "etl.measures",
    "load_definitions": "etl.measures",
    "run_expectations": "etl.quality",
    "write_report": "etl.reporting",
    "generate_demo": "etl.demo",
}

__all__ = ["ConfigError", "DataError", "EtlError", "TransientError", "__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from etl.core.contracts import lint_all, load_contract
    from etl.core.extracts import read_extract
    from etl.core.validation import ValidationContext, validate_extract
    from etl.core.warehouse import Warehouse
    from etl.demo.generator import generate_demo
    from etl.loading.pipeline import LoadFailed, MonthReport, backfill, load_month, load_source_month, refresh_measures
    from etl.measures.engine import compute_measures, load_definitions
    from etl.quality.expectations import run_expectations
    from etl.reporting.reports import write_report


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'etl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
