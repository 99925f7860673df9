"""Snapshot files stored as change history (odwh.history): every loaded date still reads back exactly as last
delivered, through appends, corrected redeliveries of the newest and of earlier dates, and repeats."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from odwh import contract, history, landing, load, quarantine, receiving, validate, warehouse
from odwh.snapshot_lines import LineChanges, SnapshotLines
from psycopg import sql
from support.extract import write_delivery

FIRST = date(2026, 3, 1)
HISTORY_FILES = [f for f in contract.FILES if history.stored_as_history(f)]
Delivered = dict[str, list[dict[str, str]]]  # file name -> rows as CSV text


def _tables(f: contract.ExtractFile) -> Iterator[tuple[str, list[str]]]:
    """(table, columns) of where a file's rows go: raw without identifiers, pii with key and identifiers."""
    yield f"raw.{f.table}", [c.name for c in f.columns if not c.pii]
    if any(c.pii for c in f.columns):
        yield f"pii.{f.table}", [*f.key, *(c.name for c in f.columns if c.pii)]


class Deliveries:
    """Random snapshot deliveries over a small pool of keys with few possible values, so rows stay, change, come
    back to an earlier value, vanish and reappear; staged and promoted as the door does (``odwh.load.promote``)."""

    def __init__(self, url: str, root: Path, seed: int, *, compare_lines: bool = False) -> None:
        self.url, self.root, self.rng = url, root, random.Random(seed)
        # with compare_lines, each date's lines are compared with the date before's as the receiving helper does
        # (every date written, in order: odwh.receiving.compare_lines), and the check uses them (decision 0069)
        self.compare_lines, self.snapshots = compare_lines, dict[str, SnapshotLines]()
        self.lines: dict[Path, dict[str, LineChanges | None]] = {}
        self.last: Delivered = {f.name: [] for f in HISTORY_FILES}
        self.expected: dict[date, Delivered] = {}  # what was last delivered for each date
        self.loaded_through: date | None = None
        self.staged_by_changes = (
            0  # the dates a snapshot of was staged by its changed lines (quarantine._Plan)
        )
        self.steps = 0

    def _value(self, column: contract.Column) -> str:
        choices = {
            "numeric": ["1.00", "1.0", "2"],  # 1.00 and 1.0 are different deliveries: kept apart
            "integer": ["1", "2"],
            "date": ["2025-01-01", "2025-01-02"],
            "boolean": ["true", "false"],
        }.get(column.type, ["a", "b"])
        return self.rng.choice(choices + ([""] if not column.required else []))

    def _row(self, f: contract.ExtractFile, key: str) -> dict[str, str]:
        return {c.name: key if c.name in f.key else self._value(c) for c in f.columns}

    def next_day(self, change: float = 0.3) -> Delivered:
        """Yesterday's rows, each kept (70%) or redrawn, some keys vanished or (re)appearing, shuffled."""
        rows: Delivered = {}
        for f in HISTORY_FILES:
            before = {r[f.key[0]]: r for r in self.last[f.name]}
            keys = [f"K{n}" for n in range(8) if self.rng.random() < 0.8]
            day = [
                dict(before[k]) if k in before and self.rng.random() > change else self._row(f, k)
                for k in keys
            ]
            self.rng.shuffle(day)
            rows[f.name] = day
        return rows

    def write(self, day: date, rows: Delivered) -> Path:
        self.steps += 1

        def replace(files: dict[str, list[dict[str, str]]]) -> None:
            files.update({name: [dict(r) for r in delivered] for name, delivered in rows.items()})

        folder = write_delivery(self.root / f"step{self.steps}", day, mutate=replace)
        self.lines[folder] = receiving.compare_lines(receiving.Received(folder, []), self.snapshots)
        self.expected[day] = rows
        if day == max(self.expected):
            self.last = rows
        return folder

    def load(self, day: date, rows: Delivered) -> None:
        self.promote([self.write(day, rows)])

    def promote(self, folders: list[Path], *, day_before_loaded: bool = False) -> None:
        """Stage ``folders`` together and promote them in order; with ``day_before_loaded``, as the door does
        for consecutive dates: the contract check's changed rows first, then only those merged."""
        folder_of = {landing.folder_business_date(f): f for f in folders}

        def lines_to_stage(
            day: date,
        ) -> dict[str, LineChanges | None]:  # as the door: after every loaded date
            after_loads = self.loaded_through is None or day > self.loaded_through
            return self.lines[folder_of[day]] if after_loads and day_before_loaded else {}

        with (
            psycopg.connect(self.url, autocommit=True) as conn,
            quarantine.quarantined(
                conn, folders, lines=lines_to_stage if self.compare_lines else None
            ) as staged,
        ):
            if day_before_loaded:
                lines = {d.business_date: self.lines[f] for d, f in zip(staged, folders, strict=True)}
                validate.write_checked(conn, HISTORY_FILES, staged, lines if self.compare_lines else None)
            self.staged_by_changes += sum(bool(d.by_changes) for d in staged)
            for folder, day in zip(folders, staged, strict=True):
                lineage = {"manifest_sha256": str(folder), "source_folder": "test", "archive_folder": "test"}
                manifest = landing.read_manifest(folder)
                load.promote(conn, manifest, list(day.rows), day_before_loaded=day_before_loaded, **lineage)
        self.loaded_through = max(filter(None, [self.loaded_through, *folder_of]))

    def check(self) -> None:
        """Every loaded date as of itself equals its last delivery; no overlapping or equal adjacent versions."""
        with psycopg.connect(self.url) as conn:
            for f in HISTORY_FILES:
                for table, columns in _tables(f):
                    for day, rows in self.expected.items():
                        want = sorted(tuple(r[c] or None for c in columns) for r in rows[f.name])
                        assert _as_of(conn, table, columns, day) == want, (table, day, self.steps)
                    assert _bad_neighbours(conn, table, columns, f.key) == [], (table, self.steps)

    def versions(self) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url) as conn:
            return [
                row
                for f in HISTORY_FILES
                for table, columns in _tables(f)
                for row in conn.execute(
                    sql.SQL("select {}, valid_from, valid_to from {} order by 1, valid_from").format(
                        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(table)
                    )
                ).fetchall()
            ]


