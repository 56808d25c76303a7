"""Versioned reference definitions: the Home Office offence code list and the offence groups.

Both are declarative YAML files under ``contracts/`` with a file version and effective dates, so a
definition change is a reviewed file change and old figures stay reproducible. This module only
reads them into polars frames that the validation and measures code join against.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from etl.core.paths import require_regular_file
from etl.core.periods import Month
from etl.errors import ConfigError
from etl.resources import contracts_dir  # re-exported: where contracts and definitions live

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


def yaml_load(stream):
    """yaml.safe_load, with the C loader when PyYAML has it (contracts are parsed on every run)."""
    return yaml.load(stream, Loader=_SafeLoader)


class ReferenceError_(ConfigError, ValueError):
    """A reference or definition file that cannot be used, with the file named."""


def _read_yaml(path: Path) -> dict:
    require_regular_file(path, ReferenceError_)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml_load(fh)
    except FileNotFoundError as exc:
        raise ReferenceError_(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ReferenceError_(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "version" not in data:
        raise ReferenceError_(f"{path}: expected a mapping with a 'version'")
    return data


def _date_or_none(value: object, path: Path, what: str) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ReferenceError_(f"{path}: {what} '{value}' is not a date YYYY-MM-DD") from exc


@dataclass(frozen=True)
class CodeList:
    """A code list whose codes are valid between dates."""

    name: str
    version: str
    path: Path
    frame: pl.DataFrame  # code (str), description, valid_from (date), valid_to (date | null)

    @property
    def codes(self) -> list[str]:
        return self.frame["code"].to_list()

    def valid_on(self, code_col: str, date: pl.Expr) -> pl.Expr:
        """Expression over a frame holding ``code_col``: the code is valid on the Date expression ``date``.

        Written as a join-free expression (codes mapped to their validity dates) so that it keeps
        row order and can run inside a pandera check on any frame.
        """
        codes = self.frame["code"]
        valid_from = pl.col(code_col).replace_strict(codes, self.frame["valid_from"], default=None, return_dtype=pl.Date)
        far_future = dt.date(9999, 12, 31)
        valid_to = pl.col(code_col).replace_strict(codes, self.frame["valid_to"].fill_null(far_future), default=None, return_dtype=pl.Date)
        return (date >= valid_from) & (date <= valid_to)


@lru_cache(maxsize=8)
def load_code_list(path: str | Path | None = None) -> CodeList:
    path = Path(path) if path else contracts_dir() / "reference" / "hocr_offence_codes.yaml"
    data = _read_yaml(path)
    rows = []
    seen: set[str] = set()
    for i, entry in enumerate(data.get("codes") or []):
        code = str(entry.get("code", "")).strip()
        if not code:
            raise ReferenceError_(f"{path}: entry {i + 1} has no code")
        if code in seen:
            raise ReferenceError_(f"{path}: code '{code}' is listed twice")
        seen.add(code)
        vf = _date_or_none(entry.get("valid_from"), path, f"valid_from of code {code}")
        vt = _date_or_none(entry.get("valid_to"), path, f"valid_to of code {code}")
        if vf is None:
            raise ReferenceError_(f"{path}: code '{code}' has no valid_from date")
        if vt is not None and vt < vf:
            raise ReferenceError_(f"{path}: code '{code}' is valid_to before valid_from")
        rows.append({"code": code, "description": str(entry.get("description", "")), "valid_from": vf, "valid_to": vt})
    frame = pl.DataFrame(rows, schema={"code": pl.Utf8, "description": pl.Utf8, "valid_from": pl.Date, "valid_to": pl.Date})
    return CodeList(name=path.stem, version=str(data["version"]), path=path, frame=frame)


@dataclass(frozen=True)
class OffenceGroups:
    version: str
    path: Path
    # group, group_version, code, from_index, to_index (month indexes, inclusive; open ends filled)
    membership: pl.DataFrame
    descriptions: dict[str, str]

    def group_ids(self) -> list[str]:
        return sorted(self.descriptions)


_OPEN_START = Month.of(1900, 1).index
_OPEN_END = Month.of(9999, 12).index


@lru_cache(maxsize=8)
def load_offence_groups(path: str | Path | None = None) -> OffenceGroups:
    path = Path(path) if path else contracts_dir() / "definitions" / "offence_groups.yaml"
    data = _read_yaml(path)
    groups = data.get("groups") or {}
    rows = []
    descriptions = {}
    for gid, spec in groups.items():
        descriptions[gid] = str(spec.get("description", ""))
        versions = spec.get("versions") or []
        if not versions:
            raise ReferenceError_(f"{path}: group '{gid}' has no versions")
        spans = []
        for v in versions:
            ver = str(v.get("version", "")).strip()
            if not ver:
                raise ReferenceError_(f"{path}: a version of group '{gid}' has no version label")
            start = Month.parse(v["effective_from"]).index if v.get("effective_from") else _OPEN_START
            end = Month.parse(v["effective_to"]).index if v.get("effective_to") else _OPEN_END
            if end < start:
                raise ReferenceError_(f"{path}: group '{gid}' version {ver} ends before it starts")
            spans.append((start, end, ver))
            for code in v.get("codes") or []:
                rows.append({"group": gid, "group_version": ver, "code": str(code), "from_index": start, "to_index": end})
        spans.sort()
        for (_s1, e1, v1), (s2, _e2, v2) in zip(spans, spans[1:]):
            if s2 <= e1:
                raise ReferenceError_(f"{path}: group '{gid}' versions {v1} and {v2} overlap")
    membership = pl.DataFrame(
        rows,
        schema={"group": pl.Utf8, "group_version": pl.Utf8, "code": pl.Utf8, "from_index": pl.Int32, "to_index": pl.Int32},
    )
    return OffenceGroups(version=str(data["version"]), path=path, membership=membership, descriptions=descriptions)
