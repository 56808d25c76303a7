"""A corpus of bad inputs through the command line (issue 9): each gets ONE plain error line on stderr,
the documented exit code (1 = the data failed its contract, 2 = usage or environment error), no
traceback, and leaves the warehouse exactly as it was (every file's relative path and bytes).

Every case starts from the same small warehouse with 2019-03 already loaded (built once for the module,
copied per case) and a valid 2019-04 in the source, then breaks ONE thing and runs the command line in
process (typer's CliRunner, ``--engine local``). ``test_the_untouched_source_loads`` shows that the
untouched 2019-04 loads, so each case fails for the one thing it breaks.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etl.cli.app import app
from tests.conftest import crime, write_csv, write_month, write_population

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
LOADED, MONTH = "2019-03", "2019-04"  # LOADED is in the warehouse; each case loads MONTH
FIFO_GRACE = 20.0  # seconds before a reader stuck on a FIFO is released (and the case fails)


def crimes(month: str, n: int = 40, **kw) -> list[dict]:
    return [crime(f"{month}-{i:03d}", f"{month}-{i % 28 + 1:02d}", ["8N", "28E", "34B", "58A"][i % 4], **kw) for i in range(n)]


def outcomes(month: str) -> list[dict]:
    return [{"crime_ref": f"{month}-{i:03d}", "outcome_type": "1", "outcome_date": f"{month}-28"} for i in range(0, 8, 2)]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-inputs")
    source, warehouse = root / "source", root / "warehouse"
    write_population(source, {2018: 500_000, 2019: 505_000})
    write_month(source, LOADED, crimes(LOADED), outcomes(LOADED))
    r = runner.invoke(app, ["run", "--source", str(source), "--month", LOADED, "--warehouse", str(warehouse), "--engine", "local"])
    assert r.exit_code == 0, r.output
    write_month(source, MONTH, crimes(MONTH), outcomes(MONTH))
    return root


def digest(folder: Path) -> str:
    """Every file's path (relative to FOLDER) and bytes, and every folder's path."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _clear_caches() -> None:
    """Contracts and definitions are cached per name; a case with its own contracts folder starts fresh."""
    for name, module in list(sys.modules.items()):
        if name == "etl" or name.startswith("etl."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "__wrapped__"):
                    value.cache_clear()


@dataclass
class Ctx:
    tmp: Path
    source: Path
    warehouse: Path
    monkeypatch: pytest.MonkeyPatch
    fifos: list[Path]
    held: list  # open files to close when the case ends

    @property
    def month(self) -> Path:
        return self.source / MONTH

    def run(self, *extra: str) -> list[str]:
        return ["run", "--source", str(self.source), "--month", MONTH, "--warehouse", str(self.warehouse), "--engine", "local", *extra]

    def fifo(self, path: Path) -> Path:
        if path.exists() or path.is_symlink():
            path.unlink() if not path.is_dir() else shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        self.fifos.append(path)
        return path

    def contracts(self) -> Path:
        """A copy of contracts/ used for this case (ETL_CONTRACTS_DIR)."""
        copy = self.tmp / "contracts"
        if not copy.exists():
            shutil.copytree(REPO / "contracts", copy)
            self.monkeypatch.setenv("ETL_CONTRACTS_DIR", str(copy))
            _clear_caches()
        return copy


# ------------------------------------------------------------------------------------------------ edits


def rewrite(path: Path, edit: Callable[[str], str]) -> None:
    path.write_text(edit(path.read_text()))


def replace_field(path: Path, line: int, column: str, value: str) -> None:
    """Set COLUMN on LINE (header = line 1) of a plain comma-separated file."""
    lines = path.read_text().split("\n")
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines))


def drop_column(path: Path, column: str) -> None:
    rows = [line.split(",") for line in path.read_text().rstrip("\n").split("\n")]
    k = rows[0].index(column)
    path.write_text("\n".join(",".join(r[:k] + r[k + 1 :]) for r in rows) + "\n")


def make_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.csv").write_text("a,b\n1,2\n")


def header_only(path: Path) -> None:
    path.write_text(path.read_text().split("\n", 1)[0] + "\n")


def utf16(path: Path) -> None:
    path.write_bytes(path.read_text().encode("utf-16"))


def contract_columns(name: str) -> list[str]:
    import yaml

    doc = yaml.safe_load((REPO / "contracts" / f"{name}.yaml").read_text())
    return [p.get("physicalName") or p["name"] for p in doc["schema"][0]["properties"]]