def _as_of(
    conn: psycopg.Connection, table: str, columns: list[str], day: date
) -> list[tuple[str | None, ...]]:
    as_text = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
    statement = sql.SQL("select {} from {} where {}").format(
        as_text, sql.SQL(table), history.as_of(sql.Literal(day))
    )
    return sorted(conn.execute(statement).fetchall())


def _bad_neighbours(
    conn: psycopg.Connection, table: str, columns: list[str], key: tuple[str, ...]
) -> list[object]:
    """Versions that overlap the previous version of their key, are empty, or equal the adjacent previous one."""
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, key))
    statement = sql.SQL(
        "select * from (select {keys}, valid_from, valid_to, row({listed})::text as row_text,"
        " lag(valid_from) over w as previous_from, lag(valid_to) over w as previous_to,"
        " lag(row({listed})::text) over w as previous_text"
        " from {table} window w as (partition by {keys} order by valid_from)) v"
        " where valid_to <= valid_from or previous_from is not null"
        " and (coalesce(previous_to, 'infinity') > valid_from or previous_to = valid_from and previous_text = row_text)"
    ).format(keys=keys, listed=listed, table=sql.SQL(table))
    return conn.execute(statement).fetchall()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_loaded_date_reads_back_as_last_delivered(fresh_db, tmp_path, seed) -> None:
    deliveries = Deliveries(fresh_db, tmp_path, seed)
    days = [FIRST + timedelta(n) for n in range(6)]
    for day in days:  # appends
        deliveries.load(day, deliveries.next_day())
        deliveries.check()
    newest, middle = days[-1], days[2]
    deliveries.load(newest, deliveries.next_day(change=0.5))  # a corrected newest date
    deliveries.check()
    correction = deliveries.next_day(change=0.5)
    deliveries.load(middle, correction)  # a corrected date in the middle
    deliveries.check()
    before = deliveries.versions()
    deliveries.load(middle, correction)  # the same delivery again changes nothing
    deliveries.check()
    assert deliveries.versions() == before
    deliveries.load(days[0], deliveries.next_day())  # the first date corrected
    deliveries.check()
    deliveries.load(middle, deliveries.expected[days[1]])  # a date made equal to the day before
    deliveries.check()
    deliveries.load(newest + timedelta(1), deliveries.next_day())  # and the next date appended after all that
    deliveries.check()


