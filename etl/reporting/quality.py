"""The auditor's data-quality page view model: changes when what quality.html and its CSVs show does.

For one force and one report month, from the warehouse's audit tables (issue 12, item 5):

* the month's load run (the latest ``kind == "load"`` row of ``audit_runs`` for the force and month: a
  re-loaded month replaces its rows, so its latest run is what the figures stand on): run id, when,
  contract and definition versions, the code version;
* each source file of that run (``audit_runs.source_files``): file, sha256, encoding, contract and its
  version, rows in / loaded / quarantined, the quarantined rows by rule (counts from the ``quarantine``
  table: its extract, month, file and ``failed_checks`` columns only - never a record or a failure
  detail), and its checks (``audit_checks`` of the run): passed, failed or not run, with the check's
  plain description (never its ``detail``, which may quote a value);
* the published-statistics reconciliation (`etl.reporting.reconciliation`: records against published,
  difference, tolerance and verdict; not checked is never a pass);
* the last 12 months: rows in, quarantined and the quarantine rate, checks failed (errors, warnings)
  and not run, per month, from the latest load run of each month;
* the crime data integrity audit: the compliance measures (``ml_cdi_*`` rows of the measures table),
  their sample size, national benchmark and the 100% aspiration;
* where the Great Expectations Data Docs are (a link relative to the report folder, or "not built").

A check *did not run* when ``passed`` is null or its detail starts ``not checked`` (a check that could
not judge, e.g. a volume check without enough history): it is counted apart from passed and failed.
Everything shown is a count, a name, a hash or a version: no value of any row.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from etl.core.audit import SourceFileEntry, source_file_entries
from etl.core.periods import Month
from etl.reporting.figures import definition
from etl.reporting.formatting import format_value, mon_yy, period_label, round_half_up
from etl.reporting.reconciliation import Reconciliation, reconciliation

logger = logging.getLogger(__name__)

NOT_CHECKED = "not checked"  # the start of the detail of a check that could not judge
CDI_PREFIX = "ml_cdi_"  # the crime data integrity audit's compliance measures
CDI_BENCHMARK = "national"  # comparison token of the national benchmark row
CDI_SAMPLE = ("sample", "sample_size", "audited")  # comparison tokens whose comparison_value is the audit's sample size
# else the sample is read from the figure's note, as the per-sample measures write it (`etl.measures.samples`)
_SAMPLE_NOTE = re.compile(r"sample counts (?P<num>\d+(?:\.\d+)?) / (?P<den>\d+(?:\.\d+)?) from (?P<items>\d+) audited item")
CDI_ASPIRATION = 100.0  # HMIC: every crime that should be recorded is recorded correctly (used when no target row is given)
TREND_MONTHS = 12
FILE_PRESENT = "file.present"  # the check that an extract's file was supplied
STATES = {"passed": "passed", "failed": "failed", "not_run": "not run"}
_BADGES = {"passed": "met", "failed": "not_met", "not_run": "incomplete"}
_QUARANTINE_COLUMNS = ("extract", "force_id", "month", "source_file", "failed_checks", "run_id")  # never record / failure_detail


def check_state(columns: list[str] | set[str]) -> pl.Expr:
    """``passed``, ``failed`` or ``not_run`` for each row of an ``audit_checks`` frame with these columns."""
    cols = set(columns)
    passed = pl.col("passed") if "passed" in cols else pl.lit(True)
    not_run = passed.is_null()
    if "detail" in cols:
        not_run = not_run | pl.col("detail").fill_null("").str.starts_with(NOT_CHECKED)
    return pl.when(not_run).then(pl.lit("not_run")).when(passed).then(pl.lit("passed")).otherwise(pl.lit("failed"))


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _rate(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole * 100


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{round_half_up(x, 1):.1f}%"


def _versions(text: str | None) -> str:
    """'measures 2.0.0, offence_groups 1.0.0' from a JSON object of versions."""
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    return ", ".join(f"{k} {v}" for k, v in sorted(data.items()) if v is not None)


@dataclass
class CheckLine:
    """One check of one file (or of the run): its id, plain description, severity and result."""

    check: str
    description: str
    severity: str
    state: str  # passed | failed | not_run
    failing_rows: int | None
    rows_checked: int | None

    @property
    def state_words(self) -> str:
        return STATES[self.state]

    @property
    def not_supplied(self) -> bool:
        """An optional extract's file was not supplied (its ``file.present`` warning failed): listed apart, not as a failure."""
        return self.check == FILE_PRESENT and self.state == "failed" and self.severity != "error"

    @property
    def badge(self) -> str:
        return _BADGES[self.state]

    @property
    def failing_text(self) -> str:
        return _count(self.failing_rows) if self.state == "failed" else "-"


