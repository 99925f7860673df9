"""Hostile or broken deliveries: each is refused with file, row and rule, and nothing of its date reaches raw.

Every case runs the real ingestion (archive, verify, validate, load) against a fresh PostgreSQL database and
checks the outcome, the message, ``meta.rejections`` and that no raw table holds a row of the date.
docs/reliability.md lists these faults and points here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from odwh import contract, history, landing, pipeline, validate
from odwh.landing import Problem
from support.extract import write_delivery, write_manifest

DAY = date(2026, 10, 1)
D = DAY.isoformat()


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(tmp_path / "archive"))
    return tmp_path / "archive"


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of hanging the suite) if a read blocks, e.g. on a FIFO."""

    def expired(*_: object) -> None:
        raise TimeoutError("ingestion blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _rewrite(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_bytes(change((folder / name).read_bytes()))

    return edit


def _symlink_outside(folder: Path) -> None:
    secret = folder.parent.parent / "secret.csv"
    secret.write_bytes((folder / "complaints.csv").read_bytes())  # would even match the manifest
    (folder / "complaints.csv").unlink()
    (folder / "complaints.csv").symlink_to(secret)


def _fifo(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name)

    return edit


def _socket(folder: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder / "events.sock"))


def _header(name: str, old: bytes, new: bytes) -> Callable[[Path], None]:
    return _rewrite(name, lambda data: data.replace(old, new, 1))


def _unnamed_column(data: bytes) -> bytes:
    header, *rows = data.splitlines(keepends=True)
    return header[:-1] + b",\n" + b"".join(line[:-1] + b",x\n" for line in rows)


def _set(name: str, row: int, **values: str) -> Callable[[dict[str, list[dict[str, str]]]], None]:
    return lambda rows: rows[name][row].update(values)


# (case id, write_delivery arguments, after the manifest is written, expected problem)
REFUSALS: list[tuple[str, dict[str, object], Callable[[Path], None] | None, Problem]] = [
    (
        "symlink out of the landing",
        {"edit_folder": _symlink_outside},
        None,
        Problem(f"{D}/complaints.csv", None, None, landing.RULE_REGULAR_FILE, "a symbolic link"),
    ),
    (
        "FIFO data file",
        {},
        _fifo("complaints.csv"),
        Problem(f"{D}/complaints.csv", None, None, landing.RULE_REGULAR_FILE, "a FIFO"),
    ),
    (
        "FIFO named _manifest.json",
        {"manifest": False},
        _fifo(contract.MANIFEST_NAME),
        Problem(f"{D}/{contract.MANIFEST_NAME}", None, None, landing.RULE_REGULAR_FILE, "a FIFO"),
    ),
    (
        "socket in the folder",
        {},
        _socket,
        Problem(f"{D}/events.sock", None, None, landing.RULE_REGULAR_FILE, "a socket"),
    ),
    (
        "folder in the folder",
        {},
        lambda folder: (folder / "more").mkdir(),
        Problem(f"{D}/more", None, None, landing.RULE_REGULAR_FILE, "a folder"),
    ),
    (
        "UTF-8 byte order mark",
        {"edit_folder": _rewrite("branches.csv", lambda b: b"\xef\xbb\xbf" + b)},
        None,
        Problem(f"{D}/branches.csv", 0, None, landing.RULE_NO_BOM),
    ),
    (
        "CRLF line ends",
        {"edit_folder": _rewrite("officers.csv", lambda b: b.replace(b"\n", b"\r\n"))},
        None,
        Problem(f"{D}/officers.csv", 0, None, landing.RULE_LF),
    ),
    (
        "NUL byte",
        {"mutate": _set("branches.csv", 1, branch_name="Batt\0ambang")},
        None,
        Problem(f"{D}/branches.csv", 2, None, landing.RULE_NO_NUL),
    ),
    (
        "line with no newline",
        {"edit_folder": _rewrite("complaints.csv", lambda b: b + b"K," * 100_000)},
        None,
        Problem(f"{D}/complaints.csv", 2, None, landing.RULE_LINE_LENGTH),
    ),
    (
        "duplicate header name",
        {"edit_folder": _header("branches.csv", b"region_name", b"branch_name")},
        None,
        Problem(f"{D}/branches.csv", 0, "branch_name", landing.RULE_HEADER_NAMES),
    ),
    (
        "empty header name",
        {"edit_folder": _rewrite("fx_rates.csv", _unnamed_column)},
        None,
        Problem(f"{D}/fx_rates.csv", 0, None, landing.RULE_HEADER_NAMES, "column 4 has no name"),
    ),
    (
        "internal column name",
        {"mutate": lambda rows: [r.update(_row_number="7") for r in rows["loans.csv"]]},
        None,
        Problem(f"{D}/loans.csv", 0, "_row_number", landing.RULE_HEADER_RESERVED),
    ),
    (
        "key with trailing space",
        {"mutate": _set("fixed_deposits.csv", 1, fd_account_id="FD02 ")},
        None,
        Problem(f"{D}/fixed_deposits.csv", 2, "fd_account_id", landing.RULE_KEY_TRIMMED),
    ),
    (
        "key with leading space",
        {"mutate": _set("od_transactions.csv", 0, txn_id=" T1")},
        None,
        Problem(f"{D}/od_transactions.csv", 1, "txn_id", landing.RULE_KEY_TRIMMED),
    ),
    (
        "header-only snapshot",
        {"mutate": lambda rows: rows["loans.csv"].clear()},
        None,
        Problem(f"{D}/loans.csv", None, None, landing.RULE_SNAPSHOT_ROWS),
    ),
]


