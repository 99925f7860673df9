"""The month-end quality gate on a real PostgreSQL: a scripted month passes, each kind of bad mart data blocks it.

The marts are created here with the published columns the gate checks (the dbt models are built by other
tests); raw, meta and the NBC grading seed hold what the gate reconciles against.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from odwh import gate, grades
from odwh.suites import month_end_gate
from support import REPO
from support.marts import create_mart_table

MONTH_END = date(2024, 3, 31)
FEBRUARY_END = date(2024, 2, 29)

# Written here, not built from the contracts (support.marts.create_mart_table), on purpose: without the marts'
# keys and checks, the tests can plant the faults (a duplicate row, a negative amount) that the gate must catch
# or must not see.
MARTS_DDL = """
create schema if not exists marts;
create table marts.fct_od_month_end (
    od_account_id text not null, month_end date not null, customer_id text, branch_code text, officer_id text,
    currency text, limit_amount numeric, principal_outstanding numeric, interest_due numeric,
    unutilized_fee_due numeric, excess_fee_due numeric, core_interest_charged numeric,
    reconciliation_break boolean, days_past_due integer, nbc_grade text, provision_rate numeric,
    provision_amount numeric, principal_outstanding_usd numeric, provision_amount_usd numeric,
    conversion_candidate boolean, stagnant_amount_60d numeric, policy_breaches text[]
);
create table marts.rpt_review_list (
    month_end date not null, od_account_id text not null, reason text not null, officer_id text,
    manager_id text, senior_manager_id text, branch_code text, detail text, amount_usd numeric
);
"""

# od_account_id: currency, limit, status, start, maturity, closed_on, principal (None: not in od_balances)
ACCOUNTS: dict[str, tuple[str, str, str, str, str, str | None, str | None]] = {
    "A1": ("USD", "2000.00", "ACTIVE", "2023-06-01", "2024-05-31", None, "1000.00"),
    "A2": ("KHR", "8000000", "ACTIVE", "2023-09-01", "2024-08-31", None, "4100000"),
    "A3": ("THB", "50000.00", "ACTIVE", "2024-01-10", "2025-01-09", None, "0.00"),
    "A4": (
        "USD",
        "1000.00",
        "CLOSED",
        "2023-01-01",
        "2023-12-31",
        "2024-03-10",
        "0.00",
    ),  # closed: not required
    "A5": (
        "USD",
        "3000.00",
        "ACTIVE",
        "2024-04-15",
        "2025-04-14",
        None,
        None,
    ),  # not started by the month end
    "A6": ("USD", "800.00", "ACTIVE", "2023-03-16", "2024-03-15", None, "500.00"),  # matured with a balance
}
# od_account_id: nbc_grade, provision_rate, provision_amount, principal_usd, provision_usd, interest_due
GRADES: dict[str, tuple[str, str, str, str, str, str]] = {
    "A1": ("Normal", "0.01", "10.0000", "1000.00", "10.00", "15.00"),
    "A2": ("Substandard", "0.20", "820000.00", "1000.00", "200.00", "61500"),
    "A3": ("Normal", "0.01", "0.0000", "0.00", "0.00", "0.00"),
    "A4": ("Normal", "0.01", "0.0000", "0.00", "0.00", "0.00"),
    "A6": ("Special Mention", "0.03", "15.0000", "500.00", "15.00", "4.00"),
}
CONTROL_TOTAL = sum(Decimal(a[6]) for a in ACCOUNTS.values() if a[6] is not None)  # 4101500.00
BALANCE_ROWS = sum(1 for a in ACCOUNTS.values() if a[6] is not None)


SEED_COLUMNS = {
    "nbc_grading_rules": "term_class text, grade text, grade_order integer, min_dpd integer, max_dpd integer,"
    " provision_rate numeric, is_non_performing boolean, effective_from date, source text",
    "policy_parameters": "parameter_name text, value numeric, value_text text, unit text, effective_from date,"
    " source text, description text",
}


# The policy versions the gate reads, as dbt builds them from the seeds when no change is recorded (the versions
# with recorded changes are unit-tested in dbt and end to end in test_policy_changes.py).
VERSION_VIEWS = """
create schema if not exists intermediate;
create view intermediate.int_policy__parameter_versions as
select parameter_name, value, effective_from,
       coalesce(lead(effective_from) over (partition by parameter_name order by effective_from), 'infinity')
           as effective_to
