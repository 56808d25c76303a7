"""Checks across months, declared in a contract's ``customProperties.crossMonthChecks``.

A monthly file can pass every row rule and still be wrong in the light of the months already
loaded. These checks compare the month being loaded with the force's committed history and are
reported (severity ``warning``) in ``audit_checks`` with a plain-words ``detail``; they never drop
or quarantine rows, so nothing is lost:

* ``continuity``            the force's loaded months, with this one, have no gap;
* ``key_in_other_months``   a key (e.g. crime_ref) of this month was already loaded in another month;
* ``key_loaded``            a key (e.g. an outcome's crime_ref) refers to a row never loaded in the
                            lookup extract;
* ``reconcile_published``   at a quarter end, the force's records for the 12 months ending this
                            month against the published statistics (ONS PFA Table P1) for the same
                            area, offence group and period, within ``tolerancePercent``: total
                            recorded crime and every group whose name is a published heading; a
                            year that cannot be compared is stored as not run (passed null), never
                            as passed;
* ``volume_vs_history``     each offence group's count this month lies inside its normal range:
                            an XmR (individuals) chart over the previous ``baselineMonths`` loaded
                            months (looking back at most ``baselineMonths`` + 12 months), limits = mean +/- 2.66 x mean moving range
                            (`etl.measures.xmr`, the rules of the control charts too; at least ``minimumMonths``
                            months of history, else not checked).

The history is read from the indexes of `etl.core.key_index` (the keys of every loaded force-month, the
monthly counts by offence code), written with the curated rows in the same commit: a month's checks read
the index files that can hold its keys and the counts of its chart's months, never the whole history, and
cost the same whatever the warehouse holds. In a batch of several months of a force (`Pending`) each
month's checks see the months before it as month-by-month loading would; what they read of the committed
tables (which cannot change while the batch holds the warehouse) and make of it - the index's file lists,
the count files, each force-month's counts by offence group - is kept in ``Pending.memo`` for the batch's
later months, so that a month of a batch costs a few small frame operations (a ten-year backfill: 120).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

import polars as pl
import yaml

from etl.core import key_index
from etl.core.contracts import Contract
from etl.core.key_index import Pending
from etl.core.periods import Month, month_index_expr
from etl.core.reference import load_offence_groups
from etl.core.validation import CheckResult, ExtractResult
from etl.core.warehouse import Warehouse, Write
from etl.measures import xmr

_month_index = month_index_expr


def declared(contract: Contract) -> list[dict]:
    model = contract.model
    for p in (model.customProperties or []) if model else []:
        if p.property == "crossMonthChecks":
            return list(p.value or [])
    return []


@dataclass
class History:
    """What the checks of a batch (one month of one or more forces) need from the committed tables,
    read with one look-up per index for all the batch's forces instead of one per force."""

    earlier_keys: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict)  # (extract, column) -> force_id, column, month
    known_keys: dict[tuple[str, str, str], pl.DataFrame] = field(default_factory=dict)  # (lookup, lookup column, column) -> force_id, column
    volume_checks: dict[tuple[str, str], CheckResult] = field(default_factory=dict)  # (extract, force) -> judged for the batch at once
    # index rows of loaded force-months the indexes lacked, made from the curated tables: written with the run
    rebuilt_keys: list[pl.DataFrame] = field(default_factory=list)
    rebuilt_counts: list[pl.DataFrame] = field(default_factory=list)
    pending: Pending | None = None  # the months before this one in a multi-month batch
    # (extract, force, month) -> (ids of the results counted, their volume_counts rows): counted once for the
    # volume check, written as they are by `index_writes` when it writes the same results
    counts: dict[tuple[str, str, str], tuple[frozenset[int], pl.DataFrame]] = field(default_factory=dict)


class _WithPending:
    """The warehouse as a month of a multi-month batch sees it (for the checks that read curated rows): the
    committed rows, with the batch's earlier force-months in place of theirs - as if they were committed."""

    def __init__(self, wh: Warehouse, pending: Pending):
        self.wh = wh
        self.pending = pending

    def scan(self, table: str) -> pl.LazyFrame | None:
        lf = self.wh.scan(table)
        mine = [(f, m, c) for (e, f, m), c in self.pending.clean.items() if e == table]
        if not mine:
            return lf
        parts = [c.lazy().with_columns(pl.lit(f, pl.Utf8).alias("force_id"), pl.lit(m, pl.Utf8).alias("month")) for f, m, c in mine]
        if lf is not None:
            replaced = pl.DataFrame([(f, m) for f, m, _ in mine], schema={"force_id": pl.Utf8, "month": pl.Utf8}, orient="row")
            parts.insert(0, lf.join(replaced.lazy(), on=["force_id", "month"], how="anti"))
        return pl.concat(parts, how="diagonal_relaxed")


