"""Promote one checked business date from ``quarantine`` into ``raw``: the whole date in one transaction,
replacing any earlier delivery of that date, recorded in ``meta.loads``. Its quarantine rows stay until the
quarantine is cleared (``odwh.quarantine.quarantined``): deleting them date by date cost a tenth of promoting.

``odwh.quarantine`` COPYed the files (contract columns only: extra ones were never staged) and ``odwh.validate``
checked them; here each file's rows of the date are cast set-wise into ``raw.<file>``, client identifiers into
``pii.<file>`` instead. The casts are a second line of defence: a bad value aborts the whole date.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg import sql

from odwh import contract, history, quarantine, validate


@dataclass(frozen=True)
class LoadResult:
    business_date: date
    load_id: int
    rows: dict[str, int] = field(default_factory=dict)
    replaced_load_id: int | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class LoadError(RuntimeError):
    pass


def current_loads(conn: psycopg.Connection) -> dict[date, str]:
    """Business date -> manifest sha256 of the delivery currently loaded for it."""
    rows = conn.execute("select business_date, manifest_sha256 from meta.loads where superseded_at is null")
    return {d: sha for d, sha in rows}


# The columns by which the models read raw rows: a folder's business date, a version's validity.
_DATE_COLUMNS = ("_business_date", "valid_from", "valid_to")


def analyze_raw(conn: psycopg.Connection) -> None:
    """Refresh the planner's statistics of the raw tables after loads.

    dbt reads the new dates right away, before autovacuum's analyze: without the new date in the statistics the
    planner expects no row of it and joins whole snapshots in nested loops (one day's positions: 22 s instead of
    0.05 s at 2,000 accounts; minutes at 100,000 x 61, where every loaded date is a most common value and the
    new one none). A table changed by more than a tenth (or never analyzed) is analyzed whole. Every other has
    its date columns analyzed from a hundredth of the sample (300 rows, so 300 random pages): the dates hold
    about as many rows each, so one date is estimated at the rows over the distinct dates, and a range by the
    column's index (two histogram bounds are replaced by the actual minimum and maximum). A page holds one
    date, so the sample repeats dates and underestimates their number: a date's rows are overestimated, about
    2 x after a year and more with the years, the safe side (hash joins; the failure above was expecting none,
    and nested loops). After a year,
    when a date is 0.3 % of a table and the rest of its statistics barely move, the 3,000 pages of a tenth of
    the sample cost 1 to 12 s per table in the morning's run (the disk's random reads vary from 300 to 2,000 a
    second): up to 28 s of a 71 s day. Their modified rows keep counting (a partial ANALYZE does not reset
    them) until the whole table is analyzed here or by autovacuum, past the same tenth. The change is seen by the table's growth in pages (at
    once) or the statistics system's modified rows (which may lag by a second: then the date columns only).
    """
    tables = conn.execute(
        """select c.relname,
            c.reltuples < 0 or pages > 1.1 * c.relpages or modified > 0.1 * c.reltuples as whole,
            array(select a.attname::text from pg_attribute as a
                  where a.attrelid = c.oid and a.attname = any(%s) and not a.attisdropped) as dates
        from pg_class as c
        left join pg_stat_user_tables as s on s.relid = c.oid,
        lateral (select pg_relation_size(c.oid) / current_setting('block_size')::int as pages,
                        coalesce(s.n_mod_since_analyze, 0) as modified) as now
        where c.relnamespace = 'raw'::regnamespace and c.relname = any(%s)
        order by c.relname""",
        (list(_DATE_COLUMNS), [f.table for f in contract.FILES]),
    ).fetchall()
    for table, whole, dates in tables:
        relation = sql.Identifier("raw", table)
        if whole or not dates:
            conn.execute(sql.SQL("analyze {}").format(relation))
            continue
        with conn.transaction():
            conn.execute("set local default_statistics_target = 1")  # 300 rows sampled, not 30,000
            columns = sql.SQL(", ").join(map(sql.Identifier, dates))
            conn.execute(sql.SQL("analyze {} ({})").format(relation, columns))


def promote(
    conn: psycopg.Connection,
    manifest: contract.Manifest,
    files: Collection[str],
    *,
    archive_folder: str,
    manifest_sha256: str,
    source_folder: str,
    warnings: Sequence[str] = (),
    day_before_loaded: bool | Callable[[], bool] = False,
) -> LoadResult:
    """Move ``files`` (the contract files delivered) of ``manifest.business_date`` from quarantine into raw and
    pii; commit once. ``archive_folder`` is the archived (immutable) copy they were staged from, ``source_folder``
    where it was delivered (for lineage); ``warnings`` (validation's, e.g. extra columns ignored) are recorded
    with the load. ``conn`` must be in autocommit mode: the date is committed here, as a transaction of its own.

    ``day_before_loaded``: the day before was promoted just before this date, so if it was also checked with it
    (``quarantine.checked_with``), the contract check's tables of the snapshots kept as history hold this date's
    changed rows and the day before's keys gone on this date (``odwh.validate``), and only those are merged into
    the versions (``history.Changes``). Otherwise the date is merged whole. A callable is asked inside the
    date's transaction once the files of the date alone (all but the snapshots kept as history) are written,
    before any version is touched: it may wait there for the day before's transaction (``odwh.pipeline``
    promotes two dates side by side) and raise to roll this date back.
    """
    if not conn.autocommit:
        raise ValueError(
            "promote needs an autocommit connection: each date is committed as its own transaction"
        )
    business_date = date.fromisoformat(manifest.business_date)
    try:
        with conn.transaction():
            # One loader per date at a time, even with several workers.
            conn.execute(
                "select pg_advisory_xact_lock(hashtext('odwh.load'), %s)", (business_date.toordinal(),)
            )
            # durable once reported loaded, whatever the server's default (the embedded one commits lazily)
            conn.execute("set local synchronous_commit = on")
            replaced = conn.execute(
                "update meta.loads set superseded_at = now() where business_date = %s and superseded_at is null"
                " returning load_id",
                (business_date,),
            ).fetchone()
            load_id = _insert_load(
                conn, business_date, source_folder, archive_folder, manifest_sha256, warnings
            )
            rows: dict[str, int] = {}
            for f in _OF_THE_DATE_ALONE:
                _delete_date(conn, f, business_date)
                _promote_present(conn, f, files, manifest, load_id, False, rows)
            if callable(day_before_loaded):
                day_before_loaded = day_before_loaded()
            day_before_loaded = day_before_loaded and quarantine.checked_with(
                conn, business_date - timedelta(days=1)
            )
            for f in _KEPT_AS_HISTORY:
                _promote_present(conn, f, files, manifest, load_id, day_before_loaded, rows)
            _record_files(conn, load_id, manifest)
            conn.execute(
                "update meta.loads set rows_loaded = %s where load_id = %s", (sum(rows.values()), load_id)
            )
    except psycopg.Error as exc:
        raise LoadError(f"{business_date}: load rolled back, nothing of this date was loaded: {exc}") from exc
    return LoadResult(business_date, load_id, rows, replaced[0] if replaced else None)


# Promotion's two halves: the files whose rows belong to their date alone, then the snapshots kept as change
# history, whose versions each date extends in date order (``history.replace_date``).
_OF_THE_DATE_ALONE = [f for f in contract.FILES if not history.stored_as_history(f)]
_KEPT_AS_HISTORY = [f for f in contract.FILES if history.stored_as_history(f)]


def _promote_present(
    conn: psycopg.Connection,
    f: contract.ExtractFile,
    files: Collection[str],
    manifest: contract.Manifest,
    load_id: int,
    day_before_loaded: bool,
    rows: dict[str, int],
) -> None:
    """``f``'s rows of the date into raw (and pii), counted in ``rows`` against the manifest, when delivered; a
    snapshot must be."""
    business_date = date.fromisoformat(manifest.business_date)
    if f.name in files:
        rows[f.name] = _promote_file(conn, f, business_date, load_id, day_before_loaded)
        _check_count(f.name, rows[f.name], manifest)
    elif f.kind == "snapshot":
        raise LoadError(f"{business_date}/{f.name}: snapshot file missing")


def _insert_load(
    conn: psycopg.Connection, d: date, source: str, archive: str, sha: str, warnings: Sequence[str]
) -> int:
    row = conn.execute(
        "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256, rows_loaded,"
        " warnings) values (%s, %s, %s, %s, 0, %s) returning load_id",
        (d, source, archive, sha, json.dumps(list(warnings))),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _delete_date(conn: psycopg.Connection, f: contract.ExtractFile, d: date) -> None:
    """Remove the date's rows; a snapshot stored as history keeps them until :func:`_insert_typed` replaces
    the date in its versions (which compares them with the delivery: the work is what changed)."""
    if history.stored_as_history(f):
        return
    conn.execute(
        sql.SQL("delete from raw.{} where _business_date = %s").format(sql.Identifier(f.table)), (d,)
    )
    if any(c.pii for c in f.columns):
        conn.execute(
            sql.SQL("delete from pii.{} where _business_date = %s").format(sql.Identifier(f.table)), (d,)
        )


def _promote_file(
    conn: psycopg.Connection, f: contract.ExtractFile, d: date, load_id: int, day_before_loaded: bool
) -> int:
    staged = sql.SQL("(select * from {} where _business_date = {}) as staged").format(
        quarantine.table(f), sql.Literal(d)
    )
    checked = None
    if day_before_loaded and quarantine.checks_changes_only(f):
        checked = sql.Identifier("quarantine", quarantine.checked_table(f))
    inserted = _insert_typed(
        conn, f, staged, d, load_id, schema="raw", cols=[c for c in f.columns if not c.pii], checked=checked
    )
    if any(c.pii for c in f.columns):
        key_and_pii = [f.column(k) for k in f.key] + [c for c in f.columns if c.pii]
        _insert_typed(
            conn, f, staged, d, load_id, schema="pii", cols=key_and_pii, row_number=False, checked=checked
        )
    return inserted


def _insert_typed(
    conn: psycopg.Connection,
    f: contract.ExtractFile,
    stage: sql.Composable,
    d: date,
    load_id: int,
    *,
    schema: str,
    cols: list[contract.Column],
    row_number: bool = True,
    checked: sql.Identifier | None = None,
) -> int:
    """Cast the staged text (``stage``: a relation with the contract's columns and ``_row_number``) into the
    typed table (the number of rows delivered); the contract's empty field is null. A snapshot stored as history
    (odwh.history) gets the date's rows merged into its versions; ``checked``, when given, is the contract
    check's table of the rows that changed since the day before (and of the keys gone the next day), which is
    then all the merge reads."""
    values = [c.name for c in cols]
    numbers = ["_row_number"] if row_number else []
    table = sql.Identifier(schema, f.table)
    if not history.stored_as_history(f):
        targets = sql.SQL(", ").join(map(sql.Identifier, [*values, *numbers, "_business_date", "_load_id"]))
        query = sql.SQL("insert into {} ({}) select s.*, %s, %s from ({}) as s").format(
            table, targets, _typed(cols, numbers, stage)
        )
        return conn.execute(query, (d, load_id)).rowcount

    def temp_table(name: str, query: sql.Composable) -> tuple[sql.Identifier, int]:
        temp = sql.Identifier(f"history_{name}_{schema}_{f.table}")
        conn.execute(sql.SQL("drop table if exists {}").format(temp))
        created = conn.execute(sql.SQL("create temp table {} on commit drop as {}").format(temp, query))
        return temp, created.rowcount

    changes = None
    if checked is None:
        day, delivered = temp_table("day", _typed(cols, numbers, stage))
    else:
        of_date = sql.SQL("(select * from {} where _business_date = {}) as changed").format(
            checked, sql.Literal(d)
        )
        gone_today = sql.SQL("(select * from {} where _business_date = {} and {}) as gone").format(
            checked, sql.Literal(d - timedelta(days=1)), sql.Identifier(validate.GONE_NEXT)
        )
        gone, _ = temp_table("gone", _typed([f.column(k) for k in f.key], [], gone_today))
        changed, _ = temp_table("changed", _typed(cols, numbers, of_date))
        for few in (gone, changed):  # a few rows: probe the versions' key index
            conn.execute(sql.SQL("analyze {}").format(few))
        changes = history.Changes(rows=changed, gone=gone)
        delivered = quarantine.staged_rows(conn, f, d)

    def whole_day() -> sql.Composable:  # the merge's other paths compare every row of the date
        if checked is None:
            return day
        whole, staged = temp_table("day", _typed(cols, numbers, stage))
        if staged != delivered:  # staged by its changed lines (odwh.quarantine._Plan): never merged whole
            raise LoadError(
                f"{d}/{f.name}: {staged} of {delivered} rows staged, the date cannot be merged whole"
            )
        return whole

    numeric = [c.name for c in cols if c.pg_type == "numeric"]
    history.replace_date(
        conn,
        table,
        whole_day,
        d,
        load_id,
        values=values,
        key=f.key,
        row_number=row_number,
        numeric=numeric,
        changes=changes,
    )
    return delivered


def _typed(cols: list[contract.Column], numbers: list[str], relation: sql.Composable) -> sql.Composable:
    """``relation``'s ``cols`` cast to their types (empty field = null), then ``numbers``, in delivered order."""
    selected: list[sql.Composable] = [
        sql.SQL("nullif({c}, '')::{t} as {c}").format(c=sql.Identifier(c.name), t=sql.SQL(c.pg_type))
        for c in cols
    ]
    selected += map(sql.Identifier, numbers)
    return sql.SQL("select {} from {} order by _row_number").format(sql.SQL(", ").join(selected), relation)


def _check_count(name: str, loaded: int, manifest: contract.Manifest) -> None:
    entry = manifest.files.get(name)
    if entry is not None and entry.rows != loaded:
        raise LoadError(f"{manifest.business_date}/{name}: manifest says {entry.rows} rows, loaded {loaded}")


def _record_files(conn: psycopg.Connection, load_id: int, manifest: contract.Manifest) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into meta.load_files (load_id, file_name, sha256, rows, control_total) values (%s, %s, %s, %s, %s)",
            [(load_id, n, e.sha256, e.rows, e.control_total) for n, e in sorted(manifest.files.items())],
        )