@dataclass
class RuleCount:
    rule: str
    rows: int
    description: str = ""

    @property
    def rows_text(self) -> str:
        return _count(self.rows)


@dataclass
class SourceFile(SourceFileEntry):
    """One file the month's run read: its audit_runs entry, the rows quarantined by rule and its checks."""

    by_rule: list[RuleCount] = field(default_factory=list)
    checks: list[CheckLine] = field(default_factory=list)

    @property
    def sha_short(self) -> str:
        return (self.sha256 or "")[:12] or "-"

    @property
    def quarantine_rate(self) -> float | None:
        return _rate(self.rows_quarantined, self.rows_in)

    @property
    def rate_text(self) -> str:
        return _pct(self.quarantine_rate)

    def n(self, state: str) -> int:
        return sum(1 for c in self.checks if c.state == state)

    @property
    def attention(self) -> list[CheckLine]:
        """The checks that failed or did not run, failed errors first."""
        order = {"failed": 0, "not_run": 1}
        return sorted((c for c in self.checks if c.state != "passed"), key=lambda c: (order[c.state], c.severity != "error", c.check))

    @property
    def passed(self) -> list[CheckLine]:
        return [c for c in self.checks if c.state == "passed"]

    @property
    def anchor(self) -> str:
        return "f-" + "".join(ch if ch.isalnum() else "-" for ch in f"{self.extract}-{self.file}")


@dataclass
class RunInfo:
    run_id: str
    finished: str
    contract_versions: str
    definition_versions: str
    code_version: str
    rows_in: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    source_root: str = ""

    @property
    def rate_text(self) -> str:
        return _pct(_rate(self.rows_quarantined, self.rows_in))


@dataclass
class TrendMonth:
    month: str
    loaded: bool
    rows_in: int | None = None
    rows_quarantined: int | None = None
    failed_errors: int = 0
    failed_warnings: int = 0
    not_run: int = 0
    run_id: str | None = None
    not_supplied: int = 0

    @property
    def label(self) -> str:
        return mon_yy(Month.parse(self.month))

    @property
    def rate(self) -> float | None:
        return _rate(self.rows_quarantined, self.rows_in)

    @property
    def rate_text(self) -> str:
        return _pct(self.rate) if self.loaded else "-"


@dataclass
class TrendChart:
    """An inline bar chart of the quarantine rate by month (no script): bars, axis labels and a title."""

    width: int
    height: int
    bars: list[dict]  # x, y, w, h, label, value text, title
    top_text: str
    baseline_y: float
    plot_left: int
    plot_right: int