@pytest.mark.parametrize("compare_lines", [False, True], ids=["sorted", "lines compared"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dates_staged_together_merge_only_the_rows_that_changed(
    fresh_db, tmp_path, seed, compare_lines
) -> None:
    """The door's path for consecutive dates (odwh.load ``day_before_loaded``): a date's merge reads only the
    contract check's changed rows and the keys gone since the day before, and every date reads back as delivered.
    Each batch's first date says so too, its day before loaded but not checked with it: it is merged whole. The
    changed rows are found by the check's sort, or from the lines compared when received (decision 0069)."""
    deliveries = Deliveries(fresh_db, tmp_path, seed, compare_lines=compare_lines)
    days = [FIRST + timedelta(n) for n in range(6)]
    deliveries.load(days[0], deliveries.next_day())
    deliveries.promote(
        [deliveries.write(day, deliveries.next_day()) for day in days[1:]], day_before_loaded=True
    )
    deliveries.check()
    corrected = [
        deliveries.write(day, deliveries.next_day(change=0.5)) for day in days[3:]
    ]  # the last 3 again
    deliveries.promote(corrected, day_before_loaded=True)
    deliveries.check()
    appended = [
        deliveries.write(day, deliveries.next_day())
        for day in (days[-1] + timedelta(1), days[-1] + timedelta(2))
    ]
    deliveries.promote(appended, day_before_loaded=True)
    deliveries.check()
    assert (deliveries.staged_by_changes > 0) == compare_lines


def test_a_numeric_delivered_at_another_scale_is_another_row(fresh_db, tmp_path) -> None:
    """Rows are compared as delivered: 1.0 after 1.00 opens a version, on every path (append, middle date)."""
    deliveries = Deliveries(fresh_db, tmp_path, seed=5)
    f = next(f for f in HISTORY_FILES if any(c.type == "numeric" for c in f.columns))
    column = next(c.name for c in f.columns if c.type == "numeric")

    def at_scale(rows: Delivered, value: str) -> Delivered:
        return {
            name: [{**r, column: value} if name == f.name else r for r in day] for name, day in rows.items()
        }

    rows = deliveries.next_day()
    assert rows[f.name]
    days = [FIRST, FIRST + timedelta(1), FIRST + timedelta(2)]
    for day, value in zip(days, ["1.00", "1.0", "1.00"], strict=True):
        deliveries.load(day, at_scale(rows, value))
        deliveries.check()
    deliveries.load(days[1], at_scale(rows, "1.00"))  # the middle date corrected: one version again
    deliveries.check()
    with psycopg.connect(fresh_db) as conn:
        versions = conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier("raw", f.table))
        ).fetchone()
    assert versions == (len(rows[f.name]),)


def test_storage_grows_with_changes_not_with_days(fresh_db, tmp_path) -> None:
    deliveries = Deliveries(fresh_db, tmp_path, seed=4)
    delivered = 0
    for n in range(8):
        rows = deliveries.next_day(change=0.05)
        deliveries.load(FIRST + timedelta(n), rows)
        delivered += sum(len(r) for r in rows.values())
    deliveries.check()
    with psycopg.connect(fresh_db) as conn:
        stored = sum(conn.execute(f"select count(*) from raw.{f.table}").fetchone()[0] for f in HISTORY_FILES)  # noqa: S608
    assert stored < delivered / 2, (stored, delivered)


