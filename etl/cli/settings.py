"""Where the command line's warehouse is: changes when the order or the places a setting is read from do.

The warehouse folder of ``etl run``, ``backfill``, ``measures`` and ``report`` is, first found:

1. ``--warehouse DIR`` (relative to the current folder);
2. the environment variable ``ETL_WAREHOUSE`` (relative to the current folder; empty counts as unset);
3. the project configuration file ``etl.toml``: the nearest one in the current folder or a parent
   folder, key ``warehouse`` (a string; a relative path is relative to the folder of the file)::

       # etl.toml
       warehouse = "data/warehouse"

   A file without the key is allowed (the default then applies); a file that is not TOML, or whose
   ``warehouse`` is not a non-empty string, is a configuration error (exit 2) naming the file;
4. the default ``./warehouse``.

`resolve_warehouse` returns the absolute folder and where the setting came from, so that a "no
table" error can say which warehouse it looked in and how to point elsewhere. ``etl demo`` writes
its own ``etl.toml`` (`write_demo_config`) only where there is none or where the demo wrote it before.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from etl.core.storage import Location, is_remote
from etl.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "etl.toml"
ENV_WAREHOUSE = "ETL_WAREHOUSE"
DEFAULT_WAREHOUSE = Path("warehouse")
# The first line of an etl.toml written by `etl demo`: only such a file is ever rewritten by the demo.
DEMO_CONFIG_MARK = "# Written by `etl demo`"
HOW_TO_POINT_ELSEWHERE = f'point elsewhere with --warehouse DIR, {ENV_WAREHOUSE}=DIR or warehouse = "DIR" in {CONFIG_FILE}'


class SettingsError(ConfigError):
    """A project configuration file that cannot be used (exit 2)."""


@dataclass(frozen=True)
class WarehouseSetting:
    """The warehouse folder (absolute), or its ``s3://`` URL, and where the setting came from."""

    path: Path | str
    origin: str  # "option", "environment", "config", "default" (or "demo": the demo's own)
    config_file: Path | None = None  # the etl.toml that set it (origin "config")

    @property
    def source(self) -> str:
        """Where the setting came from, in words: 'set by --warehouse', 'from /x/etl.toml', ..."""
        if self.origin == "option":
            return "set by --warehouse"
        if self.origin == "environment":
            return f"set by {ENV_WAREHOUSE}"
        if self.origin == "config":
            return f"set in {self.config_file}"
        if self.origin == "demo":
            return "made by etl demo"
        return "the default ./warehouse"

    @property
    def name(self) -> str:
        """How a message names the warehouse: 'warehouse /x/w (set by --warehouse)'."""
        return f"warehouse {self.path} ({self.source})"

    def missing(self, what: str, remedy: str = "run `etl backfill` or `etl run` first") -> str:
        """One error line: the warehouse looked in, where that setting came from, what is missing, and how
        to point elsewhere."""
        return f"{self.name}: {what}; {remedy}, or {HOW_TO_POINT_ELSEWHERE}"


def find_config(start: Path) -> Path | None:
    """The nearest ``etl.toml`` in ``start`` or a parent folder (None: none)."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def read_config(path: Path) -> dict:
    """An ``etl.toml`` as a dict (SettingsError naming the file when it is not TOML)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None


def _absolute(text: Path | str, base: Path) -> Path | str:
    """A folder made absolute against ``base``; an object-store URL (`etl.core.storage`) as it is."""
    if is_remote(str(text)):
        return str(Location.of(str(text)).url)
    if isinstance(text, str) and text.lower().startswith("file://"):
        text = Location.of(text).url
    path = Path(text).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def resolve_warehouse(option: Path | str | None = None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> WarehouseSetting:
    """The warehouse: ``--warehouse``, then ``ETL_WAREHOUSE``, then ``warehouse`` in the nearest ``etl.toml``, then ``./warehouse``."""
    environ = os.environ if environ is None else environ
    here = Path(os.path.abspath(cwd if cwd is not None else Path.cwd()))
    if option is not None and str(option) != "":
        setting = WarehouseSetting(_absolute(option, here), "option")
    elif environ.get(ENV_WAREHOUSE, "").strip():
        setting = WarehouseSetting(_absolute(environ[ENV_WAREHOUSE].strip(), here), "environment")
    else:
        setting = _from_config(here) or WarehouseSetting(_absolute(DEFAULT_WAREHOUSE, here), "default")
    log.info("warehouse %s (%s)", setting.path, setting.origin)
    return setting


def _from_config(here: Path) -> WarehouseSetting | None:
    config = find_config(here)
    if config is None:
        return None
    value = read_config(config).get("warehouse")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f'{config}: warehouse must be a folder path in quotes, e.g. warehouse = "data/warehouse"')
    return WarehouseSetting(_absolute(value.strip(), config.parent), "config", config)


def write_demo_config(folder: Path, warehouse: Path) -> Path | None:
    """Write ``folder/etl.toml`` pointing at ``warehouse``, unless an ``etl.toml`` not written by the demo
    is there (a user's file is never overwritten). Returns the file written, or None when left alone."""
    config = folder / CONFIG_FILE
    if config.exists() or config.is_symlink():
        try:
            first = config.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            return None
        if not first.startswith(DEMO_CONFIG_MARK):
            return None
    base, target = Path(os.path.abspath(folder)), Path(os.path.abspath(warehouse))
    try:
        shown = target.relative_to(base).as_posix()
    except ValueError:
        shown = target.as_posix()
    text = (
        f"{DEMO_CONFIG_MARK}: the warehouse that etl commands run in this folder use.\n"
        "# `etl demo` rewrites this file only while its first line is unchanged; edit that line to keep your own settings.\n"
        f"warehouse = {_toml_string(shown)}\n"
    )
    config.write_text(text, encoding="utf-8")
    log.info("wrote %s (warehouse %s)", config, target)
    return config


def _toml_string(text: str) -> str:
    """A TOML basic string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_WAREHOUSE",
    "DEMO_CONFIG_MARK",
    "ENV_WAREHOUSE",
    "SettingsError",
    "WarehouseSetting",
    "find_config",
    "read_config",
    "resolve_warehouse",
    "write_demo_config",
]
