"""The scorecard workbook (scorecard.xlsx): a sheet per objective with the page's figures, an About sheet, formatting, safety.

The workbook is read back with openpyxl and compared with the HTML scorecard written by the same
report, so the page and the workbook cannot drift apart. The measures table is the synthetic one of
tests/test_reports.py (its expected texts are stated there).
"""

from __future__ import annotations

import html
import re
import zipfile
from pathlib import Path

import polars as pl
import pytest
from openpyxl import Workbook, load_workbook

from etl.reporting.excel import CHANGE_PCT_FORMAT, LINE_HEIGHT, put_text, sheet_names, status_colours, text_lines
from etl.reporting.exports import classified_columns
from etl.reporting.formatting import ROUNDING_STATEMENT
from etl.reporting.layout import NO_DATA_KINDS, load_scorecard_layout
from etl.reporting.reports import write_report
from etl.reporting.scorecard import LEGEND_STATUSES
from tests.test_reports import FORCE, MONTH, measures_frame, spc_frame

# columns of an objective sheet (1-based): see etl.reporting.excel
SUB, KPI, FIG, MEASURE, CUR, CUR_TEXT, PERIOD = 1, 2, 3, 4, 5, 6, 7
SLOT, SLOT_WIDTH = 8, 5  # comparison i: label, value, change, % change, as shown at 8 + 5 (i - 1)
SHIPPED_SHEETS = [
    "About",
    "Rebuilding community policing",
    "Preventing and reducing crime",
    "Increased confidence",
    "Supporting the workforce",
    "An efficient and effective",
    "Supporting victims",
    "Reducing violence",
    "Safer travel",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report(measures_frame(), MONTH, tmp_path_factory.mktemp("xlsx") / "out", spc=spc_frame(), force_id=FORCE)


@pytest.fixture(scope="module")
def wb(report):
    return load_workbook(report.workbook)


def headings(ws) -> list[str]:
    return [c.value for c in ws[2]]


def kpi_blocks(ws) -> list[list[tuple]]:
    """The sheet's lines (rows of cell objects) grouped by KPI (the KPI cell is merged over its lines)."""
    blocks: list[list[tuple]] = []
    for row in ws.iter_rows(min_row=3):
        if row[KPI - 1].value is not None:
            blocks.append([])
        blocks[-1].append(row)
    return blocks


def find_line(wb, measure_id: str) -> tuple:
    for ws in wb.worksheets[1:]:
        for row in ws.iter_rows(min_row=3):
            if row[MEASURE - 1].value == measure_id:
                return row
    raise AssertionError(f"no line for {measure_id}")


def slot(row: tuple, i: int) -> dict:
    base = SLOT + (i - 1) * SLOT_WIDTH - 1
    return dict(zip(("label", "value", "change", "pct", "text"), row[base : base + SLOT_WIDTH], strict=True))


def _u(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def html_tables(page: str) -> list[tuple[str, list[str]]]:
    """(objective title, its <tr> rows) per table of the page."""
    out = []
    for sec in page.split('<section class="objective"')[1:]:
        title = _u(re.search(r"<h2[^>]*>(.*?)</h2>", sec).group(1))
        body = sec.split("<tbody>", 1)[1]
        out.append((title, re.findall(r"<tr[ >].*?</tr>", body, flags=re.S)))
    return out


# --------------------------------------------------------------------------------------------------
# sheets


def test_report_writes_the_workbook_and_the_index_links_it(report):
    assert report.workbook.name == "scorecard.xlsx" and report.workbook.parent == report.index.parent
    assert zipfile.is_zipfile(report.workbook)
    assert '<a href="scorecard.xlsx">scorecard.xlsx</a>' in report.index.read_text(encoding="utf-8")


def test_an_about_sheet_then_one_sheet_per_objective_named_from_its_title(wb):
    layout = load_scorecard_layout()
    assert wb.sheetnames == SHIPPED_SHEETS
    for ws, objective in zip(wb.worksheets[1:], layout.objectives, strict=True):
        assert ws["A1"].value == objective.title  # the full title, the name may be cut
        assert len(ws.title) <= 31 and not re.search(r"[\[\]:*?/\\]", ws.title)
        assert [c.value for c in ws[2]][:7] == ["Sub-objective", "KPI", "Figure", "Measure", "Current", "Current (as shown)", "Period"]
        assert headings(ws)[-2:] == ["Target", "Status"]
        assert [block[0][KPI - 1].value for block in kpi_blocks(ws)] == [k.kpi for k in objective.kpis]


def test_sheet_names_are_cut_cleaned_and_unique():
    titles = [
        "Roads: speed/drink [A*B]?",
        "Increased confidence in the police",
        "Increased confidence in the police service",
        "history",
        "About",
        "'Quoted'",
        "[]:*?",
        "x" * 40,
        "X" * 40,
    ]
    assert sheet_names(titles) == [
        "Roads speed drink A B",
        "Increased confidence",
        "Increased confidence (2)",
        "history (2)",
        "About (2)",
        "Quoted",
        "Objective 7",
        "x" * 31,
        "X" * 27 + " (2)",
    ]
    wb = Workbook()
    for name in sheet_names(titles):
        wb.create_sheet(name)  # openpyxl accepts every one (it rejects forbidden characters)


# --------------------------------------------------------------------------------------------------
# the figures: as the page shows them


def test_every_kpi_row_and_figure_of_the_page_is_in_the_workbook_with_the_same_text(report, wb):
    tables = html_tables(report.scorecard.read_text(encoding="utf-8"))
    assert [t for t, _ in tables] == [ws["A1"].value for ws in wb.worksheets[1:]]
    n_kpis = n_values = n_changes = 0
    for (_, trs), ws in zip(tables, wb.worksheets[1:], strict=True):
        blocks = kpi_blocks(ws)
        assert len(blocks) == len(trs)
        status_col = len(headings(ws))
        for tr, lines in zip(trs, blocks, strict=True):
            n_kpis += 1
            kpi = re.search(r'<td class="kpi">(.*?)(?:<span class="ids">(.*?)</span>)?</td>', tr, flags=re.S)
            assert lines[0][KPI - 1].value == _u(kpi.group(1))
            cur_texts = [line[CUR_TEXT - 1].value for line in lines]
            if kpi.group(2):  # computed: a line per figure
                assert " ".join(line[MEASURE - 1].value for line in lines) == kpi.group(2)
                cur = re.search(r'<td class="cur">(.*?)</td>', tr, flags=re.S).group(1)
                values = [_u(v) for v in re.findall(r"<strong>(.*?)</strong>", cur)]
                shown = [line[CUR_TEXT - 1].value for line in lines if line[CUR - 1].value is not None]
                assert shown == values  # a number cell exactly where the page shows a value, with its text
                n_values += len(values)
                for why in re.findall(r'<span class="reason">(.*?)</span>', cur):
                    assert f"not available ({_u(why)})" in cur_texts
                texts = [c.value for line in lines for c in line[SLOT - 1 : status_col - 2] if isinstance(c.value, str)]
                for label in re.findall(r'<span class="plabel">\[(.*?)\]</span>', tr):
                    assert _u(label) in texts + [line[PERIOD - 1].value for line in lines]
                for change in re.findall(r'<span class="chg">\((.*?)\)</span>', tr):
                    assert any(f"(change {_u(change)})" in t for t in texts), change
                    n_changes += 1
            else:  # no figures: the reason, as the page's cell spanning Current and Historical
                assert len(lines) == 1 and cur_texts == [_u(re.search(r'<td class="cur" colspan="2">(.*?)</td>', tr).group(1))]
            target = _u(re.search(r'<td class="tgt">(.*?)</td>', tr, flags=re.S).group(1))
            assert (lines[0][status_col - 2].value or "") == target
            st = re.search(r'<td class="st">(.*)</td></tr>', tr, flags=re.S).group(1)
            badges = re.findall(r'<span class="badge b-(\w+)">(?:<span class="fl">.*?:</span> )?([^<]*)</span>', st)
            cells = [line[status_col - 1] for line in lines if line[status_col - 1].value is not None]
            assert [c.value for c in cells] == [_u(words) for _, words in badges]
            assert [c.fill.fgColor.rgb[-6:] for c in cells] == [status_colours()[status][0] for status, _ in badges]
    assert n_kpis == len(load_scorecard_layout().kpis) == 73
    assert (n_values, n_changes) == (7, 7)  # DA, Rape, burglary, robbery, theft from the person, homicide, 999 mean; changes: all but theft, homicide twice


def test_number_cells_hold_the_unrounded_value_formatted_to_the_displayed_rounding(wb):
    da = find_line(wb, "pk_positive_outcome_rate_da")
    assert da[CUR - 1].value == 4.3499 and da[CUR - 1].number_format == '0.0"%"' and da[CUR_TEXT - 1].value == "4.3%"
    assert da[PERIOD - 1].value == "YTD Jan 22" and da[CUR - 1].data_type == "n"
    c = slot(da, 1)
    assert c["label"].value == "Same period 2019/20" and c["value"].value == 5 and c["value"].number_format == '0.0"%"'
    assert c["change"].value == -0.6501 and c["change"].number_format == '+0.0" pts";-0.0" pts";0.0" pts"'
    assert c["pct"].value is None and c["text"].value == "5.0% (change -0.7 pts)"  # no percent change of a percentage
    burg = find_line(wb, "pk_nc_residential_burglary")
    assert burg[CUR - 1].value == 975 and burg[CUR - 1].number_format == "#,##0"
    c = slot(burg, 1)
    assert c["change"].value == -25 and c["change"].number_format == "+#,##0;-#,##0;0"
    assert c["pct"].value == -2.5 and c["pct"].number_format == CHANGE_PCT_FORMAT == '+0"%";-0"%";0"%"'
    assert c["text"].value == "1,000 (change -25, -3%)"
    rob = find_line(wb, "pk_nc_robbery_personal")
    assert rob[CUR_TEXT - 1].value == "1,025" and slot(rob, 1)["pct"].value == 2.5
    calls = find_line(wb, "pk_999_mean_answer_s")  # a time: seconds as a number, the page's h/m/s beside it
    assert calls[CUR - 1].value == 524.4 and calls[CUR - 1].number_format == '#,##0" s"' and calls[CUR_TEXT - 1].value == "8m 44s"
    assert slot(calls, 1)["change"].value == 299.4 and slot(calls, 1)["text"].value == "3m 45s (change +4m 59s, +133%)"
    hom = find_line(wb, "pk_homicide_count")
    assert [slot(hom, i)["label"].value for i in (1, 2)] == ["Same period 2020/21", "Same period 2019/20"]
    assert [slot(hom, i)["pct"].value for i in (1, 2)] == [36.3636, 60.7143]
    assert [slot(hom, i)["text"].value for i in (1, 2)] == ["33 (change +12, +36%)", "28 (change +17, +61%)"]


def test_incomplete_and_not_comparable_figures_give_no_number_where_the_page_gives_none(wb):
    veh = find_line(wb, "pk_nc_vehicle_theft")
    assert veh[CUR - 1].value is None
    assert veh[CUR_TEXT - 1].value == "not available (current window 2021-04..2022-01 has 1 month(s) not loaded)"
    c = slot(veh, 1)
    assert c["value"].value == 800 and c["change"].value is None and c["pct"].value is None
    assert c["text"].value.startswith("800 (incomplete, no change given: ")
    tfp = slot(find_line(wb, "pk_nc_theft_from_person"), 1)
    assert tfp["value"].value == 2537 and tfp["change"].value is None
    assert tfp["text"].value.startswith("2,537 (not comparable, no change given: definitions differ")
    absent = find_line(wb, "pk_positive_outcome_rate_sh")
    assert absent[CUR - 1].value is None and absent[PERIOD - 1].value is None
    assert absent[CUR_TEXT - 1].value == "not available (not computed: needs the recorded_crime and crime_outcomes extracts)"


def test_statuses_are_coloured_like_the_page_and_shared_ones_span_the_kpi(wb):
    colours = status_colours()
    assert set(LEGEND_STATUSES) | set(NO_DATA_KINDS) <= set(colours)
    assert colours["met"] == ("DFF3E4", "145A2A") and colours["not_met"] == ("FDE2E1", "8A1C14")
    ws = wb["Preventing and reducing crime"]
    status_col = len(headings(ws))
    da, rape = find_line(wb, "pk_positive_outcome_rate_da"), find_line(wb, "pk_positive_outcome_rate_rape")
    assert (da[status_col - 1].value, rape[status_col - 1].value) == ("not met", "met")  # they differ: a status per figure
    assert rape[status_col - 1].font.color.rgb[-6:] == "145A2A"
    burg = find_line(wb, "pk_nc_residential_burglary")
    merged = {str(r) for r in ws.merged_cells.ranges}
    top = burg[0].row
    nc_lines = next(b for b in kpi_blocks(ws) if b[0][0].row == top)
    # neighbourhood crime: four figures, statuses monitor/monitor/incomplete/not comparable: one each
    assert [line[status_col - 1].value for line in nc_lines] == ["monitor", "monitor", "incomplete", "not comparable"]
    hom_ws = wb["Reducing violence"]
    hom = find_line(wb, "pk_homicide_count")
    assert hom[len(headings(hom_ws)) - 1].value == "monitor"
    # a multi-figure KPI whose figures agree (all not available) has one status spanning its lines
    uplift = next(b for b in kpi_blocks(wb["Rebuilding community policing"]) if len(b) == 3)
    assert [line[13].value for line in uplift] == ["not available", None, None]
    r = uplift[0][0].row
    assert f"N{r}:N{r + 2}" in {str(x) for x in wb["Rebuilding community policing"].merged_cells.ranges}
    assert f"B{r}:B{r + 2}" in {str(x) for x in wb["Rebuilding community policing"].merged_cells.ranges}
    assert f"B{top}:B{top + 3}" in merged


def test_formatting_header_bold_frozen_widths_and_wrapped_kpi_wording(wb):
    for ws in wb.worksheets[1:]:
        assert ws.freeze_panes == "C3"
        assert all(c.font.b for c in ws[2]) and ws["A1"].font.b
        assert ws.column_dimensions["B"].width == 48 and ws.column_dimensions["A"].width == 24
        assert all(block[0][KPI - 1].alignment.wrap_text for block in kpi_blocks(ws))
        assert ws.print_title_rows == "$2:$2"
    assert wb["About"].column_dimensions["B"].width == 90


def test_about_sheet_gives_force_period_provenance_and_rounding(report, wb):
    about = {row[0].value: row[1].value for row in wb["About"].iter_rows(min_row=3) if row[0].value}
    assert wb["About"]["A1"].value == "Police and Crime Plan KPI scorecard: test-force, Jan 22"
    assert about["Force"] == "test-force" and about["Report month"] == "2022-01 (Jan 22)"
    assert about["Provenance"] == "Figures from the measures table: run run-test-1; definitions measures 1.0.0."
    page = report.scorecard.read_text(encoding="utf-8")
    assert html.escape(about["Provenance"]) in page  # as the page's header gives it
    assert about["Rounding"].startswith(ROUNDING_STATEMENT)
    assert about["Layout"].startswith("scorecard.yaml version 1.0.0 (002 Appendix A")
    assert about["KPI rows"].startswith("73 KPI rows: ")
    sheets = [(r[1].value, r[2].value) for r in wb["About"].iter_rows(min_row=3) if r[2].value]
    layout = load_scorecard_layout()
    assert sheets == list(zip(SHIPPED_SHEETS[1:], [o.title for o in layout.objectives], strict=True))
    legend = {r[1].value: r[1].fill.fgColor.rgb[-6:] for r in wb["About"].iter_rows(min_row=3) if r[1].value in ("met", "not met", "in development")}
    assert legend == {"met": "DFF3E4", "not met": "FDE2E1", "in development": "F1F2F4"}


# --------------------------------------------------------------------------------------------------
# safety


def test_openpyxl_writes_a_text_starting_with_equals_as_a_formula_unless_put_text_is_used(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws["A1"] = "=1+1"
    assert ws["A1"].data_type == "f"  # the behaviour guarded against
    for i, text in enumerate(['=HYPERLINK("http://evil.example","x")', "+1+1", "@SUM(A1)", "-2+3", "plain", "\tx"], start=2):
        put_text(ws.cell(i, 1), text)
    put_text(ws.cell(8, 1), "bell\x07 and nul\x00")  # characters XML cannot hold are dropped, not an error
    wb.save(tmp_path / "t.xlsx")
    back = load_workbook(tmp_path / "t.xlsx").active
    assert back["A1"].data_type == "f"
    assert [back.cell(i, 1).value for i in range(2, 8)] == ['=HYPERLINK("http://evil.example","x")', "+1+1", "@SUM(A1)", "-2+3", "plain", "\tx"]
    assert all(back.cell(i, 1).data_type == "s" for i in range(2, 8))
    assert [back.cell(i, 1).quotePrefix for i in range(2, 8)] == [True, True, True, True, False, True]
    assert back["A8"].value == "bell and nul"


def _layout_with(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "layout.yaml"
    p.write_text(
        f"""version: "9"
source: "@source"
objectives:
  - title: '{text} objective'
    sub_objectives:
      - title: '{text} sub'
        kpis:
          - id: k1
            kpi: '{text} kpi'
            figures:
              - {{measure: pk_homicide_count, label: '{text} label'}}
            current: fytd
            comparisons: [sply]
            target: '{text} target'
          - id: k2
            kpi: "+kpi"
            availability: in_development
            reason: '{text} reason'
""",
        encoding="utf-8",
    )
    return p


def test_no_text_of_the_layout_or_the_measures_table_becomes_a_formula(tmp_path):
    planted = '=HYPERLINK("http://evil.example/?x=1","click")'
    measures = measures_frame().with_columns(
        pl.when(pl.col("measure_id") == "pk_homicide_count").then(pl.lit(planted)).otherwise(pl.col("target")).alias("target")
    )
    paths = write_report(measures, MONTH, tmp_path / "out", force_id=FORCE, layout=_layout_with(tmp_path, planted))
    with zipfile.ZipFile(paths.workbook) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert "<f>" not in z.read(name).decode("utf-8") and "<f " not in z.read(name).decode("utf-8")
    wb = load_workbook(paths.workbook)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert all(c.data_type != "f" for c in cells)
    starts = [c for c in cells if isinstance(c.value, str) and c.value.startswith(("=", "+", "@"))]
    assert {c.value for c in starts} >= {f"{planted} objective", f"{planted} sub", f"{planted} kpi", f"{planted} label", planted, "+kpi", f"{planted} reason"}
    assert all(c.data_type == "s" and c.quotePrefix for c in starts)


def test_no_classified_column_reaches_the_workbook(tmp_path):
    assert {"crime_ref", "victim_age"} <= classified_columns()
    measures = measures_frame().with_columns(pl.lit("PLANTED-SECRET-1").alias("crime_ref"), pl.lit("PLANTED-SECRET-2").alias("victim_age"))
    paths = write_report(measures, MONTH, tmp_path / "out", force_id=FORCE)
    wb = load_workbook(paths.workbook)
    values = [str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert values and not any("PLANTED-SECRET" in v for v in values)
    assert not classified_columns() & {h for ws in wb.worksheets[1:] for h in headings(ws)}


def test_wrapped_text_gets_the_row_height_it_needs_and_sheets_print_one_page_wide(wb):
    assert text_lines("one two three four five six seven", 10) == 4  # 10 characters a line at width 10: words kept whole
    assert text_lines("x" * 25, 10) == 3 and text_lines("a\nb", 40) == 2 and text_lines("", 10) == 1
    about = wb["About"]
    assert about.cell(1, 1).alignment.wrap_text is not True  # the title runs on to the right
    rounding = next(r for r in range(1, about.max_row + 1) if about.cell(r, 1).value == "Rounding")
    expected = text_lines(about.cell(rounding, 2).value, about.column_dimensions["B"].width)
    assert expected >= 2 and about.row_dimensions[rounding].height == expected * LINE_HEIGHT
    for ws in wb.worksheets:
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0, ws.title
        for r in range(3, ws.max_row + 1):  # every row holds its longest wrapped, unmerged cell
            merged = {(c.min_row, c.min_col) for c in ws.merged_cells.ranges if c.max_row > c.min_row}
            cells = [c for c in ws[r] if isinstance(c.value, str) and c.alignment.wrap_text and (c.row, c.column) not in merged]
            need = max([text_lines(c.value, ws.column_dimensions[c.column_letter].width) for c in cells] + [1])
            assert (ws.row_dimensions[r].height or LINE_HEIGHT) >= need * LINE_HEIGHT, (ws.title, r)
