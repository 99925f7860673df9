"""A snapshot's lines compared with the day before's as received (odwh.snapshot_lines, decision 0069)."""

from __future__ import annotations

from datetime import date, timedelta

from odwh import contract
from odwh.snapshot_lines import COMPARED_FILES, LineChanges, SnapshotLines

CUSTOMERS = contract.FILES_BY_NAME["customers.csv"]
D1 = date(2026, 10, 1)
HEADER = "customer_id,name,branch_id"


def _file(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _advance(lines: SnapshotLines, day: date, data: bytes) -> LineChanges | None:
    return lines.advance(day, data, data.count(b"\n") - 1)


def test_the_compared_files_are_the_snapshots_kept_as_history():
    assert {f.name for f in COMPARED_FILES} == {
        "customers.csv",
        "od_accounts.csv",
        "loans.csv",
        "fixed_deposits.csv",
    }


def test_a_date_lists_its_new_rows_and_the_day_befores_rows_of_keys_gone():
    lines = SnapshotLines(CUSTOMERS)
    assert _advance(lines, D1, _file("C1,Ann,B1", "C2,Bo,B1", "C3,Cy,B2")) == LineChanges(None, [], 3)
    # C2 renamed (a new line, its key kept), C3 gone, C4 new; the rows move up by one
    second = _file("C1,Ann,B1", "C2,Bob,B1", "C4,Di,B2")
    assert _advance(lines, D1 + timedelta(days=1), second) == LineChanges(
        changed=[2, 3], gone_before=[3], rows=3
    )
    # nothing changed, rows in another order: the rows are equal lines
    third = _file("C4,Di,B2", "C1,Ann,B1", "C2,Bob,B1")
    assert _advance(lines, D1 + timedelta(days=2), third) == LineChanges(changed=[], gone_before=[], rows=3)
    # a key gone and back the next day: a new line then, whatever its content
    assert _advance(lines, D1 + timedelta(days=3), _file("C1,Ann,B1", "C2,Bob,B1")) == LineChanges([], [1], 2)
    fifth = _file("C1,Ann,B1", "C2,Bob,B1", "C4,Di,B2")
    assert _advance(lines, D1 + timedelta(days=4), fifth) == LineChanges([3], [], 3)


def test_a_line_quoted_otherwise_is_a_new_line():
    lines = SnapshotLines(CUSTOMERS)
    _advance(lines, D1, _file("C1,Ann,B1", 'C2,"Bo, Jr",B1'))
    changed = _advance(lines, D1 + timedelta(days=1), _file('"C1",Ann,B1', 'C2,"Bo, Jr",B1'))
    assert changed == LineChanges(changed=[1], gone_before=[], rows=2)  # the key C1 is the same key: not gone


def test_dates_the_check_must_compare_itself():
    day2 = D1 + timedelta(days=1)
    cases = {
        "a key twice": [_file("C1,Ann,B1", "C2,Bo,B1"), _file("C1,Ann,B1", "C2,Bo,B1", "C1,Al,B2")],
        "a key twice, both lines new": [_file("C1,Ann,B1"), _file("C1,Al,B1", '"C1",Al,B1')],
        "a line twice": [_file("C1,Ann,B1"), _file("C1,Ann,B1", "C1,Ann,B1")],
        "a quoted field over two lines": [_file("C1,Ann,B1"), _file("C1,Ann,B1", 'C2,"Bo', 'Jr",B1')],
        "the key's column missing": [_file("C1,Ann,B1"), _file("Ann,B1", header="name,branch_id")],
        # COPY reads C"00"1 as C001, Python's csv as C"00"1: the key repeats for COPY alone
        "a quote inside a key": [_file("C001,Ann,B1"), _file("C001,Ann,B1", 'C"00"1,Dara,B2')],
        "an escaped quote in a key": [_file("C001,Ann,B1"), _file('"C""1",Ann,B1')],
    }
    for case, (first, second) in cases.items():
        lines = SnapshotLines(CUSTOMERS)
        assert _advance(lines, D1, first) is not None, case
        assert _advance(lines, day2, second) is None, case
        # and the next date starts again: every row counts as changed
        assert _advance(lines, day2 + timedelta(days=1), first) == LineChanges(
            None, [], first.count(b"\n") - 1
        ), case


def test_rows_that_do_not_match_the_manifest_are_not_compared():
    lines = SnapshotLines(CUSTOMERS)
    assert lines.advance(D1, _file("C1,Ann,B1", "C2,Bo,B1"), 3) is None
    assert lines.advance(D1, b"", 0) is None


def test_every_row_counts_as_changed_without_a_day_before_or_after_a_new_header():
    lines = SnapshotLines(CUSTOMERS)
    _advance(lines, D1, _file("C1,Ann,B1"))
    assert _advance(lines, D1 + timedelta(days=2), _file("C1,Ann,B1")) == LineChanges(
        None, [], 1
    )  # a day skipped
    reordered = _file("B1,C1,Ann", header="branch_id,customer_id,name")
    assert _advance(lines, D1 + timedelta(days=3), reordered) == LineChanges(None, [], 1)
    assert _advance(lines, D1 + timedelta(days=4), reordered) == LineChanges([], [], 1)
    crlf = b"branch_id,customer_id,name\r\nB1,C1,Ann\r\n"
    assert _advance(lines, D1 + timedelta(days=5), crlf) == LineChanges(
        None, [], 1
    )  # the header's bytes differ
    assert _advance(lines, D1 + timedelta(days=6), crlf + b"B1,C2,Bo\r\n") == LineChanges([2], [], 2)
