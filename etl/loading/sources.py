"""Source layouts: where a month's files are, as a plan of force-months for the batch load.

Three layouts are understood:

* a force folder: ``SOURCE/YYYY-MM/recorded_crime.csv ...`` (one force-month);
* a folder of force folders (a region, or the 43 forces): ``SOURCE/<force>/YYYY-MM/...``;
* data.police.uk files anywhere under SOURCE: ``YYYY-MM-<force>-street.csv ...`` (one force-month per force).

Reference data sits in ``SOURCE/reference/`` (and, in a folder of force folders, in each force's own
``reference/``); published workbooks in ``reference/published/``.

One reason to change: a source layout is added or changes. Nothing here reads a file's contents.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from etl.core.contracts import Contract, monthly_contracts
from etl.core.periods import Month
from etl.loading.results import LoadFailed

log = logging.getLogger(__name__)

REFERENCE_FOLDER = Path("reference")
PUBLISHED_FOLDER = REFERENCE_FOLDER / "published"


def present(path: Path) -> bool:
    """A file the source offers: it exists, or it is a link to nothing (then reading it says so,
    rather than the file being reported missing)."""
    return path.exists() or path.is_symlink()


def shown(path: Path, source: Path) -> str:
    """A path as users see it: relative to the source folder when inside it."""
    try:
        return str(path.relative_to(source))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class ForceFiles:
    """One force-month of a plan: the folder it comes from and, for every monthly contract of the
    source's profile, its file (None when the source has none)."""

    root: Path  # the force's folder (its reference/areas.csv is used if it has one)
    files: tuple[tuple[Contract, Path | None], ...]
    force: str | None  # given (--force, a data.police.uk file name) or None: told by the rows

    @property
    def contracts(self) -> list[Contract]:
        return [c for c, _ in self.files]

    def path_of(self, extract: str) -> Path | None:
        return next((p for c, p in self.files if c.extract == extract), None)


@dataclass(frozen=True)
class SourcePlan:
    """A month of a source, planned: the force-months loaded together in one commit."""

    source: Path  # file names are shown relative to it; its reference/ holds the shared reference data
    month: Month
    units: tuple[ForceFiles, ...]
    single: bool = False  # a lone force folder: its failure is raised (`LoadFailed`), not reported


def force_folders(source: Path, month: str) -> list[Path]:
    """Force folders of a regional or national source (SOURCE/<force>/YYYY-MM/<extract>.csv) holding MONTH."""
    if not source.is_dir():
        return []
    return sorted(d for d in source.iterdir() if d.is_dir() and (d / month).is_dir() and d.name != PUBLISHED_FOLDER.parts[0])


def find_police_uk_files(source: Path, month: str) -> dict[str, dict[str, Path]]:
    """data.police.uk files for a month anywhere under SOURCE: force -> extract -> path.

    Names must be exactly as downloaded (``2019-01-metropolitan-street.csv``); renamed copies such as
    re-downloads kept beside the original are not picked up.
    """
    patterns = []
    for c in monthly_contracts("police_uk"):
        suffix = re.escape(c.file_name.split("{force}", 1)[1])  # e.g. "-street.csv"
        patterns.append((c.extract, re.compile(rf"^{re.escape(month)}-(?P<force>[a-z0-9]+(?:-[a-z0-9]+)*?){suffix}$")))
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(source.rglob(f"{month}-*.csv")):
        if PUBLISHED_FOLDER.parts[0] in path.relative_to(source).parts[:1]:
            continue
        for extract, pattern in patterns:
            hit = pattern.match(path.name)
            if hit:
                force_files = found.setdefault(hit.group("force"), {})
                if extract in force_files:
                    raise LoadFailed(
                        month,
                        f"two {extract} files for {hit.group('force')} {month}: {shown(force_files[extract], source)} and {shown(path, source)}; keep one",
                        "duplicate_file",
                    )
                force_files[extract] = path
    return found


def _month_folder_files(folder: Path) -> tuple[tuple[Contract, Path | None], ...]:
    """Every monthly contract of a force folder's month, with its file if the folder offers it."""
    return tuple((c, folder / c.file_name if present(folder / c.file_name) else None) for c in monthly_contracts())


def plan_force_folder(source: str | Path, month: str, force_id: str | None = None) -> SourcePlan:
    """The plan for one month of a force folder (SOURCE/YYYY-MM/...). Raises `LoadFailed` when the month's folder is missing."""
    source = Path(source)
    m = Month.parse(month)
    folder = source / str(m)
    if not folder.is_dir():
        raise LoadFailed(str(m), f"{folder}: no extract folder for {m} (expected {folder}/recorded_crime.csv)", "missing_month")
    return _planned(SourcePlan(source, m, (ForceFiles(source, _month_folder_files(folder), force_id),), single=True), "force folder")


def plan_source_month(source: str | Path, month: str, force_id: str | None = None) -> SourcePlan:
    """The plan for a month of any source layout (see the module docstring); ``force_id`` keeps that force only.

    Raises `LoadFailed` when the source holds nothing for the month (``missing_month``), when the named
    force has no folder of the month, or when data.police.uk offers two files of one extract and force.
    """
    source = Path(source)
    m = Month.parse(month)
    month = str(m)
    if present(source / month / "recorded_crime.csv") or not source.is_dir():
        return plan_force_folder(source, month, force_id)
    folders = force_folders(source, month)
    if folders and force_id:  # one force of a region: its folder only
        folders = [f for f in folders if f.name == force_id]
        if not folders:
            raise LoadFailed(
                month, f"{source}: no force folder named {force_id} holds {month} (expected {source / force_id / month}/recorded_crime.csv)", "missing_month"
            )
    if folders:
        units = tuple(ForceFiles(folder, _month_folder_files(folder / month), force_id) for folder in folders)
        return _planned(SourcePlan(source, m, units), "folder of force folders")
    public = find_police_uk_files(source, month)
    if force_id:
        public = {f: v for f, v in public.items() if f == force_id}
    if not public:
        return plan_force_folder(source, month, force_id)  # reports the missing folder
    by_extract = {c.extract: c for c in monthly_contracts("police_uk")}
    units = tuple(ForceFiles(source, tuple((by_extract[e], files.get(e)) for e in sorted(by_extract)), force) for force, files in sorted(public.items()))
    return _planned(SourcePlan(source, m, units), "data.police.uk files")


def _planned(plan: SourcePlan, layout: str) -> SourcePlan:
    files = sum(1 for u in plan.units for _, p in u.files if p is not None)
    log.info("plan %s %s: %s, %d force-month(s), %d file(s)", plan.source, plan.month, layout, len(plan.units), files)
    return plan
