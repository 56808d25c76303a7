"""The statement checker: arithmetic errors of each kind are found, rounding edge cases are not false alarms,
the shipped examples' findings, the warehouse comparison and the exit codes."""

from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from etl.cli.statement import check_statement
from etl.core.periods import months_between
from etl.core.warehouse import Warehouse, Write
from etl.measures.engine import compute_measures
from etl.scrutiny.statement import (
    FAILS,
    FOLLOWS,
    SKIPPED,
    StatementError,
    catalogue_ids,
    check_lines,
    parse_figure,
    read_statement,
    round_half_away,
    rounds_to,
)
from tests.test_measures import crimes, loaded

EXAMPLES = Path(__file__).resolve().parents[1] / "contracts" / "statements"

app = typer.Typer()
app.command("check-statement")(check_statement)
app.command("other")(lambda: None)  # two commands: the sub-command name is part of the command line


def run(*args: str):
    return CliRunner().invoke(app, ["check-statement", *args])


def write(tmp_path: Path, text: str, name: str = "statement.csv") -> Path:
    p = tmp_path / name
    p.write_text(text.strip() + "\n", encoding="utf-8")
    return p


def verdicts(findings) -> dict[tuple[str, str], str]:
    return {(f.line, f.check): f.verdict for f in findings}


# ------------------------------------------------------------------------------------------------ figures


def test_printed_figures_keep_their_precision():
    f = parse_figure("1,369")
    assert f is not None and (f.value, f.decimals, f.scaled) == (1369, 0, False)
    f = parse_figure("-11.50")
    assert f is not None and (f.exact, f.decimals) == (Fraction(-23, 2), 2)
    f = parse_figure("2.92m")
    assert f is not None and (f.value, f.decimals, f.scaled) == (2_920_000, -4, True)
    f = parse_figure("61%")
    assert f is not None and f.value == 61
    for bad in ("12a", "1,23", "", "1.2.3", "--4", "(12)", "12 pc"):
        assert parse_figure(bad) is None, bad
    # as typeset in published papers: a minus sign or dash, a currency sign, per cent and percentage points
    typeset = {"\u221212%": (-12, 0), "\u20133.5": (Fraction(-7, 2), 1), "£1.2m": (1_200_000, -5), "18.5 per cent": (Fraction(37, 2), 1)}
    typeset |= {"3.1pp": (Fraction(31, 10), 1), "+3.1 percentage points": (Fraction(31, 10), 1), "12 %": (12, 0)}
    for text, (exact, decimals) in typeset.items():
        f = parse_figure(text)
        assert f is not None and (f.exact, f.decimals) == (exact, decimals), text


def test_rounding_is_half_away_from_zero_on_exact_fractions():
    assert round_half_away(Fraction(25, 2), 0) == 13
    assert round_half_away(Fraction(-25, 2), 0) == -13
    assert round_half_away(Fraction(1, 3) * 100, 1) == Fraction(333, 10)
    # the exact half belongs to the figure away from zero, never to both
    assert rounds_to(Fraction(25, 2), Fraction(25, 2), Fraction(13), 0)
    assert not rounds_to(Fraction(25, 2), Fraction(25, 2), Fraction(12), 0)
    assert rounds_to(Fraction(-25, 2), Fraction(-25, 2), Fraction(-13), 0)
    assert not rounds_to(Fraction(-25, 2), Fraction(-25, 2), Fraction(-12), 0)
    assert rounds_to(Fraction(-1, 3), Fraction(-1, 3), Fraction(0), 0)
    # an interval follows when any of it rounds to the printed figure
    assert rounds_to(Fraction(1530, 100), Fraction(1541, 100), Fraction(154, 10), 1)
    assert not rounds_to(Fraction(1530, 100), Fraction(1534, 100), Fraction(154, 10), 1)


# ------------------------------------------------------------------------------- deliberate errors

