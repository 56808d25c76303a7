"""The measures engine on small hand-made monthly data: values, windows, gaps and definition changes."""

import polars as pl
import pytest

from etl.core.periods import Month, months_between
from etl.measures.engine import compute_measures, load_definitions

FLAGS = ("domestic_abuse", "hate_crime", "knife_sharp", "firearm", "online", "business_victim")


def crimes(spec):
    """spec: list of (month, code, n, flags dict). Returns a LazyFrame shaped like the curated table."""
    rows = []
    for month, code, n, flags in spec:
        for _ in range(n):
            row = {
                "force_id": "f",
                "crime_ref": f"c{len(rows)}",
                "month": month,
                "hocr_code": code,
                "status": flags.get("status", "recorded"),
                "victim_age": flags.get("age"),
            }
            row.update({f: False for f in FLAGS})
            row["knife_sharp"], row["online"] = flags.get("knife", False), flags.get("online", False)
            rows.append(row)
    schema = {"force_id": pl.Utf8, "crime_ref": pl.Utf8, "month": pl.Utf8, "hocr_code": pl.Utf8, "status": pl.Utf8, "victim_age": pl.Int64} | {
        f: pl.Boolean for f in FLAGS
    }
    return pl.DataFrame(rows, schema=schema).lazy()


def loaded(first, last, skip=()):
    ms = [str(m) for m in months_between(first, last) if str(m) not in skip]
    return pl.DataFrame({"force_id": ["f"] * len(ms), "month": ms})


def row(table, measure, end, period, comparison):
    r = table.filter((pl.col("measure_id") == measure) & (pl.col("period_end") == end) & (pl.col("period") == period) & (pl.col("comparison") == comparison))
    assert r.height == 1, (measure, end, period, comparison)
    return r.row(0, named=True)


def test_counts_windows_and_changes():
    spec = []
    for i, m in enumerate(months_between("2018-07", "2020-12")):
        spec += [
            (str(m), "1", 1, {}),
            (str(m), "34B", 2 + i % 3, {}),
            (str(m), "34A", 5, {}),
            (str(m), "8N", 3, {"knife": True}),
            (str(m), "46", 4, {"knife": True}),
            (str(m), "58A", 2, {"online": True}),
            (str(m), "1", 1, {"status": "cancelled"}),
        ]
    t = compute_measures(
        crimes(spec),
        loaded("2018-07", "2020-12"),
        pl.DataFrame({"force_id": ["f"] * 3, "year": [2019, 2020, 2021], "population": [1_000_000, 2_000_000, 4_000_000]}),
    )
    r = row(t, "nm_homicide_count", "2020-06", "r12", "ye_jun19")
    assert (r["value"], r["comparison_value"], r["change_abs"], r["change_pct"], r["status"]) == (12, 12, 0, 0, "monitor")
    assert (r["period_start"], r["comparison_start"], r["comparison_end"]) == ("2019-07", "2018-07", "2019-06")
    # 34B only: 2,3,4 repeating = 36 a year; 34A (business robbery) never counts
    r = row(t, "nm_nc_robbery", "2020-12", "r12", "prev_r12")
    assert (r["value"], r["comparison_value"]) == (36, 36)
    # knife crime: 8N with knife counts, shoplifting (46) with a knife flag does not
    assert row(t, "nm_sv_knife_crime_count", "2019-12", "cal", "sply")["value"] == 36
    assert row(t, "nm_cyber_enabled_offences", "2019-12", "cal", "ye_jun19")["value"] == 24
    assert row(t, "nm_nc_total", "2019-12", "r12", "ye_jun19")["value"] == 36
    # rate: 12 homicides / 2,000,000 (June 2020 estimate) x 1e6 = 6, vs 12 / 1,000,000 (2019) = 12
    r = row(t, "nm_homicide_rate_per_million", "2020-06", "r12", "ye_jun19")
    assert (r["value"], r["comparison_value"], r["change_pct"]) == (6.0, 12.0, -50.0)
    # cal rows only at December
    assert sorted(t.filter(pl.col("period") == "cal")["period_end"].unique()) == ["2018-12", "2019-12", "2020-12"]
    assert row(t, "nm_homicide_count", "2018-12", "cal", "sply")["status"] == "incomplete"  # Jan-Jun 2018 not loaded


