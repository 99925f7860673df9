"""The door's quarantine: pending dates' files COPYed as text into ``quarantine.<file>``, checked there, then
promoted to ``raw`` date by date (``odwh.load.promote``). See docs/decisions/0029-set-based-door.md.

Each file is streamed to PostgreSQL in 64 KiB blocks (memory flat in its size, no per-row Python); the table's
defaults give every row its business date and 1-based data row (the header is row 0). The header is read first,
in Python: a missing contract column is a problem, an extra one a warning (the column is not staged). A COPY
PostgreSQL refuses (bad CSV, bad UTF-8) is the problem "CSV readable", naming the file and PostgreSQL's line.
A date's files are COPYed on two connections at once, each file numbered by its table's own sequence
(docs/decisions/0054-staging-on-two-connections.md). The snapshots kept as history (customers, accounts, loans,
deposits) are staged by their changed lines alone where the receiving helper compared them with the day before's
(:class:`_Plan`, decision 0069).

One door at a time per warehouse: :func:`quarantined` holds a session advisory lock from staging to clearing,
and empties the quarantine on the way in (what a killed run left) and on the way out.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import IO

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from odwh import contract, history, landing
from odwh.landing import Problem, StoragePath
from odwh.snapshot_lines import COMPARED_FILES, LineChanges
from odwh.suites.extract_contract import RULE_COLUMN_PRESENT, WARNING_RULE_FILES

COPY_BLOCK = 64 * 1024
RULE_UNREADABLE = "CSV readable"

_LOCK = "hashtext('odwh.quarantine')"


@dataclass
class StagedDate:
    """What staging one date's folder learnt; the contract check reads the rows from ``quarantine``."""

    business_date: date
    folder: StoragePath
    rows: dict[str, int] = field(default_factory=dict)  # file name -> data rows staged
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # a file staged by its changed lines (quarantine._Plan) -> the lines staged
    by_changes: dict[str, int] = field(default_factory=dict)

    def staged_rows(self) -> dict[str, int]:
        """Per file, the rows staged: those delivered, but of a file staged by its changed lines those lines."""
        return self.rows | self.by_changes

    def label(self, file_name: str) -> str:
        return f"{self.business_date.isoformat()}/{file_name}"

    def merge(self, part: StagedDate) -> None:
        """Add what staging some of this date's files learnt (:func:`stage` stages them on two connections)."""
        self.rows |= part.rows
        self.missing_columns |= part.missing_columns
        self.problems += part.problems
        self.warnings += part.warnings
        self.by_changes |= part.by_changes


def staged_rows(conn: psycopg.Connection, f: contract.ExtractFile, d: date) -> int:
    """The rows of ``f`` staged for ``d``, as its ``COPY`` counted them; counted again when not recorded."""
    found = conn.execute(
        "select (rows ->> %s)::integer from quarantine.staged_dates where business_date = %s", (f.name, d)
    ).fetchone()
    if found is not None and found[0] is not None:
        return int(found[0])
    counted = conn.execute(
        sql.SQL("select count(*) from {} where _business_date = %s").format(table(f)), (d,)
    ).fetchone()
    return int(counted[0]) if counted else 0


def table(f: contract.ExtractFile) -> sql.Composed:
    return sql.SQL("quarantine.{}").format(sql.Identifier(f.table))


CHECKED_PREFIX = "checked_"


def checked_table(f: contract.ExtractFile) -> str:
    """The table (in quarantine) the contract check writes ``f``'s rows and derived columns to (odwh.validate)."""
    return CHECKED_PREFIX + f.table


@contextmanager
def quarantined(
    conn: psycopg.Connection,
    folders: Iterable[StoragePath],
    files: Sequence[str] | None = None,
    lines: LinesOf | None = None,
) -> Iterator[list[StagedDate]]:
    """Stage ``folders`` (in date order) and yield what was staged; the quarantine is empty before and after.

    Staging stops after the first date with a problem (later dates wait behind it, unchecked). ``files`` limits
    what is staged (default: every contract file). ``lines``: a date's snapshots' lines compared when received,
    given only for a date after every loaded one (its promotion merges its changes alone): see :class:`_Plan`.
    ``conn`` must be in autocommit mode: the staged rows are committed, so the checker's own connections read them.
    """
    conn.execute(sql.SQL("select pg_advisory_lock({})").format(sql.SQL(_LOCK)))
    try:
        clear(conn)
        yield stage(conn, folders, files, lines)
    finally:
        if not conn.closed:
            clear(conn)
            conn.execute(sql.SQL("select pg_advisory_unlock({})").format(sql.SQL(_LOCK)))