DELIBERATE = """
# a statement with one deliberate error of each kind, and rounding edge cases that are consistent
line,source,measure,period,period_end,comparison,value,comparison_value,change,change_pct,share_of,share_pct,rate,population,rate_per,total_of,total_kind,rounding,inputs
ok-half-up,p1,,,,,9,8,,13,,,,,,,,,
ok-half-down,p1,,,,,7,8,,-13,,,,,,,,,
bad-half-even,p1,,,,,9,8,,12,,,,,,,,,
bad-pct,p2,,,,,46,52,,-13,,,,,,,,,
ok-pct-decimals,p2,,,,,65450,55219,,18.5,,,,,,,,,
bad-change,p3,,,,,147,162,-16,,,,,,,,,,
ok-change,p3,,,,,145,215,-70,,,,,,,,,,
ok-share-third,p4,,,,,1,3,,,3,33.3,,,,,,,
ok-share-rounding,p4,,,,,1,,,,20,5,,,,,,1,
bad-share-rounding,p4,,,,,81,,,,1600,5,,,,,,1,
ok-share-written,p4,,,,,81,,,,1600,5,,,,,,,
bad-share,p4,,,,,20,,,,33,60,,,,,,,
ok-rate,p5,,,,,45,,,,,,15.4,"2,920,000",1000000,,,,
bad-rate,p5,,,,,45,,,,,,15.5,"2,920,000",1000000,,,,
ok-rate-rounded-pop,p5,,,,,45,,,,,,15.44,2.92m,1000000,,,,
bad-rate-exact-pop,p5,,,,,45,,,,,,15.44,"2,920,000",1000000,,,,
ok-rate-per-100k,p5,,,,,1019,,,,,,34.9,"2,920,000",100000,,,,
part-a,p6,,,,,1.4,,,,,,,,,,,,
part-b,p6,,,,,2.4,,,,,,,,,,,,
ok-total-rounded,p6,,,,,4,,,,,,,,,part-a part-b,,,
part-c,p6,,,,,10,,,,,,,,,,,,
part-d,p6,,,,,20,,,,,,,,,,,,
bad-total,p6,,,,,31,,,,,,,,,part-c+part-d,,,
ok-total-at-least,p6,,,,,35,,,,,,,,,part-c;part-d,at_least,,
bad-total-at-least,p6,,,,,29,,,,,,,,,part-c part-d,at_least,,
ok-inputs-rounded,p7,,,,,1290,1165,,10.8,,,,,,,,,rounded
bad-inputs-rounded,p7,,,,,1290,1165,,10.9,,,,,,,,,rounded
ok-zero,p8,,,,,100,100,0,0,,,,,,,,,
ok-rounded-rates,p8,,,,,15.4,15.1,,2.3,,,,,,,,,
bad-rounded-rates,p8,,,,,15.4,15.1,,2.8,,,,,,,,,
agree-a,p9,pk_homicide_count,fytd,2022-01,sp_2019_20,45,28,,,,,,,,,,,
agree-b,p9,pk_homicide_count,fytd,2022-01,sp_2019_20,45,29,,,,,,,,,,,
agree-c,p9,pk_homicide_count,fytd,2022-01,sp_2019_20,45.0,,,,,,,,,,,,
"""

EXPECTED_FAILS = {
    ("bad-half-even", "change_pct"),
    ("bad-pct", "change_pct"),
    ("bad-change", "change"),
    ("bad-share-rounding", "share"),
    ("bad-share", "share"),
    ("bad-rate", "rate"),
    ("bad-rate-exact-pop", "rate"),
    ("bad-total", "total"),
    ("bad-total-at-least", "total (at least its parts)"),
    ("bad-inputs-rounded", "change_pct"),
    ("bad-rounded-rates", "change_pct"),  # 15.35..15.45 on 15.05..15.15 is 1.32% to 2.66%
    ("agree-b", "agrees (comparison_value)"),
}


def test_every_deliberate_error_is_found_and_nothing_else(tmp_path):
    findings = check_lines(read_statement(write(tmp_path, DELIBERATE)))
    v = verdicts(findings)
    assert {k for k, verdict in v.items() if verdict == FAILS} == EXPECTED_FAILS
    # every ok- line was checked and follows (no false alarm, nothing silently skipped)
    ok_lines = {line for line, _ in v if line.startswith("ok-")}
    assert ok_lines == {
        "ok-half-up",
        "ok-half-down",
        "ok-pct-decimals",
        "ok-change",
        "ok-share-third",
        "ok-share-rounding",
        "ok-share-written",
        "ok-rate",
        "ok-rate-rounded-pop",
        "ok-rate-per-100k",
        "ok-total-rounded",
        "ok-total-at-least",
        "ok-inputs-rounded",
        "ok-zero",
        "ok-rounded-rates",  # exactly (15.4 - 15.1) / 15.1 = 1.99%, but printed rates are themselves rounded
    }
    assert all(verdict == FOLLOWS for (line, _), verdict in v.items() if line.startswith("ok-"))
    assert v[("agree-b", "agrees (value)")] == FOLLOWS
    assert v[("agree-c", "agrees (value)")] == FOLLOWS  # 45.0 stands for 44.95..45.05: agrees with 45
    # the message says what it would have printed
    bad = next(f for f in findings if f.line == "bad-half-even")
    assert (bad.printed, bad.computed) == ("12", "12.50") and "would be printed 13" in bad.reason
    assert "it follows if the figure was truncated instead" in bad.reason  # 12.5 cut to 12
    assert "truncated" not in next(f for f in findings if f.line == "bad-pct").reason
    bad = next(f for f in findings if f.line == "bad-total")
    assert (bad.printed, bad.computed) == ("31", "30")


