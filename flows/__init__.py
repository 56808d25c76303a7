"""Prefect flows: thin orchestration over the plain functions in `etl.pipeline`."""
