"""Ingestion without Airflow: order, idempotency, re-delivery, refusal of bad dates, gaps, privacy."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from odwh import contract, history, load, pipeline, quarantine, receiving, validate, warehouse
from odwh import landing as landing_module
from support.database import throwaway_database
from support.extract import write_delivery, write_manifest

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)


@pytest.fixture
def archive(tmp_path, monkeypatch):
    monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(tmp_path / "archive"))
    return tmp_path / "archive"


def _counts(url: str, table: str) -> dict[date, int]:
    with psycopg.connect(url) as conn:
        rows_by_date = history.by_business_date(contract.FILES_BY_NAME[f"{table}.csv"])
        rows = conn.execute(f"select _business_date, count(*) from {rows_by_date} r group by 1")  # noqa: S608
        return dict(rows.fetchall())


def test_dates_load_in_order_and_raw_matches_the_manifests(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    for day in (D3, D1, D2):
        write_delivery(landing, day)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.business_date for o in report.outcomes] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert report.ok
    with psycopg.connect(fresh_db) as conn:
        for day in (D1, D2, D3):
            manifest = json.loads((landing / day.isoformat() / contract.MANIFEST_NAME).read_text())
            for f in contract.FILES:
                entry = manifest["files"][f.name]
                rows_by_date = history.by_business_date(f)
                count = conn.execute(
                    f"select count(*) from {rows_by_date} r where _business_date = %s",  # noqa: S608
                    (day,),
                ).fetchone()
                assert count == (entry["rows"],), (day, f.name)
                if f.control_total:
                    total = conn.execute(
                        f"select coalesce(sum({f.control_total}), 0) from {rows_by_date} r"  # noqa: S608
                        " where _business_date = %s",
                        (day,),
                    ).fetchone()
                    assert total == (Decimal(entry["control_total"]),), (day, f.name)
        loads = conn.execute("select business_date, rows_loaded from meta.loads order by load_id").fetchall()
        assert [d for d, _ in loads] == [D1, D2, D3]  # load ids rise with the dates (the builds' watermarks)
        files = conn.execute("select count(*) from meta.load_files").fetchone()
        assert files == (3 * len(contract.FILES),)


def test_rerun_loads_nothing_twice(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    write_delivery(landing, D2)
    pipeline.ingest(fresh_db, str(landing), echo=False)
    before = _counts(fresh_db, "od_transactions")
    again = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert again.outcomes == []
    assert _counts(fresh_db, "od_transactions") == before


def test_a_new_delivery_of_a_date_replaces_the_old_one_entirely(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    pipeline.ingest(fresh_db, str(landing), echo=False)

    def one_more_balance(rows):
        rows["od_balances.csv"] = rows["od_balances.csv"][:1]  # a correction: only one account this time

    write_delivery(landing, D1, mutate=one_more_balance)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded"]
    assert "replaces" in report.outcomes[0].detail
    assert _counts(fresh_db, "od_balances") == {D1: 1}
    with psycopg.connect(fresh_db) as conn:
        history = conn.execute("select superseded_at is null from meta.loads order by load_id").fetchall()
        assert history == [(False,), (True,)]  # the old delivery is kept on record, marked superseded


def test_an_invalid_date_is_refused_whole_and_later_dates_wait(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    write_delivery(
        landing, D2, mutate=lambda rows: rows["od_balances.csv"][1].update(principal_outstanding="-5")
    )
    write_delivery(landing, D3)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [(o.business_date, o.status) for o in report.outcomes] == [
        ("2026-10-01", "loaded"),
        ("2026-10-02", "rejected"),
        ("2026-10-03", "waiting"),
    ]
    assert "2026-10-02/od_balances.csv row 2" in report.outcomes[1].detail
    assert "principal_outstanding" in report.outcomes[1].detail
    assert not report.ok
    with pytest.raises(pipeline.IngestionRefused):
        pipeline.raise_if_refused(report)
    assert set(_counts(fresh_db, "od_balances")) == {D1}  # nothing of 2 Oct, and 3 Oct waits
    with psycopg.connect(fresh_db) as conn:
        (errors,) = conn.execute("select errors from meta.rejections").fetchone()
        assert any("row 2" in e for e in errors)

    write_delivery(landing, D2)  # corrected delivery
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "loaded"]
    assert set(_counts(fresh_db, "od_balances")) == {D1, D2, D3}


def test_a_missing_business_date_stops_later_dates(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    write_delivery(landing, D3)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "rejected"]
    assert "2026-10-02 has not been delivered" in report.outcomes[1].detail


def test_incomplete_folders_are_not_touched(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    write_delivery(landing, D2, manifest=False)  # the core system is still writing it
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.business_date for o in report.outcomes] == ["2026-10-01"]


def test_manifest_mismatch_is_refused(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"

    def tamper(folder):
        write_manifest(folder, D1)
        with (folder / "od_transactions.csv").open("a") as fh:  # a row added after the manifest was written
            fh.write(f"X1,OD01,{D1},DRAWDOWN,DEBIT,1.00,AGENT,\n")

    write_delivery(landing, D1, edit_folder=tamper, manifest=False)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert report.outcomes[0].status == "rejected"
    assert "od_transactions.csv" in report.outcomes[0].detail
    assert _counts(fresh_db, "od_transactions") == {}


def test_a_snapshot_staged_short_of_its_manifest_is_refused_at_promotion(
    fresh_db, tmp_path, archive, monkeypatch
):
    """Promotion compares each file's rows with the manifest: a snapshot merged by its changes alone (the day
    before promoted from the same staging) is counted as staging recorded it per date and file, here by its COPY
    (staged whole: its lines not compared; staged by its changed lines, the count is the comparison's)."""
    landing = tmp_path / "landing"
    for day in (D1, D2):
        write_delivery(landing, day)
    copy, recorded = quarantine._copy, []
    monkeypatch.setattr(pipeline, "_lines", lambda item: {})

    def one_short_on_2_oct(conn, f, fh, header):  # as if COPY had read one row fewer than the manifest lists
        staged = copy(conn, f, fh, header)
        if f.name == "customers.csv":
            recorded.append(staged)
            day = conn.execute("select current_setting('odwh.quarantine_date')").fetchone()[0]
            return staged - 1 if day == D2.isoformat() else staged
        return staged

    monkeypatch.setattr(quarantine, "_copy", one_short_on_2_oct)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "rejected"]
    listed = len((landing / D2.isoformat() / "customers.csv").read_text().splitlines()) - 1
    assert recorded == [listed, listed]
    assert f"customers.csv: manifest says {listed} rows, loaded {listed - 1}" in report.outcomes[1].detail
    assert set(_counts(fresh_db, "customers")) == {D1}

    monkeypatch.undo()
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded"]
    assert set(_counts(fresh_db, "customers")) == {D1, D2}