def test_a_rate_without_population_and_a_zero_denominator_are_not_checked(tmp_path):
    p = write(tmp_path, "line,value,comparison_value,change_pct,rate,rate_per\nr,45,,,15.4,1000000\nz,5,0,10,,\n")
    v = verdicts(check_lines(read_statement(p)))
    assert v == {("r", "rate"): SKIPPED, ("z", "change_pct"): SKIPPED}


POPULATION = pl.DataFrame(
    {"force_id": ["west-midlands", "west-midlands", "other"], "year": [2021, 2022, 2022], "population": [2_920_000, 2_950_000, 1_000_000]},
    schema={"force_id": pl.Utf8, "year": pl.Int64, "population": pl.Int64},
)

RATES = """
line,force,period,period_end,value,rate,rate_per,population
ok-2022,west-midlands,cal,2022-12,45,15.3,1000000,
bad-2022,west-midlands,cal,2022-12,45,15.4,1000000,
bad-2021,west-midlands,cal,2021-12,46,15.4,1000000,
r12-2022,west-midlands,r12,2022-06,46,15.6,1000000,
printed,west-midlands,cal,2022-12,45,15.4,1000000,2920000
no-year,west-midlands,cal,2019-12,45,15.4,1000000,
no-force,,cal,2022-12,45,15.4,1000000,
"""


def test_a_rate_without_its_population_is_checked_against_the_warehouse_population(tmp_path):
    findings = check_lines(read_statement(write(tmp_path, RATES)), population=POPULATION)
    by = {f.line: f for f in findings}
    assert {line: (f.check, f.verdict) for line, f in by.items()} == {
        "ok-2022": ("rate (warehouse population)", FOLLOWS),  # 45 / 2,950,000 = 15.25 per million -> 15.3
        "bad-2022": ("rate (warehouse population)", FAILS),  # printed 15.4
        "bad-2021": ("rate (warehouse population)", FAILS),  # 46 / 2,920,000 = 15.75 -> 15.8
        "r12-2022": ("rate (warehouse population)", FOLLOWS),  # July 2021 - June 2022: the mid-2022 estimate: 15.59 (mid-2021: 15.75)
        "printed": ("rate", FOLLOWS),  # a printed population is used as printed (45 / 2.92m = 15.41)
        "no-year": ("rate", SKIPPED),
        "no-force": ("rate", SKIPPED),
    }
    assert by["bad-2022"].computed == "15.254" and "west-midlands mid-2022 estimate" in by["bad-2022"].reason
    assert "imply a population of 2,912,621 to 2,931,596" in by["bad-2022"].reason
    assert by["bad-2021"].computed == "15.753" and "would be printed 15.8" in by["bad-2021"].reason
    assert "no 2019 estimate for west-midlands" in by["no-year"].reason
    assert "several forces' populations: give `force`" in by["no-force"].reason
    # without a warehouse, the rate is not checked but the implied population is said
    alone = {f.line: f for f in check_lines(read_statement(write(tmp_path, RATES)))}
    assert alone["bad-2022"].verdict == SKIPPED and "imply a population of 2,912,621 to 2,931,596" in alone["bad-2022"].reason
    # one force in the population reference: a line without `force` uses it
    one = check_lines(read_statement(write(tmp_path, RATES)), population=POPULATION.filter(pl.col("force_id") == "west-midlands"))
    assert {f.line: f.verdict for f in one}["no-force"] == FAILS


# ------------------------------------------------------------------------------- shipped examples


def test_the_march_2022_pack_findings():
    findings = check_lines(read_statement(EXAMPLES / "2022-03_pcc_pack.csv"))
    fails = {(f.line, f.check, f.printed, f.computed) for f in findings if f.verdict == FAILS}
    assert fails == {
        # Table 1 (002:469-477): the projected strengths of the eight NPUs sum to 1,365, printed 1,369
        ("t2a-str-total", "total", "1369", "1,365"),
        # robbery of personal property, same period 2019/20: 6,050 at 002:976 but 4,846 at 002:1030
        ("sc-robbery-personal", "agrees (comparison_value)", "4846", "6,050"),
    }
    assert sum(f.verdict == FOLLOWS for f in findings) == 22
    assert [f.line for f in findings if f.verdict == SKIPPED] == ["sc-drug-deaths"]
    # the 1,290 total of strengths that sum to 1,290.4 follows: printed to whole officers
    assert verdicts(findings)[("t1a-str-total", "total")] == FOLLOWS


