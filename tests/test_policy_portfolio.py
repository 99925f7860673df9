"""Limits, eligibility and portfolio (rulebook A and G) end to end: scripted raw rows -> dbt -> marts.

Sixteen OD accounts are loaded for every business date from 2025-10-01 to 2026-01-31 (one load id per date,
as the loader would write them). Each account is scripted to break exactly one rule of section G (OD01 and
OD16 break none); the portfolio figures are computed by hand below from the scripted balances and rates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from odwh import transform, warehouse
from psycopg import sql

FIRST, LAST = date(2025, 10, 1), date(2026, 1, 31)
MONTH_ENDS = (date(2025, 10, 31), date(2025, 11, 30), date(2025, 12, 31), date(2026, 1, 31))
USD_KHR = {LAST: Decimal(4100)}  # riel per USD: 4,000 every day except the last month end
THB_KHR = Decimal(125)
MY_MODELS = (
    "+int_od__policy_checks_month_end +fct_portfolio_month_end +fct_grade_distribution_month_end"
    # the portfolio-quality marts read the positions too: built so that MY_OWN's descendants' tests have them
    " +fct_par_month_end +fct_par_by_segment_month_end +fct_grade_migration_month_end"
)
MY_OWN = "int_fx__rates_daily int_od__policy_checks_month_end int_portfolio__positions_month_end+"

# Each account overrides ACCOUNT_DEFAULTS: customer CU<nn>, type SME unless given (agents partner since
# 2024-01-01 unless given), start_date = approved_on, "principal" = principal outstanding every day,
# "from" = the account's first loaded date.
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "currency": "USD", "limit_amount": Decimal(10_000), "approved_on": date(2025, 6, 1), "start_date": None,
    "maturity_date": date(2026, 5, 31), "collateral_type": "NONE", "collateral_value": None,
    "fd_account_id": None, "purpose": "WORKING_CAPITAL", "restructured": False, "principal": Decimal(500),
    "from": FIRST,
}  # fmt: skip
ACCOUNTS: dict[str, dict[str, Any]] = {
    "OD01": {"principal": Decimal(6000)},
    "OD02": {"type": "AGENT", "limit_amount": Decimal("5000.01"), "principal": Decimal(2000)},
    "OD03": {"type": "AGENT", "agent_since": date(2025, 3, 1), "limit_amount": Decimal(3000),
             "principal": Decimal(1000)},
    "OD04": {"type": "AGENT", "limit_amount": Decimal(3000), "approved_on": date(2026, 1, 10),
             "principal": Decimal(0), "from": date(2026, 1, 10)},
    "OD05": {"type": "AGENT", "limit_amount": Decimal(3000), "principal": Decimal(1500)},
    "OD06": {"limit_amount": Decimal("70000.01"), "collateral_type": "PROPERTY",
             "collateral_value": Decimal(100_000), "principal": Decimal(50_000)},
    "OD07": {"limit_amount": Decimal("100000.01"), "collateral_type": "PROPERTY",
             "collateral_value": Decimal(200_000), "principal": Decimal(80_000)},
    "OD08": {"limit_amount": Decimal("5000.01"), "collateral_type": "FIXED_DEPOSIT", "fd_account_id": "FD08",
             "principal": Decimal(3000)},
    "OD09": {"type": "MSME", "currency": "KHR", "limit_amount": Decimal(400_000_040),
             "approved_on": date(2025, 10, 15), "maturity_date": date(2026, 10, 14),
             "collateral_type": "FIXED_DEPOSIT", "fd_account_id": "FD09",
             "principal": Decimal(205_000_000), "from": date(2025, 10, 15)},
    "OD10": {"limit_amount": Decimal(1000), "collateral_type": "FIXED_DEPOSIT", "fd_account_id": "FD10"},
    "OD11": {"limit_amount": Decimal(1000), "maturity_date": date(2026, 6, 2)},
    "OD12": {"limit_amount": Decimal(1000), "purpose": "REFINANCE"},
    "OD13": {"limit_amount": Decimal(60_000), "principal": Decimal(30_000)},
    "OD14": {"limit_amount": Decimal(1000), "approved_on": date(2025, 11, 10), "from": date(2025, 11, 10)},
    "OD15": {"limit_amount": Decimal(1000), "restructured": True},
    "OD16": {"currency": "KHR", "limit_amount": Decimal(40_000_000), "principal": Decimal(20_500_000)},
}  # fmt: skip
EXPECTED_BREACHES_AT_LAST = {
    "OD01": [], "OD02": ["AGENT_LIMIT_EXCEEDED"], "OD03": ["AGENT_PARTNERSHIP_UNDER_6M"],
    "OD04": ["AGENT_LIQUIDITY_BELOW_MIN"], "OD05": ["AGENT_CASH_WITHDRAWAL"],
    "OD06": ["PROPERTY_LTV_EXCEEDED"],
    # above USD 100,000 the single-loan exposure (USD 100,000 by default) is exceeded as well
    "OD07": ["CROSS_FINANCE_EXPOSURE", "PROPERTY_LIMIT_ABOVE_MAX"], "OD08": ["FD_LTV_EXCEEDED"],
    "OD09": ["FD_LIMIT_ABOVE_MAX"], "OD10": ["FD_MATURITY_BEFORE_OD"], "OD11": ["TERM_ABOVE_12_MONTHS"],
    "OD12": ["REFINANCE_PURPOSE"], "OD13": ["CROSS_FINANCE_EXPOSURE"],
    "OD14": ["PROCESSING_FEE_NOT_COLLECTED"],
    "OD15": ["RESTRUCTURED"], "OD16": [],
}  # fmt: skip
DEPOSITS = {  # fd_account_id -> (customer, currency, principal, maturity_date, frozen)
    "FD08": ("CU08", "USD", Decimal(5000), date(2026, 12, 31), False),
    "FD09": ("CU09", "KHR", Decimal(500_000_000), date(2026, 12, 31), False),
    "FD10": ("CU10", "USD", Decimal(5000), date(2026, 3, 31), False),
}
LOANS = {  # loan_id -> (customer, product, currency, outstanding {from date: amount}, status, source OD)
    "LN13": ("CU13", "SME", "USD", {FIRST: Decimal("40000.01")}, "ACTIVE", None),
    # KHR 8.2 bn (USD 2,050,000 at 4,000) until December, KHR 4.1 bn (USD 1,000,000 at 4,100) in January
    "LN20": ("CU90", "AGRI", "KHR", {FIRST: Decimal(8_200_000_000), date(2026, 1, 1): Decimal(4_100_000_000)},
             "ACTIVE", None),
    "LN21": ("CU16", "SME", "USD", {FIRST: Decimal(50_000)}, "CLOSED", None),
    "LN22": ("CU12", "OD_CONVERTED", "USD", {FIRST: Decimal(5000)}, "ACTIVE", "OD99"),
}  # fmt: skip


def _days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def _amount_on(amounts: dict[date, Decimal], d: date) -> Decimal:
    """The amount in force on ``d`` of a {from date: amount} schedule."""
    return [v for f, v in sorted(amounts.items()) if f <= d][-1]


def _load_id(d: date) -> int:
    return (d - FIRST).days + 1


def _usd_khr(d: date) -> Decimal:
    return USD_KHR.get(d, Decimal(4000))


def _account(od: str) -> dict[str, Any]:
    a = {**ACCOUNT_DEFAULTS, **ACCOUNTS[od]}
    a["customer_id"] = "CU" + od[2:]
    a["start_date"] = a["start_date"] or a["approved_on"]
    a.setdefault("type", "SME")
    a.setdefault("agent_since", date(2024, 1, 1) if a["type"] == "AGENT" else None)
    return a


def _copy(
    conn: psycopg.Connection, table: str, rows: list[dict[str, Any]], load_id: int | None = None
) -> None:
    """COPY scripted rows into raw.<table>, numbering rows per business date like the loader."""
    per_date: dict[date, int] = {}
    columns = [*rows[0].keys(), "_load_id", "_row_number"]
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier("raw", table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            d = row["_business_date"]
            per_date[d] = per_date.get(d, 0) + 1
            copy.write_row([*row.values(), load_id or _load_id(d), per_date[d]])


def _raw_rows(first: date, last: date) -> dict[str, list[dict[str, Any]]]:
    days = list(_days(first, last))
    accounts = {od: _account(od) for od in ACCOUNTS}
    out: dict[str, list[dict[str, Any]]] = {
        "branches": [{"branch_code": "B01", "branch_name": "Main", "_business_date": d} for d in days],
        "fx_rates": [
            {"business_date": d, "currency": c, "khr_per_unit": k, "_business_date": d}
            for d in days for c, k in (("KHR", Decimal(1)), ("USD", _usd_khr(d)), ("THB", THB_KHR))
        ],
        "customers": [
            {"customer_id": a["customer_id"], "customer_type": a["type"], "agent_since": a["agent_since"],
             "branch_code": "B01", "_business_date": d}
            for d in days for a in accounts.values()
        ],
        "od_accounts": [
            {"od_account_id": od, "customer_id": a["customer_id"], "currency": a["currency"],
             "limit_amount": a["limit_amount"], "approved_on": a["approved_on"],
             "start_date": a["start_date"],
             "maturity_date": a["maturity_date"], "monthly_interest_rate": Decimal("0.015"),
             "processing_fee_rate": Decimal("0.01"), "excess_fee_rate_monthly": Decimal("0.01"),
             "unutilized_fee_rate_annual": Decimal("0.01"), "collateral_type": a["collateral_type"],
             "collateral_value": a["collateral_value"], "fd_account_id": a["fd_account_id"],
             "purpose": a["purpose"], "restructured": a["restructured"], "status": "ACTIVE",
             "_business_date": d}
            for d in days for od, a in accounts.items() if d >= a["from"]
        ],
        "od_balances": [
            {"od_account_id": od, "business_date": d, "principal_outstanding": a["principal"],
             "interest_receivable": Decimal(0), "fees_receivable": Decimal(0), "_business_date": d}
            for d in days for od, a in accounts.items() if d >= a["from"]
        ],
        "fixed_deposits": [
            {"fd_account_id": fd, "customer_id": c, "currency": ccy, "principal": p, "maturity_date": m,
             "frozen": frozen, "status": "ACTIVE", "_business_date": d}
            for d in days for fd, (c, ccy, p, m, frozen) in DEPOSITS.items()
        ],
        "loans": [
            {"loan_id": ln, "customer_id": c, "product": product, "currency": ccy, "original_term_months": 24,
             "outstanding_principal": _amount_on(amounts, d), "days_past_due": 0,
             "status": status, "source_od_account_id": source, "_business_date": d}
            for d in days for ln, (c, product, ccy, amounts, status, source) in LOANS.items()
        ],
        "agent_liquidity": [
            {"customer_id": a["customer_id"], "business_date": d,
             "liquidity_usd": Decimal(2000) if od == "OD04" else Decimal(5000), "_business_date": d}
            for d in days for od, a in accounts.items() if a["type"] == "AGENT"
        ],
        "od_transactions": [
            {"txn_id": txn, "od_account_id": od, "business_date": d, "txn_type": t, "direction": "DEBIT",
             "amount": amount, "channel": "SYSTEM", "_business_date": d}
            for txn, od, d, t, amount in (
                ("T1", "OD05", date(2025, 11, 15), "CASH_WITHDRAWAL", Decimal(200)),
                ("T2", "OD04", date(2026, 1, 10), "PROCESSING_FEE", Decimal(30)),
                ("T3", "OD09", date(2025, 10, 15), "PROCESSING_FEE", Decimal(4_000_000)),
            )
            if first <= d <= last
        ],
    }  # fmt: skip
    return {table: rows for table, rows in out.items() if rows}


def load_raw(url: str, first: date, last: date) -> None:
    with psycopg.connect(url) as conn:
        for table, rows in _raw_rows(first, last).items():
            _copy(conn, table, rows)


def redeliver(url: str, day: date, load_id: int, drop_txn: str) -> None:
    """Replace every raw row of ``day`` like a corrected delivery would, without transaction ``drop_txn``."""
    with psycopg.connect(url) as conn:
        for table, rows in _raw_rows(day, day).items():
            delete = sql.SQL("delete from {} where _business_date = %s").format(sql.Identifier("raw", table))
            conn.execute(delete, (day,))
            kept = [r for r in rows if r.get("txn_id") != drop_txn]
            if kept:
                _copy(conn, table, kept, load_id)


@pytest.fixture(scope="module")
def scripted_db(server_url: str) -> Iterator[str]:
    """One migrated database with the scripted history loaded and the models built (shared by this module)."""
    name = f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        warehouse.migrate(url)
        load_raw(url, FIRST, LAST)
        transform.run_dbt(["seed"], url)
        transform.run_dbt(["run", "--select", MY_MODELS], url)
        # the data and unit tests of this engineer's models (the upstream ones have their own test files)
        transform.run_dbt(["test", "--select", MY_OWN], url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _query(url: str, query: str | sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_every_breach_kind_is_found_for_its_scripted_account(scripted_db: str) -> None:
    rows = _query(
        scripted_db,
        "select od_account_id, policy_breaches from intermediate.int_od__policy_checks_month_end"
        " where month_end = %s",
        LAST,
    )
    assert dict(rows) == EXPECTED_BREACHES_AT_LAST


def test_breaches_and_not_evaluable_over_time(scripted_db: str) -> None:
    rows = _query(
        scripted_db,
        "select month_end, policy_breaches, checks_not_evaluable, detail, parameter_version"
        " from intermediate.int_od__policy_checks_month_end where od_account_id = %s order by month_end",
        "OD05",
    )
    # the cash withdrawal of 15 November is a breach from the November month end on, for good
    assert [(r[0], r[1]) for r in rows] == [
        (MONTH_ENDS[0], []),
        *((m, ["AGENT_CASH_WITHDRAWAL"]) for m in MONTH_ENDS[1:]),
    ]
    # approved before the first loaded date: look-back liquidity and processing fee cannot be judged
    assert rows[-1][2] == ["AGENT_LIQUIDITY_BELOW_MIN", "PROCESSING_FEE_NOT_COLLECTED"]
    assert "AGENT_CASH_WITHDRAWAL: net cash withdrawn 200 USD" in rows[-1][3]
    assert rows[-1][4] == "policy_parameters@2019-01-01"


def _portfolio_by_hand(month_end: date) -> tuple[Decimal, Decimal]:
    """(OD outstanding, term loans outstanding) in USD at the month end's rate, from the scripted rows."""
    rate = _usd_khr(month_end)
    od = sum(
        (a["principal"] / rate if a["currency"] == "KHR" else a["principal"])
        for a in map(_account, ACCOUNTS)
        if a["from"] <= month_end
    )
    term = sum(
        _amount_on(amounts, month_end) / (rate if ccy == "KHR" else 1)
        for _, _, ccy, amounts, status, _ in LOANS.values()
        if status == "ACTIVE"
    )
    return Decimal(od), Decimal(term)


