"""The measures engine: definitions (contracts/definitions/measures.yaml), windows, judgement and SPC."""

from etl.measures.engine import DefinitionError, compute_measures, load_definitions, monthly_counts
from etl.measures.spc import control_charts

__all__ = ["DefinitionError", "compute_measures", "control_charts", "load_definitions", "monthly_counts"]