def test_the_september_2023_statement_findings():
    findings = check_lines(read_statement(EXAMPLES / "2023-09_statement.csv"))
    assert [(f.line, f.check, f.verdict) for f in findings if f.verdict != SKIPPED] == [("s22-nc", "change_pct", FOLLOWS)]
    assert sum(f.verdict == SKIPPED for f in findings) == 8  # rates without populations, changes without counts


def test_the_february_2015_audit_percentages_are_truncated():
    findings = check_lines(read_statement(EXAMPLES / "2015-02_performance_report.csv"))
    fails = {(f.line, f.printed, f.computed) for f in findings if f.verdict == FAILS}
    assert fails == {("cdi-incident-crimes", "98", "98.80"), ("nc-robbery", "80", "80.65"), ("nc-violent", "67", "67.74")}
    assert all("it follows if the figure was truncated instead" in f.reason for f in findings if f.verdict == FAILS)
    assert sum(f.verdict == FOLLOWS for f in findings) == 4 and not any(f.verdict == SKIPPED for f in findings)


def test_the_examples_on_the_command_line():
    r = run(str(EXAMPLES / "2022-03_pcc_pack.csv"))
    assert r.exit_code == 1, r.output
    assert "104 lines, 25 checks: 22 follow, 2 do not follow, 1 not checked" in r.output
    assert "line t2a-str-total (002:477): total printed 1369, computed 1,365" in r.output
    r = run(str(EXAMPLES / "2023-09_statement.csv"))
    assert r.exit_code == 0, r.output
    assert "Every checked figure follows." in r.output


# ------------------------------------------------------------------------------------- warehouse


@pytest.fixture
def small_warehouse(tmp_path) -> Path:
    spec: list[tuple[str, str, int, dict]] = [(str(m), "1", 1, {}) for m in months_between("2018-07", "2020-12")]
    spec += [(str(m), "58A", 2, {"online": True}) for m in months_between("2018-07", "2020-12")]
    table = compute_measures(crimes(spec), loaded("2018-07", "2020-12"), None)
    root = tmp_path / "wh"
    Warehouse(root).commit("measures-test", [Write("measures", table)], {"run_id": "measures-test", "kind": "measures", "outcome": "success"})
    return root


WAREHOUSE_STATEMENT = """
line,source,measure,force,period,period_end,comparison,value,comparison_value,change_pct
w-ok,s1,nm_homicide_count,f,cal,2020-12,sply,12,12,0
w-bad,s2,nm_homicide_count,,cal,2020-12,sply,13,12,8.3
w-name,s3,Cyber-enabled (online-flagged) offences,,cal,2019-12,sply,24,,
w-ambiguous,s4,Homicides,,cal,2019-12,sply,12,,
w-incomplete,s7,nm_homicide_count,,cal,2019-12,sply,12,12,
w-absent,s5,nm_homicide_count,,cal,2030-12,sply,12,,
w-other-force,s6,nm_homicide_count,g,cal,2019-12,sply,12,,
"""


def test_printed_figures_against_the_warehouse(small_warehouse, tmp_path):
    table = Warehouse(small_warehouse).read("measures")
    catalogue = catalogue_ids(
        [("nm_homicide_count", "Homicides"), ("pk_homicide_count", "Homicides"), ("nm_cyber_enabled_offences", "Cyber-enabled (online-flagged) offences")]
    )
    findings = check_lines(read_statement(write(tmp_path, WAREHOUSE_STATEMENT)), table, catalogue)
    v = verdicts(findings)
    assert v == {
        ("w-ok", "warehouse value"): FOLLOWS,
        ("w-ok", "warehouse comparison_value"): FOLLOWS,
        ("w-ok", "warehouse change_pct"): FOLLOWS,
        ("w-ok", "change_pct"): FOLLOWS,
        ("w-bad", "warehouse value"): FAILS,  # the warehouse holds 12
        ("w-bad", "warehouse comparison_value"): FOLLOWS,
        ("w-bad", "warehouse change_pct"): FAILS,  # 0 in the warehouse
        ("w-bad", "change_pct"): FOLLOWS,  # (13 - 12) / 12 = 8.33: the line itself adds up
        ("w-name", "warehouse value"): FOLLOWS,  # found by its name: 2 a month x 12
        ("w-ambiguous", "warehouse"): SKIPPED,  # two measures are called Homicides
        ("w-incomplete", "warehouse value"): FOLLOWS,
        ("w-incomplete", "warehouse comparison_value"): SKIPPED,  # 2018 is not loaded: no value
        ("w-absent", "warehouse"): SKIPPED,
        ("w-other-force", "warehouse"): SKIPPED,
    }
    assert next(f for f in findings if f.line == "w-bad" and f.check == "warehouse value").computed == "12"