def _loaded_pairs(loaded: pl.DataFrame, extract: str, forces: list[str], memo: dict) -> set[tuple[str, str]]:
    at = ("loaded pairs", id(loaded), extract, tuple(forces))
    kept = memo.get(at)
    if kept is not None and kept[0] is loaded:
        return kept[1]
    rows = loaded.filter((pl.col("extract") == extract) & pl.col("force_id").is_in(forces)).select("force_id", "month")
    pairs = set(rows.iter_rows())
    memo[at] = (loaded, pairs)
    return pairs


def prefetch(
    wh: Warehouse, month: str, results: list[tuple[str, ExtractResult]], loaded: pl.DataFrame | None = None, pending: Pending | None = None
) -> History:
    """Read what the declared checks of these (force, extract result) pairs need, one look-up per index.

    ``loaded``: force_id, month, extract of the committed loaded extract-months (the audit trail; read here
    when not given); ``pending``: force-months earlier in a multi-month batch, seen in place of the committed ones
    (and its ``memo``: what the batch's earlier months read of the committed tables, which cannot change while
    the batch holds the warehouse, and made of it)."""
    if loaded is None:
        from etl.loading.measuring import loaded_months

        loaded = loaded_months(wh)
    history = History(pending=pending)
    memo = pending.memo if pending is not None else {}
    by_extract: dict[str, list[tuple[str, ExtractResult]]] = {}
    for force, r in results:
        by_extract.setdefault(r.contract.extract, []).append((force, r))
    for extract, items in by_extract.items():
        forces = sorted({f for f, _ in items})
        for spec in declared(items[0][1].contract):
            kind = spec.get("check")
            if kind == "key_in_other_months":
                column = spec["column"]
                keys = _keys(items, column, month, pending)
                frame = keys.clear().with_columns(pl.lit(None, pl.Utf8).alias("month"))
                if keys.height and (wh.has_table(extract) or pending):
                    found = key_index.lookup_keys(
                        wh,
                        extract,
                        column,
                        keys.rename({column: "key"}),
                        _loaded_pairs(loaded, extract, forces, memo),
                        pending=pending,
                        skip_months={f: {month} for f in forces},
                    )
                    history.rebuilt_keys.append(found.rebuilt)
                    frame = found.found.select("force_id", pl.col("key").alias(column), "month")
                history.earlier_keys[(extract, column)] = frame
            elif kind == "key_loaded":
                column, lookup = spec["column"], spec["lookup"]
                lookup_column = spec.get("lookupColumn", column)
                keys = _keys(items, column)
                frame = keys.clear()
                if keys.height and (wh.has_table(lookup) or pending):
                    found = key_index.lookup_keys(
                        wh, lookup, lookup_column, keys.rename({column: "key"}), _loaded_pairs(loaded, lookup, forces, memo), pending=pending
                    )
                    history.rebuilt_keys.append(found.rebuilt)
                    frame = found.found.select("force_id", pl.col("key").alias(column)).unique()
                history.known_keys[(lookup, lookup_column, column)] = frame
            elif kind == "volume_vs_history":
                baseline, minimum = int(spec.get("baselineMonths", 24)), int(spec.get("minimumMonths", 6))
                # Only the months the chart can use: the counts of the previous baseline + 12 months.
                oldest = str(Month(Month.parse(month).index - baseline - 12))
                got = key_index.monthly_counts(wh, extract, forces, oldest, month, _loaded_pairs(loaded, extract, forces, memo), pending=pending)
                if got is None:
                    judged = volume_checks(items, month, baseline, minimum, None)
                else:
                    history.rebuilt_counts.append(got.rebuilt)
                    current = _current_sums(extract, month, items, memo, pending, history)
                    judged = _volume_verdicts([f for f, _ in items], month, baseline, minimum, _history_sums(got, memo), current)
                history.volume_checks.update({(extract, f): c for f, c in judged.items()})
    return history


