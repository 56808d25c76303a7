"""Reporting: the Plan KPI scorecard, the national measures page, data quality, CSV exports."""

from etl.reporting.exports import csv_safe
from etl.reporting.reports import ReportError, write_report

__all__ = ["ReportError", "csv_safe", "write_report"]