def test_the_warehouse_option_on_the_command_line(small_warehouse, tmp_path):
    p = write(tmp_path, WAREHOUSE_STATEMENT)
    r = run(str(p), "--warehouse", str(small_warehouse))
    assert r.exit_code == 1, r.output
    assert "w-bad (s2): warehouse value printed 13, computed 12" in r.output
    r = run(str(p), "--warehouse", str(tmp_path / "nowhere"))
    assert r.exit_code == 2 and "no such folder" in r.output
    (tmp_path / "empty").mkdir()
    r = run(str(p), "--warehouse", str(tmp_path / "empty"))
    assert r.exit_code == 2 and "no measures table" in r.output


# ------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("line,value\na,12a\n", "row 2, column value: not a number as printed"),
        ("line,value,colour\na,1,red\n", "row 1, column colour: unknown column"),
        ("value\n1\n", "no `line` column"),
        ("line,value\na,1\na,2\n", "row 3, column line: line reference repeated (first at row 2)"),
        ("line,value,total_of\na,1,b\n", "row 2, column total_of: names a line that is not in the file"),
        ("line,value,period_end\na,1,2022-13\n", "row 2, column period_end: not a month"),
        ("line,value,rate,population\na,1,2,3\n", "row 2, column rate_per: empty"),
        ("line,value,rate_per\na,1,500\n", "row 2, column rate_per: must be one of"),
        ("line,value\n", "no statement lines"),
    ],
)
def test_a_bad_file_names_row_and_column_and_exits_2(tmp_path, text, fragment):
    p = tmp_path / "s.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(StatementError) as exc:
        read_statement(p)
    assert fragment in exc.value.message
    r = run(str(p))
    assert r.exit_code == 2 and fragment in r.output
    assert "12a" not in r.output and "red" not in r.output  # a cell's value is never shown


def test_missing_and_unknown_files_exit_2(tmp_path):
    r = run(str(tmp_path / "none.csv"))
    assert r.exit_code == 2 and "no such file" in r.output
    r = run(str(write(tmp_path, "line,value\na,1", name="s.txt")))
    assert r.exit_code == 2 and "use .csv, .yaml or .yml" in r.output


def test_a_yaml_statement(tmp_path):
    p = write(
        tmp_path,
        """
lines:
  - {line: a, value: 46, comparison_value: 52, change_pct: "-12"}
  - {line: b, value: 20, share_of: 33, share_pct: 62}
""",
        name="s.yaml",
    )
    assert verdicts(check_lines(read_statement(p))) == {("a", "change_pct"): FOLLOWS, ("b", "share"): FAILS}
    assert run(str(p)).exit_code == 1
    bad = write(tmp_path, "lines: 3", name="bad.yaml")
    r = run(str(bad))
    assert r.exit_code == 2 and "a YAML statement is a list of lines" in r.output


def test_report_is_consistent_with_its_findings_frame(tmp_path):
    findings = check_lines(read_statement(write(tmp_path, DELIBERATE)))
    frame = pl.DataFrame([f.model_dump() for f in findings])
    assert frame.filter(pl.col("verdict") == FAILS).height == len(EXPECTED_FAILS)


def test_lines_naming_a_measure_by_id_and_by_name_must_agree(tmp_path):
    p = write(
        tmp_path,
        """
line,measure,period,period_end,comparison,value
a,nm_nc_total,cal,2022-12,sply,"65,450"
b,Neighbourhood crime,cal,2022-12,sply,"65,405"
""",
    )
    lines = read_statement(p)
    assert verdicts(check_lines(lines)) == {}  # without the catalogue, a name and an id are different figures
    v = verdicts(check_lines(lines, catalogue=catalogue_ids([("nm_nc_total", "Neighbourhood crime")])))
    assert v == {("b", "agrees (value)"): FAILS}