@dataclass
class CdiRow:
    measure_id: str
    name: str
    period: str
    value: float | None
    sample: int | None  # the share's base: audited items that should have been recorded (or decisions examined)
    benchmark: float | None
    aspiration: float
    correct: int | None = None  # of the sample, recorded (or decided) correctly
    audited: int | None = None  # audited items of the sample file

    @property
    def value_text(self) -> str:
        return format_value(self.value, "pct")

    @property
    def sample_text(self) -> str:
        if self.sample is None:
            return "-"
        return f"{self.correct:,} of {self.sample:,}" if self.correct is not None else f"{self.sample:,}"

    @property
    def benchmark_text(self) -> str:
        return "none recorded" if self.benchmark is None else format_value(self.benchmark, "pct")

    @property
    def aspiration_text(self) -> str:
        return format_value(self.aspiration, "pct")

    @property
    def versus_benchmark(self) -> str:
        if self.value is None or self.benchmark is None:
            return "-"
        d = round_half_up(self.value - self.benchmark, 1)
        return "0.0 pts" if d == 0 else f"{d:+.1f} pts"

    @property
    def gap_to_aspiration(self) -> str:
        if self.value is None:
            return "-"
        d = round_half_up(self.aspiration - self.value, 1)
        return "0.0 pts" if d == 0 else f"{d:.1f} pts"


@dataclass
class QualityPage:
    force_id: str
    month: str
    month_label: str
    given: bool  # audit runs or checks were given to the report
    run: RunInfo | None
    files: list[SourceFile]
    run_checks: list[CheckLine]  # checks of the run not tied to a file it read (e.g. an optional file absent)
    absent: list[str]  # extracts whose file was not supplied this month
    reconciliation: Reconciliation | None
    trend: list[TrendMonth]
    chart: TrendChart | None
    cdi: list[CdiRow]
    data_docs_href: str | None
    as_of: str | None = None
    provenance: str = ""

    @property
    def totals(self) -> dict[str, int]:
        """Checks passed / failed / not run (an optional file not supplied is not counted: it is listed in ``absent``)."""
        return {s: sum(f.n(s) for f in self.files) + sum(1 for c in self.run_checks if c.state == s and not c.not_supplied) for s in STATES}

    @property
    def run_checks_shown(self) -> list[CheckLine]:
        return [c for c in self.run_checks if not c.not_supplied]

    @property
    def trend_loaded(self) -> int:
        return sum(1 for t in self.trend if t.loaded)


# --------------------------------------------------------------------------------------------------
# building


def _latest_run(runs: pl.DataFrame | None, force_id: str, month: str) -> dict | None:
    if runs is None or runs.height == 0 or not {"run_id", "month"} <= set(runs.columns):
        return None
    f = runs.filter(pl.col("month") == month)
    if "kind" in f.columns:
        f = f.filter(pl.col("kind") == "load")
    if "force_id" in f.columns:
        f = f.filter(pl.col("force_id") == force_id)
    if f.height == 0:
        return None
    order = [c for c in ("commit_seq", "finished_at", "run_id") if c in f.columns]
    return f.sort(order, nulls_last=False).row(-1, named=True)


def _latest_runs(runs: pl.DataFrame | None, force_id: str, months: list[str]) -> pl.DataFrame | None:
    """month -> the latest load run of the force (run_id, rows_in, rows_quarantined)."""
    if runs is None or runs.height == 0 or not {"run_id", "month"} <= set(runs.columns):
        return None
    f = runs.filter(pl.col("month").is_in(months))
    if "kind" in f.columns:
        f = f.filter(pl.col("kind") == "load")
    if "force_id" in f.columns:
        f = f.filter(pl.col("force_id") == force_id)
    order = [c for c in ("commit_seq", "finished_at", "run_id") if c in f.columns]
    cols = ["month", "run_id"] + [c for c in ("rows_in", "rows_quarantined") if c in f.columns]
    return f.sort(order, nulls_last=False).group_by("month", maintain_order=True).last().select(cols)


def _run_from_checks(checks: pl.DataFrame | None, force_id: str, month: str) -> str | None:
    """Without audit runs: the latest run of the month in the checks (run ids carry their start time)."""
    if checks is None or checks.height == 0 or not {"run_id", "month"} <= set(checks.columns):
        return None
    f = checks.filter(pl.col("month") == month)
    if "force_id" in f.columns:
        f = f.filter(pl.col("force_id") == force_id)
    ids = f.filter(pl.col("run_id").str.starts_with("load-"))["run_id"].unique().to_list() or f["run_id"].unique().to_list()
    if not ids:
        return None
    return max(ids, key=lambda r: (str(r).split("-")[1] if str(r).count("-") >= 2 else "", str(r)))


