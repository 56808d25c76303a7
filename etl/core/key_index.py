"""Indexes the checks across months read instead of the whole history of a curated table.

Two Delta tables of the warehouse, written by the load in the same commit as the curated rows they
describe (so they are all or nothing with them, rolled back with them and read at the same committed
version), each replacing exactly the force-months the run replaces:

* ``key_index`` - the distinct values of each indexed column (``crime_ref`` of ``recorded_crime``: the
  columns a contract's ``key_in_other_months`` names, and the lookup columns of ``key_loaded``), one
  row per (indexed, force_id, month, key), partitioned by indexed column, force and month (one file
  per force-month), plus a row with a null key marking the force-month as indexed;
* ``volume_counts`` - for the extracts with a ``volume_vs_history`` check, each force-month's count of
  ``recorded`` rows by offence code (``hocr_code``), plus a row with a null code and ``n`` 0 marking the
  force-month as counted.

A look-up reads only what can answer it: the keys of a month are compared with the Delta statistics of
each indexed force-month (the smallest and largest key, from the Delta log) and only the files whose
range holds one of them are read - with crime references numbered in sequence, that is none but the
months a repeated reference really is in, whatever the size of the history; the volume chart reads the
counts of its own months. So a month's checks cost the same in the first year and the tenth.

The audit trail says which force-months are loaded; a loaded force-month the index lacks (a warehouse
loaded before the index existed) is indexed from the curated table by the next run that needs it and
written with that run, so a look-up is always exact.

Loading several months of a force in one commit (`etl.loading.batches`), a month's checks must see
the months before it in the batch as month-by-month loading would: `Pending` holds them; the committed
rows of those force-months are set aside and the pending rows used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from etl.core.contracts import Contract
from etl.core.warehouse import Warehouse, Write, sql_literal

KEY_INDEX = "key_index"
VOLUME_COUNTS = "volume_counts"
KEY_PARTITIONS = ("indexed", "force_id", "month")
KEY_SCHEMA = {"indexed": pl.Utf8, "force_id": pl.Utf8, "month": pl.Utf8, "key": pl.Utf8}
COUNT_SCHEMA = {"extract": pl.Utf8, "force_id": pl.Utf8, "month": pl.Utf8, "hocr_code": pl.Utf8, "n": pl.Int64}
_PAIR = {"force_id": pl.Utf8, "month": pl.Utf8}


def _declared(contract: Contract) -> list[dict]:
    model = contract.model
    for p in (model.customProperties or []) if model else []:
        if p.property == "crossMonthChecks":
            return list(p.value or [])
    return []


def indexed_columns(contracts: Iterable[Contract]) -> dict[str, list[str]]:
    """extract -> its columns the checks of these contracts look keys up in."""
    out: dict[str, set[str]] = {}
    for c in contracts:
        for spec in _declared(c):
            if spec.get("check") == "key_in_other_months":
                out.setdefault(c.extract, set()).add(spec["column"])
            elif spec.get("check") == "key_loaded":
                out.setdefault(spec["lookup"], set()).add(spec.get("lookupColumn", spec["column"]))
    return {k: sorted(v) for k, v in out.items()}


def counted_extracts(contracts: Iterable[Contract]) -> list[str]:
    """Extracts whose monthly counts by offence code a volume check reads."""
    return sorted({c.extract for c in contracts for spec in _declared(c) if spec.get("check") == "volume_vs_history"})


def indexed_name(extract: str, column: str) -> str:
    return f"{extract}.{column}"


# ----------------------------------------------------------------------------------------------------
# rows of the indexes


def key_rows(extract: str, column: str, force: str, month: str, clean: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The index rows of one force-month: its distinct non-null keys and the null-key row marking it indexed."""
    keys = clean.lazy().select(pl.col(column).cast(pl.Utf8).alias("key")).drop_nulls().unique().collect()
    return _key_frame(extract, column, [(force, month, pl.concat([keys, pl.DataFrame({"key": [None]}, schema={"key": pl.Utf8})]))])


def _key_frame(extract: str, column: str, parts: list[tuple[str, str, pl.DataFrame]]) -> pl.DataFrame:
    name = indexed_name(extract, column)
    frames = [k.select(pl.lit(name).alias("indexed"), pl.lit(f).alias("force_id"), pl.lit(m).alias("month"), pl.col("key")) for f, m, k in parts]
    return pl.concat(frames) if frames else pl.DataFrame(schema=KEY_SCHEMA)


