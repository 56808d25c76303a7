"""The data contracts (ODCS v3), reference data and definitions; shipped as `etl.resources.contracts`."""