def _check_lines(frame: pl.DataFrame) -> list[CheckLine]:
    cols = set(frame.columns)
    f = frame.with_columns(check_state(cols).alias("_state"))
    out = []
    for r in f.iter_rows(named=True):  # the checks of one file (a few dozen)
        out.append(
            CheckLine(
                str(r.get("check") or ""),
                str(r.get("description") or ""),
                str(r.get("severity") or ""),
                r["_state"],
                _int(r.get("failing_rows")),
                _int(r.get("rows_checked")),
            )
        )
    return sorted(out, key=lambda c: c.check)


def _by_rule(quarantine: pl.DataFrame | None, force_id: str, month: str, run_id: str | None) -> pl.DataFrame:
    """extract, source_file, rule, rows: the month's quarantined rows by failed rule (a row failing two rules counts in both)."""
    empty = pl.DataFrame(schema={"extract": pl.Utf8, "source_file": pl.Utf8, "rule": pl.Utf8, "rows": pl.Int64})
    if quarantine is None or quarantine.height == 0 or not {"extract", "failed_checks"} <= set(quarantine.columns):
        return empty
    q = quarantine.select([c for c in _QUARANTINE_COLUMNS if c in quarantine.columns])
    if "month" in q.columns:
        q = q.filter(pl.col("month") == month)
    if "force_id" in q.columns:
        q = q.filter(pl.col("force_id") == force_id)
    if run_id is not None and "run_id" in q.columns:
        q = q.filter(pl.col("run_id").is_null() | (pl.col("run_id") == run_id))
    if "source_file" not in q.columns:
        q = q.with_columns(pl.lit(None, pl.Utf8).alias("source_file"))
    return (
        q.select("extract", "source_file", pl.col("failed_checks").fill_null("").str.split("; ").alias("rule"))
        .explode("rule")
        .filter(pl.col("rule") != "")
        .group_by("extract", "source_file", "rule")
        .agg(pl.len().cast(pl.Int64).alias("rows"))
        .sort("extract", "source_file", "rule")
    )


def _files(run: dict | None, run_id: str | None, checks: pl.DataFrame | None, by_rule: pl.DataFrame) -> tuple[list[SourceFile], list[CheckLine]]:
    mine = checks.filter(pl.col("run_id") == run_id) if (checks is not None and run_id is not None and "run_id" in checks.columns) else None
    entries: list[dict] = []
    if run is not None and run.get("source_files"):
        entries = source_file_entries(run["source_files"])
    elif mine is not None and {"extract", "source_file"} <= set(mine.columns):
        pairs = mine.filter(pl.col("source_file").is_not_null()).select(
            "extract", "source_file", *[c for c in ("contract", "contract_version") if c in mine.columns]
        )
        entries = [{"extract": r["extract"], "file": r["source_file"], **r} for r in pairs.unique(maintain_order=True).to_dicts()]
    files: list[SourceFile] = []
    used = pl.lit(False)
    has_file = mine is not None and {"extract", "source_file"} <= set(mine.columns)
    for e in entries:
        f = SourceFile(**vars(SourceFileEntry.of(e)))
        extract, file = f.extract, f.file
        if has_file:
            assert mine is not None
            this = (pl.col("extract") == extract) & (pl.col("source_file") == file)
            f.checks = _check_lines(mine.filter(this))
            used = used | this
        descriptions = {c.check: c.description for c in f.checks}
        rules = by_rule.filter((pl.col("extract") == extract) & (pl.col("source_file").is_null() | (pl.col("source_file") == file)))
        f.by_rule = [RuleCount(r, n, descriptions.get(r, "")) for r, n in rules.select("rule", "rows").iter_rows()]
        files.append(f)
    rest: list[CheckLine] = []
    if mine is not None:
        rest = _check_lines(mine.filter(~used.fill_null(False)) if has_file else mine)
    return files, rest


