"""Public-data profile: data.police.uk street, outcomes and stop-and-search files against their contracts.

The real files are read from ``../shared/data/real`` (see its SOURCES.md); tests that need them skip
when the folder is absent. Row counts are counted independently with Python's csv module (CR-only
files normalised for counting only, as SOURCES.md does), never with the project's reader.
"""

from __future__ import annotations

import collections
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import yaml

from etl.core.contracts import parse_contract
from etl.core.extracts import read_extract
from etl.core.periods import Month
from etl.core.validation import FileFailure, ValidationContext, validate_extract

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
MAPPING = CONTRACTS / "definitions" / "police_uk_mapping.yaml"
CATALOGUE = Path(__file__).resolve().parents[2] / "shared" / "domain" / "measures.md"

KINDS = {
    "street": "police_uk_street",
    "outcomes": "police_uk_outcomes",
    "stop_and_search": "police_uk_stop_and_search",
}

REVISION_MAIN = "street/city-of-london/2021-06-city-of-london-street.csv"
REVISION_ZHENLEIGU = "street/city-of-london/revisions/2021-06-city-of-london-street.ZhenleiGu-QM_A3.csv"  # downloaded ~Jan 2022
REVISION_ALINZOHARI = "street/city-of-london/revisions/2021-06-city-of-london-street.AlinZohari-STDM.csv"  # downloaded ~Mar 2023
LEGACY = "street/west-midlands-legacy-format/2011-02-west-midlands-street.csv"


def need_real() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data.police.uk files not present at {REAL}")
    return REAL


def contract(kind: str):
    return parse_contract(CONTRACTS / f"{KINDS[kind]}.yaml")


def mapping() -> dict:
    return yaml.safe_load(MAPPING.read_text(encoding="utf-8"))


def csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows, parsed with the csv module (BOM removed, CRLF and CR-only normalised to LF)."""
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(f.strip() for f in r)]
    return rows[0], rows[1:]


def csv_dicts(path: Path) -> list[dict[str, str]]:
    header, rows = csv_table(path)
    return [dict(zip(header, r)) for r in rows]


def _files(kind: str) -> list[Path]:
    """Every modern-format file of a kind (not the revisions, not the legacy 2011 layout, not aggregates)."""
    if not REAL.is_dir():
        return []
    if kind == "street":
        found = [p for p in REAL.glob("street/*/*-street.csv") if "legacy" not in p.parent.name]
    elif kind == "outcomes":
        found = [p for p in REAL.glob("outcomes/*/*-outcomes.csv") if p.parent.name != "aggregates"]
    else:
        found = list(REAL.glob("stop-and-search/*/*-stop-and-search.csv"))
    return sorted(found)


def _params() -> list:
    params = [pytest.param(kind, p, id=f"{kind}:{p.parent.name}/{p.name}") for kind in KINDS for p in _files(kind)]
    return params or [pytest.param(None, None, id="no-real-data")]


def file_month(path: Path) -> Month:
    return Month.parse(path.name[:7])


def validate(kind: str, path: Path, month: Month | None = None, data: bytes | None = None):
    raw = read_extract(path, data)
    return validate_extract(contract(kind), raw, ValidationContext(month=month or file_month(path)), source_file=path.name)


# --------------------------------------------------------------------------------------------------
# Contracts


def test_contracts_parse_as_public_data_profile():
    for kind, cid in KINDS.items():
        c = contract(kind)
        assert c.id == cid and c.extract == cid
        assert c.profile == "police_uk"
        assert c.optional is True
        assert (c.reject_fraction, c.reject_min_rows) == (0.05, 25)
        names = set(c.column_names)
        assert not names & {"month", "force_id", "source_file", "source_sha256", "source_row"}
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert contract("street").file_name == "{month}-{force}-street.csv"
    assert contract("outcomes").file_name == "{month}-{force}-outcomes.csv"
    assert contract("stop_and_search").file_name == "{month}-{force}-stop-and-search.csv"
    assert contract("street").month_column == "month_text"
    assert contract("outcomes").month_column == "month_text"
    # Stop and search: rows can be dated (UTC) in the previous month, so no monthColumn but a monthRule.
    sas = contract("stop_and_search")
    assert sas.month_column is None
    custom = {p.property: p for p in sas.model.customProperties}
    assert "monthRule" in custom and "1 day before" in custom["monthRule"].description
    assert sas.column("date_utc").logical_type == "string" and sas.column("date_utc").pattern


def test_contract_headers_are_the_published_headers():
    published = {
        "street": "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,Last outcome category,Context",
        "outcomes": "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Outcome type",
        "stop_and_search": "Type,Date,Part of a policing operation,Policing operation,Latitude,Longitude,Gender,Age range,"
        "Self-defined ethnicity,Officer-defined ethnicity,Legislation,Object of search,Outcome,"
        "Outcome linked to object of search,Removal of more than just outer clothing",
    }
    for kind, header in published.items():
        assert [c.source_name for c in contract(kind).columns] == header.split(",")
    if REAL.is_dir():
        for kind in KINDS:
            for p in _files(kind):
                assert csv_table(p)[0] == published[kind].split(","), p


# --------------------------------------------------------------------------------------------------
# Every real file validates with no quarantined row


@pytest.mark.parametrize("kind, path", _params())
def test_real_file_validates_with_zero_quarantine(kind, path):
    need_real()
    if path is None:
        pytest.skip("no modern-format data.police.uk files under shared/data/real")
    _, rows = csv_table(path)
    result = validate(kind, path)
    assert result.rows_quarantined == 0, result.quarantine.select("row_number", "failed_checks").head(5).to_dicts()
    assert result.rows_loaded == len(rows) == result.rows_in
    assert all(c.passed for c in result.checks if c.severity == "error")
    assert result.month == path.name[:7]
    if kind != "stop_and_search":
        assert set(result.clean["month_text"].to_list()) == {path.name[:7]}


def test_real_file_totals():
    need_real()
    loaded = {kind: sum(validate(kind, p).rows_loaded for p in _files(kind)) for kind in KINDS}
    counted = {kind: sum(len(csv_table(p)[1]) for p in _files(kind)) for kind in KINDS}
    assert loaded == counted
    # Facts of the collection (SOURCES.md): 55 street, 18 outcomes, 35 stop-and-search files.
    assert {kind: len(_files(kind)) for kind in KINDS} == {"street": 55, "outcomes": 18, "stop_and_search": 35}
    assert counted == {"street": 39777, "outcomes": 9136, "stop_and_search": 32228}


@pytest.mark.parametrize(
    "bom, newline",
    [(True, "\r\n"), (False, "\n"), (False, "\r"), (True, "\r"), (True, "\n")],
    ids=["bom-crlf", "lf", "cr", "bom-cr", "bom-lf"],
)
@pytest.mark.parametrize(
    "kind, rel",
    [
        ("street", REVISION_MAIN),  # published CRLF
        ("outcomes", "outcomes/city-of-london/2016-06-city-of-london-outcomes.csv"),  # published LF
        ("stop_and_search", "stop-and-search/city-of-london/2018-09-city-of-london-stop-and-search.csv"),
    ],
)
def test_bom_and_line_ending_variants_load_the_same_rows(tmp_path, kind, rel, bom, newline):
    """No real file has a BOM or CR-only endings; variants of real files must load identically."""
    real = need_real() / rel
    original = validate(kind, real)
    text = real.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\n", newline)
    variant = tmp_path / real.name
    variant.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    assert len(csv_table(variant)[1]) == len(csv_table(real)[1])
    result = validate(kind, variant)
    assert result.encoding == ("utf-8-sig" if bom else "utf-8")
    assert result.rows_quarantined == 0
    assert result.rows_loaded == original.rows_loaded == len(csv_table(real)[1])
    lineage = ["source_file", "source_sha256"]
    assert result.clean.drop(lineage).equals(original.clean.drop(lineage))


# --------------------------------------------------------------------------------------------------
# Revisions: the same month downloaded three times


def _rows_as_tuples(result) -> collections.Counter:
    cols = contract("street").column_names
    return collections.Counter(result.clean.select(cols).rows())


def test_revisions_of_2021_06_validate_and_differ_only_in_last_outcome():
    real = need_real()
    month = Month.parse("2021-06")
    results = {}
    for name, rel in (("main", REVISION_MAIN), ("zhenleigu", REVISION_ZHENLEIGU), ("alinzohari", REVISION_ALINZOHARI)):
        r = validate("street", real / rel, month)
        assert r.rows_quarantined == 0
        assert r.rows_loaded == len(csv_table(real / rel)[1])
        results[name] = r

    # Same size and the same crimes: 570 rows, 471 non-empty Crime IDs (468 distinct: 3 published
    # twice), 99 anti-social behaviour rows - identical in all three downloads.
    for r in results.values():
        ids = r.clean["crime_id"].drop_nulls().to_list()
        assert (r.rows_loaded, len(ids), len(set(ids))) == (570, 471, 468)
        assert r.clean.filter(r.clean["crime_type"] == "Anti-social behaviour").height == 99
    id_sets = [collections.Counter(r.clean["crime_id"].drop_nulls().to_list()) for r in results.values()]
    assert id_sets[0] == id_sets[1] == id_sets[2]
    asb = [
        collections.Counter(r.clean.filter(r.clean["crime_id"].is_null()).drop("source_file", "source_sha256", "source_row").rows()) for r in results.values()
    ]
    assert asb[0] == asb[1] == asb[2]

    # Different files (bytes, line endings, row order) ...
    assert len({r.sha256 for r in results.values()}) == 3
    assert results["main"].clean["crime_id"].to_list() != results["zhenleigu"].clean["crime_id"].to_list()

    # ... whose rows differ only in Last outcome category: location, LSOA and crime type of every
    # Crime ID are unchanged; outcomes move on between downloads.
    without_outcome = [c for c in contract("street").column_names if c != "last_outcome_category"]
    base = [collections.Counter(r.clean.select(without_outcome).rows()) for r in results.values()]
    assert base[0] == base[1] == base[2]
    tuples = {k: _rows_as_tuples(r) for k, r in results.items()}

    def changed(a: str, b: str) -> int:
        return sum((tuples[a] - tuples[b]).values())

    assert changed("main", "alinzohari") == 44
    assert changed("main", "zhenleigu") == 69
    assert changed("zhenleigu", "alinzohari") == 111

    def outcome_count(name: str, category: str) -> int:
        return results[name].clean.filter(results[name].clean["last_outcome_category"] == category).height

    # Chronologically (Jan 2022, Apr 2022, Mar 2023) fewer crimes lack a status update.
    assert [outcome_count(n, "Status update unavailable") for n in ("zhenleigu", "main", "alinzohari")] == [128, 106, 81]
    assert [outcome_count(n, "Investigation complete; no suspect identified") for n in ("zhenleigu", "main", "alinzohari")] == [150, 156, 158]


# --------------------------------------------------------------------------------------------------
# File failures


def test_legacy_2011_west_midlands_file_fails_missing_columns():
    path = need_real() / LEGACY
    header, rows = csv_table(path)
    assert "Easting" in header and "Northing" in header and "Crime ID" not in header
    with pytest.raises(FileFailure) as exc:
        validate("street", path, Month.parse("2011-02"))
    assert exc.value.rule == "columns_present"
    for missing in ("Crime ID", "Longitude", "Latitude", "LSOA code", "LSOA name", "Last outcome category"):
        assert f"'{missing}'" in exc.value.message
    for present in ("Month", "Crime type", "Location"):
        assert f"'{present}'" not in exc.value.message.split(" are missing")[0]


@pytest.mark.parametrize(
    "kind, rel, wrong",
    [
        ("street", REVISION_MAIN, "2021-07"),
        ("street", "street/cumbria/2016-03-cumbria-street.csv", "2016-02"),
        ("outcomes", "outcomes/city-of-london/2017-01-city-of-london-outcomes.csv", "2017-02"),
    ],
)
def test_file_in_the_wrong_month_folder_fails_in_month_rule(tmp_path, kind, rel, wrong):
    real = need_real() / rel
    placed = tmp_path / wrong / real.name
    placed.parent.mkdir()
    placed.write_bytes(real.read_bytes())
    _, rows = csv_table(real)
    with pytest.raises(FileFailure) as exc:
        validate(kind, placed, Month.parse(wrong))
    assert exc.value.rule == "month_text.in_extract_month"
    assert f"{len(rows)} row(s)" in exc.value.message and wrong in exc.value.message


# --------------------------------------------------------------------------------------------------
# Injected bad rows


def _line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def test_injected_bad_rows_are_quarantined_by_line_number(tmp_path):
    real = need_real() / REVISION_MAIN  # CRLF as published
    header, rows = csv_table(real)
    col = {h: i for i, h in enumerate(header)}
    crimes = [r for r in rows if r[col["Crime ID"]] and r[col["Latitude"]]]
    base = crimes[10]

    def variant(**changes: str) -> list[str]:
        r = list(base)
        for name, value in changes.items():
            r[col[name]] = value
        return r

    other_id = crimes[20][col["Crime ID"]]
    injected = {  # line number in the new file -> (row, failed rules or None when the row must load)
        5: (variant(**{"Crime type": "Violent crime"}), "crime_type.allowed_values"),  # retired pre-2013 type
        40: (variant(**{"LSOA code": "E0100000X"}), "lsoa_code.pattern"),
        41: (variant(**{"Latitude": "95"}), "latitude.range"),
        100: (variant(**{"Crime ID": other_id}), None),  # a repeated non-empty Crime ID: published that way, loads
        200: (variant(**{"Month": "2021-6"}), "month_text.pattern"),
        300: (variant(**{"Crime type": "", "LSOA code": "X"}), "crime_type.required; lsoa_code.pattern"),
    }
    lines = [_line(header)] + [_line(r) for r in rows]
    for number in sorted(injected):
        lines.insert(number - 1, _line(injected[number][0]))
    bad = tmp_path / real.name
    bad.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    assert len(csv_table(bad)[1]) == len(rows) + len(injected)

    result = validate("street", bad, Month.parse("2021-06"))
    expected = {n: rules for n, (_, rules) in injected.items() if rules}
    got = dict(zip(result.quarantine["row_number"].to_list(), result.quarantine["failed_checks"].to_list()))
    assert got == expected
    assert result.rows_loaded == len(rows) + len(injected) - len(expected)
    assert result.rows_in == result.rows_loaded + result.rows_quarantined
    # The repeated Crime ID row is loaded (uniqueness is not a rule of the public data).
    assert 100 in result.clean["source_row"].to_list()
    assert result.clean.filter(result.clean["crime_id"] == other_id).height == 2
    # Quarantine details describe the failure without the value.
    detail = result.quarantine.filter(result.quarantine["row_number"] == 41)["failure_detail"].item()
    assert detail.startswith("latitude:") and "95" not in detail


def test_injected_bad_stop_and_search_rows(tmp_path):
    real = need_real() / "stop-and-search/city-of-london/2021-08-city-of-london-stop-and-search.csv"
    header, rows = csv_table(real)
    col = {h: i for i, h in enumerate(header)}
    base = rows[3]

    def variant(**changes: str) -> list[str]:
        r = list(base)
        for name, value in changes.items():
            r[col[name]] = value
        return r

    injected = {
        3: (variant(Date="2021-08-04 18:30:00"), "date_utc.pattern"),  # no T / offset: not the published format
        4: (variant(**{"Age range": "35-44"}), "age_range.allowed_values"),
        5: (variant(**{"Outcome linked to object of search": "Yes"}), "outcome_linked_to_object_of_search.flag"),
        6: (variant(Legislation="Misuse of Drugs Act 1971 (section 32)"), "legislation.allowed_values"),
    }
    lines = [_line(header)] + [_line(r) for r in rows]
    for number in sorted(injected):
        lines.insert(number - 1, _line(injected[number][0]))
    bad = tmp_path / real.name
    bad.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    result = validate("stop_and_search", bad, Month.parse("2021-08"))
    got = dict(zip(result.quarantine["row_number"].to_list(), result.quarantine["failed_checks"].to_list()))
    assert got == {n: rules for n, (_, rules) in injected.items()}
    assert result.rows_loaded == len(rows)
    # Booleans load as booleans; date_utc stays the published text.
    assert result.clean["outcome_linked_to_object_of_search"].dtype == pl.Boolean
    assert result.clean["date_utc"].str.ends_with("+00:00").all()


# --------------------------------------------------------------------------------------------------
# Stop and search month rule (monthRule in the contract), as a fact of the real files


def test_stop_and_search_dates_fall_in_the_local_month():
    need_real()
    london = ZoneInfo("Europe/London")
    before_month = {}
    for path in _files("stop_and_search"):
        m = file_month(path)
        start = datetime(m.year, m.month, 1, tzinfo=UTC)
        nxt = m + 1
        end = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
        dates = [datetime.fromisoformat(r["Date"]) for r in csv_dicts(path)]
        assert all(d.utcoffset() == timedelta(0) for d in dates)
        assert all(start - timedelta(days=1) <= d < end for d in dates), path.name
        assert {d.astimezone(london).strftime("%Y-%m") for d in dates} == {str(m)}, path.name
        early = sum(d < start for d in dates)
        if early:
            before_month[f"{path.parent.name}/{path.name[:7]}"] = early
            assert all(d >= start - timedelta(hours=1) for d in dates)  # BST: local midnight is 23:00 UTC
    assert before_month == {"city-of-london/2018-09": 1, "metropolitan/2018-07": 18}


# --------------------------------------------------------------------------------------------------
# Mapping file


def _found_categories() -> dict[str, set[str]]:
    """Every crime type / outcome category in the real files (modern, legacy and the aggregates)."""
    real = need_real()
    crime_types: set[str] = set()
    outcomes: set[str] = set()
    for p in _files("street") + sorted(real.glob("street/*/revisions/*.csv")):
        for r in csv_dicts(p):
            crime_types.add(r["Crime type"])
            outcomes.add(r["Last outcome category"])
    crime_types |= {r["Crime type"] for r in csv_dicts(real / LEGACY)}
    for p in _files("outcomes"):
        outcomes |= {r["Outcome type"] for r in csv_dicts(p)}
    agg = real / "outcomes" / "aggregates"
    if agg.is_dir():
        for r in csv_dicts(agg / "crime outcomes by category force year 2012-16.csv"):
            crime_types.add(r["crime_type"])
            outcomes.add(r["last_outcome_category"])
        outcomes |= {r["Outcome"] for r in csv_dicts(agg / "outcomes_totals_2012-2016.csv")}
        outcomes |= set(csv_table(agg / "outcomes_by_force.csv")[0][1:])
    ss = {r["Outcome"] for p in _files("stop_and_search") for r in csv_dicts(p)}
    blank = {"", "(blank)"}
    return {"crime_types": crime_types - blank, "outcomes": outcomes - blank, "stop_search": ss - blank}


def test_mapping_covers_every_published_category():
    found = _found_categories()
    m = mapping()
    mapped_types = {e["crime_type"]: e for e in m["crime_types"]}
    assert found["crime_types"] <= set(mapped_types), found["crime_types"] - set(mapped_types)
    for name in found["crime_types"]:
        entry = mapped_types[name]
        assert entry["proxies"] or entry.get("not_mapped", "").strip(), f"{name}: neither mapped nor explained"
    assert found["outcomes"] <= {e["category"] for e in m["outcome_categories"]}
    assert found["stop_search"] <= {e["outcome"] for e in m["stop_search_outcomes"]}
    # The retired types are found (legacy file, aggregates) and explicitly not mapped.
    assert {"Violent crime", "Public disorder and weapons"} <= found["crime_types"]
    assert not mapped_types["Violent crime"]["proxies"] and not mapped_types["Public disorder and weapons"]["proxies"]


def test_contract_enums_agree_with_the_mapping():
    m = mapping()
    street, outcomes, sas = contract("street"), contract("outcomes"), contract("stop_and_search")
    current = {e["crime_type"] for e in m["crime_types"] if not e["valid_to"]}
    assert set(street.column("crime_type").enum) == current
    assert len(current) == 14
    categories = {e["category"] for e in m["outcome_categories"]}
    assert set(street.column("last_outcome_category").enum) <= categories
    assert set(outcomes.column("outcome_type").enum) <= categories
    assert set(street.column("last_outcome_category").enum) | set(outcomes.column("outcome_type").enum) == categories
    assert set(sas.column("outcome").enum) == {e["outcome"] for e in m["stop_search_outcomes"]}
    if REAL.is_dir():  # everything the modern files contain is in the contracts' enums
        found = _found_categories()
        modern = {r["Crime type"] for p in _files("street") for r in csv_dicts(p)}
        assert modern == current
        assert found["stop_search"] == set(sas.column("outcome").enum)


def test_mapping_structure():
    m = mapping()
    assert re.fullmatch(r"\d+\.\d+\.\d+", m["version"])
    assert m["version"] in [c["version"] for c in m["changes"]]
    assert all(c.get("note") and re.fullmatch(r"\d{4}-\d{2}", c["effective_from"]) for c in m["changes"])

    proxies = {p["id"]: p for p in m["proxy_measures"]}
    assert len(proxies) == len(m["proxy_measures"])
    types = {e["crime_type"]: e for e in m["crime_types"]}
    for p in proxies.values():
        assert p["id"].startswith("pu_") and p["proxy_for"] and p["differs"].strip() and p["name"]
        assert p["source"] in KINDS.values()
        assert p["bias"] in {"over_counts", "under_counts", "similar"}
        assert p.get("crime_types") or p.get("rate") or p.get("filter")
        for t in p.get("crime_types", []):
            assert p["id"] in types[t]["proxies"], f"{t} does not list {p['id']}"
    for t, e in types.items():
        for pid in e["proxies"]:
            assert t in proxies[pid]["crime_types"]
        assert re.fullmatch(r"(\d{4}-\d{2})?", e["valid_from"]) and re.fullmatch(r"(\d{4}-\d{2})?", e["valid_to"])

    # The proxies the brief of the public-data profile names, and how they differ.
    nc = proxies["pu_nc_total"]
    assert nc["proxy_for"] == "nm_nc_total" and nc["bias"] == "over_counts"
    assert set(nc["crime_types"]) == {"Burglary", "Robbery", "Theft from the person", "Vehicle crime"}
    components = ["pu_burglary_all", "pu_robbery_all", "pu_theft_from_person", "pu_vehicle_crime"]
    assert set(nc["crime_types"]) == {t for pid in components for t in proxies[pid]["crime_types"]}
    assert proxies["pu_burglary_all"]["proxy_for"] == "nm_nc_residential_burglary"
    assert "business" in proxies["pu_burglary_all"]["differs"]
    assert proxies["pu_robbery_all"]["proxy_for"] == "nm_nc_robbery" and "34B" in proxies["pu_robbery_all"]["differs"]
    assert proxies["pu_theft_from_person"]["proxy_for"] == "nm_nc_theft_from_person"
    assert proxies["pu_vehicle_crime"]["proxy_for"] == "nm_nc_vehicle_offences"
    assert proxies["pu_violence_and_sexual"]["proxy_for"] == "nm_sv_vwi_count"
    assert "NOT violence with injury" in proxies["pu_violence_and_sexual"]["differs"]
    assert proxies["pu_possession_weapons"]["proxy_for"] == "nm_sv_possession_weapons_count"
    assert proxies["pu_asb_incidents"]["proxy_for"] == "pk_asb_incident_count"

    not_computable = {e["measure"]: e["why"] for e in m["not_computable"]}
    assert {"nm_homicide_count", "nm_sv_knife_crime_count", "nm_cyber_enabled_offences"} <= set(not_computable)
    assert all(why.strip() for why in not_computable.values())
    assert not {p["proxy_for"] for p in proxies.values()} & set(not_computable)

    # Positive outcomes per catalogue section 1.2: HO outcome types 1-4 and 6-8.
    positive_types = {1, 2, 3, 4, 6, 7, 8}
    for e in m["outcome_categories"]:
        assert isinstance(e["positive"], bool) and e["kind"] in {"outcome", "court", "pending", "unknown"}
        types_ = set(e["ho_outcome_types"])
        assert types_ <= set(range(1, 23))
        if e["positive"]:
            assert types_ and types_ <= positive_types, e["category"]
        else:
            assert not types_ & positive_types, e["category"]
    by_category = {e["category"]: e for e in m["outcome_categories"]}
    tic = by_category["Suspect charged as part of another case"]
    assert (tic["positive"], tic["ho_outcome_types"]) == (True, [4])
    assert by_category["Investigation complete; no suspect identified"]["positive"] is False
    ss = {e["outcome"]: e for e in m["stop_search_outcomes"]}
    assert all(isinstance(e["positive"], bool) for e in ss.values())
    assert {o for o, e in ss.items() if not e["positive"]} == {"A no further action disposal", "Nothing found - no further action"}
    for e in ss.values():
        if "same_as" in e:
            assert ss[e["same_as"]]["positive"] == e["positive"]

    # Every proxy_for / not_computable id is a measure of the catalogue (when it is present).
    if CATALOGUE.exists():
        text = CATALOGUE.read_text(encoding="utf-8")
        for mid in {p["proxy_for"] for p in proxies.values()} | set(not_computable) | {p["also_matches"] for p in proxies.values() if "also_matches" in p}:
            assert f"`{mid}`" in text, mid


def test_proxy_counts_from_a_validated_month():
    """The mapping drives a count over the curated rows; it equals a plain csv count of the same file."""
    real = need_real() / REVISION_MAIN
    clean = validate("street", real).clean
    proxies = {p["id"]: p for p in mapping()["proxy_measures"]}
    rows = csv_dicts(real)
    for pid in ("pu_nc_total", "pu_burglary_all", "pu_robbery_all", "pu_violence_and_sexual", "pu_asb_incidents"):
        wanted = proxies[pid]["crime_types"]
        assert clean.filter(clean["crime_type"].is_in(wanted)).height == sum(r["Crime type"] in wanted for r in rows)
    nc = clean.filter(clean["crime_type"].is_in(proxies["pu_nc_total"]["crime_types"])).height
    parts = sum(
        clean.filter(clean["crime_type"].is_in(proxies[p]["crime_types"])).height
        for p in ("pu_burglary_all", "pu_robbery_all", "pu_theft_from_person", "pu_vehicle_crime")
    )
    assert nc == parts > 0
