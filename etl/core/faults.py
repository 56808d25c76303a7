"""Fault injection for crash-safety tests: stop the process dead at a named commit point.

Set ``ETL_FAULT=<point>`` (or ``<point>#<n>`` for the n-th time the point is reached) and the process
ends at once with exit code `FAULT_EXIT` when it gets there - no ``finally`` blocks, no rollback, no
lock release, exactly like ``kill -9``. Unset (the normal case) a fault point costs one dictionary
look-up. The points are listed in `POINTS`, so a test can go through every one of them.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

FAULT_EXIT = 86

POINTS = (
    "lock.acquired",  # the warehouse lock is held, nothing done yet
    "commit.start",  # a run's commit begins (recovery done, nothing written)
    "commit.audit_runs_created",  # a new warehouse's empty audit_runs table was created
    "commit.before_write",  # before each table write of a run (use #n for the n-th table)
    "commit.after_write",  # after each table write of a run (use #n)
    "commit.after_checks",  # audit_checks written, the run's audit_runs row not yet
    "commit.after_run_row",  # the run is committed (its audit_runs row written), before compaction
    "recover.start",  # recovery found tables ahead of the committed state, nothing restored yet
    "recover.after_restore",  # after each table is rolled back (use #n)
    "recover.before_run_row",  # every table rolled back, the recovery row not yet written
)

_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """End the process here if ``ETL_FAULT`` names this point (see the module docstring)."""
    spec = os.environ.get("ETL_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition("#")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] == int(nth or 1):
        sys.stderr.write(f"fault injected at {spec}\n")
        sys.stderr.flush()
        os._exit(FAULT_EXIT)
