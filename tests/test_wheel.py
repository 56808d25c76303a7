"""The wheel works anywhere: built from the repository, installed into a clean environment and run from
an empty folder, it lints its contracts and loads a month (contracts, definitions, expectation suites
and the demo profile ship inside it and are found with importlib.resources)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import crime, write_month, write_population

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "etl").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)], check=True, capture_output=True, text=True, timeout=600
    )
    (whl,) = out.glob("police_etl-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_its_declarative_files_and_no_foreign_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"etl"}  # no top-level `flows` (a name taken on the package index), no `contracts`
    for needed in (
        "etl/resources/contracts/recorded_crime.yaml",
        "etl/resources/contracts/definitions/measures.yaml",
        "etl/resources/contracts/reference/hocr_offence_codes.yaml",
        "etl/resources/expectations/recorded_crime.json",
        "etl/demo/profile.yaml",
        "etl/py.typed",
        "etl/flows/monthly.py",
        "etl/reporting/templates/scorecard.html",
        "etl/reporting/static/report.css",
    ):
        assert needed in names, needed


@pytest.mark.slow
def test_the_installed_wheel_lints_and_loads_a_month_from_an_empty_folder(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), str(wheel)], capture_output=True, text=True, timeout=1800
    )
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ETL_CONTRACTS_DIR", "ETL_EXPECTATIONS_DIR", "VIRTUAL_ENV")}
    where = subprocess.run([str(py), "-c", "import etl; print(etl.__file__, etl.__version__)"], cwd=work, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert str(env_dir) in where.stdout and str(REPO) not in where.stdout
    etl_bin = env_dir / "bin" / "etl"
    lint = subprocess.run([str(etl_bin), "contracts", "lint"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 error(s)" in lint.stdout
    source = work / "source"
    write_population(source, {2019: 1000})
    write_month(source, "2019-03", [crime(f"c{i}", f"2019-03-{i % 28 + 1:02d}", "8N") for i in range(12)])
    run = subprocess.run(
        [str(etl_bin), "run", "--source", "source", "--month", "2019-03", "--warehouse", "wh", "--engine", "local"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "13 rows in = 13 loaded + 0 quarantined" in run.stdout  # 12 crimes + 1 population row
    assert (work / "wh" / "recorded_crime" / "_delta_log").is_dir()
