"""Declarative files that ship inside the package: the data contracts and definitions
(``etl.resources.contracts``, the repository's top-level ``contracts/``) and the expectation suites
(``etl.resources.expectations``, the top-level ``expectations/``). `pyproject.toml` maps the two
folders into the package, so a wheel carries them and an editable install reads the repository's copy.

`contracts_dir` and `expectations_dir` say where they are; ``ETL_CONTRACTS_DIR`` and
``ETL_EXPECTATIONS_DIR`` (or the command line's ``--contracts`` / ``--expectations``) point at a
force's own copy instead.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def _packaged(package: str) -> Path:
    root = resources.files(package)
    return Path(str(root))  # installed packages are folders on disk (wheels are unpacked), so this is a real path


def contracts_dir() -> Path:
    """Where contracts and definitions live (``ETL_CONTRACTS_DIR`` overrides the packaged copy)."""
    override = os.environ.get("ETL_CONTRACTS_DIR")
    return Path(override) if override else _packaged("etl.resources.contracts")


def expectations_dir() -> Path:
    """Where the expectation suites live (``ETL_EXPECTATIONS_DIR`` overrides the packaged copy)."""
    override = os.environ.get("ETL_EXPECTATIONS_DIR")
    return Path(override) if override else _packaged("etl.resources.expectations")


__all__ = ["contracts_dir", "expectations_dir"]