def test_the_next_date_is_received_by_a_helper_process_never_past_a_refused_one(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    D4 = date(2026, 10, 4)

    def tamper(folder):
        write_manifest(folder, D2)
        with (folder / "od_transactions.csv").open("a") as fh:  # a row added after the manifest was written
            fh.write(f"X1,OD01,{D2},DRAWDOWN,DEBIT,1.00,AGENT,\n")

    for day in (D1, D3, D4):
        write_delivery(landing, day)
    write_delivery(landing, D2, edit_folder=tamper, manifest=False)
    pending = landing_module.list_deliveries(landing)

    def not_here(*args):
        raise AssertionError("received in the door's own process")

    monkeypatch.setattr(receiving, "receive", not_here)  # the helper process has its own
    archive = tmp_path / "archive"
    with receiving.one_ahead(pending, archive) as receive:
        first, second = receive(0), receive(1)
    assert first.problems == [] and first.manifest().business_date == D1.isoformat()
    assert any("od_transactions.csv" in p and landing_module.RULE_ROWS in p for p in second.problems)
    assert sorted(p.name for p in archive.iterdir()) == [D1.isoformat(), D2.isoformat()]  # D3, D4 untouched


def test_the_helper_and_its_second_process_read_what_one_process_reads(tmp_path):
    """The receiving helper shares each date's files with a second process of its own (decision 0071): the scans
    and the lines compared are those of one process reading every file, a broken file in each one's share too; a
    snapshot whose scan fails is not compared (its lines could not be read as rows), and its date is refused."""
    from odwh import simulate

    landing = tmp_path / "landing"
    simulate.simulate(landing, D1, D1 + timedelta(days=3), accounts=30, seed=5, progress=False)
    third = (D1 + timedelta(days=2)).isoformat()
    # on the third date: a field too many in the customers (the helper's share), a carriage return inside a line
    # of the accounts (the second process's share; csv cannot read it)
    for name, broken in (("customers.csv", "{},x"), ("od_accounts.csv", "{}\r")):
        path = landing / third / name
        header, first, *rest = path.read_text().splitlines()
        path.write_bytes("\n".join([header, broken.format(first[:5]) + first[5:], *rest]).encode() + b"\n")
    assert [
        "customers.csv" in receiving.SECOND_PROCESS_FILES,
        "od_accounts.csv" in receiving.SECOND_PROCESS_FILES,
    ] == [
        False,
        True,
    ]
    archive, alone = tmp_path / "archive", {}
    with receiving._TwoProcesses() as two:
        for folder in sorted(landing.iterdir()):
            archived = landing_module.archive_delivery(folder, archive)
            shared = two.examine(archived)
            assert shared == receiving.examine(archived, contract.FILES_BY_NAME, alone)
            assert set(shared.facts) == {p.name for p in folder.iterdir()} - {contract.MANIFEST_NAME}
            refused = {name for name, facts in shared.facts.items() if facts.problems}
            compared = {"customers.csv", "od_accounts.csv", "loans.csv", "fixed_deposits.csv"} - refused
            assert set(shared.lines) == compared
            assert refused == ({"customers.csv", "od_accounts.csv"} if folder.name == third else set())
    assert not two.process.is_alive()  # it ends with the helper
    with receiving.one_ahead(landing_module.list_deliveries(landing), tmp_path / "door") as receive:
        received = [receive(i) for i in range(3)]
    assert [bool(r.problems) for r in received] == [False, False, True] and received[2].lines == {}
    assert any("od_accounts.csv" in p for p in received[2].problems)


def test_client_identifiers_go_to_the_pii_schema_only(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    pipeline.ingest(fresh_db, str(landing), echo=False)
    with psycopg.connect(fresh_db) as conn:
        pii = conn.execute("select customer_id, national_id, phone from pii.customers order by 1").fetchall()
        assert pii[0] == ("C01", "010203040", "+85512345678")
        assert pii[1] == ("C02", None, None)  # empty field = null
        raw_cols = {r[0] for r in conn.execute("select * from raw.customers limit 0").description or []}
        assert "national_id" not in raw_cols and "phone" not in raw_cols


def test_a_promotion_that_fails_midway_leaves_nothing_behind(fresh_db, tmp_path, archive):
    folder = write_delivery(tmp_path / "landing", D1, mutate=lambda rows: rows.pop("od_balances.csv"))
    manifest = pipeline.landing.read_manifest(folder)
    with (
        psycopg.connect(fresh_db, autocommit=True) as conn,
        quarantine.quarantined(conn, [folder]) as staged,
    ):
        with pytest.raises(load.LoadError, match=r"od_balances\.csv"):
            load.promote(
                conn,
                manifest,
                list(staged[0].rows),
                archive_folder=str(folder),
                manifest_sha256="x",
                source_folder=str(folder),
            )
        assert conn.execute("select count(*) from quarantine.branches").fetchone() == (2,)  # still staged
    assert _counts(fresh_db, "branches") == {}
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from meta.loads").fetchone() == (0,)
        assert _quarantined(conn) == 0  # and cleared on the way out


def test_a_date_refused_while_promoting_rolls_back_the_next_date_under_way(
    fresh_db, tmp_path, archive, monkeypatch
):
    """Two dates are promoted side by side (decision 0052): 3 Oct writes its balances while 2 Oct merges its
    snapshots. 2 Oct then fails: it is refused, and 3 Oct, already under way, is rolled back and waits."""
    landing = tmp_path / "landing"
    for day in (D1, D2, D3):
        write_delivery(landing, day)
    next_date_under_way = threading.Event()
    check_count = load._check_count

    def failing_on_2_oct(name: str, loaded: int, manifest: contract.Manifest) -> None:
        if manifest.business_date == D3.isoformat() and name == "od_balances.csv":
            next_date_under_way.set()
        if manifest.business_date == D2.isoformat() and name == "customers.csv":
            next_date_under_way.wait(timeout=300)  # not set in time: the is_set() check below says so
            raise load.LoadError("2026-10-02/customers.csv: refused for the test")
        check_count(name, loaded, manifest)

    monkeypatch.setattr(load, "_check_count", failing_on_2_oct)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert next_date_under_way.is_set()  # 3 Oct's own files were written before 2 Oct was over
    assert [(o.business_date, o.status) for o in report.outcomes] == [
        ("2026-10-01", "loaded"),
        ("2026-10-02", "rejected"),
        ("2026-10-03", "waiting"),
    ]
    assert "refused for the test" in report.outcomes[1].detail
    assert report.outcomes[2].detail == "after 2026-10-02 was refused"
    assert set(_counts(fresh_db, "od_balances")) == {D1}
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select business_date from meta.loads").fetchall() == [(D1,)]

    monkeypatch.undo()
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "loaded"]
    assert set(_counts(fresh_db, "od_balances")) == {D1, D2, D3}


def test_a_date_refused_before_its_snapshots_stops_the_next_from_starting(
    fresh_db, tmp_path, archive, monkeypatch
):
    """2 Oct fails on its balances, before its snapshots: 3 Oct is not started at all (it would only roll back)."""
    landing = tmp_path / "landing"
    for day in (D1, D2, D3):
        write_delivery(landing, day)
    counted: list[tuple[str, str]] = []
    check_count = load._check_count

    def failing_on_2_oct(name: str, loaded: int, manifest: contract.Manifest) -> None:
        counted.append((manifest.business_date, name))
        if manifest.business_date == D2.isoformat() and name == "od_balances.csv":
            raise load.LoadError("2026-10-02/od_balances.csv: refused for the test")
        check_count(name, loaded, manifest)

    monkeypatch.setattr(load, "_check_count", failing_on_2_oct)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "rejected", "waiting"]
    assert not [name for day, name in counted if day == D3.isoformat()]
    assert set(_counts(fresh_db, "od_balances")) == {D1}