from policy.policy_parameters;
create view intermediate.int_policy__nbc_grading_rule_versions as
select term_class, grade, provision_rate, effective_from,
       coalesce(lead(effective_from) over (partition by term_class, grade order by effective_from), 'infinity')
           as effective_to
from policy.nbc_grading_rules;
"""


def _seed_policy(conn: psycopg.Connection) -> None:
    """The policy seeds as `dbt seed` makes them, and their versions (grading rules, rounding units)."""
    conn.execute("create schema if not exists policy")
    for seed, columns in SEED_COLUMNS.items():
        conn.execute(f"create table policy.{seed} ({columns})")
        with (
            (REPO / "dbt_project" / "seeds" / f"{seed}.csv").open() as fh,
            conn.cursor().copy(f"copy policy.{seed} from stdin with (format csv, header true)") as copy,
        ):
            copy.write(fh.read())
    conn.execute(VERSION_VIEWS)


def _load(
    conn: psycopg.Connection, business_date: date, control_total: Decimal, rows: int, current: bool
) -> int:
    load_id = conn.execute(
        "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256, rows_loaded,"
        " superseded_at) values (%s, 'landing', 'archive', 'sha', %s, %s) returning load_id",
        (business_date, rows, None if current else "2024-04-01 08:00+07"),
    ).fetchone()[0]
    conn.execute(
        "insert into meta.load_files (load_id, file_name, sha256, rows, control_total)"
        " values (%s, 'od_balances.csv', 'sha', %s, %s), (%s, 'fx_rates.csv', 'sha', 3, null)",
        (load_id, rows, control_total, load_id),
    )
    return load_id


def _write_good_month(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(MARTS_DDL)
        _seed_policy(conn)
        _load(conn, MONTH_END, Decimal("999.00"), 3, current=False)  # superseded delivery: must be ignored
        load_id = _load(conn, MONTH_END, CONTROL_TOTAL, BALANCE_ROWS, current=True)
        for row, (acct, (ccy, limit, status, start, maturity, closed, principal)) in enumerate(
            ACCOUNTS.items(), 1
        ):
            conn.execute(
                "insert into raw.od_accounts (od_account_id, customer_id, currency, limit_amount, start_date,"
                " maturity_date, status, closed_on, valid_from, _load_id, _row_number)"  # the month end's version
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (acct, f"C{acct}", ccy, limit, start, maturity, status, closed, MONTH_END, load_id, row),
            )
            if principal is not None:
                conn.execute(
                    "insert into raw.od_balances (od_account_id, business_date, principal_outstanding,"
                    " interest_receivable, fees_receivable, _business_date, _load_id, _row_number)"
                    " values (%s, %s, %s, 0, 0, %s, %s, %s)",
                    (acct, MONTH_END, principal, MONTH_END, load_id, row),
                )
        for acct, (grade, rate, provision, principal_usd, provision_usd, interest) in GRADES.items():
            ccy, limit, *_, principal = ACCOUNTS[acct]
            conn.execute(
                "insert into marts.fct_od_month_end (od_account_id, month_end, customer_id, branch_code, officer_id,"
                " currency, limit_amount, principal_outstanding, interest_due, unutilized_fee_due, excess_fee_due,"
                " days_past_due, nbc_grade, provision_rate, provision_amount, principal_outstanding_usd,"
                " provision_amount_usd, stagnant_amount_60d, policy_breaches)"
                " values (%s, %s, %s, 'B01', 'CM1', %s, %s, %s, %s, 0, 0, 0, %s, %s, %s, %s, %s, 0, '{}')",
                (
                    acct,
                    MONTH_END,
                    f"C{acct}",
                    ccy,
                    limit,
                    principal,
                    interest,
                    grade,
                    rate,
                    provision,
                    principal_usd,
                    provision_usd,
                ),
            )
        # February: a duplicate and a negative balance the March gate must not see
        conn.execute(
            "insert into marts.fct_od_month_end (od_account_id, month_end, principal_outstanding, nbc_grade)"
            " values ('A1', %s, -1, 'Normal'), ('A1', %s, 5, 'Normal')",
            (FEBRUARY_END, FEBRUARY_END),
        )
        for ccy, khr in (("KHR", "1"), ("USD", "4100"), ("THB", "113")):
            conn.execute(
                "insert into raw.fx_rates (business_date, currency, khr_per_unit, _business_date, _load_id,"
                " _row_number) values (%s, %s, %s, %s, %s, 1)",
                (MONTH_END, ccy, khr, MONTH_END, load_id),
            )
        for officer, role, manager in (("CM1", "CM", "AM1"), ("AM1", "AM", "SM1"), ("SM1", "SM", None)):
            conn.execute(
                "insert into raw.officers (officer_id, officer_name, role, branch_code, manager_id, _business_date,"
                " _load_id, _row_number) values (%s, %s, %s, 'B01', %s, %s, %s, 1)",
                (officer, f"Officer {officer}", role, manager, MONTH_END, load_id),
            )
        conn.execute(
            "insert into marts.rpt_review_list (month_end, od_account_id, reason, officer_id, manager_id,"
            " senior_manager_id, branch_code, detail, amount_usd) values"
            " (%s, 'A2', 'GRADE', 'CM1', 'AM1', 'SM1', 'B01', 'Substandard', 1000.00),"
            " (%s, 'A6', 'MATURITY', 'CM1', 'AM1', 'SM1', 'B01', 'matured 2024-03-15 with balance', 500.00)",
            (MONTH_END, MONTH_END),
        )
        _write_social_marts(conn)
        conn.commit()


def _write_social_marts(conn: psycopg.Connection) -> None:
    """The social marts of a month without applications or complaints (tables from their contracts)."""
    for mart in ("fct_es_screening", "fct_client_protection_month_end", "fct_complaints_month_end"):
        create_mart_table(conn, mart)
    conn.execute(
        "insert into marts.fct_client_protection_month_end (month_end, applications_decided) values (%s, 0)",
        (MONTH_END,),
    )
    conn.execute(
        "insert into marts.fct_complaints_month_end (month_end, received, resolved, open_at_month_end,"
        " open_over_limit) values (%s, 0, 0, 0, 0)",
        (MONTH_END,),
    )


@pytest.fixture
def good_month(fresh_db: str) -> str:
    _write_good_month(fresh_db)
    return fresh_db


def _execute(url: str, sql: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(sql)
        conn.commit()


def _failure(result: gate.GateResult, expectation: str) -> gate.GateFailure:
    found = [f for f in result.failures if f.expectation == expectation]
    assert found, f"{expectation} did not fail; failures: {[f.describe() for f in result.failures]}"
    return found[0]


def _has_row(failure: gate.GateFailure, **expected: Any) -> bool:
    return any(all(str(row.get(k)) == str(v) for k, v in expected.items()) for row in failure.rows)


def test_a_good_month_passes_and_publishes_data_docs(good_month: str, tmp_path: Path) -> None:
    docs = tmp_path / "data-quality"
    result = gate.run_gate(good_month, MONTH_END, docs)
    assert result.passed, [f.describe() for f in result.failures]
    assert result.failures == [] and result.skipped == []
    stats = result.statistics
    assert stats["suites"] == len(month_end_gate.SUITES)
    assert stats["evaluated"] == stats["successful"] > 20
    assert stats["seconds"] < 60, "the gate's GX overhead should stay in seconds"
    summary = result.to_json()
    assert summary["passed"] is True and summary["statistics"] == stats
    assert json.loads((docs / "gate-result.json").read_text()) == summary
    index = (docs / "index.html").read_text()
    for spec in month_end_gate.SUITES:
        assert spec.suite_name in index
    validations = list((docs / "validations").rglob("*.html"))
    assert len(validations) == len(month_end_gate.SUITES)
    site = "\n".join(p.read_text() for p in docs.rglob("*.html"))
    password = unquote(urlsplit(good_month).password or "")
    assert password and password not in site, "the warehouse password must not reach the published report"
    assert "dataContextId" not in site and "amazonaws.com" not in site
    assert "Month-end quality gate: PASSED" in index and "gate-summary.html" in index
    page = (docs / "gate-summary.html").read_text()
    assert "Month-end quality gate 2024-03-31" in page and "PASSED" in page


def test_a_failed_gate_summary_shows_the_failing_rows(good_month: str, tmp_path: Path) -> None:
    _execute(
        good_month, "update marts.fct_od_month_end set provision_amount = 10.01 where od_account_id = 'A1'"
    )
    result = gate.run_gate(good_month, MONTH_END, tmp_path / "dq")
    page = (tmp_path / "dq" / "gate-summary.html").read_text()
    assert "FAILED" in page and "fct_od_month_end.provision_amount" in page
    assert "<td>A1</td>" in page and "<td>10.01</td>" in page and "<td>10.00</td>" in page
    assert [f.expectation for f in result.failures] == ["fct_od_month_end.provision_amount"]


def test_the_review_list_is_optional_until_required(good_month: str, tmp_path: Path) -> None:
    _execute(good_month, "drop table marts.rpt_review_list")
    result = gate.run_gate(good_month, MONTH_END, tmp_path / "dq")
    assert result.passed and result.skipped == [
        "month_end_gate.rpt_review_list: marts.rpt_review_list does not exist yet, its checks were skipped"
    ]
    required = gate.run_gate(good_month, MONTH_END, tmp_path / "dq2", require_review_list=True)
    assert not required.passed
    assert "does not exist" in _failure(required, "rpt_review_list.table_present").message


def test_a_month_without_marts_fails_clearly(fresh_db: str, tmp_path: Path) -> None:
    result = gate.run_gate(fresh_db, MONTH_END, tmp_path / "dq")
    assert not result.passed
    failure = _failure(result, "fct_od_month_end.table_present")
    assert failure.table == "marts.fct_od_month_end" and "build the month-end models" in failure.message
    assert _failure(result, "od_accounts_snapshot.snapshot_loaded").rule == month_end_gate.RULE_GRADED
    assert (tmp_path / "dq" / "gate-result.json").exists()


# (test id, SQL that breaks the good month, failing expectation, a row its sample must hold): a table of
# cases, one per break, alike in shape by design (data; the one test below runs them all)
BREAKS = [
    (
        "duplicate seen from the snapshot",
        "insert into marts.fct_od_month_end select * from marts.fct_od_month_end where od_account_id = 'A1'"
        " and month_end = '2024-03-31'",
        "od_accounts_snapshot.active_graded_once",
        {"od_account_id": "A1", "month_end_rows": 2},
    ),
    (
        "missing account",
        "delete from marts.fct_od_month_end where od_account_id = 'A2'",
        "od_accounts_snapshot.active_graded_once",
        {"od_account_id": "A2", "month_end_rows": 0},
    ),
    (
        "matured account not graded",
        "update marts.fct_od_month_end set nbc_grade = null where od_account_id = 'A6'",
        "od_accounts_snapshot.active_graded_once",
        {"od_account_id": "A6", "graded_rows": 0},
    ),
    (
        "grade outside the five",
        "update marts.fct_od_month_end set nbc_grade = 'Watch' where od_account_id = 'A1'",
        "fct_od_month_end.grade_valid",
        {"od_account_id": "A1", "nbc_grade": "Watch"},
    ),
    (
        "provision off by 0.01",
        "update marts.fct_od_month_end set provision_amount = 10.01 where od_account_id = 'A1'",
        "fct_od_month_end.provision_amount",
        {"od_account_id": "A1", "expected_provision_amount": "10.00"},
    ),
    (
        "provision rate not the seed's",
        "update marts.fct_od_month_end set provision_rate = 0.02, provision_amount = 20.0000"
        " where od_account_id = 'A1' and month_end = '2024-03-31'",
        "fct_od_month_end.provision_rate",
        {"od_account_id": "A1", "policy_provision_rate": "0.01"},
    ),
    (
        "control-total mismatch with the manifest",
        "update meta.load_files set control_total = control_total + 0.01 where file_name = 'od_balances.csv'",
        "control_totals.control_total",
        {"file_name": "od_balances.csv", "mart_principal_total": "4101500.00"},
    ),
    (
        "row count differs from the manifest",
        "update meta.load_files set rows = rows + 1 where file_name = 'od_balances.csv'",
        "control_totals.control_total",
        {"manifest_rows": BALANCE_ROWS + 1, "mart_rows": BALANCE_ROWS},
    ),
    (
        "mart principal differs from the delivery",
        "update marts.fct_od_month_end set principal_outstanding = 5, provision_amount = 0.05"
        " where od_account_id = 'A3'",
        "control_totals.principal_matches_delivery",
        {"od_account_id": "A3", "delivered_principal": "0.00"},
    ),
    (
        "no current load of the month end",
        "update meta.loads set superseded_at = now() where superseded_at is null",
        "control_totals.od_balances_loaded",
        {"observed_value": 0},
    ),
    (
        "negative balance",
        "update marts.fct_od_month_end set interest_due = -1 where od_account_id = 'A3'",
        "fct_od_month_end.non_negative.interest_due",
        {"od_account_id": "A3", "interest_due": "-1"},
    ),
    (
        "missing FX currency",
        "delete from raw.fx_rates where currency = 'THB'",
        "fx_rates.fx_currencies",
        {"missing_currency": "THB"},
    ),
    (
        "amount not converted to USD",
        "update marts.fct_od_month_end set provision_amount_usd = null where od_account_id = 'A2'",
        "fct_od_month_end.usd_present.provision_amount_usd",
        {"od_account_id": "A2"},
    ),
    (
        "review row without manager",
        "update marts.rpt_review_list set manager_id = null where od_account_id = 'A2'",
        "rpt_review_list.routed_manager",
        {"od_account_id": "A2"},
    ),
    (
        "review row routed to an unknown officer",
        "update marts.rpt_review_list set officer_id = 'CM9' where od_account_id = 'A6'",
        "rpt_review_list.routed_known",
        {"od_account_id": "A6", "officer_id": "CM9"},
    ),
]


# the seven kinds of bad data run in `make unit`; the further cases (each a ~3 s GX run) only in `make test`
CORE_BREAKS = {
    "duplicate seen from the snapshot",
    "missing account",
    "provision off by 0.01",
    "control-total mismatch with the manifest",
    "negative balance",
    "missing FX currency",
    "review row without manager",
}


@pytest.mark.parametrize(
    ("breaking_sql", "expectation", "row"),
    [pytest.param(*b[1:], id=b[0], marks=() if b[0] in CORE_BREAKS else pytest.mark.slow) for b in BREAKS],
)
def test_bad_mart_data_blocks_the_gate_naming_expectation_and_rows(
    good_month: str, tmp_path: Path, breaking_sql: str, expectation: str, row: dict[str, Any]
) -> None:
    _execute(good_month, breaking_sql)
    result = gate.run_gate(good_month, MONTH_END, tmp_path / "dq")
    assert not result.passed
    failure = _failure(result, expectation)
    assert _has_row(failure, **row), failure.describe()
    assert failure.rule and failure.table and failure.message
    described = failure.describe()
    assert described.startswith(expectation) and str(next(iter(row.values()))) in described
    saved = json.loads((tmp_path / "dq" / "gate-result.json").read_text())
    assert saved["passed"] is False and expectation in [f["expectation"] for f in saved["failures"]]
    assert result.statistics["unsuccessful"] >= 1


@pytest.mark.slow
def test_failure_samples_are_capped(good_month: str, tmp_path: Path) -> None:
    _execute(
        good_month,
        """
        insert into marts.fct_od_month_end (od_account_id, month_end, principal_outstanding, nbc_grade)
        select 'X' || n, '2024-03-31', -n, 'Normal' from generate_series(1, 50) as n
    """,
    )
    result = gate.run_gate(good_month, MONTH_END, tmp_path / "dq")
    failure = _failure(result, "fct_od_month_end.non_negative.principal_outstanding")
    assert failure.unexpected_count == 50 and len(failure.rows) == gate.MAX_SAMPLE_ROWS
    assert "(+45 more)" in failure.describe()


def test_exported_suites_are_in_sync_with_the_code() -> None:
    family = REPO / "expectations" / "suites" / month_end_gate.FAMILY
    exported = {p.name: p.read_text() for p in family.glob("*.json")}
    built = {f"{spec.name}.json": month_end_gate.suite_json(spec) for spec in month_end_gate.SUITES}
    assert exported == built, (
        "expectations/suites/month_end_gate/ is stale: run `odwh expectations` and commit the JSON"
    )


def test_the_five_grades_are_the_seed_grades() -> None:
    with (REPO / "dbt_project" / "seeds" / "nbc_grading_rules.csv").open() as fh:
        seeded = {row["grade"] for row in csv.DictReader(fh)}
    assert set(grades.NBC_GRADES) == seeded