def test_portfolio_share_and_cap_by_hand(scripted_db: str) -> None:
    rows = _query(
        scripted_db,
        "select month_end, od_outstanding_usd, term_loan_outstanding_usd, total_portfolio_usd, od_share,"
        " cap_breached, early_warning_breached from marts.fct_portfolio_month_end order by month_end",
    )
    assert [r[0] for r in rows] == list(MONTH_ENDS)
    by_month = {r[0]: r[1:] for r in rows}
    for month_end in (date(2025, 12, 31), LAST):
        od, term = _portfolio_by_hand(month_end)
        od_usd, term_usd, total, share = by_month[month_end][:4]
        assert (od_usd, term_usd, total) == (od, term, od + term)
        assert abs(share - od / (od + term)) < Decimal("1e-15")
    # December: 232,375 / 2,327,375.01 = 9.98%: under the 10% cap, above the 8% early warning
    assert by_month[date(2025, 12, 31)][-2:] == (False, True)
    # January: 231,000 / 1,276,000.01 = 18.1%: the cap is breached
    assert by_month[LAST][-2:] == (True, True)


def test_grade_distribution_has_five_grades_and_adds_up(scripted_db: str) -> None:
    grades = _query(
        scripted_db,
        "select product_family, count(*), sum(outstanding_usd), sum(provision_usd), sum(accounts)"
        " from marts.fct_grade_distribution_month_end where month_end = %s group by 1 order by 1",
        LAST,
    )
    portfolio = _query(
        scripted_db,
        "select od_outstanding_usd, od_provision_usd, term_loan_outstanding_usd, term_loan_provision_usd,"
        " od_accounts, term_loan_accounts from marts.fct_portfolio_month_end where month_end = %s",
        LAST,
    )[0]
    assert grades == [
        ("OD", 5, portfolio[0], portfolio[1], portfolio[4]),
        ("TERM", 5, portfolio[2], portfolio[3], portfolio[5]),
    ]
    # OD04 is undrawn but active: an account of the portfolio; 16 ODs, 3 ACTIVE term loans (LN21 is CLOSED)
    assert (portfolio[4], portfolio[5]) == (16, 3)