# A file's key as other files reference it: (referenced file, its columns), from the contract's foreign keys.
ReferencedKey = tuple[contract.ExtractFile, tuple[str, ...]]
REFERENCED_KEYS: list[ReferencedKey] = sorted(
    {(contract.FILES_BY_NAME[fk.ref_file], fk.ref_columns) for f in contract.FILES for fk in f.foreign_keys},
    key=lambda key: (key[0].name, key[1]),
)


def checks_changes_only(spec: contract.ExtractFile) -> bool:
    """Snapshots kept as change history, whose rules all block (a warning would be recorded once, not daily): the
    check judges only their rows that differ from the day before's (``odwh.validate``)."""
    return history.stored_as_history(spec) and spec.name not in WARNING_RULE_FILES


# The snapshots staged by their changed lines where compared (_Plan): the customers, accounts, loans and deposits
# (39 MB of a date's 44 MB at 100,000 accounts). Another file's foreign key to one of them probes its keys' dates
# as found from its changes (odwh.validate._keys_from_changes).
STAGED_BY_CHANGES = tuple(f for f in COMPARED_FILES if checks_changes_only(f))

LinesOf = Callable[[date], Mapping[str, LineChanges | None]]


def compared_throughout(found: Sequence[LineChanges | None]) -> bool:
    """Whether a snapshot's lines were compared on every date staged (``found``, in date order), each after the
    first against the day before: the check then finds its unchanged rows from them (``odwh.validate``)."""
    return bool(found) and found[0] is not None and all(c is not None and c.compared for c in found[1:])


def keys_table(key: ReferencedKey) -> str:
    """The table (in quarantine, built for one check) of a referenced key's staged values with the staged dates
    they were delivered on (as bits), indexed: the foreign keys probe it (``odwh.validate``)."""
    return f"keys_{key[0].table}__{'_'.join(key[1])}"


def vanished_table(key: ReferencedKey) -> str:
    """The table (in quarantine, built for one check) of the referenced keys present on one staged date and
    absent on the next, with the date they vanished on (``odwh.validate``)."""
    return f"vanished_{key[0].table}__{'_'.join(key[1])}"


def clear(conn: psycopg.Connection) -> None:
    drop_keys(conn)
    tables = [sql.SQL("quarantine.staged_dates"), *map(table, contract.FILES)]
    conn.execute(sql.SQL("truncate {}").format(sql.SQL(", ").join(tables)))
    drop_checked(conn)
    conn.execute(sql.SQL("drop table if exists {}, {}").format(CHECKED_DATES, LINE_CHANGES))


CHECKED_DATES = sql.Identifier("quarantine", "checked_dates")
# a check's snapshot lines compared when received (odwh.validate, decision 0069): their new rows and gone keys
LINE_CHANGES = sql.Identifier("quarantine", "line_changes")


def record_checked_dates(conn: psycopg.Connection) -> None:
    """Record the staged dates as checked together (until :func:`clear`): promoting a date merges only the check's
    changed rows when the day before is among them (``odwh.load``)."""
    conn.execute(sql.SQL("drop table if exists {}").format(CHECKED_DATES))
    conn.execute(
        sql.SQL("create unlogged table {} as select business_date from quarantine.staged_dates").format(
            CHECKED_DATES
        )
    )


def checked_with(conn: psycopg.Connection, business_date: date) -> bool:
    """Whether ``business_date`` was checked with the dates being promoted (:func:`record_checked_dates`)."""
    if conn.execute("select to_regclass('quarantine.checked_dates')").fetchone() == (None,):
        return False
    found = conn.execute(
        sql.SQL("select exists (select from {} where business_date = %s)").format(CHECKED_DATES),
        (business_date,),
    ).fetchone()
    return bool(found and found[0])


def drop_keys(conn: psycopg.Connection) -> None:
    """Drop the tables a check built on the referenced keys."""
    built = [
        sql.Identifier("quarantine", name(key))
        for key in REFERENCED_KEYS
        for name in (keys_table, vanished_table)
    ]
    conn.execute(sql.SQL("drop table if exists {}").format(sql.SQL(", ").join(built)))


