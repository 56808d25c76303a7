"""What a load hands back: a month's report, a backfill's report, and the failure a single force folder raises.

One reason to change: what callers (the command line, the flows, the benchmarks) are told about a load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etl.errors import DataError


class LoadFailed(DataError):
    """A month that could not be loaded; the message names the file, rule and what to do."""

    def __init__(self, month: str, message: str, rule: str = "file"):
        super().__init__(message)
        self.month = month
        self.rule = rule
        self.message = message


@dataclass
class MonthReport:
    month: str
    outcome: str  # loaded | failed | missing
    run_id: str | None = None
    force_id: str | None = None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str | None = None
    files: list[dict] = field(default_factory=list)

    expectations: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BackfillReport:
    months: list[MonthReport]
    measures_run_id: str | None
    measure_rows: int

    @property
    def ok(self) -> bool:
        return all(m.outcome == "loaded" for m in self.months)