def _absent(checks: pl.DataFrame | None, run_id: str | None) -> list[str]:
    """Extracts whose file the run looked for and did not find (its ``file.present`` check failed)."""
    if checks is None or run_id is None or not {"run_id", "check", "extract", "passed"} <= set(checks.columns):
        return []
    f = checks.filter((pl.col("run_id") == run_id) & (pl.col("check") == FILE_PRESENT) & (pl.col("passed") == False))  # noqa: E712
    if "severity" in f.columns:
        f = f.filter(pl.col("severity") != "error")
    return sorted(x for x in f["extract"].unique().to_list() if x)


def _trend(runs: pl.DataFrame | None, checks: pl.DataFrame | None, force_id: str, month: str) -> list[TrendMonth]:
    end = Month.parse(month)
    months = [str(end - k) for k in range(TREND_MONTHS - 1, -1, -1)]
    latest = _latest_runs(runs, force_id, months)
    if latest is None and checks is not None and {"run_id", "month"} <= set(checks.columns):
        ids = [(m, _run_from_checks(checks, force_id, m)) for m in months]
        latest = pl.DataFrame([{"month": m, "run_id": r} for m, r in ids if r], schema={"month": pl.Utf8, "run_id": pl.Utf8})
    by_month: dict[str, dict] = {r["month"]: r for r in latest.to_dicts()} if latest is not None else {}
    counts: dict[str, dict] = {}
    if checks is not None and by_month and {"run_id", "severity"} <= set(checks.columns):
        state = check_state(checks.columns)
        absent = (pl.col("check") == FILE_PRESENT) & (pl.col("severity") != "error") if "check" in checks.columns else pl.lit(False)
        c = (
            checks.filter(pl.col("run_id").is_in([r["run_id"] for r in by_month.values()]))
            .with_columns(state.alias("_state"), absent.alias("_absent"))
            .group_by("run_id")
            .agg(
                ((pl.col("_state") == "failed") & (pl.col("severity") == "error")).sum().cast(pl.Int64).alias("failed_errors"),
                ((pl.col("_state") == "failed") & (pl.col("severity") != "error") & ~pl.col("_absent")).sum().cast(pl.Int64).alias("failed_warnings"),
                (pl.col("_state") == "not_run").sum().cast(pl.Int64).alias("not_run"),
                ((pl.col("_state") == "failed") & pl.col("_absent")).sum().cast(pl.Int64).alias("not_supplied"),
            )
        )
        counts = {r["run_id"]: r for r in c.to_dicts()}
    out = []
    for m in months:
        r = by_month.get(m)
        if r is None:
            out.append(TrendMonth(m, False))
            continue
        k = counts.get(r["run_id"], {})
        out.append(
            TrendMonth(
                m,
                True,
                _int(r.get("rows_in")),
                _int(r.get("rows_quarantined")),
                int(k.get("failed_errors") or 0),
                int(k.get("failed_warnings") or 0),
                int(k.get("not_run") or 0),
                r["run_id"],
                int(k.get("not_supplied") or 0),
            )
        )
    return out


def _chart(trend: list[TrendMonth]) -> TrendChart | None:
    rates = [t.rate for t in trend if t.rate is not None]
    if not rates:
        return None
    width, height, left, right, top, bottom = 640, 180, 48, 12, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max(max(rates), 0.1)
    step = plot_w / len(trend)
    bars = []
    for i, t in enumerate(trend):
        x = left + i * step + step * 0.15
        h = 0.0 if t.rate is None else plot_h * t.rate / top_value
        title = f"{t.label}: " + (f"{t.rate_text} of {_count(t.rows_in)} rows quarantined" if t.loaded else "not loaded")
        bars.append(
            {
                "x": x,
                "y": top + plot_h - h,
                "w": step * 0.7,
                "h": h,
                "label": t.label,
                "value": t.rate_text if t.loaded else "-",
                "title": title,
                "cx": x + step * 0.35,
            }
        )
    return TrendChart(width, height, bars, _pct(top_value), top + plot_h, left, width - right)