def drop_checked(conn: psycopg.Connection, files: Sequence[contract.ExtractFile] = contract.FILES) -> None:
    checked = [sql.Identifier("quarantine", checked_table(f)) for f in files]
    if not checked:
        return
    conn.execute(sql.SQL("drop table if exists {}").format(sql.SQL(", ").join(checked)))


def stage(
    conn: psycopg.Connection,
    folders: Iterable[StoragePath],
    files: Sequence[str] | None = None,
    lines: LinesOf | None = None,
) -> list[StagedDate]:
    """COPY each folder's files into quarantine, in date order, on ``conn`` and a second connection at once
    (decision 0054): a date's files are shared out largest first (by the date before's rows), and the next date
    starts once both are done. One transaction on each, committed together; a refused file undoes itself alone.
    Stops after the first date with a problem. With ``lines``, some snapshots are staged by their changed lines
    (:class:`_Plan`)."""
    staged: list[StagedDate] = []
    wanted = [f for f in contract.FILES if files is None or f.name in files]
    plan = _Plan(lines)
    with (
        _second_connection(conn) as other,
        ThreadPoolExecutor(1, thread_name_prefix="odwh-stage") as beside,
    ):
        with conn.transaction(), other.transaction():
            for folder in folders:
                day = StagedDate(landing.folder_business_date(folder), folder)
                present = [f for f in wanted if (folder / f.name).exists()]
                plans = plan.for_date(day.business_date, folder, staged)
                for f, dates in plan.staged_by_changes_not_compared(staged):
                    _stage_again_whole([conn, other], f, dates)
                # largest first, by the day before's rows (a file staged by its changes counts those)
                before = staged[-1].staged_rows() if staged else {}
                queue = iter(sorted(present, key=lambda f: -before.get(f.name, 0)))  # stable: contract order
                take = threading.Lock()
                theirs = beside.submit(_stage_files, other, day.business_date, folder, queue, take, plans)
                try:
                    mine = _stage_files(conn, day.business_date, folder, queue, take, plans)
                finally:  # never leave other's transaction while its thread still COPYs
                    futures.wait([theirs])
                parts = mine | theirs.result()
                for f in present:  # in the contract's order, whichever connection staged it
                    day.merge(parts[f.name])
                # with what each COPY counted: promotion compares it with the manifest (odwh.load)
                conn.execute(
                    "insert into quarantine.staged_dates (business_date, rows) values (%s, %s)",
                    (day.business_date, Jsonb(day.rows)),
                )
                staged.append(day)
                if day.problems:
                    break
        # the check joins these tables: plan it with their real sizes, not autovacuum's guess
        half = len(wanted) // 2
        analyzing = beside.submit(_analyze, other, wanted[half:])
        _analyze(conn, wanted[:half])
        analyzing.result()
    return staged


@dataclass(frozen=True)
class _FileStaging:
    """One file of a date staged otherwise than whole, from its lines compared when received: ``changed``, its data
    rows to stage when staged by its changed lines (``None``: whole), of ``rows`` delivered; ``gone_before``, the
    rows of the day before's file (in ``day_before``, staged by its changed lines) whose key is not delivered on
    this date, which the check and the promotion read (``odwh.validate.GONE_NEXT``)."""

    changed: list[int] | None
    rows: int
    gone_before: list[int]
    day_before: StagedDate


