"""The command line, in process with the local engine: exit codes, messages, and JSON output."""

import json

import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from tests.conftest import CRIME_HEADER, crime, write_csv, write_month, write_population
from tests.test_cli_output import measure_column

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def two_years(source):
    write_population(source, {2019: 500_000, 2020: 510_000})
    for i, m in enumerate([f"{y}-{mm:02d}" for y in (2018, 2019, 2020) for mm in range(1, 13)][6:]):
        rows = [crime(f"{m}-{k}", f"{m}-1{k % 9}", code) for k, code in enumerate(["1", "34B", "34B", "39", "45", "8N", "28E", "58A"][: 4 + i % 5])]
        write_month(source, m, rows)
    return source


def test_backfill_then_measures_json(two_years, warehouse):
    r = invoke("backfill", "--source", two_years, "--from", "2018-07", "--to", "2020-12", "--warehouse", warehouse, "--engine", "local")
    assert r.exit_code == 0, r.output
    assert "30/30" in r.output or "Months loaded" in r.output
    r = invoke("measures", "--month", "2020-12", "--warehouse", warehouse, "--format", "json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    keys = {
        "force_id",
        "measure_id",
        "family",
        "period",
        "period_start",
        "period_end",
        "value",
        "unit",
        "comparison",
        "comparison_start",
        "comparison_end",
        "comparison_value",
        "change_abs",
        "change_pct",
        "target",
        "status",
        "definition_version",
        "run_id",
    }
    assert keys <= set(rows[0])
    nc = [x for x in rows if x["measure_id"] == "nm_nc_total"]
    assert {(x["period"], x["comparison"]) for x in nc} == {("r12", "ye_jun19"), ("r12", "prev_r12"), ("cal", "ye_jun19"), ("cal", "sply")}
    # a measure needing an extract this source does not have is reported, not silently missing
    calls = [x for x in rows if x["measure_id"] == "pk_999_within_10s_pct"]
    assert calls and all(x["status"] == "incomplete" and "needs the calls extract" in x["note"] for x in calls)
    hom = next(x for x in rows if x["measure_id"] == "nm_homicide_count" and x["period"] == "r12" and x["comparison"] == "prev_r12")
    assert hom["value"] == 12 and isinstance(hom["value"], int) and hom["comparison_value"] == 12 and hom["status"] == "monitor"
    r = invoke("measures", "--month", "2020-12", "--warehouse", warehouse, "--format", "csv")
    assert r.stdout.splitlines()[0].startswith("force_id,measure_id,family,period")
    r = invoke("measures", "--month", "2020-12", "--warehouse", warehouse)
    assert "Neighbourhood crime (national definition, police recorded proxy)" in measure_column(r.stdout) and "monitor" in r.stdout
    assert "nm_nc_total" not in r.stdout  # names, not ids ...
    r = invoke("measures", "--month", "2020-12", "--warehouse", warehouse, "--ids")
    assert "Neighbourhood crime (national definition, police recorded proxy) nm_nc_total" in measure_column(r.stdout)  # ... unless asked for


def test_backfill_with_a_missing_and_a_failed_month_exits_1_and_goes_on(two_years, warehouse):
    import shutil

    shutil.rmtree(two_years / "2019-03")
    rows = [crime("X1", "2019-05-02"), crime("X2", "2019-06-01")]
    write_month(two_years, "2019-05", rows)
    r = invoke("backfill", "--source", two_years, "--from", "2019-01", "--to", "2019-08", "--warehouse", warehouse, "--engine", "local")
    assert r.exit_code == 1
    assert "2019-03 missing" in r.output and "2019-05 failed" in r.output and "Traceback" not in r.output
    assert "outside the extract's month 2019-05" in r.output


def test_run_reports_rows_and_a_bad_file_exits_1_without_a_traceback(source, warehouse):
    write_month(source, "2019-03", [crime("A", "2019-03-01"), crime("B", "2019-03-02", "NOPE")])
    r = invoke("run", "--source", source, "--month", "2019-03", "--warehouse", warehouse, "--engine", "local")
    assert r.exit_code == 0, r.output
    assert "2 rows in = 1 loaded + 1 quarantined" in r.output
    (source / "2019-04").mkdir()
    cut_off = ",".join(CRIME_HEADER) + "\nA,test-force,2019-04-01,,8N,recorded,N1"  # export stopped mid-row
    (source / "2019-04" / "recorded_crime.csv").write_text(cut_off)
    r = invoke("run", "--source", source, "--month", "2019-04", "--warehouse", warehouse, "--engine", "local")
    assert r.exit_code == 1 and "truncated" in r.output and "Traceback" not in r.output


def test_validate_prints_rows_and_writes_nothing(tmp_path):
    rows = [crime("A", "2019-03-01"), crime("B", "2019-03-02", "NOPE"), crime("A", "2019-03-03", victim_age="200")]
    p = write_csv(tmp_path / "2019-03" / "recorded_crime.csv", CRIME_HEADER, rows)
    r = invoke("validate", p, "--contract", "recorded_crime")
    assert r.exit_code == 1
    assert "row 3: hocr_code: unknown code  [hocr_code.code_list]" in r.output
    assert "row 4: crime_ref: repeats an earlier row; victim_age: outside 0 to 120" in r.output
    assert "200" not in r.output.split("Checks")[1].split("3 rows")[1]  # the personal value is not printed
    assert sorted(p.parent.iterdir()) == [p]
    ok = write_csv(tmp_path / "2019-03" / "ok.csv", CRIME_HEADER, rows[:1])
    assert invoke("validate", ok, "--contract", "recorded_crime").exit_code == 0


def test_usage_errors_exit_2(source, warehouse, tmp_path):
    assert invoke("run", "--source", source, "--month", "2019-13", "--engine", "local").exit_code == 2
    assert invoke("backfill", "--source", tmp_path / "nope", "--from", "2019-01", "--to", "2019-02", "--engine", "local").exit_code == 2
    r = invoke("measures", "--month", "2019-01", "--warehouse", warehouse)
    assert r.exit_code == 2 and "no such folder" in r.output and "--warehouse" in r.output
    assert invoke("validate", tmp_path / "x.csv", "--contract", "nope").exit_code == 2
    assert invoke("backfill", "--source", tmp_path, "--from", "2019-05", "--to", "2019-01", "--engine", "local").exit_code == 2