def _quarantined(conn: psycopg.Connection) -> int:
    """Rows left in quarantine, plus the tables the contract check builds (checked rows, keys) left."""
    tables = [f"select count(*) from quarantine.{f.table}" for f in contract.FILES]  # noqa: S608
    built = "select count(*) from pg_tables where schemaname = 'quarantine' and tablename <> all(%s)"
    own = [f.table for f in contract.FILES] + ["staged_dates"]
    return (
        sum(conn.execute(q).fetchone()[0] for q in [*tables, "select count(*) from quarantine.staged_dates"])
        + (conn.execute(built, (own,)).fetchone()[0])
    )


def test_a_run_clears_what_a_killed_run_left_in_quarantine(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # a run killed after staging D1 and D2
        for day in (D1, D2):
            conn.execute("select set_config('odwh.quarantine_date', %s, false)", (day.isoformat(),))
            conn.execute("insert into quarantine.staged_dates values (%s)", (day,))
            conn.execute("insert into quarantine.branches (branch_code) values ('STALE')")
    with psycopg.connect(warehouse.stage_url(warehouse.LOADER, fresh_db), autocommit=True) as conn:
        conn.execute("create table quarantine.keys_customers__customer_id (customer_id text)")  # its keys too
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert report.ok
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from raw.branches where branch_code = 'STALE'").fetchone() == (
            0,
        )
        assert _quarantined(conn) == 0
    assert set(_counts(fresh_db, "branches")) == {D1}


def test_a_reversal_of_an_earlier_pending_date_is_checked_in_the_same_run(fresh_db, tmp_path, archive):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)

    def reverse_d1_repayment(rows) -> None:  # D1 is only in quarantine when D2 is checked
        rows["od_transactions.csv"][1].update(
            txn_type="REVERSAL", direction="DEBIT", reversed_txn_id="T20261001-2"
        )

    write_delivery(landing, D2, mutate=reverse_d1_repayment)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert report.ok, [o.detail for o in report.outcomes]


def _account_only_on_d1(rows) -> None:
    rows["od_accounts.csv"].append(dict(rows["od_accounts.csv"][0], od_account_id="OD09"))


