"""Data quality: the Great Expectations suites over the warehouse tables, and their Data Docs."""

from etl.quality.expectations import ExpectationsReport, run_expectations

__all__ = ["ExpectationsReport", "run_expectations"]
