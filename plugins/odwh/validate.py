"""The extract contract checked with Great Expectations inside PostgreSQL, every staged date at once.

``odwh.quarantine`` COPYs the pending dates' files into ``quarantine.<file>`` (all text); here one GX
validation per contract file runs its suite (``odwh.suites.extract_contract``, built from ``odwh.contract``) on
a query over that table, which also computes the derived columns the suite checks: exact decimals for bounds,
keys per date, the folder's date, foreign keys within the same date, reversals (same date, earlier staged dates,
then raw), the KHR rate, known provinces. Each failed expectation becomes Problems naming file, 1-based row
and rule, grouped by date. See ``expectations/README.md`` and ``docs/decisions/0029-set-based-door.md``.

Row numbers are 1-based data rows: the header is row 0, the first data row is row 1 (``raw._row_number``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
from collections import defaultdict
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from odwh import contract, gx, provinces, quarantine, warehouse
from odwh.landing import (
    MAX_ROWS_LISTED,
    RULE_SNAPSHOT_PRESENT,
    Problem,
    StoragePath,
    location,
    overflow_problem,
)
from odwh.quarantine import RULE_UNREADABLE, StagedDate, checks_changes_only
from odwh.snapshot_lines import LineChanges
from odwh.suites.extract_contract import (
    FX_KHR_IS_ONE,
    FX_MISSING,
    PROVINCE_KNOWN,
    REVERSAL_DELIVERED,
    REVERSAL_OPPOSITE,
    REVERSAL_SAME_ACCOUNT,
    by_file,
    decimal_column,
    fk_column,
    has_bounds,
    key_column,
    mistyped_column,
    off_folder_date_column,
    ref_token,
    type_pattern,
)

__all__ = ["RULE_UNREADABLE", "ValidationReport", "check_staged", "validate_delivery"]

INDEX_COLUMNS = ("_business_date", "_row_number")


@dataclass
class ValidationReport:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- the query each suite runs on: the file's rows as text plus the derived columns it checks ---------------


def _value(column: str, alias: str = "q") -> sql.Composable:
    """The delivered text, empty field = null (as the contract says)."""
    return sql.SQL("nullif({}.{}, '')").format(sql.Identifier(alias), sql.Identifier(column))


def _when_present(columns: Sequence[str], then: sql.Composable) -> sql.Composable:
    """``then`` on rows where every column has a value, null elsewhere (GX skips nulls)."""
    present = sql.SQL(" and ").join(sql.SQL("{} is not null").format(_value(c)) for c in columns)
    return sql.SQL("case when {} then {} end").format(present, then)


def _as(expression: sql.Composable, name: str) -> sql.Composable:
    return sql.SQL("{} as {}").format(expression, sql.Identifier(name))


def _typed(column: str) -> sql.Composable:
    """Whether a bounded column's value matches its type (null when empty), computed by :func:`_matched_once`."""
    return sql.SQL("q.{}").format(sql.Identifier(f"{column}::typed"))


def _number(column: str) -> sql.Composable:
    """A bounded column's value as ``numeric`` where it matches its type."""
    return sql.SQL("case when {} then {}::numeric end").format(_typed(column), _value(column))


def _matched_once(spec: contract.ExtractFile, rows: sql.Composable) -> sql.Composable:
    """``rows`` with each bounded column's match with its type (:func:`_typed`), a query level of its own
    (``offset 0``: never merged into the reader, which would match again wherever it names the flag): the
    number and the type rule read one match (the regexes of the balances' three amounts were 6 s of a core twice
    at 100,000 x 61)."""
    bounded = [c for c in spec.columns if has_bounds(c)]
    if not bounded:
        return rows
    matches = [
        _as(sql.SQL("{} ~ {}").format(_value(c.name), sql.Literal(type_pattern(c))), f"{c.name}::typed")
        for c in bounded
    ]
    return sql.SQL("(select q.*, {} from {} as q offset 0)").format(sql.SQL(", ").join(matches), rows)


def _common_columns(spec: contract.ExtractFile) -> list[sql.Composable]:
    found = [_as(_value(c), c) for c in spec.column_names]
    found += [sql.SQL("q._business_date"), sql.SQL("q._row_number")]
    for c in filter(has_bounds, spec.columns):
        mistyped = sql.SQL("case when not {} then {} end").format(_typed(c.name), _value(c.name))
        found += [_as(_number(c.name), decimal_column(c.name)), _as(mistyped, mistyped_column(c.name))]
    if column := spec.folder_date_column:
        off = sql.SQL("nullif({}, to_char(q._business_date, 'YYYY-MM-DD'))").format(_value(column))
        found.append(_as(off, off_folder_date_column(column)))
    return found


def _key_unique(
    conn: psycopg.Connection, spec: contract.ExtractFile
) -> tuple[list[sql.Composable], list[sql.Composable]]:
    """(columns, joins): ``<key>::unique_on_date``, whether no other row of the row's date has its key (null: a
    key column empty). A snapshot checked for its changes only has the verdict from its change flags
    (``_repeated``). Another file's rows are not sorted by key and date (GX's uniqueness was a window over every
    row: 5.5 s of a core for 6 million balances): one hash aggregate per key, the folder's date column left out,
    counts its rows against its staged dates (a bit per date in 64-bit words: 1.6 s), in a query of its own.
    Only when a key has more rows than dates (a bad delivery) are its rows counted by date, and the file's rows
    joined to the repeated ones by row, as to a foreign key's misses (decision 0066)."""
    if checks_changes_only(spec):
        return [_as(_when_present(spec.key, sql.SQL("not q._repeated")), key_column(spec))], []
    keys = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in spec.key]
    by_key = sql.SQL(", ").join(
        [k for c, k in zip(spec.key, keys, strict=True) if c != spec.folder_date_column] or keys
    )
    staged = quarantine.table(spec)
    present = sql.SQL(" and ").join(sql.SQL("{} <> ''").format(k) for k in keys)
    candidates = sql.SQL("""select {by_key} from {t} as s cross join {first} as span
where {present} group by {by_key} having count(*) > {dates}""").format(
        by_key=by_key,
        t=staged,
        first=_FIRST_SPAN,
        present=present,
        dates=sql.SQL(" + ").join(
            sql.SQL("bit_count({}::bit(64))").format(w) for w in _date_words(_span_days(conn))
        ),
    )
    if conn.execute(sql.SQL("select exists ({})").format(candidates)).fetchone() == (False,):
        return [_as(_when_present(spec.key, sql.SQL("true")), key_column(spec))], []
    join = sql.SQL("""left join (
    select r._business_date, r._row_number from (
        select s._business_date, s._row_number, count(*) over (partition by {keys}, s._business_date) as n
        from {t} as s where {present} and ({by_key}) in ({candidates})
    ) as r where r.n > 1
) as repeated on repeated._business_date = q._business_date and repeated._row_number = q._row_number""").format(
        keys=sql.SQL(", ").join(keys), t=staged, present=present, by_key=by_key, candidates=candidates
    )
    return [_as(_when_present(spec.key, sql.SQL("repeated._row_number is null")), key_column(spec))], [join]


