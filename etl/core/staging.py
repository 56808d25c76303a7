"""Rows staged on disk while a large file is loaded, so that no step holds the whole file's rows in memory.

A file read in chunks (`etl.core.chunks`) keeps its text rows, and then its curated and quarantined rows
(`etl.core.validation`), as Parquet files in a `Stage`: a temporary folder under ``ETL_STAGING_DIR`` (default:
the system's temporary folder), one per file, removed as soon as nothing refers to it any more (the run ended,
or failed), at the latest when the process exits.

A `StagedFrame` reads such rows back lazily. It offers the read-only `polars.DataFrame` methods the loaders use
on extract results - ``height``, ``columns``, ``schema``, ``lazy()``, ``select()`` (only the columns selected are
read and returned as a DataFrame), ``filter()`` and ``with_columns()`` (still on disk), ``group_by().agg()``,
``head()``, ``frame["column"]`` - and ``to_arrow()`` as a stream of record batches, which a Delta write consumes
batch by batch in one transaction. Any other DataFrame method reads the rows into memory first (correct, not
bounded). `concat` and `transform` keep a mix of DataFrames and staged frames on disk.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import polars as pl
import pyarrow as pa

from etl.errors import ConfigError

log = logging.getLogger(__name__)

STAGING_ENV = "ETL_STAGING_DIR"


def staging_root() -> Path:
    """Where stages are made: ``ETL_STAGING_DIR`` if set, else the system's temporary folder."""
    text = os.environ.get(STAGING_ENV, "").strip()
    return Path(text) if text else Path(tempfile.gettempdir())


class _Removed:
    """A temporary place removed by `close` or when it is garbage collected (``_finalizer`` removes it)."""

    path: Any
    storage_options: dict[str, str] | None = None  # what polars needs to read its files (None: a local folder)
    _finalizer: weakref.finalize

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}{', closed' if self.closed else ''})"


class Stage(_Removed):
    """A temporary folder of staged Parquet files, removed by `close`, when the stage is garbage collected
    (every frame over it gone) or when the process exits."""

    def __init__(self, what: str):
        root = staging_root()
        try:
            root.mkdir(parents=True, exist_ok=True)
            folder = tempfile.mkdtemp(prefix=f"etl-{what}-", dir=root)
        except OSError as exc:
            raise ConfigError(
                f"{root}: cannot create a staging folder for a large file ({exc.strerror or exc}); set {STAGING_ENV} to a writable folder"
            ) from exc
        self.path = Path(folder)
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)
        self._count = itertools.count(1)

    def write(self, frame: pl.DataFrame, kind: str) -> Path:
        """Write rows as a new Parquet file of the stage; a full disk is a plain error naming the folder."""
        path = self.path / f"{kind}-{next(self._count):06d}.parquet"
        try:
            frame.write_parquet(path, compression="lz4", statistics=False)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ConfigError(
                f"{self.path}: cannot stage the rows of a large file there ({exc}); free disk space or set {STAGING_ENV} to another folder"
            ) from exc
        return path


SHARED_STAGING_ENV = "ETL_SHARED_STAGING"


class SharedStage(_Removed):
    """A staging area that workers on other machines can write to and the parent read from: a prefix of an object
    store (``ETL_SHARED_STAGING=s3://bucket/prefix``; one ``etl-<what>-<id>/`` prefix per stage), removed by `close`
    or when the stage is garbage collected. Files are named by the writers; rows are written and read with
    `storage_options` (`etl.core.storage`)."""

    def __init__(self, what: str, root: str):
        from etl.core.storage import Location

        self.location = Location.of(f"{Location.of(root, 'staging area').url}/etl-{what}-{uuid.uuid4().hex[:16]}", "staging area")
        self.path = self.location.url
        self.storage_options = self.location.storage_options
        self._finalizer = weakref.finalize(self, _remove_prefix, self.location)


def _remove_prefix(location: Any) -> None:
    try:
        if location.fs.exists(location.key()):
            location.fs.rm(location.key(), recursive=True)
    except Exception as exc:  # never fails a run: the prefix is a temporary one, said where it is
        log.warning("staging area %s could not be removed (%s); remove it by hand", location.url, type(exc).__name__)


def shared_stage(what: str) -> Stage | SharedStage:
    """The stage Dask workers write their rows to: on the object store ``ETL_SHARED_STAGING`` names when set (for
    workers on other machines), else a local `Stage` (workers on this machine, or a shared mount)."""
    root = os.environ.get(SHARED_STAGING_ENV, "").strip()
    if not root:
        return Stage(what)
    from etl.core.storage import is_remote

    if not is_remote(root):
        raise ConfigError(f"{SHARED_STAGING_ENV}={root}: give an s3://bucket/prefix URL (or leave it unset to stage in {STAGING_ENV})")
    return SharedStage(what, root)


def _empty(schema: pl.Schema | dict) -> pl.LazyFrame:
    return pl.LazyFrame(schema=schema)


