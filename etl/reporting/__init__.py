"""Reporting: the Plan KPI scorecard, the national measures page, data quality, CSV exports.

`write_report` (in `etl.reporting.reports`) writes the pages and CSVs; its docstring maps the
modules of this package. The names below are imported on first use, so importing one module of
the package (``etl.reporting.exports`` for ``csv_safe``) does not load the templates' machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReportError": "etl.reporting.errors",
    "ReportPaths": "etl.reporting.reports",
    "write_report": "etl.reporting.reports",
    "ScorecardLayout": "etl.reporting.layout",
    "load_scorecard_layout": "etl.reporting.layout",
    "csv_safe": "etl.reporting.exports",
    "trend_svg": "etl.reporting.charts",
    "round_half_up": "etl.reporting.formatting",
    "format_value": "etl.reporting.formatting",
}

__all__ = ["ReportError", "ReportPaths", "ScorecardLayout", "csv_safe", "format_value", "load_scorecard_layout", "round_half_up", "trend_svg", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