def _nothing_of_the_day(url: str) -> None:
    with psycopg.connect(url) as conn:
        for f in contract.FILES:
            count = conn.execute(
                f"select count(*) from {history.by_business_date(f)} r where _business_date = %s",  # noqa: S608
                (DAY,),
            ).fetchone()
            assert count == (0,), f.table
        assert conn.execute("select count(*) from meta.loads").fetchone() == (0,)


def _rejections(url: str) -> list[list[str]]:
    with psycopg.connect(url) as conn:
        return [errors for (errors,) in conn.execute("select errors from meta.rejections")]


def _refused_with(url: str, landing_dir: Path, problem: Problem) -> pipeline.DateOutcome:
    report = pipeline.ingest(url, str(landing_dir), echo=False)
    (outcome,) = report.outcomes
    assert (outcome.business_date, outcome.status) == (D, "rejected")
    assert str(problem) in outcome.detail, outcome.detail
    with pytest.raises(pipeline.IngestionRefused, match=D):
        pipeline.raise_if_refused(report)  # the run's task fails: the run exits non-zero
    (errors,) = _rejections(url)
    assert any(str(problem) in error for error in errors), errors
    _nothing_of_the_day(url)
    return outcome


@pytest.mark.parametrize(
    ("delivery", "after", "problem"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_refused_with_file_row_and_rule_and_nothing_loaded(
    fresh_db, tmp_path, archive, no_hang, delivery, after, problem
):
    landing_dir = tmp_path / "landing"
    folder = write_delivery(landing_dir, DAY, **delivery)  # type: ignore[arg-type]
    if after:
        after(folder)
    _refused_with(fresh_db, landing_dir, problem)
    if problem.rule == landing.RULE_REGULAR_FILE:  # refused while archiving: no copy, no temporary left
        assert not any(archive.rglob("*.csv"))


def test_manifest_listing_a_file_twice_is_refused(fresh_db, tmp_path, archive):
    folder = write_delivery(tmp_path / "landing", DAY)
    text = (folder / contract.MANIFEST_NAME).read_text()
    entry = json.dumps(json.loads(text)["files"]["complaints.csv"])
    (folder / contract.MANIFEST_NAME).write_text(
        text.replace('"files": {', f'"files": {{"complaints.csv": {entry},')
    )
    label = f"{D}/{contract.MANIFEST_NAME}"
    _refused_with(fresh_db, tmp_path / "landing", Problem(label, None, None, landing.RULE_MANIFEST_UNIQUE))


def test_oversized_manifest_is_refused_unread(fresh_db, tmp_path, archive):
    folder = write_delivery(tmp_path / "landing", DAY)
    with (folder / contract.MANIFEST_NAME).open("a") as fh:
        fh.write(" " * landing.MAX_MANIFEST_BYTES)  # still valid JSON: only the size is wrong
    label = f"{D}/{contract.MANIFEST_NAME}"
    _refused_with(fresh_db, tmp_path / "landing", Problem(label, None, None, landing.RULE_MANIFEST_SIZE))


def test_symlinked_delivery_folder_is_not_followed(fresh_db, tmp_path, archive):
    elsewhere = write_delivery(tmp_path / "elsewhere", DAY)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / D).symlink_to(elsewhere)
    problem = Problem(D, None, None, landing.RULE_REGULAR_FILE, "the folder is a symbolic link")
    _refused_with(fresh_db, tmp_path / "landing", problem)


def test_dangling_symlink_manifest_is_refused_not_skipped(tmp_path):
    folder = write_delivery(tmp_path, DAY, manifest=False)
    (folder / contract.MANIFEST_NAME).symlink_to(tmp_path / "nowhere.json")
    (delivery,) = landing.list_deliveries(tmp_path)
    with pytest.raises(landing.RefusedInput, match="a symbolic link"):
        landing.archive_delivery(delivery, tmp_path / "archive")


def test_a_header_only_snapshot_of_fixed_deposits_is_loaded(fresh_db, tmp_path, archive):
    """An institution may hold no fixed deposits: that snapshot alone may be empty (contract may_be_empty)."""

    def no_deposits(rows):
        rows["fixed_deposits.csv"].clear()
        for account in rows["od_accounts.csv"]:
            if account["collateral_type"] == "FIXED_DEPOSIT":
                account.update(collateral_type="PROPERTY", fd_account_id="")

    write_delivery(tmp_path / "landing", DAY, mutate=no_deposits)
    (outcome,) = pipeline.ingest(fresh_db, str(tmp_path / "landing"), echo=False).outcomes
    assert outcome.status == "loaded", outcome.detail
    assert [f.name for f in contract.FILES if f.kind == "snapshot" and f.may_be_empty] == [
        "fixed_deposits.csv"
    ]


def test_unknown_province_is_recorded_with_the_load_and_staged_as_delivered(fresh_db, tmp_path, archive):
    def misspelt(rows: dict[str, list[dict[str, str]]]) -> None:
        rows["branches.csv"][1]["province"] = "Battambangg"

    write_delivery(tmp_path / "landing", DAY, mutate=misspelt)
    (outcome,) = pipeline.ingest(fresh_db, str(tmp_path / "landing"), echo=False).outcomes
    assert outcome.status == "loaded", outcome.detail
    assert len(outcome.warnings) == 1 and "row 2, column province: province known" in outcome.warnings[0]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select warnings from meta.loads").fetchone() == (outcome.warnings,)
        assert conn.execute("select province from raw.branches order by _row_number").fetchall() == [
            ("Phnom Penh",),
            ("Battambangg",),
        ]


def test_extra_column_is_printed_recorded_and_not_staged(fresh_db, tmp_path, archive, capsys):
    odd = 'note "; drop table raw.od_balances; --'  # a header is data, never an identifier
    landing_dir = tmp_path / "landing"
    write_delivery(
        landing_dir, DAY, mutate=lambda rows: [r.update({odd: "x"}) for r in rows["od_balances.csv"]]
    )
    report = pipeline.ingest(fresh_db, str(landing_dir), echo=True)
    (outcome,) = report.outcomes
    warning = f"{D}/od_balances.csv: column {odd!r} is not in the contract, ignored"
    assert outcome.status == "loaded" and outcome.warnings == [warning]
    assert f"warning: {warning}" in capsys.readouterr().out
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select warnings from meta.loads").fetchone() == ([warning],)
        rows = conn.execute("select od_account_id, _row_number from raw.od_balances order by 2").fetchall()
    assert rows == [("OD01", 1), ("OD02", 2)]


def test_archive_copy_is_private_whatever_the_umask(tmp_path):
    folder = write_delivery(tmp_path / "landing", DAY)
    previous = os.umask(0)
    try:
        copy = landing.archive_delivery(folder, tmp_path / "archive")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o500
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in copy.iterdir()} == {0o400}