def test_a_missing_month_makes_both_sides_that_use_it_incomplete():
    spec = [(str(m), "39", 10, {}) for m in months_between("2018-07", "2020-12")]
    t = compute_measures(crimes(spec), loaded("2018-07", "2020-12", skip=("2019-03",)), None)
    r = row(t, "nm_nc_theft_from_person", "2019-12", "r12", "ye_jun19")
    assert r["status"] == "incomplete" and r["value"] is None and r["comparison_value"] is None
    assert r["change_abs"] is None and r["change_pct"] is None
    assert "1 month(s) not loaded" in r["note"]
    r = row(t, "nm_nc_theft_from_person", "2020-12", "r12", "prev_r12")
    assert (r["status"], r["value"], r["comparison_value"], r["change_pct"]) == ("incomplete", 120, None, None)
    r = row(t, "nm_nc_theft_from_person", "2020-06", "r12", "prev_r12")  # 2019-07..2020-06 vs 2018-07..2019-06 (gap)
    assert r["status"] == "incomplete" and r["value"] == 120
    # a rate without population is incomplete, not a division by nothing
    r = row(t, "nm_nc_rate_per_1000", "2020-12", "r12", "prev_r12")
    assert r["status"] == "incomplete" and r["value"] is None and "population" in r["note"]


def test_a_month_loaded_with_no_matching_crimes_counts_zero():
    spec = [(str(m), "39", 1, {}) for m in months_between("2018-07", "2019-06")] + [("2019-07", "8N", 1, {})]
    t = compute_measures(crimes(spec), loaded("2018-07", "2020-06"), None)
    r = row(t, "nm_nc_theft_from_person", "2020-06", "r12", "ye_jun19")
    assert (r["value"], r["comparison_value"], r["change_pct"], r["status"]) == (0, 12, -100.0, "monitor")
    r = row(t, "nm_homicide_count", "2020-06", "r12", "ye_jun19")
    assert (r["value"], r["change_pct"]) == (0, None) and "zero" in r["note"]


def test_the_april_2017_burglary_change_is_not_comparable():
    spec = []
    for m in months_between("2015-04", "2019-06"):
        code = "28A" if Month.parse(str(m)) < Month.parse("2017-04") else "28E"
        spec.append((str(m), code, 5, {}))
    t = compute_measures(crimes(spec), loaded("2015-04", "2019-06"), None)
    # before: legacy dwelling codes count under the legacy definition version
    r = row(t, "nm_nc_residential_burglary", "2017-03", "r12", "prev_r12")
    assert (r["value"], r["status"]) == (60, "monitor")
    assert "grp_burglary_residential@legacy-dwelling" in r["definition_version"]
    # a window straddling the change, or legacy vs current: not comparable, no change shown
    r = row(t, "nm_nc_residential_burglary", "2017-06", "r12", "prev_r12")
    assert r["status"] == "not_comparable" and r["change_pct"] is None and r["value"] == 60
    r = row(t, "nm_nc_residential_burglary", "2018-03", "r12", "prev_r12")
    assert r["status"] == "not_comparable" and "definitions differ" in r["note"]
    r = row(t, "nm_nc_residential_burglary", "2019-06", "r12", "prev_r12")
    assert (r["status"], r["change_pct"]) == ("monitor", 0.0)
    # a definition-independent measure is unaffected
    assert row(t, "nm_cyber_enabled_offences", "2017-06", "r12", "prev_r12")["status"] == "monitor"


def test_definitions_are_data():
    defs = load_definitions()
    ids = [m.id for m in defs.measures]
    for mid in (
        "nm_homicide_count",
        "nm_homicide_rate_per_million",
        "nm_nc_total",
        "nm_nc_residential_burglary",
        "nm_nc_robbery",
        "nm_nc_theft_from_person",
        "nm_nc_vehicle_offences",
        "nm_nc_rate_per_1000",
        "nm_sv_vwi_count",
        "nm_sv_knife_crime_count",
        "nm_cyber_enabled_offences",
    ):
        assert mid in ids
    assert defs.get("nm_nc_robbery").groups == ("grp_robbery_personal",)
    mem = defs.groups.membership
    assert mem.filter(pl.col("group") == "grp_robbery_personal")["code"].to_list() == ["34B"]
    assert sorted(mem.filter(pl.col("group") == "grp_homicide")["code"].to_list()) == ["1", "4.1", "4.10", "4.2"]


def test_bad_definition_files_are_rejected(tmp_path):
    from etl.measures.engine import DefinitionError

    p = tmp_path / "m.yaml"
    p.write_text("version: '9'\nmeasures:\n  - {id: x, unit: count, count: {groups: [grp_nope]}}\n")
    with pytest.raises(DefinitionError, match="unknown offence group"):
        load_definitions(p)
    p.write_text("version: '9'\nmeasures:\n  - {id: x, unit: per_1000, rate: {numerator: y, per: 1000}}\n")
    with pytest.raises(DefinitionError, match="unknown measure"):
        load_definitions(p)