def _cdi(rows: list[dict], month: str, defs) -> list[CdiRow]:
    """The latest figure of each crime data integrity measure at or before the report month."""
    mine = [r for r in rows if str(r.get("measure_id") or "").startswith(CDI_PREFIX) and (r.get("period_end") or "") <= month]
    if not mine:
        return []
    latest: dict[str, str] = {}
    for r in mine:
        mid = r["measure_id"]
        latest[mid] = max(latest.get(mid, ""), r.get("period_end") or "")
    out = []
    for mid in sorted(latest):
        window = [r for r in mine if r["measure_id"] == mid and (r.get("period_end") or "") == latest[mid]]
        own = next((r for r in window if r.get("comparison") in (None, "", CDI_BENCHMARK)), window[0])
        by_token = {r.get("comparison"): r for r in window}
        bench = by_token.get(CDI_BENCHMARK)
        sample = next((by_token[t] for t in CDI_SAMPLE if t in by_token), None)
        target = by_token.get("target")
        d = definition(defs, mid)
        name = getattr(d, "name", None) or mid
        label = period_label(str(own.get("period")), str(own.get("period_start")), str(own.get("period_end"))) if own.get("period") else ""
        value = own.get("value")
        size = None if sample is None or sample.get("comparison_value") is None else int(sample["comparison_value"])
        correct = audited = None
        counts = next((m for r in window if (m := _SAMPLE_NOTE.search(str(r.get("note") or ""))) is not None), None)
        if size is None and counts is not None:
            size, correct, audited = round(float(counts["den"])), round(float(counts["num"])), int(counts["items"])
        out.append(
            CdiRow(
                mid,
                name,
                label,
                None if value is None else float(value),
                size,
                None if bench is None or bench.get("comparison_value") is None else float(bench["comparison_value"]),
                float(target["comparison_value"]) if target is not None and target.get("comparison_value") is not None else CDI_ASPIRATION,
                correct,
                audited,
            )
        )
    return out


def data_docs_link(data_docs: Path | None, out_dir: Path) -> str | None:
    """The Data Docs index relative to the report folder (a link that survives moving both together), or None when not built."""
    if data_docs is None or not Path(data_docs).is_file():
        return None
    rel = os.path.relpath(Path(data_docs).resolve(), Path(out_dir).resolve())
    return Path(rel).as_posix()


def quality_page(
    force_id: str,
    month: str,
    *,
    audit_runs: pl.DataFrame | None = None,
    checks: pl.DataFrame | None = None,
    quarantine: pl.DataFrame | None = None,
    measure_rows: list[dict] | None = None,
    defs=None,
    data_docs_href: str | None = None,
    as_of: str | None = None,
    provenance: str = "",
) -> QualityPage:
    """The page for ``force_id`` and the report ``month`` from the audit tables (each optional)."""
    Month.parse(month)  # a clear PeriodError for a bad month
    run = _latest_run(audit_runs, force_id, month)
    run_id = run["run_id"] if run is not None else _run_from_checks(checks, force_id, month)
    by_rule = _by_rule(quarantine, force_id, month, run_id)
    files, run_checks = _files(run, run_id, checks, by_rule)
    info = None
    if run is not None:
        finished: Any = run.get("finished_at")
        roots = sorted({f.source_root for f in files if f.source_root})
        info = RunInfo(
            str(run["run_id"]),
            f"{finished:%Y-%m-%d %H:%M:%S} UTC" if hasattr(finished, "strftime") else str(finished or ""),
            _versions(run.get("contract_versions")),
            _versions(run.get("definition_versions")),
            str(run.get("code_version") or ""),
            _int(run.get("rows_in")),
            _int(run.get("rows_loaded")),
            _int(run.get("rows_quarantined")),
            "; ".join(roots),
        )
    elif run_id is not None:
        info = RunInfo(str(run_id), "", "", "", "", None, None, None)
    trend = _trend(audit_runs, checks, force_id, month)
    page = QualityPage(
        force_id,
        month,
        mon_yy(Month.parse(month)),
        audit_runs is not None or checks is not None,
        info,
        files,
        run_checks,
        _absent(checks, run_id),
        reconciliation(checks, force_id, month),
        trend,
        _chart(trend),
        _cdi(measure_rows or [], month, defs),
        data_docs_href,
        as_of,
        provenance,
    )
    logger.debug("data-quality page for %s %s: run %s, %d file(s), %d check(s)", force_id, month, run_id, len(files), sum(len(f.checks) for f in files))
    return page