CROSS_DATE = {  # (D1's change, D2's change, the problem D2 is refused with)
    "foreign key": (
        _account_only_on_d1,
        lambda rows: rows["od_balances.csv"][1].update(od_account_id="OD09"),
        "2026-10-02/od_balances.csv row 2, column od_account_id: foreign key to od_accounts.csv",
    ),
    # a snapshot row equal to its previous date's row is not checked again (quarantine.checks_changes_only),
    # except where a rule looks at the rest of its date
    "key repeated by an unchanged row": (
        lambda rows: None,
        lambda rows: rows["od_accounts.csv"].append(dict(rows["od_accounts.csv"][0])),
        "2026-10-02/od_accounts.csv row 3, column od_account_id: key unique within the file (value 'OD01')",
    ),
    # a balance's key is delivered every date: only its repeat within a date is refused
    "key repeated within one date of a file checked whole": (
        lambda rows: None,
        lambda rows: rows["od_balances.csv"].append(dict(rows["od_balances.csv"][0])),
        "2026-10-02/od_balances.csv row 1, column od_account_id: key unique within the file (value 'OD01')",
    ),
    # a key delivered on one of the dates checked together, twice: more rows than its dates, not than theirs
    "key repeated on the only date it is delivered": (
        lambda rows: None,
        lambda rows: rows["complaints.csv"].append(dict(rows["complaints.csv"][0])),
        "2026-10-02/complaints.csv row 1, column complaint_id: key unique within the file (value 'KT20261002-1')",
    ),
    "an unchanged row loses its customer": (
        lambda rows: None,
        lambda rows: rows["customers.csv"].pop(0),
        "2026-10-02/od_accounts.csv row 1, column customer_id: foreign key to customers.csv",
    ),
    "a changed row names an unknown customer": (
        lambda rows: None,
        lambda rows: rows["od_accounts.csv"][0].update(customer_id="C999"),
        "2026-10-02/od_accounts.csv row 1, column customer_id: foreign key to customers.csv (customer_id) (value 'C999'",
    ),
    "a row changed to a bad value": (
        lambda rows: None,
        lambda rows: rows["od_accounts.csv"][0].update(limit_amount="-5"),
        "2026-10-02/od_accounts.csv row 1, column limit_amount: limit_amount > 0 (value '-5')",
    ),
    "fx complete": (
        lambda rows: None,
        lambda rows: rows["fx_rates.csv"].pop(2),
        "2026-10-02/fx_rates.csv column currency: fx_rates has KHR, USD and THB, with khr_per_unit(KHR) = 1 (a currency is missing: THB)",
    ),
}


@pytest.mark.parametrize("case", list(CROSS_DATE))
def test_rules_across_files_hold_per_date_when_dates_are_checked_together(fresh_db, tmp_path, archive, case):
    on_d1, on_d2, problem = CROSS_DATE[case]
    landing = tmp_path / "landing"
    write_delivery(landing, D1, mutate=on_d1)  # what D2 lacks is in D1, checked in the same pass
    write_delivery(landing, D2, mutate=on_d2)
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [(o.business_date, o.status) for o in report.outcomes] == [
        ("2026-10-01", "loaded"),
        ("2026-10-02", "rejected"),
    ]
    assert problem in report.outcomes[1].detail, report.outcomes[1].detail


def test_two_connections_stage_each_file_numbered_from_one_in_file_order(fresh_db, tmp_path, monkeypatch):
    """A date's files are shared between two connections (decision 0054): each file's rows still carry its own
    1-based row numbers in file order, their sequence's numbers cached by each connection (migration 15), and the
    date's problems come in the contract's order."""
    stagers: list[tuple[str, list[str]]] = []
    stage_files = quarantine._stage_files

    def spy(conn, business_date, folder, queue, take, plans):
        parts = stage_files(conn, business_date, folder, queue, take, plans)
        stagers.append((threading.current_thread().name, sorted(parts)))
        return parts

    monkeypatch.setattr(quarantine, "_stage_files", spy)

    def without_columns(folder: Path) -> None:  # two files lose a column: two problems on D2
        for name, column in (("od_balances.csv", "fees_receivable"), ("branches.csv", "province")):
            text = (folder / name).read_text().splitlines()
            at = text[0].split(",").index(column)
            lines = [",".join(v for i, v in enumerate(line.split(",")) if i != at) for line in text]
            (folder / name).write_text("\n".join(lines) + "\n")

    landing = tmp_path / "landing"
    folders = [write_delivery(landing, D1), write_delivery(landing, D2, edit_folder=without_columns)]
    # each sequence's numbers cached two at a time: a file's rows take several caches
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for f in contract.FILES:
            conn.execute(f"alter sequence quarantine.{f.table}_row_numbers cache 2")
    with (
        psycopg.connect(fresh_db, autocommit=True) as conn,
        quarantine.quarantined(conn, folders) as staged,
    ):
        for f in contract.FILES:
            numbered = conn.execute(
                f"select _business_date, array_agg(_row_number order by _row_number)"  # noqa: S608
                f" from quarantine.{f.table} group by 1 order by 1"
            ).fetchall()
            expected = [
                (d.business_date, list(range(1, d.rows[f.name] + 1))) for d in staged if d.rows[f.name]
            ]
            assert numbered == expected, f.name
        codes = conn.execute(
            "select branch_code from quarantine.branches where _business_date = %s order by _row_number",
            (D1,),
        ).fetchall()
    assert [c for (c,) in codes] == [
        line.split(",")[0] for line in (folders[0] / "branches.csv").read_text().splitlines()[1:]
    ]
    assert [p.file for p in staged[1].problems] == [f"{D2}/branches.csv", f"{D2}/od_balances.csv"]
    threads = {name.split("_")[0] for name, files in stagers if files}
    assert threads == {"MainThread", "odwh-stage"}  # both connections staged files


