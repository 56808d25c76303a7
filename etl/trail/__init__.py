"""The auditor's trail: read the warehouse as it stood at a run or time (`asof`), trace a figure to its
sources (`trace`), list what later runs changed (`changes`) and the rows a load rejected (`quarantine`).

Everything here reads; nothing writes to the warehouse.
"""
