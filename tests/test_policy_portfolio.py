"""Limits, eligibility and portfolio (rulebook A and G) end to end: scripted raw rows -> dbt -> marts.

Sixteen OD accounts are loaded for every business date from 2025-10-01 to 2026-01-31 (one load per date,
as the loader writes them: ``support.raw.deliver``). Each account is scripted to break exactly one rule of section G (OD01 and
OD16 break none); the portfolio figures are computed by hand below from the scripted balances and rates.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from odwh import transform
from psycopg import sql
from support.database import query
from support.raw import Rows, days, deliver

FIRST, LAST = date(2025, 10, 1), date(2026, 1, 31)
MONTH_ENDS = (date(2025, 10, 31), date(2025, 11, 30), date(2025, 12, 31), date(2026, 1, 31))
USD_KHR = {LAST: Decimal(4100)}  # riel per USD: 4,000 every day except the last month end
THB_KHR = Decimal(125)
MY_MODELS = (
    "+int_od__policy_checks_month_end +fct_portfolio_month_end +fct_grade_distribution_month_end"
    # the portfolio-quality marts read the positions too: built so that MY_OWN's descendants' tests have them
    " +fct_par_month_end +fct_par_by_segment_month_end +fct_grade_migration_month_end"
    # the write-offs feed the review list (WRITTEN_OFF): built so that its tests have their relations
    " +rpt_review_list"
)
MY_OWN = (
    "int_fx__rates_daily int_od__policy_facts_month_end int_od__policy_checks_month_end"
    " int_portfolio__positions_month_end+"
)

# Each account overrides ACCOUNT_DEFAULTS: customer CU<nn>, type SME unless given (agents partner since
# 2024-01-01 unless given), start_date = approved_on, "principal" = principal outstanding every day,
# "from" = the account's first loaded date.
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "currency": "USD",
    "limit_amount": Decimal(10_000),
    "approved_on": date(2025, 6, 1),
    "start_date": None,
    "maturity_date": date(2026, 5, 31),
    "collateral_type": "NONE",
    "collateral_value": None,
    "fd_account_id": None,
    "purpose": "WORKING_CAPITAL",
    "restructured": False,
    "principal": Decimal(500),
    "from": FIRST,
}
ACCOUNTS: dict[str, dict[str, Any]] = {
    "OD01": {"principal": Decimal(6000)},
    "OD02": {"type": "AGENT", "limit_amount": Decimal("5000.01"), "principal": Decimal(2000)},
    "OD03": {
        "type": "AGENT",
        "agent_since": date(2025, 3, 1),
        "limit_amount": Decimal(3000),
        "principal": Decimal(1000),
    },
    "OD04": {
        "type": "AGENT",
        "limit_amount": Decimal(3000),
        "approved_on": date(2026, 1, 10),
        "principal": Decimal(0),
        "from": date(2026, 1, 10),
    },
    "OD05": {"type": "AGENT", "limit_amount": Decimal(3000), "principal": Decimal(1500)},
    "OD06": {
        "limit_amount": Decimal("70000.01"),
        "collateral_type": "PROPERTY",
        "collateral_value": Decimal(100_000),
        "principal": Decimal(50_000),
    },
    "OD07": {
        "limit_amount": Decimal("100000.01"),
        "collateral_type": "PROPERTY",
        "collateral_value": Decimal(200_000),
        "principal": Decimal(80_000),
    },
    "OD08": {
        "limit_amount": Decimal("5000.01"),
        "collateral_type": "FIXED_DEPOSIT",
        "fd_account_id": "FD08",
        "principal": Decimal(3000),
    },
    "OD09": {
        "type": "MSME",
        "currency": "KHR",
        "limit_amount": Decimal(400_000_040),
        "approved_on": date(2025, 10, 15),
        "maturity_date": date(2026, 10, 14),
        "collateral_type": "FIXED_DEPOSIT",
        "fd_account_id": "FD09",
        "principal": Decimal(205_000_000),
        "from": date(2025, 10, 15),
    },
    "OD10": {"limit_amount": Decimal(1000), "collateral_type": "FIXED_DEPOSIT", "fd_account_id": "FD10"},
    "OD11": {"limit_amount": Decimal(1000), "maturity_date": date(2026, 6, 2)},
    "OD12": {"limit_amount": Decimal(1000), "purpose": "REFINANCE"},
    "OD13": {"limit_amount": Decimal(60_000), "principal": Decimal(30_000)},
    "OD14": {"limit_amount": Decimal(1000), "approved_on": date(2025, 11, 10), "from": date(2025, 11, 10)},
    "OD15": {"limit_amount": Decimal(1000), "restructured": True},
    "OD16": {"currency": "KHR", "limit_amount": Decimal(40_000_000), "principal": Decimal(20_500_000)},
}
EXPECTED_BREACHES_AT_LAST = {
    "OD01": [],
    "OD02": ["AGENT_LIMIT_EXCEEDED"],
    "OD03": ["AGENT_PARTNERSHIP_UNDER_6M"],
    "OD04": ["AGENT_LIQUIDITY_BELOW_MIN"],
    "OD05": ["AGENT_CASH_WITHDRAWAL"],
    "OD06": ["PROPERTY_LTV_EXCEEDED"],
    # above USD 100,000 the single-loan exposure (USD 100,000 by default) is exceeded as well
    "OD07": ["CROSS_FINANCE_EXPOSURE", "PROPERTY_LIMIT_ABOVE_MAX"],
    "OD08": ["FD_LTV_EXCEEDED"],
    "OD09": ["FD_LIMIT_ABOVE_MAX"],
    "OD10": ["FD_MATURITY_BEFORE_OD"],
    "OD11": ["TERM_ABOVE_12_MONTHS"],
    "OD12": ["REFINANCE_PURPOSE"],
    "OD13": ["CROSS_FINANCE_EXPOSURE"],
    "OD14": ["PROCESSING_FEE_NOT_COLLECTED"],
    "OD15": ["RESTRUCTURED"],
    "OD16": [],
}
DEPOSITS = {  # fd_account_id -> (customer, currency, principal, maturity_date, frozen)
    "FD08": ("CU08", "USD", Decimal(5000), date(2026, 12, 31), False),
    "FD09": ("CU09", "KHR", Decimal(500_000_000), date(2026, 12, 31), False),
    "FD10": ("CU10", "USD", Decimal(5000), date(2026, 3, 31), False),
}
LOANS = {  # loan_id -> (customer, product, currency, outstanding {from date: amount}, status, source OD)
    "LN13": ("CU13", "SME", "USD", {FIRST: Decimal("40000.01")}, "ACTIVE", None),
    # KHR 8.2 bn (USD 2,050,000 at 4,000) until December, KHR 4.1 bn (USD 1,000,000 at 4,100) in January
    "LN20": (
        "CU90",
        "AGRI",
        "KHR",
        {FIRST: Decimal(8_200_000_000), date(2026, 1, 1): Decimal(4_100_000_000)},
        "ACTIVE",
        None,
    ),
    "LN21": ("CU16", "SME", "USD", {FIRST: Decimal(50_000)}, "CLOSED", None),
    "LN22": ("CU12", "OD_CONVERTED", "USD", {FIRST: Decimal(5000)}, "ACTIVE", "OD99"),
}


def _amount_on(amounts: dict[date, Decimal], d: date) -> Decimal:
    """The amount in force on ``d`` of a {from date: amount} schedule."""
    return [v for f, v in sorted(amounts.items()) if f <= d][-1]


def _usd_khr(d: date) -> Decimal:
    return USD_KHR.get(d, Decimal(4000))


def _account(od: str) -> dict[str, Any]:
    a = {**ACCOUNT_DEFAULTS, **ACCOUNTS[od]}
    a["customer_id"] = "CU" + od[2:]
    a["start_date"] = a["start_date"] or a["approved_on"]
    a.setdefault("type", "SME")
    a.setdefault("agent_since", date(2024, 1, 1) if a["type"] == "AGENT" else None)
    return a


TRANSACTIONS = [  # txn_id, account, date, type, amount (all debits)
    ("T1", "OD05", date(2025, 11, 15), "CASH_WITHDRAWAL", Decimal(200)),
    ("T2", "OD04", date(2026, 1, 10), "PROCESSING_FEE", Decimal(30)),
    ("T3", "OD09", date(2025, 10, 15), "PROCESSING_FEE", Decimal(4_000_000)),
]
RATES = {
    "monthly_interest_rate": Decimal("0.015"),
    "processing_fee_rate": Decimal("0.01"),
    "excess_fee_rate_monthly": Decimal("0.01"),
    "unutilized_fee_rate_annual": Decimal("0.01"),
}
OD_ACCOUNT_COLUMNS = ["customer_id", *(k for k in ACCOUNT_DEFAULTS if k not in ("principal", "from"))]


def _day_rows(d: date) -> Rows:
    """The raw rows of business date ``d``: customers and agents all along, accounts from their first date."""
    accounts = {od: _account(od) for od in ACCOUNTS}
    open_accounts = {od: a for od, a in accounts.items() if d >= a["from"]}
    rates = {"KHR": Decimal(1), "USD": _usd_khr(d), "THB": THB_KHR}
    return {
        "branches": [{"branch_code": "B01", "branch_name": "Main"}],
        "fx_rates": [{"business_date": d, "currency": c, "khr_per_unit": k} for c, k in rates.items()],
        "customers": [
            {
                "customer_id": a["customer_id"],
                "customer_type": a["type"],
                "agent_since": a["agent_since"],
                "branch_code": "B01",
            }
            for a in accounts.values()
        ],
        "od_accounts": [
            {"od_account_id": od, "status": "ACTIVE", **{c: a[c] for c in OD_ACCOUNT_COLUMNS}, **RATES}
            for od, a in open_accounts.items()
        ],
        "od_balances": [
            {
                "od_account_id": od,
                "business_date": d,
                "principal_outstanding": a["principal"],
                "interest_receivable": Decimal(0),
                "fees_receivable": Decimal(0),
            }
            for od, a in open_accounts.items()
        ],
        "fixed_deposits": [
            {
                "fd_account_id": fd,
                "customer_id": c,
                "currency": ccy,
                "principal": p,
                "maturity_date": m,
                "frozen": frozen,
                "status": "ACTIVE",
            }
            for fd, (c, ccy, p, m, frozen) in DEPOSITS.items()
        ],
        "loans": [
            {
                "loan_id": ln,
                "customer_id": c,
                "product": product,
                "currency": ccy,
                "original_term_months": 24,
                "outstanding_principal": _amount_on(amounts, d),
                "days_past_due": 0,
                "status": status,
                "source_od_account_id": source,
            }
            for ln, (c, product, ccy, amounts, status, source) in LOANS.items()
        ],
        "agent_liquidity": [
            {
                "customer_id": a["customer_id"],
                "business_date": d,
                "liquidity_usd": Decimal(2000) if od == "OD04" else Decimal(5000),
            }
            for od, a in accounts.items()
            if a["type"] == "AGENT"
        ],
        "od_transactions": [
            {
                "txn_id": txn,
                "od_account_id": od,
                "business_date": d,
                "txn_type": txn_type,
                "direction": "DEBIT",
                "amount": amount,
                "channel": "SYSTEM",
            }
            for txn, od, day, txn_type, amount in TRANSACTIONS
            if day == d
        ],
    }


def load_raw(url: str, first: date, last: date) -> None:
    deliver(url, {d: _day_rows(d) for d in days(first, last)})


def redeliver(url: str, day: date, drop_txn: str) -> None:
    """Deliver ``day`` again like a corrected delivery would, without transaction ``drop_txn``."""
    rows = _day_rows(day)
    rows["od_transactions"] = [t for t in rows["od_transactions"] if t["txn_id"] != drop_txn]
    deliver(url, {day: rows})


@pytest.fixture(scope="module")
def scripted_db(module_db: str, dbt_work: Path) -> str:
    """The scripted history loaded and the models built once (shared by this module)."""
    load_raw(module_db, FIRST, LAST)
    transform.run_dbt(["seed"], module_db, work_dir=dbt_work)
    transform.run_dbt(["run", "--select", MY_MODELS], module_db, work_dir=dbt_work)
    # the data and unit tests of this engineer's models (the upstream ones have their own test files)
    transform.run_dbt(["test", "--select", MY_OWN], module_db, work_dir=dbt_work)
    return module_db


def test_every_breach_kind_is_found_for_its_scripted_account(scripted_db: str) -> None:
    rows = query(
        scripted_db,
        "select od_account_id, policy_breaches from intermediate.int_od__policy_checks_month_end"
        " where month_end = %s",
        LAST,
    )
    assert dict(rows) == EXPECTED_BREACHES_AT_LAST


def test_breaches_and_not_evaluable_over_time(scripted_db: str) -> None:
    rows = query(
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
    rows = query(
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
    grades = query(
        scripted_db,
        "select product_family, count(*), sum(outstanding_usd), sum(provision_usd), sum(accounts)"
        " from marts.fct_grade_distribution_month_end where month_end = %s group by 1 order by 1",
        LAST,
    )
    portfolio = query(
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
        # incremental by month end too (decisions 0044, 0045)
        ("intermediate", "int_quality__exposures_month_end"): ("month_end", "product_family", "account_id"),
        ("marts", "fct_grade_migration_month_end"): ("month_end", "product_family", "from_grade", "to_grade"),
        ("marts", "rpt_review_list"): ("month_end", "od_account_id", "reason"),
    }
    return {
        ".".join(table): query(
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
    redeliver(fresh_db, date(2025, 11, 15), drop_txn="T1")
    transform.run_dbt(build, fresh_db)
    incremental = _my_tables(fresh_db)
    transform.run_dbt([*build, "--full-refresh"], fresh_db)
    assert _my_tables(fresh_db) == incremental
    breaches = query(
        fresh_db,
        "select month_end, policy_breaches from intermediate.int_od__policy_checks_month_end"
        " where od_account_id = 'OD05' order by month_end",
    )
    assert breaches == [(m, []) for m in MONTH_ENDS]
    assert len(incremental["marts.fct_portfolio_month_end"]) == len(MONTH_ENDS)
    assert {r[0] for r in incremental["marts.fct_grade_migration_month_end"]} == set(MONTH_ENDS[1:])