class StagedFrame:
    """Rows on disk (or any lazy query over them), read back only as far as an operation needs them.

    ``height`` is the number of rows when known (counted on demand otherwise); ``keep`` holds what must stay
    alive while the rows are read (the `Stage` whose files the query scans). A `LazyFrame` from `lazy` does
    not keep the stage alive: use it while the frame exists.
    """

    def __init__(self, lazy: pl.LazyFrame, height: int | None = None, keep: tuple[Any, ...] = ()):
        self._lf = lazy
        self._height = height
        self._keep = keep

    @classmethod
    def of_files(cls, files: list[Path], schema: pl.Schema | dict, height: int, stage: Stage) -> StagedFrame:
        """The rows of Parquet files of a stage, in order (``schema``: the columns when there is no file)."""
        lazy = pl.scan_parquet(files) if files else _empty(schema)
        return cls(lazy, height, (stage,))

    # -- what the frame is ---------------------------------------------------------------------------
    def lazy(self) -> pl.LazyFrame:
        return self._lf

    @property
    def height(self) -> int:
        if self._height is None:
            self._height = int(self._lf.select(pl.len()).collect().item())
        return self._height

    def __len__(self) -> int:
        return self.height

    def is_empty(self) -> bool:
        return self.height == 0

    @property
    def schema(self) -> pl.Schema:
        return self._lf.collect_schema()

    @property
    def columns(self) -> list[str]:
        return self.schema.names()

    @property
    def width(self) -> int:
        return len(self.schema)

    @property
    def dtypes(self) -> list[pl.DataType]:
        return self.schema.dtypes()

    def __repr__(self) -> str:
        rows = f"{self._height} rows" if self._height is not None else "rows not counted"
        return f"StagedFrame({rows}, columns={self.columns})"

    # -- reading --------------------------------------------------------------------------------------
    def collect(self) -> pl.DataFrame:
        """Every row, in memory."""
        return self._lf.collect()

    def select(self, *exprs: Any, **named: Any) -> pl.DataFrame:
        """The selected columns, in memory (only they are read)."""
        return self._lf.select(*exprs, **named).collect()

    def head(self, n: int = 5) -> pl.DataFrame:
        return self._lf.head(n).collect()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._lf.select(key).collect().to_series()
        return self.collect()[key]

    def group_by(self, *by: Any, **kwargs: Any) -> _StagedGroupBy:
        return _StagedGroupBy(self._lf.group_by(*by, **kwargs))

    # -- still on disk ---------------------------------------------------------------------------------
    def with_columns(self, *exprs: Any, **named: Any) -> StagedFrame:
        return StagedFrame(self._lf.with_columns(*exprs, **named), self._height, self._keep)

    def filter(self, *predicates: Any, **constraints: Any) -> StagedFrame:
        return StagedFrame(self._lf.filter(*predicates, **constraints), None, self._keep)

    def drop(self, *columns: Any, **kwargs: Any) -> StagedFrame:
        return StagedFrame(self._lf.drop(*columns, **kwargs), self._height, self._keep)

    def to_arrow(self) -> pa.RecordBatchReader:
        """The rows as a stream of Arrow record batches (what `DataFrame.to_arrow` gives, batch by batch)."""
        schema = pl.DataFrame(schema=self.schema).to_arrow().schema

        def batches() -> Iterator[pa.RecordBatch]:
            for frame in self._lf.collect_batches(maintain_order=True):
                table = frame.to_arrow()
                if table.schema != schema:
                    table = table.cast(schema)
                yield from table.to_batches()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def __getattr__(self, name: str) -> Any:
        # Any other DataFrame method: read every row first (correct; its memory is the rows').
        if name.startswith("_"):
            raise AttributeError(name)
        if not hasattr(pl.DataFrame, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        log.debug("staged frame read into memory for DataFrame.%s", name)
        return getattr(self.collect(), name)


class _StagedGroupBy:
    def __init__(self, group_by: Any):
        self._gb = group_by

    def agg(self, *aggs: Any, **named: Any) -> pl.DataFrame:
        return self._gb.agg(*aggs, **named).collect()

    def len(self, name: str | None = None) -> pl.DataFrame:
        return self._gb.len(name).collect()


def is_staged(frame: object) -> bool:
    return isinstance(frame, StagedFrame)


def concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """``pl.concat`` of frames of the same columns; when one of them is a `StagedFrame`, the result is one too
    (a lazy concatenation: nothing is read). One frame comes back as it is."""
    if len(frames) == 1:
        return frames[0]
    if not any(is_staged(f) for f in frames):
        return pl.concat(frames)
    keep = tuple(k for f in frames if is_staged(f) for k in cast(Any, f)._keep)
    staged = StagedFrame(pl.concat([f.lazy() for f in frames]), sum(f.height for f in frames), keep)
    return cast(pl.DataFrame, staged)


def transform(frame: pl.DataFrame, fn: Callable[[Any], Any]) -> pl.DataFrame:
    """``fn(frame)`` for a function that keeps every row (column changes only): applied lazily to a `StagedFrame`
    (the result stays on disk), directly to a DataFrame."""
    if isinstance(frame, StagedFrame):
        return cast(pl.DataFrame, StagedFrame(fn(frame.lazy()), frame._height, frame._keep))
    return fn(frame)


def collect(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows in memory, whether ``frame`` is a DataFrame or a `StagedFrame`."""
    return frame.collect() if isinstance(frame, StagedFrame) else frame


__all__ = [
    "SHARED_STAGING_ENV",
    "STAGING_ENV",
    "SharedStage",
    "Stage",
    "shared_stage",
    "StagedFrame",
    "collect",
    "concat",
    "is_staged",
    "staging_root",
    "transform",
]
