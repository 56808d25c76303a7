"""The habits that keep the code readable run with the tests: ruff (lint and format) and mypy, with the
settings in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TREES = ["etl", "flows", "tests", "benchmarks"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = _run("ruff", "check", *TREES)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_the_code_is_formatted():
    result = _run("ruff", "format", "--check", *TREES)
    assert result.returncode == 0, "run `ruff format`:\n" + result.stdout[-5000:]


@pytest.mark.slow
def test_mypy_finds_nothing():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout[-8000:]
