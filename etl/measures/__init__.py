"""The measures engine: from the curated tables to the ``measures`` and ``spc`` tables.

| module | one reason to change |
|---|---|
| `definitions` | the definition format: ``contracts/definitions/measures.yaml`` (and the data.police.uk proxies) as validated pydantic models |
| `components` | how an extract's rows become each measure's monthly sums per force and month |
| `windows` | window arithmetic: which months a (period, comparison) window covers, its sums, completeness and medians |
| `external` | figures from elsewhere: population estimates, published baselines, [EXTERNAL] measures |
| `samples` | per-sample shares (an audit's compliance rates): sample counts, rows, national benchmarks |
| `judgement` | a row's value, change, status (target rules) and notes |
| `engine` | putting the parts together: `compute_measures` |
| `xmr` | the XmR rules (limits, runs), shared by the control charts and the volume check |
| `spc` | the control charts: which series, over which baseline run |

A caller computing both tables from the same curated tables computes the monthly components once and
passes them to both::

    components = monthly_components(tables, defs)
    table = compute_measures(tables, loaded, population, defs, components=components)
    charts = control_charts(tables, loaded, defs, components=components)
"""

from etl.measures.components import (
    MonthlyComponents,
    monthly_components,
    monthly_counts,
)
from etl.measures.definitions import (
    DefinitionError,
    Definitions,
    Filter,
    Measure,
    Target,
    definition_signature,
    load_definitions,
    skipped_proxies,
)
from etl.measures.engine import compute_measures
from etl.measures.judgement import MEASURE_SCHEMA
from etl.measures.samples import load_benchmarks, sample_counts
from etl.measures.spc import SPC_SCHEMA, control_charts, describe, month_label

__all__ = [
    "MEASURE_SCHEMA",
    "SPC_SCHEMA",
    "DefinitionError",
    "Definitions",
    "Filter",
    "Measure",
    "MonthlyComponents",
    "Target",
    "compute_measures",
    "control_charts",
    "definition_signature",
    "describe",
    "load_benchmarks",
    "load_definitions",
    "month_label",
    "monthly_components",
    "monthly_counts",
    "sample_counts",
    "skipped_proxies",
]
