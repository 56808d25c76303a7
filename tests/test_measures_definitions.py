"""The definition format (etl.measures.definitions): measures.yaml and the data.police.uk proxies read
into validated pydantic models. Every rule has a file that breaks it, and the error names the file and
the measure; the shorthands of the file are read as the engine needs them."""

import pytest
from pydantic import ValidationError

from etl.measures import DefinitionError, Filter, Measure, load_definitions, skipped_proxies
from etl.measures.definitions import Target


def write(tmp_path, text, name="measures.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def one(text: str) -> str:
    return "version: '9'\nmeasures:\n" + "".join(f"  - {line}\n" for line in text.splitlines())


BROKEN = {
    "no-kind": (one("{id: x, unit: count}"), "measure x needs exactly one of count, sum, share, mean, median, rate, external, no_data (found none)"),
    "two-kinds": (
        one("{id: x, count: {}, sum: {column: a}}"),
        "measure x needs exactly one of count, sum, share, mean, median, rate, external, no_data (found ['count', 'sum'])",
    ),
    "missing-id": (one("{unit: count, count: {}}"), "measure id missing or repeated (None)"),
    "repeated-id": (one("{id: x, count: {}}\n{id: x, count: {}}"), "measure id missing or repeated (x)"),
    "range": (one("{id: x, count: {range: {victim_age: {low: 3}}}}"), "measure x: range of victim_age needs min and/or max"),
    "range-of-a-share-numerator": (one("{id: x, unit: pct, share: {numerator: {range: {a: 3}}}}"), "measure x: range of a needs min and/or max"),
    "target-rule": (
        one("{id: x, count: {}, target: {rule: maximise}}"),
        "measure x: target rule 'maximise' is not one of reduce_by, gt, ge, lt, le, sla, count_target, increase, decrease, monitor",
    ),
    "target-without-rule": (one("{id: x, count: {}, target: {value: 3}}"), "measure x: target rule 'None' is not one of reduce_by"),
    "target-value": (one("{id: x, count: {}, target: {rule: sla}}"), "measure x: target rule sla needs a value"),
    "derive": (
        one("{id: x, unit: seconds, mean: {column: a, derive: {a: {seconds_between: [b]}}}}"),
        "measure x: derive a needs seconds_between or days_between: [from, to]",
    ),
    "rate-unit": (one("{id: y, count: {}}\n{id: x, unit: per_100k, rate: {numerator: y, per: 1000}}"), "measure x: per 1000 needs unit per_1000"),
    "rate-numerator": (one("{id: x, unit: per_1000, rate: {numerator: y, per: 1000}}"), "rate x divides unknown measure y"),
    "sum-column": (one("{id: x, sum: {extract: hospital_admissions}}"), "measure x: a sum needs a column"),
    "median-column": (one("{id: x, median: {}}"), "measure x: a median needs a column"),
    "share-unit": (one("{id: x, unit: count, share: {denominator: {}, numerator: {}}}"), "measure x: a share is in unit pct"),
    "no-data-reason": (one("{id: x, no_data: true}"), "measure x: no_data needs a reason"),
    "snapshot": (
        one("{id: x, snapshot: true, count: {extract: workforce}, periods: {r12: [prev_r12]}}"),
        "measure x: a snapshot cannot be summed over months; use period month only",
    ),
    "target-comparison": (
        one("{id: x, count: {}, periods: {r12: [target]}, target: {rule: increase, comparison: sply}}"),
        "measure x: comparison target needs a numeric target",
    ),
    "unknown-group": (one("{id: x, count: {groups: [grp_nope]}}"), "measure x uses unknown offence group(s) ['grp_nope']"),
    "unknown-period": (one("{id: x, count: {}, periods: {r13: [sply]}}"), "measure x: unknown period(s) ['r13'] (known: month, r12, fytd, cal, qtr)"),
    "unknown-comparison": (
        one("{id: x, count: {}, periods: {r12: [sply2]}}"),
        "measure x: unknown comparison 'sply2' (known: sply, prev_r12, sp_2019_20, ye_jun19, target)",
    ),
    "flag-not-boolean": (one("{id: x, count: {flags: {knife_sharp: perhaps}}}"), "measure x: count.flags.knife_sharp: Input should be a valid boolean"),
    "target-a-number": (one("{id: x, count: {}, target: 5}"), "measure x: target: Input should be a valid dictionary"),
    "entry-not-a-mapping": (one("x"), "measure number 1: Input should be a valid dictionary"),
    "no-version": ("measures:\n  - {id: x, count: {}}\n", "version: Field required"),
    "not-a-mapping": ("- a\n- b\n", "the file: Input should be a valid dictionary"),
}


@pytest.mark.parametrize("text,message", BROKEN.values(), ids=BROKEN.keys())
def test_every_broken_rule_is_one_line_naming_the_file_and_the_measure(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(p)
    line = str(caught.value)
    assert line.startswith(f"{p}: {message}"), line
    assert "\n" not in line and "perhaps" not in line  # one line; never the value itself
    assert caught.value.exit_code == 2


def test_a_proxy_id_that_repeats_a_measure_id_names_the_mapping(tmp_path):
    write(tmp_path, one("{id: pu_x, count: {}}"))
    mapping = write(tmp_path, "version: '1'\nproxy_measures:\n  - {id: pu_x, crime_types: [Burglary]}\n", "police_uk_mapping.yaml")
    with pytest.raises(DefinitionError, match=f"^{mapping}: proxy id pu_x repeats a measure id$"):
        load_definitions(tmp_path / "measures.yaml")


def test_shorthands_are_read_as_the_engine_needs_them(tmp_path):
    p = write(
        tmp_path,
        """version: 3
defaults: {family: fam, periods: {month: [sply]}}
measures:
  - {id: a, count: {where: {hocr_code: 39, channel: ["999", 101]}, flags: {online: true}}, note: "  two\\n  lines ", target: "free text"}
  - {id: b, unit: pct, share: {denominator: {status: null}, numerator: {where: {status: [cancelled]}}}, family: own, periods: {r12: [prev_r12]}}
  - {id: c, unit: pct, share: {extract: calls, derive: {s: {seconds_between: [p, q]}}, denominator: {}, numerator: {range: {s: {max: 10}}}}}
  - {id: d, count: {}, periods: {fytd: [sply, target]}, target: {rule: gt, value: 6}}
  - {id: e, count: {}, target: {rule: reduce_by, value: 2.5, comparison: sply}}
  - {id: f, unit: per_1000, rate: {numerator: a, per: 1000}}
  - {id: g, no_data: {reason: not yet}}
  - {id: h, external: {}}
""",
    )
    defs = load_definitions(p)
    assert defs.version == "3" and [m.id for m in defs.measures] == list("abcdefgh")
    a, b, c, d, e, f, g, h = defs.measures
    assert (a.family, a.name, a.unit, a.periods, a.kind, a.extract) == ("fam", "a", "count", {"month": ("sply",)}, "count", "recorded_crime")
    assert a.filter == Filter(where={"hocr_code": ("39",), "channel": ("999", "101")}, flags={"online": True}, status="recorded")
    assert (a.note, a.target) == ("two lines", Target(rule="monitor", text="free text"))
    # share: the denominator is the filter (status null: every status), the numerator has no default status
    assert (b.family, b.filter, b.numerator_filter) == ("own", Filter(status=None), Filter(where={"status": ("cancelled",)}))
    assert b.needs_outcome is False and b.periods == {"r12": ("prev_r12",)}
    # another extract: no default status; derived durations
    assert (c.extract, c.filter.status, c.derive, c.numerator_filter.ranges) == ("calls", None, {"s": ("p", "q", "seconds_between")}, {"s": (None, 10)})
    assert d.target == Target(rule="gt", value=6.0, text="> 6")
    assert e.target == Target(rule="reduce_by", value=2.5, comparison="sply", text="reduce by 2.5% vs sply")
    assert (f.kind, f.numerator, f.per, f.is_rate, defs.source(f).id, defs.source(a).id) == ("rate", "a", 1000, True, "a", "a")
    assert (g.kind, g.reason, h.kind) == ("no_data", "not yet", "external")
    assert defs.label == f"measures 3; offence_groups {defs.groups.version}" and defs.mapping_version is None


def test_proxies_of_the_mapping_become_measures_and_the_rest_are_listed_as_skipped(tmp_path):
    write(tmp_path, one("{id: nm_x, count: {}}"))
    write(
        tmp_path,
        """version: "1.2"
stop_search_outcomes:
  - {outcome: Arrest, positive: true}
  - {outcome: A no further action disposal, positive: false}
  - {outcome: Community resolution, positive: true}
proxy_measures:
  - {id: pu_a, proxy_for: nm_x, crime_types: [Burglary, Robbery], differs: "  over\\n counts ", published_offence_group: Burglary}
  - {id: pu_b, source: police_uk_outcomes, filter: {column: outcome_category, equals: 7}}
  - {id: pu_c, rate: {numerator: pu_a, per: 100000}}
  - {id: pu_d, source: police_uk_stop_and_search, filter: {column: outcome, positive_from: stop_search_outcomes}, rate: {numerator: "positive searches"}}
  - {id: pu_e, rate: {numerator: "something", denominator: "else"}}
""",
        "police_uk_mapping.yaml",
    )
    defs = load_definitions(tmp_path / "measures.yaml")
    assert [m.id for m in defs.measures] == ["nm_x", "pu_a", "pu_b", "pu_c", "pu_d"] and defs.mapping_version == "1.2"
    _, a, b, c, d = defs.measures
    assert (a.extract, a.unit, a.kind, a.filter, a.note, a.proxy_for, a.published_group) == (
        "police_uk_street",
        "count",
        "count",
        Filter(where={"crime_type": ("Burglary", "Robbery")}),
        "over counts",
        "nm_x",
        "Burglary",
    )
    assert (b.extract, b.filter) == ("police_uk_outcomes", Filter(where={"outcome_category": ("7",)}))
    assert (c.kind, c.unit, c.per, c.numerator, defs.label_for(c)) == ("rate", "per_100k", 100000, "pu_a", "police_uk_mapping 1.2")
    assert (d.kind, d.unit, d.filter, d.numerator_filter) == ("share", "pct", Filter(), Filter(where={"outcome": ("Arrest", "Community resolution")}))
    assert d.basis == "searches with a positive outcome / all searches in the window"
    assert defs.label_for(defs.measures[0]).startswith("measures 9; offence_groups")


def test_the_shipped_definitions_skip_no_declared_proxy_silently():
    defs = load_definitions()
    assert len({m.id for m in defs.measures}) == len(defs.measures)
    assert set(skipped_proxies()).isdisjoint(m.id for m in defs.measures)


def test_a_measure_built_in_code_obeys_the_same_rules():
    with pytest.raises(ValidationError, match="measure x: a share is in unit pct"):
        Measure(id="x", name="x", family="f", unit="count", periods={}, kind="share")
    with pytest.raises(ValidationError, match="measure x: per 1000 needs unit per_1000"):
        Measure(id="x", name="x", family="f", unit="count", periods={}, kind="rate", numerator="y", per=1000)
    m = Measure(id="x", name="x", family="f", unit="count", periods={"r12": ("prev_r12",)})
    with pytest.raises(ValidationError):  # frozen: a definition does not change once read
        m.unit = "pct"  # type: ignore[misc]