def _label(value: str, name: str) -> pl.Expr:
    """A partition column of the index rows a run writes: the same text on millions of rows, held as a category
    (4 bytes a row, not 16) until the warehouse writes it as text (`Warehouse._write`). Rows that are looked up
    (`lookup_keys`) keep text."""
    return pl.lit(value).cast(pl.Categorical).alias(name)


def key_bounds(clean: pl.DataFrame | pl.LazyFrame, column: str) -> tuple[str | None, str | None]:
    """The smallest and largest non-null key of a force-month's column, as text ((None, None) without one)."""
    key = pl.col(column).cast(pl.Utf8)
    lo, hi = clean.lazy().select(key.min().alias("lo"), key.max().alias("hi")).collect().row(0)
    return lo, hi


def count_rows(extract: str, force: str, month: str, clean: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The volume counts of one force-month: recorded rows by offence code, and the row marking it counted."""
    counts = clean.lazy().filter(pl.col("status") == "recorded").group_by(pl.col("hocr_code").cast(pl.Utf8)).agg(pl.len().cast(pl.Int64).alias("n")).collect()
    marker = pl.DataFrame({"hocr_code": [None], "n": [0]}, schema={"hocr_code": pl.Utf8, "n": pl.Int64})
    return pl.concat([counts, marker]).select(pl.lit(extract).alias("extract"), pl.lit(force).alias("force_id"), pl.lit(month).alias("month"), "hocr_code", "n")


def key_rows_of(extract: str, column: str, rows: pl.DataFrame | pl.LazyFrame, pairs: Iterable[tuple[str, str]], *, distinct: bool = False) -> pl.DataFrame:
    """`key_rows` of several force-months at once, from their curated rows (force_id and month set).
    ``distinct``: the column's values are already unique within a force-month (its contract makes them so)."""
    lazy = (
        rows.lazy()
        .select(pl.col("force_id").cast(pl.Categorical), pl.col("month").cast(pl.Categorical), pl.col(column).cast(pl.Utf8).alias("key"))
        .drop_nulls("key")
    )
    keys = (lazy if distinct else lazy.unique()).collect(engine="streaming")
    marks = _pairs_frame(pairs).select(pl.col("force_id").cast(pl.Categorical), pl.col("month").cast(pl.Categorical), pl.lit(None, pl.Utf8).alias("key"))
    return pl.concat([keys, marks]).select(_label(indexed_name(extract, column), "indexed"), "force_id", "month", "key")


def count_rows_of(extract: str, rows: pl.DataFrame | pl.LazyFrame, pairs: Iterable[tuple[str, str]]) -> pl.DataFrame:
    """`count_rows` of several force-months at once, from their curated rows (force_id and month set)."""
    counts = (
        rows.lazy()
        .filter(pl.col("status") == "recorded")
        .group_by("force_id", "month", pl.col("hocr_code").cast(pl.Utf8))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
    )
    marks = _pairs_frame(pairs).with_columns(pl.lit(None, pl.Utf8).alias("hocr_code"), pl.lit(0, pl.Int64).alias("n"))
    return pl.concat([counts, marks]).select(pl.lit(extract).alias("extract"), "force_id", "month", "hocr_code", "n")


def replace_predicate(column: str, rows: Iterable[tuple[str, str, str]]) -> str:
    """Delta predicate of the given (``column`` value, force, month) triples, grouped by value and month."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for v, f, m in rows:
        grouped.setdefault((v, m), set()).add(f)
    clauses = [
        f"({column} = {sql_literal(v)} AND month = {sql_literal(m)} AND force_id IN ({', '.join(sql_literal(f) for f in sorted(fs))}))"
        for (v, m), fs in sorted(grouped.items())
    ]
    return " OR ".join(clauses)


def distinct_rows(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The distinct rows of ``frame``'s ``columns``. The index rows of one force-month have a single value in
    each: then its first row, found by counting each column's values instead of a pass of ``unique`` (a
    ten-year backfill asks this of 240 such frames)."""
    part = frame.select(columns)
    if part.height and all(n == 1 for n in part.select(pl.all().n_unique()).row(0)):
        return part.head(1)
    return part.unique()


def _triples(frame: pl.DataFrame, column: str) -> set[tuple[str, str, str]]:
    return set(distinct_rows(frame, [column, "force_id", "month"]).iter_rows())


def _index_write(
    wh: Warehouse, table: str, column: str, fresh: list[pl.DataFrame], rebuilt: list[pl.DataFrame], names: list[str], pairs: set[tuple[str, str]], schema: dict
) -> Write | None:
    """One index table's write: the run's rows, replacing every (``names`` x ``pairs``) force-month - so a
    force-month whose extract is absent this time loses its old rows, as the curated table does - and the
    rows indexed again from the curated table (never for a force-month the run writes itself)."""
    frames = [f.select(list(schema)) for f in fresh if f.height]
    written = set().union(*(_triples(f, column) for f in frames)) if frames else set()
    triples = pl.DataFrame(sorted(written), schema=[column, "force_id", "month"], orient="row")
    for r in rebuilt:
        if r.height:
            again = r.select(list(schema)).unique().join(triples, on=[column, "force_id", "month"], how="anti")
            if again.height:
                frames.append(again)
                triples = pl.concat([triples, again.select(column, "force_id", "month").unique()])
    targets = {(v, f, m) for v in names for f, m in pairs} | set(triples.iter_rows())
    if not targets or (not frames and wh.files(table) is None):
        return None
    if table == KEY_INDEX:  # its partition columns as categories (`_label`), whichever way the rows were made
        frames = [f.with_columns(pl.col(c).cast(pl.Categorical) for c in KEY_PARTITIONS) for f in frames]
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema).with_columns(pl.col(c).cast(pl.Categorical) for c in KEY_PARTITIONS)
    else:
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return Write(table, frame, replace_predicate(column, targets), KEY_PARTITIONS if table == KEY_INDEX else ())