# --------------------------------------------------------------------------------------------------
# the CSVs


_FILES_SCHEMA: dict[str, Any] = {
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "run_id": pl.Utf8,
    "extract": pl.Utf8,
    "file": pl.Utf8,
    "source_root": pl.Utf8,
    "sha256": pl.Utf8,
    "encoding": pl.Utf8,
    "contract": pl.Utf8,
    "contract_version": pl.Utf8,
    "definition_versions": pl.Utf8,
    "rows_in": pl.Int64,
    "rows_loaded": pl.Int64,
    "rows_quarantined": pl.Int64,
    "quarantine_rate_pct": pl.Float64,
    "quarantined_by_rule": pl.Utf8,
    "checks_passed": pl.Int64,
    "checks_failed": pl.Int64,
    "checks_not_run": pl.Int64,
}

_CHECKS_SCHEMA: dict[str, Any] = {
    "section": pl.Utf8,
    "force_id": pl.Utf8,
    "month": pl.Utf8,
    "run_id": pl.Utf8,
    "extract": pl.Utf8,
    "file": pl.Utf8,
    "item": pl.Utf8,
    "description": pl.Utf8,
    "severity": pl.Utf8,
    "verdict": pl.Utf8,
    "failing_rows": pl.Int64,
    "rows_checked": pl.Int64,
    "records": pl.Int64,
    "published": pl.Int64,
    "difference": pl.Int64,
    "difference_pct": pl.Float64,
    "tolerance_pct": pl.Float64,
    "rows_in": pl.Int64,
    "rows_quarantined": pl.Int64,
    "quarantine_rate_pct": pl.Float64,
    "checks_failed_errors": pl.Int64,
    "checks_failed_warnings": pl.Int64,
    "checks_not_run": pl.Int64,
    "files_not_supplied": pl.Int64,
    "value_pct": pl.Float64,
    "sample_size": pl.Int64,
    "sample_correct": pl.Int64,
    "audited_items": pl.Int64,
    "benchmark_pct": pl.Float64,
    "aspiration_pct": pl.Float64,
}


def quality_files_frame(page: QualityPage) -> pl.DataFrame:
    """data_quality.csv: one row per source file of the month's run, the full sha256, counts by rule and check results."""
    run_id = page.run.run_id if page.run else None
    defs = page.run.definition_versions if page.run else None
    recs = [
        {
            "force_id": page.force_id,
            "month": page.month,
            "run_id": run_id,
            "extract": f.extract,
            "file": f.file,
            "source_root": f.source_root,
            "sha256": f.sha256,
            "encoding": f.encoding,
            "contract": f.contract,
            "contract_version": f.contract_version,
            "definition_versions": defs,
            "rows_in": f.rows_in,
            "rows_loaded": f.rows_loaded,
            "rows_quarantined": f.rows_quarantined,
            "quarantine_rate_pct": f.quarantine_rate,
            "quarantined_by_rule": "; ".join(f"{r.rule}: {r.rows}" for r in f.by_rule) or None,
            "checks_passed": f.n("passed"),
            "checks_failed": f.n("failed"),
            "checks_not_run": f.n("not_run"),
        }
        for f in page.files
    ]
    return pl.DataFrame(recs, schema=_FILES_SCHEMA)


