"""Loading: source layouts, the monthly batch load, the measures refresh and the backfill.

Following a month top to bottom: `load.load_source_month` plans the source's month
(`sources.plan_source_month`) and runs `stages.load_batch`, whose stages read, validate, check across
months, build the writes, compute the measures and commit, in that order. `refresh.refresh_measures`
recomputes measures from the committed tables; `backfill.backfill` loads a range of months then refreshes.
"""

from etl.loading.backfill import backfill
from etl.loading.load import load_month, load_source_month
from etl.loading.measuring import definition_versions, loaded_months, measure_extracts
from etl.loading.reference import REFERENCE_EXTRACTS, new_published, read_areas
from etl.loading.refresh import refresh_measures
from etl.loading.results import BackfillReport, LoadFailed, MonthReport
from etl.loading.sources import PUBLISHED_FOLDER, find_police_uk_files, force_folders

__all__ = [
    "PUBLISHED_FOLDER",
    "REFERENCE_EXTRACTS",
    "BackfillReport",
    "LoadFailed",
    "MonthReport",
    "backfill",
    "definition_versions",
    "find_police_uk_files",
    "force_folders",
    "load_month",
    "load_source_month",
    "loaded_months",
    "measure_extracts",
    "new_published",
    "read_areas",
    "refresh_measures",
]
