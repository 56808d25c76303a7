"""The reporting error: changes only if the error taxonomy (`etl.errors`) does."""

from __future__ import annotations

from etl.errors import ConfigError


class ReportError(ConfigError, ValueError):
    """A report that cannot be written as asked (bad layout file, ambiguous force), with the reason."""


__all__ = ["ReportError"]