def _my_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        ("intermediate", "int_od__policy_checks_month_end"): ("od_account_id", "month_end"),
        ("marts", "fct_portfolio_month_end"): ("month_end",),
        ("marts", "fct_grade_distribution_month_end"): ("month_end", "product_family", "grade_order"),
    }
    return {
        ".".join(table): _query(
            url,
            sql.SQL("select * from {} order by {}").format(
                sql.Identifier(*table), sql.SQL(", ").join(map(sql.Identifier, key))
            ),
        )
        for table, key in tables.items()
    }


@pytest.mark.slow
def test_incremental_builds_equal_a_full_refresh(fresh_db: str) -> None:
    build = ["run", "--select", MY_MODELS]
    transform.run_dbt(["seed"], fresh_db)
    load_raw(fresh_db, FIRST, date(2025, 12, 31))
    transform.run_dbt(build, fresh_db)
    load_raw(fresh_db, date(2026, 1, 1), LAST)
    transform.run_dbt(build, fresh_db)  # January only
    # a corrected delivery of 15 November without OD05's cash withdrawal: every later month end is redone
    redeliver(fresh_db, date(2025, 11, 15), load_id=1000, drop_txn="T1")
    transform.run_dbt(build, fresh_db)
    incremental = _my_tables(fresh_db)
    transform.run_dbt([*build, "--full-refresh"], fresh_db)
    assert _my_tables(fresh_db) == incremental
    breaches = _query(
        fresh_db,
        "select month_end, policy_breaches from intermediate.int_od__policy_checks_month_end"
        " where od_account_id = 'OD05' order by month_end",
    )
    assert breaches == [(m, []) for m in MONTH_ENDS]
    assert len(incremental["marts.fct_portfolio_month_end"]) == len(MONTH_ENDS)
