"""The common alternative: pandas reads the CSV, Great Expectations (GX Core 1.x, pandas data source)
validates it row by row against one suite built from the SAME rules as contracts/recorded_crime.yaml,
the failing rows are found from the COMPLETE result (unexpected_index_column_names=["row_number"]) and
quarantined, and the clean rows are written to zstd Parquet - one file per force-month, like the project.

The suite is generated from the project's parsed contract (`etl.core.contracts.load_contract`) so it cannot
drift from it:

* required -> expect_column_values_to_not_be_null            (12 columns)
* unique -> expect_column_values_to_be_unique                (crime_ref; GX flags every copy, the
  project keeps the first)
* date -> expect_column_values_to_match_strftime_format %Y-%m-%d on the text, as read
* monthColumn -> expect_column_values_to_be_between the month's first and last day (parameters per file)
* integer -> expect_column_values_to_match_regex ^[+-]?\\d+$; minimum/maximum -> to_be_between on the
  number (pandas `to_numeric(errors="coerce")`)
* boolean Y/N, enum (status), code list (hocr_code, contracts/reference/hocr_offence_codes.yaml),
  reference list (npu in reference/areas.csv), forceColumn (= the extract's force) -> to_be_in_set
* pattern (lsoa_code, force_id) -> expect_column_values_to_match_regex
* quality rule not_after (offence_date <= recorded_date) -> expect_column_pair_values_a_to_be_greater_than_b

Not expressed: the hocr code's validity dates on recorded_date (GX has no per-row date-dependent set);
the codes the generator uses are all valid from April 2017, so no row depends on it.
Reading is pandas' default C engine with every column as text (dtype=str), like the project.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

ROW = "row_number"


def _month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    y, m = int(month[:4]), int(month[5:7])
    first = dt.datetime(y, m, 1)
    nxt = dt.datetime(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def build_suite():
    """(expectations, helper columns) from the recorded_crime contract."""
    import great_expectations.expectations as gxe

    from etl.core.contracts import load_contract
    from etl.core.reference import contracts_dir, load_code_list

    contract = load_contract("recorded_crime")
    ex = []
    for c in contract.columns:
        n = c.name
        if c.required:
            ex.append(gxe.ExpectColumnValuesToNotBeNull(column=n))
        if c.unique:
            ex.append(gxe.ExpectColumnValuesToBeUnique(column=n))
        if c.logical_type == "date":
            ex.append(gxe.ExpectColumnValuesToMatchStrftimeFormat(column=n, strftime_format="%Y-%m-%d"))
        if c.logical_type == "integer":
            ex.append(gxe.ExpectColumnValuesToMatchRegex(column=n, regex=r"^[+-]?\d+$"))
        if c.logical_type == "boolean":
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=n, value_set=[c.true_value, c.false_value]))
        if c.minimum is not None or c.maximum is not None:
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=f"{n}__number", min_value=c.minimum, max_value=c.maximum))
        if c.pattern:
            ex.append(gxe.ExpectColumnValuesToMatchRegex(column=n, regex=c.pattern))
        if c.enum:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=n, value_set=list(c.enum)))
        if c.code_list:
            ref = c.code_list.get("reference")
            codes = load_code_list(contracts_dir() / ref) if ref else load_code_list()
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=n, value_set=list(codes.codes)))
        if c.reference_list:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=n, value_set={"$PARAMETER": "areas"}))
        if contract.force_column == n:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=n, value_set={"$PARAMETER": "force"}))
        if contract.month_column == n:
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=f"{n}__date", min_value={"$PARAMETER": "month_first"}, max_value={"$PARAMETER": "month_last"}))
    for r in contract.rules:
        if r.kind == "not_after":
            ex.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=f"{r.args['other']}__date", column_B=f"{r.args['column']}__date", or_equal=True, ignore_row_if="either_value_is_missing"
                )
            )
    dates = sorted({c.name for c in contract.columns if c.logical_type == "date"})
    numbers = sorted({c.name for c in contract.columns if c.minimum is not None or c.maximum is not None})
    return ex, dates, numbers


class Alternative:
    def __init__(self):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        expectations, self.date_cols, self.number_cols = build_suite()
        suite = self.ctx.suites.add(gx.ExpectationSuite(name="recorded_crime_contract", expectations=expectations))
        self.n_expectations = len(suite.expectations)
        batch = self.ctx.data_sources.add_pandas("extracts").add_dataframe_asset("recorded_crime").add_batch_definition_whole_dataframe("file")
        vd = self.ctx.validation_definitions.add(gx.ValidationDefinition(name="recorded_crime_file", data=batch, suite=suite))
        self.checkpoint = self.ctx.checkpoints.add(
            gx.Checkpoint(
                name="recorded_crime_file",
                validation_definitions=[vd],
                actions=[],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
            )
        )
        self._areas: dict[str, list[str]] = {}

    def areas(self, source: str, force_id: str) -> list[str]:
        if source not in self._areas:
            import pandas as pd

            a = pd.read_csv(Path(source) / "reference" / "areas.csv", dtype=str)
            self._areas[source] = sorted(a.loc[a["force_id"] == force_id, "npu"].dropna().unique().tolist())
        return self._areas[source]

    def process(self, f: dict, out_dir: Path, timings: dict[str, float]) -> dict:
        import numpy as np
        import pandas as pd

        def lap(name: str, t0: float) -> float:
            t1 = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + t1 - t0
            return t1

        t = time.perf_counter()
        df = pd.read_csv(f["path"], dtype=str, keep_default_na=False, na_values=[""])
        t = lap("read", t)
        df.insert(0, ROW, np.arange(2, len(df) + 2))  # the file's line number (header = 1), as the project's row_number
        for c in self.date_cols:
            df[f"{c}__date"] = pd.to_datetime(df[c], format="%Y-%m-%d", errors="coerce")
        for c in self.number_cols:
            df[f"{c}__number"] = pd.to_numeric(df[c], errors="coerce")
        first, last = _month_bounds(f["month"])
        params = {"month_first": first, "month_last": last, "force": [f["force_id"]], "areas": self.areas(f["source"], f["force_id"])}
        t = lap("prepare", t)
        result = self.checkpoint.run(batch_parameters={"dataframe": df}, expectation_parameters=params)
        t = lap("validate", t)
        failed: dict[int, list[str]] = {}
        errors = 0
        for vr in result.run_results.values():
            for r in vr.results:
                if r.exception_info and r.exception_info.get("raised_exception"):
                    errors += 1
                if r.success:
                    continue
                kw = r.expectation_config.kwargs
                name = f"{r.expectation_config.type}({kw.get('column') or kw.get('column_A')})"
                for item in r.result.get("unexpected_index_list") or []:
                    failed.setdefault(int(item[ROW]), []).append(name)
        bad = df[ROW].isin(list(failed))
        quarantine = df.loc[bad, [ROW]].assign(failed_checks=lambda q: q[ROW].map(lambda i: "; ".join(failed[i])))
        clean = df.loc[~bad].drop(columns=[c for c in df.columns if "__" in c])
        t = lap("quarantine", t)
        out = out_dir / f["force_id"]
        out.mkdir(parents=True, exist_ok=True)
        clean.to_parquet(out / f"{f['month']}.parquet", compression="zstd", index=False)
        if len(quarantine):
            quarantine.to_parquet(out / f"{f['month']}.quarantine.parquet", compression="zstd", index=False)
        lap("write", t)
        return {"rows": len(df), "quarantined": int(bad.sum()), "gx_errors": errors}
