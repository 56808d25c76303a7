"""One error taxonomy for the whole library (modelled on dlt's).

Every error the library raises on purpose derives from `EtlError` and says, by its class, what a
caller should do with it:

| class | meaning | exit code | retried by the flows |
|---|---|---|---|
| `DataError` | the data failed its contract (a file rule, too many rejected rows, a bad workbook) | 1 | never: the same file fails again |
| `ConfigError` | a usage or configuration mistake (arguments, paths, contracts, definitions, layouts) | 2 | never |
| `TransientError` | a passing condition (a busy warehouse, a snapshot that moved) | 2 | yes, with back-off |

The command line maps `EtlError` to one plain line and its ``exit_code``; nothing derived from it
ends in a traceback. Classes keep their historical built-in base too (``ValueError``,
``RuntimeError``), so ``except ValueError`` in callers still works.
"""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 2
    retryable = False


class DataError(EtlError):
    """The data failed its contract; the message names the file, row, column and rule."""

    exit_code = 1


class ConfigError(EtlError):
    """A usage or configuration error: the command, a path, a contract, a definition or a layout."""

    exit_code = 2


class TransientError(EtlError):
    """A condition that passes (a busy warehouse, a state that moved): the same run can be tried again."""

    exit_code = 2
    retryable = True


__all__ = ["ConfigError", "DataError", "EtlError", "TransientError"]