def count_ahead(pending: Pending, items: list[tuple[str, str, ExtractResult]]) -> None:
    """The volume counts of every (force, month, result) of a batch whose extract has a volume check, made in one
    query per extract before the months are checked in turn (`key_index.count_rows_of`) and noted in ``pending``
    with each result's rows: `_current_sums` takes them up instead of counting each month on its own, and makes
    the offence-group sums of all the batch's months at once."""
    by_extract: dict[str, list[tuple[str, str, ExtractResult]]] = {}
    for f, m, r in items:
        if any(spec.get("check") == "volume_vs_history" for spec in declared(r.contract)):
            by_extract.setdefault(r.contract.extract, []).append((f, m, r))
    for extract, mine in by_extract.items():
        pairs = [(f, m) for f, m, _ in mine]
        if len(set(pairs)) < len(pairs):  # two results of one force-month: each is counted when it is checked
            continue
        rows = pl.concat(
            [r.clean.lazy().select(pl.lit(f, pl.Utf8).alias("force_id"), pl.lit(m, pl.Utf8).alias("month"), "status", "hocr_code") for f, m, r in mine]
        )
        whole = key_index.count_rows_of(extract, rows, pairs)
        each = whole.partition_by("force_id", "month", as_dict=True)
        for f, m, r in mine:
            pending.note_batch_counts(extract, f, m, r.clean, each[(f, m)], whole)


def _current_sums(
    extract: str, month: str, items: list[tuple[str, ExtractResult]], memo: dict, pending: Pending | None, history: History
) -> dict[str, dict[str, int]]:
    """force -> offence group -> count of this month's recorded rows (`_group_sums`), from `key_index.count_rows` of
    each force (one query for them all); with ``pending`` (a batch) the counts are noted for when the month is added.
    The counts are kept in ``history.counts`` for the run's index write. In a batch whose counts were made
    ahead (`count_ahead`) they are taken from there."""
    ahead = [pending.batch_counts(extract, f, month, r.clean) for f, r in items] if pending is not None else []
    known = [a for a in ahead if a is not None]
    if ahead and len(known) == len(ahead):
        by_force = {f: a[0] for (f, _), a in zip(items, known, strict=True)}
        counted = known[0][1]  # every month of the batch: its sums are made once (`_sums_of`)
    elif len(items) == 1:
        force, r = items[0]
        counted = key_index.count_rows(extract, force, month, r.clean)
        by_force = {force: counted}
    else:
        rows = pl.concat(
            [r.clean.lazy().select(pl.lit(f, pl.Utf8).alias("force_id"), pl.lit(month, pl.Utf8).alias("month"), "status", "hocr_code") for f, r in items]
        )
        counted = key_index.count_rows_of(extract, rows, [(f, month) for f, _ in items])
        by_force = {f: frame for (f,), frame in counted.partition_by("force_id", as_dict=True).items()}
    for f in by_force:
        history.counts[(extract, f, month)] = (frozenset(id(r) for g, r in items if g == f), by_force[f])
    if pending is not None:
        for f, r in items:
            pending.note_counts(extract, f, month, r.clean, by_force[f])
    sums = _sums_of(counted, memo)
    return {f: sums.get((f, month), {}) for f, _ in items}


def _keys(items: list[tuple[str, ExtractResult]], column: str, month: str | None = None, pending: Pending | None = None) -> pl.DataFrame:
    """force_id and the non-null keys of the items (repeats kept: each look-up only asks whether a key is there).

    Read lazily and streamed: a file validated in chunks keeps its rows on disk (`etl.core.staging`), so
    only the key column is ever held. With ``pending`` (a batch), each force's smallest and largest key is
    noted for when its month is added (``month``: the month of the items)."""
    parts = [r.clean.lazy().select(pl.lit(force, pl.Utf8).alias("force_id"), pl.col(column).cast(pl.Utf8)).drop_nulls() for force, r in items]
    keys = pl.concat(parts).collect(engine="streaming")
    if pending is not None and month is not None:
        extract = items[0][1].contract.extract
        bounds = key_index.force_bounds(keys.rename({column: "key"}))
        for force, r in items:
            pending.note_bounds(extract, force, month, column, r.clean, bounds.get(force, (None, None)))
    return keys


