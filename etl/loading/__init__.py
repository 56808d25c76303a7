"""Loading: source layouts, the monthly batch load, the measures refresh and the backfill."""

from etl.loading.pipeline import BackfillReport, LoadFailed, MonthReport, backfill, load_month, load_source_month, refresh_measures

__all__ = ["BackfillReport", "LoadFailed", "MonthReport", "backfill", "load_month", "load_source_month", "refresh_measures"]
