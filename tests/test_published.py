"""ONS Police Force Area data tables, Table P1 -> tidy frame (etl/published.py), on the real workbooks.

Expected periods, offence-group names, area codes and region membership are written out here; every
figure is read from the workbooks themselves, independently of the module (openpyxl cell by cell, and
fastexcel at hand-picked cell coordinates), never typed in.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml

from etl.core.published import (
    PUBLISHED_SCHEMA,
    PublishedError,
    force_area,
    force_areas_path,
    published_value,
    read_pfa_table_p1,
    read_published_folder,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TABLES = REAL / "prc" / "ons-pfa-tables"

pytestmark = pytest.mark.skipif(not TABLES.is_dir(), reason=f"ONS PFA data tables not present at {TABLES} (shared real-data folder)")

# file -> year ending (period_end), from the file names / the title of each workbook
EXPECTED_PERIOD_END = {
    "policeforceareatablesyearendingmarch2018v2.xlsx": "2018-03",
    "policeforceareadatatablesyearendingjune2018corrected.xlsx": "2018-06",
    "policeforceareatablesyearendingsep18corrected.xlsx": "2018-09",
    "policeforceareatablesyearendingdecember2018.xlsx": "2018-12",
    "policeforceareatablesyeendingmarch2019.xlsx": "2019-03",
    "policeforceareatablesyearendingjune2019.xlsx": "2019-06",
    "policeforceareatablesyearendingseptember2019.xlsx": "2019-09",
    "pfatablesdec19.xlsx": "2019-12",
}
EXPECTED_PERIOD_START = {
    "2018-03": "2017-04",
    "2018-06": "2017-07",
    "2018-09": "2017-10",
    "2018-12": "2018-01",
    "2019-03": "2018-04",
    "2019-06": "2018-07",
    "2019-09": "2018-10",
    "2019-12": "2019-01",
}
JUNE_2019 = "policeforceareatablesyearendingjune2019.xlsx"
TOTAL = "Total recorded crime (excluding fraud)"

# ONS geography: English regions (and Wales) -> their police force areas (43 in all)
REGIONS = {
    "E12000001": ["E23000013", "E23000008", "E23000007"],  # North East
    "E12000002": ["E23000006", "E23000002", "E23000005", "E23000003", "E23000004"],  # North West
    "E12000003": ["E23000012", "E23000009", "E23000011", "E23000010"],  # Yorkshire and The Humber
    "E12000004": ["E23000018", "E23000021", "E23000020", "E23000022", "E23000019"],  # East Midlands
    "E12000005": ["E23000015", "E23000017", "E23000016", "E23000014"],  # West Midlands
    "E12000006": ["E23000026", "E23000023", "E23000028", "E23000027", "E23000024", "E23000025"],  # East
    "E12000007": ["E23000034", "E23000001"],  # London
    "E12000008": ["E23000030", "E23000032", "E23000031", "E23000033", "E23000029"],  # South East
    "E12000009": ["E23000036", "E23000035", "E23000039", "E23000037", "E23000038"],  # South West
    "W92000004": ["W15000001", "W15000002", "W15000003", "W15000004"],  # Wales
}
PFA_CODES = sorted(c for pfas in REGIONS.values() for c in pfas)

# June 2019 Table P1: column letter -> offence group as the sheet names it (footnote markers removed)
JUNE_2019_COLUMNS = {
    "C": "Total recorded crime (excluding fraud)",
    "E": "Violence against the person",
    "F": "Homicide",
    "G": "Violence with injury",
    "H": "Violence without injury",
    "I": "Stalking and harassment",
    "J": "Death or serious injury - unlawful driving",
    "K": "Sexual offences",
    "L": "Robbery",
    "M": "Theft offences",
    "N": "Burglary",
    "O": "Residential burglary",
    "P": "Non-residential burglary",
    "Q": "Vehicle offences",
    "R": "Theft from the person",
    "S": "Bicycle theft",
    "T": "Shoplifting",
    "U": "Other theft offences",
    "V": "Criminal damage and arson",
    "X": "Drug offences",
    "Y": "Possession of weapons offences",
    "Z": "Public order offences",
    "AA": "Miscellaneous crimes",
}
# hand-picked rows of the June 2019 sheet (found by printing it): row -> (area code, name as printed)
JUNE_2019_ROWS = {34: ("E23000014", "West Midlands"), 43: ("E23000034", "London, City of")}


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    return {name: read_pfa_table_p1(TABLES / name) for name in EXPECTED_PERIOD_END}


@pytest.fixture(scope="module")
def june19(tables) -> pl.DataFrame:
    return tables[JUNE_2019]


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def _parsed(table: pl.DataFrame, code: str) -> dict[str, float | None]:
    rows = table.filter(pl.col("area_code") == code)
    return dict(zip(rows["offence_group"].to_list(), rows["value"].to_list()))


# --------------------------------------------------------------------------------------------------
# every workbook


def test_folder_holds_the_eight_workbooks():
    assert sorted(p.name for p in TABLES.glob("*.xlsx")) == sorted(EXPECTED_PERIOD_END)


@pytest.mark.parametrize("name", sorted(EXPECTED_PERIOD_END))
def test_each_workbook_parses_with_its_period_and_areas(tables, name):
    t = tables[name]
    assert t.schema == pl.Schema(PUBLISHED_SCHEMA)
    end = EXPECTED_PERIOD_END[name]
    # P1 gives the current year only (the comparison is Table P2, percentages): one period per file
    assert t["period_end"].unique().to_list() == [end]
    assert t["period_start"].unique().to_list() == [EXPECTED_PERIOD_START[end]]
    assert t["table"].unique().to_list() == ["P1"]
    assert t["source_file"].unique().to_list() == [name]

    codes = set(t["area_code"].drop_nulls().to_list())
    pfas = sorted(c for c in codes if c[:3] in ("E23", "W15"))
    assert pfas == PFA_CODES  # the 43 territorial force areas
    assert {"K04000001", "E92000001", "W92000004"} <= codes  # England and Wales, England, Wales
    assert sorted(c for c in codes if c.startswith("E12")) == [f"E120000{i:02d}" for i in range(1, 10)]
    assert len(codes) == 43 + 3 + 9
    # British Transport Police: a row of its own, without an area code
    assert t.filter(pl.col("area_code").is_null())["area_name"].unique().to_list() == ["British Transport Police"]
    # every area has every offence group
    per_area = t.group_by("area_code", "area_name").agg(pl.col("offence_group").n_unique().alias("n"), pl.len())
    assert per_area["n"].unique().to_list() == [23] and per_area["len"].unique().to_list() == [23]


@pytest.mark.parametrize("name", sorted(EXPECTED_PERIOD_END))
def test_names_have_no_footnote_markers_and_keys_are_unique(tables, name):
    t = tables[name]
    for col in ("area_name", "offence_group"):
        values = t[col].unique().to_list()
        assert all(v and not re.search(r"\d", v) for v in values), (col, [v for v in values if re.search(r"\d", v or "")])
        assert all(v == " ".join(v.split()) for v in values), col  # trimmed, single spaces
    assert t.select("area_code", "period_end", "offence_group").is_duplicated().sum() == 0


@pytest.mark.parametrize("name", sorted(EXPECTED_PERIOD_END))
def test_sha256_is_the_hash_of_the_file_bytes(tables, name):
    assert tables[name]["source_sha256"].unique().to_list() == [hashlib.sha256((TABLES / name).read_bytes()).hexdigest()]


@pytest.mark.parametrize("name", sorted(EXPECTED_PERIOD_END))
def test_region_rows_equal_the_sum_of_their_force_areas(tables, name):
    """True to the unit in all 8 workbooks, for every offence group.

    In the years ending September and December 2019 Greater Manchester shows '..' (no data after its
    IT change); the footnote says GM is not included in the regional and national totals, and indeed
    North West = the sum of the other four North West forces.
    """
    t = tables[name]
    value = {(r["area_code"], r["offence_group"]): r["value"] for r in t.iter_rows(named=True)}
    groups = t["offence_group"].unique().to_list()
    for region, pfas in REGIONS.items():
        for g in groups:
            parts = [value[(p, g)] for p in pfas if value[(p, g)] is not None]
            assert value[(region, g)] == sum(parts), (region, g)
    missing = t.filter(pl.col("value").is_null())["area_code"].unique().to_list()
    assert missing == (["E23000005"] if EXPECTED_PERIOD_END[name] in ("2019-09", "2019-12") else [])
    btp = dict(t.filter(pl.col("area_code").is_null()).select("offence_group", "value").iter_rows())
    for g in groups:  # England = its regions; England and Wales = England + Wales + BTP (footnote)
        assert value[("E92000001", g)] == sum(value[(r, g)] for r in REGIONS if r.startswith("E12"))
        assert value[("K04000001", g)] == value[("E92000001", g)] + value[("W92000004", g)] + btp[g]


def test_read_published_folder_concatenates_all_eight(tables):
    df = read_published_folder(TABLES)
    assert df.schema == pl.Schema(PUBLISHED_SCHEMA)
    assert sorted(df["period_end"].unique().to_list()) == sorted(EXPECTED_PERIOD_END.values())
    assert df.height == sum(t.height for t in tables.values())
    assert df["source_file"].unique(maintain_order=True).to_list() == sorted(EXPECTED_PERIOD_END)


# --------------------------------------------------------------------------------------------------
# year ending June 2019: West Midlands and City of London read independently


def test_june_2019_offence_groups_are_the_sheet_headings(june19):
    assert june19["offence_group"].unique(maintain_order=True).to_list() == list(JUNE_2019_COLUMNS.values())
    assert june19["period_start"][0] == "2018-07" and june19["period_end"][0] == "2019-06"


def test_june_2019_rows_match_fastexcel_cells_at_hand_picked_coordinates(june19):
    import fastexcel

    sheet = fastexcel.read_excel(TABLES / JUNE_2019).load_sheet("Table P1", header_row=None, dtypes="string").to_polars()
    cell = lambda ref: sheet.row(int(re.sub(r"[A-Z]", "", ref)) - 1)[_col_index(re.sub(r"\d", "", ref))]  # noqa: E731
    assert cell("A5") == "Area Code" and cell("B5") == "Area Name"
    for row, (code, name) in JUNE_2019_ROWS.items():
        assert (cell(f"A{row}"), cell(f"B{row}")) == (code, name)
        expected = {group: float(cell(f"{col}{row}")) for col, group in JUNE_2019_COLUMNS.items()}
        assert _parsed(june19, code) == expected
        assert june19.filter(pl.col("area_code") == code)["area_name"].unique().to_list() == [name]


def test_june_2019_rows_match_openpyxl_cell_by_cell(june19):
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl is the independent cross-check reader (pip install openpyxl)")
    ws = openpyxl.load_workbook(TABLES / JUNE_2019, data_only=True)["Table P1"]
    # headings as the sheet prints them, footnote markers removed by hand here
    for col, group in JUNE_2019_COLUMNS.items():
        printed = ws[f"{col}5"].value or ws[f"{col}4"].value
        assert " ".join(re.sub(r"(?<=[a-z)])\s?\d+(,\d+)*", "", printed.replace("fraud3)", "fraud)")).split()) == group
    for row, (code, name) in JUNE_2019_ROWS.items():
        assert ws[f"A{row}"].value == code and ws[f"B{row}"].value == name
        expected = {group: float(ws[f"{col}{row}"].value) for col, group in JUNE_2019_COLUMNS.items()}
        assert all(isinstance(ws[f"{col}{row}"].value, int) for col in JUNE_2019_COLUMNS)
        assert _parsed(june19, code) == expected


def test_published_value_for_west_midlands_and_city_of_london(june19):
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl is the independent cross-check reader (pip install openpyxl)")
    ws = openpyxl.load_workbook(TABLES / JUNE_2019, data_only=True)["Table P1"]
    assert published_value(june19, "west-midlands", TOTAL, "2018-07", "2019-06") == ws["C34"].value
    assert published_value(june19, "west-midlands", "Robbery", "2018-07", "2019-06") == ws["L34"].value
    assert published_value(june19, "city-of-london", TOTAL, "2018-07", "2019-06") == ws["C43"].value
    assert published_value(june19, "city-of-london", "Robbery", "2018-07", "2019-06") == ws["L43"].value
    assert published_value(june19, "btp", "Robbery", "2018-07", "2019-06") == ws["L62"].value
    assert ws["B62"].value == "British Transport Police"


def test_published_value_edge_cases(tables, june19):
    # not-available marker -> None; no such row -> None; whitespace in the group name is normalised
    sep19 = tables["policeforceareatablesyearendingseptember2019.xlsx"]
    assert published_value(sep19, "greater-manchester", TOTAL, "2018-10", "2019-09") is None
    assert published_value(june19, "west-midlands", "Fraud", "2018-07", "2019-06") is None
    assert published_value(june19, "west-midlands", TOTAL, "2018-04", "2019-03") is None
    assert published_value(june19, "west-midlands", "  Robbery ", "2018-07", "2019-06") == _parsed(june19, "E23000014")["Robbery"]
    # the folder frame: the same area code across editions (City of London is named two ways)
    df = read_published_folder(TABLES)
    assert (
        published_value(df, "city-of-london", TOTAL, "2017-10", "2018-09")
        == _parsed(tables["policeforceareatablesyearendingsep18corrected.xlsx"], "E23000034")[TOTAL]
    )
    with pytest.raises(PublishedError, match="no-such-force"):
        published_value(june19, "no-such-force", TOTAL, "2018-07", "2019-06")
    # two rows for the same figure that disagree are refused, not picked from
    clash = pl.concat([june19, june19.with_columns(pl.col("value") + 1, pl.lit("other.xlsx").alias("source_file"))])
    with pytest.raises(PublishedError, match="other.xlsx"):
        published_value(clash, "west-midlands", TOTAL, "2018-07", "2019-06")


# --------------------------------------------------------------------------------------------------
# force ids -> areas


def test_force_area_examples():
    assert force_area("west-midlands") == {"force_id": "west-midlands", "area_code": "E23000014", "area_name": "West Midlands"}
    assert force_area("city-of-london") == {"force_id": "city-of-london", "area_code": "E23000034", "area_name": "London, City of"}
    assert force_area("metropolitan")["area_name"] == "Metropolitan Police"
    assert force_area("btp") == {"force_id": "btp", "area_code": None, "area_name": "British Transport Police"}
    assert force_area("nowhere") is None


def test_every_force_in_the_reference_resolves_to_a_june_2019_area(june19):
    doc = yaml.safe_load(force_areas_path().read_text(encoding="utf-8"))
    assert doc["version"] == "1.0.0"
    ids = [f["force_id"] for f in doc["forces"]]
    assert len(ids) == len(set(ids)) == 44
    forces_csv = REAL / "reference" / "forces" / "forces.csv"
    if forces_csv.exists():
        assert sorted(ids) == sorted(pl.read_csv(forces_csv)["id"].to_list())
    areas = dict(june19.select("area_code", "area_name").unique().iter_rows())
    territorial = []
    for fid in ids:
        a = force_area(fid)
        assert a["area_code"] in areas and areas[a["area_code"]] == a["area_name"], fid
        if a["area_code"] is not None:
            territorial.append(a["area_code"])
            assert published_value(june19, fid, TOTAL, "2018-07", "2019-06") == _parsed(june19, a["area_code"])[TOTAL]
    assert sorted(territorial) == PFA_CODES


# --------------------------------------------------------------------------------------------------
# files that are not a usable Table P1


def _copy_with_sheet_renamed(src: Path, dest: Path, old: str, new: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/workbook.xml":
                assert f'name="{old}"'.encode() in data
                data = data.replace(f'name="{old}"'.encode(), f'name="{new}"'.encode())
            zout.writestr(item, data)
    return dest


def test_not_an_xlsx_raises_naming_the_file(tmp_path):
    text = tmp_path / "notes.xlsx"
    text.write_text("Area Code,Area Name\nE23000014,West Midlands\n", encoding="utf-8")
    with pytest.raises(PublishedError, match="notes.xlsx"):
        read_pfa_table_p1(text)
    cut = tmp_path / "truncated.xlsx"
    data = (TABLES / JUNE_2019).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PublishedError, match="truncated.xlsx"):
        read_pfa_table_p1(cut)
    with pytest.raises(PublishedError, match="missing.xlsx"):
        read_pfa_table_p1(tmp_path / "missing.xlsx")


def test_workbook_without_table_p1_raises_naming_the_file(tmp_path):
    bad = _copy_with_sheet_renamed(TABLES / JUNE_2019, tmp_path / "no_p1.xlsx", "Table P1", "Table Q1")
    with pytest.raises(PublishedError, match=r"no_p1\.xlsx.*no 'Table P1' sheet"):
        read_pfa_table_p1(bad)
    # the same workbook in a folder: the folder read refuses it rather than skipping it
    shutil.copy(TABLES / JUNE_2019, tmp_path / JUNE_2019)
    with pytest.raises(PublishedError, match=r"no_p1\.xlsx"):
        read_published_folder(tmp_path)


def test_folder_with_two_workbooks_for_one_period_raises(tmp_path):
    shutil.copy(TABLES / JUNE_2019, tmp_path / "a.xlsx")
    shutil.copy(TABLES / JUNE_2019, tmp_path / "b.xlsx")
    with pytest.raises(PublishedError, match=r"a\.xlsx and b\.xlsx"):
        read_published_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PublishedError, match="no .xlsx"):
        read_published_folder(empty)


def _p1_workbook(path: Path, *, headings: list[str], rows: list[list], title: str | None = None) -> Path:
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl builds the synthetic workbooks")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Table P1"
    ws.append([title or "Table P1: Police recorded crime by offence group and police force area, number of offences, year ending June 20191,2"])
    ws.append(["England and Wales"])
    ws.append(["Area Code", "Area Name", *headings])
    ws.append([None, None, "Numbers"])
    for r in rows:
        ws.append(r)
    ws.append(["Source: Home Office - Police recorded crime"])
    ws.append(["1. A note."])
    ws.append(["2. Another note."])
    wb.save(path)
    return path


def test_markers_become_null_and_other_text_is_refused(tmp_path):
    ok = _p1_workbook(
        tmp_path / "ok.xlsx",
        headings=["Robbery 4", "Theft offences"],
        rows=[["E23000014", "West Midlands 3,4", 10, "[x]"], [None, "British Transport Police", "..", 5]],
    )
    t = read_pfa_table_p1(ok)
    assert t.select("area_code", "area_name", "offence_group", "value").rows() == [
        ("E23000014", "West Midlands", "Robbery", 10.0),
        ("E23000014", "West Midlands", "Theft offences", None),
        (None, "British Transport Police", "Robbery", None),
        (None, "British Transport Police", "Theft offences", 5.0),
    ]
    assert t["period_end"].unique().to_list() == ["2019-06"]
    bad = _p1_workbook(tmp_path / "bad.xlsx", headings=["Robbery"], rows=[["E23000014", "West Midlands", "ten"]])
    with pytest.raises(PublishedError, match=r"bad\.xlsx.*'ten'"):
        read_pfa_table_p1(bad)
    blank = _p1_workbook(tmp_path / "blank.xlsx", headings=["Robbery", "Theft"], rows=[["E23000014", "West Midlands", 1]])
    with pytest.raises(PublishedError, match=r"blank\.xlsx.*empty"):
        read_pfa_table_p1(blank)


def test_comparison_or_percentage_layouts_are_refused(tmp_path):
    two = _p1_workbook(tmp_path / "two_years.xlsx", headings=["Robbery", "Robbery"], rows=[["E23000014", "West Midlands", 1, 2]])
    with pytest.raises(PublishedError, match=r"two_years\.xlsx.*twice"):
        read_pfa_table_p1(two)
    pct = _p1_workbook(tmp_path / "pct.xlsx", headings=["Robbery", "% change"], rows=[["E23000014", "West Midlands", 1, 2]])
    with pytest.raises(PublishedError, match=r"pct\.xlsx.*percentage"):
        read_pfa_table_p1(pct)
    no_year = _p1_workbook(
        tmp_path / "no_year.xlsx", headings=["Robbery"], rows=[["E23000014", "West Midlands", 1]], title="Table P1: Police recorded crime, number of offences"
    )
    with pytest.raises(PublishedError, match=r"no_year\.xlsx.*year ending"):
        read_pfa_table_p1(no_year)
