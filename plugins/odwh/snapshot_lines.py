"""A snapshot's lines compared with the date before's as they are received (decision 0069).

The door checks a snapshot kept as change history for its changes only: a row equal to its key's row of the day
before gets that row's verdicts (``odwh.validate``). Finding those rows in PostgreSQL took one sort of every
staged row by key and date (140 s of server time at 100,000 x 61 for customers, loans and accounts, whose lines
hardly change). The receiving helper reads every byte of a date anyway (``odwh.receiving``): it keeps each
snapshot's lines of the date before and finds, with set operations on the lines as delivered (bytes), the rows
that changed and the keys that went, parsing the keys of those lines only. The check then joins these few rows
to the staged ones instead of sorting them.

A date's comparison is given only where it means what the sort would find; otherwise (``None``) the check sorts
as before: a line whose quotes do not pair (a quoted field may span lines, so lines would not be rows), a key
with a quote left in it (COPY could read it as another key), the same line twice or a key twice on the date
(refused, and the check names both rows), or a file whose row count differs from its manifest's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from odwh import contract, history

# the snapshots whose unchanged rows the check skips (odwh.validate.checks_changes_only narrows this further)
COMPARED_FILES = tuple(f for f in contract.FILES if history.stored_as_history(f))

Key = tuple[str, ...]


@dataclass(frozen=True)
class LineChanges:
    """One snapshot file of one date against the date before's (the day before, received just before it).

    ``changed``: the 1-based data rows whose line was not delivered the day before (every other row equals the
    line of its key the day before, byte for byte), or ``None`` when every row counts as changed (no day before,
    or its header differs). ``gone_before``: the rows of the day before's file whose key is not delivered on
    this date (empty without a day before). ``rows``: the file's data rows (its manifest's, which it matched)."""

    changed: list[int] | None
    gone_before: list[int]
    rows: int

    def to_json(self) -> dict[str, object]:
        return {"changed": self.changed, "gone_before": self.gone_before, "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LineChanges:
        changed, gone, rows = data["changed"], data["gone_before"], data["rows"]
        assert changed is None or isinstance(changed, list)
        assert isinstance(gone, list) and isinstance(rows, int)
        return cls(changed=changed, gone_before=gone, rows=rows)

    @property
    def compared(self) -> bool:
        """Compared with the day before's lines (not the first date, nor one after a header that differs)."""
        return self.changed is not None


@dataclass
class _Day:
    business_date: date
    header: bytes
    rows: dict[bytes, int]  # line -> its 1-based data row (the lines are unique on a date given a comparison)
    key_lines: dict[Key, bytes]  # key -> its line (the keys too)


class SnapshotLines:
    """One snapshot file's lines, date after date: :meth:`advance` compares each with the one before."""

    def __init__(self, f: contract.ExtractFile) -> None:
        self.file = f
        self._day: _Day | None = None

    def advance(self, business_date: date, data: bytes, manifest_rows: int) -> LineChanges | None:
        """Compare the file's ``data`` delivered for ``business_date`` with the date before's; ``None`` when the
        check must compare the rows itself (the state restarts from the next date)."""
        before, self._day = self._day, None
        try:
            return self._compare(before, business_date, data, manifest_rows)
        except _NotComparable:
            self._day = None
            return None

    def _compare(
        self, before: _Day | None, business_date: date, data: bytes, manifest_rows: int
    ) -> LineChanges | None:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if not lines or len(lines) - 1 != manifest_rows:
            return None
        header, body = lines[0], lines[1:]
        rows = {line: number for number, line in enumerate(body, 1)}
        if len(rows) < len(body):  # a line repeated
            return None
        if before is not None and (
            before.header != header or before.business_date != business_date - timedelta(days=1)
        ):
            before = None
        keys_of = self._key_parser(header)
        if keys_of is None or _unpaired_quotes([header]):
            return None
        if before is None:
            if _unpaired_quotes(body):
                return None
            key_lines = dict(zip(keys_of(body), body, strict=True))
            if len(key_lines) < len(body):
                return None
            self._day = _Day(business_date, header, rows, key_lines)
            return LineChanges(changed=None, gone_before=[], rows=len(body))
        added = rows.keys() - before.rows.keys()
        removed = before.rows.keys() - rows.keys()
        if _unpaired_quotes(added):
            return None
        key_lines = before.key_lines  # the day before's is not kept: updated in place
        removed_keys = dict(zip(keys_of(removed), removed, strict=True))
        for key in removed_keys:
            del key_lines[key]
        for key, line in zip(keys_of(added), added, strict=True):
            if key in key_lines:  # its other line is unchanged, or added too
                return None
            key_lines[key] = line
        self._day = _Day(business_date, header, rows, key_lines)
        gone = sorted(before.rows[line] for key, line in removed_keys.items() if key not in key_lines)
        return LineChanges(changed=sorted(rows[line] for line in added), gone_before=gone, rows=len(body))

    def _key_parser(self, header: bytes) -> Callable[[Iterable[bytes]], list[Key]] | None:
        """The keys of lines (each a whole row: their quotes pair), or ``None`` when the header lacks one."""
        names = next(_rows([header]), [])
        if any(k not in names for k in self.file.key):
            return None
        positions = [names.index(k) for k in self.file.key]

        def keys_of(lines: Iterable[bytes]) -> list[Key]:
            keys = [tuple(r[p] if p < len(r) else "" for p in positions) for r in _rows(lines)]
            # a quote left in a key: one inside a field, which Python's csv keeps and PostgreSQL's COPY reads as
            # quoting (C"00"1 is C001 to COPY), or an escaped one; the keys would not be COPY's
            if any('"' in value for key in keys for value in key):
                raise _NotComparable
            return keys

        return keys_of


class _NotComparable(Exception):
    """A date whose keys Python could read otherwise than PostgreSQL's COPY: the check sorts it."""


def _rows(lines: Iterable[bytes]) -> Iterator[list[str]]:
    # undecodable bytes are replaced: such a file is refused by its COPY, and its lines still differ
    return csv.reader(line.decode("utf-8", "replace").removesuffix("\r") for line in lines)


def _unpaired_quotes(lines: Iterable[bytes]) -> bool:
    return any(line.count(b'"') % 2 for line in lines)