def test_the_migration_turns_per_date_rows_into_history(server_url, tmp_path) -> None:
    """A warehouse of schema version 2 (per-date rows) is converted in place: same rows as of every date."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("create database odwh_history_migration")
    url = warehouse.with_database(server_url, "odwh_history_migration")
    try:
        with psycopg.connect(url) as conn:
            conn.execute(warehouse.MIGRATIONS_TABLE_DDL)
            for migration in warehouse.MIGRATIONS[:2]:
                conn.execute(migration.ddl)
                conn.execute(
                    "insert into meta.schema_migrations (version, description, checksum) values (%s, %s, %s)",
                    (migration.version, migration.description, migration.checksum),
                )
            conn.commit()
        per_date = _old_layout_load(url, tmp_path)
        with psycopg.connect(url) as conn:  # dbt's staging view over the per-date layout, as the transformer
            conn.execute("set role odwh_transformer")
            conn.execute("create view staging.stg_core_banking__customers as select * from raw.customers")
            conn.commit()
        assert warehouse.migrate(url) == [m.version for m in warehouse.MIGRATIONS[2:]]  # quarantine, history
        with psycopg.connect(url) as conn:
            dropped = conn.execute("select to_regclass('staging.stg_core_banking__customers')").fetchone()
            assert dropped == (None,)  # dbt's next build creates it over the history
            for (table, columns, day), rows in per_date.items():
                assert _as_of(conn, table, list(columns), day) == rows, (table, day)
            for f in HISTORY_FILES:
                for table, columns in _tables(f):
                    assert _bad_neighbours(conn, table, columns, f.key) == [], table
            stored = conn.execute("select count(*) from raw.customers").fetchone()[0]
            delivered = sum(len(r) for (t, _, _), r in per_date.items() if t == "raw.customers")
            assert stored < delivered
        assert warehouse.migrate(url) == []
        with psycopg.connect(url) as conn:  # every step applied again (one changed): the history stays
            conn.execute("delete from meta.schema_migrations where version = 1")
            conn.commit()
        assert warehouse.migrate(url) == [m.version for m in warehouse.MIGRATIONS]
        with psycopg.connect(url) as conn:
            for (table, columns, day), rows in per_date.items():
                assert _as_of(conn, table, list(columns), day) == rows, (table, day)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("drop database odwh_history_migration with (force)")


def _old_layout_load(
    url: str, tmp_path: Path
) -> dict[tuple[str, tuple[str, ...], date], list[tuple[str, ...]]]:
    """Six dates written in the per-date layout (as the loader of schema version 2 did); their rows as text."""
    deliveries = Deliveries(url, tmp_path, seed=5)
    found = {}
    with psycopg.connect(url) as conn:
        for n in range(6):
            day = FIRST + timedelta(n)
            rows = deliveries.next_day()
            deliveries.last = rows
            load_id = conn.execute(
                "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256,"
                " rows_loaded) values (%s, 't', 't', 't', 0) returning load_id",
                (day,),
            ).fetchone()[0]
            for f in HISTORY_FILES:
                for table, columns in _tables(f):
                    numbered = table.startswith("raw.")
                    for number, row in enumerate(rows[f.name], 1):
                        values = [row[c] or None for c in columns]
                        names = [
                            *columns,
                            "_business_date",
                            "_load_id",
                            *(["_row_number"] if numbered else []),
                        ]
                        conn.execute(
                            sql.SQL("insert into {} ({}) values ({})").format(
                                sql.SQL(table),
                                sql.SQL(", ").join(map(sql.Identifier, names)),
                                sql.SQL(", ").join(sql.Placeholder() * len(names)),
                            ),
                            [*values, day, load_id, *([number] if numbered else [])],
                        )
                    found[table, tuple(columns), day] = sorted(
                        tuple(r[c] or None for c in columns) for r in rows[f.name]
                    )
        conn.commit()
    return found
