"""The ``etl`` command line (typer). Importing it changes nothing: settings apply when it runs."""

from etl.cli.app import app, main

__all__ = ["app", "main"]