def valid_xlsx(path: Path, sheet: str, cells: dict[str, str]) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for ref, value in cells.items():
        ws[ref] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def edit_yaml(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer holds {old!r}; update the case"
    path.write_text(text.replace(old, new, 1))


# ------------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], object]  # breaks one thing; returns the arguments as a list (anything else: `etl run` of MONTH)
    code: int
    says: tuple[str, ...]  # fragments (regular expressions) the error line must contain


def _rc(c: Ctx) -> Path:
    return c.month / "recorded_crime.csv"


def _co(c: Ctx) -> Path:
    return c.month / "crime_outcomes.csv"


def _ref(c: Ctx, name: str) -> Path:
    return c.source / "reference" / name


def _truncate(c: Ctx) -> None:
    text = _rc(c).read_text().rstrip("\n")
    _rc(c).write_text(text[: len(text) - 12])  # the last row cut mid-row, no final newline


def _nul_late(c: Ctx) -> None:
    data = _rc(c).read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 5
    _rc(c).write_bytes(data[:cut] + b"\x00" + data[cut:])


def _optional(c: Ctx, name: str, columns: list[str] | None = None, rows: int = 3) -> Path:
    """A well-formed-looking optional extract (every field empty) to break further."""
    columns = columns or contract_columns(name)
    return write_csv(c.month / f"{name}.csv", columns, [{} for _ in range(rows)])


def _broken_utf8(c: Ctx) -> None:
    """A UTF-8 file (an accented npu on line 5) with one byte that is not UTF-8 (line 30)."""
    replace_field(_rc(c), 5, "npu", "N\u00e9")
    data = _rc(c).read_bytes().split(b"\n")
    data[29] = data[29].replace(b",N1,", b",N\xe9,", 1)
    _rc(c).write_bytes(b"\n".join(data))


def _unreadable(c: Ctx) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: a file without read permission is still readable")
    _rc(c).chmod(0)


def _hold_lock(c: Ctx) -> None:
    """Another run holds the warehouse lock (a flock on warehouse/.etl.lock) for the whole case."""
    import fcntl

    c.monkeypatch.setenv("ETL_LOCK_TIMEOUT", "1")
    fh = open(c.warehouse / ".etl.lock", "a")
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    c.held.append(fh)  # released when the case ends


def _no_audit_runs(c: Ctx) -> None:
    shutil.rmtree(c.warehouse / "audit_runs")


def _garbled_audit_runs(c: Ctx) -> None:
    for log in (c.warehouse / "audit_runs" / "_delta_log").glob("*.json"):
        log.write_text("{ not json")


R, O = "recorded_crime\\.csv", "crime_outcomes\\.csv"

EXTRACT_CASES = [
    Case("recorded_crime-empty", lambda c: _rc(c).write_bytes(b""), 1, (R, "empty")),
    Case("recorded_crime-blank-lines-only", lambda c: _rc(c).write_bytes(b"\n\n\r\n"), 1, (R, "empty")),
    Case("recorded_crime-header-only", lambda c: header_only(_rc(c)), 1, (R, "no data rows")),
    Case("recorded_crime-truncated", _truncate, 1, (R, "truncated")),
    Case("recorded_crime-NUL-early", lambda c: _rc(c).write_bytes(b"crime_ref\x00" + _rc(c).read_bytes()), 1, (R, "NUL")),
    Case("recorded_crime-NUL-late", _nul_late, 1, (R, "NUL", "line 41")),
    Case("recorded_crime-UTF-16", lambda c: utf16(_rc(c)), 1, (R, "UTF-16")),
    Case("recorded_crime-broken-UTF-8", _broken_utf8, 1, (R, "UTF-8", "line 30")),
    Case("recorded_crime-semicolons", lambda c: rewrite(_rc(c), lambda t: t.replace(",", ";")), 1, (R, "semicolon")),
    Case("recorded_crime-tabs", lambda c: rewrite(_rc(c), lambda t: t.replace(",", "\t")), 1, (R, "tab")),
    Case("recorded_crime-missing-column", lambda c: drop_column(_rc(c), "hocr_code"), 1, (R, "hocr_code")),
    Case("recorded_crime-renamed-column", lambda c: rewrite(_rc(c), lambda t: t.replace("hocr_code", "offence_code", 1)), 1, (R, "hocr_code", "offence_code")),
    Case("recorded_crime-duplicate-header", lambda c: rewrite(_rc(c), lambda t: t.replace("lsoa_code", "npu", 1)), 1, (R, "duplicate", "npu")),
    Case("recorded_crime-huge-column-name", lambda c: rewrite(_rc(c), lambda t: t.replace("hocr_code", "x" * 3_000_000, 1)), 1, (R, "hocr_code")),
    Case("recorded_crime-unclosed-quote", lambda c: replace_field(_rc(c), 12, "npu", '"N1'), 1, (R, "quot", "line 12")),
    Case("recorded_crime-row-outside-the-month", lambda c: replace_field(_rc(c), 10, "recorded_date", "2019-05-02"), 1, (R, "outside the extract's month")),
    Case(
        "recorded_crime-too-many-bad-rows",
        lambda c: write_month(c.source, MONTH, [crime(f"B{i}", f"{MONTH}-02", "NOPE" if i < 30 else "8N") for i in range(40)]),
        1,
        (R, "30 of 40 rows", "hocr_code"),
    ),
    Case(
        "recorded_crime-too-many-short-rows",
        lambda c: rewrite(
            _rc(c), lambda t: "\n".join(line if k < 5 else ",".join(line.split(",")[:9]) for k, line in enumerate(t.rstrip("\n").split("\n"))) + "\n"
        ),
        1,
        (R, "36 of 40 rows"),
    ),
    Case("recorded_crime-wrong-force", lambda c: c.run("--force", "other-force"), 1, (R, "force_id")),
    Case("recorded_crime-missing", lambda c: _rc(c).unlink(), 1, (R, "missing")),
    Case("recorded_crime-is-a-directory", lambda c: make_dir(_rc(c)), 2, (R, "folder|directory")),
    Case("recorded_crime-is-a-FIFO", lambda c: c.fifo(_rc(c)), 2, (R, "FIFO|named pipe")),
    Case("recorded_crime-symlink-to-nowhere", lambda c: (_rc(c).unlink(), _rc(c).symlink_to(c.tmp / "nowhere.csv")), 2, (R, "symbolic link")),
    Case("recorded_crime-unreadable", _unreadable, 2, (R, "permission")),
    Case("crime_outcomes-empty", lambda c: _co(c).write_bytes(b""), 1, (O, "empty")),
    Case("crime_outcomes-header-only", lambda c: header_only(_co(c)), 1, (O, "no data rows")),
    Case("crime_outcomes-truncated", lambda c: rewrite(_co(c), lambda t: t.rstrip("\n")[:-12]), 1, (O, "truncated")),
    Case("crime_outcomes-missing-column", lambda c: drop_column(_co(c), "outcome_date"), 1, (O, "outcome_date")),
    Case("crime_outcomes-UTF-16", lambda c: utf16(_co(c)), 1, (O, "UTF-16")),
    Case("crime_outcomes-NUL", lambda c: _co(c).write_bytes(_co(c).read_bytes().replace(b"\n", b"\n\x00", 2)), 1, (O, "NUL")),
    Case("crime_outcomes-outside-the-month", lambda c: replace_field(_co(c), 3, "outcome_date", "2019-05-03"), 1, (O, "outside")),
    Case("crime_outcomes-is-a-directory", lambda c: make_dir(_co(c)), 2, (O, "folder|directory")),
    Case("crime_outcomes-is-a-FIFO", lambda c: c.fifo(_co(c)), 2, (O, "FIFO|named pipe")),
    Case("calls-wrong-columns", lambda c: _optional(c, "calls", ["a", "b"]), 1, ("calls\\.csv", contract_columns("calls")[0])),
    Case("calls-empty", lambda c: (c.month / "calls.csv").write_bytes(b""), 1, ("calls\\.csv", "empty")),
    Case("calls-UTF-16", lambda c: utf16(_optional(c, "calls")), 1, ("calls\\.csv", "UTF-16")),
    Case("stop_search-header-only", lambda c: _optional(c, "stop_search", rows=0), 1, ("stop_search\\.csv", "no data rows")),
    Case("stop_search-semicolons", lambda c: rewrite(_optional(c, "stop_search"), lambda t: t.replace(",", ";")), 1, ("stop_search\\.csv", "semicolon")),
    Case("stop_search-is-a-directory", lambda c: (c.month / "stop_search.csv").mkdir(), 2, ("stop_search\\.csv", "folder|directory")),
]

POP = "population\\.csv"
REFERENCE_CASES = [
    Case("population-negative", lambda c: write_population(c.source, {2018: 500_000, 2019: -5}), 1, (POP, "population")),
    Case("population-zero", lambda c: write_population(c.source, {2018: 0, 2019: 505_000}), 1, (POP, "population")),
    Case("population-missing-column", lambda c: drop_column(_ref(c, "population.csv"), "population"), 1, (POP, "population")),
    Case("population-year-not-a-whole-number", lambda c: replace_field(_ref(c, "population.csv"), 2, "year", "2018.5"), 1, (POP, "year")),
    Case("population-huge-number", lambda c: replace_field(_ref(c, "population.csv"), 3, "population", "9" * 40), 1, (POP, "population")),
    Case("population-huge-field", lambda c: replace_field(_ref(c, "population.csv"), 3, "population", "1" * 3_000_000), 1, (POP, "population")),
    Case("population-empty", lambda c: _ref(c, "population.csv").write_bytes(b""), 1, (POP, "empty")),
    Case("population-is-a-directory", lambda c: make_dir(_ref(c, "population.csv")), 2, (POP, "folder|directory")),
    Case(
        "areas-missing-npu-column",
        lambda c: write_csv(_ref(c, "areas.csv"), ["force_id", "area"], [{"force_id": "test-force", "area": "N1"}]),
        1,
        ("areas\\.csv", "npu"),
    ),
    Case("areas-empty", lambda c: _ref(c, "areas.csv").write_bytes(b""), 1, ("areas\\.csv", "empty")),
    Case("areas-UTF-16", lambda c: _ref(c, "areas.csv").write_bytes("force_id,npu\ntest-force,N1\n".encode("utf-16")), 1, ("areas\\.csv", "UTF-16")),
    Case("areas-is-a-directory", lambda c: _ref(c, "areas.csv").mkdir(), 2, ("areas\\.csv", "folder|directory")),
    Case(
        "external_statistics-wrong-columns",
        lambda c: write_csv(_ref(c, "external_statistics.csv"), ["a", "b"], [{"a": "1", "b": "2"}]),
        1,
        ("external_statistics\\.csv",),
    ),
]

PUB = "reference/published"
PUBLISHED_CASES = [
    Case(
        "published-not-a-zip",
        lambda c: (c.source / PUB).mkdir(parents=True) or (c.source / PUB / "p1.xlsx").write_text("area code,value\n"),
        1,
        ("p1\\.xlsx", "xlsx"),
    ),
    Case("published-empty-file", lambda c: (c.source / PUB).mkdir(parents=True) or (c.source / PUB / "p1.xlsx").write_bytes(b""), 1, ("p1\\.xlsx",)),
    Case(
        "published-wrong-sheet",
        lambda c: valid_xlsx(c.source / PUB / "p1.xlsx", "Sheet1", {"A1": "Area Code", "B1": "Area Name"}),
        1,
        ("p1\\.xlsx", "Table P1"),
    ),
    Case("published-folder-named-like-a-workbook", lambda c: (c.source / PUB / "p1.xlsx").mkdir(parents=True), 1, ("p1\\.xlsx", "is a folder, not a file")),
    Case(
        "published-FIFO-named-like-a-workbook",
        lambda c: (c.source / PUB).mkdir(parents=True) or os.mkfifo(c.source / PUB / "p1.xlsx"),
        1,
        ("p1\\.xlsx", "is a named pipe \\(FIFO\\), not a file"),
    ),
    Case(
        "published-P1-without-headings",
        lambda c: valid_xlsx(c.source / PUB / "p1.xlsx", "Table P1", {"A1": "Police force area data", "A3": "E23000001", "B3": "12"}),
        1,
        ("p1\\.xlsx", "Area Code"),
    ),
]


def _contract(c: Ctx, name: str, old: str, new: str) -> None:
    edit_yaml(c.contracts() / name, old, new)


CONTRACT_CASES = [
    Case(
        "contract-malformed-YAML",
        lambda c: rewrite(c.contracts() / "recorded_crime.yaml", lambda t: t + "\n  - broken: [unclosed\n"),
        2,
        ("recorded_crime\\.yaml",),
    ),
    Case(
        "contract-malformed-rejectThreshold",
        lambda c: _contract(c, "recorded_crime.yaml", "{fraction: 0.05, minimumRows: 25}", "lots"),
        2,
        ("recorded_crime", "rejectThreshold"),
    ),
    Case(
        "contract-negative-rejectThreshold",
        lambda c: _contract(c, "recorded_crime.yaml", "{fraction: 0.05, minimumRows: 25}", "{fraction: -1, minimumRows: 25}"),
        2,
        ("recorded_crime", "rejectThreshold"),
    ),
    Case(
        "contract-unknown-logicalType",
        lambda c: _contract(c, "recorded_crime.yaml", "logicalType: date", "logicalType: colour"),
        2,
        ("recorded_crime", "logicalType"),
    ),
    Case(
        "contract-validate-with-a-broken-contract",
        lambda c: (_contract(c, "recorded_crime.yaml", "{fraction: 0.05, minimumRows: 25}", "lots"), ["validate", str(_rc(c)), "--contract", "recorded_crime"])[
            1
        ],
        2,
        ("recorded_crime", "rejectThreshold"),
    ),
    Case(
        "contract-FIFO-named-like-a-contract",
        lambda c: (c.contracts() / "recorded_crime.yaml").unlink() or os.mkfifo(c.contracts() / "recorded_crime.yaml"),
        2,
        ("recorded_crime\\.yaml", "is a named pipe \\(FIFO\\), not a file"),
    ),
    Case(
        "definitions-measures.yaml-is-a-folder",
        lambda c: (c.contracts() / "definitions" / "measures.yaml").unlink() or (c.contracts() / "definitions" / "measures.yaml").mkdir(),
        2,
        ("measures\\.yaml", "is a folder, not a file"),
    ),
    Case("definitions-missing-measures.yaml", lambda c: (c.contracts() / "definitions" / "measures.yaml").unlink(), 2, ("measures\\.yaml",)),
    Case(
        "definitions-malformed-measures.yaml",
        lambda c: rewrite(c.contracts() / "definitions" / "measures.yaml", lambda t: "measures: [\n" + t),
        2,
        ("measures\\.yaml",),
    ),
    Case(
        "definitions-malformed-offence_groups.yaml",
        lambda c: rewrite(c.contracts() / "definitions" / "offence_groups.yaml", lambda t: t + "\n\tbad: {\n"),
        2,
        ("offence_groups\\.yaml",),
    ),
    Case("reference-missing-code-list", lambda c: (c.contracts() / "reference" / "hocr_offence_codes.yaml").unlink(), 2, ("hocr_offence_codes\\.yaml",)),
    Case(
        "definitions-broken-scorecard.yaml",
        lambda c: (
            (c.contracts() / "definitions" / "scorecard.yaml").write_text("objectives: [\n"),
            ["report", "--month", LOADED, "--warehouse", str(c.warehouse), "--out", str(c.tmp / "reports")],
        )[1],
        2,
        ("scorecard\\.yaml",),
    ),
    Case(
        "definitions-scorecard.yaml-wrong-shape",
        lambda c: (
            (c.contracts() / "definitions" / "scorecard.yaml").write_text("version: '1'\nobjectives: 7\n"),
            ["report", "--month", LOADED, "--warehouse", str(c.warehouse), "--out", str(c.tmp / "reports")],
        )[1],
        2,
        ("scorecard\\.yaml",),
    ),
    Case(
        "definitions-missing-measures.yaml-for-report",
        lambda c: (
            (c.contracts() / "definitions" / "measures.yaml").unlink(),
            ["report", "--month", LOADED, "--warehouse", str(c.warehouse), "--out", str(c.tmp / "reports")],
        )[1],
        2,
        ("measures\\.yaml",),
    ),
]


def _link_to_nowhere(path: Path) -> Path:
    path.symlink_to(path.with_name("nowhere"))
    return path


def _file(path: Path) -> Path:
    path.write_text("not a folder\n")
    return path


ARGUMENT_CASES = [
    Case(
        "month-not-a-month",
        lambda c: ["run", "--source", str(c.source), "--month", "April", "--warehouse", str(c.warehouse), "--engine", "local"],
        2,
        ("--month", "not a month"),
    ),
    Case("month-13", lambda c: ["run", "--source", str(c.source), "--month", "2019-13", "--warehouse", str(c.warehouse), "--engine", "local"], 2, ("--month",)),
    Case("month-missing", lambda c: ["run", "--source", str(c.source), "--warehouse", str(c.warehouse)], 2, ("--month",)),
    Case(
        "backfill-from-after-to",
        lambda c: ["backfill", "--source", str(c.source), "--from", "2019-05", "--to", "2019-01", "--warehouse", str(c.warehouse), "--engine", "local"],
        2,
        ("2019-05", "2019-01"),
    ),
    Case(
        "backfill-bad-from",
        lambda c: ["backfill", "--source", str(c.source), "--from", "2019/01", "--to", "2019-04", "--warehouse", str(c.warehouse), "--engine", "local"],
        2,
        ("--from",),
    ),
    Case("validate-unknown-contract", lambda c: ["validate", str(_rc(c)), "--contract", "nope"], 2, ("no contract named 'nope'",)),
    Case("contracts-show-unknown", lambda c: ["contracts", "show", "nope"], 2, ("no contract named 'nope'",)),
    Case("measures-unknown-format", lambda c: ["measures", "--month", LOADED, "--warehouse", str(c.warehouse), "--format", "xml"], 2, ("--format",)),
    Case(
        "unknown-engine", lambda c: ["run", "--source", str(c.source), "--month", MONTH, "--warehouse", str(c.warehouse), "--engine", "warp"], 2, ("--engine",)
    ),
    Case(
        "source-missing",
        lambda c: ["run", "--source", str(c.tmp / "nope"), "--month", MONTH, "--warehouse", str(c.warehouse), "--engine", "local"],
        2,
        ("--source", "no such folder"),
    ),
    Case(
        "source-is-a-file",
        lambda c: ["run", "--source", str(_file(c.tmp / "src.txt")), "--month", MONTH, "--warehouse", str(c.warehouse), "--engine", "local"],
        2,
        ("--source", "file"),
    ),
    Case(
        "source-is-a-FIFO",
        lambda c: [
            "backfill",
            "--source",
            str(c.fifo(c.tmp / "src.fifo")),
            "--from",
            MONTH,
            "--to",
            MONTH,
            "--warehouse",
            str(c.warehouse),
            "--engine",
            "local",
        ],
        2,
        ("--source", "FIFO|named pipe"),
    ),
    Case(
        "run-warehouse-is-a-file",
        lambda c: ["run", "--source", str(c.source), "--month", MONTH, "--warehouse", str(_file(c.tmp / "wh.txt")), "--engine", "local"],
        2,
        ("--warehouse", "file"),
    ),
    Case(
        "run-warehouse-under-a-file",
        lambda c: ["run", "--source", str(c.source), "--month", MONTH, "--warehouse", str(_file(c.tmp / "wh.txt") / "w"), "--engine", "local"],
        2,
        ("--warehouse", "cannot be created", "wh\\.txt is a file"),
    ),
    Case(
        "backfill-warehouse-is-a-file",
        lambda c: ["backfill", "--source", str(c.source), "--from", MONTH, "--to", MONTH, "--warehouse", str(_file(c.tmp / "wh.txt")), "--engine", "local"],
        2,
        ("--warehouse", "file"),
    ),
    Case("measures-warehouse-is-a-file", lambda c: ["measures", "--month", LOADED, "--warehouse", str(_file(c.tmp / "wh.txt"))], 2, ("--warehouse", "file")),
    Case("measures-warehouse-missing", lambda c: ["measures", "--month", LOADED, "--warehouse", str(c.tmp / "nowhere")], 2, ("--warehouse", "no such folder")),
    Case(
        "report-warehouse-is-a-file",
        lambda c: ["report", "--month", LOADED, "--warehouse", str(_file(c.tmp / "wh.txt")), "--out", str(c.tmp / "r")],
        2,
        ("--warehouse", "file"),
    ),
    Case(
        "report-out-is-a-file",
        lambda c: ["report", "--month", LOADED, "--warehouse", str(c.warehouse), "--out", str(_file(c.tmp / "r.txt"))],
        2,
        ("--out", "file"),
    ),
    Case("demo-dir-is-a-file", lambda c: ["demo", "--dir", str(_file(c.tmp / "demo.txt")), "--engine", "local"], 2, ("demo\\.txt", "not a folder")),
    Case("validate-a-directory", lambda c: ["validate", str(c.month), "--contract", "recorded_crime"], 2, (MONTH, "is a folder, not a file")),
    Case("validate-a-FIFO", lambda c: ["validate", str(c.fifo(c.tmp / "x.csv")), "--contract", "recorded_crime"], 2, ("x\\.csv", "FIFO|named pipe")),
    Case(
        "validate-a-symlink-to-nowhere",
        lambda c: ["validate", str(_link_to_nowhere(c.tmp / "x.csv")), "--contract", "recorded_crime"],
        2,
        ("x\\.csv", "broken symbolic link"),
    ),
    Case("validate-missing-file", lambda c: ["validate", str(c.tmp / "gone.csv"), "--contract", "recorded_crime"], 2, ("gone\\.csv", "not found")),
    Case("unknown-option", lambda c: c.run("--bogus"), 2, ("No such option", "--bogus")),
    Case("unknown-command", lambda c: ["bogus"], 2, ("No such command",)),
]

WAREHOUSE_CASES = [
    Case("warehouse-busy", lambda c: _hold_lock(c), 2, ("warehouse|another run",)),
    Case("warehouse-without-audit_runs", _no_audit_runs, 2, ("audit_runs",)),
    Case("warehouse-audit_runs-unreadable", _garbled_audit_runs, 2, ("audit_runs",)),
    Case(
        "measures-warehouse-without-audit_runs",
        lambda c: (_no_audit_runs(c), ["measures", "--month", LOADED, "--warehouse", str(c.warehouse)])[1],
        2,
        ("audit_runs",),
    ),
]

CASES = EXTRACT_CASES + REFERENCE_CASES + PUBLISHED_CASES + CONTRACT_CASES + ARGUMENT_CASES + WAREHOUSE_CASES


def _release_fifos(fifos: list[Path], done: threading.Event) -> None:
    """A reader blocked on a FIFO gets end-of-file after FIFO_GRACE seconds (so a hang fails, not stalls)."""
    if done.wait(FIFO_GRACE):
        return
    for path in fifos:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def ctx(base, tmp_path, monkeypatch):
    shutil.copytree(base / "source", tmp_path / "source")
    shutil.copytree(base / "warehouse", tmp_path / "warehouse")
    monkeypatch.delenv("ETL_CONTRACTS_DIR", raising=False)
    c = Ctx(tmp_path, tmp_path / "source", tmp_path / "warehouse", monkeypatch, [], [])
    yield c
    for fh in c.held:
        fh.close()
    if (tmp_path / "contracts").exists():
        monkeypatch.delenv("ETL_CONTRACTS_DIR", raising=False)
        _clear_caches()
    for p in tmp_path.rglob("*"):  # unreadable files back to readable for the clean-up
        if not p.is_symlink() and p.exists() and not stat.S_ISFIFO(p.stat().st_mode):
            p.chmod(0o755)


def test_the_untouched_source_loads(ctx):
    r = runner.invoke(app, ctx.run())
    assert r.exit_code == 0, r.output
    assert f"loaded {MONTH} for test-force: 46 rows in = 46 loaded + 0 quarantined" in r.stdout  # 40 crimes, 4 outcomes, 2 population rows


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ctx: Ctx):
    given = case.setup(ctx)
    args = given if isinstance(given, list) else ctx.run()
    before = digest(ctx.warehouse)
    done = threading.Event()
    releaser = threading.Thread(target=_release_fifos, args=(ctx.fifos, done), daemon=True)
    releaser.start()
    started = time.monotonic()
    try:
        r = runner.invoke(app, [str(a) for a in args])
    finally:
        done.set()
    took = time.monotonic() - started
    assert took < FIFO_GRACE, f"the command took {took:.0f} s (a FIFO read hangs?)"
    everything = r.output + (r.stderr or "")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        pytest.fail("raised instead of one error line:\n" + "".join(traceback.format_exception(r.exception)))
    assert "Traceback" not in everything
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line on stderr, got:\n{r.stderr}"
    assert len(lines[0]) < 2000, "the error line repeats an unbounded input"
    for fragment in case.says:
        assert re.search(fragment, lines[0]), f"{fragment!r} not in {lines[0]!r}"
    assert r.exit_code == case.code, lines[0]
    assert digest(ctx.warehouse) == before, "the warehouse changed"
    reports = ctx.tmp / "reports"
    assert not reports.exists() or not [p for p in reports.rglob("*") if p.is_file()], "a report was written"