def index_writes(
    wh: Warehouse,
    contracts: list[Contract],
    items: list[tuple[str, str, ExtractResult]],
    histories: list[History],
    curated: dict[str, pl.DataFrame] | None = None,
) -> list[Write]:
    """The index writes of a run: every indexed column and counted extract of the (force, month, result)
    items it loads, replacing those force-months, and what the look-ups indexed again from the curated tables.
    ``curated``: extract -> the run's curated rows of it (force_id and month set), read in one pass each."""
    indexed, counted = key_index.indexed_columns(contracts), set(key_index.counted_extracts(contracts))
    keys, counts = [], []
    by_extract: dict[str, list[tuple[str, str, ExtractResult]]] = {}
    for force, month, r in items:
        by_extract.setdefault(r.contract.extract, []).append((force, month, r))
    for extract, mine in by_extract.items():
        pairs = [(f, m) for f, m, _ in mine]
        rows = (curated or {}).get(extract)
        if rows is not None:
            contract = mine[0][2].contract
            keys += [key_index.key_rows_of(extract, column, rows, pairs, distinct=_unique_in_file(contract, column)) for column in indexed.get(extract, [])]
            if extract in counted:
                known = _counted(extract, mine, histories)
                counts += known if known is not None else [key_index.count_rows_of(extract, rows, pairs)]
            continue
        for force, month, r in mine:
            keys += [key_index.key_rows(extract, column, force, month, r.clean) for column in indexed.get(extract, [])]
            if extract in counted:
                counts.append(key_index.count_rows(extract, force, month, r.clean))
    return key_index.index_writes(
        wh,
        contracts,
        {(f, m) for f, m, _ in items},
        keys,
        counts,
        [k for h in histories for k in h.rebuilt_keys],
        [c for h in histories for c in h.rebuilt_counts],
    )


def _counted(extract: str, mine: list[tuple[str, str, ExtractResult]], histories: list[History]) -> list[pl.DataFrame] | None:
    """The volume counts of these results as the volume check counted them (`_current_sums`), when it counted
    exactly these results of every force-month; None when any is missing."""
    wanted: dict[tuple[str, str, str], set[int]] = {}
    for f, m, r in mine:
        wanted.setdefault((extract, f, m), set()).add(id(r))
    known = {k: v for h in histories for k, v in h.counts.items()}
    out = []
    for k, ids in wanted.items():
        hit = known.get(k)
        if hit is None or hit[0] != ids:
            return None
        out.append(hit[1])
    return out


def _unique_in_file(contract: Contract, column: str) -> bool:
    """Whether the contract quarantines a repeat of the column within a file (so a force-month's values are distinct)."""
    col = next((c for c in contract.columns if c.name == column), None)
    return bool(col is not None and col.unique)


def run_checks(
    result: ExtractResult,
    wh: Warehouse,
    force: str,
    month: str,
    loaded: list[str],
    this_run: list[ExtractResult],
    published: pl.DataFrame | None = None,
    history: History | None = None,
) -> list[CheckResult]:
    """The contract's cross-month checks for one extract of one force-month.

    ``history``: what `prefetch` read for the whole batch (read here for this force alone if not given).
    """
    history = history or prefetch(wh, month, [(force, result)])
    extract = result.contract.extract
    out = []
    for spec in declared(result.contract):
        kind = spec.get("check")
        if kind == "continuity":
            out.append(continuity(loaded, month))
        elif kind == "key_in_other_months":
            column = spec["column"]
            earlier = history.earlier_keys.get((extract, column))
            out.append(key_in_other_months(result, force, month, column, earlier.filter(pl.col("force_id") == force) if earlier is not None else None))
        elif kind == "key_loaded":
            column, lookup = spec["column"], spec["lookup"]
            lookup_column = spec.get("lookupColumn", column)
            known = history.known_keys.get((lookup, lookup_column, column))
            out.append(
                key_loaded(result, force, column, lookup, lookup_column, this_run, known.filter(pl.col("force_id") == force) if known is not None else None)
            )
        elif kind == "reconcile_published":
            seen = cast(Warehouse, _WithPending(wh, history.pending)) if history.pending else wh
            out.append(reconcile_published(result, seen, force, month, loaded, published, float(spec.get("tolerancePercent", 2.0))))
        elif kind == "volume_vs_history":
            out.append(history.volume_checks[(extract, force)])
        else:
            raise ValueError(f"{result.contract.path}: unknown crossMonthChecks entry '{kind}'")
    return out


def continuity(loaded: list[str], month: str) -> CheckResult:
    months = sorted({*loaded, month})
    first, last = Month.parse(months[0]), Month.parse(months[-1])
    span = [str(Month(i)) for i in range(first.index, last.index + 1)]
    have = set(months)
    missing = [m for m in span if m not in have]
    detail = None
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        detail = f"{len(missing)} month(s) between {first} and {last} are not loaded: {shown}"
    return CheckResult("continuity", None, "no month missing in the force's loaded series", "warning", not missing, len(missing), len(span), detail)


