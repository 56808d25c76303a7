"""Scrutiny: checks a reader of published figures can run on them (a statement's arithmetic).

One reason to change: what the library offers to people who check figures rather than produce them.
"""

from etl.scrutiny.statement import (
    Finding,
    Printed,
    StatementError,
    StatementLine,
    check_lines,
    read_statement,
)

__all__ = ["Finding", "Printed", "StatementError", "StatementLine", "check_lines", "read_statement"]