def test_a_file_without_newlines_is_never_read_whole(tmp_path, module_db):
    path = tmp_path / D / "complaints.csv"
    path.parent.mkdir()
    block = b"x" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(b"complaint_id,customer_id,received_on,channel,category,resolved_on\n")
        for _ in range(64):  # 64 MiB on one line
            fh.write(block)
    spec = contract.FILES_BY_NAME["complaints.csv"]
    tracemalloc.start()
    try:
        facts = landing.scan_csv(path, f"{D}/complaints.csv", spec)
        staged = validate.validate_delivery(
            path.parent, module_db, files=["complaints.csv"]
        )  # streamed to COPY
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(p.row, p.rule) for p in facts.problems] == [(1, landing.RULE_LINE_LENGTH)]
    assert [(p.file, p.rule) for p in staged.problems] == [(f"{D}/complaints.csv", validate.RULE_UNREADABLE)]
    assert peak < 8 * (1 << 20), f"peak {peak / (1 << 20):.1f} MiB for a 64 MiB line"


def test_header_of_a_fifo_is_refused_without_blocking(tmp_path, no_hang, module_db):
    (tmp_path / D).mkdir()
    os.mkfifo(tmp_path / D / "branches.csv")
    with pytest.raises(landing.RefusedInput, match="a FIFO"):
        landing.read_header(tmp_path / D / "branches.csv", "branches.csv")
    report = validate.validate_delivery(tmp_path / D, module_db, files=["branches.csv"])
    assert [(p.file, p.rule, p.detail) for p in report.problems] == [
        (f"{D}/branches.csv", landing.RULE_REGULAR_FILE, "a FIFO")
    ]


def test_manifest_rewritten_for_a_refused_file_still_refused(tmp_path):
    """The factory's manifest follows the link; the sha256 matching does not make the link acceptable."""
    folder = write_delivery(tmp_path, DAY, edit_folder=_symlink_outside)
    write_manifest(folder, DAY)
    problems = landing.verify_manifest(folder)
    assert [(p.file, p.rule, p.detail) for p in problems] == [
        (f"{D}/complaints.csv", landing.RULE_REGULAR_FILE, "a symbolic link")
    ]