def key_in_other_months(result: ExtractResult, force: str, month: str, column: str, earlier: pl.DataFrame | None) -> CheckResult:
    """``earlier``: the force's committed rows of other months whose key is among this month's (column, month)."""
    desc = f"a {column} of this month was not already loaded in another month"
    clean = result.clean
    # values the contract keeps distinct within a file (a force-month's) are counted, not told apart
    distinct = pl.col(column).count() if _unique_in_file(result.contract, column) else pl.col(column).drop_nulls().n_unique()
    if isinstance(clean, pl.DataFrame):  # rows held: counted in place, no query to plan
        n_keys = int(clean.select(distinct).item())
    else:
        n_keys = int(clean.lazy().select(distinct).collect(engine="streaming").item())
    if earlier is None or n_keys == 0 or earlier.height == 0:
        return CheckResult(f"{column}.not_in_other_months", column, desc, "warning", True, 0, n_keys)
    dup_keys = earlier[column].n_unique()
    by_month = earlier.group_by("month").agg(pl.col(column).n_unique().alias("n")).sort("month")
    where = ", ".join(f"{r['month']} ({r['n']})" for r in by_month.iter_rows(named=True))
    detail = f"{dup_keys} {column} value(s) in {month} were already loaded in: {where}; both copies are kept - check which month is right"
    return CheckResult(f"{column}.not_in_other_months", column, desc, "warning", False, dup_keys, n_keys, detail)


def key_loaded(
    result: ExtractResult, force: str, column: str, lookup: str, lookup_column: str, this_run: list[ExtractResult], committed: pl.DataFrame | None
) -> CheckResult:
    """``committed``: keys of this month already in the committed lookup table for the force (column)."""
    desc = f"every {column} refers to a {lookup} row already loaded (or loaded in this run)"
    keys = result.clean.lazy().select(pl.col(column).cast(pl.Utf8)).drop_nulls().unique()
    known = [r.clean.lazy().select(pl.col(lookup_column).cast(pl.Utf8).alias(column)) for r in this_run if r.contract.extract == lookup]
    if committed is not None:
        known.append(committed.lazy().select(column))
    unknown = keys.join(pl.concat(known).unique(), on=column, how="anti") if known else keys
    counted = pl.collect_all([keys.select(pl.len()), unknown.select(pl.len())], engine="streaming")
    keys_height, n = (int(c.item()) for c in counted)
    detail = None
    if n:
        detail = f"{n} of {keys_height} {column} value(s) refer to {lookup} rows never loaded for {force} (crimes recorded before the first loaded month, or missing from their month's extract)"
    return CheckResult(f"{column}.refers_to_loaded_{lookup}", column, desc, "warning", n == 0, n, keys_height, detail)


ALL_RECORDED = "all_recorded_crime"  # the volume check's series of every recorded crime, whatever its offence group


def volume_checks(
    items: list[tuple[str, ExtractResult]], month: str, baseline_months: int, minimum_months: int, counts: pl.DataFrame | None
) -> dict[str, CheckResult]:
    """Check ``volume_vs_history`` for every force of a batch at once: each offence group's count this
    month against an XmR chart of the force's previous months (one set of frame operations, keyed by force).

    ``counts``: force_id, month, hocr_code, n of the committed recorded rows (None: table never loaded).
    (`prefetch` judges the same way from the counts as `key_index.monthly_counts` reads them, see `_volume_verdicts`.)"""
    forces = [f for f, _ in items]
    if counts is None or counts.height == 0:
        return {f: _not_checked(baseline_months, "no history loaded yet") for f in forces}
    history: dict[str, dict[str, dict[str, int]]] = {}
    for (f, m), sums in _group_sums(counts).items():
        history.setdefault(f, {})[m] = sums
    now = {f: _group_sums(key_index.count_rows("", f, month, r.clean).filter(pl.col("n") > 0)).get((f, month), {}) for f, r in items}
    return _volume_verdicts(forces, month, baseline_months, minimum_months, history, now)


def _volume_description(baseline_months: int) -> str:
    return f"each offence group's monthly count is inside its normal range (XmR limits over up to {baseline_months} previous loaded months)"


def _not_checked(baseline_months: int, why: str) -> CheckResult:
    return CheckResult("volume.within_normal_range", None, _volume_description(baseline_months), "warning", True, 0, 0, "not checked: " + why)