def test_the_loader_stages_each_file_with_its_dates_summarized_for_the_reads_of_one_date(fresh_db, tmp_path):
    """Quarantine tables find a date's rows through a BRIN index on the date (decision 0062), which skips only
    the block ranges it has summarized: staging, as the loader (not the tables' owner), summarizes each file's
    new ranges after its COPY, so nothing is left to summarize, and a read of one date uses the index. (A range
    of one page here: PostgreSQL leaves a table's last, partial range unsummarized, and these files are small.)"""

    def pages_of_balances(rows: dict[str, list[dict[str, str]]]) -> None:  # staged, not checked: repeats do
        rows["od_balances.csv"] *= 200

    landing = tmp_path / "landing"
    folders = [write_delivery(landing, d, mutate=pages_of_balances) for d in (D1, D2)]
    loader = warehouse.stage_url(warehouse.LOADER, fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as owner:
        indexes = owner.execute(
            "select i.indexrelid::regclass::text, i.indrelid::regclass::text from pg_index as i"
            " join pg_class as c on c.oid = i.indexrelid join pg_am as am on am.oid = c.relam"
            " where am.amname = 'brin' and c.relnamespace = 'quarantine'::regnamespace order by 1"
        ).fetchall()
        assert [name for name, _ in indexes] == sorted(f"quarantine.{f.table}_dates" for f in contract.FILES)
        for name, table in indexes:
            owner.execute(f"drop index {name}")
            owner.execute(
                f"create index {name.split('.')[1]} on {table} using brin (_business_date)"
                " with (pages_per_range = 1)"
            )
        with (
            psycopg.connect(loader, autocommit=True) as conn,
            quarantine.quarantined(conn, folders),
        ):
            pages = owner.execute("select pg_relation_size('quarantine.od_balances') / 8192").fetchone()
            assert pages is not None and pages[0] > 2
            left = owner.execute(
                "select brin_summarize_new_values(%s::regclass)", ("quarantine.od_balances_dates",)
            ).fetchone()
            assert left == (0,)
            owner.execute("set enable_seqscan = off")  # a few rows: the planner would rather scan them all
            plan = owner.execute(
                "explain select * from quarantine.od_balances where _business_date = %s", (D2,)
            ).fetchall()
            assert any("od_balances_dates" in line for (line,) in plan), plan
            # the function summarizes the quarantine's tables alone: raw's are VACUUM's (and have no BRIN)
            raw = conn.execute("select quarantine.summarize_staged('raw.od_balances'::regclass)").fetchone()
            assert raw == (0,)
        staged = owner.execute("select count(*) from quarantine.od_balances").fetchone()
        assert staged == (0,)


def test_a_snapshot_row_unchanged_since_the_previous_staged_date_is_not_checked_again(fresh_db, tmp_path):
    landing, od_accounts = tmp_path / "landing", contract.FILES_BY_NAME["od_accounts.csv"]
    folders = [
        write_delivery(landing, D1),
        write_delivery(
            landing, D2, mutate=lambda rows: rows["od_accounts.csv"][1].update(limit_amount="999")
        ),
    ]
    with (
        psycopg.connect(fresh_db, autocommit=True) as conn,
        quarantine.quarantined(conn, folders) as staged,
    ):
        validate.write_checked(conn, [od_accounts])
        checked = conn.execute(
            "select _business_date, _row_number from quarantine.checked_od_accounts order by 1, 2"
        ).fetchall()
    d1_rows = staged[0].rows["od_accounts.csv"]
    assert d1_rows > 1 and staged[1].rows["od_accounts.csv"] == d1_rows
    assert checked == [(D1, n) for n in range(1, d1_rows + 1)] + [(D2, 2)]  # D2: only the changed row


def test_a_referenced_key_missing_one_date_fails_the_rows_of_that_date_alone(fresh_db, tmp_path):
    """A key's staged dates are bits of one row (decision 0063): a customer delivered on D1 and D3 but not D2
    fails its unchanged accounts on D2 alone (vanished overnight), while D1's rows (the first date: probed) and
    D3's (changed on D3: probed) find it."""
    landing = tmp_path / "landing"

    def without_first_customer(rows) -> None:
        rows["customers.csv"].pop(0)

    def its_accounts_changed(rows) -> None:
        for account in rows["od_accounts.csv"]:
            if account["customer_id"] == rows["customers.csv"][0]["customer_id"]:
                account.update(limit_amount="999")

    folders = [
        write_delivery(landing, D1),
        write_delivery(landing, D2, mutate=without_first_customer),
        write_delivery(landing, D3, mutate=its_accounts_changed),
    ]
    with (
        psycopg.connect(fresh_db, autocommit=True) as conn,
        quarantine.quarantined(conn, folders) as staged,
    ):
        customer = conn.execute(
            "select customer_id from quarantine.customers where _business_date = %s and _row_number = 1",
            (D1,),
        ).fetchone()
        accounts = conn.execute(
            "select count(*) from quarantine.od_accounts where _business_date = %s and customer_id = %s",
            (D2, customer[0] if customer else None),
        ).fetchone()
        assert accounts is not None and accounts[0] > 0  # D2's accounts still name the missing customer
        changed = conn.execute(
            "select count(*) from quarantine.od_accounts where _business_date = %s and limit_amount = '999'",
            (D3,),
        ).fetchone()
        assert changed == accounts
        reports = validate.check_staged(conn, fresh_db, staged, ["od_accounts.csv", "customers.csv"])
    foreign_key = "foreign key to customers.csv"
    assert [any(foreign_key in str(p) for p in reports[d].problems) for d in (D1, D2, D3)] == [
        False,
        True,
        False,
    ], {d: [str(p) for p in r.problems] for d, r in reports.items()}


def test_a_backfill_is_staged_checked_and_promoted_a_batch_of_dates_at_a_time(
    fresh_db, tmp_path, archive, monkeypatch
):
    """The quarantine holds at most DOOR_BATCH_DATES dates; across batches dates load as in one (a snapshot's
    first date of a batch merged whole), and a refused date in a later batch still stops the ones behind it."""
    monkeypatch.setattr(pipeline, "DOOR_BATCH_DATES", 2)
    staged_per_batch: list[int] = []
    stage = quarantine.stage

    def counted_stage(*args, **kwargs):
        staged = stage(*args, **kwargs)
        staged_per_batch.append(len(staged))
        return staged

    monkeypatch.setattr(quarantine, "stage", counted_stage)
    days = [D1 + timedelta(days=n) for n in range(5)]
    landing = tmp_path / "landing"
    for day in days:
        changed_limit = day == days[2]  # a snapshot change on the first date of the second batch
        write_delivery(
            landing,
            day,
            mutate=(lambda rows: rows["od_accounts.csv"][0].update(limit_amount="777"))
            if changed_limit
            else None,
        )
    write_delivery(  # the fourth date, in the second batch, is invalid
        landing, days[3], mutate=lambda rows: rows["od_balances.csv"][0].update(principal_outstanding="-1")
    )
    report = pipeline.ingest(fresh_db, str(landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "loaded", "loaded", "rejected", "waiting"]
    assert staged_per_batch == [2, 2]  # the fifth date was never staged
    assert set(_counts(fresh_db, "od_balances")) == set(days[:3])
    with psycopg.connect(fresh_db) as conn:
        accounts = history.by_business_date(contract.FILES_BY_NAME["od_accounts.csv"])
        for day in days[:3]:
            manifest = json.loads((landing / day.isoformat() / contract.MANIFEST_NAME).read_text())
            (rows,) = conn.execute(
                f"select count(*) from {accounts} r where _business_date = %s",  # noqa: S608
                (day,),
            ).fetchone()
            assert rows == manifest["files"]["od_accounts.csv"]["rows"]
        first_account = (
            (landing / days[2].isoformat() / "od_accounts.csv").read_text().splitlines()[1].split(",")[0]
        )
        limits = dict(
            conn.execute(
                f"select _business_date, limit_amount from {accounts} r where od_account_id = %s",  # noqa: S608
                (first_account,),
            ).fetchall()
        )
    assert limits[days[2]] == Decimal("777") != limits[days[1]]  # the batch's first date merged whole


def _analyzed(conn: psycopg.Connection) -> tuple[int, int]:
    """(times analyzed, rows modified since) of raw.od_balances, as the statistics system has them now."""
    row = conn.execute(
        "select analyze_count, n_mod_since_analyze from pg_stat_user_tables"
        " where relid = 'raw.od_balances'::regclass"
    ).fetchone()
    assert row is not None
    return row


def _expected_rows(conn: psycopg.Connection, business_date: date) -> float:
    """The planner's estimate of raw.od_balances' rows of one business date."""
    (plan,) = conn.execute(
        "explain (format json) select * from raw.od_balances where _business_date = %s", (business_date,)
    ).fetchone()
    return float(plan[0]["Plan"]["Plan Rows"])


def _counted(conn: psycopg.Connection) -> None:
    """Report this session's writes to the statistics system now (a session reports them within seconds)."""
    conn.execute("select pg_stat_force_next_flush()")


def test_raw_statistics_after_loads_know_the_new_date_and_are_taken_whole_past_a_tenth(
    fresh_db, tmp_path, archive
):
    landing = tmp_path / "landing"
    write_delivery(landing, D1)
    assert pipeline.ingest(fresh_db, str(landing), echo=False).ok
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert _analyzed(conn)[0] >= 1  # its first rows: never analyzed before
        conn.execute("alter table raw.od_balances set (autovacuum_enabled = false)")  # counted here only
        conn.execute(
            "insert into raw.od_balances select b.* from raw.od_balances as b, generate_series(1, 2000)"
        )
        _counted(conn)
        conn.execute("analyze raw.od_balances")
        analyzed, _ = _analyzed(conn)

        # a new date, a twentieth of the table: its date columns analyzed from a small sample (the planner
        # expects about its rows, not none); the table's other statistics stand, its modified rows still counted
        conn.execute("create temp table next_date as select * from raw.od_balances limit 200")
        conn.execute("update next_date set _business_date = %s", (D2,))
        conn.execute("insert into raw.od_balances select * from next_date")
        _counted(conn)
        assert _expected_rows(conn, D2) < 20  # the statistics before: D1 only
        load.analyze_raw(conn)
        assert _analyzed(conn)[0] == analyzed + 1 and _analyzed(conn)[1] > 0  # not whole
        assert 200 / 5 < _expected_rows(conn, D2) < 200 * 5  # a random sample of 300 rows: about 14 of D2

        conn.execute("insert into raw.od_balances select * from raw.od_balances")  # twice the rows: whole
        _counted(conn)
        load.analyze_raw(conn)
        assert _analyzed(conn) == (analyzed + 2, 0)


def _histories(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the ordered rows of every snapshot history, in raw and pii."""
    tables = [
        f"{schema}.{f.table}"
        for f in contract.FILES
        if history.stored_as_history(f)
        for schema in ("raw", "pii")
    ]
    with psycopg.connect(url) as conn:
        found = {}
        for table in tables:
            if conn.execute("select to_regclass(%s)", (table,)).fetchone() != (None,):
                found[table] = conn.execute(
                    f"select count(*), md5(coalesce(string_agg(r::text, E'\\n' order by r::text), ''))"  # noqa: S608
                    f" from {table} r"
                ).fetchone()
        return found


_RECEIVED_LINES = pipeline._lines  # a received date's lines compared (the tests load without them too)
Change = Callable[
    [list[str], list[str]], list[str]
]  # (header's names, data lines) -> the data lines delivered


def _edit(landing: Path, day: date, name: str, change: Change) -> None:
    path = landing / day.isoformat() / name
    header, *rows = path.read_bytes().decode().removesuffix("\n").split("\n")  # a quoted CR kept in its line
    path.write_bytes(("\n".join([header, *change(header.split(","), rows)]) + "\n").encode())
    write_manifest(path.parent, day)


def _loaded_both_ways(
    server_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[list[tuple[set[str], int, int]]], list[dict[str, tuple[int, str]]]]:
    """``landing`` loaded with its snapshots' lines compared when received, then without (the check sorts every
    staged row): per date, as the check found them, the files staged by their changed lines and the loans' rows
    staged that date and delivered; and the histories loaded."""
    loans: list[list[tuple[set[str], int, int]]] = []
    fingerprints = []
    check_staged = validate.check_staged

    def recorded(conn, checker_url, staged, *args, **kwargs):
        for day in staged:
            found = conn.execute(
                "select count(*) from quarantine.loans where _business_date = %s", (day.business_date,)
            ).fetchone()
            loans[-1].append((set(day.by_changes), found[0], day.rows["loans.csv"]))
        return check_staged(conn, checker_url, staged, *args, **kwargs)

    monkeypatch.setattr(validate, "check_staged", recorded)
    for compare in (True, False):
        monkeypatch.setattr(pipeline, "_lines", _RECEIVED_LINES if compare else lambda item: {})
        loans.append([])
        with throwaway_database(server_url) as url:
            report = pipeline.ingest(url, str(landing), echo=False)
            assert [o.status for o in report.outcomes] == ["loaded"] * len(report.outcomes), report.outcomes
            fingerprints.append(_histories(url))
    return loans, fingerprints


def test_snapshot_lines_compared_when_received_load_what_the_sort_loads(server_url, tmp_path, monkeypatch):
    """The door finds a snapshot's unchanged rows from its lines compared by the receiving helper (decision 0069)
    instead of sorting its staged rows: over simulated dates with a line quoted otherwise, a key gone and back, and
    a customer gone under an unchanged account (that date refused), both ways load the same histories and report
    the same outcomes."""
    from odwh import simulate

    monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(tmp_path / "archive"))
    landing = tmp_path / "landing"
    simulate.simulate(landing, D1, D1 + timedelta(days=5), accounts=40, seed=3, progress=False)

    def edit(day: date, name: str, change: Change) -> None:
        _edit(landing, day, name, change)

    def quote_first_key(header: list[str], rows: list[str]) -> list[str]:
        fields = rows[0].split(",")
        fields[header.index("customer_id")] = f'"{fields[header.index("customer_id")]}"'
        return [",".join(fields), *rows[1:]]

    day2, day3, day5 = (D1 + timedelta(days=n) for n in (1, 2, 4))
    edit(day2, "customers.csv", quote_first_key)
    edit(day3, "loans.csv", lambda header, rows: rows[1:])  # the first loan gone, back the next day
    header, first = (landing / day5.isoformat() / "od_accounts.csv").read_text().splitlines()[:2]
    customer = first.split(",")[header.split(",").index("customer_id")]
    edit(
        day5,
        "customers.csv",
        lambda h, rows: [r for r in rows if r.split(",")[h.index("customer_id")] != customer],
    )

    outcomes, fingerprints, compared_files = [], [], []
    write_line_changes = validate._write_line_changes

    def recorded(*args):
        compared_files.append(write_line_changes(*args))
        return compared_files[-1]

    monkeypatch.setattr(validate, "_write_line_changes", recorded)
    for compare in (True, False):
        monkeypatch.setattr(pipeline, "_lines", _RECEIVED_LINES if compare else lambda item: {})
        with throwaway_database(server_url) as url:
            report = pipeline.ingest(url, str(landing), echo=False)
            outcomes.append([(o.business_date, o.status, o.detail) for o in report.outcomes])
            fingerprints.append(_histories(url))
    assert compared_files == [{"customers.csv", "od_accounts.csv", "loans.csv", "fixed_deposits.csv"}, set()]
    assert outcomes[0] == outcomes[1] and fingerprints[0] == fingerprints[1]
    assert [status for _, status, _ in outcomes[0]] == ["loaded"] * 4 + ["rejected", "waiting"]
    assert "od_accounts.csv" in outcomes[0][4][2]


def test_snapshots_are_staged_by_their_changed_lines(server_url, tmp_path, monkeypatch):
    """The accounts, loans and deposits are staged by their changed lines on a date compared with the day before
    staged with it, with the day before's rows of keys gone: whole on the first date and where a customer vanished overnight; whole again once a later date is not compared (the
    loans' header reordered). An account gone for a day (its balances too) and back: the balances' foreign key
    finds it on the other dates from the accounts' changes. Both ways load the same histories as the sort of
    every staged row (decision 0069)."""
    from odwh import simulate

    monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(tmp_path / "archive"))
    days = [D1 + timedelta(days=n) for n in range(6)]
    landing = tmp_path / "landing"
    simulate.simulate(landing, days[0], days[-1], accounts=40, seed=5, progress=False)
    first_loans = [
        line.split(",")[0] for line in (landing / D1.isoformat() / "loans.csv").read_text().splitlines()[1:4]
    ]

    def without(loan: str) -> Change:
        return lambda header, rows: [r for r in rows if r.split(",")[header.index("loan_id")] != loan]

    for day, loan in zip(days[1:4], first_loans, strict=True):  # one gone each date, back the next
        _edit(landing, day, "loans.csv", without(loan))
    transacting = (landing / days[2].isoformat() / "od_transactions.csv").read_text()
    account = next(
        line.split(",")[0]
        for line in (landing / days[2].isoformat() / "od_accounts.csv").read_text().splitlines()[1:]
        if line.split(",")[0] not in transacting
    )
    for name in ("od_accounts.csv", "od_balances.csv"):  # gone on the third date, back the next
        _edit(landing, days[2], name, lambda header, rows: [r for r in rows if account not in r.split(",")])
    for day in days[:3]:  # a customer of nothing, gone on the fourth date
        _edit(
            landing,
            day,
            "customers.csv",
            lambda header, rows: [*rows, "CX999" + rows[0][rows[0].index(",") :]],
        )
    four = tmp_path / "four"
    for day in days[:4]:
        shutil.copytree(landing / day.isoformat(), four / day.isoformat())

    staged, fingerprints = _loaded_both_ways(server_url, four, monkeypatch)
    assert fingerprints[0] == fingerprints[1]
    # the first date whole, so the fourth but for the customers (one vanished); the second and third by their
    # changes, and the rows of the keys gone the next date
    everything = {"customers.csv", "od_accounts.csv", "loans.csv", "fixed_deposits.csv"}
    assert [by_changes for by_changes, _, _ in staged[0]] == [
        set(),
        everything,
        everything,
        {"customers.csv"},
    ]
    assert all(
        (loans < delivered) == ("loans.csv" in by_changes) for by_changes, loans, delivered in staged[0]
    )
    assert all(not by_changes and loans == delivered for by_changes, loans, delivered in staged[1])

    path = landing / days[4].isoformat() / "loans.csv"  # the fifth date's columns in another order
    lines = path.read_bytes().decode().removesuffix("\n").split("\n")
    rotated = [",".join([*line.split(",")[1:], line.split(",")[0]]) for line in lines]
    path.write_bytes(("\n".join(rotated) + "\n").encode())
    write_manifest(path.parent, days[4])
    staged, fingerprints = _loaded_both_ways(server_url, landing, monkeypatch)
    assert fingerprints[0] == fingerprints[1]
    # the loans whole on every date; the others still by their changes from the second date to the third and
    # from the fifth, and the customers on the fourth
    but_loans = everything - {"loans.csv"}
    assert [by_changes for by_changes, _, _ in staged[0]] == [
        set(),
        but_loans,
        but_loans,
        {"customers.csv"},
    ] + [but_loans] * 2
    assert all(loans == delivered for _, loans, delivered in staged[0])


def test_keys_found_from_changes_are_the_keys_of_every_staged_row(server_url, tmp_path):
    """The referenced keys' dates of a snapshot staged by its changed lines (validate._keys_from_changes) equal
    those of every row staged whole: an account gone a day and back, another gone for the last two dates, a third
    on the last date; the customers staged whole the date an officer vanished, one of them new that date."""
    from odwh import simulate
    from odwh.snapshot_lines import SnapshotLines

    days = [D1 + timedelta(days=n) for n in range(5)]
    landing = tmp_path / "landing"
    simulate.simulate(landing, days[0], days[-1], accounts=40, seed=9, progress=False)
    accounts = (landing / D1.isoformat() / "od_accounts.csv").read_text().splitlines()[1:4]
    gone = [line.split(",")[0] for line in accounts]
    for day, account in [(days[1], gone[0]), (days[3], gone[1]), (days[4], gone[1]), (days[4], gone[2])]:
        _edit(
            landing, day, "od_accounts.csv", lambda header, rows, a=account: [r for r in rows if a not in r]
        )
    for day in days[:2]:  # an officer of nobody, gone on the third date: the customers staged whole then
        _edit(
            landing,
            day,
            "officers.csv",
            lambda header, rows: [*rows, "OX999" + rows[0][rows[0].index(",") :]],
        )
    for day in days[2:]:  # a customer new that date, staged whole
        _edit(
            landing,
            day,
            "customers.csv",
            lambda header, rows: [*rows, "CX888" + rows[0][rows[0].index(",") :]],
        )
    folders = [landing / day.isoformat() for day in days]
    snapshots: dict[str, SnapshotLines] = {}
    lines = {
        day: receiving.compare_lines(receiving.Received(folder, []), snapshots)
        for day, folder in zip(days, folders, strict=True)
    }
    keys = [quarantine.keys_table(key) for key in quarantine.REFERENCED_KEYS]
    found: list[dict[str, list[tuple[object, ...]]]] = []
    by_changes: list[list[set[str]]] = []
    for staged_lines in (lines.get, None):
        with (
            throwaway_database(server_url) as url,
            psycopg.connect(warehouse.stage_url(warehouse.LOADER, url), autocommit=True) as conn,
            quarantine.quarantined(conn, folders, lines=staged_lines) as staged,
        ):
            validate.write_checked(conn, contract.FILES, staged, lines)
            found.append(
                {
                    table: conn.execute(f"select * from quarantine.{table} order by 1").fetchall()  # noqa: S608
                    for table in keys
                }
            )
            by_changes.append([set(d.by_changes) for d in staged])
    but_customers = {"od_accounts.csv", "loans.csv", "fixed_deposits.csv"}
    everything = {"customers.csv", *but_customers}
    assert by_changes == [[set(), everything, but_customers, everything, everything], [set()] * 5]
    assert found[0] == found[1]
    assert any(
        row[0] == gone[0] and "0" in str(row[1]) for row in found[0]["keys_od_accounts__od_account_id"]
    )
