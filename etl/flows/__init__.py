"""Prefect flows over the loading package (thin: every decision is in `etl.loading`)."""