# The first staged date: bit i of a keys table's ``dates`` is that date + i (``_write_keys``).
_FIRST_STAGED = sql.SQL("(select min(business_date) from quarantine.staged_dates)")


def _staged_on(alias: str) -> sql.Composable:
    """Whether the key row ``r`` of a keys table was staged on the date of the row ``alias``."""
    return sql.SQL("get_bit(r.dates, {}._business_date - {}) = 1").format(
        sql.Identifier(alias), _FIRST_STAGED
    )


# one row: the first staged date (``span.first`` of :func:`_date_words`)
_FIRST_SPAN = sql.SQL("(select {} as first)").format(_FIRST_STAGED)


def _date_words(span_days: int) -> list[sql.Composable]:
    """Aggregates over staged rows ``s`` joined to :data:`_FIRST_SPAN` as ``span``: per 64 of the ``span_days``
    staged dates, a bigint whose bit i says a row was staged on the date 64 w + i after the first. A by-value
    aggregate: ``bit_or`` of a ``varbit`` per row allocates (4.0 s against 1.8 s for 6 million balances)."""
    offset = sql.SQL("(s._business_date - span.first)")
    return [
        sql.SQL(
            "coalesce(bit_or(1::bigint << ({o} - {low})) filter (where {o} >= {low} and {o} < {high}), 0)"
        ).format(o=offset, low=sql.Literal(64 * w), high=sql.Literal(64 * (w + 1)))
        for w in range(-(-span_days // 64))
    ]


def _span_days(conn: psycopg.Connection) -> int:
    """Days from the first staged date to the last (dates are staged consecutively: the days staged)."""
    row = conn.execute(_SPAN_DAYS).fetchone()
    return row[0] if row and row[0] else 1


def _foreign_keys(spec: contract.ExtractFile) -> tuple[list[sql.Composable], list[sql.Composable]]:
    """(columns, joins): per foreign key, is the row's key among the referenced file's keys of the same date
    (the bit of that date in the referenced key's row of the indexed keys table, ``_write_keys``)? A file's rows
    missing a key are found by one anti-join
    (``fk<i>``: the planner probes the key index for a file of a few rows, and hashes the keys for a large one:
    4.3 s for 6 million balances, where a probe per row took 14.3 s), then joined to the rows by date and row
    number. A snapshot checked for its changes only (``_changes_only``) probes for its changed rows alone, one
    lateral probe each (the rows come from a window over the staged rows, which an anti-join would compute
    again)."""
    joins: list[sql.Composable] = []
    for i, fk in enumerate(spec.foreign_keys):
        key = (contract.FILES_BY_NAME[fk.ref_file], fk.ref_columns)
        keys_table = sql.Identifier("quarantine", quarantine.keys_table(key))
        alias = sql.Identifier(f"fk{i}")
        if not checks_changes_only(spec):
            joins.append(
                sql.SQL(
                    "left join (select m._business_date, m._row_number from {t} as m where {present}"
                    " and not exists (select from {k} as r where {same} and {staged_on}))"
                    " as {a} on {a}._business_date = q._business_date and {a}._row_number = q._row_number"
                ).format(
                    t=quarantine.table(spec),
                    present=sql.SQL(" and ").join(
                        sql.SQL("m.{} <> ''").format(sql.Identifier(c)) for c in fk.columns
                    ),
                    k=keys_table,
                    staged_on=_staged_on("m"),
                    same=sql.SQL(" and ").join(
                        sql.SQL("r.{} = m.{}").format(sql.Identifier(r), sql.Identifier(c))
                        for r, c in zip(fk.ref_columns, fk.columns, strict=True)
                    ),
                    a=alias,
                )
            )
            continue
        joins.append(
            sql.SQL(
                "left join lateral (select true as found from {} as r where {} and {} and not q._unchanged"
                " limit 1) as {} on true"
            ).format(
                keys_table,
                _staged_on("q"),
                sql.SQL(" and ").join(
                    sql.SQL("r.{} = q.{}").format(sql.Identifier(r), sql.Identifier(c))
                    for r, c in zip(fk.ref_columns, fk.columns, strict=True)
                ),
                alias,
            )
        )
    return [_as(_fk_found(spec, i, fk), fk_column(fk)) for i, fk in enumerate(spec.foreign_keys)], joins


def _fk_found(spec: contract.ExtractFile, i: int, fk: contract.ForeignKey) -> sql.Composable:
    """The i-th foreign key's verdict on a row (null: no key). A snapshot row checked for its changes only and
    unchanged since the day before is judged by the keys that vanished overnight: it referenced the same key
    the day before, and only a check's first refused date is reported (the dates after it wait), so that key
    was there the day before."""
    if not checks_changes_only(spec):  # the row is not among the file's rows missing a key
        return _when_present(fk.columns, sql.SQL("{}._row_number is null").format(sql.Identifier(f"fk{i}")))
    found = sql.SQL("{}.found is not null").format(sql.Identifier(f"fk{i}"))
    return _when_present(
        fk.columns,
        sql.SQL("case when q._unchanged then not q.{} else {} end").format(
            sql.Identifier(_vanished_flag(i)), found
        ),
    )


# A reversal's original: this date's file or an earlier staged date's first, then raw's strictly earlier dates
# that are not being replaced; the latest such transaction, through the txn_id indexes (raw's: on trim(txn_id)).
_ORIGINAL = sql.SQL("""left join lateral (
    select o.od_account_id, o.direction from (
        select nullif(t.od_account_id, '') as od_account_id, nullif(t.direction, '') as direction, t._business_date
        from quarantine.od_transactions as t
        where t.txn_id = q.reversed_txn_id and t._business_date <= q._business_date
        union all
        select r.od_account_id, r.direction, r._business_date from raw.od_transactions as r
        where trim(r.txn_id) = q.reversed_txn_id and r._business_date < q._business_date
          and not exists (select from quarantine.staged_dates as s where s.business_date = r._business_date)
    ) as o
    where q.reversed_txn_id <> ''
    order by o._business_date desc limit 1
) as original on true""")
_FOUND = sql.SQL("original.od_account_id is not null or original.direction is not null")


def _reversals() -> tuple[list[sql.Composable], list[sql.Composable]]:
    found = sql.SQL("case when {} then {} end")
    columns = [
        _as(_when_present(["reversed_txn_id"], sql.SQL("({})").format(_FOUND)), REVERSAL_DELIVERED),
        _as(
            found.format(
                _FOUND,
                sql.SQL("original.od_account_id is not distinct from {}").format(_value("od_account_id")),
            ),
            REVERSAL_SAME_ACCOUNT,
        ),
        _as(
            found.format(
                _FOUND, sql.SQL("original.direction is distinct from {}").format(_value("direction"))
            ),
            REVERSAL_OPPOSITE,
        ),
    ]
    return columns, [_ORIGINAL]


def _fx() -> tuple[list[sql.Composable], list[sql.Composable]]:
    # khr_per_unit is bounded (> 0), so the query has its match (_matched_once) for _number
    khr = sql.SQL("case when {c} = 'KHR' and {v} is not null then {v} = 1 end").format(
        c=_value("currency"), v=_number("khr_per_unit")
    )
    missing = sql.SQL("""left join (
    select d._business_date, string_agg(c.currency, ', ' order by c.position) as missing
    from (select _business_date, array_agg(currency) filter (where currency <> '') as have
          from quarantine.fx_rates group by _business_date) as d
    cross join unnest({}::text[]) with ordinality as c(currency, position)
    where c.currency <> all(coalesce(d.have, '{{}}'))
    group by d._business_date
) as fx on fx._business_date = q._business_date""").format(sql.Literal(list(contract.CURRENCIES)))
    return [_as(khr, FX_KHR_IS_ONE), _as(sql.SQL("fx.missing"), FX_MISSING)], [missing]


def _province(known: Sequence[str]) -> tuple[list[sql.Composable], list[sql.Composable]]:
    names = sql.SQL("array[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, known)))
    is_known = sql.SQL("{} = any({})").format(_value("province"), names)
    return [_as(_when_present(["province"], is_known), PROVINCE_KNOWN)], []


def known_provinces(conn: psycopg.Connection) -> list[str]:
    """The distinct staged province names the reference knows (a handful: names, not rows, go through Python)."""
    names = conn.execute("select distinct nullif(province, '') from quarantine.branches").fetchall()
    return sorted(name for (name,) in names if provinces.is_known(name))


# In a snapshot's checked rows (``_changes_only``): the key is not delivered the next staged date. Promoting
# that date closes the key's version from these rows (odwh.load), instead of comparing every key delivered.
GONE_NEXT = "_gone_next"


def _with_compared_lines(conn: psycopg.Connection, spec: contract.ExtractFile) -> sql.Composable:
    """The flags of :func:`_with_change_flags` from the lines compared when received (decision 0069,
    :data:`quarantine.LINE_CHANGES`), on the rows :func:`_changes_only` may keep only: every row of the first staged
    date, the new rows of the dates after it, the rows whose key is gone the next staged date, and the rows whose
    foreign key vanished overnight (only where some did). A row is unchanged unless it is new or of the first date;
    no key repeats (such a date is never compared). The candidates (a few hundred thousand of 9 million staged
    rows) are found by their date and row (the first date's through the quarantine's BRIN index), then hashed, and
    the staged rows scanned once against them: left joins of every staged row to the lines' rows hashed the staged
    rows, every column, spilling (decision 0072)."""
    staged = quarantine.table(spec)
    f = sql.Literal(spec.name)
    candidates: list[sql.Composable] = [
        sql.SQL("select _business_date, _row_number, true, false from {} where _business_date = {}").format(
            staged, _FIRST_STAGED
        ),
        sql.SQL(
            "select business_date, _row_number, true, false from {} where file_name = {} and not gone"
        ).format(quarantine.LINE_CHANGES, f),
        sql.SQL(
            "select business_date - 1, _row_number, false, true from {} where file_name = {} and gone"
        ).format(quarantine.LINE_CHANGES, f),
    ]
    for fk in spec.foreign_keys:
        vanished = sql.Identifier(
            "quarantine", quarantine.vanished_table((contract.FILES_BY_NAME[fk.ref_file], fk.ref_columns))
        )
        if conn.execute(sql.SQL("select exists (select from {})").format(vanished)).fetchone() == (False,):
            continue  # usually: no key vanished overnight, no staged row to scan for it
        candidates.append(
            sql.SQL(
                "select s._business_date, s._row_number, false, false from {} as s join {} as v"
                " on v._business_date = s._business_date and {}"
            ).format(
                staged,
                vanished,
                sql.SQL(" and ").join(
                    sql.SQL("v.{} = s.{}").format(sql.Identifier(r), sql.Identifier(c))
                    for r, c in zip(fk.ref_columns, fk.columns, strict=True)
                ),
            )
        )
    return sql.SQL("""(
    select s.*, not k.checked as _unchanged, false as _repeated, k.gone_next as {gone}
    from {t} as s
    join (
        select business_date, row_number, bool_or(checked) as checked, bool_or(gone_next) as gone_next
        from ({candidates}) as candidate (business_date, row_number, checked, gone_next)
        group by business_date, row_number
    ) as k on k.business_date = s._business_date and k.row_number = s._row_number
)""").format(
        gone=sql.Identifier(GONE_NEXT),
        t=staged,
        candidates=sql.SQL(" union all ").join(candidates),
    )


def _with_change_flags(spec: contract.ExtractFile) -> sql.Composable:
    """The staged rows with ``_unchanged`` (equal, column for column, to the key's last row of the day before,
    staged too), ``_repeated`` (the key has another row on its date) and :data:`GONE_NEXT` (the key's last row
    of its date, and the key has none the next staged date), from one sort by key and date."""
    keys = sql.SQL(", ").join(map(sql.Identifier, spec.key))
    row = sql.SQL("row({})").format(sql.SQL(", ").join(map(sql.Identifier, spec.column_names)))
    # Dates are staged consecutively (a gap stops the door); were the day before not staged, no row would match
    # and every row would be checked. A key repeated on the day before is compared with one of its rows only:
    # a row so judged changed is checked, never skipped. Window functions over one sort, instead of joining the
    # staged rows to themselves (two sorts of every row spilled to disk, then a merge join); a repeat is a
    # neighbour in that order on the same date (a count per key and date would be a second window pass).
    return sql.SQL("""(
    select
        s.*,
        coalesce(lag(s._business_date) over by_key = s._business_date - 1
                 and {row} is not distinct from lag({row}) over by_key, false) as _unchanged,
        coalesce(lag(s._business_date) over by_key = s._business_date
                 or lead(s._business_date) over by_key = s._business_date, false) as _repeated,
        coalesce(lead(s._business_date) over by_key > s._business_date + 1,
                 s._business_date < (select max(business_date) from quarantine.staged_dates)) as {gone}
    from {t} as s
    window by_key as (partition by {keys} order by s._business_date, s._row_number)
)""").format(row=row, keys=keys, t=quarantine.table(spec), gone=sql.Identifier(GONE_NEXT))


def _changes_only(
    conn: psycopg.Connection, spec: contract.ExtractFile, compared: bool = False
) -> sql.Composable:
    """A snapshot's staged rows where a rule could judge them differently from the day before, so a year of
    unchanged accounts is checked once, not 365 times. Its row rules look at its own values alone, so a row
    equal to its key's row on the day before (staged too) gets that row's verdicts (which were checked, or were
    themselves equal to a checked row); a row is still kept when its key repeats on its date or a foreign key
    misses, because those rules look at the other rows of the date, and when its key is gone the next staged
    date (:data:`GONE_NEXT`, for that date's promotion)."""
    kept: list[sql.Composable] = [
        sql.SQL("not c._unchanged"),
        sql.SQL("c._repeated"),
        sql.SQL("c.{}").format(sql.Identifier(GONE_NEXT)),
    ]
    # an unchanged row's foreign key misses exactly when its key vanished overnight (_fk_found): a hash join with
    # the (usually empty) vanished keys, one row per key and date, so that the probes and joins of the query run
    # on the rows kept (a first date and the changes), not on every staged row (a third of the customers' 31 s
    # at 100,000 x 61 was the joins passing 9 million unchanged rows on). A join, not `in (select ...)`: a
    # subquery whose hash outgrows work_mem would be rescanned for every staged row.
    flags: list[sql.Composable] = []
    joins: list[sql.Composable] = []
    for i, fk in enumerate(spec.foreign_keys):
        key = (contract.FILES_BY_NAME[fk.ref_file], fk.ref_columns)
        v = sql.Identifier(f"vanished{i}")
        joins.append(
            sql.SQL(
                "left join {} as {v} on c._unchanged and {v}._business_date = c._business_date and {}"
            ).format(
                sql.Identifier("quarantine", quarantine.vanished_table(key)),
                sql.SQL(" and ").join(
                    sql.SQL("{}.{} = c.{}").format(v, sql.Identifier(r), sql.Identifier(col))
                    for r, col in zip(fk.ref_columns, fk.columns, strict=True)
                ),
                v=v,
            )
        )
        flags.append(
            sql.SQL("{}._business_date is not null as {}").format(v, sql.Identifier(_vanished_flag(i)))
        )
        kept.append(sql.SQL("{}._business_date is not null").format(v))
    return sql.SQL("(select {} from {} as c {} where {})").format(
        sql.SQL(", ").join([sql.SQL("c.*"), *flags]),
        _with_compared_lines(conn, spec) if compared else _with_change_flags(spec),
        sql.SQL(" ").join(joins),
        sql.SQL(" or ").join(kept),
    )


def _vanished_flag(i: int) -> str:
    """In a snapshot's rows kept for the check (``_changes_only``): the i-th foreign key's key vanished overnight."""
    return f"_vanished{i}"


def file_query(conn: psycopg.Connection, spec: contract.ExtractFile, compared: bool = False) -> sql.Composed:
    """The rows of ``spec`` on every staged date, with the derived columns its suite checks; of a snapshot kept
    as change history, only the rows its rules could judge differently from the day before (staged too), found
    from its lines compared when received where ``compared`` (:func:`_write_line_changes`).
    It reads the referenced keys' tables (``_write_keys``)."""
    columns, joins = _common_columns(spec), []
    extra = [_key_unique(conn, spec), _foreign_keys(spec)]
    rows: sql.Composable = quarantine.table(spec)
    if checks_changes_only(spec):
        rows = _changes_only(conn, spec, compared)
        columns.append(sql.SQL("q.{}").format(sql.Identifier(GONE_NEXT)))
    if spec.name == "od_transactions.csv":
        extra.append(_reversals())
    elif spec.name == "fx_rates.csv":
        extra.append(_fx())
    elif spec.name == "branches.csv":
        extra.append(_province(known_provinces(conn)))
    for more_columns, more_joins in extra:
        columns += more_columns
        joins += more_joins
    return sql.SQL("select {} from {} as q {}").format(
        sql.SQL(", ").join(columns), _matched_once(spec, rows), sql.SQL(" ").join(joins)
    )


# --- running ------------------------------------------------------------------------------------------------


CHECK_CONNECTIONS = 2  # the machine's cores: each file's query is one PostgreSQL process's work


def _referenced(files: Sequence[contract.ExtractFile]) -> dict[quarantine.ReferencedKey, bool]:
    """The keys the foreign keys of ``files`` reference -> whether their vanished keys are needed."""
    referenced: dict[quarantine.ReferencedKey, bool] = {}
    for f in files:
        for fk in f.foreign_keys:
            key = (contract.FILES_BY_NAME[fk.ref_file], fk.ref_columns)
            referenced[key] = referenced.get(key, False) or checks_changes_only(f)
    return referenced


Work = Callable[[psycopg.Connection], None]


def _on_free_connection(
    connections: queue.Queue[psycopg.Connection], work: Work, after: Sequence[Future[None]] = ()
) -> None:
    """Run ``work`` on a free connection of ``connections`` once ``after`` are done. Each job is submitted after
    the jobs it waits for, to a first-in first-out pool, so those are running or done: waiting cannot deadlock."""
    for done in after:
        done.result()
    conn = connections.get()
    try:
        work(conn)
    finally:
        connections.put(conn)


def _key_jobs(
    files: Sequence[contract.ExtractFile], by_changes: Collection[str] = ()
) -> tuple[list[Work], list[Work]]:
    """(first, then): writing each referenced key's table and index (from the changes of a file staged ``by_changes``
    on some date), then (once they are all written, so that no statement still running keeps their rows from
    being all-visible) vacuuming each for index-only probes and writing its vanished keys."""
    first: list[Work] = []
    then: list[Work] = []
    for key, vanished in _referenced(files).items():
        first.append(functools.partial(_write_keys, key=key, from_changes=key[0].name in by_changes))
        then.append(functools.partial(_finish_keys, key=key, vanished=vanished))
    return first, then


def write_checked(
    conn: psycopg.Connection,
    files: Sequence[contract.ExtractFile],
    staged: Sequence[StagedDate] = (),
    lines: Mapping[date, Mapping[str, LineChanges | None]] | None = None,
) -> None:
    """Write the checked rows of ``files`` on ``conn`` alone, what :func:`check_staged` does in parallel, into
    ``quarantine.checked_<file>`` (``quarantine.clear`` drops them); with the ``staged`` dates' ``lines``, as
    :func:`check_staged` does with them."""
    quarantine.record_checked_dates(conn)
    compared = _write_line_changes(conn, staged, lines or {})
    first, then = _key_jobs(files, _staged_by_changes(staged))
    for work in [*first, *then]:
        work(conn)
    for f in files:
        _write_checked_rows(conn, f, compared=f.name in compared)


def _staged_by_changes(staged: Sequence[StagedDate]) -> set[str]:
    """The files staged by their changed lines on some of the ``staged`` dates (``quarantine._Plan``)."""
    return {name for d in staged for name in d.by_changes}


def _write_keys(conn: psycopg.Connection, key: quarantine.ReferencedKey, from_changes: bool = False) -> None:
    """A referenced key's staged values (none empty), one row per value with the staged dates it was delivered on
    as bits (bit i: the first staged date + i), indexed: the foreign keys' probes. One hash aggregate, no sort
    (at 100,000 x 61 the customers' 9.2 million staged rows make 150,717 rows; decision 0063), of 64-bit words
    (:func:`_date_words`) written out as the key's bit string. A table of the loader's own: it may not index the
    quarantine's."""
    columns = sql.SQL(", ").join(map(sql.Identifier, key[1]))
    table = sql.Identifier("quarantine", quarantine.keys_table(key))
    days = _span_days(conn)
    rows = _keys_from_changes(key, days) if from_changes else _keys_of_every_row(key, days)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create unlogged table {} as {}").format(table, rows))
    conn.execute(sql.SQL("create unique index on {} ({})").format(table, columns))


def _keys_of_every_row(key: quarantine.ReferencedKey, days: int) -> sql.Composable:
    """:func:`_write_keys`'s rows from every staged row of the file."""
    columns = sql.SQL(", ").join(map(sql.Identifier, key[1]))
    present = sql.SQL(" and ").join(sql.SQL("s.{} <> ''").format(sql.Identifier(c)) for c in key[1])
    # bit i of the text: reverse() puts a word's bit i (its text's position 64 - i) at position i + 1
    bits = sql.SQL("concat({})").format(
        sql.SQL(", ").join(sql.SQL("reverse({}::bit(64)::text)").format(w) for w in _date_words(days))
    )
    return sql.SQL(
        "select {keys}, substring({bits} for {days})::varbit as dates"
        " from {staged} as s cross join {first} as span where {present} group by {keys}"
    ).format(
        keys=columns,
        bits=bits,
        days=sql.Literal(days),
        staged=quarantine.table(key[0]),
        first=_FIRST_SPAN,
        present=present,
    )


def _keys_from_changes(key: quarantine.ReferencedKey, days: int) -> sql.Composable:
    """:func:`_write_keys`'s rows of a file staged by its changed lines on some dates (``quarantine._Plan``), whose
    unchanged rows are not staged: a key is delivered from the first date or a date its line is new or changed
    (the lines compared, :data:`quarantine.LINE_CHANGES`) until the first date after that its key is gone (the
    day before's row, staged), or the last date. One run of dates per such row, as bits, or-ed per key: the first
    date's rows and the changes, not the rows of a date staged whole (an unchanged row continues a run)."""
    f, names = key
    keys = sql.SQL(", ").join(map(sql.Identifier, names))
    present = sql.SQL(" and ").join(sql.SQL("s.{} <> ''").format(sql.Identifier(c)) for c in names)
    same = sql.SQL(" and ").join(sql.SQL("g.{c} = r.{c}").format(c=sql.Identifier(c)) for c in names)
    return sql.SQL("""with starts as (
    select {s_keys}, s._business_date - span.first as since
    from {staged} as s cross join {first} as span
    where s._business_date = span.first and {present}
    union all
    select {s_keys}, c.business_date - span.first
    from {changes} as c
    join {staged} as s on s._business_date = c.business_date and s._row_number = c._row_number
    cross join {first} as span
    where c.file_name = {name} and not c.gone and {present}
), gone as (
    select {s_keys}, c.business_date - span.first as until
    from {changes} as c
    join {staged} as s on s._business_date = c.business_date - 1 and s._row_number = c._row_number
    cross join {first} as span
    where c.file_name = {name} and c.gone and {present}
), runs as (
    select {r_keys}, r.since, coalesce(min(g.until), {days}) as until
    from starts as r left join gone as g on {same} and g.until > r.since
    group by {r_keys}, r.since
)
select {keys},
    bit_or((repeat('0', since) || repeat('1', until - since) || repeat('0', {days} - until))::varbit)::varbit
    as dates
from runs group by {keys}""").format(
        s_keys=sql.SQL(", ").join(sql.Identifier("s", c) for c in names),
        r_keys=sql.SQL(", ").join(sql.Identifier("r", c) for c in names),
        keys=keys,
        staged=quarantine.table(f),
        first=_FIRST_SPAN,
        present=present,
        changes=quarantine.LINE_CHANGES,
        name=sql.Literal(f.name),
        days=sql.Literal(days),
        same=same,
    )


# the staged dates' first date and span in days (dates are staged consecutively: the days staged)
_SPAN = sql.SQL(
    "(select min(business_date) as first, max(business_date) - min(business_date) + 1 as days"
    " from quarantine.staged_dates)"
)
_SPAN_DAYS = sql.SQL("select span.days from {} as span").format(_SPAN)


def _finish_keys(conn: psycopg.Connection, key: quarantine.ReferencedKey, vanished: bool) -> None:
    """Vacuum a key table (its visibility map: probes skip the heap) and, when ``vanished``, write the keys
    present on a staged date and absent on the next, with that next date (``_changes_only``)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, key[1]))
    table = sql.Identifier("quarantine", quarantine.keys_table(key))
    conn.execute(sql.SQL("vacuum (analyze) {}").format(table))
    if not vanished:
        return
    target = sql.Identifier("quarantine", quarantine.vanished_table(key))
    conn.execute(sql.SQL("drop table if exists {}").format(target))
    # bit i of ``ends``: staged on date i and not on date i + 1, the last date's bit cleared (no next date); a
    # key's dates are expanded only when it has such a bit (usually none)
    conn.execute(
        sql.SQL("""create unlogged table {v} as
select {keys}, span.first + i + 1 as _business_date
from (select {keys}, set_bit(dates & ~(dates << 1), length(dates) - 1, 0) as ends from {t}) as k
cross join {span} as span
cross join generate_series(0, span.days - 2) as i
where position(B'1' in k.ends) > 0 and get_bit(k.ends, i) = 1""").format(
            v=target, keys=columns, t=table, span=_SPAN
        )
    )
    conn.execute(sql.SQL("analyze {}").format(target))  # usually empty; the check joins it to every row


def _write_checked_rows(conn: psycopg.Connection, spec: contract.ExtractFile, compared: bool) -> None:
    """Write the file's query once to an unlogged table of quarantine (dropped after the check, and by the
    quarantine's clearing after a killed run): GX's metrics then scan it instead of each re-running the query."""
    target = sql.Identifier("quarantine", quarantine.checked_table(spec))
    conn.execute(sql.SQL("drop table if exists {}").format(target))
    with conn.transaction():  # a cache of each probe's result only costs: the keys are rarely repeated
        conn.execute("set local enable_memoize = off")
        # the misses of a foreign key (none in a valid delivery) are estimated at half the rows: planned for
        # millions, they were hashed in two batches, or both sides sorted for a merge, and the staged rows
        # written to disk and read back to meet them (the balances 2.5 s, the transactions 1.7 s)
        conn.execute("set local enable_mergejoin = off")
        conn.execute("set local hash_mem_multiplier = 4")
        conn.execute(
            sql.SQL("create unlogged table {} as {}").format(target, file_query(conn, spec, compared))
        )
    if checks_changes_only(spec):  # its rows are read date by date again when promoted
        conn.execute(sql.SQL("create index on {} (_business_date)").format(target))


def _checked_batches(
    conn: psycopg.Connection,
    checker_url: str,
    delivered: Sequence[contract.ExtractFile],
    compared: Collection[str] = (),
    by_changes: Collection[str] = (),
) -> Generator[gx.TableBatch]:
    """Every delivered file's checked rows written, CHECK_CONNECTIONS statements at a time (``conn`` and more
    connections to ``checker_url``), started in the order given, after the keys their foreign keys reference
    (of the files staged ``by_changes`` on some date, from their changes),
    while this thread imports Great Expectations and builds the suites; each file's batch is yielded as soon as
    its rows are written, so that its validation runs beside the files still being written (the validations
    alone use about one core and a half: docs/performance.md)."""
    connections: queue.Queue[psycopg.Connection] = queue.Queue()
    connections.put(conn)
    first, then = _key_jobs(delivered, by_changes)
    with contextlib.ExitStack() as stack:
        for _ in range(CHECK_CONNECTIONS - 1):
            connections.put(stack.enter_context(psycopg.connect(checker_url, autocommit=True)))
        with ThreadPoolExecutor(CHECK_CONNECTIONS) as pool:

            def submit(work: Work, after: Sequence[Future[None]] = ()) -> Future[None]:
                return pool.submit(_on_free_connection, connections, work, after)

            keys = [submit(work) for work in first]
            keys = [submit(work, keys) for work in then]
            written = {
                submit(functools.partial(_write_checked_rows, spec=f, compared=f.name in compared), keys): f
                for f in delivered
            }
            suites = by_file()  # seconds of Python (GX's import), while PostgreSQL writes the tables
            for done in as_completed(written):
                done.result()
                f = written[done]
                yield gx.TableBatch(suites[f.name], "quarantine", quarantine.checked_table(f), f.name)


def check_staged(
    conn: psycopg.Connection,
    checker_url: str,
    staged: Sequence[StagedDate],
    files: Collection[str] | None = None,
    lines: Mapping[date, Mapping[str, LineChanges | None]] | None = None,
) -> dict[date, ValidationReport]:
    """Every rule of the extract contract on the staged dates: one GX validation per file over all of them.

    ``checker_url`` is where GX connects (the loader's URL: it reads quarantine and raw). Problems name file,
    1-based data row (header = row 0) and rule; per date, rule and file the first ``MAX_ROWS_LISTED`` rows are
    listed, then one line with the count. ``files`` limits the suites run (default: every contract file).

    Each date is judged as if the staged dates before it passed: a snapshot row unchanged since the day before
    is not checked again (``_changes_only``). The reports of the dates after the first refused one may so miss
    problems; the door never shows them (those dates wait behind it, and are checked again when they load).
    ``lines``: per staged date, its snapshots' lines compared with the date before's when received
    (``odwh.snapshot_lines``), which spare the sort that finds their unchanged rows.
    """
    checked = [f for f in contract.FILES if files is None or f.name in files]
    problems = {d.business_date: list(d.problems) for d in staged}
    warnings = {d.business_date: list(d.warnings) for d in staged}
    for d in staged:
        problems[d.business_date] += _absent(d, checked)
    delivered = [f for f in checked if any(f.name in d.rows for d in staged)]
    quarantine.record_checked_dates(conn)
    results: dict[str, gx.ExpectationSuiteValidationResult] = {}
    try:
        if delivered:  # closed before the tables are dropped: its writes are done or stopped
            # the files with most staged rows first: the last statement to start is then a short one (in the
            # contract's order, the loans started last and ran alone for 20 s at 100,000 x 61)
            staged_rows = {f.name: sum(d.rows.get(f.name, 0) for d in staged) for f in delivered}
            largest_first = sorted(delivered, key=lambda f: -staged_rows[f.name])
            compared = _write_line_changes(conn, staged, lines or {})
            by_changes = _staged_by_changes(staged)
            with contextlib.closing(
                _checked_batches(conn, checker_url, largest_first, compared, by_changes)
            ) as batches:
                results = gx.validate_tables(checker_url, batches, INDEX_COLUMNS)
    finally:  # a snapshot's changed rows stay for its promotion (odwh.load); quarantined() drops them after
        quarantine.drop_keys(conn)
        conn.execute(sql.SQL("drop table if exists {}").format(quarantine.LINE_CHANGES))
        quarantine.drop_checked(conn, [f for f in delivered if not checks_changes_only(f)])
    for spec in delivered:  # in the contract's order, whichever was validated first
        found, warned = _to_problems(conn, spec, staged, gx.outcomes(results[spec.name]))
        for day, listed in found.items():
            problems[day] += listed
        for day, noted in warned.items():
            warnings[day] += noted
    return {
        d: ValidationReport(ok=not problems[d], problems=problems[d], warnings=warnings[d]) for d in problems
    }


def _write_line_changes(
    conn: psycopg.Connection,
    staged: Sequence[StagedDate],
    lines: Mapping[date, Mapping[str, LineChanges | None]],
) -> set[str]:
    """The snapshots whose lines were compared on every staged date (each date after the first against the day
    before), their new rows and the day before's rows of keys gone written to :data:`quarantine.LINE_CHANGES`
    (one ``COPY``, tens of thousands of rows a day at 100,000 accounts); the others are compared by their sort."""
    dates = [d.business_date for d in staged]
    compared = {
        f.name
        for f in contract.FILES
        if checks_changes_only(f)
        and len(dates) > 1
        and quarantine.compared_throughout([lines.get(d, {}).get(f.name) for d in dates])
    }
    if by_changes := _staged_by_changes(staged) - compared:  # never: quarantine._Plan
        raise RuntimeError(
            f"staged by their changed lines, yet not compared: {', '.join(sorted(by_changes))}"
        )
    conn.execute(sql.SQL("drop table if exists {}").format(quarantine.LINE_CHANGES))
    if not compared:
        return compared
    conn.execute(
        sql.SQL(
            "create unlogged table {} (file_name text, business_date date, gone boolean, _row_number integer)"
        ).format(quarantine.LINE_CHANGES)
    )
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("copy {} from stdin").format(quarantine.LINE_CHANGES)) as copy,
    ):
        for d in dates[1:]:  # the first date's rows are all checked, and its day before is not staged
            for name in sorted(compared):
                changes = lines[d][name]
                assert changes is not None and changes.changed is not None
                for gone, rows in ((False, changes.changed), (True, changes.gone_before)):
                    if rows:
                        prefix = f"{name}\t{d.isoformat()}\t{'t' if gone else 'f'}\t"
                        copy.write("".join(f"{prefix}{r}\n" for r in rows))
    conn.execute(sql.SQL("analyze {}").format(quarantine.LINE_CHANGES))
    return compared


def _absent(day: StagedDate, checked: Sequence[contract.ExtractFile]) -> list[Problem]:
    """A snapshot file not delivered; an fx_rates file without rows (no currency at all: no row says so)."""
    found = [
        Problem(day.label(f.name), None, None, RULE_SNAPSHOT_PRESENT)
        for f in checked
        if f.kind == "snapshot" and not (day.folder / f.name).exists()
    ]
    if any(f.name == "fx_rates.csv" for f in checked) and day.rows.get("fx_rates.csv") == 0:
        missing = ", ".join(contract.CURRENCIES)
        found.append(
            Problem(
                day.label("fx_rates.csv"),
                None,
                "currency",
                contract.RULE_FX_COMPLETE,
                f"a currency is missing: {missing}",
            )
        )
    return found


def validate_delivery(
    folder: str | os.PathLike[str] | StoragePath, warehouse_url: str, *, files: Collection[str] | None = None
) -> ValidationReport:
    """Check one delivery folder (a landing folder or its archive copy) through the quarantine of the warehouse
    at ``warehouse_url``, which is left empty; nothing reaches raw. Reversals of earlier transactions resolve
    against raw. ``files`` limits the check to those file names; the files their foreign keys reference are
    still staged. Manifest, sha256 and field counts are ``landing.verify_manifest``'s job."""
    wanted = set(contract.FILES_BY_NAME if files is None else files)
    if unknown := wanted - set(contract.FILES_BY_NAME):
        raise ValueError(f"not extract files: {', '.join(sorted(unknown))}")
    staged_files = wanted | {
        fk.ref_file for name in wanted for fk in contract.FILES_BY_NAME[name].foreign_keys
    }
    loader = warehouse.stage_url(warehouse.LOADER, warehouse_url)
    with (
        psycopg.connect(loader, autocommit=True) as conn,
        quarantine.quarantined(conn, [location(folder)], sorted(staged_files)) as staged,
    ):
        [report] = check_staged(conn, loader, staged, wanted).values()
    return report


# --- GX outcomes as Problems --------------------------------------------------------------------------------

_Failed = tuple[date, tuple[str, ...], str, str]  # date, columns, rule, explain


def _unavailable(spec: contract.ExtractFile, day: StagedDate) -> set[str]:
    """What a rule of ``spec`` may need and ``day`` lacks: its missing columns, referenced files not staged."""
    found = set(day.missing_columns.get(spec.name, ()))
    for fk in spec.foreign_keys:
        if fk.ref_file not in day.rows or set(fk.ref_columns) & set(day.missing_columns.get(fk.ref_file, ())):
            found.add(ref_token(fk))
    return found


def _to_problems(
    conn: psycopg.Connection,
    spec: contract.ExtractFile,
    staged: Sequence[StagedDate],
    outcomes: list[gx.Outcome],
) -> tuple[dict[date, list[Problem]], dict[date, list[str]]]:
    days = {d.business_date: d for d in staged if spec.name in d.rows}
    unavailable = {d: _unavailable(spec, day) for d, day in days.items()}
    problems: dict[date, list[Problem]] = defaultdict(list)
    failed: dict[_Failed, set[int]] = defaultdict(set)
    warned: dict[_Failed, set[int]] = defaultdict(set)
    for outcome in outcomes:
        meta = outcome.meta
        columns: tuple[str, ...] = tuple(meta.get("columns", ()))
        needs = set(meta.get("needs", columns))
        if (error := outcome.error()) is not None:
            for d in days:
                detail = f"could not be checked: {error}"
                problems[d].append(
                    Problem(
                        days[d].label(spec.name),
                        None,
                        ", ".join(columns) or None,
                        meta.get("rule", "?"),
                        detail,
                    )
                )
            continue
        if outcome.success:
            continue
        reported: set[date] = set()  # a rule with one verdict per date is reported once per date
        for row in outcome.result.get("unexpected_index_list") or []:
            d = row["_business_date"]
            if d not in days or unavailable[d] & needs or d in reported:
                continue  # a missing column or referenced file is reported once, not once per rule on it
            if meta.get("per_date"):
                problems[d].append(_per_date(days[d].label(spec.name), meta, row, outcome.kwargs["column"]))
                reported.add(d)
                continue
            into = warned if outcome.warning else failed
            into[(d, columns, meta["rule"], meta.get("explain", ""))].add(row["_row_number"])
    values = _row_values(conn, spec, [*failed.items(), *warned.items()])
    for (d, columns, rule, explain), rows in failed.items():  # overlapping expectations: one row, once
        problems[d] += _listed(days[d].label(spec.name), (d, columns, rule, explain), rows, values)
    warnings: dict[date, list[str]] = defaultdict(list)
    for (d, columns, rule, explain), rows in warned.items():
        warnings[d] += map(str, _listed(days[d].label(spec.name), (d, columns, rule, explain), rows, values))
    return problems, warnings


def _per_date(label: str, meta: dict[str, Any], row: dict[str, Any], column: str) -> Problem:
    """A rule with one verdict per date (every row of the date carries it): one Problem, no row."""
    return Problem(
        label,
        None,
        ", ".join(meta.get("columns", ())) or None,
        meta["rule"],
        f"{meta.get('explain', '')}: {row[column]}",
    )


def _listed(
    label: str, failed: _Failed, rows: set[int], values: dict[tuple[date, int], dict[str, Any]]
) -> list[Problem]:
    d, columns, rule, explain = failed
    column = ", ".join(columns) or None
    listed = [
        Problem(label, row, column, rule, _row_detail(values.get((d, row), {}), columns, explain))
        for row in sorted(rows)[:MAX_ROWS_LISTED]
    ]
    return listed + overflow_problem(label, column, rule, len(rows))


def _row_values(
    conn: psycopg.Connection, spec: contract.ExtractFile, failures: list[tuple[_Failed, set[int]]]
) -> dict[tuple[date, int], dict[str, Any]]:
    """The delivered values of the listed failing rows (at most MAX_ROWS_LISTED per date and rule)."""
    wanted = sorted({(f[0], row) for f, rows in failures for row in sorted(rows)[:MAX_ROWS_LISTED]})
    if not wanted:
        return {}
    query = sql.SQL(
        "select q._business_date, q._row_number, {} from {} as q"
        " join unnest(%s::date[], %s::integer[]) as w(d, n) on q._business_date = w.d and q._row_number = w.n"
    ).format(sql.SQL(", ").join(map(_value, spec.column_names)), quarantine.table(spec))
    found = conn.execute(query, ([d for d, _ in wanted], [n for _, n in wanted])).fetchall()
    return {(d, n): dict(zip(spec.column_names, values, strict=True)) for d, n, *values in found}


def _row_detail(values: dict[str, Any], columns: Sequence[str], explain: str) -> str:
    shown = ", ".join(repr(values[c]) if values.get(c) is not None else "empty" for c in columns)
    return f"{'value' if len(columns) == 1 else 'values'} {shown}" + (f": {explain}" if explain else "")