def quality_checks_frame(page: QualityPage) -> pl.DataFrame:
    """data_quality_checks.csv: every other table of the page, one row per item, its section named:
    ``check`` (each check of each file and of the run), ``quarantine_rule``, ``reconciliation``, ``trend``
    and ``crime_data_integrity``."""
    run_id = page.run.run_id if page.run else None
    base = {"force_id": page.force_id, "month": page.month}
    recs: list[dict] = []
    for f in page.files:
        for c in f.checks:
            recs.append(
                base
                | {
                    "section": "check",
                    "run_id": run_id,
                    "extract": f.extract,
                    "file": f.file,
                    "item": c.check,
                    "description": c.description,
                    "severity": c.severity,
                    "verdict": c.state_words,
                    "failing_rows": c.failing_rows,
                    "rows_checked": c.rows_checked,
                }
            )
        for r in f.by_rule:
            recs.append(
                base
                | {
                    "section": "quarantine_rule",
                    "run_id": run_id,
                    "extract": f.extract,
                    "file": f.file,
                    "item": r.rule,
                    "description": r.description,
                    "rows_quarantined": r.rows,
                }
            )
    for c in page.run_checks:
        recs.append(
            base
            | {
                "section": "check",
                "run_id": run_id,
                "item": c.check,
                "description": c.description,
                "severity": c.severity,
                "verdict": c.state_words,
                "failing_rows": c.failing_rows,
                "rows_checked": c.rows_checked,
            }
        )
    if page.reconciliation is not None:
        for y in page.reconciliation.years:
            for row in y.rows:
                recs.append(
                    base
                    | {
                        "section": "reconciliation",
                        "month": y.end,
                        "extract": y.extract,
                        "file": y.source or None,
                        "item": row.group or None,
                        "description": row.reason or None,
                        "verdict": row.verdict_words,
                        "records": row.records,
                        "published": row.published,
                        "difference": row.difference,
                        "difference_pct": row.difference_pct,
                        "tolerance_pct": y.tolerance,
                    }
                )
    for t in page.trend:
        recs.append(
            base
            | {
                "section": "trend",
                "month": t.month,
                "run_id": t.run_id,
                "verdict": "loaded" if t.loaded else "not loaded",
                "rows_in": t.rows_in,
                "rows_quarantined": t.rows_quarantined,
                "quarantine_rate_pct": t.rate,
                "checks_failed_errors": t.failed_errors if t.loaded else None,
                "checks_failed_warnings": t.failed_warnings if t.loaded else None,
                "checks_not_run": t.not_run if t.loaded else None,
                "files_not_supplied": t.not_supplied if t.loaded else None,
            }
        )
    for d in page.cdi:
        recs.append(
            base
            | {
                "section": "crime_data_integrity",
                "item": d.measure_id,
                "description": d.name,
                "value_pct": d.value,
                "sample_size": d.sample,
                "sample_correct": d.correct,
                "audited_items": d.audited,
                "benchmark_pct": d.benchmark,
                "aspiration_pct": d.aspiration,
            }
        )
    return pl.DataFrame(recs, schema=_CHECKS_SCHEMA)


__all__ = [
    "CDI_PREFIX",
    "CdiRow",
    "CheckLine",
    "QualityPage",
    "RuleCount",
    "RunInfo",
    "SourceFile",
    "TrendMonth",
    "check_state",
    "data_docs_link",
    "quality_checks_frame",
    "quality_files_frame",
    "quality_page",
]
