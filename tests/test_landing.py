"""Landing: complete folders, manifest reading and verification, the immutable archive."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from odwh import contract, landing
from support.extract import write_delivery, write_manifest

DAY = date(2026, 10, 1)
D = DAY.isoformat()


def _rules(problems: list[landing.Problem]) -> set[tuple[str, int | None, str]]:
    return {(p.file, p.row, p.rule) for p in problems}


def test_complete_folders_listed_in_date_order_incomplete_and_odd_ones_ignored(tmp_path, caplog):
    write_delivery(tmp_path, date(2026, 10, 2))
    write_delivery(tmp_path, DAY)
    write_delivery(tmp_path, date(2026, 10, 3), manifest=False)  # still being written
    (tmp_path / "notes").mkdir()
    (tmp_path / "2026-13-01").mkdir()
    (tmp_path / "README.txt").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="odwh.landing"):
        deliveries = landing.list_deliveries(tmp_path)
    assert [d.business_date for d in deliveries] == [DAY, date(2026, 10, 2)]
    manifest_bytes = (tmp_path / D / contract.MANIFEST_NAME).read_bytes()
    assert deliveries[0].manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sorted(m.split(": ")[0].rsplit("/", 1)[-1] for m in warned) == ["2026-13-01", "notes"]


def test_missing_dates_between_deliveries(tmp_path):
    write_delivery(tmp_path, DAY)
    write_delivery(tmp_path, date(2026, 10, 4))
    assert landing.missing_dates(landing.list_deliveries(tmp_path)) == [date(2026, 10, 2), date(2026, 10, 3)]


def test_valid_delivery_matches_its_manifest(tmp_path):
    folder = write_delivery(tmp_path, DAY)
    assert landing.verify_manifest(folder) == []
    manifest = landing.read_manifest(folder)
    assert manifest.business_date == D
    assert manifest.files["od_balances.csv"].rows == 2


def test_file_url_is_served_through_object_storage(tmp_path):
    write_delivery(tmp_path, DAY)
    (delivery,) = landing.list_deliveries(tmp_path.as_uri())
    assert type(delivery.path).__name__ == "ObjectStoragePath"
    assert landing.verify_manifest(delivery.path) == []
    archived = landing.archive_delivery(delivery, tmp_path / "archive")
    assert landing.verify_manifest(archived) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"extract_version": 2, "business_date": D, "files": {}}), "extract_version is 2"),
        (
            json.dumps({"extract_version": 1, "business_date": "2026-10-02", "files": {}}),
            "not the folder's date",
        ),
        (
            json.dumps({"extract_version": 1, "business_date": D, "files": {"a.csv": {"rows": "3"}}}),
            "a.csv.rows",
        ),
    ],
)
def test_malformed_manifest_is_a_clear_error(tmp_path, content, message):
    folder = write_delivery(tmp_path, DAY)
    (folder / contract.MANIFEST_NAME).write_text(content)
    with pytest.raises(landing.LandingError, match=message) as raised:
        landing.read_manifest(folder)
    assert f"{D}/_manifest.json" in str(raised.value)
    (problem,) = landing.verify_manifest(folder)
    assert (problem.file, problem.row, problem.rule) == (
        f"{D}/_manifest.json",
        None,
        landing.RULE_MANIFEST_READABLE,
    )


def _edit_manifest(folder: Path, file: str, **changes: object) -> None:
    path = folder / contract.MANIFEST_NAME
    document = json.loads(path.read_text())
    document["files"][file].update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("changes", "rule", "column"),
    [
        ({"rows": 3}, landing.RULE_ROWS, None),
        ({"sha256": "0" * 64}, landing.RULE_SHA256, None),
        ({"control_total": "15001200.49"}, landing.RULE_CONTROL_TOTAL, "principal_outstanding"),
    ],
)
def test_manifest_mismatch_detected(tmp_path, changes, rule, column):
    folder = write_delivery(tmp_path, DAY)
    _edit_manifest(folder, "od_balances.csv", **changes)
    (problem,) = landing.verify_manifest(folder)
    assert (problem.file, problem.row, problem.column, problem.rule) == (
        f"{D}/od_balances.csv",
        None,
        column,
        rule,
    )


def test_control_total_compared_as_decimals(tmp_path):
    folder = write_delivery(tmp_path, DAY)
    _edit_manifest(folder, "od_balances.csv", control_total="15001200.5000")  # same number, other scale
    assert landing.verify_manifest(folder) == []


def test_changed_file_detected_by_sha256_and_control_total(tmp_path):
    folder = write_delivery(tmp_path, DAY)
    path = folder / "od_balances.csv"
    path.write_text(path.read_text().replace("1200.50", "1200.51"))
    assert _rules(landing.verify_manifest(folder)) == {
        (f"{D}/od_balances.csv", None, landing.RULE_SHA256),
        (f"{D}/od_balances.csv", None, landing.RULE_CONTROL_TOTAL),
    }


def test_missing_snapshot_file_is_invalid(tmp_path):
    folder = write_delivery(tmp_path, DAY, mutate=lambda rows: rows.pop("od_accounts.csv"))
    assert _rules(landing.verify_manifest(folder)) == {
        (f"{D}/od_accounts.csv", None, landing.RULE_SNAPSHOT_PRESENT)
    }


def test_missing_event_file_means_no_events(tmp_path):
    folder = write_delivery(tmp_path, DAY, mutate=lambda rows: rows.pop("complaints.csv"))
    assert landing.verify_manifest(folder) == []


def test_listed_file_missing_and_unlisted_file_present(tmp_path):
    folder = write_delivery(tmp_path, DAY)
    (folder / "complaints.csv").unlink()  # listed, then lost
    (folder / "ppi_surveys.csv").rename(folder / "surveys.csv")  # unknown and unlisted
    assert _rules(landing.verify_manifest(folder)) == {
        (f"{D}/complaints.csv", None, landing.RULE_LISTED_FILE_PRESENT),
        (f"{D}/ppi_surveys.csv", None, landing.RULE_LISTED_FILE_PRESENT),
        (f"{D}/surveys.csv", None, landing.RULE_KNOWN_FILE),
    }


def test_file_present_but_not_in_manifest(tmp_path):
    folder = write_delivery(tmp_path, DAY, mutate=lambda rows: rows.pop("complaints.csv"))
    (folder / "complaints.csv").write_text(
        "complaint_id,customer_id,received_on,channel,category,resolved_on\n"
    )
    assert _rules(landing.verify_manifest(folder)) == {
        (f"{D}/complaints.csv", None, landing.RULE_FILE_LISTED)
    }


def test_rows_with_wrong_field_count_named_and_capped(tmp_path):
    def broken(folder: Path) -> None:
        lines = (folder / "branches.csv").read_text().splitlines()
        lines += ["B09,too,few"] * 25  # data rows 3..27
        (folder / "branches.csv").write_text("\n".join(lines) + "\n")

    folder = write_delivery(tmp_path, DAY, edit_folder=broken)
    problems = landing.verify_manifest(folder)
    assert [p.row for p in problems] == [*range(3, 3 + landing.MAX_ROWS_LISTED), None]
    assert problems[0].rule == landing.RULE_FIELD_COUNT
    assert "3 fields, the header has 5" in problems[0].detail
    assert "5 more rows, 25 in all" in problems[-1].detail


def test_multiline_quoted_field_counts_as_one_row(tmp_path):
    folder = write_delivery(
        tmp_path, DAY, mutate=lambda rows: rows["branches.csv"][0].update(branch_name="Main\nOffice")
    )
    assert landing.verify_manifest(folder) == []
    assert landing.read_manifest(folder).files["branches.csv"].rows == 2


@pytest.mark.parametrize("fault, rule", [(b"\0", landing.RULE_NO_NUL), (b"\r", landing.RULE_LF)])
def test_a_fault_blocks_into_the_file_names_its_row_and_the_hash_covers_every_byte(tmp_path, fault, rule):
    """The pass reads blocks of whole lines: a clean block is checked at once, a faulty one line by line."""
    rows = 3 * landing._CHUNK // 19  # 19-byte rows: three blocks
    lines = [b"id,name\n"] + [b"%07d,a clean row\n" % i for i in range(1, rows)]
    lines.insert(rows // 2, b'0000000,"two\nlines"\n')  # a quoted newline: one row over two lines
    clean = tmp_path / "clean.csv"
    clean.write_bytes(b"".join(lines))
    facts = landing.scan_csv(clean, "clean.csv")
    assert (facts.rows, facts.problems) == (rows, [])
    assert facts.sha256 == hashlib.sha256(clean.read_bytes()).hexdigest()

    faulty_row = rows - 5
    lines[faulty_row] = lines[faulty_row][:-1] + fault + b"\n"
    faulty = tmp_path / "faulty.csv"
    faulty.write_bytes(b"".join(lines))
    facts = landing.scan_csv(faulty, "faulty.csv")
    assert [(p.row, p.rule) for p in facts.problems] == [(faulty_row, rule)]
    assert facts.sha256 == hashlib.sha256(faulty.read_bytes()).hexdigest()


_ODD_ROWS = [
    b'OD1,"Sok, Dara",12.50\n',  # a quoted comma
    b'OD2,"two\nlines",1\n',  # a quoted newline: one record over two lines
    b" OD3,x,1\n",  # keys with whitespace around them
    b"OD4\t,x,1\n",
    "OD5\u00a0,x,1\n".encode(),
    "OD\u00e96,x,1\n".encode(),  # a key ending in a letter that is not ASCII: not whitespace
    b"OD7,x\n",  # too few fields
    b"OD8,x,1,2\n",  # too many
    b"\n",  # an empty line
    b"OD9,x,1e5\n",  # control totals that are not plain decimals
    b"OD10,x,.5\n",
    b"OD11,x, 12\n",
    b"OD12,x,\n",  # null: skipped
    b"OD13,x,-0.125\n",
    b'OD15,a"b,1\n',  # a quote inside an unquoted field: csv reads it as part of the value
]
# lines after which strict csv reads no further (the problem is named, the rest of the file only hashed)
_LAST_READ_ROWS = [
    b"OD14,x\r,1\n",  # a lone carriage return
    b'OD16,"a"b,1\n',  # a character after a closing quote
]


@pytest.mark.parametrize("seed", range(6))
def test_whole_lines_read_at_once_as_csv_reads_them(tmp_path, monkeypatch, seed):
    """Quote-free lines are checked a block at once (the manifest pass's speed); any line csv must read itself
    sends the rest of its block to csv. Both readings must agree on rows, totals, problems and hash, whatever
    the blocks' boundaries."""
    import random

    rng = random.Random(seed)
    spec = contract.ExtractFile("odd.csv", "event", (), ("id",), control_total="amount")
    rows = [b"id,name,amount\n"]
    for i in range(400):
        rows.append(
            rng.choice(_ODD_ROWS) if rng.random() < 0.05 else b"OD%d,name %d,%d.%02d\n" % (i, i, i, i % 100)
        )
    if seed >= 2:
        rows.insert(350, _LAST_READ_ROWS[seed % 2])
    body = b"".join(rows)
    path = tmp_path / "odd.csv"
    path.write_bytes(body if seed % 2 else body.rstrip(b"\n"))  # a last line without its newline
    monkeypatch.setattr(landing, "_CHUNK", 97 + 31 * seed)  # many blocks, boundaries anywhere

    taken: list[bool] = []
    at_once = landing._CsvScan._whole_lines

    def spy(scan, lines):
        taken.append(at_once(scan, lines))
        return taken[-1]

    monkeypatch.setattr(landing._CsvScan, "_whole_lines", spy)
    fast = landing.scan_csv(path, "odd.csv", spec)
    monkeypatch.setattr(landing._CsvScan, "_whole_lines", lambda scan, lines: False)
    by_csv = landing.scan_csv(path, "odd.csv", spec)
    assert fast == by_csv
    assert True in taken and False in taken  # both readings were exercised
    assert fast.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fast.problems  # the odd rows were found


def test_whole_lines_of_a_clean_file_never_reach_csv(tmp_path, monkeypatch):
    """A clean file of quote-free lines is read by csv for its header alone, whatever its blocks."""
    lines = [b"id,amount\n"] + [b"A%d,%d.25\n" % (i, i) for i in range(5000)]
    path = tmp_path / "clean.csv"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(landing, "_CHUNK", 4096)
    spec = contract.ExtractFile("clean.csv", "event", (), ("id",), control_total="amount")
    given: list[int] = []
    monkeypatch.setattr(landing._CsvScan, "_read_rows", _counting(landing._CsvScan._read_rows, given))
    facts = landing.scan_csv(path, "clean.csv", spec)
    assert (facts.rows, facts.problems) == (5000, [])
    assert facts.control_total == sum(Decimal(i) + Decimal("0.25") for i in range(5000))
    assert given == [0]  # csv returned no data row: every row was read at once


def _counting(read_rows, given):
    def wrapper(scan, reader, header):
        read_rows(scan, reader, header)
        given.append(scan.lines_given - 1)  # lines csv read after the header

    return wrapper


def test_invalid_utf8_named(tmp_path):
    def latin1(folder: Path) -> None:
        (folder / "branches.csv").write_bytes(
            (folder / "branches.csv").read_bytes() + "B03,Kampót,x,y,z\n".encode("latin-1")
        )

    folder = write_delivery(tmp_path, DAY, edit_folder=latin1)
    problems = landing.verify_manifest(folder)
    assert (f"{D}/branches.csv", 3, landing.RULE_UTF8_CSV) in _rules(problems)


def test_archive_is_immutable_reused_and_verifiable(tmp_path):
    landing_dir, archive = tmp_path / "landing", tmp_path / "archive"
    write_delivery(landing_dir, DAY)
    (delivery,) = landing.list_deliveries(landing_dir)
    copy = landing.archive_delivery(delivery, archive)
    assert copy == archive / D / delivery.manifest_sha256[:16]
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in delivery.path.iterdir())
    assert all(not (p.stat().st_mode & stat.S_IWUSR) for p in copy.iterdir())
    assert landing.read_manifest(copy).business_date == D  # the date comes from the parent folder
    assert landing.verify_manifest(copy) == []
    assert landing.archive_delivery(delivery, archive) == copy  # same manifest: reused
    assert [p.name for p in (archive / D).iterdir()] == [copy.name]  # no temporary left behind


def test_redelivery_archived_beside_the_first(tmp_path):
    landing_dir, archive = tmp_path / "landing", tmp_path / "archive"
    first = landing.archive_delivery(write_delivery(landing_dir, DAY), archive)
    folder = landing_dir / D
    (folder / "complaints.csv").unlink()
    write_manifest(folder, DAY)
    second = landing.archive_delivery(folder, archive)
    assert second != first and second.parent == first.parent
    assert not (second / "complaints.csv").exists() and (first / "complaints.csv").exists()


def test_archiving_an_incomplete_folder_is_refused(tmp_path):
    folder = write_delivery(tmp_path, DAY, manifest=False)
    with pytest.raises(landing.LandingError, match="incomplete"):
        landing.archive_delivery(folder, tmp_path / "archive")


def test_problem_reads_like_a_sentence():
    problem = landing.Problem(f"{D}/od_balances.csv", 17, "amount", "amount > 0", "value '-1'")
    assert str(problem) == f"{D}/od_balances.csv row 17, column amount: amount > 0 (value '-1')"
    assert str(landing.Problem(f"{D}/x.csv", None, None, "rule")) == f"{D}/x.csv: rule"