class _Plan:
    """Which snapshots of the dates staged together are staged by their changed lines alone (decision 0069).

    A file of :data:`STAGED_BY_CHANGES` on a date after the first staged when its lines were compared on every date
    staged so far, each against the day before (:func:`compared_throughout`: the check then reads its unchanged rows
    as the day before's, ``odwh.validate._with_compared_lines``), and the keys its foreign keys reference lost none
    overnight (a row whose referenced key vanished is checked, changed or not; the file is staged whole that date).
    The rows of the day before's file whose key is gone are staged beside it. A date not compared makes the check
    sort the file's rows, so its dates staged by their changes are staged again whole first. ``lines`` are given
    only for dates after every loaded one: the promotion of such a date merges its changes alone
    (``history.replace_date``), which a date staged by its changes needs (``odwh.load`` refuses it otherwise)."""

    def __init__(self, lines: LinesOf | None) -> None:
        self.lines = lines
        self.found: dict[str, list[LineChanges | None]] = {f.name: [] for f in STAGED_BY_CHANGES}
        self.keys: dict[tuple[str, tuple[str, ...]], frozenset[tuple[str, ...]] | None] = {}

    def for_date(
        self, business_date: date, folder: StoragePath, staged: Sequence[StagedDate]
    ) -> dict[str, _FileStaging]:
        """The files of ``business_date`` (delivered in ``folder``) staged otherwise than whole, after the dates
        ``staged``."""
        if self.lines is None:
            return {}
        lines = self.lines(business_date)
        plans: dict[str, _FileStaging] = {}
        for f in STAGED_BY_CHANGES:
            changes = lines.get(f.name)
            self.found[f.name].append(changes)
            if not staged or changes is None or not compared_throughout(self.found[f.name]):
                continue
            before, gone = staged[-1], []
            if f.name in before.by_changes:  # less its rows staged already, those that changed
                earlier = self.found[f.name][-2]
                assert earlier is not None and earlier.changed is not None
                gone = sorted(set(changes.gone_before) - set(earlier.changed))
            kept = all(self._kept_overnight(fk, lines, before.folder, folder) for fk in f.foreign_keys)
            plans[f.name] = _FileStaging(changes.changed if kept else None, changes.rows, gone, before)
        return plans

    def _kept_overnight(
        self,
        fk: contract.ForeignKey,
        lines: Mapping[str, LineChanges | None],
        before: StoragePath,
        folder: StoragePath,
    ) -> bool:
        """Whether the keys ``fk`` references, delivered in ``before``, are all delivered in ``folder``: from the
        referenced snapshot's lines compared, or else (the branches, officers: a few hundred lines) its keys read
        from both files; false where unsure (a file missing or unreadable, a quote in a key COPY could read
        otherwise: ``odwh.snapshot_lines``)."""
        if contract.FILES_BY_NAME[fk.ref_file] in COMPARED_FILES:
            changes = lines.get(fk.ref_file)
            return changes is not None and changes.compared and not changes.gone_before
        keys = [self._keys(folder / fk.ref_file, fk.ref_columns) for folder in (before, folder)]
        return keys[0] is not None and keys[1] is not None and keys[0] <= keys[1]

    def _keys(self, path: StoragePath, columns: tuple[str, ...]) -> frozenset[tuple[str, ...]] | None:
        """A file's keys (each file read once: a date's, then as the day before's)."""
        if (str(path), columns) not in self.keys:
            self.keys[str(path), columns] = self._read_keys(path, columns)
        return self.keys[str(path), columns]

    @staticmethod
    def _read_keys(path: StoragePath, columns: tuple[str, ...]) -> frozenset[tuple[str, ...]] | None:
        try:
            with landing.open_regular(path, str(path)) as fh:
                lines = [line.decode("utf-8").removesuffix("\n") for line in fh]
            if any(line.count('"') % 2 for line in lines):  # a quoted field over two lines
                return None
            header, *rows = csv.reader(lines)
            if len(rows) != len(lines) - 1:  # two lines read as one row: COPY could read them otherwise
                return None
            at = [header.index(c) for c in columns]
            keys = frozenset(tuple(row[i] for i in at) for row in rows)
        except (OSError, landing.RefusedInput, UnicodeDecodeError, csv.Error, ValueError, IndexError):
            return None
        return None if any('"' in value for key in keys for value in key) else keys

    def staged_by_changes_not_compared(
        self, staged: Sequence[StagedDate]
    ) -> Iterator[tuple[contract.ExtractFile, list[StagedDate]]]:
        """The files no longer compared on every date (with the date planned last), with their dates ``staged`` by
        their changed lines: to be staged again whole."""
        for f in STAGED_BY_CHANGES:
            dates = [d for d in staged if f.name in d.by_changes]
            if dates and not compared_throughout(self.found[f.name]):
                yield f, dates


