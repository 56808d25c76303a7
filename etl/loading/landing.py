"""Pulling a month from a landing zone: a folder or bucket given as a URL (``file:///data/landing``,
``s3://bucket/prefix``), read through fsspec.

A local path (no scheme) is not a landing zone: it is loaded where it lies, as before (no copy). For a URL:

1. **List** the month's expected extracts per force. The layouts are those of `etl.loading.sources` (a
   force folder ``URL/YYYY-MM/...``, a folder of force folders ``URL/<force>/YYYY-MM/...``, data.police.uk
   files anywhere under URL); the expected files are the source profile's monthly contracts
   (`etl.core.contracts.monthly_contracts`: ``recorded_crime`` is required, the others optional), for the
   forces named (``forces``), else the forces found. The reference data (``reference/``, a force folder's
   own ``reference/``) come along when present.
2. **Wait** until every expected file is there and complete, or until the deadline (default: now; the
   listing is repeated every ``ETL_LANDING_POLL_SECONDS``, default 60). A file still being written is never
   read. Complete means, by ``ETL_LANDING_READY``:

   * ``stable`` (default): its size and modification time are the same in two listings at least
     ``ETL_LANDING_SETTLE_SECONDS`` apart (default 15), so every run lists at least twice;
   * ``marker``: a completion marker ``<file>.done`` (any content, e.g. empty) sits beside it, written by
     the sender after the file. The marker is not copied.

   At the deadline, a required extract that has not arrived (or is still being written) fails its
   force-month with one plain line naming the force, the month and the file (rule ``file.present``); an
   optional one is a warning of the force-month's report and the month loads without it.
3. **Copy** every file read into the warehouse's raw area, ``<warehouse>/raw/<sha256>.<ext>``: written once
   (created, never overwritten; a file already there under its hash is reused), made read-only, its hash
   checked again after the copy. The raw area is not a Delta table: recovery and the warehouse's checks
   pass it by, and nothing deletes it. A file that changes while it is read is a transient error (retried).
4. **Load** from a local staging folder (``<warehouse>/.landing/``, removed after the load) laid out as the
   landing zone, its files linked from the raw area. The staging folder carries a manifest
   (`etl.core.audit.LANDING_MANIFEST`), so ``audit_runs``' ``source_files`` entries name the landing URL as
   their ``source_root`` (the file is ``source_root + "/" + file``) and the raw copy as ``raw``.

Storage options come from the environment: for S3, the usual ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``/``AWS_REGION`` or ``AWS_PROFILE``,
and ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for an S3-compatible store (MinIO, Ceph, moto);
``s3://`` needs the ``s3`` extra (``pip install police-etl[s3]``). Callers may pass fsspec storage options
explicitly (the flows: the JSON of a Prefect Secret block they name).

One reason to change: how a month is taken from a landing zone (listing, waiting, raw copies, staging).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

from etl.core.audit import LANDING_MANIFEST
from etl.core.contracts import Contract, list_contracts, monthly_contracts
from etl.core.periods import Month
from etl.core.storage import Location, work_dir
from etl.errors import ConfigError, TransientError
from etl.loading.results import LoadFailed, MonthReport

log = logging.getLogger(__name__)

READY_ENV = "ETL_LANDING_READY"  # stable | marker
SETTLE_ENV = "ETL_LANDING_SETTLE_SECONDS"
POLL_ENV = "ETL_LANDING_POLL_SECONDS"
READY_MODES = ("stable", "marker")
DEFAULT_SETTLE_SECONDS = 15.0
DEFAULT_POLL_SECONDS = 60.0
MARKER_SUFFIX = ".done"
RAW_FOLDER = "raw"
STAGING_FOLDER = ".landing"
DEADLINE_TIMEZONE = "Europe/London"  # a deadline written without a zone is London time
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_CHUNK = 8 * 1024 * 1024


class LandingError(ConfigError):
    """The landing zone cannot be used as given: an unknown scheme, a missing bucket or folder, denied access."""


class LandingUnavailable(TransientError):
    """Listing or reading the landing zone failed for a passing reason (a network error, a file that
    changed while it was read): the same task can be tried again."""


def is_landing_url(source: str | Path) -> bool:
    """A source with a scheme (``file://``, ``s3://``): a landing zone. A local path is loaded where it lies."""
    return isinstance(source, str) and _SCHEME.match(source) is not None


# ----------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class WaitSettings:
    """How files are judged complete and how often the landing zone is listed while waiting."""

    ready: str = "stable"
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WaitSettings:
        env = os.environ if environ is None else environ
        ready = env.get(READY_ENV, "").strip().lower() or "stable"
        if ready not in READY_MODES:
            raise LandingError(f"{READY_ENV}={ready}: must be one of {', '.join(READY_MODES)}")
        return cls(ready, _seconds(env, SETTLE_ENV, DEFAULT_SETTLE_SECONDS), _seconds(env, POLL_ENV, DEFAULT_POLL_SECONDS))


def _seconds(env, name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise LandingError(f"{name}={text}: must be a number of seconds, 0 or more")
    return value


def parse_deadline(deadline: str | dt.datetime | None = None, wait_minutes: float | None = None, now: dt.datetime | None = None) -> dt.datetime:
    """When waiting for the month's files stops: ``deadline`` (an ISO 8601 time; without a zone, London
    time), else ``wait_minutes`` from now, else now (no waiting for files not there yet)."""
    now = now or dt.datetime.now(dt.UTC)
    if deadline is not None and deadline != "":
        if isinstance(deadline, dt.datetime):
            when = deadline
        else:
            try:
                when = dt.datetime.fromisoformat(str(deadline).strip())
            except ValueError:
                raise LandingError(f"deadline {deadline}: not a time (expected ISO 8601, e.g. 2026-12-08T09:00 or 2026-12-08T09:00+00:00)") from None
        return when.replace(tzinfo=ZoneInfo(DEADLINE_TIMEZONE)) if when.tzinfo is None else when
    if wait_minutes:
        if wait_minutes < 0:
            raise LandingError(f"wait_minutes {wait_minutes}: must be 0 or more")
        return now + dt.timedelta(minutes=wait_minutes)
    return now


def _shown_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------------------------------------
# The landing zone


@dataclass
class Landing:
    """A landing zone opened through fsspec: its URL as given, its filesystem and its root path there."""

    url: str
    fs: Any  # fsspec.AbstractFileSystem
    root: str

    def location(self, rel: str) -> str:
        """A file's URL as users see it."""
        return f"{self.url.rstrip('/')}/{rel}"

    def listing(self) -> dict[str, tuple[int, float]]:
        """Every file under the root: relative path (``/``-separated) -> (size, modification time)."""
        try:
            self.fs.invalidate_cache()  # fsspec filesystems cache listings: every listing must be fresh
            found = self.fs.find(self.root, detail=True, withdirs=False)
        except (FileNotFoundError, PermissionError) as exc:
            raise _config_error(self.url, exc) from exc
        except Exception as exc:  # a network or service error: retried
            raise LandingUnavailable(f"landing {self.url}: cannot be listed ({_reason(exc)}); the task is retried") from exc
        prefix = self.root.rstrip("/") + "/"
        out = {}
        for name, info in found.items():
            name = name.rstrip("/")
            if not name.startswith(prefix) or info.get("type", "file") != "file":
                continue
            out[name[len(prefix) :]] = (int(info.get("size") or 0), _mtime(info))
        return out

    def path(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"


def _mtime(info: dict) -> float:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _config_error(url: str, exc: BaseException) -> LandingError:
    if isinstance(exc, PermissionError):
        return LandingError(f"landing {url}: access denied ({_reason(exc)}); check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)")
    return LandingError(f"landing {url}: no such bucket or folder")


def open_landing(url: str, storage_options: dict | None = None) -> Landing:
    """The landing zone at URL, with fsspec storage options (default: from the environment, see the module docstring)."""
    import fsspec

    options = dict(storage_options or {})
    protocol = url.split("://", 1)[0].lower()
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in options.get("client_kwargs", {}):
            options["endpoint_url"] = endpoint
    try:
        fs, root = fsspec.url_to_fs(url, **options)
    except ImportError as exc:
        raise LandingError(f"landing {url}: the {protocol}:// scheme needs a package that is not installed ({exc}); for s3:// install police-etl[s3]") from None
    except ValueError as exc:
        raise LandingError(f"landing {url}: {exc}") from None
    landing = Landing(url, fs, str(root).rstrip("/") or str(root))
    _check_root(landing)
    return landing


def _check_root(landing: Landing) -> None:
    """A local landing folder must exist; a bucket must exist (an empty prefix in it is fine: files may come)."""
    fs, root = landing.fs, landing.root
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    try:
        if local:
            if not fs.isdir(root):
                raise LandingError(f"landing {landing.url}: no such folder")
            return
        bucket = root.split("/", 1)[0]
        if not fs.exists(bucket):
            raise LandingError(f"landing {landing.url}: no such bucket ({bucket})")
    except LandingError:
        raise
    except (FileNotFoundError, PermissionError) as exc:
        raise _config_error(landing.url, exc) from exc
    except Exception as exc:
        raise LandingUnavailable(f"landing {landing.url}: cannot be reached ({_reason(exc)}); the task is retried") from exc


# ----------------------------------------------------------------------------------------------------
# What the month should hold


@dataclass(frozen=True)
class Expected:
    """One expected extract file of a force-month in the landing zone (``rel``: relative to its root)."""

    force: str | None  # the force folder or data.police.uk force; None for a lone force folder without --force
    contract: Contract
    rel: str

    @property
    def required(self) -> bool:
        return not self.contract.optional

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.force, self.contract.extract)


@dataclass
class MonthFiles:
    """The month's files in a listing: the layout, the expected extracts per force, the reference files offered."""

    layout: str  # force | folders | police_uk
    expected: list[Expected]
    present: dict[tuple[str | None, str], list[str]]  # (force, extract) -> the files offering it (data.police.uk may offer two)
    reference: dict[str | None, list[str]]  # force (None: the landing's own reference/) -> reference files

    def forces(self) -> list[str | None]:
        return list(dict.fromkeys(e.force for e in self.expected))


def _reference_names() -> set[str]:
    return {c.file_name for c in list_contracts() if c.reference} | {"reference/areas.csv"}


def _reference_files(files: Iterable[str], prefix: str = "") -> list[str]:
    names = _reference_names()
    out = []
    for rel in files:
        if not rel.startswith(prefix):
            continue
        inner = rel[len(prefix) :]
        if inner in names or (inner.startswith("reference/published/") and inner.count("/") == 2 and inner.lower().endswith(".xlsx")):
            out.append(rel)
    return sorted(out)


def month_files(files: Iterable[str], month: str, *, forces: list[str] | None = None, force_id: str | None = None) -> MonthFiles:
    """The month's expected extracts in a listing (relative paths), decided as `etl.loading.sources` plans
    a source: a force folder when ``MONTH/`` holds files, else force folders holding the month (or named
    in ``forces``), else data.police.uk files; with nothing there yet, the layout ``forces`` implies."""
    files = sorted(f for f in files if not f.endswith(MARKER_SUFFIX))
    contracts = monthly_contracts()
    folders, found = _folders(files, month), _police(files, month)
    named = [force_id] if force_id else list(forces or [])
    top = {f.split("/")[0] for f in files if "/" in f}
    if any(f.startswith(f"{month}/") and f.count("/") == 1 for f in files) or not (folders or found or forces or set(named) & top):
        expected = [Expected(force_id, c, f"{month}/{c.file_name}") for c in contracts]
        return _present(MonthFiles("force", expected, {}, {None: _reference_files(files)}), files)
    if folders or not found:
        wanted = named or folders
        expected = [Expected(f, c, f"{f}/{month}/{c.file_name}") for f in wanted for c in contracts]
        refs: dict[str | None, list[str]] = {None: _reference_files(files)}
        refs.update({f: _reference_files(files, f"{f}/") for f in wanted})
        return _present(MonthFiles("folders", expected, {}, refs), files)
    wanted = named or sorted(found)
    police = monthly_contracts("police_uk")
    expected = [Expected(f, c, c.file_name.replace("{month}", month).replace("{force}", f)) for f in wanted for c in police]
    present = {e.key: found.get(e.force or "", {}).get(e.contract.extract, []) for e in expected}
    return MonthFiles("police_uk", expected, {k: p for k, p in present.items() if p}, {None: _reference_files(files)})


def _present(plan: MonthFiles, files: list[str]) -> MonthFiles:
    have = set(files)
    plan.present = {e.key: [e.rel] for e in plan.expected if e.rel in have}
    return plan


def _folders(files: list[str], month: str) -> list[str]:
    """Force folders (``<force>/MONTH/<file>``) holding the month."""
    return sorted({p.split("/")[0] for p in files if p.count("/") == 2 and p.split("/")[1] == month and p.split("/")[0] != "reference"})


def _police(files: list[str], month: str) -> dict[str, dict[str, list[str]]]:
    """data.police.uk files of the month anywhere outside ``reference/``: force -> extract -> files."""
    patterns = []
    for c in monthly_contracts("police_uk"):
        suffix = re.escape(c.file_name.split("{force}", 1)[1])
        patterns.append((c.extract, re.compile(rf"^{re.escape(month)}-(?P<force>[a-z0-9]+(?:-[a-z0-9]+)*?){suffix}$")))
    found: dict[str, dict[str, list[str]]] = {}
    for rel in files:
        if rel.split("/")[0] == "reference":
            continue
        name = PurePosixPath(rel).name
        for extract, pattern in patterns:
            hit = pattern.match(name)
            if hit:
                found.setdefault(hit.group("force"), {}).setdefault(extract, []).append(rel)
    return found


# ----------------------------------------------------------------------------------------------------
# Waiting until the month's files are complete


@dataclass
class Arrival:
    """The month's files at the end of waiting."""

    month: str
    plan: MonthFiles
    ready: dict[str, tuple[int, float]]  # complete files to read (extracts and reference data) -> (size, mtime)
    unfinished: set[str]  # present but not complete at the deadline (never read)
    deadline: dt.datetime
    listings: int = 0

    def missing(self) -> list[Expected]:
        """Expected extracts with no complete file at the deadline."""
        return [e for e in self.plan.expected if not any(p in self.ready for p in self.plan.present.get(e.key, []))]


def _complete(files: dict[str, tuple[int, float]], previous: dict[str, tuple[int, float]] | None, settings: WaitSettings) -> set[str]:
    if settings.ready == "marker":
        return {f for f in files if f + MARKER_SUFFIX in files}
    if previous is None:
        return set()
    return {f for f, seen in files.items() if previous.get(f) == seen}


def await_month(
    landing: Landing,
    month: str,
    *,
    forces: list[str] | None = None,
    force_id: str | None = None,
    deadline: dt.datetime | None = None,
    settings: WaitSettings | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Arrival:
    """List the landing zone until every expected file of the month is complete, or the deadline passes.

    In ``stable`` mode a file is complete when two listings at least ``settle_seconds`` apart show the same
    size and modification time; past the deadline, files first seen (or changed) in the last listing get one
    more listing to settle, and are left unread if they changed again."""
    settings = settings or WaitSettings.from_env()
    deadline = deadline or dt.datetime.now(dt.UTC)
    until = deadline.timestamp()
    previous: dict[str, tuple[int, float]] | None = None
    listed_at = 0.0
    listings = after_deadline = 0
    while True:
        files = landing.listing()
        now = clock()
        listings += 1
        if previous is not None and now - listed_at < settings.settle_seconds - 0.001:  # (a millisecond's leeway for clock rounding)
            previous = None  # too close together to tell a finished file from one being written
        complete = _complete(files, previous, settings)
        plan = month_files(files, month, forces=forces, force_id=force_id)
        wanted = {p for paths in plan.present.values() for p in paths} | {p for refs in plan.reference.values() for p in refs}
        waiting_for = [e for e in plan.expected if not any(p in complete for p in plan.present.get(e.key, []))]
        settling = {p for p in wanted if p not in complete}
        if not waiting_for and not settling:
            break
        if now >= until:
            after_deadline += 1
            if settings.ready == "marker" or not settling or after_deadline > 1:
                break
        previous, listed_at = files, now
        pause = settings.settle_seconds if settling and settings.ready == "stable" else settings.poll_seconds
        if now < until:
            pause = min(pause, max(until - now, settings.settle_seconds if settling and settings.ready == "stable" else 0.0))
        log.info(
            "landing %s %s: waiting for %d expected file(s) and %d file(s) settling; next listing in %.0f s (deadline %s)",
            landing.url,
            month,
            len(waiting_for),
            len(settling),
            pause,
            _shown_time(deadline),
        )
        sleep(pause)
    ready = {p: files[p] for p in wanted if p in complete}
    log.info("landing %s %s: %d file(s) complete after %d listing(s), %s layout", landing.url, month, len(ready), listings, plan.layout)
    return Arrival(month, plan, ready, wanted - set(ready), deadline, listings)


# ----------------------------------------------------------------------------------------------------
# The raw area


@dataclass(frozen=True)
class RawCopy:
    rel: str
    path: Path  # <warehouse>/raw/<sha256>.<ext>
    sha256: str
    reused: bool


def raw_area(warehouse: str | Path) -> Path | str:
    """The raw area of a warehouse: its ``raw`` folder, or ``<url>/raw`` for a warehouse on an object store."""
    loc = Location.of(warehouse)
    return loc.child(RAW_FOLDER) if loc.remote else Path(loc.url) / RAW_FOLDER


def publish_remote(copy: RawCopy, warehouse: Location) -> str:
    """Upload a raw copy (made in the local staging area) to the raw area of a warehouse on an object store, under
    its sha256 name, unless it is already there (never overwritten: a conditional create); returns its URL."""
    key = warehouse.key(RAW_FOLDER, copy.path.name)
    url = warehouse.child(RAW_FOLDER, copy.path.name)
    fs = warehouse.fs
    try:
        if fs.exists(key):
            size = int(fs.info(key).get("size") or 0)
        else:
            try:
                fs.put_file(str(copy.path), key, mode="create")
                return url
            except FileExistsError:  # another run uploaded the same file a moment ago
                size = int(fs.info(key).get("size") or 0)
    except OSError as exc:
        raise LandingUnavailable(f"{url}: the raw copy could not be written ({_reason(exc)}); the task is retried") from exc
    if size != copy.path.stat().st_size:
        raise ConfigError(f"{url}: the raw copy's size differs from its landing file of the same sha256; the raw area is damaged")
    return url


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_to_raw(landing: Landing, rel: str, seen: tuple[int, float], raw: Path) -> RawCopy:
    """Copy one landing file into the raw area under its sha256, never overwriting a copy already there;
    the copy's hash is checked after it is written. A file that changed while it was read is transient."""
    raw.mkdir(parents=True, exist_ok=True)
    ext = PurePosixPath(rel).suffix.lower()
    incoming = raw / f".incoming-{uuid.uuid4().hex}{ext}"
    digest = hashlib.sha256()
    size = 0
    try:
        with incoming.open("xb") as out:  # a local write error (a full disk) is not the landing zone's: raised as it is
            src = _remote(landing, rel, lambda: landing.fs.open(landing.path(rel), "rb"))
            try:
                while block := _remote(landing, rel, lambda: src.read(_CHUNK)):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
            finally:
                src.close()
        landing.fs.invalidate_cache()
        after = _remote(landing, rel, lambda: landing.fs.info(landing.path(rel)))
        if size != seen[0] or (int(after.get("size") or 0), _mtime(after)) != seen:
            raise LandingUnavailable(f"{landing.location(rel)}: changed while it was read; the task is retried")
        sha = digest.hexdigest()
        final = raw / f"{sha}{ext}"
        reused = not _publish(incoming, final)
        if reused and final.stat().st_size != size:
            raise ConfigError(f"{final}: the raw copy's size differs from its landing file {landing.location(rel)} of the same sha256; the raw area is damaged")
        if not reused and _sha256_of(final) != sha:
            raise LandingUnavailable(f"{final}: the copy of {landing.location(rel)} does not match its sha256 after writing; the task is retried")
        return RawCopy(rel, final, sha, reused)
    finally:
        incoming.unlink(missing_ok=True)


def _remote(landing: Landing, rel: str, call: Callable[[], Any]) -> Any:
    """A call on the landing zone; any failure of it (a network error, the file gone) is transient."""
    try:
        return call()
    except Exception as exc:
        raise LandingUnavailable(f"{landing.location(rel)}: could not be read ({_reason(exc)}); the task is retried") from exc


def _publish(incoming: Path, final: Path) -> bool:
    """Give the new copy its final name unless a copy is already there (never overwritten); True when written."""
    if final.exists():
        return False
    try:
        os.link(incoming, final)  # atomic, and fails if the name exists
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: an exclusive create
        try:
            with incoming.open("rb") as src, final.open("xb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        except FileExistsError:
            return False
    final.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return True


# ----------------------------------------------------------------------------------------------------
# Landing a month: wait, copy, stage


@dataclass
class Landed:
    """A month taken from a landing zone: the staging folder to load (None when nothing is to be loaded),
    the force-months failed for a missing required extract, and the warnings of missing optional ones."""

    url: str
    month: str
    layout: str
    staging: str | None
    failed: list[MonthReport] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # force ("" for the lone force folder) -> warnings
    raw: dict[str, str] = field(default_factory=dict)  # landing file (relative) -> its raw copy
    single_failure: str | None = None  # a lone force folder's missing required extract (raised as LoadFailed)

    def to_dict(self) -> dict:
        return {**self.__dict__, "failed": [r.to_dict() for r in self.failed]}

    @classmethod
    def from_dict(cls, data: dict) -> Landed:
        return cls(**{**data, "failed": [MonthReport(**r) for r in data.get("failed", [])]})


def _missing_message(landing: Landing, e: Expected, arrival: Arrival, unfinished: bool, marker: bool) -> str:
    when = _shown_time(arrival.deadline)
    if unfinished:
        how = "had no completion marker" if marker else "was still being written"
        state = f"{how} ({e.rel}{MARKER_SUFFIX} expected)" if marker else how
        return f"{landing.location(e.rel)}: {state} at the deadline {when}; not read"
    return f"{landing.location(e.rel)}: had not arrived by the deadline {when}"


def land_month(
    source: str,
    month: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    forces: list[str] | None = None,
    deadline: dt.datetime | None = None,
    storage_options: dict | None = None,
    settings: WaitSettings | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Landed:
    """Wait for the month's files in the landing zone SOURCE (a URL), copy the complete ones of the
    force-months that can load into the raw area, and lay them out in a staging folder for the load."""
    month = str(Month.parse(month))
    settings = settings or WaitSettings.from_env()
    landing = open_landing(source, storage_options)
    arrival = await_month(landing, month, forces=forces, force_id=force_id, deadline=deadline, settings=settings, clock=clock, sleep=sleep)
    plan = arrival.plan
    landed = Landed(source, month, plan.layout, None)
    missing = arrival.missing()
    blocked: set[str | None] = set()
    for e in missing:
        present = plan.present.get(e.key, [])
        message = _missing_message(landing, e, arrival, bool(present), settings.ready == "marker")
        if e.required:
            who = e.force or "the force folder"
            text = f"{message}; the {e.contract.extract} extract is required every month"
            log.warning("landing %s %s %s: %s", source, month, who, text)
            blocked.add(e.force)
            if plan.layout == "force":
                landed.single_failure = text
            else:
                landed.failed.append(MonthReport(month=month, outcome="failed", force_id=e.force, message=text))
        else:
            text = f"{message}; the optional {e.contract.extract} extract is loaded without it"
            log.info("landing %s %s %s: %s", source, month, e.force or "the force folder", text)
            landed.warnings.setdefault(e.force or "", []).append(text)
    for who, texts in landed.warnings.items():
        log.warning(
            "landing %s %s %s: %d optional extract(s) not there at the deadline, loaded without them", source, month, who or "the force folder", len(texts)
        )
    for rel in sorted(arrival.unfinished - {p for e in missing for p in plan.present.get(e.key, [])}):
        text = f"{landing.location(rel)}: still being written at the deadline {_shown_time(arrival.deadline)}; not read"
        log.warning("landing %s %s: %s", source, month, text)
        landed.warnings.setdefault("", []).append(text)
    if plan.layout == "police_uk":  # a force of data.police.uk with none of its files is not loaded (and said so)
        for f in plan.forces():
            if not any(p in arrival.ready for e in plan.expected if e.force == f for p in plan.present.get(e.key, [])):
                blocked.add(f)
                text = f"{source}: no data.police.uk file of {month} for {f} had arrived by the deadline {_shown_time(arrival.deadline)}"
                landed.failed.append(MonthReport(month=month, outcome="failed", force_id=f, message=text))
    to_read = _files_to_read(arrival, blocked)
    if not to_read or landed.single_failure:
        return landed
    landed.staging = str(_stage(landing, arrival, to_read, warehouse, landed))
    return landed


def _files_to_read(arrival: Arrival, blocked: set[str | None]) -> list[str]:
    plan = arrival.plan
    extracts = [p for e in plan.expected if e.force not in blocked for p in plan.present.get(e.key, []) if p in arrival.ready]
    if not extracts:
        return []
    live = {e.force for e in plan.expected if e.force not in blocked}
    refs = [p for owner, paths in plan.reference.items() if owner is None or owner in live for p in paths if p in arrival.ready]
    return sorted(set(extracts) | set(refs))


def _stage(landing: Landing, arrival: Arrival, to_read: list[str], warehouse: str | Path, landed: Landed) -> Path:
    """Copy the files into the raw area (threads) and link them into a new staging folder, with its manifest.
    For a warehouse on an object store, the copies are made in a local folder next to the staging folders and then
    uploaded to its raw area."""
    loc = Location.of(warehouse)
    base = (work_dir(loc) if loc.remote else Path(loc.url)) / STAGING_FOLDER
    raw = base / RAW_FOLDER if loc.remote else Path(loc.url) / RAW_FOLDER
    started = time.perf_counter()

    def copy(rel: str) -> tuple[RawCopy, str]:
        made = copy_to_raw(landing, rel, arrival.ready[rel], raw)
        return made, publish_remote(made, loc) if loc.remote else str(made.path.resolve())

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(to_read)))) as pool:
        copies = list(pool.map(copy, to_read))
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{arrival.month}-", dir=base))
    for made, where in copies:
        target = staging / made.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(made.path, target)
        except OSError:
            shutil.copyfile(made.path, target)
        landed.raw[made.rel] = where
    (staging / LANDING_MANIFEST).write_text(json.dumps({"source_root": landing.url, "raw": landed.raw}, indent=1), encoding="utf-8")
    log.info(
        "landing %s %s: %d file(s) copied to %s (%d already there) and staged in %s, %.2f s",
        landing.url,
        arrival.month,
        len(copies),
        raw,
        sum(c.reused for c, _ in copies),
        staging,
        time.perf_counter() - started,
    )
    return staging


# ----------------------------------------------------------------------------------------------------
# Loading what landed


LoadFolder = Callable[..., list[MonthReport]]  # (folder, month, warehouse, *, force_id, compute) -> reports


def load_landed(
    landed: Landed, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True, load: LoadFolder | None = None
) -> list[MonthReport]:
    """Load a landed month from its staging folder (removed afterwards) and add the force-months that
    failed for a missing required extract. A lone force folder's failure is raised (`LoadFailed`).
    ``load``: how the folder is loaded (default `etl.loading.load.load_source_month`; the Dask path passes its own)."""
    from etl.loading.load import load_source_month

    load = load or load_source_month
    try:
        if landed.single_failure:
            raise LoadFailed(landed.month, landed.single_failure, "file.present")
        reports = load(landed.staging, landed.month, warehouse, force_id=force_id, compute=compute) if landed.staging else []
    finally:
        if landed.staging:
            shutil.rmtree(landed.staging, ignore_errors=True)
    everything = [w for ws in landed.warnings.values() for w in ws]
    for r in reports:
        extra = everything if len(reports) == 1 else landed.warnings.get(r.force_id or "", []) + landed.warnings.get("", [])
        r.warnings = list(r.warnings or []) + [w for w in extra if w not in (r.warnings or [])]
    return reports + landed.failed


def load_landing_month(
    source: str,
    month: str,
    warehouse: str | Path,
    *,
    force_id: str | None = None,
    forces: list[str] | None = None,
    deadline: dt.datetime | None = None,
    storage_options: dict | None = None,
    compute: bool = True,
    settings: WaitSettings | None = None,
    load: LoadFolder | None = None,
) -> list[MonthReport]:
    """A month of a landing zone (URL): wait for its files, copy them to the raw area, load them (``load``: as
    `load_landed`)."""
    landed = land_month(source, month, warehouse, force_id=force_id, forces=forces, deadline=deadline, storage_options=storage_options, settings=settings)
    return load_landed(landed, warehouse, force_id=force_id, compute=compute, load=load)


def load_month_from(
    source: str | Path, month: str, warehouse: str | Path, *, force_id: str | None = None, compute: bool = True, **landing: Any
) -> list[MonthReport]:
    """A month of any source: a landing URL (`load_landing_month`; ``landing``: its keyword arguments), or a
    local folder loaded where it lies (`etl.loading.load.load_source_month`, no copy)."""
    if isinstance(source, str) and is_landing_url(source):
        return load_landing_month(source, month, warehouse, force_id=force_id, compute=compute, **landing)
    from etl.loading.load import load_source_month

    return load_source_month(source, month, warehouse, force_id=force_id, compute=compute)


__all__ = [
    "MARKER_SUFFIX",
    "POLL_ENV",
    "READY_ENV",
    "SETTLE_ENV",
    "Arrival",
    "Landed",
    "Landing",
    "LandingError",
    "LandingUnavailable",
    "WaitSettings",
    "await_month",
    "copy_to_raw",
    "is_landing_url",
    "land_month",
    "load_landed",
    "load_landing_month",
    "load_month_from",
    "month_files",
    "open_landing",
    "parse_deadline",
    "raw_area",
]
