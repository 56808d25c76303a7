"""What users read: the warehouse setting (--warehouse, ETL_WAREHOUSE, etl.toml, ./warehouse), the
`etl measures` table, the demo's summary, and no internal marker or template placeholder in the
command line's output, the report pages or the CSVs."""

from __future__ import annotations

import html
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from etl.cli.output import WarningTally, measure_cells, measure_tables, note_text, target_text
from etl.cli.settings import DEMO_CONFIG_MARK, SettingsError, resolve_warehouse, write_demo_config
from tests.conftest import crime, write_month, write_population

runner = CliRunner()

# Internal markers and template placeholders that must never reach a user.
MARKERS = {
    "internal marker [VAGUE": r"\[VAGUE",
    "question reference (Q29)": r"\bQ\d+\b",
    "template placeholder ({month})": r"\{[a-z_]+\}",
    "empty window (None..None)": r"None\.\.None",
    "doubled proxy suffix": r"proxy\) proxy",
}


def markers_in(text: str) -> dict[str, str]:
    """Each marker found in TEXT, with the text around its first occurrence."""
    found = {}
    for name, pattern in MARKERS.items():
        m = re.search(pattern, text)
        if m:
            found[name] = text[max(0, m.start() - 60) : m.end() + 30]
    return found


def page_text(path: Path) -> str:
    """An HTML page as the words a reader sees (tags removed, entities decoded, spaces collapsed)."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def scan_outputs(texts: dict[str, str], *reports: Path) -> dict[str, dict[str, str]]:
    """Markers in the command line's output (TEXTS) and in every page and CSV of the REPORTS folders."""
    found = {name: markers_in(text) for name, text in texts.items()}
    for path in sorted(p for folder in reports for p in folder.rglob("*")):
        if path.suffix == ".html":
            found[str(path)] = markers_in(page_text(path))
        elif path.suffix == ".csv":
            found[str(path)] = markers_in(path.read_text(encoding="utf-8"))
    return {k: v for k, v in found.items() if v}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def measure_column(table: str, column: int = 0) -> list[str]:
    """One column of `etl measures` tables, a measure (a section between rules) at a time, wrapped lines joined."""
    cells, parts = [], []
    for line in table.splitlines():
        if line.startswith("│"):
            text = line.split("│")[1 + column].strip()
            if text:
                parts.append(text)
        elif parts and line[:1] in ("├", "└"):
            cells.append(" ".join(parts))
            parts = []
    return cells


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """A clean current folder, with no ETL_WAREHOUSE set."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("ETL_WAREHOUSE", raising=False)
    return folder


# ------------------------------------------------------------------------------------------------ the scan itself


def test_the_scan_finds_every_marker():
    planted = "x [VAGUE: scope] Q29 {month}-{force}-outcomes.csv target None..None All burglary (public-data proxy) proxy"
    assert set(markers_in(planted)) == set(MARKERS)
    assert markers_in("a Q-word, QA29 and FAQ2; 2019/20 {} {Month} 12 months to Dec 19 proxy for nm_x") == {}


# ------------------------------------------------------------------------------------------------ warehouse setting


def test_warehouse_setting_order(tmp_path):
    project, inner = tmp_path / "project", tmp_path / "project" / "sub" / "deeper"
    inner.mkdir(parents=True)
    # nothing set: the default, ./warehouse of the current folder
    s = resolve_warehouse(None, environ={}, cwd=inner)
    assert (s.path, s.origin, s.config_file) == (inner / "warehouse", "default", None)
    assert s.source == "the default ./warehouse"
    # etl.toml in a parent folder: its path is relative to the file's folder
    (project / "etl.toml").write_text('# mine\nwarehouse = "data/wh"\n')
    s = resolve_warehouse(None, environ={}, cwd=inner)
    assert (s.path, s.origin, s.config_file) == (project / "data" / "wh", "config", project / "etl.toml")
    assert s.source == f"set in {project / 'etl.toml'}"
    # the nearest etl.toml wins; one without the key gives the default
    (inner / "etl.toml").write_text("[other]\nx = 1\n")
    assert resolve_warehouse(None, environ={}, cwd=inner).origin == "default"
    (inner / "etl.toml").unlink()
    # the environment beats the file (relative to the current folder); empty counts as unset
    s = resolve_warehouse(None, environ={"ETL_WAREHOUSE": "env-wh"}, cwd=inner)
    assert (s.path, s.origin, s.source) == (inner / "env-wh", "environment", "set by ETL_WAREHOUSE")
    assert resolve_warehouse(None, environ={"ETL_WAREHOUSE": "  "}, cwd=inner).origin == "config"
    # the option beats everything
    s = resolve_warehouse(Path("../opt"), environ={"ETL_WAREHOUSE": "/abs/env"}, cwd=inner)
    assert (s.path, s.origin, s.source) == (inner.parent / "opt", "option", "set by --warehouse")
    # an absolute path in the file stays as it is
    (project / "etl.toml").write_text(f'warehouse = "{tmp_path / "elsewhere"}"\n')
    assert resolve_warehouse(None, environ={}, cwd=inner).path == tmp_path / "elsewhere"


def test_a_broken_etl_toml_is_a_configuration_error_naming_the_file(tmp_path):
    (tmp_path / "etl.toml").write_text("warehouse = \n")
    with pytest.raises(SettingsError, match=re.escape(str(tmp_path / "etl.toml")) + ": not valid TOML"):
        resolve_warehouse(None, environ={}, cwd=tmp_path)
    (tmp_path / "etl.toml").write_text("warehouse = 7\n")
    with pytest.raises(SettingsError, match="warehouse must be a folder path in quotes"):
        resolve_warehouse(None, environ={}, cwd=tmp_path)
    assert resolve_warehouse("w", environ={}, cwd=tmp_path).origin == "option"  # not read when the option is given


def test_the_demo_writes_its_etl_toml_only_over_its_own(tmp_path):
    written = write_demo_config(tmp_path, tmp_path / "demo" / "warehouse")
    assert written == tmp_path / "etl.toml" and written.read_text().startswith(DEMO_CONFIG_MARK)
    assert resolve_warehouse(None, environ={}, cwd=tmp_path).path == tmp_path / "demo" / "warehouse"
    assert 'warehouse = "demo/warehouse"' in written.read_text()  # relative to the file's folder
    assert write_demo_config(tmp_path, tmp_path / "other" / "wh") == written  # its own file: updated
    assert resolve_warehouse(None, environ={}, cwd=tmp_path).path == tmp_path / "other" / "wh"
    written.write_text('warehouse = "mine"\n')  # a user's file: never overwritten
    assert write_demo_config(tmp_path, tmp_path / "demo" / "warehouse") is None
    assert written.read_text() == 'warehouse = "mine"\n'


# ------------------------------------------------------------------------------------------------ table formatting


def _row(**kw):
    row = {
        "force_id": "f",
        "measure_id": "nm_x",
        "family": "national_measure",
        "period": "r12",
        "period_start": "2019-01",
        "period_end": "2019-12",
        "value": 2.5,
        "unit": "count",
        "comparison": "prev_r12",
        "comparison_start": "2018-01",
        "comparison_end": "2018-12",
        "comparison_value": 2.0,
        "change_abs": 0.5,
        "change_pct": 2.5,
        "target": "direction: reduce",
        "status": "monitor",
        "note": None,
        "comparison_source": "force_records",
    }
    return row | kw


def test_measure_cells_round_as_the_pages():
    cells = measure_cells(_row())
    assert cells == {
        "measure": "nm_x",
        "id": "nm_x",
        "period": "12 months to Dec 19",
        "value": "3",  # half away from zero
        "compared with": "Previous 12 months (Jan-Dec 18)",
        "comparison": "2",
        "change": "+1",
        "change %": "+3%",  # whole percent
        "status": "monitor",
        "target": "none (lower is better)",
        "note": "",
    }
    # a percentage: one decimal place, its change in points and no percent change
    pct = measure_cells(_row(unit="pct", value=12.25, comparison_value=10.0, change_abs=2.25, change_pct=22.5))
    assert (pct["value"], pct["comparison"], pct["change"], pct["change %"]) == ("12.3%", "10.0%", "+2.3 pts", "")
    # a rate: one decimal place with its unit; a missing comparison is '-'
    rate = measure_cells(_row(unit="per_1000", value=4.25, comparison_value=None, change_abs=None, change_pct=None, status="incomplete"))
    assert (rate["value"], rate["comparison"], rate["change"], rate["change %"], rate["status"]) == ("4.3 per 1,000", "-", "-", "-", "incomplete")
    assert rate["note"] == "no reason recorded"
    # a target row: readable, never 'target None..None'
    target = measure_cells(
        _row(unit="pct", comparison="target", comparison_start=None, comparison_end=None, comparison_value=90.0, target="90% within 3 min", status="not_met")
    )
    assert (target["compared with"], target["comparison"], target["target"], target["status"]) == ("Target", "90.0%", "90% within 3 min", "not met")
    assert not markers_in(" ".join(target.values()))


def test_targets_and_notes_in_words():
    assert target_text("decrease vs ye_jun19") == "decrease vs year ending June 2019"
    assert target_text("reduce vs same period 2019/20") == "reduce vs same period 2019/20"
    assert target_text("direction: monitor") == "none"
    assert target_text("direction: increase") == "none (higher is better)"
    assert target_text(None) == "none"
    basis = "basis: cohort; 'PO' read as positive outcome"
    note = f"{basis}; comparison window 2018-04..2018-12 has 3 month(s) not loaded"
    assert note_text("incomplete", note, [basis]) == "comparison window Apr-Dec 18 has 3 month(s) not loaded"
    assert note_text("met", basis, [basis]) == ""
    assert note_text("not_comparable", basis, [basis]) == "no reason recorded"
    assert note_text("incomplete", "not computable yet: needs patrol GPS data") == "not computable yet: needs patrol GPS data"


def test_measure_tables_show_names_ids_on_request_and_one_table_per_family():
    from rich.console import Console

    from etl.cli.output import MeasureText

    rows = pl.DataFrame([_row(), _row(comparison="ye_jun19", comparison_start="2018-07", comparison_end="2019-06"), _row(measure_id="pk_y", family="plan_kpi")])
    texts = {"nm_x": MeasureText("Measure X", ("basis: x",)), "pk_y": MeasureText("KPI Y")}
    console = Console(width=200, record=True)
    for t in measure_tables(rows, texts, title="Measures"):
        console.print(t)
    text = console.export_text()
    assert [line.strip() for line in text.splitlines() if line and line[0].isalpha()] == ["Measures", "Plan KPIs"]
    assert measure_column(text) == ["Measure X", "KPI Y"] and "nm_x" not in text
    console = Console(width=200, record=True)
    for t in measure_tables(rows, texts, ids=True):
        console.print(t)
    assert measure_column(console.export_text()) == ["Measure X nm_x", "KPI Y pk_y"]


def test_warning_tally_shows_the_first_and_says_where_the_rest_are():
    tally = WarningTally(show=2)
    assert [tally.add(w) for w in ("a", "b", "c")] == ["a", "b", None]
    assert tally.summary("audit_checks") == "1 more warning not shown (3 in all); read them in audit_checks"
    quiet = WarningTally(show=0)
    quiet.add("a")
    quiet.add("b")
    assert quiet.summary("audit_checks") == "2 warnings (not errors: checks to look at); read them in audit_checks"
    assert WarningTally().summary("x") is None


# ------------------------------------------------------------------------------------------------ the command line


@pytest.fixture
def small_source(tmp_path) -> Path:
    source = tmp_path / "source"
    write_population(source, {2018: 500_000, 2019: 500_000})
    months = [f"2018-{m:02d}" for m in range(7, 13)] + [f"2019-{m:02d}" for m in range(1, 8)]
    for i, m in enumerate(months):
        rows = [crime(f"{m}-{k}", f"{m}-1{k % 9}", code) for k, code in enumerate(["1", "34B", "34B", "39", "45", "8N", "28E", "58A"][: 4 + i % 5])]
        write_month(source, m, rows)
    return source


def test_a_no_table_error_names_the_warehouse_its_setting_and_how_to_point_elsewhere(here, monkeypatch):
    (here / "warehouse").mkdir()
    r = invoke("measures", "--month", "2019-07")
    assert r.exit_code == 2
    assert f"warehouse {here / 'warehouse'} (the default ./warehouse): no measures table; run `etl backfill` or `etl run` first" in r.output
    assert 'point elsewhere with --warehouse DIR, ETL_WAREHOUSE=DIR or warehouse = "DIR" in etl.toml' in r.output
    (here / "etl.toml").write_text('warehouse = "warehouse"\n')
    r = invoke("report", "--month", "2019-07")
    assert r.exit_code == 2 and f"warehouse {here / 'warehouse'} (set in {here / 'etl.toml'}): no measures table" in r.output
    monkeypatch.setenv("ETL_WAREHOUSE", "nowhere")
    r = invoke("measures", "--month", "2019-07")
    assert r.exit_code == 2 and f"warehouse {here / 'nowhere'} (set by ETL_WAREHOUSE): no such folder" in r.output
    r = invoke("measures", "--month", "2019-07", "--warehouse", "warehouse")
    assert r.exit_code == 2 and f"warehouse {here / 'warehouse'} (set by --warehouse): no measures table" in r.output


def test_backfill_measures_report_read_without_markers(here, small_source):
    (here / "etl.toml").write_text('warehouse = "wh"\n')  # the next commands need no --warehouse
    r = invoke("backfill", "--source", small_source, "--from", "2018-07", "--to", "2019-07", "--engine", "local")
    assert r.exit_code == 0, r.output
    assert f"warehouse {here / 'wh'} (set in {here / 'etl.toml'})" in r.output and (here / "wh" / "measures").is_dir()
    texts = {"backfill": r.output}
    table = invoke("measures", "--month", "2019-07")
    assert table.exit_code == 0, table.output
    names = measure_column(table.stdout)
    assert "Homicides" in names and not any(n.startswith(("nm_", "pk_")) for n in names)
    notes = measure_column(table.stdout, 9)
    # why a row is incomplete, windows in words
    assert any("comparison window Aug 17 to Jul 18 has 11 month(s) not loaded" in n for n in notes)
    assert any(n.startswith("not computable yet: ") for n in notes) and any("needs the calls extract" in n for n in notes)
    texts["measures"] = table.output
    texts["measures --ids"] = invoke("measures", "--month", "2019-07", "--ids").output
    rep = invoke("report", "--month", "2019-07", "--out", "reports")
    assert rep.exit_code == 0, rep.output
    texts["report"] = rep.output
    assert scan_outputs(texts, here / "reports") == {}
    # JSON and CSV are as stored: ids, unrounded values
    rows = __import__("json").loads(invoke("measures", "--month", "2019-07", "--format", "json").stdout)
    assert {"measure_id", "value", "change_pct", "note"} <= set(rows[0])


@pytest.mark.slow
def test_the_demo_points_the_next_commands_at_its_warehouse(here):
    args = ["demo", "--dir", "demo", "--from", "2018-07", "--to", "2019-08", "--crimes-per-month", "300", "--extracts-scale", "0.01", "--engine", "local"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert (here / "etl.toml").read_text().startswith(DEMO_CONFIG_MARK)
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert lines[-3:] == ["next:", "etl measures --month 2019-08", "etl report --month 2019-08"]
    more = next(line for line in lines if line.startswith("and ") and " more: " in line)  # every other table it wrote, named
    assert {"calls", "incidents", "workforce", "key_index", "volume_counts", "population"} <= set(more.split(": ", 1)[1].split(", "))
    assert "outside their normal range" not in r.output  # the demo's warnings are counted, not printed ...
    summary = [line for line in lines if "not errors: checks to look at" in line]
    assert len(summary) == 1 and f"{here / 'demo' / 'reports' / 'index.html'}" in summary[0] and "audit_checks" in summary[0]
    texts = {"demo": r.output}
    for command in (["measures", "--month", "2019-08"], ["report", "--month", "2019-08"]):
        done = invoke(*command)
        assert done.exit_code == 0, done.output
        texts[" ".join(command)] = done.output
    assert (here / "reports" / "index.html").is_file()
    assert scan_outputs(texts, here / "reports", here / "demo" / "reports") == {}
    # a user's own etl.toml is left alone: the next commands then name the demo's warehouse
    (here / "etl.toml").write_text('warehouse = "mine"\n')
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert (here / "etl.toml").read_text() == 'warehouse = "mine"\n'
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert lines[-3:] == ["next:", "etl measures --month 2019-08 --warehouse demo/warehouse", "etl report --month 2019-08 --warehouse demo/warehouse"]


# ------------------------------------------------------------------------------------------------ text built outside the command line
# These fail until the text is fixed where it is built (see each reason); then remove the xfail mark.

STREET_HEADER = "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,Last outcome category,Context"


def _street_file(folder: Path, month: str, n: int) -> None:
    types = ["Burglary", "Robbery", "Vehicle crime", "Anti-social behaviour", "Violence and sexual offences", "Theft from the person"]
    lines = [STREET_HEADER]
    for k in range(n):
        kind = types[k % len(types)]
        crime_id = "" if kind == "Anti-social behaviour" else f"{k:064x}"
        outcome = "" if kind == "Anti-social behaviour" else "Under investigation"
        lines.append(
            f"{crime_id},{month},City of London Police,City of London Police,-0.09,51.51,On or near Street,E01000001,City of London 001A,{kind},{outcome},"
        )
    (folder / f"{month}-city-of-london-street.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def public_source(tmp_path) -> Path:
    source = tmp_path / "police-uk"
    source.mkdir()
    for i, month in enumerate(("2019-05", "2019-06", "2019-07")):
        _street_file(source, month, 20 + i)
    return source


def test_run_on_a_public_data_source_prints_no_placeholder(here, public_source):
    r = invoke("run", "--source", public_source, "--month", "2019-07", "--warehouse", "wh", "--engine", "local")
    assert r.exit_code == 0, r.output
    assert "loaded 2019-07 for city-of-london" in r.output
    assert markers_in(r.output) == {}


def test_pages_of_a_public_data_warehouse_name_a_proxy_once(here, public_source):
    r = invoke("backfill", "--source", public_source, "--from", "2019-05", "--to", "2019-07", "--warehouse", "wh", "--engine", "local")
    assert r.exit_code == 0, r.output
    r = invoke("report", "--month", "2019-07", "--warehouse", "wh", "--out", "reports")
    assert r.exit_code == 0, r.output
    assert scan_outputs({}, here / "reports") == {}


def test_a_not_computable_kpi_does_not_say_its_window_is_incomplete(here, small_source):
    r = invoke("backfill", "--source", small_source, "--from", "2018-07", "--to", "2019-07", "--warehouse", "wh", "--engine", "local")
    assert r.exit_code == 0, r.output
    assert invoke("report", "--month", "2019-07", "--warehouse", "wh", "--out", "reports").exit_code == 0
    scorecard = page_text(here / "reports" / "scorecard.html")
    assert "not computable yet" in scorecard
    assert "the current window is incomplete" not in scorecard