def _stage_again_whole(
    connections: Sequence[psycopg.Connection], f: contract.ExtractFile, dates: Sequence[StagedDate]
) -> None:
    """Stage ``f`` whole on ``dates`` that staged it by its changed lines (:class:`_Plan`), on the first of the
    staging ``connections`` once each has deleted what it staged of them (uncommitted: its own to see)."""
    conn = connections[0]
    delete = sql.SQL("delete from {} where _business_date = %s").format(table(f))
    for day in dates:
        for staging in connections:
            staging.execute(delete, (day.business_date,))
        conn.execute("select set_config('odwh.quarantine_date', %s, true)", (day.business_date.isoformat(),))
        again = StagedDate(day.business_date, day.folder)
        _stage_file(conn, again, f, None)
        if again.problems or again.rows != {f.name: day.rows[f.name]}:
            raise RuntimeError(f"{day.label(f.name)}: staged again whole, it was not as staged before")
        del day.by_changes[f.name]


def _analyze(conn: psycopg.Connection, files: Sequence[contract.ExtractFile]) -> None:
    for f in files:
        conn.execute(sql.SQL("analyze {}").format(table(f)))


@contextmanager
def _second_connection(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Another connection as the same user to the same database, in autocommit mode as ``conn``."""
    with psycopg.connect(conn.info.dsn, password=conn.info.password, autocommit=True) as other:
        yield other


def _stage_files(
    conn: psycopg.Connection,
    business_date: date,
    folder: StoragePath,
    queue: Iterator[contract.ExtractFile],
    take: threading.Lock,
    plans: Mapping[str, _FileStaging],
) -> dict[str, StagedDate]:
    """Stage the files this connection takes from ``queue`` (shared with the other connection): each file's
    outcome apart, merged by :func:`stage` in the contract's order."""
    conn.execute("select set_config('odwh.quarantine_date', %s, true)", (business_date.isoformat(),))
    parts: dict[str, StagedDate] = {}
    while True:
        with take:
            f = next(queue, None)
        if f is None:
            return parts
        parts[f.name] = StagedDate(business_date, folder)
        _stage_file(conn, parts[f.name], f, plans.get(f.name))


def _stage_file(
    conn: psycopg.Connection, day: StagedDate, f: contract.ExtractFile, plan: _FileStaging | None
) -> None:
    label, path = day.label(f.name), day.folder / f.name
    try:
        header = landing.read_header(path, label)
    except landing.RefusedInput as exc:
        day.problems.append(exc.problem)
        return
    except (UnicodeDecodeError, csv.Error) as exc:
        day.problems.append(Problem(label, None, None, RULE_UNREADABLE, str(exc)))
        return
    missing = [c for c in f.column_names if c not in header]
    day.missing_columns[f.name] = missing
    day.problems += [Problem(label, None, name, RULE_COLUMN_PRESENT, "not in the header") for name in missing]
    day.warnings += [
        f"{label}: column {name!r} is not in the contract, ignored"
        for name in header
        if name not in f.column_names
    ]
    try:
        with (
            conn.transaction(),
            landing.open_regular(path, label) as fh,
        ):  # a savepoint: a refused COPY undoes itself
            conn.execute(sql.SQL("select setval({}, 1, false)").format(sql.Literal(_row_numbers(f))))
            delivered, changed = _copy_as_planned(conn, f, fh, header, plan)
            if plan is not None and plan.gone_before:
                _copy_gone_before(conn, f, plan)
            day.rows[f.name] = delivered
            if changed is not None:
                day.by_changes[f.name] = changed
            # the date's block ranges, still in memory: a read of one date skips the others (decision 0062)
            conn.execute("select quarantine.summarize_staged(%s::regclass)", (f"quarantine.{f.table}",))
    except psycopg.Error as exc:
        day.problems.append(Problem(label, None, None, RULE_UNREADABLE, _first_lines(exc)))


def _row_numbers(f: contract.ExtractFile) -> str:
    """The sequence numbering a file's rows as they are COPYed (restarted at 1 for each file)."""
    return f"quarantine.{f.table}_row_numbers"


def _copy(conn: psycopg.Connection, f: contract.ExtractFile, fh: IO[bytes], header: list[str]) -> int:
    """COPY the file's contract columns; a header with other columns goes through a temporary table of
    positional columns (odwh's names, never the delivered ones), then set-wise into quarantine."""
    kept = [h for h in header if h in f.column_names]
    if kept == header:
        return _copy_into(conn, table(f), list(map(sql.Identifier, kept)), fh)
    positions = [sql.Identifier(f"c{i}") for i in range(len(header))]
    conn.execute("drop table if exists pg_temp.door_file")
    conn.execute(
        sql.SQL("create temp table door_file (_row_number integer generated always as identity, {})").format(
            sql.SQL(", ").join(sql.SQL("{} text").format(p) for p in positions)
        )
    )
    _copy_into(conn, sql.Identifier("door_file"), positions, fh)
    moved = conn.execute(
        sql.SQL("insert into {} ({}, _row_number) select {}, _row_number from door_file").format(
            table(f),
            sql.SQL(", ").join(map(sql.Identifier, kept)),
            sql.SQL(", ").join(positions[header.index(c)] for c in kept),
        )
    ).rowcount
    conn.execute("drop table pg_temp.door_file")
    return moved


def _copy_as_planned(
    conn: psycopg.Connection,
    f: contract.ExtractFile,
    fh: IO[bytes],
    header: list[str],
    plan: _FileStaging | None,
) -> tuple[int, int | None]:
    """COPY the file by its changed lines where ``plan`` says so and they are read alike, else whole: (the rows
    delivered, the lines staged when by its changed lines)."""
    if plan is not None and plan.changed is not None and _copy_lines(conn, f, fh, header, plan.changed):
        return plan.rows, len(plan.changed)
    fh.seek(0)
    return _copy(conn, f, fh, header), None


def _copy_lines(
    conn: psycopg.Connection,
    f: contract.ExtractFile,
    fh: IO[bytes],
    header: list[str],
    rows: Collection[int],
    business_date: date | None = None,
) -> bool:
    """COPY the data rows ``rows`` of a file each of whose lines is a row (the receiving helper compared its lines:
    their quotes pair), each with its row number, and its date when ``business_date`` is given (else the
    date being staged); ``fh`` past its header after. The lines end in a line feed, as the whole file's (the
    scan refuses CR LF: ``landing.scan_csv``), so COPY reads a carriage return inside quotes as data in both.
    False, nothing staged, where the lines alone would not be read as in the whole file: a header with other
    columns than the contract's, a line COPY refuses (the file COPYed whole names its line)."""
    fh.readline()
    if [h for h in header if h in f.column_names] != header:
        return False
    wanted = set(rows)
    left = len(wanted)
    dated = [sql.Identifier("_business_date")] if business_date else []
    prefix = f"{business_date.isoformat()},".encode() if business_date else b""
    statement = sql.SQL("copy {} ({}) from stdin (format csv, encoding 'UTF8')").format(
        table(f), sql.SQL(", ").join([*dated, sql.Identifier("_row_number"), *map(sql.Identifier, header)])
    )
    try:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(statement) as copy:
                for number, line in enumerate(fh, 1):
                    if not left:
                        break
                    if number in wanted:
                        copy.write(
                            b"%s%d,%s" % (prefix, number, line if line.endswith(b"\n") else line + b"\n")
                        )
                        left -= 1
            if cur.rowcount != len(wanted):
                raise _NotAlike
    except (_NotAlike, psycopg.Error):
        return False
    return True


class _NotAlike(Exception):
    """Some lines of a file COPYed alone would not be read as in the whole file (:func:`_copy_lines`)."""


def _copy_gone_before(conn: psycopg.Connection, f: contract.ExtractFile, plan: _FileStaging) -> None:
    """Stage the day before's rows of keys gone (``plan.gone_before``), which its staging by changes left out."""
    day = plan.day_before
    label, path = day.label(f.name), day.folder / f.name
    with landing.open_regular(path, label) as fh:
        header = landing.read_header(path, label)
        if not _copy_lines(conn, f, fh, header, plan.gone_before, day.business_date):
            raise RuntimeError(f"{label}: the rows of keys gone the next date could not be staged again")


def _copy_into(
    conn: psycopg.Connection, target: sql.Composable, columns: list[sql.Identifier], fh: IO[bytes]
) -> int:
    statement = sql.SQL("copy {} ({}) from stdin (format csv, header true, encoding 'UTF8')").format(
        target, sql.SQL(", ").join(columns)
    )
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            while block := fh.read(COPY_BLOCK):
                copy.write(block)
        return cur.rowcount


def _first_lines(exc: psycopg.Error) -> str:
    """PostgreSQL's message and where it stopped (``COPY branches, line 2``), without the statement."""
    diag = exc.diag
    return "; ".join(filter(None, (diag.message_primary, diag.context))) or str(exc).strip()