def _group_sums(counts: pl.DataFrame) -> dict[tuple[str, str], dict[str, int]]:
    """(force, month) -> offence group -> count, for every force-month with a row in ``counts`` (force_id, month,
    hocr_code, n): each group of the offence groups definitions its codes belong to that month, and every code
    (in a group or not) as `ALL_RECORDED`."""
    rows = counts.select("force_id", "month", pl.col("hocr_code").cast(pl.Utf8), pl.col("n").cast(pl.Int64))
    groups = load_offence_groups().membership
    in_group = (
        rows.with_columns(_month_index("month").alias("idx"))
        .join(groups, left_on="hocr_code", right_on="code")
        .filter((pl.col("idx") >= pl.col("from_index")) & (pl.col("idx") <= pl.col("to_index")))
        .group_by("force_id", "month", "group")
        .agg(pl.col("n").sum())
    )
    totals = rows.group_by("force_id", "month").agg(pl.col("n").sum())
    out: dict[tuple[str, str], dict[str, int]] = {(f, m): {ALL_RECORDED: n} for f, m, n in zip(*(totals[c].to_list() for c in ("force_id", "month", "n")))}
    for f, m, g, n in zip(*(in_group[c].to_list() for c in ("force_id", "month", "group", "n"))):
        out[(f, m)][g] = n
    return out


def _sums_of(frame: pl.DataFrame, memo: dict) -> dict[tuple[str, str], dict[str, int]]:
    """`_group_sums` of a frame of `key_index.count_rows` rows (those of n > 0, as `key_index.monthly_counts` counts
    them), made once per frame (kept in ``memo`` with the frame: a batch's months read the same frames)."""
    at = ("group sums", id(frame))
    kept = memo.get(at)
    if kept is not None and kept[0] is frame:
        return kept[1]
    sums = _group_sums(frame.filter(pl.col("n") > 0))
    memo[at] = (frame, sums)
    return sums