def index_writes(
    wh: Warehouse,
    contracts: Iterable[Contract],
    pairs: set[tuple[str, str]],
    keys: list[pl.DataFrame],
    counts: list[pl.DataFrame],
    rebuilt_keys: list[pl.DataFrame],
    rebuilt_counts: list[pl.DataFrame],
) -> list[Write]:
    """The writes of a run's index rows: ``keys`` and ``counts`` of its force-months ``pairs`` (which they replace
    for every indexed column and counted extract of the contracts) and the rows indexed again from the curated tables."""
    contracts = list(contracts)
    names = [indexed_name(e, c) for e, cols in indexed_columns(contracts).items() for c in cols]
    out = [
        _index_write(wh, KEY_INDEX, "indexed", keys, rebuilt_keys, names, pairs, KEY_SCHEMA),
        _index_write(wh, VOLUME_COUNTS, "extract", counts, rebuilt_counts, counted_extracts(contracts), pairs, COUNT_SCHEMA),
    ]
    return [w for w in out if w is not None]


# ----------------------------------------------------------------------------------------------------
# the batch's force-months not committed yet


@dataclass
class Pending:
    """Force-months validated earlier in a multi-month batch, not committed yet: (extract, force, month) -> clean rows.

    It lives as long as the batch, which holds the warehouse from its first month's checks to its one commit, so the
    committed tables cannot change under it: ``memo`` keeps what the checks of one month read of them (index file lists,
    count files, the loaded months) and made of it, for the batch's later months (`etl.core.cross_month`). What a
    month's checks make of its own rows (its counts, its key range) is noted (`note_counts`, `note_bounds`) and
    taken up once the month is added, instead of being made again from the same rows."""

    clean: dict[tuple[str, str, str], pl.DataFrame] = field(default_factory=dict)
    published: list[pl.DataFrame] = field(default_factory=list)  # published statistics workbooks the earlier months load
    memo: dict = field(default_factory=dict)
    _keys: dict[tuple[str, str, str, str], pl.DataFrame] = field(default_factory=dict)  # (extract, force, month, column) -> key
    _counts: dict[tuple[str, str, str], pl.DataFrame] = field(default_factory=dict)  # (extract, force, month) -> count_rows
    _bounds: dict[tuple[str, str, str, str], tuple[str | None, str | None]] = field(default_factory=dict)
    _noted: dict[tuple, tuple[object, object]] = field(default_factory=dict)  # what was made of a month's rows before it was added

    def add(self, extract: str, force: str, month: str, clean: pl.DataFrame) -> None:
        self.clean[(extract, force, month)] = clean

    def note_counts(self, extract: str, force: str, month: str, clean: pl.DataFrame | pl.LazyFrame, counts: pl.DataFrame) -> None:
        """``counts``: `count_rows` of ``clean``, to be `counts` once ``clean`` is added for the force-month."""
        self._noted[("counts", extract, force, month)] = (clean, counts)

    def note_bounds(self, extract: str, force: str, month: str, column: str, clean: pl.DataFrame | pl.LazyFrame, bounds: tuple[str | None, str | None]) -> None:
        """``bounds``: the smallest and largest key of ``clean``'s column, to be `bounds` once ``clean`` is added."""
        self._noted[("bounds", extract, force, month, column)] = (clean, bounds)

    def note_batch_counts(self, extract: str, force: str, month: str, clean: pl.DataFrame | pl.LazyFrame, counts: pl.DataFrame, whole: pl.DataFrame) -> None:
        """``counts`` as `note_counts`, made before the checks with those of every force-month of the batch
        (``whole``, `cross_month.count_ahead`)."""
        self._noted[("batch counts", extract, force, month)] = (clean, (counts, whole))
        self.note_counts(extract, force, month, clean, counts)

    def batch_counts(self, extract: str, force: str, month: str, clean: pl.DataFrame | pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """(the force-month's `count_rows`, the batch's) as `note_batch_counts` noted them for ``clean``; None if not."""
        return self._taken("batch counts", (extract, force, month), clean)  # type: ignore[return-value]

    def _taken(self, kind: str, at: tuple, clean: object) -> object | None:
        noted = self._noted.get((kind, *at))
        return noted[1] if noted is not None and noted[0] is clean else None

    def keys(self, extract: str, force: str, month: str, column: str) -> pl.DataFrame:
        """The force-month's distinct non-null keys of a column (made once)."""
        k = (extract, force, month, column)
        if k not in self._keys:
            clean = self.clean[(extract, force, month)]
            self._keys[k] = clean.lazy().select(pl.col(column).cast(pl.Utf8).alias("key")).drop_nulls().unique().collect()
        return self._keys[k]

    def bounds(self, extract: str, force: str, month: str, column: str) -> tuple[str | None, str | None]:
        """The smallest and largest key of the force-month (None, None without one; made once)."""
        at = (extract, force, month, column)
        if at not in self._bounds:
            clean = self.clean[(extract, force, month)]
            taken = self._taken("bounds", at, clean)
            self._bounds[at] = taken if taken is not None else key_bounds(clean, column)  # type: ignore[assignment]
        return self._bounds[at]

    def counts(self, extract: str, force: str, month: str) -> pl.DataFrame:
        """The force-month's `count_rows` (made once)."""
        k = (extract, force, month)
        if k not in self._counts:
            clean = self.clean[k]
            taken = self._taken("counts", k, clean)
            self._counts[k] = taken if taken is not None else count_rows(extract, force, month, clean)  # type: ignore[assignment]
        return self._counts[k]

    def pairs(self, extract: str, forces: Iterable[str]) -> set[tuple[str, str]]:
        wanted = set(forces)
        return {(f, m) for e, f, m in self.clean if e == extract and f in wanted}

    def frames(self, extract: str, forces: Iterable[str]) -> list[tuple[str, str, pl.DataFrame]]:
        wanted = set(forces)
        return [(f, m, c) for (e, f, m), c in self.clean.items() if e == extract and f in wanted]

    def __bool__(self) -> bool:
        return bool(self.clean)


# ----------------------------------------------------------------------------------------------------
# look-ups


def _pairs_frame(pairs: Iterable[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(sorted(set(pairs)), schema=_PAIR, orient="row")


def _curated_pairs(wh: Warehouse, extract: str, pairs: set[tuple[str, str]], columns: list[str]) -> pl.DataFrame | None:
    """The committed curated rows of the given force-months (``columns`` with force_id and month)."""
    lf = wh.scan(extract)
    if lf is None or not pairs:
        return None
    months = sorted({m for _, m in pairs})
    forces = sorted({f for f, _ in pairs})
    return (
        lf.filter(pl.col("month").is_in(months) & pl.col("force_id").is_in(forces))
        .select("force_id", "month", *columns)
        .join(_pairs_frame(pairs).lazy(), on=["force_id", "month"], how="semi")
        .collect()
    )


@dataclass
class KeyLookup:
    """What `lookup_keys` found: the committed (and pending) rows holding the keys asked for, and the index
    rows made for loaded force-months the index lacked (to be written with the run)."""

    found: pl.DataFrame  # force_id, key, month
    rebuilt: pl.DataFrame  # key_index rows


def lookup_keys(
    wh: Warehouse,
    extract: str,
    column: str,
    keys: pl.DataFrame,
    loaded: set[tuple[str, str]],
    *,
    pending: Pending | None = None,
    skip_months: dict[str, set[str]] | None = None,
) -> KeyLookup:
    """The force-months holding each (force_id, key) of ``keys`` in the committed ``extract.column``, as rows
    (force_id, key, month), reading only the index files whose key range holds one of the keys.

    ``loaded``: the extract's loaded (force, month) pairs of the keys' forces, from the audit trail (any the
    index lacks is indexed from the curated table); ``pending``: force-months of the batch that replace the
    committed ones (its ``memo`` keeps the index's file list, the files read and the force-months indexed again
    for the batch's later months); ``skip_months``: force -> months not wanted (e.g. the month being checked)."""
    name = indexed_name(extract, column)
    memo = pending.memo if pending is not None else {}
    bounds = force_bounds(keys)  # the keys' forces, each with its smallest and largest key
    forces = sorted(bounds)
    skip = skip_months or {}
    replaced = pending.pairs(extract, forces) if pending else set()
    mine = _index_files(wh, name, forces, memo)
    indexed = {(f, m) for _, f, m, _, _ in mine}
    wanted = {(f, m) for f, m in loaded if f in bounds}
    missing = {p for p in wanted - indexed - replaced if p[1] not in skip.get(p[0], set())}
    rebuilt = pl.DataFrame(schema=KEY_SCHEMA)
    parts: list[pl.DataFrame] = []
    if missing:
        made = _made_again(wh, KEY_INDEX, extract, [column], missing, memo, lambda f, m, rows: key_rows(extract, column, f, m, rows))
        if made is not None:
            rebuilt = pl.concat(made)
            parts.append(rebuilt.select("force_id", "key", "month"))
    gone = replaced | {(f, m) for f, ms in skip.items() for m in ms}
    near = [row for row in mine if (row[1], row[2]) not in gone and _meets(row[3], row[4], bounds.get(row[1]))]
    paths = _files_holding(pl.DataFrame(near, schema=_FILE_SCHEMA, orient="row"), keys) if near else []
    for path, force, month in paths:
        parts.append(_key_file(wh, path, memo).select(pl.lit(force).alias("force_id"), "key", pl.lit(month).alias("month")))
    if pending:
        ranges = [(f, m, *pending.bounds(extract, f, m, column)) for f, m, _ in pending.frames(extract, forces) if m not in skip.get(f, set())]
        ranges = [r for r in ranges if _meets(r[2], r[3], bounds.get(r[0]))]  # (force, month, smallest, largest key)
        if ranges:
            holding = pl.DataFrame(ranges, schema={"path": pl.Utf8, "month": pl.Utf8, "lo": pl.Utf8, "hi": pl.Utf8}, orient="row").with_columns(
                pl.col("path").alias("force_id")
            )
            for f, _, m in _files_holding(holding, keys):  # only the pending months whose key range holds one of the keys
                k = pending.keys(extract, f, m, column)
                parts.append(k.select(pl.lit(f).alias("force_id"), "key", pl.lit(m).alias("month")))
    found = pl.concat(parts).drop_nulls("key") if parts else pl.DataFrame(schema={"force_id": pl.Utf8, "key": pl.Utf8, "month": pl.Utf8})
    if found.height:
        found = found.join(keys.select("force_id", "key"), on=["force_id", "key"], how="semi")
    return KeyLookup(found, rebuilt)


_FILE_SCHEMA = {"path": pl.Utf8, "force_id": pl.Utf8, "month": pl.Utf8, "lo": pl.Utf8, "hi": pl.Utf8}


def force_bounds(keys: pl.DataFrame) -> dict[str, tuple[str | None, str | None]]:
    """force_id -> (smallest, largest) key of ``keys`` (force_id, key), for every force in it."""
    if keys.height == 0:
        return {}
    force = keys.get_column("force_id")
    first = force[0]
    if first is not None and force.null_count() == 0 and bool((force == first).all()):  # one force (a force's months): no grouping
        k = keys.get_column("key")
        return {first: (k.min(), k.max())}  # type: ignore[dict-item]
    agg = keys.group_by("force_id").agg(pl.col("key").min().alias("lo"), pl.col("key").max().alias("hi"))
    return {f: (lo, hi) for f, lo, hi in agg.iter_rows()}


def _meets(lo: str | None, hi: str | None, bounds: tuple[str | None, str | None] | None) -> bool:
    """Whether a file's [lo, hi] key range (both known) meets a force's [smallest, largest] key (as `_files_holding` first asks)."""
    if lo is None or hi is None or bounds is None or bounds[0] is None or bounds[1] is None:
        return False
    return lo <= bounds[1] and bounds[0] <= hi


def _index_files(wh: Warehouse, name: str, forces: list[str], memo: dict) -> list[tuple[str, str, str, str | None, str | None]]:
    """(path, force, month, smallest key, largest key) of the key_index files of ``name`` and the forces (kept in ``memo``)."""
    at = ("key_index files", name, tuple(forces))
    if at in memo:
        return memo[at]
    files = wh.files(KEY_INDEX)
    rows: list = []
    if files is not None and files.height and "partition.indexed" in files.columns:
        rows = (
            files.filter((pl.col("partition.indexed") == name) & pl.col("partition.force_id").is_in(forces))
            .select(
                "path",
                pl.col("partition.force_id").alias("force_id"),
                pl.col("partition.month").alias("month"),
                pl.col("min.key").cast(pl.Utf8).alias("lo") if "min.key" in files.columns else pl.lit(None, pl.Utf8).alias("lo"),
                pl.col("max.key").cast(pl.Utf8).alias("hi") if "max.key" in files.columns else pl.lit(None, pl.Utf8).alias("hi"),
            )
            .rows()
        )
    memo[at] = rows
    return rows


def _key_file(wh: Warehouse, path: str, memo: dict) -> pl.DataFrame:
    """The non-null keys of a key_index file (kept in ``memo``)."""
    at = ("key_index file", path)
    if at not in memo:
        memo[at] = pl.read_parquet(path, columns=["key"], storage_options=wh.storage_options).drop_nulls()
    return memo[at]


def _files_holding(files: pl.DataFrame, keys: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(path, force, month) of the index files whose [smallest, largest] key range holds a key of their force:
    first the files whose range meets the force's own [smallest, largest] key (with keys numbered in sequence,
    none), then, for those forces only, key by key."""
    ranges = files.filter(pl.col("lo").is_not_null() & pl.col("hi").is_not_null())
    if ranges.height == 0 or keys.height == 0:
        return []
    bounds = keys.group_by("force_id").agg(pl.col("key").min().alias("kmin"), pl.col("key").max().alias("kmax"))
    near = ranges.join(bounds, on="force_id").filter((pl.col("lo") <= pl.col("kmax")) & (pl.col("kmin") <= pl.col("hi")))
    out = []
    for (force,), group in near.partition_by("force_id", as_dict=True).items():
        sorted_keys = keys.filter(pl.col("force_id") == force)["key"].drop_nulls().sort()
        first = sorted_keys.search_sorted(group["lo"], side="left")
        after = sorted_keys.search_sorted(group["hi"], side="right")
        hits = group.filter((after - first) > 0)
        out += [(r["path"], r["force_id"], r["month"]) for r in hits.iter_rows(named=True)]
    return out


@dataclass
class CountLookup:
    """What `monthly_counts` found: the counts as the frames they were read or made in (``parts``: each a frame of
    `count_rows` rows with the (force, month) pairs of it that count), and the count rows made for loaded
    force-months the counts lacked (to be written with the run). A frame is the same object for every month
    of a batch that reads it, so what is made of it can be kept (`etl.core.cross_month`)."""

    parts: list[tuple[pl.DataFrame, set[tuple[str, str]]]]
    rebuilt: pl.DataFrame  # volume_counts rows

    @property
    def counts(self) -> pl.DataFrame:
        """force_id, month, hocr_code, n: the recorded rows by offence code of the pairs that count (n > 0)."""
        frames = [f.join(_pairs_frame(pairs), on=["force_id", "month"], how="semi") for f, pairs in self.parts if pairs]
        rows = pl.concat(frames) if frames else pl.DataFrame(schema=COUNT_SCHEMA)
        return rows.filter(pl.col("n") > 0).select("force_id", "month", "hocr_code", "n")


def monthly_counts(
    wh: Warehouse, extract: str, forces: list[str], first: str, before: str, loaded: set[tuple[str, str]], *, pending: Pending | None = None
) -> CountLookup | None:
    """Recorded rows by offence code of the forces' months in [first, before), committed (pending force-months
    of the batch replacing theirs), or None when the extract was never loaded. Reads the count files that can
    hold those months only (each once in a batch: ``pending.memo``); a loaded force-month the counts lack is
    counted from the curated table."""
    if not wh.has_table(extract) and not pending:
        return None
    memo = pending.memo if pending is not None else {}
    replaced = pending.pairs(extract, forces) if pending else set()
    parts: list[tuple[pl.DataFrame, set[tuple[str, str]]]] = []
    counted: set[tuple[str, str]] = set()
    wanted_forces = set(forces)
    for frame, pairs in _count_files(wh, extract, forces, first, before, memo):
        use = {(f, m) for f, m in pairs if f in wanted_forces and first <= m < before and (f, m) not in replaced}
        counted |= use
        parts.append((frame, use))
    wanted = {(f, m) for f, m in loaded if f in wanted_forces and first <= m < before}
    missing = wanted - counted - replaced
    rebuilt = pl.DataFrame(schema=COUNT_SCHEMA)
    if missing:
        made = _made_again(wh, VOLUME_COUNTS, extract, ["status", "hocr_code"], missing, memo, lambda f, m, rows: count_rows(extract, f, m, rows))
        if made is not None:
            rebuilt = pl.concat(made)
            parts += [(frame, {pair}) for pair, frame in zip(sorted(missing), made)]
    if pending:
        parts += [(pending.counts(extract, f, m), {(f, m)}) for f, m, _ in pending.frames(extract, forces) if first <= m < before]
    return CountLookup(parts, rebuilt)


def _count_files(wh: Warehouse, extract: str, forces: list[str], first: str, before: str, memo: dict) -> list[tuple[pl.DataFrame, set[tuple[str, str]]]]:
    """The volume_counts rows of the extract in the files whose months can meet [first, before), each frame with its
    (force, month) pairs: the rows of these forces, and of any force read before. Every file is read once for a
    force (``memo``: a file holding one of these months is always among the files chosen for them, so the
    reads made for other months never miss one, and their other months are left to the caller)."""
    files = wh.files(VOLUME_COUNTS)
    if files is None or files.height == 0:
        return []
    if ("volume_counts files",) not in memo:
        lo = pl.col("min.month") if "min.month" in files.columns else pl.lit(None, pl.Utf8)
        hi = pl.col("max.month") if "max.month" in files.columns else pl.lit(None, pl.Utf8)
        memo[("volume_counts files",)] = files.select("path", lo.alias("lo"), hi.alias("hi")).rows()
    frames, done = memo.setdefault(("volume_counts read", extract), ([], set()))  # frames with their pairs; (path, force) read
    unread: dict[tuple[str, ...], list[str]] = {}  # forces -> the chosen files not read for them
    for path, lo, hi in memo[("volume_counts files",)]:
        if (hi is None or hi >= first) and (lo is None or lo < before):
            todo = tuple(f for f in forces if (path, f) not in done)
            if todo:
                unread.setdefault(todo, []).append(path)
    for todo, paths in unread.items():
        frame = (
            pl.scan_parquet(paths, storage_options=wh.storage_options)
            .filter((pl.col("extract") == extract) & pl.col("force_id").is_in(todo))
            .select(list(COUNT_SCHEMA))
            .collect()
        )
        frames.append((frame, set(frame.select("force_id", "month").unique().iter_rows())))
        done.update((path, f) for path in paths for f in todo)
    return frames


def _made_again(
    wh: Warehouse,
    table: str,
    extract: str,
    columns: list[str],
    missing: set[tuple[str, str]],
    memo: dict,
    make: Callable[[str, str, pl.DataFrame], pl.DataFrame],
) -> list[pl.DataFrame] | None:
    """The ``table`` rows (``make`` of a force-month's curated ``columns``) of loaded force-months the index lacks,
    made from the curated table (None without it), in force-month order; each made once (kept in ``memo``)."""
    made: dict[tuple[str, str], pl.DataFrame] = memo.setdefault(("made again", table, extract, *columns), {})
    todo = missing - set(made)
    if todo:
        rows = _curated_pairs(wh, extract, todo, columns)
        if rows is None:
            return None
        groups = {(f, m): g for (f, m), g in rows.partition_by("force_id", "month", as_dict=True).items()} if rows.height else {}
        empty = rows.select(columns).clear()
        for f, m in todo:
            made[(f, m)] = make(f, m, groups.get((f, m), empty))
    return [made[p] for p in sorted(missing)]
