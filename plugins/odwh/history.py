"""Snapshot files stored as change history (docs/decisions/0030-snapshot-history.md).

``customers``, ``od_accounts``, ``loans`` and ``fixed_deposits`` arrive whole every day and change little:
``raw.<table>`` (and ``pii.<table>`` for client identifiers) keep a row *version* only when a key's contract
columns change. A version holds the values, ``valid_from`` (the first business date delivered with them),
``valid_to`` (exclusive; null while still current) and the ``_load_id`` / ``_row_number`` of the delivery of
its first date. "The rows as of D" are the versions with ``valid_from <= D < coalesce(valid_to, infinity)``.

Loading a date replaces exactly that date, in set-based statements (:func:`replace_date`, per table):

* after every loaded date, or redelivering the newest one, the date is *cut off* (versions starting on it are
  deleted, versions that ended on it become current again) and the delivery *appended*: current versions whose
  row changed or vanished are closed, new or changed rows open versions;
* redelivering an earlier date *cuts it out* of the versions covering it whose row changed or vanished (split
  into the pieces before and after it), and each new or changed row becomes a one-day version merged with an
  equal version ending that day and one starting the day after.

So no two adjacent versions of a key are equal, "as of D" is exactly the rows last delivered for D, the work is
proportional to the rows that differ, and the same delivery twice leaves the same versions.

"Newest" is decided by ``meta.loads`` (the current loads of the other dates), so callers register the load of
a date before writing its rows, as ``odwh.load.promote`` does. Versions may span a date that was never
loaded; "as of D" is only asked of loaded dates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg
from psycopg import sql

from odwh import contract

STORED_AS_HISTORY = frozenset({"customers.csv", "od_accounts.csv", "loans.csv", "fixed_deposits.csv"})


def stored_as_history(f: contract.ExtractFile) -> bool:
    return f.name in STORED_AS_HISTORY


def as_of(d: sql.Composable) -> sql.Composable:
    """The condition "this version is the row as of ``d``" (a date expression)."""
    return sql.SQL("valid_from <= {d} and (valid_to > {d} or valid_to is null)").format(d=d)


# a history's versions, one row per current load's business date they cover (dbt: macro history_as_of)
_BY_BUSINESS_DATE = (
    "(select h.*, l.business_date as _business_date from meta.loads as l join {table} as h"
    " on h.valid_from <= l.business_date and (h.valid_to > l.business_date or h.valid_to is null)"
    " where l.superseded_at is null)"
)


def by_business_date(f: contract.ExtractFile, schema: str = "raw") -> str:
    """``schema.<table>`` as one row per key and loaded business date (``_business_date``), whatever its
    storage (a contract table name, no input); alias it where it is used."""
    table = f"{schema}.{f.table}"
    return _BY_BUSINESS_DATE.format(table=table) if stored_as_history(f) else table


def _newest_other_date(conn: psycopg.Connection, d: date) -> date | None:
    row = conn.execute(
        "select max(business_date) from meta.loads where superseded_at is null and business_date <> %s", (d,)
    ).fetchone()
    return row[0] if row else None


def _is_newest(conn: psycopg.Connection, d: date) -> bool:
    """Whether ``d`` is after every other loaded date. Loads of different dates share the versions, so the
    first call of a transaction queues it behind any other load of a history (until it commits)."""
    conn.execute("select pg_advisory_xact_lock(hashtext('odwh.history'))")
    newest = _newest_other_date(conn, d)
    return newest is None or d > newest


@dataclass(frozen=True)
class Changes:
    """What the contract check learnt of a date whose day before was loaded from the same staging: ``rows``, a
    relation of the rows (typed, like ``replace_date``'s ``day``) that differ in text from their key's row the
    day before or are new (it may hold unchanged rows too); ``gone``, a relation of the key columns of the day
    before's rows whose key is not delivered on the date."""

    rows: sql.Composable
    gone: sql.Composable


def replace_date(
    conn: psycopg.Connection,
    table: sql.Identifier,
    day: Callable[[], sql.Composable],
    d: date,
    load_id: int,
    *,
    values: Sequence[str],
    key: Sequence[str],
    row_number: bool,
    numeric: Sequence[str],
    changes: Changes | None = None,
) -> None:
    """Make the rows of ``day()`` (a relation of the ``values`` columns, typed, one row per key, plus
    ``_row_number`` when ``row_number``; ``numeric`` names those of type numeric) the rows of business date
    ``d`` in the history ``table`` (schema-qualified), as delivered by load ``load_id``.

    With ``changes``, given when the day before ``d`` was loaded from the same staging: if ``d`` follows that
    date directly, the current versions after the cut-off are that day's rows, so only the changed rows and
    the keys no longer delivered are closed, and ``day`` is never asked for."""
    parts = _Parts(values, key, row_number, numeric)
    if _is_newest(conn, d):
        conn.execute(sql.SQL("delete from {} where valid_from = %s").format(table), (d,))
        conn.execute(sql.SQL("update {} set valid_to = null where valid_to = %s").format(table), (d,))
        if changes is not None and _newest_other_date(conn, d) == d - timedelta(days=1):
            _append_changes(conn, table, changes, d, load_id, parts)
        else:
            _append(conn, table, day(), d, load_id, parts)
    else:
        rows = day()
        _cut_out_changed(conn, table, rows, d, parts)
        _merge_in(conn, table, rows, d, load_id, parts)


class _Parts:
    """The SQL fragments both insert paths share: column lists, key and row equality of ``h`` and ``s``."""

    def __init__(
        self, values: Sequence[str], key: Sequence[str], row_number: bool, numeric: Sequence[str]
    ) -> None:
        self.values = sql.SQL(", ").join(map(sql.Identifier, values))
        self.day_values = sql.SQL(", ").join(sql.Identifier("s", c) for c in values)
        self.same_key = sql.SQL(" and ").join(
            sql.SQL("h.{c} = s.{c}").format(c=sql.Identifier(k)) for k in key
        )
        # The row as delivered: every value equal (nulls alike) and each numeric at the same scale (1.50 is not
        # 1.5), which is what comparing the rows' text did, at a fifth of the cost (no value formatted). Exact
        # for the contract's types (text, date, integer, boolean, numeric); a float would need its text.
        self.same_row = sql.SQL(" and ").join(
            [
                sql.SQL("row({}) is not distinct from row({})").format(
                    sql.SQL(", ").join(sql.Identifier("h", c) for c in values), self.day_values
                ),
                *(
                    sql.SQL("scale(h.{c}) is not distinct from scale(s.{c})").format(c=sql.Identifier(c))
                    for c in numeric
                ),
            ]
        )
        self.key_returned = sql.SQL(", ").join(sql.Identifier("h", k) for k in key)
        self.first_key = sql.Identifier(key[0])
        self.joins = {
            alias: sql.SQL(" and ").join(
                sql.SQL("{a}.{c} = s.{c}").format(a=sql.Identifier(alias), c=sql.Identifier(k)) for k in key
            )
            for alias in ("p", "n")
        }
        self.row_number = row_number
        self.lineage = sql.SQL(", _load_id, _row_number" if row_number else ", _load_id")
        lineage = ["_load_id", "_row_number"] if row_number else ["_load_id"]
        self.stored = sql.SQL(", ").join(map(sql.Identifier, [*values, *lineage]))


def _append(
    conn: psycopg.Connection, table: sql.Identifier, day: sql.Composable, d: date, load_id: int, parts: _Parts
) -> None:
    """``d`` after every loaded date: close the current versions whose row changed or vanished, open the new."""
    conn.execute(
        sql.SQL(
            "update {t} h set valid_to = %s where h.valid_to is null and not exists (select from {day} s where {k})"
        ).format(t=table, day=day, k=sql.SQL("{} and {}").format(parts.same_key, parts.same_row)),
        (d,),
    )
    _open_versions(conn, table, day, d, load_id, parts)


def _append_changes(
    conn: psycopg.Connection, table: sql.Identifier, changes: Changes, d: date, load_id: int, parts: _Parts
) -> None:
    """``d`` the day after the date the current versions hold: :func:`_append`, reading only what changed."""
    conn.execute(
        sql.SQL(
            "update {t} h set valid_to = %s from {rows} s where h.valid_to is null and {k} and not ({same})"
        ).format(t=table, rows=changes.rows, k=parts.same_key, same=parts.same_row),
        (d,),
    )
    conn.execute(
        sql.SQL("update {t} h set valid_to = %s from {gone} s where h.valid_to is null and {k}").format(
            t=table, gone=changes.gone, k=parts.same_key
        ),
        (d,),
    )
    _open_versions(conn, table, changes.rows, d, load_id, parts)


def _open_versions(
    conn: psycopg.Connection, table: sql.Identifier, day: sql.Composable, d: date, load_id: int, parts: _Parts
) -> None:
    """A version from ``d`` for each row of ``day`` that no current version equals."""
    equal_current = sql.SQL("h.valid_to is null and {} and {}").format(parts.same_key, parts.same_row)
    number = sql.SQL(", s._row_number" if parts.row_number else "")
    conn.execute(
        sql.SQL(
            "insert into {t} ({cols}, valid_from, valid_to{lineage})"
            " select {vals}, %s, null, %s{number} from {day} s"
            " where not exists (select from {t} h where {equal})"
        ).format(
            t=table,
            cols=parts.values,
            lineage=parts.lineage,
            vals=parts.day_values,
            number=number,
            day=day,
            equal=equal_current,
        ),
        (d, load_id),
    )


def _cut_out_changed(
    conn: psycopg.Connection, table: sql.Identifier, day: sql.Composable, d: date, parts: _Parts
) -> None:
    """Split the versions covering ``d`` whose row differs from (or is missing in) ``day`` around ``d``."""
    conn.execute(
        sql.SQL(
            "with covering as (delete from {t} h where {covers}"
            "  and not exists (select from {day} s where {k} and {same}) returning h.*)"
            " insert into {t} ({cols}, valid_from, valid_to)"
            " select {cols}, valid_from, %(d)s from covering where valid_from < %(d)s"
            " union all"
            " select {cols}, %(next)s, valid_to from covering where valid_to is null or valid_to > %(next)s"
        ).format(
            t=table,
            covers=as_of(sql.Placeholder("d")),
            day=day,
            k=parts.same_key,
            same=parts.same_row,
            cols=parts.stored,
        ),
        {"d": d, "next": d + timedelta(days=1)},
    )


def _merge_in(
    conn: psycopg.Connection, table: sql.Identifier, day: sql.Composable, d: date, load_id: int, parts: _Parts
) -> None:
    """``d`` before the newest date, changed versions cut out: each row not already covered by an equal version
    becomes a one-day version, merged with an equal version ending on ``d`` (it keeps that one's start and
    lineage) and one starting the day after (its end)."""
    prev_lineage = sql.SQL(", h._row_number" if parts.row_number else "")
    number = sql.SQL(", coalesce(p._row_number, s._row_number)" if parts.row_number else "")
    conn.execute(
        sql.SQL(
            "with changed as materialized (select * from {day} s"
            "  where not exists (select from {t} h where {covers} and {k} and {same})),"
            " prev as (delete from {t} h using changed s where h.valid_to = %(d)s and {k} and {same}"
            "  returning {kr}, h.valid_from, h._load_id{prev_lineage}),"
            " next as (delete from {t} h using changed s where h.valid_from = %(next)s and {k} and {same}"
            "  returning {kr}, h.valid_to)"
            " insert into {t} ({cols}, valid_from, valid_to{lineage})"
            " select {vals}, coalesce(p.valid_from, %(d)s),"
            "  case when n.{k0} is null then %(next)s else n.valid_to end,"
            "  coalesce(p._load_id, %(load)s){number}"
            " from changed s left join prev p on {pj} left join next n on {nj}"
        ).format(
            t=table,
            day=day,
            covers=as_of(sql.Placeholder("d")),
            k=parts.same_key,
            same=parts.same_row,
            kr=parts.key_returned,
            prev_lineage=prev_lineage,
            cols=parts.values,
            lineage=parts.lineage,
            vals=parts.day_values,
            k0=parts.first_key,
            number=number,
            pj=parts.joins["p"],
            nj=parts.joins["n"],
        ),
        {"d": d, "next": d + timedelta(days=1), "load": load_id},
    )