def _history_sums(got: key_index.CountLookup, memo: dict) -> dict[str, dict[str, dict[str, int]]]:
    """force -> month -> offence group -> count of the months `key_index.monthly_counts` found (a month with a row)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for frame, pairs in got.parts:
        if not pairs:
            continue
        sums = _sums_of(frame, memo)
        for pair in pairs:
            found = sums.get(pair)
            if found is None:
                continue
            mine = out.setdefault(pair[0], {})
            into = mine.get(pair[1])
            if into is None:
                mine[pair[1]] = dict(found)
            else:  # rows of the force-month in two frames: counted together
                for g, n in found.items():
                    into[g] = into.get(g, 0) + n
    return out


def _volume_verdicts(
    forces: list[str], month: str, baseline_months: int, minimum_months: int, history: dict[str, dict[str, dict[str, int]]], now: dict[str, dict[str, int]]
) -> dict[str, CheckResult]:
    """The verdicts of `volume_checks`: ``history`` force -> month -> offence group -> count of every month of the
    force with a count (a loaded month's recorded rows), ``now`` force -> offence group -> count this month.

    Each force's chart months are its latest ``baseline_months`` months with a count before this one; each group
    any of them or this month has is charted over them, 0 in a month without it (one XmR query for all forces)."""
    check, desc = "volume.within_normal_range", _volume_description(baseline_months)
    idx = Month.parse(month).index
    out: dict[str, CheckResult] = {}
    months: dict[str, list[int]] = {}
    past: dict[str, dict[int, dict[str, int]]] = {}
    for f in forces:
        if not history.get(f):
            out[f] = _not_checked(baseline_months, "no history loaded yet")
            continue
        past[f] = {Month.parse(m).index: sums for m, sums in history[f].items()}
        before = sorted(i for i in past[f] if i < idx)
        months[f] = before[-baseline_months:] if baseline_months > 0 else []
        if len(months[f]) < minimum_months:
            out[f] = _not_checked(baseline_months, f"{len(months[f])} previous month(s) loaded, {minimum_months} needed")
    todo = [f for f in forces if f not in out]
    if not todo:
        return out
    points: dict[str, list] = {"force_id": [], "group": [], "idx": [], "n": []}
    current: dict[str, list] = {"force_id": [], "group": [], "n": []}
    for f in todo:
        chart, this = [past[f][i] for i in months[f]], now.get(f, {})
        for g in sorted(set(this).union(*chart)):
            points["force_id"] += [f] * len(chart)
            points["group"] += [g] * len(chart)
            points["idx"] += months[f]
            points["n"] += [sums.get(g, 0) for sums in chart]
            current["force_id"].append(f)
            current["group"].append(g)
            current["n"].append(this.get(g, 0))
    schema = {"force_id": pl.Utf8, "group": pl.Utf8, "idx": pl.Int32, "n": pl.Int64}
    limits = xmr.limits(pl.DataFrame(points, schema=schema), ["force_id", "group"], "n", "idx", no_range="unknown")
    judged = (
        pl.DataFrame(current, schema={k: schema[k] for k in current})
        .join(limits, on=["force_id", "group"])
        .select("force_id", "group", "n", "lower", "upper", xmr.outside(pl.col("n")).alias("outside"))
    )
    judged_groups: dict[str, int] = {}
    outside_by_force: dict[str, list[tuple[str, int, float, float]]] = {}
    for f, g, n, lower, upper, outside in sorted(judged.iter_rows()):  # by force and group
        judged_groups[f] = judged_groups.get(f, 0) + 1
        if outside:
            outside_by_force.setdefault(f, []).append((g, n, lower, upper))
    for f in todo:
        n_groups = judged_groups.get(f, 0)
        outside_rows = outside_by_force.get(f, [])
        span = f"{Month(months[f][0])}..{Month(months[f][-1])}, {len(months[f])} months"
        if not outside_rows:
            out[f] = CheckResult(check, None, desc, "warning", True, 0, n_groups, f"all {n_groups} groups inside their XmR limits ({span})")
            continue
        parts = [f"{g}: {n} vs normal range {_limit(lower)}-{_limit(upper)}" for g, n, lower, upper in outside_rows]
        detail = f"{len(outside_rows)} group(s) outside their normal range in {month} (XmR over {span}): " + "; ".join(parts)
        out[f] = CheckResult(check, None, desc, "warning", False, len(outside_rows), n_groups, detail)
    return out


def _limit(x: float) -> str:
    """A control limit as shown: whole above 100, else one decimal so that 0.4 is not shown as 0."""
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


TOTAL_GROUP = "Total recorded crime (excluding fraud)"
# Rows of a category column that are not crimes, left out of an extract's total recorded crime
# (data.police.uk street files: an anti-social behaviour incident is not a crime; police_uk_mapping.yaml).
NOT_CRIMES: dict[str, tuple[str, ...]] = {"crime_type": ("Anti-social behaviour",)}
NOT_CHECKED = "not checked: "  # the detail of a reconciliation that did not run (passed is null: not run)


@lru_cache(maxsize=8)
def _code_headings(path: str) -> pl.DataFrame:
    """code -> heading of a code list's ``offence_group`` and ``offence_subgroup`` (the Home Office open
    data names, the same words as the ONS tables' headings), one row per (code, heading)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    rows = [
        {"code": str(e.get("code", "")).strip(), "heading": " ".join(str(e[k]).split())}
        for e in data.get("codes") or []
        for k in ("offence_group", "offence_subgroup")
        if e.get(k)
    ]
    return pl.DataFrame(rows, schema={"code": pl.Utf8, "heading": pl.Utf8}).unique()


def _group_counts(contract: Contract, records: pl.LazyFrame, headings: set[str]) -> dict[str, float]:
    """Counts of the crimes in ``records`` by every group whose name is a published heading: total recorded
    crime, the code list's offence groups and subgroups (a force extract's offence codes) and the values of a
    category column (data.police.uk crime types). Crimes only: ``status`` recorded, not-crime categories left out."""
    from etl.core.reference import contracts_dir

    names = records.collect_schema().names()
    crimes = records
    if "status" in names:
        crimes = crimes.filter(pl.col("status") == "recorded")
    for column, values in NOT_CRIMES.items():
        if column in names:
            crimes = crimes.filter(~pl.col(column).is_in(list(values)))
    counts: list[pl.LazyFrame] = [crimes.select(pl.lit(TOTAL_GROUP).alias("heading"), pl.len().cast(pl.Int64).alias("n"))]
    named: set[str] = set()  # groups reconciled even without a record (0 records against the published figure)
    for c in contract.columns:
        if c.name not in names or c.personal:
            continue
        if c.code_list is not None:
            ref = c.code_list.get("reference")
            table = _code_headings(str(contracts_dir() / ref if ref else contracts_dir() / "reference" / "hocr_offence_codes.yaml"))
            groups = table.filter(pl.col("heading").is_in(sorted(headings)))
            named.update(groups["heading"].to_list())
            counts.append(
                crimes.select(pl.col(c.name).cast(pl.Utf8).alias("code"))
                .join(groups.lazy(), on="code")
                .group_by("heading")
                .agg(pl.len().cast(pl.Int64).alias("n"))
            )
        elif c.enum:
            same = sorted({v for v in c.enum if " ".join(v.split()) in headings} - set(NOT_CRIMES.get(c.name, ())))
            named.update(" ".join(v.split()) for v in same)
            if same:
                counts.append(crimes.filter(pl.col(c.name).is_in(same)).group_by(pl.col(c.name).alias("heading")).agg(pl.len().cast(pl.Int64).alias("n")))
    out: dict[str, float] = dict.fromkeys(sorted(named), 0.0)
    for heading, n in pl.concat(pl.collect_all(counts)).iter_rows():
        out[" ".join(str(heading).split())] = float(n)
    return out


