"""The core a run needs to land whole or change nothing.

| module | one reason to change |
|---|---|
| `extracts` | how a CSV file's bytes become text columns with line numbers |
| `contracts` | the ODCS contract format, its parsing and its lint |
| `reference` | reference data shipped with the contracts (code lists, offence groups) |
| `periods` | months, windows and comparison periods |
| `validation` | a contract as a pandera schema: quarantined rows, file failures |
| `cross_month` | checks of a month against the loaded history |
| `published` | ONS published workbooks |
| `warehouse` | Delta tables changed only by whole, serialisable runs; recovery |
| `audit` | the audit_runs and audit_checks rows |
| `progress` | progress events (stage timings, lock waits) |
| `faults` | fault points for crash-safety tests |
"""
