"""Contracts: ODCS documents parsed with the standard's model, linted with the project's rules, rendered."""

import re
import shutil

import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.core.contracts import ContractError, lint_all, lint_contract, list_contracts, load_contract, parse_contract
from etl.core.reference import contracts_dir

runner = CliRunner()


def test_every_contract_in_the_repo_is_valid_and_lint_clean():
    contracts = list_contracts()
    assert {"recorded_crime", "crime_outcomes", "population"} <= {c.id for c in contracts}
    errors = [f for f in lint_all() if f.severity == "error"]
    assert errors == []
    rc = load_contract("recorded_crime")
    assert rc.model.apiVersion.startswith("v3.")
    assert rc.column("hocr_code").code_list["validOnColumn"] == "recorded_date"
    assert rc.column("victim_age").personal and rc.column("crime_ref").personal


def write(tmp_path, text):
    p = tmp_path / "broken.yaml"
    p.write_text(text)
    return p


BASE = (contracts_dir() / "crime_outcomes.yaml").read_text()


@pytest.mark.parametrize(
    "change,where,message",
    [
        (("id: crime_outcomes", "id: broken"), None, None),  # id now matches the file name: clean
        (("version: 1.0.0", "version: one"), "version", "MAJOR.MINOR.PATCH"),
        (("{minimum: 1, maximum: 22}", "{minimum: 30, maximum: 22}"), "property outcome_type", "minimum is above maximum"),
        (
            ("{check: key_loaded, column: crime_ref, lookup: recorded_crime}", "{check: key_loaded, column: nope, lookup: recorded_crime}"),
            "crossMonthChecks",
            "not a property",
        ),
        (("{check: key_loaded, column: crime_ref, lookup: recorded_crime}", "{check: sometimes}"), "crossMonthChecks", "unknown check"),
    ],
)
def test_lint_finds_project_rule_breaks(tmp_path, change, where, message):
    text = BASE.replace("id: crime_outcomes", "id: broken").replace(*change)
    findings = [f for f in lint_contract(write(tmp_path, text)) if f.severity == "error"]
    if where is None:
        assert findings == []
    else:
        assert [(f.where, message in f.message) for f in findings] == [(where, True)]


def test_not_odcs_is_reported_with_the_path(tmp_path):
    p = write(tmp_path, BASE.replace("kind: DataContract", "kind: DataContract\nsurprise: 1"))
    with pytest.raises(ContractError, match="not a valid ODCS document"):
        parse_contract(p)
    (f,) = lint_contract(p)
    assert f.severity == "error" and "surprise" in f.message
    with pytest.raises(ContractError, match="logicalType"):
        parse_contract(write(tmp_path, BASE.replace("logicalType: integer", "logicalType: decimal")))


def test_contracts_cli(tmp_path, monkeypatch):
    r = runner.invoke(app, ["contracts", "show", "recorded_crime"])
    assert r.exit_code == 0
    for text in ("hocr_code", "valid on recorded_date", "every recorded_date inside the extract's month", "key_in_other_months", "[personal]"):
        assert text in r.output
    assert runner.invoke(app, ["contracts", "lint"]).exit_code == 0
    assert "recorded_crime" in runner.invoke(app, ["contracts", "list"]).output
    assert runner.invoke(app, ["contracts", "show", "nope"]).exit_code == 2
    cdir = tmp_path / "contracts"
    shutil.copytree(contracts_dir(), cdir)
    (cdir / "population.yaml").write_text((cdir / "population.yaml").read_text().replace("version: 1.0.0", "version: v1"))
    monkeypatch.setenv("ETL_CONTRACTS_DIR", str(cdir))
    r = runner.invoke(app, ["contracts", "lint"])
    assert r.exit_code == 1 and "MAJOR.MINOR.PATCH" in r.output


def test_a_contract_that_is_not_json_is_checked_against_the_schema_all_the_same(tmp_path):
    """jsonschema-rs refuses a document holding a value JSON has no type for (an unquoted YAML date); the
    contract is still checked value by value and the message says where, as for any other wrong type."""
    source = (contracts_dir() / "population.yaml").read_text()
    assert "version: " in source
    path = tmp_path / "population.yaml"
    path.write_text(re.sub(r"(?m)^version: .*$", "version: 2020-01-01", source, count=1))
    with pytest.raises(ContractError, match=r"not a valid ODCS document:\n  version: datetime.date\(2020, 1, 1\) is not of type 'string'"):
        parse_contract(path)