def _not_run(check: str, desc: str, why: str) -> CheckResult:
    """A reconciliation that could not be made: not run (``passed`` null in audit_checks), never a pass."""
    return CheckResult(check, None, desc, "warning", cast(bool, None), 0, 0, NOT_CHECKED + why)


def reconcile_published(
    result: ExtractResult, wh: Warehouse, force: str, month: str, loaded: list[str], published: pl.DataFrame | None, tolerance: float
) -> CheckResult:
    """The force's records for the year ending this month against the published count, per offence group.

    Reconciled: total recorded crime, each measure's ``published_offence_group`` (counted as the
    measure counts) and every other group whose name is a heading of the published table (the code
    list's offence groups and subgroups; a category column's values). A group the table does not
    publish is listed as not published. When the comparison cannot be made (no published table for the
    force or the year, a month of the year not loaded) the check did not run: ``passed`` is None
    (null in audit_checks) and the detail says why - it is never stored as a pass.
    """
    from etl.core.published import force_area
    from etl.measures.engine import load_definitions, monthly_counts

    check = "published.reconciliation"
    desc = f"the force's records for a year ending a quarter match the published statistics within {tolerance:g}%"
    m = Month.parse(month)
    area = force_area(force)
    window = [str(m - k) for k in range(11, -1, -1)]
    if published is None or area is None or area["area_code"] is None:
        return _not_run(check, desc, "no published statistics for this force")
    rows = published.filter((pl.col("area_code") == area["area_code"]) & (pl.col("period_end") == month) & (pl.col("period_start") == window[0]))
    if rows.height == 0:
        return _not_run(check, desc, f"no published table for the year ending {month}")
    missing = [w for w in window if w not in set(loaded) | {month}]
    if missing:
        return _not_run(check, desc, f"{len(missing)} month(s) of {window[0]}..{month} not loaded")
    defs = load_definitions()
    extract = result.contract.extract
    lf = wh.scan(extract)
    parts = [result.clean.lazy().with_columns(pl.lit(force).alias("force_id"))]
    if lf is not None:
        parts.insert(0, lf.filter((pl.col("force_id") == force) & pl.col("month").is_in(window) & (pl.col("month") != month)))
    records = pl.concat(parts, how="diagonal_relaxed")
    counts = monthly_counts({extract: records}, defs)
    ours = {
        mm.published_group: counts.filter(pl.col("measure_id") == mm.id)["value"].sum() for mm in defs.measures if mm.published_group and mm.extract == extract
    }
    headings = {" ".join(str(h).split()) for h in rows["offence_group"].to_list()}
    for group, n in _group_counts(result.contract, records, headings).items():
        ours.setdefault(group, n)  # a measure's own count of its published group comes first
    lines, bad = [], 0
    for group, value in sorted(ours.items()):
        pub = rows.filter(pl.col("offence_group") == group)["value"]
        if pub.len() == 0 or pub[0] is None:
            lines.append(f"{group}: records {value:.0f}, not published")
            continue
        diff = (value - pub[0]) / pub[0] * 100 if pub[0] else (0.0 if value == 0 else float("inf"))
        ok = abs(diff) <= tolerance
        bad += not ok
        lines.append(f"{group}: records {value:.0f} vs published {pub[0]:.0f} ({diff:+.1f}%{'' if ok else ' OUTSIDE tolerance'})")
    detail = f"year ending {month} ({window[0]}..{month}), {rows['source_file'][0]}: " + "; ".join(lines)
    return CheckResult(check, None, desc, "warning", bad == 0, bad, len(ours), detail)