# ------------------------------------------------------------------------------------------------ lint


@pytest.mark.parametrize(
    "contract,old,new,where",
    [
        ("recorded_crime.yaml", "{fraction: 0.05, minimumRows: 25}", "lots", "rejectThreshold"),
        ("recorded_crime.yaml", "{fraction: 0.05, minimumRows: 25}", "{fraction: twenty, minimumRows: 25}", "rejectThreshold"),
        ("recorded_crime.yaml", "logicalType: date", "logicalType: colour", "logicalType|recorded_date"),
        ("crime_outcomes.yaml", "apiVersion:", "apiVersion: [\napiVersion_was:", "crime_outcomes"),
    ],
    ids=["rejectThreshold-text", "rejectThreshold-fraction-text", "unknown-logicalType", "malformed-YAML"],
)
def test_lint_reports_a_broken_contract_without_crashing(ctx, contract, old, new, where):
    edit_yaml(ctx.contracts() / contract, old, new)
    r = runner.invoke(app, ["contracts", "lint"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert r.exit_code == 1, r.output
    name = contract.removesuffix(".yaml")
    finding = [line for line in r.stdout.splitlines() if name in line and "error" in line]
    assert finding and re.search(where, r.stdout[r.stdout.index(finding[0]) :]), r.stdout[-2000:]  # the finding may wrap
    assert re.search(r"[1-9]\d* error\(s\)", r.stdout)


# ------------------------------------------------------------------------------------------------ rows, not files


def test_a_huge_field_in_a_row_is_quarantined_without_printing_it(ctx):
    replace_field(_rc(ctx), 6, "hocr_code", "Z" * 3_000_000)
    r = runner.invoke(app, ctx.run())
    assert r.exit_code == 0, r.output
    assert "46 rows in = 45 loaded + 1 quarantined" in r.stdout
    assert "ZZZZ" not in r.output
    import polars as pl

    from etl.core.warehouse import Warehouse

    q = Warehouse(ctx.warehouse).read("quarantine").filter(pl.col("month") == MONTH)
    assert q["row_number"].to_list() == [6]


# ------------------------------------------------------------------------------------------------ demo folder


def test_demo_refuses_a_folder_it_did_not_create(tmp_path):
    folder = tmp_path / "mine"
    (folder / "warehouse").mkdir(parents=True)
    precious = folder / "warehouse" / "precious.txt"
    precious.write_text("keep me")
    r = runner.invoke(app, ["demo", "--dir", str(folder), "--from", "2019-01", "--to", "2019-02", "--engine", "local"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not created by `etl demo`" in lines[0] and str(folder) in lines[0]
    assert precious.read_text() == "keep me" and sorted(p.name for p in folder.rglob("*")) == ["precious.txt", "warehouse"]


def test_demo_refuses_a_non_empty_folder_without_its_marker(tmp_path):
    from etl.demo.generator import DemoFolderError, prepare_demo_dir

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoFolderError, match="not created by `etl demo`"):
        prepare_demo_dir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_takes_a_new_or_empty_folder_and_then_replaces_only_its_own_warehouse(tmp_path):
    from etl.demo.generator import DEMO_MARKER, DemoFolderError, prepare_demo_dir

    paths = prepare_demo_dir(tmp_path / "new")
    assert (tmp_path / "new" / DEMO_MARKER).is_file() and paths.warehouse == tmp_path / "new" / "warehouse"
    (tmp_path / "empty").mkdir()
    prepare_demo_dir(tmp_path / "empty")
    assert (tmp_path / "empty" / DEMO_MARKER).is_file()
    # a previous demo's warehouse is replaced ...
    (paths.warehouse / "audit_runs").mkdir(parents=True)
    (paths.source / "2019-01").mkdir(parents=True)
    again = prepare_demo_dir(tmp_path / "new")
    assert not again.warehouse.exists() and (again.source / "2019-01").is_dir()
    # ... but a part that is not a folder (a file, or a link elsewhere) is never followed or removed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    paths.warehouse.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DemoFolderError, match="not a folder the demo created"):
        prepare_demo_dir(tmp_path / "new")
    assert (elsewhere / "keep.txt").read_text() == "x"


# ------------------------------------------------------------------------------------------------ the one place


def test_every_project_error_class_has_an_exit_code():
    """Every exception class defined in etl/ derives from the one taxonomy (etl.errors), so the command
    line maps it: data errors exit 1, configuration and transient errors exit 2."""
    import ast
    import importlib

    from etl.cli.app import exit_code_for
    from etl.errors import ConfigError, DataError, EtlError, TransientError

    found = []
    for path in sorted((REPO / "etl").rglob("*.py")):
        module_name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                module = importlib.import_module(module_name)
                kind = getattr(module, node.name, None)
                if isinstance(kind, type) and issubclass(kind, BaseException):
                    found.append(kind)
    names = {k.__name__ for k in found}
    assert {
        "ContractError",
        "ExtractError",
        "FileFailure",
        "LoadFailed",
        "PeriodError",
        "PublishedError",
        "ReferenceError_",
        "WarehouseError",
        "DefinitionError",
        "ReportError",
    } <= names
    outside = [f"{k.__module__}.{k.__name__}" for k in found if not issubclass(k, EtlError)]
    assert not outside, f"derive these from a class of etl.errors: {outside}"
    for k in found:
        assert exit_code_for(k) == (1 if issubclass(k, DataError) else 2), k
    from etl.core.warehouse import StaleSnapshot, WarehouseBusy

    assert issubclass(WarehouseBusy, TransientError) and issubclass(StaleSnapshot, TransientError)
    assert issubclass(found[0], (ConfigError, DataError, TransientError))


@pytest.mark.parametrize(
    "exc,code,line",
    [
        (PermissionError(13, "Permission denied", "/data/x.csv"), 2, "/data/x.csv: permission denied"),
        (IsADirectoryError(21, "Is a directory", "/data/x.csv"), 2, "/data/x.csv: is a directory"),
        (NotADirectoryError(20, "Not a directory", "/data/f/w"), 2, "/data/f/w: not a directory"),
        (FileNotFoundError(2, "No such file or directory", "/c/measures.yaml"), 2, "/c/measures.yaml: no such file or directory"),
    ],
    ids=["permission", "is-a-directory", "not-a-directory", "not-found"],
)
def test_os_errors_become_one_line_naming_the_path(exc, code, line):
    from etl.cli.app import error_line

    assert error_line(exc) == (line, code)


def test_importing_the_cli_leaves_the_environment_alone():
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GX_", "DO_NOT_TRACK"))}
    code = "import os; before = dict(os.environ); import etl.cli.app; print(sorted(set(os.environ) - set(before)))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_measures_csv_neutralises_spreadsheet_formulas(ctx, monkeypatch):
    """A text cell that a spreadsheet would run as a formula is written with a leading quote."""
    import polars as pl

    from etl.core.warehouse import Warehouse

    read = Warehouse.read

    def read_with_a_formula(self, table):
        frame = read(self, table)
        if table == "measures" and frame is not None:
            frame = frame.with_columns(
                pl.when(pl.col("measure_id") == "nm_nc_total").then(pl.lit('=HYPERLINK("http://x")')).otherwise(pl.col("note")).alias("note")
            )
        return frame

    monkeypatch.setattr(Warehouse, "read", read_with_a_formula)
    r = runner.invoke(app, ["measures", "--month", LOADED, "--warehouse", str(ctx.warehouse), "--format", "csv", "--measure", "nm_nc_total"])
    assert r.exit_code == 0, r.output
    rows = pl.read_csv(r.stdout.encode(), infer_schema=False)
    assert rows.height > 0 and set(rows["note"].to_list()) == {'\'=HYPERLINK("http://x")'}
    assert not any(v.startswith("'") for v in rows["measure_id"].to_list())
