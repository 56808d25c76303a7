"""Deployment entry points; the flows ship inside the package as `etl.flows`."""
